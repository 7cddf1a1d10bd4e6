"""gacc against Lightning's gradient accumulation (pinned: lightning 2.6.6).

    import gacc
    from gacc.adapters import lightning as gacc_lightning

    report = gacc.check(gacc_lightning.oracle_stack(), cases=20)                  # gacc's zoo models
    report = gacc.check(gacc_lightning.differential_stack(), mode="differential")  # the adapter's own model

    python -m gacc.adapters.lightning [--mode oracle|differential] [--broken NAME] [--cases N]
    gacc check-external --worker --cmd "python -m gacc.adapters.lightning --worker [--mode M] [--broken NAME]"

Each case is trained by ``lightning.Trainer(accumulate_grad_batches=K).fit`` with automatic
optimization: Lightning's loop divides the loss ``training_step`` returns by K, back-propagates it
(scaled by its precision plugin), zeroes the gradients before each window's first micro-batch,
steps the optimizer at every K-th micro-batch and at the last of the epoch (the partial last
window), clips with ``gradient_clip_val`` / ``gradient_clip_algorithm`` before the step and steps
the learning-rate scheduler (``interval="step"``) after it. The DataLoader holds gacc's
micro-batches in order (``batch_size=None``, no shuffling), one epoch. Logging, checkpointing, the
progress bar, the model summary and sanity checks are off; ``accelerator="cpu"``, ``devices=1``.

The loss ``training_step`` returns is the micro-batch's summed loss times K over the window's
element count, which Lightning divides by K (see ``_shared``).

Observed, not changed: ``on_before_optimizer_step`` (the gradient's norm before clipping, after
unscaling), the end of ``configure_gradient_clipping`` after Lightning's own clipping (the gradient
handed to the optimizer, the learning rate, the loss scale), the torch optimizer's step post-hook
(the step), ``on_train_batch_end`` (a window whose step GradScaler skipped), ``on_before_zero_grad``,
the scheduler's own step count and a hook on each returned loss (what Lightning back-propagates of
it). The user's module also gives a parameter no example reached (an mlp_routed expert) a zero
gradient before the step, as a large batch steps every parameter.

Precision: fp32 (``"32-true"``), bf16 (``"bf16-mixed"``: Lightning's CPU autocast around
``training_step``) and fp16. On the CPU ``Trainer(precision="16-mixed")`` warns and trains in
bf16-mixed instead; fp16 runs through Lightning's own ``MixedPrecision("16-mixed", "cpu", scaler)``
plugin (its CPU autocast to float16, its GradScaler handling: scaling each backward, unscaling
before clipping, skipping the step on a non-finite gradient, then stepping the scheduler anyway),
with a ``torch.amp.GradScaler("cpu")`` configured as the scenario's dynamic loss scaling. The
differential runs use ``"64-true"`` (the float32-initialized network converted to float64 by
Lightning) and ``"32-true"``. One process: a case with world_size above 1 is refused.
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader

import lightning
from lightning.pytorch.plugins.precision import MixedPrecision

from gacc import case as gacc_case
from gacc import training, zoo
from gacc.adapters import _command_line
from gacc.adapters import _shared as common

#: The precisions this adapter trains (fp16 through Lightning's MixedPrecision plugin: see the docstring).
SUPPORTED_PRECISIONS = ("fp32", "bf16", "fp16")

#: The broken configurations ``oracle_stack(broken=...)`` and ``differential_stack(broken=...)`` take.
BROKEN = {
    common.NAIVE_MEAN: "training_step returns each micro-batch's own mean loss, as Lightning's examples "
                       "write it (F.cross_entropy(logits, y)), which Lightning divides by "
                       "accumulate_grad_batches: the mean of the micro-batches' means",
    common.DIVIDED_TWICE: "training_step returns the plain-PyTorch loss, already divided over the window "
                          "(summed / window elements), which Lightning divides by accumulate_grad_batches again",
}

_PRECISION = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed", torch.float64: "64-true",
              torch.float32: "32-true"}

#: Lightning's loggers, silenced while a case trains (its "GPU available" lines and warnings).
_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero",
            "lightning.fabric.utilities.rank_zero")

#: (outputs, batch) -> (summed loss, the micro-batch's own reduction, the window's normalizer)
Losses = Callable[[torch.Tensor, dict[str, Any]], tuple[torch.Tensor, torch.Tensor, float]]
#: the network's parameters -> (optimizer, scheduler or None)
Optimizers = Callable[[list[torch.nn.Parameter]], tuple[torch.optim.Optimizer, Any]]


class _Module(lightning.LightningModule):
    """The user's LightningModule: gacc's (or the task's) network, its loss, its optimizer; plus the
    observation hooks."""

    def __init__(self, net: torch.nn.Module, parameters: Callable[[torch.nn.Module], list[torch.nn.Parameter]],
                 optimizers: Optimizers, losses: Losses, broken: str | None, differential: bool):
        super().__init__()
        self.net = net
        self._parameters_of = parameters
        self._optimizers_of = optimizers
        self._losses = losses
        self._broken = broken
        self._differential = differential
        self.recorder: common.StepRecorder | None = None
        self.scheduler: Any = None

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        outputs = self(batch["inputs"])
        summed, own_reduction, normalizer = self._losses(outputs, batch)
        loss = common.stack_loss(self._broken, summed=summed, own_reduction=own_reduction, normalizer=normalizer,
                                 divisor=self.trainer.accumulate_grad_batches)
        self.recorder.observe_loss(loss)
        return loss

    def configure_optimizers(self):
        # Called after the precision plugin converted the network ("64-true": float64 parameters).
        optimizer, self.scheduler = self._optimizers_of(self._parameters_of(self.net))
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)  # "16-mixed": its GradScaler
        self.recorder = common.StepRecorder(self.net, optimizer, differential=self._differential,
                                            loss_scale=scaler.get_scale if scaler is not None else None)
        if self.scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler, "interval": "step",
                                                         "frequency": 1}}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # After the window's last backward (and the precision plugin's unscaling), before clipping.
        params = list(self.net.parameters())
        training.fill_missing_gradients(params)  # an expert no example reached still steps
        self.recorder.pre_clip_norm = training.gradient_norm(params)

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None) -> None:
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)  # Lightning's
        self.recorder.capture()  # what the optimizer is handed next

    def on_before_zero_grad(self, optimizer: torch.optim.Optimizer) -> None:
        self.recorder.count_zero_grad()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # After the optimizer step and the scheduler's: a gradient captured but never stepped with
        # was a step GradScaler skipped.
        self.recorder.window_end()


def _clipping_arguments(clipping: dict[str, Any] | None) -> dict[str, Any]:
    kind = (clipping or {}).get("kind", "none")
    if kind == "norm":
        return {"gradient_clip_val": clipping["max_norm"], "gradient_clip_algorithm": "norm"}
    if kind == "value":
        return {"gradient_clip_val": clipping["clip_value"], "gradient_clip_algorithm": "value"}
    return {}


def _precision_arguments(precision: str, scenario: dict[str, Any] | None) -> dict[str, Any]:
    """Trainer's precision, or for fp16 its MixedPrecision plugin with a CPU GradScaler: on the CPU
    ``precision="16-mixed"`` falls back to "bf16-mixed", but the plugin itself takes a device and a
    scaler (configured as the scenario's dynamic loss scaling)."""
    if precision != "16-mixed":
        return {"precision": precision}
    scaler = torch.amp.GradScaler("cpu", **training.grad_scaler_options(scenario or {}))
    return {"plugins": [MixedPrecision("16-mixed", "cpu", scaler)]}


def _fit(module: _Module, data: list[dict[str, Any]], *, accumulation_steps: int, precision: str,
         clipping: dict[str, Any] | None, scenario: dict[str, Any] | None = None
         ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One ``Trainer.fit`` over ``data``; returns what the module's recorder saw."""
    with tempfile.TemporaryDirectory(prefix="gacc-lightning-") as root, common.quiet(*_LOGGERS):
        trainer = lightning.Trainer(accelerator="cpu", devices=1, max_epochs=1,
                                    **_precision_arguments(precision, scenario),
                                    accumulate_grad_batches=accumulation_steps, logger=False,
                                    enable_checkpointing=False, enable_progress_bar=False,
                                    enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                                    use_distributed_sampler=False, default_root_dir=root,
                                    **_clipping_arguments(clipping))
        if trainer.precision != precision or trainer.accumulate_grad_batches != accumulation_steps:
            raise common.UnsupportedCase(f"Trainer(precision={precision!r}, accumulate_grad_batches="
                                         f"{accumulation_steps}) runs {trainer.precision!r}, "
                                         f"{trainer.accumulate_grad_batches}")
        trainer.fit(module, train_dataloaders=DataLoader(data, batch_size=None, shuffle=False))
    return module.recorder.finish(module.scheduler)


def oracle_stack(*, broken: str | None = None) -> Callable[[gacc_case.Case], tuple[list, dict]]:
    """``stack(case) -> (steps, counters)`` for ``gacc.check(stack)``: gacc's zoo model trained by
    Lightning's Trainer. ``broken``: one of BROKEN's names, or None for the correct configuration."""
    common.check_broken(broken, BROKEN, "lightning")

    def stack(case: gacc_case.Case) -> tuple[list[dict[str, Any]], dict[str, int]]:
        common.check_case(case, "lightning", SUPPORTED_PRECISIONS)
        scenario = case.scenario

        def optimizers(params: list[torch.nn.Parameter]):
            optimizer = training.make_optimizer(scenario["optimizer"], params)
            return optimizer, training.make_scheduler(scenario.get("schedule"), optimizer)

        def losses(outputs: torch.Tensor, batch: dict[str, Any]):
            targets = batch["targets"]
            return (zoo.summed_loss(scenario, outputs, targets), zoo.batch_loss(scenario, outputs, targets),
                    common.window_normalizer(scenario, batch["window_elements"]))

        module = _Module(zoo.build_model(scenario, case).train(),
                         lambda net: [net.get_parameter(name) for name in case.parameter_names],
                         optimizers, losses, broken, differential=False)
        return _fit(module, common.micro_batches(case), accumulation_steps=int(scenario["accumulation_steps"]),
                    precision=_PRECISION[case.precision], clipping=scenario.get("clipping"), scenario=scenario)

    return stack


def differential_stack(*, broken: str | None = None) -> Callable[[gacc_case.DifferentialCase], tuple[dict, dict]]:
    """``stack(case) -> (runs, counters)`` for ``gacc.check(stack, mode="differential")``: the
    adapter's own token model (``_shared.TinyTokenModel``) trained by Lightning three times —
    ``precision="64-true"`` with gacc's micro-batches and ``accumulate_grad_batches=K``, "64-true"
    and "32-true" with each window as one micro-batch and K = 1."""
    common.check_broken(broken, BROKEN, "lightning")

    def losses(outputs: torch.Tensor, batch: dict[str, Any]):
        summed, mean = common.token_losses(outputs, batch["targets"])
        return summed, mean, batch["window_elements"]

    def stack(case: gacc_case.DifferentialCase) -> tuple[dict[str, list], dict[str, int]]:
        def train(windows: list[list[torch.Tensor]], dtype: torch.dtype, accumulation_steps: int):
            # Drawn in float32; Lightning's precision plugin converts it ("64-true": .double()).
            module = _Module(common.build_token_model(case.seed).train(), lambda net: list(net.parameters()),
                             common.differential_optimizer, losses, broken, differential=True)
            return _fit(module, common.differential_batches(windows), accumulation_steps=accumulation_steps,
                        precision=_PRECISION[dtype],
                        clipping={"kind": "norm", "max_norm": common.DIFFERENTIAL_MAX_NORM})

        return common.run_differential(case, train)

    return stack


def main(argv: list[str] | None = None) -> int:
    return _command_line.main(sys.modules[__name__], argv)


__all__ = ["BROKEN", "SUPPORTED_PRECISIONS", "differential_stack", "main", "oracle_stack"]

if __name__ == "__main__":
    sys.exit(main())
