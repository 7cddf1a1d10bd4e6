"""gacc against the Hugging Face Trainer (transformers 5.25.0) with ``gradient_accumulation_steps``.

    import gacc
    from gacc.adapters import transformers as hf
    gacc.check(hf.oracle_stack(), cases=20)                              # gacc's zoo models
    gacc.check(hf.differential_stack(), cases=30, mode="differential")   # a tiny GPT-2 of its own

    python -m gacc.adapters.transformers [--mode oracle|differential] [--broken NAME] [--cases N]
    python -m gacc.adapters.transformers --worker [--mode oracle|differential] [--broken NAME]
    python -m gacc.adapters.transformers [--mode ...] [--broken NAME] CASE RESULT

What is under test is the Trainer's own training loop, unchanged: ``Trainer.train()`` over one epoch
with ``gradient_accumulation_steps = K`` — its chunking of the epoch into windows of K micro-batches
(the last one shorter when the epoch does not divide), ``get_batch_samples`` counting the window's
label tokens into ``num_items_in_batch``, ``training_step`` and ``compute_loss`` (the loss handed to
the model's forward with ``num_items_in_batch``, divided by the window's micro-batch count only when
it was not normalized by it), its clipping (``max_grad_norm``), one ``optimizer.step()``, one
``lr_scheduler.step()`` and one ``model.zero_grad()`` per window, and under bf16 accelerate's CPU
autocast. The adapter only feeds it and watches it:

- data: the case's micro-batches, in order, as the Trainer's ``train_dataset`` (one micro-batch per
  item, ``per_device_train_batch_size=1`` and a collator that unwraps it, the ``"sequential"``
  sampler), so that the Trainer's windows are gacc's. That they are is checked as it trains: every
  micro-batch ``training_step`` receives is compared with the one gacc put at that place of that
  window, and every optimizer step with the window's micro-batch count. gacc's windows all hold K
  micro-batches but the last, which may hold fewer — exactly the Trainer's chunking (gacc's
  generator, its shrinker and its file validation keep that rule: ``accumulation_steps``). A split
  whose inner windows are shorter, written by hand, cannot be trained by one Trainer and is refused;
- the model: oracle mode wraps gacc's zoo model (``gacc.zoo.build_model``) in a module whose
  ``forward(inputs, labels, **loss_kwargs)`` returns ``{"loss": ...}`` as an HF model computes it:
  the summed loss divided by ``num_items_in_batch`` when the Trainer passes it (a mean or token
  mean), the batch's own mean without it, the plain sum for ``reduction: sum``. It takes
  ``**kwargs``, so the Trainer sees a model that accepts loss kwargs (``model_accepts_loss_kwargs``)
  and does not divide by K again. For MSE the Trainer's count is ``labels.ne(-100).sum()`` over the
  float targets: every element, the window's MSE element count (a target of exactly -100.0 would be
  left out: the Trainer's label convention, not gacc's). Differential mode trains a tiny GPT-2 of
  its own (``gacc.adapters.hf_models``: float64 throughout, the one float32 cast of its loss
  patched), on its own right-padded token dataset;
- the optimizer and schedule: oracle mode passes gacc's (``gacc.training.make_optimizer`` and
  ``make_scheduler``; for a constant rate ``transformers.get_constant_schedule``, what the Trainer
  itself makes for ``lr_scheduler_type="constant"``) as ``optimizers=(optimizer, scheduler)``;
  norm clipping is the Trainer's ``max_grad_norm`` (0 otherwise). Clipping by value is no Trainer
  option: the adapter applies ``torch.nn.utils.clip_grad_value_`` in an ``on_pre_optimizer_step``
  callback, the hook the Trainer offers between its clipping and the step. A parameter that no
  example of the window reached (an ``mlp_routed`` expert) keeps ``.grad = None`` and torch.optim
  would skip it; gacc's convention steps it with a zero gradient (as a DDP all-reduce would), so the
  same callback fills zeros there (``gacc.training.fill_missing_gradients``, as the plain loop does);
- watching (``_shared.StepRecorder``, as for the other adapters): ``training_step`` (called
  through, then its returned loss — what it back-propagated — summed over the window: the window's
  loss as the stack computes it), ``_get_grad_norm`` (called through: the pre-clip norm the Trainer
  computed and clipped with), ``on_pre_optimizer_step`` (the gradient the optimizer is about to be
  handed, after clipping, and its rate), an optimizer step post-hook (the step, ``gacc.case.record_step``),
  ``on_optimizer_step`` (a window whose step was not taken), ``model.zero_grad`` (counted) and the
  scheduler's ``last_epoch`` (its steps).

Precisions (SUPPORTED_PRECISIONS): fp32, and bf16 through ``TrainingArguments(bf16=True)`` on the
CPU — accelerate wraps the model's forward in ``torch.autocast("cpu", dtype=torch.bfloat16)``, what
gacc's bf16 scenarios specify (forward and loss under autocast, fp32 weights and gradients). fp16 is
refused: on the CPU accelerate 1.16 creates no GradScaler and no autocast for
``mixed_precision="fp16"`` (``Accelerator.__init__`` only does so when ``device.type != "cpu"``), so
``TrainingArguments(fp16=True, use_cpu=True)`` trains in plain fp32 without loss scaling — not what
an fp16 scenario asks. Refused too: world_size > 1 (one process here; gacc draws one rank unless
``--ranks`` says otherwise).

Broken configurations (BROKEN, ``broken=NAME``), real Trainer settings that gacc must flag:

- ``naive_mean``: ``Trainer.model_accepts_loss_kwargs = False`` — what the Trainer decides for a
  model whose ``forward`` takes no ``**kwargs``, and what trainers that compute their own loss set
  (TRL's DPO and Reward trainers). The Trainer then neither counts the window's labels nor passes
  ``num_items_in_batch``; the model returns its micro-batch's own mean, and ``training_step``
  divides it by the window's micro-batch count: the mean of the micro-batches' means, wrong when
  they hold different numbers of tokens or elements (huggingface/transformers issue 24725, fixed for
  models that accept loss kwargs by PR 34191). For ``reduction: sum`` the same setting divides the
  sum by K (gacc diagnoses "1/K of the large batch's");
- ``divided_twice``: ``Trainer.loss_is_scaled_for_ga = False`` on a model that does normalize by
  ``num_items_in_batch`` (the Trainer attribute by which trainers that compute their own loss say
  whether it is already scaled for accumulation; False declares a per-micro-batch mean).
  ``training_step`` then divides the already window-normalized loss by the window's micro-batch
  count again: the gradient is 1/K of the large batch's (1/k for a partial last window of k), the
  double division of modelscope/ms-swift PR 10116 (its DAPO/CISPO/FIPO losses, already over the
  window's tokens, divided by K again by the Trainer) and huggingface/transformers issue 40709. In
  5.25.0 it takes this
  setting (or an overridden ``compute_loss`` that normalizes by ``num_items_in_batch`` while
  declaring otherwise): with the attribute left at None (the default) a model that accepts loss
  kwargs is divided once, and ``average_tokens_across_devices`` (True by default) multiplies by
  the number of processes, 1 here.

Differential mode: the three runs (accumulated in float64, large batch in float64 and in float32;
``_shared.run_differential``) share one function and differ only in the micro-batches handed
to the Trainer and the dtype; each is a fresh ``Trainer.train()`` from the same initialization with
its own ``torch.optim.SGD`` (``_shared.differential_sgd``: lr 0.1, momentum 0.9, weight decay
1e-3: linear in the gradient, so the float32 run's deviation stays proportional to
its rounding; Adam divides by the gradient's own scale, and GPT-2's key biases, whose gradient is
exactly zero and computed as rounding noise — about 1e-21 in float64, 3e-12 in float32 — would
move by about 3e-4 lr in float32 and not at all in float64, a measured "noise" that loosens every
parameter's tolerance) and transformers' linear decay
(``get_linear_schedule_with_warmup``, the Trainer's default schedule); ``gradient_accumulation_steps`` is K for the
accumulated run and 1 for the large batches. The Trainer's clipping is off there by default
(``max_grad_norm=0``): the tiny GPT-2's gradient norm (about 3) is above the Trainer's default of
1, and a clipped gradient hides a bug that only rescales it.

Two things of the Trainer are changed, neither touching the numbers: nothing is printed (its
printer and progress callbacks are removed), and ``Accelerator.free_memory``, which ``train()``
calls first, skips its ``gc.collect()`` (about 0.25 s a call with torch and transformers loaded,
about ten times the training of a tiny differential run). Found on the way (transformers 5.25.0): the
Trainer's ``num_items_in_batch`` is a float32 tensor (``_get_num_items_in_batch`` divides the
int64 count by the tp*cp*sp size), exact below 2^24 counted tokens per window; and GPT-2's
``loss_type`` is None, so the Trainer over-counts its labels (``gacc.adapters.hf_models``).
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any, Callable

import torch
from torch import nn

from gacc import case as gacc_case
from gacc import training
from gacc import zoo
from gacc.adapters import _command_line, hf_models
from gacc.adapters import _shared as common

import transformers  # noqa: E402  (the stack under test; pinned in python/requirements-stacks.txt)
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402
from transformers.trainer_callback import PrinterCallback, ProgressCallback  # noqa: E402

#: The precisions this adapter trains (oracle mode's ``scenario["precision"]``).
SUPPORTED_PRECISIONS = ("fp32", "bf16")

#: Why fp16 is refused (see the module's docstring).
_FP16_REFUSED = ("on the CPU accelerate makes neither a GradScaler nor an autocast for fp16 (Accelerator only does "
                 "so off the CPU), so Trainer(fp16=True) would train in plain fp32 without loss scaling")

#: The broken configurations, selected with ``broken=NAME`` / ``--broken NAME``.
BROKEN = {
    common.NAIVE_MEAN: "Trainer.model_accepts_loss_kwargs = False: no num_items_in_batch, each micro-batch's own "
                       "mean divided by the window's micro-batch count (transformers issue 24725, PR 34191)",
    common.DIVIDED_TWICE: "Trainer.loss_is_scaled_for_ga = False on a model that normalizes by num_items_in_batch: "
                          "the loss divided by the window's micro-batch count once more (modelscope/ms-swift PR "
                          "10116: DAPO/CISPO/FIPO losses already over the window's tokens, divided by K again by "
                          "the Trainer; huggingface/transformers issue 40709)",
}


# --- The Trainer, watched ---------------------------------------------------------------------------


class _Observed(Trainer):
    """The Trainer, unchanged but for three calls it makes that are passed through and watched.

    ``windows[s][m]`` is the micro-batch gacc put at place m of window s. ``recorder`` is handed the
    loss ``training_step`` returns (what it back-propagated), the pre-clip norm the Trainer computed
    (``_get_grad_norm``) and, in ``on_pre_optimizer_step`` after ``before_step`` (the adapter's part
    of the user's code), the gradient the optimizer is about to step with.
    """

    def __init__(self, *args: Any, windows: list[list[dict[str, torch.Tensor]]], recorder: common.StepRecorder,
                 before_step: Callable[[], None], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._gacc_windows = windows
        self._gacc_recorder, self._gacc_before_step = recorder, before_step
        self._gacc_in_window = 0  # micro-batches trained in the current window
        for callback in (PrinterCallback, ProgressCallback):  # nothing printed
            self.remove_callback(callback)
        self.add_callback(_Hooks(self))
        self.accelerator.free_memory = _free_memory_without_collecting.__get__(self.accelerator)

    def training_step(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch=None) -> torch.Tensor:
        s, m = self.state.global_step, self._gacc_in_window
        expected = (self._gacc_windows[s][m]
                    if s < len(self._gacc_windows) and m < len(self._gacc_windows[s]) else None)
        if expected is None or not all(torch.equal(inputs[key], value) for key, value in expected.items()):
            raise RuntimeError(f"the Trainer's windows are not gacc's: its optimizer step {s} trains a micro-batch "
                               f"at place {m} that gacc did not put there")
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._gacc_in_window += 1
        # The Trainer back-propagates inside training_step and returns that loss: no hook on it needed.
        self._gacc_recorder.add_loss(float(loss))
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        grad_norm = super()._get_grad_norm(model, grad_norm)
        self._gacc_recorder.pre_clip_norm = float(grad_norm)
        return grad_norm

    def _gacc_pre_step(self) -> None:
        s = self.state.global_step
        if self._gacc_in_window != len(self._gacc_windows[s]):
            raise RuntimeError(f"the Trainer's windows are not gacc's: it steps the optimizer after "
                               f"{self._gacc_in_window} micro-batches where gacc's window {s} holds "
                               f"{len(self._gacc_windows[s])}")
        self._gacc_before_step()
        self._gacc_recorder.capture()

    def _gacc_post_step(self) -> None:
        self._gacc_recorder.window_end()  # the step is recorded by the optimizer's post-hook, unless skipped
        self._gacc_in_window = 0


def _free_memory_without_collecting(accelerator, *objects: Any) -> list:
    """accelerate's ``Accelerator.free_memory`` but for its ``gc.collect()``: ``train()`` calls it
    first thing, and with torch and transformers loaded one collection takes about 0.25 s — most of a
    differential run of a tiny model. The accelerator is fresh (nothing to release), so nothing else
    differs; the training numerics are untouched."""
    accelerator._schedulers, accelerator._optimizers, accelerator._models, accelerator._dataloaders = [], [], [], []
    accelerator.step = 0
    return [None] * len(objects)


class _Hooks(TrainerCallback):
    def __init__(self, trainer: _Observed):
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.trainer._gacc_pre_step()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.trainer._gacc_post_step()


class _DividedTwice(_Observed):
    """broken="divided_twice": the loss declared a per-micro-batch mean although the model
    normalized it by num_items_in_batch (the Trainer divides it by the micro-batch count again)."""

    loss_is_scaled_for_ga = False


def _trainer_arguments(output_dir: str, *, accumulation_steps: int, max_grad_norm: float, seed: int,
                       bf16: bool = False) -> TrainingArguments:
    """One epoch, one micro-batch per dataset item, in order, on the CPU; nothing logged, saved,
    evaluated or reported."""
    return TrainingArguments(
        output_dir=output_dir, per_device_train_batch_size=1, gradient_accumulation_steps=accumulation_steps,
        num_train_epochs=1, max_grad_norm=max_grad_norm, train_sampling_strategy="sequential",
        dataloader_num_workers=0, dataloader_pin_memory=False, remove_unused_columns=False,
        use_cpu=True, bf16=bf16, seed=seed, report_to="none", save_strategy="no", eval_strategy="no",
        logging_strategy="no", disable_tqdm=True, skip_memory_metrics=True)


def _unwrap(features: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The collator: each dataset item is already a whole micro-batch."""
    (item,) = features
    return item


def _train(model: nn.Module, windows: list[list[dict[str, torch.Tensor]]], *, recorded: nn.Module,
           optimizer: torch.optim.Optimizer, scheduler, accumulation_steps: int, max_grad_norm: float,
           clip_value: float | None = None, seed: int, bf16: bool, broken: str | None,
           differential: bool) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Trains ``model`` through ``windows`` with ``Trainer.train()``; returns the steps and counters,
    the steps of ``recorded`` (the network whose parameters gacc names). clip_value: clipping by
    value, between the Trainer's clipping and its optimizer step."""
    flat = [micro for window in windows for micro in window]
    recorder = common.StepRecorder(recorded, optimizer, differential=differential)
    params = list(recorded.parameters())

    def before_step() -> None:
        if clip_value is not None:
            torch.nn.utils.clip_grad_value_(params, clip_value)
        training.fill_missing_gradients(params)  # an expert no example reached still steps

    # The Trainer calls model.zero_grad(), not the optimizer's: before training, after each step.
    common.count_calls(model, "zero_grad", recorder.count_zero_grad)
    trainer_class = _DividedTwice if broken == common.DIVIDED_TWICE else _Observed
    try:
        with tempfile.TemporaryDirectory(prefix="gacc-trainer-") as output_dir, common.quiet("transformers"):
            trainer = trainer_class(
                model=model, args=_trainer_arguments(output_dir, accumulation_steps=accumulation_steps,
                                                     max_grad_norm=max_grad_norm, seed=seed, bf16=bf16),
                train_dataset=flat, data_collator=_unwrap, optimizers=(optimizer, scheduler),
                windows=windows, recorder=recorder, before_step=before_step)
            if not trainer.model_accepts_loss_kwargs:
                raise RuntimeError("the Trainer does not see a model that accepts loss kwargs")
            if broken == common.NAIVE_MEAN:
                trainer.model_accepts_loss_kwargs = False
            trainer.train()
    finally:
        del model.zero_grad
    return recorder.finish(scheduler)


def _check_windows(sizes: list[int], k: int) -> None:
    """Refuses windows one Trainer with gradient_accumulation_steps = k does not make: k micro-batches
    in each, the last 1..k."""
    if not (sizes and all(n == k for n in sizes[:-1]) and 1 <= sizes[-1] <= k):
        raise common.UnsupportedCase(f"windows of {sizes} micro-batches with K = {k}: one Trainer with "
                                     f"gradient_accumulation_steps={k} makes windows of K micro-batches, the last 1..K")


# --- Oracle mode: gacc's zoo model --------------------------------------------------------------------


class ZooForTrainer(nn.Module):
    """gacc's zoo model as a Trainer trains an HF model: ``forward(inputs, labels, **loss_kwargs)``
    returns ``{"loss": ..., "outputs": ...}``, the loss as a model that accepts loss kwargs computes
    it — summed and divided by ``num_items_in_batch`` when the Trainer passes it, the batch's own
    mean without it (an HF model's fallback), the sum for ``reduction: sum``."""

    def __init__(self, model: nn.Module, scenario: dict[str, Any]):
        super().__init__()
        self.model = model
        self.scenario = scenario

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, **loss_kwargs: Any) -> dict[str, torch.Tensor]:
        outputs = self.model(inputs)
        num_items_in_batch = loss_kwargs.get("num_items_in_batch")
        if self.scenario["loss"].get("reduction") == "sum":
            loss = zoo.summed_loss(self.scenario, outputs, labels)
        elif num_items_in_batch is None:
            loss = zoo.batch_loss(self.scenario, outputs, labels)
        else:
            loss = zoo.summed_loss(self.scenario, outputs, labels) / num_items_in_batch
        return {"loss": loss, "outputs": outputs}


