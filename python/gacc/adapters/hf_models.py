"""A tiny Hugging Face causal language model that stays float64, and its synthetic token dataset.

Differential mode (docs/external-stacks.md, "Differential mode") runs a stack's own model twice in float64 and once in
float32 and measures the float32 rounding against the float64 runs, so the float64 runs must compute
in float64 THROUGHOUT. Most Hugging Face decoders do not, whatever dtype their weights have:

- Llama-style models: ``LlamaRMSNorm`` computes in float32 (``hidden_states.to(torch.float32)``), the
  rotary embedding builds cos/sin in float32, eager attention takes its softmax with
  ``dtype=torch.float32``;
- every causal LM: the loss, ``transformers.loss.loss_utils.ForCausalLMLoss``, starts with
  ``logits = logits.float()`` — float64 logits become float32 before the cross-entropy.

What is used here: GPT-2 (``GPT2LMHeadModel`` from a ``GPT2Config``, no download) with
``attn_implementation="eager"``. Its LayerNorm, learned position embeddings, Conv1D projections,
tanh-GELU and eager attention (softmax in the input's dtype; ``reorder_and_upcast_attn`` left off)
keep the input's dtype, so only the loss casts. That one cast is patched: the model's
``loss_function`` (``PreTrainedModel.loss_function`` has a setter) is set to
:func:`causal_lm_loss`, ForCausalLMLoss with the upcast kept for bf16/fp16 but not applied to
float64 (``logits.float()`` becomes "at least float32"). Nothing else of the model or of the
Trainer is changed. :class:`Float64Audit` checks it: it records every floating-point tensor any
ATen operation produces, forward and backward, so a test can assert that a float64 run made no
float32 value anywhere.

One more setting, for the Hugging Face Trainer's token count: transformers 5.25.0 derives a model's
``loss_type`` from its class name, and "GPT2LMHeadModel" contains no key of ``LOSS_MAPPING`` (no
"ForCausalLM"), so GPT-2's ``loss_type`` is None. Its loss is still ForCausalLMLoss (the fallback of
``PreTrainedModel.loss_function``), which shifts the labels, but the Trainer decides whether to count
``num_items_in_batch`` over the shifted labels from ``LOSS_MAPPING.get(loss_type) is
ForCausalLMLoss`` (``Trainer._loss_shifts_labels`` in 5.25.0): for GPT-2 it is False, the
Trainer counts every label including each row's first (never a prediction target), and the loss is
the summed cross-entropy over (tokens + rows) instead of the token mean — a one-token-target row's
loss is halved. The same in the accumulated and the large-batch run, so no accumulation bug and
invisible to differential mode, but a wrong loss; :func:`build_causal_lm` sets ``loss_type =
"ForCausalLM"`` so that the Trainer counts what the loss divides.

The dataset: DATASET_SIZE sequences of lengths 2..SEQUENCE_LENGTH drawn from a fixed seed, right-
padded to SEQUENCE_LENGTH with token PAD (attention mask 0, label -100), so micro-batches of the
same number of examples hold different numbers of counted tokens. Example i of a gacc case is
example ``i % DATASET_SIZE``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from gacc.adapters import _shared as common

#: The tiny model: vocabulary, width, layers, heads, positions.
VOCAB_SIZE = 64
HIDDEN_SIZE = 16
LAYERS = 2
HEADS = 2
SEQUENCE_LENGTH = 8

#: The synthetic dataset: DATASET_SIZE right-padded sequences, drawn once from DATASET_SEED.
DATASET_SIZE = 64
DATASET_SEED = 20261204
PAD = 0
IGNORE_INDEX = -100


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, vocab_size: int,
                   num_items_in_batch: torch.Tensor | int | None = None, ignore_index: int = IGNORE_INDEX,
                   shift_labels: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
    """transformers' ForCausalLMLoss (transformers 5.25.0, loss/loss_utils.py) with one change: the
    logits are upcast to float32 when they are narrower (bf16, fp16), as there, but float64 logits
    stay float64 (ForCausalLMLoss's ``logits.float()`` would round them to float32).

    Labels are shifted inside (position t predicts label t + 1); with ``num_items_in_batch`` the
    summed cross-entropy is divided by it (the Trainer's count of the window's labels), without it
    the batch's own token mean is taken — exactly ForCausalLMLoss's fixed_cross_entropy.
    """
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if shift_labels is None:
        labels = nn.functional.pad(labels, (0, 1), value=ignore_index)
        shift_labels = labels[..., 1:].contiguous()
    logits = logits.view(-1, vocab_size)
    shift_labels = shift_labels.view(-1).to(logits.device)
    reduction = "sum" if num_items_in_batch is not None else "mean"
    loss = nn.functional.cross_entropy(logits, shift_labels, ignore_index=ignore_index, reduction=reduction)
    if reduction == "sum":
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        loss = loss / num_items_in_batch
    return loss


def build_causal_lm(seed: int, dtype: torch.dtype) -> nn.Module:
    """The tiny GPT-2, initialized from ``seed`` in float32 (the same weights for every dtype), cast to
    ``dtype``, eager attention, no dropout (every run must compute the same function), and its loss
    kept in the model's dtype (:func:`causal_lm_loss`)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=VOCAB_SIZE, n_positions=SEQUENCE_LENGTH, n_embd=HIDDEN_SIZE, n_layer=LAYERS,
                        n_head=HEADS, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="eager",
                        bos_token_id=PAD, eos_token_id=PAD, pad_token_id=PAD, use_cache=False)
    with common.quiet("transformers"):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    model.loss_function = causal_lm_loss  # the one float32 cast of GPT-2, removed for float64
    # transformers 5.25.0 sets loss_type from the class name; "GPT2LMHeadModel" matches no key of
    # LOSS_MAPPING, so loss_type is None, the Trainer's _loss_shifts_labels is False and it counts
    # num_items_in_batch over the unshifted labels (the module docstring): say what the loss is.
    model.loss_type = "ForCausalLM"
    return model.to(dtype)


