"""What the adapters' tests (test_transformers.py, test_accelerate.py, test_lightning.py) share: the
gacc program, a partial-epoch scenario, and the checks every adapter is put through, as plain
functions. A test file imports them with ``from conftest import ...``: the directory holds no
``__init__.py``, so pytest puts it on sys.path (as it does for ``python -m pytest adapters/test_X.py``
from tests/python, CTest's way) and this module is the one it loaded as ``conftest``.

Every test here needs the gacc program (``GACC_BINARY``, or wherever ``gacc.find_binary`` looks):
without it, each is skipped. CTest sets GACC_BINARY; by hand, set it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import ModuleType

import pytest
import torch

import gacc
from gacc import case as gacc_case
from gacc.adapters import _shared as common

torch.set_num_threads(1)

#: A scenario whose only window is partial (2 of K = 3 micro-batches, of 3 and 1 examples): an epoch
#: shorter than K.
PARTIAL_EPOCH = {
    "model": {"arch": "mlp_tanh", "input_dim": 3, "hidden_dim": 4, "output_dim": 2, "init_seed": 7},
    "data": {"seed": 11, "global_batch": 6, "windows": [[[3, 1]]]},
    "loss": {"kind": "mse", "reduction": "mean"},
    "optimizer": {"kind": "sgd", "lr": 0.125, "momentum": 0.875, "dampening": 0, "weight_decay": 0.015625,
                  "nesterov": False},
    "schedule": {"kind": "cosine", "t_max": 3, "eta_min": 0},
    "clipping": {"kind": "norm", "max_norm": 1.0},
    "precision": "fp32", "world_size": 1, "accumulation_steps": 3, "steps": 1,
}

#: The properties of a differential check that compare the accumulated run with the large batch.
DIFFERENTIAL_PROPERTIES = ("differential-gradients", "differential-losses", "differential-params")


@pytest.fixture(autouse=True, scope="session")
def gacc_binary() -> str:
    """The gacc program; every test is skipped without it."""
    try:
        return gacc.find_binary()
    except gacc.GaccNotFound as error:
        pytest.skip(str(error))


def export_case(tmp_path, *arguments: str) -> str:
    """``gacc case export ARGUMENTS`` into tmp_path/case.pt; its path."""
    path = str(tmp_path / "case.pt")
    subprocess.run([gacc.find_binary(), "case", "export", *arguments, "--out", path], check=True, capture_output=True)
    return path


def verify(case_path: str, result_path: str) -> subprocess.CompletedProcess:
    return subprocess.run([gacc.find_binary(), "case", "verify", case_path, result_path], capture_output=True,
                          text=True)


def check_external(worker: str, *arguments: str) -> subprocess.CompletedProcess:
    """``gacc check-external --worker ARGUMENTS`` serving ``python -m WORKER`` (WORKER: the module and
    its own arguments)."""
    return subprocess.run([gacc.find_binary(), "check-external", "--worker", "--cmd", f"{sys.executable} -m {worker}",
                           *arguments], capture_output=True, text=True, timeout=300)


def oracle_worker_serves(module: str, precision: str) -> None:
    """gacc check-external --worker (2 cases from seed 3, ``precision``) served by ``python -m MODULE
    --worker --mode oracle`` passes."""
    done = check_external(f"{module} --worker --mode oracle", "--cases", "2", "--seed", "3", "--precision", precision)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the worker served" in done.stdout


def row(report: gacc.Report, prop: str) -> dict:
    return next(r for r in report.rows if r["property"] == prop)


# --- The checks every adapter is put through ------------------------------------------------------------


def check_interface(adapter: ModuleType, precisions: tuple[str, ...], broken: set[str]) -> None:
    """The module's SUPPORTED_PRECISIONS and BROKEN; an unknown broken configuration is refused."""
    assert adapter.SUPPORTED_PRECISIONS == precisions
    assert set(adapter.BROKEN) == broken
    with pytest.raises(ValueError, match="unknown broken configuration 'nope'"):
        adapter.oracle_stack(broken="nope")
    with pytest.raises(ValueError, match="unknown broken configuration 'nope'"):
        adapter.differential_stack(broken="nope")


def oracle_passes(stack, precision: str, *, cases: int, seed: int, shrinks: int) -> gacc.Report:
    """gacc.check of a correct stack: exit 0, the trace properties judged and passing (and under
    mixed precision, mixed-precision); the report, for the test to assert more."""
    report = gacc.check(stack, cases=cases, seed=seed, precision=precision, shrinks=shrinks)
    assert report.exit_code == 0, report.text
    assert report.failures == []
    for prop in ("gradient-equivalence", "step-equivalence", "clipping-after-window", "schedules-and-counters"):
        assert row(report, prop)["verdict"] == "pass", prop
        assert row(report, prop)["cases_judged"] > 0, prop
        assert row(report, prop)["worst_ratio"] < 1, prop
    if precision != "fp32":
        assert row(report, "mixed-precision")["verdict"] == "pass"
        assert row(report, "mixed-precision")["cases_judged"] > 0
    return report


