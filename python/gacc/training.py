"""The pieces of a training loop that a gacc scenario specifies, in PyTorch: its optimizer, scheduler,
loss scaler, autocast and clipping. A stack checked in oracle mode builds them from
the case so that what gacc judges is the stack's accumulation, not a different optimizer.

    model = gacc.zoo.build_model(case.scenario, case)
    optimizer = training.make_optimizer(case.scenario["optimizer"], list(model.parameters()))
    scheduler = training.make_scheduler(case.scenario.get("schedule"), optimizer)
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from gacc import zoo as gacc_zoo

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


def grad_scaler_options(scenario: dict[str, Any]) -> dict[str, float]:
    """GradScaler's keyword arguments for the scenario's dynamic loss scaling (fp16)."""
    spec = scenario.get("loss_scale", {})
    return {"init_scale": spec.get("init_scale", 65536.0), "growth_factor": spec.get("growth_factor", 2.0),
            "backoff_factor": spec.get("backoff_factor", 0.5), "growth_interval": spec.get("growth_interval", 2000)}


def make_grad_scaler(scenario: dict[str, Any]) -> torch.amp.GradScaler | None:
    """Dynamic loss scaling for fp16; None otherwise."""
    if scenario.get("precision") != "fp16":
        return None
    return torch.amp.GradScaler("cpu", **grad_scaler_options(scenario))


def autocast(precision: str):
    """CPU autocast to bf16 or fp16 for the forward pass and the loss; nothing for fp32."""
    if precision in AUTOCAST_DTYPES:
        return torch.autocast("cpu", dtype=AUTOCAST_DTYPES[precision])
    return contextlib.nullcontext()


def window_elements(scenario: dict[str, Any], micro_batches: list[dict[str, torch.Tensor]]) -> int:
    """The loss elements of a whole window: every MSE element, or every counted target token."""
    return sum(gacc_zoo.loss_elements(scenario, batch["targets"]) for batch in micro_batches)


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


def fill_missing_gradients(params: list[nn.Parameter]) -> None:
    """Zero gradients for parameters no micro-batch reached (an mlp_routed expert no example was
    routed to): torch.optim would skip them, while large-batch training steps every parameter
    (weight decay, momentum and Adam's step count still act), as a DDP all-reduce would."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)


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
