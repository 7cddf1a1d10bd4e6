#!/usr/bin/env python3
"""Gradient accumulation in plain PyTorch, as gacc checks it.

    python train_accumulate.py CASE RESULT
    python train_accumulate.py --worker      (started once, serving every case: Note [worker protocol])

Reads a gacc case (a scenario, initial weights, every micro-batch), trains through it with gradient
accumulation — K micro-batches, then one optimizer step — and writes what it did at every step to
RESULT. `gacc check-external` runs it on generated scenarios and judges each result against
large-batch training:

    gacc check-external --cmd "python examples/python/train_accumulate.py {case} {result}"
    gacc check-external --worker --cmd "python examples/python/train_accumulate.py --worker"

Per window: each micro-batch's loss, summed over its elements, is divided by the loss elements of
the WHOLE window and back-propagated; then, once, GradScaler's unscale_ (fp16), clipping, one
optimizer step, one scheduler step and zero_grad. bf16 and fp16 run the forward pass and the loss
under CPU autocast with fp32 weights, gradients and optimizer; fp16 scales every backward with
torch.amp.GradScaler. One process (world_size 1).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import torch
from torch import nn

try:
    import gacc  # noqa: F401  (pip install ./python, or make's .venv)
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

from gacc import case as gacc_case  # noqa: E402
from gacc import worker as gacc_worker  # noqa: E402
from gacc import zoo as gacc_zoo  # noqa: E402

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def make_optimizer(spec: dict[str, Any], params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """torch.optim.SGD, Adam or AdamW with the scenario's hyperparameters."""
    kind, lr, weight_decay = spec["kind"], spec["lr"], spec.get("weight_decay", 0.0)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=spec.get("momentum", 0.0),
                               dampening=spec.get("dampening", 0.0), weight_decay=weight_decay,
                               nesterov=spec.get("nesterov", False))
    adam = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]
    return adam(params, lr=lr, betas=(spec.get("beta1", 0.9), spec.get("beta2", 0.999)),
                eps=spec.get("eps", 1e-8), weight_decay=weight_decay, amsgrad=spec.get("amsgrad", False))


def make_scheduler(spec: dict[str, Any] | None, optimizer: torch.optim.Optimizer):
    """The learning-rate scheduler, stepped once per optimizer step; None for a constant rate."""
    kind = (spec or {}).get("kind", "constant")
    if kind == "constant":
        return None
    if kind == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=spec.get("step_size", 1),
                                               gamma=spec.get("gamma", 0.1))
    if kind == "linear_warmup":
        return torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=spec.get("start_factor", 0.25),
                                                 end_factor=1.0, total_iters=spec.get("warmup_steps", 1))
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=spec.get("t_max", 1),
                                                          eta_min=spec.get("eta_min", 0.0))
    raise ValueError(f"unknown schedule {kind!r}")


def make_grad_scaler(scenario: dict[str, Any]) -> torch.amp.GradScaler | None:
    """Dynamic loss scaling for fp16; None otherwise."""
    if scenario.get("precision") != "fp16":
        return None
    spec = scenario.get("loss_scale", {})
    return torch.amp.GradScaler("cpu", init_scale=spec.get("init_scale", 65536.0),
                                growth_factor=spec.get("growth_factor", 2.0),
                                backoff_factor=spec.get("backoff_factor", 0.5),
                                growth_interval=spec.get("growth_interval", 2000))


def autocast(precision: str):
    """CPU autocast to bf16 or fp16 for the forward pass and the loss; nothing for fp32."""
    if precision in AUTOCAST_DTYPES:
        return torch.autocast("cpu", dtype=AUTOCAST_DTYPES[precision])
    return contextlib.nullcontext()


def micro_batch_loss(scenario: dict[str, Any], outputs: torch.Tensor, targets: torch.Tensor,
                     window_elements: int, micro_batches: int) -> torch.Tensor:
    """The loss to back-propagate for one micro-batch of a window of `micro_batches`.

    Its loss summed over its own elements, divided by the loss elements of the whole window (mean:
    every MSE element; token_mean: every counted target token), so that the window's backward
    passes add up to the large batch's mean however the window is cut: uneven micro-batches, a
    partial last window, a micro-batch without a counted token. A sum loss is handed on as it is.
    """
    summed = gacc_zoo.summed_loss(scenario, outputs, targets)
    if scenario["loss"]["reduction"] == "sum":
        return summed
    return summed / window_elements


def gradient_norm(params: list[nn.Parameter]) -> float:
    """The global L2 norm of the gradients: the norm of the per-parameter norms."""
    norms = [p.grad.detach().norm(2) for p in params if p.grad is not None]
    return torch.stack(norms).norm(2).item() if norms else 0.0


