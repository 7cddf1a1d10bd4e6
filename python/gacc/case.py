"""Read gacc's case files and write its result files (format version 1).

gacc hands a training stack a *case*: one scenario (model, data cut into windows and micro-batches,
loss, optimizer, schedule, clipping, precision), the model's initial weights and every micro-batch.
The stack trains through it and writes a *result*: what it did at every optimizer step. gacc then
judges the result against large-batch training. Both are plain dictionaries that ``torch.load`` and
``torch.save`` read and write; the contract is docs/external-stacks.md.

    case = load_case("case.pt")
    ...                                   # train, calling record_step() after each optimizer step
    save_result("result.pt", steps, counters)
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import torch
import torch.jit._pickle
from torch import nn

CASE_FORMAT = "gacc-case"
RESULT_FORMAT = "gacc-result"
VERSION = 1

#: PyTorch's names of the per-parameter optimizer state gacc judges (SGD; Adam and AdamW).
OPTIMIZER_STATE_NAMES = ("momentum_buffer", "step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")

#: The counters every result carries.
COUNTER_NAMES = ("micro_batches", "optimizer_steps", "zero_grads", "scheduler_steps")


#: Functions LibTorch's pickler names in what it writes; each only rebuilds a plain value.
_LIBTORCH_PICKLE_HELPERS = [torch.jit._pickle.restore_type_tag, torch.jit._pickle.build_intlist,
                            torch.jit._pickle.build_doublelist, torch.jit._pickle.build_boollist,
                            torch.jit._pickle.build_tensorlist]


class CaseError(ValueError):
    """A case or result file that does not follow the format; the message names the key."""


@dataclass
class Case:
    """One gacc case, loaded.

    ``batches[s][r][m]`` is micro-batch ``m`` of rank ``r`` in the window of optimizer step ``s``, a
    dict with ``"inputs"`` and ``"targets"``: float32 ``[examples, input_dim]`` and
    ``[examples, output_dim]`` for the regressors; int64 tokens and next-token targets
    ``[examples, length]`` for ``causal_lm``, right-padded with token 0 and target -100.
    """

    scenario: dict[str, Any]  #: the scenario, parsed from its JSON text
    parameter_names: list[str]  #: canonical order, the names of the model's state_dict
    parameters: dict[str, torch.Tensor]  #: initial weights, float32
    buffer_names: list[str]  #: e.g. BatchNorm's running statistics; empty for most models
    buffers: dict[str, torch.Tensor]  #: initial buffers, float32
    batches: list[list[list[dict[str, torch.Tensor]]]]

    @property
    def precision(self) -> str:
        """"fp32", "bf16" or "fp16"."""
        return self.scenario.get("precision", "fp32")

    @property
    def world_size(self) -> int:
        """The number of data-parallel ranks the case is cut for."""
        return int(self.scenario.get("world_size", 1))


def _require(condition: bool, where: str, what: str) -> None:
    if not condition:
        raise CaseError(f"{where}: {what}")


def _check_header(data: Any, where: str, expected_format: str) -> None:
    _require(isinstance(data, dict), where, f"not a dictionary but {type(data).__name__}")
    _require("format" in data, where, 'no key "format"')
    _require(data["format"] == expected_format, f"{where}.format",
             f"{data['format']!r}, expected {expected_format!r}")
    _require("version" in data, where, 'no key "version"')
    _require(data["version"] == VERSION, f"{where}.version",
             f"{data['version']!r}, this reader knows version {VERSION}")


def _named_tensors(data: dict, names_key: str, tensors_key: str) -> tuple[list[str], dict[str, torch.Tensor]]:
    names = data[names_key]
    _require(isinstance(names, list) and all(isinstance(n, str) for n in names), f"case.{names_key}",
             "not a list of strings")
    tensors = data[tensors_key]
    _require(isinstance(tensors, dict), f"case.{tensors_key}", "not a dictionary")
    for name in names:
        _require(name in tensors, f"case.{tensors_key}", f"no tensor named {name!r}")
        _require(isinstance(tensors[name], torch.Tensor), f'case.{tensors_key}["{name}"]', "not a tensor")
    return list(names), {name: tensors[name] for name in names}


def _load_case_file(path: str | os.PathLike, what: str):
    """The object a file gacc wrote holds; CaseError when it does not read (FileNotFoundError as is)."""
    try:
        # A case holds nothing but strings, numbers, lists, dicts and tensors: the safe loader will
        # do, once it may call the helpers LibTorch's pickler (torch::pickle_save) tags containers with.
        with torch.serialization.safe_globals(_LIBTORCH_PICKLE_HELPERS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # truncated, not a torch file, ...
        raise CaseError(f"{os.fspath(path)}: cannot be read as {what} ({error})") from error


def load_case(path: str | os.PathLike) -> Case:
    """Loads and checks a ``gacc-case`` file of version 1; raises CaseError naming what is wrong."""
    data = _load_case_file(path, "a case file")
    _check_header(data, "case", CASE_FORMAT)
    for key in ("scenario", "parameter_names", "parameters", "buffer_names", "buffers", "batches"):
        _require(key in data, "case", f"no key {key!r}")
    _require(isinstance(data["scenario"], str), "case.scenario", "not a string of Scenario JSON")
    try:
        scenario = json.loads(data["scenario"])
    except json.JSONDecodeError as error:
        raise CaseError(f"case.scenario: not JSON ({error})") from error
    _require(isinstance(scenario, dict), "case.scenario", "not a JSON object")
    parameter_names, parameters = _named_tensors(data, "parameter_names", "parameters")
    buffer_names, buffers = _named_tensors(data, "buffer_names", "buffers")

    batches = data["batches"]
    _require(isinstance(batches, list), "case.batches", "not a list")
    for s, window in enumerate(batches):
        _require(isinstance(window, list), f"case.batches[{s}]", "not a list of ranks")
        for r, rank in enumerate(window):
            _require(isinstance(rank, list), f"case.batches[{s}][{r}]", "not a list of micro-batches")
            for m, batch in enumerate(rank):
                where = f"case.batches[{s}][{r}][{m}]"
                _require(isinstance(batch, dict), where, "not a dictionary")
                for key in ("inputs", "targets"):
                    _require(isinstance(batch.get(key), torch.Tensor), where, f"no tensor {key!r}")
    return Case(scenario, parameter_names, parameters, buffer_names, buffers, batches)


# --- Recording what the stack did -----------------------------------------------------------------


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    """A float copy of `tensor` that owns its storage (float64 stays float64, the rest becomes fp32)."""
    dtype = torch.float64 if tensor.dtype == torch.float64 else torch.float32
    return tensor.detach().to(dtype).contiguous().clone()


def gradients(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every parameter's ``.grad`` (zeros where it is None), by name.

    Take them right before ``optimizer.step()``: what the optimizer is handed, after unscaling and
    clipping.
    """
    return {name: _copy(p.grad) if p.grad is not None else torch.zeros_like(p, dtype=torch.float32)
            for name, p in model.named_parameters()}


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, dict[str, torch.Tensor]]:
    """The optimizer's per-parameter state, ``{state_name: {parameter_name: tensor}}``.

    Only PyTorch's state names gacc knows (OPTIMIZER_STATE_NAMES) that some parameter holds; a
    parameter without it gets zeros. Empty before the first step that updates (and for SGD without
    momentum, which keeps no state).
    """
    named = list(model.named_parameters())
    present = [key for key in OPTIMIZER_STATE_NAMES
               if any(isinstance(optimizer.state.get(p, {}).get(key), torch.Tensor) for _, p in named)]
    state: dict[str, dict[str, torch.Tensor]] = {}
    for key in present:
        state[key] = {}
        for name, p in named:
            value = optimizer.state.get(p, {}).get(key)
            state[key][name] = _copy(value) if isinstance(value, torch.Tensor) else torch.zeros_like(
                p, dtype=torch.float32)
    return state


