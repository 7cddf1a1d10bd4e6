"""What gacc's adapters share. All three (the Trainer's, Accelerate's, Lightning's): the refusal of a
case a stack cannot train here, the broken configurations' names, the observation of every
optimizer step (StepRecorder) and the counters, the stacks' logging silenced, the differential
task's optimizer and its three-run driver. Accelerate's and Lightning's: gacc's micro-batches as a
stack's data, the loss each configuration hands the stack and the differential task's model and
dataset (the Trainer's tiny GPT-2 is ``hf_models``). The command line is ``_command_line``.

Both stacks divide the loss they are handed by K (``accelerator.backward``; Lightning's automatic
optimization, by ``accumulate_grad_batches``), even on a partial last window. The loss a user must
hand them for uneven micro-batches is therefore the micro-batch's loss SUMMED over its elements,
times K, over the elements of the WHOLE window (Accelerate's guide "Gradient accumulation on
training samples of variable size": ``loss * gradient_accumulation_steps / num_items_in_batch``);
the stack's division by K then leaves the micro-batch's share of the window's mean, however the
window is cut. The data carries each micro-batch's window element count (``"window_elements"``), as
``num_items_in_batch`` is counted over a window before it is trained.

Nothing here steps, clips, scales or schedules: that is each stack's own code. The observation is
torch's own hooks — an optimizer's step pre-/post-hooks, a hook on each loss tensor (which receives
d(what the stack back-propagated)/d(loss): 1/K, times the loss scale under GradScaler) — and the
stacks' own callbacks.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from gacc import case as gacc_case
from gacc import training
from gacc import zoo

#: The configurations every adapter offers besides the correct one (the names its ``broken`` takes).
#: Each adapter's BROKEN describes them for its stack; an adapter may add its own.
NAIVE_MEAN = "naive_mean"
DIVIDED_TWICE = "divided_twice"


class UnsupportedCase(ValueError):
    """A case the adapter's stack cannot train as asked (a precision it lacks on the CPU, several ranks)."""


def check_case(case: gacc_case.Case, stack: str, supported_precisions: tuple[str, ...], why: str = "") -> None:
    """Refuses a case the stack cannot train here, with what to do instead (``why``: why the stack
    lacks the other precisions, said after the refusal)."""
    if case.world_size != 1:
        raise UnsupportedCase(f"the {stack} adapter trains one process on the CPU; this case has world_size "
                              f"{case.world_size} (run gacc without --ranks, or with --ranks 1)")
    if case.precision not in supported_precisions:
        raise UnsupportedCase(f"the {stack} adapter supports precisions {', '.join(supported_precisions)} on the CPU; "
                              f"this case is {case.precision} (check with precision= one of those)"
                              + (f": {why}" if why else ""))


def check_broken(broken: str | None, known: dict[str, str], stack: str) -> None:
    if broken is not None and broken not in known:
        raise ValueError(f"unknown broken configuration {broken!r} for {stack}; known: {', '.join(sorted(known))}")


# --- Data ---------------------------------------------------------------------------------------


def micro_batches(case: gacc_case.Case) -> list[dict[str, Any]]:
    """gacc's micro-batches in training order, each carrying its window's loss-element count.

    ``{"inputs", "targets", "window_elements"}``: the window's MSE elements or counted target tokens
    (what a user counts as ``num_items_in_batch`` over a window before training it).
    """
    scenario = case.scenario
    data = []
    for window in case.batches:
        batches = window[0]  # one rank: all of them
        elements = training.window_elements(scenario, batches)
        data.extend({"inputs": batch["inputs"], "targets": batch["targets"], "window_elements": elements}
                    for batch in batches)
    return data


def window_normalizer(scenario: dict[str, Any], window_elements: int) -> int:
    """What the window's summed loss is divided by: its elements for a mean, 1 for a sum."""
    return 1 if scenario["loss"].get("reduction") == "sum" else window_elements


