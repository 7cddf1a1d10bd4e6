"""gacc against Hugging Face Accelerate's gradient accumulation (pinned: accelerate 1.16.0).

    import gacc
    from gacc.adapters import accelerate as gacc_accelerate

    report = gacc.check(gacc_accelerate.oracle_stack(), cases=20)                  # gacc's zoo models
    report = gacc.check(gacc_accelerate.differential_stack(), mode="differential")  # the adapter's own model

    python -m gacc.adapters.accelerate [--mode oracle|differential] [--broken NAME] [--cases N]
    gacc check-external --worker --cmd "python -m gacc.adapters.accelerate --worker [--mode M] [--broken NAME]"

Each case is trained by Accelerate's own loop, as its guide writes it:
``Accelerator(gradient_accumulation_steps=K)``, ``accelerator.prepare`` of the model, optimizer,
DataLoader and scheduler, and per micro-batch ``with accelerator.accumulate(model):`` forward,
``accelerator.backward(loss)``, ``accelerator.clip_grad_norm_`` / ``clip_grad_value_`` when
``accelerator.sync_gradients``, ``optimizer.step()``, ``scheduler.step()``, ``optimizer.zero_grad()``
— every one of them on every micro-batch; whether they act is Accelerate's decision (its
GradientState counts micro-batches and syncs at every K-th and at the end of the DataLoader, the
partial last window included; AcceleratedOptimizer and AcceleratedScheduler skip when it does not
sync). The DataLoader holds gacc's micro-batches in order (``batch_size=None``, no shuffling, one
epoch). K is the scenario's accumulation_steps.

The loss is the one Accelerate's guide prescribes for uneven micro-batches ("Gradient accumulation
on training samples of variable size"): the micro-batch's summed loss times K over the window's
element count, which ``accelerator.backward`` divides by K (see ``_shared``).

Observed, not changed: the torch optimizer's step pre-hook (the gradient handed to it, after
clipping, and the learning rate) and post-hook (the step), ``zero_grad`` calls that reach the torch
optimizer, the scheduler's own step count, a hook on each loss (what ``accelerator.backward``
back-propagates of it) and the norm ``clip_grad_norm_`` returns. The user's loop also gives a
parameter no example reached (an mlp_routed expert) a zero gradient before the step, as a large
batch steps every parameter.

Precision: fp32 and bf16 (``mixed_precision="bf16"``: Accelerate's CPU autocast around the
forward, outputs cast back to fp32, the loss outside autocast). Not fp16: on the CPU
``Accelerator(mixed_precision="fp16")`` creates no GradScaler and no autocast — it trains in fp32
while reporting ``mixed_precision == "fp16"`` — so an fp16 case is refused (and AcceleratedScheduler
holding on a step GradScaler skipped cannot be exercised here). One process: a case with
world_size above 1 is refused.

Accelerate keeps its state in process-wide singletons (AcceleratorState, GradientState) that refuse
a second Accelerator with another mixed precision; each case resets them, as Accelerate's own tests
do, so an Accelerator the calling process holds is not to be used across ``gacc.check``.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader

from accelerate import Accelerator
from accelerate.utils import GradientAccumulationPlugin
from accelerate.state import AcceleratorState, GradientState

from gacc import case as gacc_case
from gacc import training, zoo
from gacc.adapters import _command_line
from gacc.adapters import _shared as common

#: The precisions this adapter trains (see the module's docstring for fp16).
SUPPORTED_PRECISIONS = ("fp32", "bf16")

PREFETCH_ACCUMULATE = "prefetch_accumulate"
NO_DATALOADER_SYNC = "no_dataloader_sync"

#: The broken configurations ``oracle_stack(broken=...)`` and ``differential_stack(broken=...)`` take.
BROKEN = {
    common.NAIVE_MEAN: "each micro-batch's own mean loss, as Accelerate's basic example writes it "
                       "(loss_function(outputs, targets)), which accelerator.backward divides by K: "
                       "the mean of the micro-batches' means",
    common.DIVIDED_TWICE: "the plain-PyTorch loss, already divided over the window (summed / window "
                          "elements), which accelerator.backward divides by K again",
    PREFETCH_ACCUMULATE: "the guide's variable-size recipe (fetch a window's K batches first to count "
                         "its tokens) trained inside accelerator.accumulate(): fetching the last batch "
                         "ends the DataLoader, so every micro-batch of the last window syncs and steps",
    NO_DATALOADER_SYNC: "GradientAccumulationPlugin(sync_with_dataloader=False), the guide's way to stop "
                        "syncing at the end of the DataLoader: a partial last window never steps",
}

_MIXED_PRECISION = {"fp32": "no", "bf16": "bf16"}

#: (outputs, batch) -> (summed loss, the micro-batch's own reduction, the window's normalizer)
Losses = Callable[[torch.Tensor, dict[str, Any]], tuple[torch.Tensor, torch.Tensor, float]]


def _accelerator(accumulation_steps: int, mixed_precision: str, broken: str | None) -> Accelerator:
    """A fresh Accelerator on the CPU (Accelerate's singletons reset first)."""
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    if broken == NO_DATALOADER_SYNC:
        plugin = GradientAccumulationPlugin(num_steps=accumulation_steps, sync_with_dataloader=False)
        accelerator = Accelerator(cpu=True, mixed_precision=mixed_precision, gradient_accumulation_plugin=plugin)
    else:
        accelerator = Accelerator(cpu=True, mixed_precision=mixed_precision,
                                  gradient_accumulation_steps=accumulation_steps)
    # ACCELERATE_* environment variables (accelerate launch) override the arguments: refuse them.
    actual = (accelerator.gradient_accumulation_steps, accelerator.mixed_precision, accelerator.num_processes)
    if actual != (accumulation_steps, mixed_precision, 1):
        raise common.UnsupportedCase(
            f"Accelerator(gradient_accumulation_steps={accumulation_steps}, mixed_precision={mixed_precision!r}) "
            f"runs with {actual[0]} steps, {actual[1]!r}, {actual[2]} processes: unset the ACCELERATE_* "
            f"environment variables (accelerate launch) for gacc")
    return accelerator


def _windows(loader: Any, accumulation_steps: int, broken: str | None):
    """The micro-batches in the order the user's loop takes them: straight from the DataLoader, or —
    the prefetching configuration — a window's batches fetched first (the guide's skeleton:
    K per window, the remainder in the last)."""
    if broken != PREFETCH_ACCUMULATE:
        yield from loader
        return
    iterator = iter(loader)
    batches = len(loader)
    updates = -(-batches // accumulation_steps)
    remainder = batches % accumulation_steps or accumulation_steps
    for update in range(updates):
        window = [next(iterator) for _ in range(accumulation_steps if update != updates - 1 else remainder)]
        yield from window


def _train(*, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, data: list[dict[str, Any]],
           accumulation_steps: int, mixed_precision: str, clipping: dict[str, Any] | None, losses: Losses,
           broken: str | None, differential: bool) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Accelerate's accumulation loop over ``data``; returns what the recorder saw."""
    accelerator = _accelerator(accumulation_steps, mixed_precision, broken)
    recorder = common.StepRecorder(model, optimizer, differential=differential, capture_before_step=True)
    common.count_calls(optimizer, "zero_grad", recorder.count_zero_grad)
    loader = DataLoader(data, batch_size=None, shuffle=False)
    if scheduler is not None:
        model, optimizer, loader, prepared_scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    else:
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        prepared_scheduler = None
    params = list(model.parameters())
    clip = (clipping or {}).get("kind", "none")
    # The loop's configurations have the correct loss.
    loss_configuration = None if broken in (PREFETCH_ACCUMULATE, NO_DATALOADER_SYNC) else broken
    with common.quiet("accelerate"):
        # --- the user's loop, as Accelerate's guide writes it --------------------------------------
        for batch in _windows(loader, accumulation_steps, broken):
            with accelerator.accumulate(model):
                outputs = model(batch["inputs"])
                summed, own_reduction, normalizer = losses(outputs, batch)
                loss = common.stack_loss(loss_configuration, summed=summed, own_reduction=own_reduction,
                                         normalizer=normalizer, divisor=accelerator.gradient_accumulation_steps)
                recorder.observe_loss(loss)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    training.fill_missing_gradients(params)  # an expert no example reached still steps
                    if clip == "norm":
                        recorder.pre_clip_norm = float(accelerator.clip_grad_norm_(params, clipping["max_norm"]))
                    elif clip == "value":
                        recorder.pre_clip_norm = training.gradient_norm(params)
                        accelerator.clip_grad_value_(params, clipping["clip_value"])
                optimizer.step()
                if prepared_scheduler is not None:
                    prepared_scheduler.step()
                optimizer.zero_grad()
    return recorder.finish(scheduler)


def oracle_stack(*, broken: str | None = None) -> Callable[[gacc_case.Case], tuple[list, dict]]:
    """``stack(case) -> (steps, counters)`` for ``gacc.check(stack)``: gacc's zoo model trained
    through Accelerate. ``broken``: one of BROKEN's names, or None for the correct configuration."""
    common.check_broken(broken, BROKEN, "accelerate")

    def stack(case: gacc_case.Case) -> tuple[list[dict[str, Any]], dict[str, int]]:
        common.check_case(case, "accelerate", SUPPORTED_PRECISIONS)
        scenario = case.scenario
        model = zoo.build_model(scenario, case).train()
        params = [model.get_parameter(name) for name in case.parameter_names]
        optimizer = training.make_optimizer(scenario["optimizer"], params)
        scheduler = training.make_scheduler(scenario.get("schedule"), optimizer)

        def losses(outputs: torch.Tensor, batch: dict[str, Any]):
            targets = batch["targets"]
            return (zoo.summed_loss(scenario, outputs, targets), zoo.batch_loss(scenario, outputs, targets),
                    common.window_normalizer(scenario, batch["window_elements"]))

        return _train(model=model, optimizer=optimizer, scheduler=scheduler, data=common.micro_batches(case),
                      accumulation_steps=int(scenario["accumulation_steps"]),
                      mixed_precision=_MIXED_PRECISION[case.precision], clipping=scenario.get("clipping"),
                      losses=losses, broken=broken, differential=False)

    return stack


def differential_stack(*, broken: str | None = None) -> Callable[[gacc_case.DifferentialCase], tuple[dict, dict]]:
    """``stack(case) -> (runs, counters)`` for ``gacc.check(stack, mode="differential")``: the
    adapter's own token model (``_shared.TinyTokenModel``) trained through Accelerate three
    times — float64 with gacc's micro-batches and K, float64 and float32 with each window as one
    micro-batch and K = 1 (no mixed precision: the model's own dtype throughout)."""
    common.check_broken(broken, BROKEN, "accelerate")

    def stack(case: gacc_case.DifferentialCase) -> tuple[dict[str, list], dict[str, int]]:
        def train(windows: list[list[torch.Tensor]], dtype: torch.dtype, accumulation_steps: int):
            model = common.build_token_model(case.seed).to(dtype).train()
            optimizer, scheduler = common.differential_optimizer(model.parameters())

            def losses(outputs: torch.Tensor, batch: dict[str, Any]):
                summed, mean = common.token_losses(outputs, batch["targets"])
                return summed, mean, batch["window_elements"]

            return _train(model=model, optimizer=optimizer, scheduler=scheduler,
                          data=common.differential_batches(windows), accumulation_steps=accumulation_steps,
                          mixed_precision="no", clipping={"kind": "norm", "max_norm": common.DIFFERENTIAL_MAX_NORM},
                          losses=losses, broken=broken, differential=True)

        return common.run_differential(case, train)

    return stack


def main(argv: list[str] | None = None) -> int:
    return _command_line.main(sys.modules[__name__], argv)


__all__ = ["BROKEN", "SUPPORTED_PRECISIONS", "differential_stack", "main", "oracle_stack"]

if __name__ == "__main__":
    sys.exit(main())