def dataset() -> dict[str, torch.Tensor]:
    """The fixed synthetic dataset: ``input_ids``, ``attention_mask``, ``labels``, each
    ``[DATASET_SIZE, SEQUENCE_LENGTH]`` int64, right-padded (label -100 past each sequence's end)."""
    generator = torch.Generator().manual_seed(DATASET_SEED)
    lengths = torch.randint(2, SEQUENCE_LENGTH + 1, (DATASET_SIZE,), generator=generator)
    tokens = torch.randint(1, VOCAB_SIZE, (DATASET_SIZE, SEQUENCE_LENGTH), generator=generator)
    # A little structure to learn: every other token repeats its predecessor plus one.
    tokens[:, 1::2] = (tokens[:, 0::2] % (VOCAB_SIZE - 1)) + 1
    positions = torch.arange(SEQUENCE_LENGTH).expand(DATASET_SIZE, -1)
    real = positions < lengths.unsqueeze(1)
    input_ids = torch.where(real, tokens, torch.full_like(tokens, PAD))
    return {"input_ids": input_ids, "attention_mask": real.long(),
            "labels": torch.where(real, tokens, torch.full_like(tokens, IGNORE_INDEX))}


def batch(data: dict[str, torch.Tensor], indices: torch.Tensor) -> dict[str, torch.Tensor]:
    """The examples ``indices`` (gacc's example numbers, taken modulo DATASET_SIZE) as one batch."""
    rows = indices % DATASET_SIZE
    return {key: value[rows] for key, value in data.items()}


class Float64Audit(TorchDispatchMode):
    """Records the dtype of every floating-point tensor an ATen operation produces while active
    (forward, loss and backward alike). ``narrower`` lists the operations that produced a floating
    tensor other than float64 — empty for a computation that is float64 throughout."""

    def __init__(self) -> None:
        super().__init__()
        self.narrower: list[tuple[str, torch.dtype]] = []
        self.float64_outputs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                if value.dtype == torch.float64:
                    self.float64_outputs += 1
                else:
                    self.narrower.append((str(func), value.dtype))
        return out
