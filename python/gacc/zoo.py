"""gacc's model zoo in PyTorch, and its losses.

Each model computes exactly what gacc's LibTorch twins compute (implementations/torch/zoo_model.cpp),
operation for operation: gacc's tolerances are derived error bounds for those formulas, and under
autocast each operation's precision depends on which operation it is. Parameters and buffers carry
the names of gacc's canonical layout (fixtures/fixtures.cpp), so a model's ``state_dict`` loads
straight from a case:

    model = build_model(case.scenario, case)
    loss = summed_loss(case.scenario, model(batch["inputs"]), batch["targets"])

One difference is LibTorch's, not Python's: for a 3-D input the C++ frontend's Linear is a matmul
followed by an in-place add of the fp32 bias, where Python's nn.Linear is aten::linear (one fused
product and bias, the bias cast along under autocast). In fp32 they agree bit for bit; under bf16 or
fp16 autocast causal_lm's head differs from the LibTorch twin in the last bits. nn.Linear computes
what gacc's oracle models (reference/models.hpp, dense_forward), so it is kept.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from gacc.case import Case

#: PyTorch's default ignore_index: a target that takes no part in the loss (padding, ignored tokens).
IGNORE_INDEX = -100

#: mlp_routed: the input feature that routes an example, and the number of experts.
ROUTING_FEATURE = 0
ROUTED_EXPERTS = 2


class LinearRegression(nn.Module):
    """y = W x + b."""

    def __init__(self, input_dim: int, output_dim: int):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class RMSNorm(nn.Module):
    """RMSNorm with a weight and no bias, written out as gacc's twin writes it.

    Not ``nn.RMSNorm``: its fused kernel rounds differently, and autocast treats it as another op.
    """

    def __init__(self, features: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(features))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * torch.rsqrt(z.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MLP(nn.Module):
    """fc1 -> [norm] -> activation -> fc2; the activation is GELU (exact, erf) for mlp_gelu, else tanh.

    norm: None (mlp_tanh, mlp_gelu), "layer_norm", "group_norm", "rms_norm" or "batch_norm"
    (BatchNorm1d in train mode, updating its running statistics).
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, *, activation: str = "tanh",
                 norm: str | None = None, norm_eps: float = 1e-5, groups: int = 1,
                 batch_norm_momentum: float = 0.1):
        super().__init__()
        self.activation = activation
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        if norm == "layer_norm":
            self.norm = nn.LayerNorm(hidden_dim, eps=norm_eps)
        elif norm == "group_norm":
            self.norm = nn.GroupNorm(groups, hidden_dim, eps=norm_eps)
        elif norm == "rms_norm":
            self.norm = RMSNorm(hidden_dim, norm_eps)
        elif norm == "batch_norm":
            self.norm = nn.BatchNorm1d(hidden_dim, eps=norm_eps, momentum=batch_norm_momentum)
        elif norm is None:
            self.norm = None
        else:
            raise ValueError(f"unknown norm {norm!r}")
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc1(x)
        if self.norm is not None:
            z = self.norm(z)
        a = F.gelu(z) if self.activation == "gelu" else torch.tanh(z)
        return self.fc2(a)


def routed_expert(routing_feature: float) -> int:
    """Hard top-1 routing: expert 0 when the feature is >= 0 (-0 included), else expert 1."""
    return 0 if routing_feature >= 0.0 else 1