def stack_loss(broken: str | None, *, summed: torch.Tensor, own_reduction: torch.Tensor, normalizer: float,
               divisor: int) -> torch.Tensor:
    """The loss a micro-batch hands a stack that divides it by ``divisor`` (K) before backward.

    summed: the micro-batch's loss summed over its elements. own_reduction: the loss reduced over
    this micro-batch alone, as ``criterion(outputs, targets)`` gives it (its own mean, or its sum).
    normalizer: the window's element count (1 for a summed loss).

    - correct (``broken=None``): ``summed * K / normalizer`` — the stack's division by K leaves
      ``summed / normalizer``, the micro-batch's share of the window's loss;
    - ``naive_mean``: ``own_reduction``, what the stacks' tutorials write; the stack divides it by
      K: the mean of the micro-batches' means (for a summed loss, the window's sum over K);
    - ``divided_twice``: ``summed / normalizer``, already the window's share as plain PyTorch
      back-propagates it (examples/python/train_accumulate.py), which the stack divides by K again.
    """
    if broken is None:
        return summed * divisor / normalizer
    if broken == NAIVE_MEAN:
        return own_reduction
    if broken == DIVIDED_TWICE:
        return summed / normalizer
    raise ValueError(f"unknown broken configuration {broken!r}")


# --- Observation ----------------------------------------------------------------------------------


class StepRecorder:
    """Records every optimizer step a stack takes, from torch's hooks, as gacc's result wants it.

    ``capture()`` takes the gradient the optimizer is about to be handed (after unscaling and
    clipping), the learning rate and the loss scale; the optimizer's step post-hook
    (``register_step_post_hook``) then records the step. With ``capture_before_step``, ``capture()``
    runs from the optimizer's step pre-hook (a stack that clips before calling ``optimizer.step()``:
    Accelerate); otherwise the adapter calls it (Lightning clips inside the closure that
    ``optimizer.step(closure)`` runs, after the pre-hook). ``window_end()``, where a stack's window
    is over, records a captured gradient the optimizer never stepped with as a step GradScaler
    skipped.

    ``observe_loss(loss)`` on every loss the stack back-propagates adds the micro-batch's share of
    the window's loss: ``loss * d(back-propagated)/d(loss) / loss scale``, the derivative read by a
    hook on the loss tensor, so that the stack's own division by K is what is recorded. A stack that
    hands back what it back-propagated (the Trainer's ``training_step``) gives it to ``add_loss``.
    loss_scale: the GradScaler's current scale, if the stack has one.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, differential: bool = False,
                 capture_before_step: bool = False, loss_scale: Callable[[], float] | None = None):
        self.model = model
        self.optimizer = optimizer
        self.differential = differential
        self.steps: list[dict[str, Any]] = []
        self.counters = dict.fromkeys(gacc_case.COUNTER_NAMES, 0)
        self.pre_clip_norm: float | None = None
        self._loss_scale = loss_scale or (lambda: 1.0)  # the GradScaler's scale now (1 without one)
        self._window_loss = 0.0
        self._captured: tuple[dict[str, torch.Tensor], float, float, float] | None = None
        if capture_before_step:
            optimizer.register_step_pre_hook(lambda *_: self.capture())
        optimizer.register_step_post_hook(lambda *_: self._record(skipped=False))

    def observe_loss(self, loss: torch.Tensor) -> None:
        """Adds this micro-batch's loss, as the stack back-propagates it, to the window's loss."""
        value = loss.detach().double().item()

        def add(grad: torch.Tensor) -> None:
            self._window_loss += value * grad.double().item() / self._loss_scale()

        if loss.requires_grad:
            loss.register_hook(add)
        self.counters["micro_batches"] += 1

    def add_loss(self, value: float) -> None:
        """Adds this micro-batch's loss as the stack back-propagated it (unscaled) to the window's loss."""
        self._window_loss += value
        self.counters["micro_batches"] += 1

    def count_zero_grad(self) -> None:
        self.counters["zero_grads"] += 1

    def capture(self) -> None:
        """The gradient the optimizer is handed now, its norm before clipping, the learning rate and
        the loss scale in force during the window."""
        if self.differential:
            grad = {name: p.grad.detach().clone() for name, p in self.model.named_parameters()}
        else:
            grad = gacc_case.gradients(self.model)
        norm = self.pre_clip_norm
        if norm is None:  # nothing clipped: the norm of what the optimizer is handed
            norm = training.gradient_norm(list(self.model.parameters()))
        self._captured = (grad, norm, float(self.optimizer.param_groups[0]["lr"]), float(self._loss_scale()))
        self.pre_clip_norm = None

    def window_end(self) -> None:
        """Where a stack's window is over (after its optimizer step, taken or not): a captured
        gradient the optimizer never stepped with was a step GradScaler skipped."""
        if self._captured is not None:
            self._record(skipped=True)

    def _record(self, *, skipped: bool) -> None:
        if self._captured is None:
            raise RuntimeError("the optimizer stepped without its gradient captured")
        grad, norm, lr, loss_scale = self._captured
        if self.differential:
            self.steps.append(gacc_case.differential_step(self.model, loss=self._window_loss, grad=grad))
        else:
            self.steps.append(gacc_case.record_step(self.model, self.optimizer, grad=grad, pre_clip_norm=norm,
                                                    loss=self._window_loss, lr=lr, loss_scale=loss_scale,
                                                    skipped=skipped))
        self.counters["optimizer_steps"] += not skipped
        self._window_loss = 0.0
        self._captured = None

    def finish(self, scheduler: Any | None) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The steps and counters; scheduler_steps from the scheduler's own count (its last_epoch)."""
        self.window_end()
        if scheduler is not None:
            self.counters["scheduler_steps"] = int(scheduler.last_epoch)
        return self.steps, self.counters