def oracle_fails(stack, prop: str, says: str, *, cases: int, seed: int, shrinks: int) -> gacc.Report:
    """gacc.check (fp32) of a broken stack: exit 1, ``prop`` failing and saying ``says`` in its
    diagnosis or worst detail; the report."""
    report = gacc.check(stack, cases=cases, seed=seed, precision="fp32", shrinks=shrinks)
    assert report.exit_code == 1, report.text
    failing = row(report, prop)
    assert failing["verdict"] == "fail"
    assert says in failing["diagnosis"] + failing["worst_detail"]
    return report


#: What gacc says of _shared.stack_loss's broken losses handed to a stack that divides them by
#: K (Accelerate, Lightning): broken configuration -> (a property that must fail, what its diagnosis
#: or detail must say).
STACK_LOSS_BROKEN = {
    "naive_mean": ("token-normalization", "the mean of the micro-batches' own means, not the window's mean"),
    "divided_twice": ("gradient-equivalence", "of the large batch's: divided by K once too often"),
}


def divided_by_k_broken_fails(stack, broken: str, expected: dict[str, tuple[str, str]]) -> gacc.Report:
    """oracle_fails (8 cases from seed 1) of a stack that divides the loss it is handed by K, in
    broken configuration ``broken`` (``expected[broken]``: the property and what it says):
    gradient-equivalence fails too, and under naive_mean, on a summed loss, the stack's division by
    K is all that is left."""
    report = oracle_fails(stack, *expected[broken], cases=8, seed=1, shrinks=2)
    assert "gradient-equivalence" in {r["property"] for r in report.failures}
    if broken == "naive_mean":
        assert "divided by K once too often" in row(report, "gradient-equivalence")["diagnosis"]
    return report


def partial_epoch_steps_once(stack, tmp_path, counters: dict[str, int]) -> None:
    """An epoch shorter than K (PARTIAL_EPOCH) is one optimizer step, which gacc case verify passes."""
    case_path = export_case(tmp_path, "--scenario", json.dumps(PARTIAL_EPOCH))
    steps, observed = stack(gacc_case.load_case(case_path))
    assert len(steps) == 1
    assert observed == counters
    result_path = str(tmp_path / "result.pt")
    gacc_case.save_result(result_path, steps, observed)
    verdict = verify(case_path, result_path)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr


def several_ranks_are_refused(stack, tmp_path) -> None:
    case = gacc_case.load_case(export_case(tmp_path, "--scenario", json.dumps(PARTIAL_EPOCH)))
    case.scenario["world_size"] = 2
    with pytest.raises(common.UnsupportedCase, match="world_size 2"):
        stack(case)


def differential_passes(stack, *, cases: int, seed: int, shrinks: int) -> None:
    """gacc.check of a correct stack in differential mode: exit 0, every property passing, the
    comparisons and the fp32 probe within their tolerances."""
    report = gacc.check(stack, mode="differential", cases=cases, seed=seed, shrinks=shrinks)
    assert report.exit_code == 0, report.text
    assert {r["verdict"] for r in report.rows} == {"pass"}
    for prop in (*DIFFERENTIAL_PROPERTIES, "differential-counters", "differential-fp32-probe"):
        assert row(report, prop)["worst_ratio"] < 1, prop


def differential_fails(stack, *, cases: int, seed: int, shrinks: int) -> None:
    """gacc.check of a broken stack in differential mode: exit 1, the accumulated run far off the large
    batch in gradients, losses and parameters; its counters and the fp32 probe passing."""
    report = gacc.check(stack, mode="differential", cases=cases, seed=seed, shrinks=shrinks)
    assert report.exit_code == 1, report.text
    assert {r["property"] for r in report.failures} == set(DIFFERENTIAL_PROPERTIES)
    for prop in DIFFERENTIAL_PROPERTIES:
        assert row(report, prop)["worst_ratio"] > 1e6, prop
    assert row(report, "differential-counters")["verdict"] == "pass"
    assert row(report, "differential-fp32-probe")["verdict"] == "pass"


def differential_float64_is_float64(stack, tmp_path) -> None:
    """A differential case's runs in their dtypes, the float64 ones computed in float64 (not float32
    widened), verified by gacc case verify."""
    splits = {"seed": 4, "windows": [[[0, 1, 2], [3]], [[4], [5, 6, 7, 8]]]}
    case_path = export_case(tmp_path, "--mode", "differential", "--splits", json.dumps(splits))
    runs, counters = stack(gacc_case.load_differential_case(case_path))
    assert counters == {"micro_batches": 4, "optimizer_steps": 2, "zero_grads": 2, "scheduler_steps": 2}
    for variant, dtype in gacc_case.DIFFERENTIAL_VARIANTS.items():
        assert len(runs[variant]) == 2
        for step in runs[variant]:
            assert {t.dtype for key in ("grad", "params_after") for t in step[key].values()} == {dtype}
    # The gradients hold values float32 cannot represent.
    grads = torch.cat([g.flatten() for step in runs["accumulated"] for g in step["grad"].values()])
    assert (grads != grads.float().double()).any()
    result_path = str(tmp_path / "result.pt")
    gacc_case.save_differential_result(result_path, runs, counters)
    verdict = verify(case_path, result_path)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
