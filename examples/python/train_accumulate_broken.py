#!/usr/bin/env python3
"""train_accumulate.py with one classic bug, for gacc to catch.

    python train_accumulate_broken.py CASE RESULT

The loop is train_accumulate's, unchanged but for how each micro-batch's loss is normalised: here
each micro-batch takes the mean over its OWN elements (its own token mean), divided by the number of
micro-batches in the window — a mean of means. With uneven micro-batches (different sequence
lengths, ignored targets, a partial last window) an element of a small micro-batch weighs more than
one of a large micro-batch, and a micro-batch without a counted token makes the loss 0/0. This is
huggingface/transformers issue 24725, fixed in PR 34191.

`gacc check-external` flags it: gradient-equivalence (and the token-normalization property on
token-mean losses) fail.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch

try:
    import gacc  # noqa: F401  (pip install ./python, or make's .venv)
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

from gacc import zoo as gacc_zoo  # noqa: E402
import train_accumulate


def mean_of_means_loss(scenario: dict[str, Any], outputs: torch.Tensor, targets: torch.Tensor,
                       window_elements: int, micro_batches: int) -> torch.Tensor:
    # Broken! The micro-batch's own mean (token mean) divided by the number of micro-batches,
    # instead of its summed loss divided by the window's loss elements.
    # huggingface/transformers issue 24725, PR 34191.
    if scenario["loss"]["reduction"] == "sum":
        return gacc_zoo.summed_loss(scenario, outputs, targets)
    return gacc_zoo.batch_loss(scenario, outputs, targets) / micro_batches


train_accumulate.micro_batch_loss = mean_of_means_loss

if __name__ == "__main__":
    sys.exit(train_accumulate.main(sys.argv))