def count_calls(obj: Any, method: str, counter: Callable[[], None]) -> None:
    """Counts the calls of ``obj.method`` (an instance attribute wrapping the bound method, same
    signature: Accelerate inspects ``zero_grad``'s)."""
    import functools

    original = getattr(obj, method)

    @functools.wraps(original)
    def counted(*args: Any, **kwargs: Any) -> Any:
        counter()
        return original(*args, **kwargs)

    setattr(obj, method, counted)


@contextlib.contextmanager
def quiet(*loggers: str):
    """The stack's info messages and warnings silenced for the duration (restored after)."""
    levels = {}
    for name in loggers:
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


# --- Differential mode: the adapters' own task ------------------------------------------------------

#: The task: DATASET_SIZE token sequences of 2..LENGTH tokens (right-padded with token 0), next-token
#: targets with IGNORE_INDEX on padding, the last token and about a fifth of the rest; every sequence
#: keeps at least one counted target.
DATASET_SIZE = 64
LENGTH = 6
VOCAB = 11
WIDTH = 8
DATASET_SEED = 20250617


class TinyTokenModel(nn.Module):
    """Embedding, a causal prefix mean, a tanh layer and a head: tokens [B, L] -> logits [B, L, V].

    No dropout, no normalization across examples: every run computes the same function.
    """

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, WIDTH)
        self.mix = nn.Linear(WIDTH, WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens)
        positions = torch.arange(1, tokens.size(1) + 1, dtype=x.dtype).view(1, -1, 1)
        context = x.cumsum(1) / positions  # what each position has seen so far
        return self.head(torch.tanh(self.mix(x + context)))