def record_step(model: nn.Module, optimizer: torch.optim.Optimizer, *, grad: dict[str, torch.Tensor],
                pre_clip_norm: float, loss: float, lr: float, loss_scale: float = 1.0,
                skipped: bool = False) -> dict[str, Any]:
    """One entry of the result's ``steps``; call it right after the optimizer step.

    grad: ``gradients(model)`` taken before the step. pre_clip_norm: the global L2 norm before
    clipping (after unscaling). loss: the window's loss, unscaled. lr: the rate the optimizer used.
    loss_scale: the scale in force during the window (1 without loss scaling). skipped: whether
    GradScaler skipped the step.
    """
    step = {
        "grad": grad,
        "pre_clip_norm": float(pre_clip_norm),
        "loss": float(loss),
        "lr": float(lr),
        "loss_scale": float(loss_scale),
        "skipped": bool(skipped),
        "params_after": {name: _copy(p) for name, p in model.named_parameters()},
        "optimizer_state": optimizer_state(model, optimizer),
    }
    buffers = {name: _copy(b) for name, b in model.named_buffers()}
    if buffers:  # only models with buffers (BatchNorm's running statistics) report them
        step["buffers_after"] = buffers
    return step


def save_result(path: str | os.PathLike, steps: list[dict[str, Any]], counters: dict[str, int]) -> None:
    """Writes a ``gacc-result`` file of version 1 with ``torch.save``.

    The file appears whole or not at all: it is written to a temporary file in the same directory,
    then renamed over ``path``.
    """
    _require(isinstance(steps, list), "result.steps", "not a list")
    for key in COUNTER_NAMES:
        _require(key in counters, "result.counters", f"no counter {key!r}")
    result = {
        "format": RESULT_FORMAT,
        "version": VERSION,
        "steps": steps,
        "counters": {key: int(value) for key, value in counters.items()},
    }
    _save_atomically(path, result)


# --- Differential mode: the stack's own model, gacc's splits ----------------------------------------

DIFFERENTIAL_CASE_FORMAT = "gacc-differential-case"
DIFFERENTIAL_RESULT_FORMAT = "gacc-differential-result"