def train_oracle(case: gacc_case.Case, broken: str | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Trains gacc's zoo model through the case with ``Trainer.train()``; returns the result's steps
    and counters (``gacc.case.save_result``'s arguments)."""
    common.check_broken(broken, BROKEN, "transformers")
    common.check_case(case, "transformers", SUPPORTED_PRECISIONS, why=_FP16_REFUSED)
    scenario = case.scenario
    k = int(scenario["accumulation_steps"])
    _check_windows([len(window[0]) for window in case.batches], k)
    model = zoo.build_model(scenario, case).train()
    params = [model.get_parameter(name) for name in case.parameter_names]
    optimizer = training.make_optimizer(scenario["optimizer"], params)
    scheduler = training.make_scheduler(scenario.get("schedule"), optimizer)
    if scheduler is None:
        scheduler = transformers.get_constant_schedule(optimizer)
    clipping = scenario.get("clipping") or {"kind": "none"}
    windows = [[{"inputs": micro["inputs"], "labels": micro["targets"]} for micro in window[0]]
               for window in case.batches]
    steps, counters = _train(ZooForTrainer(model, scenario), windows, recorded=model, optimizer=optimizer,
                             scheduler=scheduler, accumulation_steps=k,
                             max_grad_norm=float(clipping["max_norm"]) if clipping.get("kind") == "norm" else 0.0,
                             clip_value=clipping["clip_value"] if clipping.get("kind") == "value" else None,
                             seed=int(scenario["model"].get("init_seed", 0)), bf16=case.precision == "bf16",
                             broken=broken, differential=False)
    if len(steps) != len(case.batches):
        raise RuntimeError(f"the Trainer took {len(steps)} optimizer steps over {len(case.batches)} windows")
    return steps, counters


def oracle_stack(*, broken: str | None = None) -> Callable[[gacc_case.Case], tuple[list, dict]]:
    """``stack(case) -> (steps, counters)`` for ``gacc.check(stack, mode="oracle")``: gacc's zoo model
    trained by the Trainer (``broken``: a key of BROKEN, or None for the Trainer as configured
    correctly)."""
    common.check_broken(broken, BROKEN, "transformers")

    def stack(case: gacc_case.Case) -> tuple[list, dict]:
        return train_oracle(case, broken)

    return stack


# --- Differential mode: a tiny GPT-2 of its own ---------------------------------------------------------


def train_differential_run(model: nn.Module, windows: list[list[torch.Tensor]], accumulation_steps: int, *,
                           broken: str | None = None,
                           max_grad_norm: float = 0.0) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One run of a differential case: ``model`` (``hf_models.build_causal_lm``, in the run's dtype)
    trained by the Trainer over the micro-batches of example indices ``windows`` with
    ``gradient_accumulation_steps = accumulation_steps``; returns its steps and counters."""
    data = hf_models.dataset()
    batches = [[hf_models.batch(data, indices) for indices in window] for window in windows]
    optimizer = common.differential_sgd(model.parameters())
    # Not the other adapters' warm-up: the Trainer's own default schedule, a linear decay.
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, 0, len(windows))
    return _train(model.train(), batches, recorded=model, optimizer=optimizer, scheduler=scheduler,
                  accumulation_steps=accumulation_steps, max_grad_norm=max_grad_norm, seed=0, bf16=False,
                  broken=broken, differential=True)


def train_differential(case: gacc_case.DifferentialCase, broken: str | None = None, *,
                       max_grad_norm: float = 0.0) -> tuple[dict[str, list], dict[str, int]]:
    """The three runs of a differential case (``gacc.case.save_differential_result``'s arguments)."""
    common.check_broken(broken, BROKEN, "transformers")
    _check_windows([len(window) for window in case.windows], common.differential_accumulation_steps(case))

    def train(windows: list[list[torch.Tensor]], dtype: torch.dtype, accumulation_steps: int):
        return train_differential_run(hf_models.build_causal_lm(case.seed, dtype), windows, accumulation_steps,
                                      broken=broken, max_grad_norm=max_grad_norm)

    return common.run_differential(case, train, hf_models.DATASET_SIZE)


def differential_stack(*, broken: str | None = None,
                       max_grad_norm: float = 0.0) -> Callable[[gacc_case.DifferentialCase], tuple[dict, dict]]:
    """``stack(case) -> (runs, counters)`` for ``gacc.check(stack, mode="differential")``: the tiny
    GPT-2 of ``gacc.adapters.hf_models`` trained by the Trainer three times (``broken``: a key of
    BROKEN or None; ``max_grad_norm``: the Trainer's clipping, 0 = off)."""
    common.check_broken(broken, BROKEN, "transformers")

    def stack(case: gacc_case.DifferentialCase) -> tuple[dict, dict]:
        return train_differential(case, broken, max_grad_norm=max_grad_norm)

    return stack


def main(argv: list[str] | None = None) -> int:
    return _command_line.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
