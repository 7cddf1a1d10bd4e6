#!/usr/bin/env python3
"""Gradient accumulation on a model gacc does not know, checked in differential mode.

    python train_differential.py CASE RESULT

gacc's zoo holds the models its oracle knows; this one is not among them: a tiny 1-D convolutional
net with a residual block (no dropout: the three runs below must compute the same function),
trained on its own synthetic dataset of fixed size. gacc hands it only the splits — which examples
form each micro-batch of each window — and the script trains three times from the same
initialization, with ONE loop function:

    accumulated       the micro-batches as given, float64
    large_batch       each window as one micro-batch, float64
    large_batch_fp32  the same large batch in float32 (gacc measures the rounding noise with it)

gacc then judges accumulated against large_batch, with tolerances derived from the measured noise:

    gacc check-external --mode differential --cmd "python examples/python/train_differential.py {case} {result}"

Per window: each micro-batch's squared error, summed over its own elements, is divided by the
elements of the WHOLE window and back-propagated; then one SGD step (momentum, weight decay) and one
zero_grad.
"""

from __future__ import annotations

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

#: The dataset: DATASET_SIZE signals of SIGNAL_LENGTH samples, two regression targets each.
DATASET_SIZE = 48
SIGNAL_LENGTH = 8
DATASET_SEED = 20240611


class TinyConvNet(nn.Module):
    """Conv1d -> tanh -> linear -> a residual tanh block -> a linear head of two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 3, kernel_size=3, padding=1)
        self.proj = nn.Linear(3 * SIGNAL_LENGTH, 6)
        self.block = nn.Linear(6, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.proj(torch.tanh(self.conv(x)).flatten(1)))
        h = h + torch.tanh(self.block(h))  # the residual connection
        return self.head(h)


def dataset(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed synthetic dataset (drawn in float32, so every dtype holds the same values)."""
    generator = torch.Generator().manual_seed(DATASET_SEED)
    inputs = torch.randn(DATASET_SIZE, 1, SIGNAL_LENGTH, generator=generator)
    smooth = inputs.cumsum(-1).squeeze(1) / SIGNAL_LENGTH
    targets = torch.stack([smooth[:, -1], inputs.abs().amax(-1).squeeze(1)], dim=1)
    targets = targets + 0.1 * torch.randn(targets.shape, generator=generator)
    return inputs.to(dtype), targets.to(dtype)


def build_model(seed: int, dtype: torch.dtype) -> TinyConvNet:
    """The model's initialization, drawn in float32 from the case's seed: the same in every run."""
    torch.manual_seed(seed)
    return TinyConvNet().to(dtype)


def micro_batch_loss(outputs: torch.Tensor, targets: torch.Tensor, window_examples: int,
                     micro_batches: int) -> torch.Tensor:
    """The loss to back-propagate for one micro-batch of a window of `micro_batches`.

    Its squared error summed over its own elements, divided by the elements of the whole window, so
    that the window's backward passes add up to the large batch's mean however the window is cut.
    """
    return nn.functional.mse_loss(outputs, targets, reduction="sum") / (window_examples * targets.shape[1])


def train(seed: int, windows: list[list[torch.Tensor]], dtype: torch.dtype) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The training loop: for each window, its micro-batches accumulated, then one optimizer step."""
    model = build_model(seed, dtype)
    inputs, targets = dataset(dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    counters = {"micro_batches": 0, "optimizer_steps": 0, "zero_grads": 0}
    steps = []
    for window in windows:
        window_examples = sum(len(indices) for indices in window)
        window_loss = torch.zeros((), dtype=dtype)
        for indices in window:
            rows = indices % DATASET_SIZE  # example i of the case is example i mod 48 here
            loss = micro_batch_loss(model(inputs[rows]), targets[rows], window_examples, len(window))
            loss.backward()
            window_loss += loss.detach()
            counters["micro_batches"] += 1
        grad = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
        optimizer.step()
        counters["optimizer_steps"] += 1
        steps.append(gacc_case.differential_step(model, loss=window_loss.item(), grad=grad))
        optimizer.zero_grad()
        counters["zero_grads"] += 1
    return steps, counters


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} CASE RESULT", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    try:
        case = gacc_case.load_differential_case(argv[1])
    except (OSError, gacc_case.CaseError) as error:
        print(f"{argv[0]}: {error}", file=sys.stderr)
        return 2
    if case.global_batch > DATASET_SIZE:
        print(f"{argv[0]}: windows of {case.global_batch} examples, but the dataset holds {DATASET_SIZE}",
              file=sys.stderr)
        return 2
    large_batches = [[torch.cat(window)] for window in case.windows]  # each window as one micro-batch
    accumulated, counters = train(case.seed, case.windows, torch.float64)
    large_batch, _ = train(case.seed, large_batches, torch.float64)
    large_batch_fp32, _ = train(case.seed, large_batches, torch.float32)
    gacc_case.save_differential_result(argv[2], {"accumulated": accumulated, "large_batch": large_batch,
                                                 "large_batch_fp32": large_batch_fp32}, counters)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
