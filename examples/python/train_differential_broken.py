#!/usr/bin/env python3
"""train_differential.py with the mean-of-means bug, for gacc's differential mode to catch.

    python train_differential_broken.py CASE RESULT

The loop is train_differential's, unchanged but for how each micro-batch's loss is normalised: its
own mean, divided by the number of micro-batches in the window. With uneven micro-batches (or a
partial last window) an example of a small micro-batch weighs more than one of a large micro-batch;
the large-batch runs hold one micro-batch per window, where the bug does nothing, so accumulated and
large_batch part. huggingface/transformers issue 24725, fixed in PR 34191.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

import train_differential


def mean_of_means_loss(outputs: torch.Tensor, targets: torch.Tensor, window_examples: int,
                       micro_batches: int) -> torch.Tensor:
    # Broken! The micro-batch's own mean divided by the number of micro-batches, instead of its
    # summed loss divided by the window's elements. huggingface/transformers issue 24725.
    return nn.functional.mse_loss(outputs, targets) / micro_batches


train_differential.micro_batch_loss = mean_of_means_loss

if __name__ == "__main__":
    sys.exit(train_differential.main(sys.argv))