def token_dataset() -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed dataset: int64 tokens and targets [DATASET_SIZE, LENGTH] (the same in every dtype)."""
    generator = torch.Generator().manual_seed(DATASET_SEED)
    tokens = torch.randint(1, VOCAB, (DATASET_SIZE, LENGTH), generator=generator)
    lengths = torch.randint(2, LENGTH + 1, (DATASET_SIZE,), generator=generator)
    real = torch.arange(LENGTH).view(1, -1) < lengths.view(-1, 1)
    tokens = tokens.masked_fill(~real, 0)
    targets = torch.full_like(tokens, zoo.IGNORE_INDEX)
    targets[:, :-1] = tokens[:, 1:].masked_fill(~real[:, 1:], zoo.IGNORE_INDEX)
    dropped = (torch.rand(targets.shape, generator=generator) < 0.2) & (torch.arange(LENGTH).view(1, -1) > 0)
    return tokens, targets.masked_fill(dropped, zoo.IGNORE_INDEX)  # position 0 always counts


def build_token_model(seed: int) -> TinyTokenModel:
    """The initialization, drawn in float32 from the case's seed: the same in every run."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = TinyTokenModel()
    torch.random.set_rng_state(generator_state)
    return model


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed, own token mean) of a micro-batch's next-token cross entropy."""
    flat_logits, flat_targets = logits.reshape(-1, logits.size(-1)), targets.reshape(-1)
    summed = F.cross_entropy(flat_logits, flat_targets, ignore_index=zoo.IGNORE_INDEX, reduction="sum")
    mean = F.cross_entropy(flat_logits, flat_targets, ignore_index=zoo.IGNORE_INDEX, reduction="mean")
    return summed, mean


def differential_batches(windows: list[list[torch.Tensor]]) -> list[dict[str, Any]]:
    """The dataset's micro-batches for the given windows: example i is row i mod DATASET_SIZE."""
    tokens, targets = token_dataset()
    data = []
    for window in windows:
        rows = [indices % DATASET_SIZE for indices in window]
        elements = sum(int((targets[r] != zoo.IGNORE_INDEX).sum()) for r in rows)
        data.extend({"inputs": tokens[r], "targets": targets[r], "window_elements": elements} for r in rows)
    return data


def check_differential_case(case: gacc_case.DifferentialCase, dataset_size: int = DATASET_SIZE) -> None:
    if case.global_batch > dataset_size:
        raise UnsupportedCase(f"windows of {case.global_batch} examples, but the adapter's dataset holds "
                              f"{dataset_size}")


#: The differential task's optimizer and schedule, the same for every run.
DIFFERENTIAL_LR = 0.1
DIFFERENTIAL_MAX_NORM = 1.0


def differential_sgd(params: Any) -> torch.optim.SGD:
    """SGD with momentum and weight decay: linear in the gradient, so that a float32 run's deviation
    stays proportional to its rounding (Adam would divide by the gradient's own scale)."""
    return torch.optim.SGD(params, lr=DIFFERENTIAL_LR, momentum=0.9, weight_decay=1e-3)


def differential_optimizer(params: Any) -> tuple[torch.optim.Optimizer, Any]:
    """``differential_sgd``, and a linear warm-up stepped once per optimizer step."""
    optimizer = differential_sgd(params)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.5, end_factor=1.0, total_iters=3)
    return optimizer, scheduler


#: ``train(windows, dtype, K) -> (steps, counters)``: one run of a stack over the differential task.
DifferentialRun = Callable[[list[list[torch.Tensor]], torch.dtype, int], tuple[list[dict[str, Any]], dict[str, int]]]


def differential_accumulation_steps(case: gacc_case.DifferentialCase) -> int:
    """K: the case's, or for a case made without it (``accumulation_steps=0``) its longest window's
    micro-batches."""
    return case.accumulation_steps or max(len(window) for window in case.windows)


def run_differential(case: gacc_case.DifferentialCase, train: DifferentialRun, dataset_size: int = DATASET_SIZE):
    """The three runs of a differential result through one stack's ``train``: accumulated (gacc's
    micro-batches, float64, K), large_batch (each window one micro-batch, float64, K = 1) and
    large_batch_fp32 (float32, K = 1). dataset_size: the examples of the stack's dataset."""
    check_differential_case(case, dataset_size)
    large_batches = [[torch.cat(window)] for window in case.windows]
    accumulated, counters = train(case.windows, torch.float64, differential_accumulation_steps(case))
    large_batch, _ = train(large_batches, torch.float64, 1)
    large_batch_fp32, _ = train(large_batches, torch.float32, 1)
    return {"accumulated": accumulated, "large_batch": large_batch, "large_batch_fp32": large_batch_fp32}, counters