def clip_gradients(params: list[nn.Parameter], spec: dict[str, Any] | None) -> float:
    """Clips the window's gradient as the scenario says; returns its norm before clipping."""
    kind = (spec or {}).get("kind", "none")
    if kind == "norm":
        return torch.nn.utils.clip_grad_norm_(params, spec["max_norm"]).item()
    norm = gradient_norm(params)
    if kind == "value":
        torch.nn.utils.clip_grad_value_(params, spec["clip_value"])
    return norm


def optimizer_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> bool:
    """One optimizer step for the window; returns whether it was skipped.

    With GradScaler: scaler.step() skips optimizer.step() when a gradient is not finite, and
    scaler.update() then backs the scale off — the one sign of a skipped step it leaves.
    """
    if scaler is None:
        optimizer.step()
        return False
    scale = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    return scaler.get_scale() < scale


def train(case: gacc_case.Case, scheduler_holds_on_skipped_step: bool = False
          ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Trains through the case; returns the result's steps and counters.

    The LR scheduler steps once per window, as PyTorch's AMP example does; with
    ``scheduler_holds_on_skipped_step`` it holds on a step GradScaler skipped, as accelerate does.
    gacc accepts either.
    """
    scenario = case.scenario
    model = gacc_zoo.build_model(scenario, case)
    model.train()
    params = [model.get_parameter(name) for name in case.parameter_names]
    optimizer = make_optimizer(scenario["optimizer"], params)
    scheduler = make_scheduler(scenario.get("schedule"), optimizer)
    scaler = make_grad_scaler(scenario)

    counters = {"micro_batches": 0, "optimizer_steps": 0, "zero_grads": 0, "scheduler_steps": 0}
    steps = []
    for window in case.batches:
        micro_batches = window[0]  # this rank's micro-batches (one rank: all of them)
        window_elements = sum(gacc_zoo.loss_elements(scenario, b["targets"]) for b in micro_batches)
        window_loss = torch.zeros(())

        # Accumulate: one forward and backward per micro-batch, gradients adding up in .grad.
        for batch in micro_batches:
            with autocast(scenario["precision"]):  # forward and loss in low precision; backward outside
                outputs = model(batch["inputs"])
                loss = micro_batch_loss(scenario, outputs, batch["targets"], window_elements,
                                        len(micro_batches))
            (scaler.scale(loss) if scaler else loss).backward()
            window_loss = window_loss + loss.detach()
            counters["micro_batches"] += 1

        # Once per window: unscale, clip, step.
        if scaler:
            scaler.unscale_(optimizer)  # clip the true gradient, not the scaled one
        pre_clip_norm = clip_gradients(params, scenario.get("clipping"))
        for p in params:
            # A parameter no micro-batch reached (an mlp_routed expert no example was routed to) has
            # no gradient, and torch.optim would skip it. Large-batch training with every parameter
            # stepped hands it a zero gradient (as a DDP all-reduce would): weight decay, momentum
            # and Adam's step count still act.
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grad = gacc_case.gradients(model)
        lr = optimizer.param_groups[0]["lr"]
        loss_scale = scaler.get_scale() if scaler else 1.0
        skipped = optimizer_step(optimizer, scaler)
        counters["optimizer_steps"] += not skipped
        steps.append(gacc_case.record_step(model, optimizer, grad=grad, pre_clip_norm=pre_clip_norm,
                                           loss=window_loss.item(), lr=lr, loss_scale=loss_scale,
                                           skipped=skipped))
        if scheduler and not (skipped and scheduler_holds_on_skipped_step):
            scheduler.step()
            counters["scheduler_steps"] += 1
        optimizer.zero_grad()
        counters["zero_grads"] += 1
    return steps, counters


def run_case(case_path: str, result_path: str) -> None:
    """Trains through one case file and writes its result file."""
    case = gacc_case.load_case(case_path)
    if case.world_size != 1:
        raise gacc_case.CaseError(f"this loop trains one process; the case has world_size {case.world_size}")
    steps, counters = train(case)
    gacc_case.save_result(result_path, steps, counters)


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)  # gacc's own recipes run on one intra-op thread
    if argv[1:] == ["--worker"]:  # started once, serving every case (gacc check-external --worker)
        return gacc_worker.serve(run_case)
    if len(argv) != 3:
        print(f"usage: {argv[0]} CASE RESULT  |  {argv[0]} --worker", file=sys.stderr)
        return 2
    try:
        run_case(argv[1], argv[2])
    except (OSError, gacc_case.CaseError) as error:
        print(f"{argv[0]}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