#: The three runs a differential result holds, and the dtype each runs in.
DIFFERENTIAL_VARIANTS = {"accumulated": torch.float64, "large_batch": torch.float64,
                         "large_batch_fp32": torch.float32}


@dataclass
class DifferentialCase:
    """A differential case: only how the examples are cut; the model and data are the stack's own.

    ``windows[s][m]`` is an int64 tensor of the example indices of micro-batch ``m`` in the window of
    optimizer step ``s`` (distinct within a step). The stack takes example ``i`` of its own dataset
    however it likes (``i % len(dataset)``, say; the dataset must hold at least ``global_batch``).
    """

    seed: int  #: the stack may seed its initialization with it
    global_batch: int  #: the examples of a full window (a partial last window holds fewer)
    windows: list[list[torch.Tensor]]
    dtypes: dict[str, str]  #: variant -> "float64" or "float32"
    #: K, the micro-batches of a full window: what a stack's ``gradient_accumulation_steps`` is set
    #: to (a partial last window holds fewer micro-batches)
    accumulation_steps: int = 0

    @property
    def steps(self) -> int:
        return len(self.windows)


def load_differential_case(path: str | os.PathLike) -> DifferentialCase:
    """Loads and checks a ``gacc-differential-case`` file of version 1; raises CaseError naming the key."""
    data = _load_case_file(path, "a differential case file")
    _check_header(data, "case", DIFFERENTIAL_CASE_FORMAT)
    for key in ("seed", "steps", "global_batch", "windows", "dtypes"):
        _require(key in data, "case", f"no key {key!r}")
    windows = data["windows"]
    _require(isinstance(windows, list) and len(windows) == data["steps"], "case.windows",
             f"not a list of {data['steps']} windows")
    for s, window in enumerate(windows):
        _require(isinstance(window, list) and window, f"case.windows[{s}]", "not a list of micro-batches")
        for m, indices in enumerate(window):
            _require(isinstance(indices, torch.Tensor) and indices.dtype == torch.int64 and indices.dim() == 1,
                     f"case.windows[{s}][{m}]", "not an int64 tensor of example indices")
    dtypes = data["dtypes"]
    _require(isinstance(dtypes, dict), "case.dtypes", "not a dictionary")
    for variant, dtype in DIFFERENTIAL_VARIANTS.items():
        _require(dtypes.get(variant) == str(dtype).removeprefix("torch."), f'case.dtypes["{variant}"]',
                 f"{dtypes.get(variant)!r}, expected {str(dtype).removeprefix('torch.')!r}")
    # Files written before the key existed: K is the longest window's micro-batch count.
    accumulation_steps = data.get("accumulation_steps", max(len(window) for window in windows))
    _require(isinstance(accumulation_steps, int) and accumulation_steps >= max(len(w) for w in windows),
             "case.accumulation_steps", f"{accumulation_steps!r}, not an int at least every window's micro-batches")
    return DifferentialCase(int(data["seed"]), int(data["global_batch"]), windows, dict(dtypes),
                            int(accumulation_steps))


def differential_step(model: nn.Module, *, loss: float, grad: dict[str, torch.Tensor]) -> dict[str, Any]:
    """One entry of a differential run's ``steps``; call it right after the optimizer step.

    grad: ``{name: p.grad}`` taken before the step (what the optimizer was handed). Tensors keep the
    run's dtype (float64, or float32 for ``large_batch_fp32``).
    """
    return {"loss": float(loss),
            "grad": {name: g.detach().clone() for name, g in grad.items()},
            "params_after": {name: p.detach().clone() for name, p in model.named_parameters()}}


def save_differential_result(path: str | os.PathLike, runs: dict[str, list[dict[str, Any]]],
                             counters: dict[str, int]) -> None:
    """Writes a ``gacc-differential-result`` file of version 1, whole or not at all.

    runs: ``{"accumulated": steps, "large_batch": steps, "large_batch_fp32": steps}``, each step as
    ``differential_step`` makes it. counters: the accumulated run's ``micro_batches``,
    ``optimizer_steps`` and ``zero_grads``.
    """
    for variant, dtype in DIFFERENTIAL_VARIANTS.items():
        _require(variant in runs, "result", f"no run {variant!r}")
        for s, step in enumerate(runs[variant]):
            for key in ("grad", "params_after"):
                for name, tensor in step[key].items():
                    _require(tensor.dtype == dtype, f'result.{variant}.steps[{s}].{key}["{name}"]',
                             f"dtype {tensor.dtype}, expected {dtype}")
    result = {"format": DIFFERENTIAL_RESULT_FORMAT, "version": VERSION,
              "accumulated": {"steps": runs["accumulated"],
                              "counters": {key: int(counters[key])
                                           for key in ("micro_batches", "optimizer_steps", "zero_grads")}},
              "large_batch": {"steps": runs["large_batch"]},
              "large_batch_fp32": {"steps": runs["large_batch_fp32"]}}
    _save_atomically(path, result)


def _save_atomically(path: str | os.PathLike, data: Any) -> None:
    """torch.save to a temporary file in the same directory, then a rename over ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".result-", suffix=".pt.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(data, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