class RoutedMLP(nn.Module):
    """y = expert_e(tanh(fc1(x))), e = routed_expert(x[ROUTING_FEATURE]): a tiny mixture of experts.

    Each expert sees only the rows routed to it; an expert no row of the batch reaches is not
    called, so its parameters take no part in the batch (their ``.grad`` stays None).
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        for e in range(ROUTED_EXPERTS):
            self.add_module(f"expert{e}", nn.Linear(hidden_dim, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc1(x))
        # The route depends on the data only, read on the host.
        routes = [routed_expert(f) for f in x.detach().select(1, ROUTING_FEATURE).double().tolist()]
        y = None
        for e in range(ROUTED_EXPERTS):
            rows = [i for i, route in enumerate(routes) if route == e]
            if not rows:
                continue
            index = torch.tensor(rows, dtype=torch.int64)
            part = self.get_submodule(f"expert{e}")(h.index_select(0, index))
            if y is None:
                y = torch.zeros(x.size(0), part.size(1), dtype=part.dtype, device=part.device)
            y = y.index_copy(0, index, part)
        return y


class CausalSelfAttention(nn.Module):
    """Single-head causal self-attention, projections without bias."""

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.output = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.size(1)
        q, k, v = self.query(x), self.key(x), self.value(x)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_model)
        future = torch.ones(length, length, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        return self.output(torch.matmul(torch.softmax(scores, -1), v))


class TinyCausalLM(nn.Module):
    """Embedding, causal attention with a residual, LayerNorm, output head: tokens -> logits."""

    def __init__(self, vocab_size: int, d_model: int, norm_eps: float = 1e-5):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.attention = CausalSelfAttention(d_model)
        self.norm = nn.LayerNorm(d_model, eps=norm_eps)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens)
        h = x + self.attention(x)
        return self.head(self.norm(h))


_MLP_NORMS = {
    "mlp_tanh": None,
    "mlp_gelu": None,
    "mlp_layer_norm": "layer_norm",
    "mlp_group_norm": "group_norm",
    "mlp_rms_norm": "rms_norm",
    "mlp_batch_norm": "batch_norm",
}


def make_model(model: dict[str, Any]) -> nn.Module:
    """The zoo model a scenario's ``model`` object describes, float32, with PyTorch's default init."""
    arch = model["arch"]
    eps = float(model.get("norm_eps", 1e-5))
    if arch == "linear":
        return LinearRegression(model["input_dim"], model["output_dim"])
    if arch in _MLP_NORMS:
        return MLP(model["input_dim"], model["hidden_dim"], model["output_dim"],
                   activation="gelu" if arch == "mlp_gelu" else "tanh", norm=_MLP_NORMS[arch], norm_eps=eps,
                   groups=int(model.get("groups", 1)),
                   batch_norm_momentum=float(model.get("batch_norm_momentum", 0.1)))
    if arch == "mlp_routed":
        return RoutedMLP(model["input_dim"], model["hidden_dim"], model["output_dim"])
    if arch == "causal_lm":
        return TinyCausalLM(model["vocab_size"], model["d_model"], eps)
    raise ValueError(f"unknown architecture {arch!r}")


def build_model(scenario: dict[str, Any], case: Case | None = None) -> nn.Module:
    """The scenario's model, loaded with the case's initial parameters and buffers (when given)."""
    model = make_model(scenario["model"])
    if case is not None:
        expected = set(case.parameter_names) | set(case.buffer_names)
        actual = set(model.state_dict())
        if expected != actual:
            raise ValueError(f"the case names {sorted(expected)} but the model has {sorted(actual)}")
        model.load_state_dict({**case.parameters, **case.buffers})
    return model


# --- Losses ---------------------------------------------------------------------------------------


def loss(scenario: dict[str, Any], outputs: torch.Tensor, targets: torch.Tensor,
         reduction: str) -> torch.Tensor:
    """The scenario's loss of one batch with a torch reduction ("sum" or "mean").

    mse: over every output element. cross_entropy: logits [batch, length, vocab] against next-token
    targets [batch, length]; targets equal to IGNORE_INDEX take no part ("mean" is then the mean
    over the batch's counted tokens: 0/0 for a batch without one).
    """
    kind = scenario["loss"]["kind"]
    if kind == "mse":
        return F.mse_loss(outputs, targets, reduction=reduction)
    if kind == "cross_entropy":
        return F.cross_entropy(outputs.reshape(-1, outputs.size(-1)), targets.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction=reduction)
    raise ValueError(f"unknown loss {kind!r}")


def summed_loss(scenario: dict[str, Any], outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The batch's loss SUMMED over its loss elements; a training loop divides it as its reduction
    calls for."""
    return loss(scenario, outputs, targets, "sum")


def batch_loss(scenario: dict[str, Any], outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The batch's loss with the scenario's reduction over this batch alone (mean or token mean over
    its own elements, or sum): what the large batch computes over the whole window."""
    reduction = "sum" if scenario["loss"].get("reduction") == "sum" else "mean"
    return loss(scenario, outputs, targets, reduction)


def loss_elements(scenario: dict[str, Any], targets: torch.Tensor) -> int:
    """The loss elements of a batch: MSE elements, or counted (not ignored) target tokens."""
    if scenario["loss"]["kind"] == "cross_entropy":
        return int((targets != IGNORE_INDEX).sum())
    return targets.numel()
