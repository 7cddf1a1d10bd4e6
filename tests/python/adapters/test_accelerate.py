"""gacc.adapters.accelerate: Accelerate's own accumulation loop checked by gacc.

The correct configuration passes in oracle mode (fp32, bf16) and in differential mode; each broken
configuration fails with exit 1, the failing property and gacc's diagnosis; fp16 and several ranks
are refused; the differential float64 runs are float64 throughout. The checks shared with the other
adapters are conftest.py's.

    cd tests/python && GACC_BINARY=.../gacc python -m pytest -q adapters/test_accelerate.py
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("accelerate")

import gacc  # noqa: E402
from gacc import case as gacc_case  # noqa: E402
from gacc.adapters import accelerate as adapter  # noqa: E402

import conftest as shared  # noqa: E402


def test_interface():
    shared.check_interface(adapter, ("fp32", "bf16"),
                           {"naive_mean", "divided_twice", "prefetch_accumulate", "no_dataloader_sync"})


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_oracle_passes(precision):
    report = shared.oracle_passes(adapter.oracle_stack(), precision, cases=8, seed=1, shrinks=4)
    triggers = report.json["coverage"]["gradient-equivalence"]["triggers"]
    assert triggers["partial last window"]["judged"] >= 1  # accumulate() syncs at the DataLoader's end
    assert triggers["micro-batch without a counted token"]["judged"] >= 1


def test_epoch_shorter_than_k_steps_once(tmp_path):
    shared.partial_epoch_steps_once(adapter.oracle_stack(), tmp_path,
                                    {"micro_batches": 2, "optimizer_steps": 1, "zero_grads": 1, "scheduler_steps": 1})


def test_fp16_is_refused():
    report = gacc.check(adapter.oracle_stack(), cases=2, seed=1, precision="fp16", shrinks=0)
    assert report.exit_code == 4
    assert "supports precisions fp32, bf16 on the CPU; this case is fp16" in report.text


def test_several_ranks_are_refused(tmp_path):
    shared.several_ranks_are_refused(adapter.oracle_stack(), tmp_path)


#: broken configuration -> (a property that must fail, what its diagnosis or detail must say)
ORACLE_BROKEN = {
    **shared.STACK_LOSS_BROKEN,  # the loss accelerator.backward divides by K
    "prefetch_accumulate": ("schedules-and-counters", "windows in the trace: 3 over 1 windows"),
    "no_dataloader_sync": ("schedules-and-counters", "a partial last one dropped"),
}


@pytest.mark.parametrize("broken", sorted(ORACLE_BROKEN))
def test_oracle_broken_fails(broken):
    report = shared.divided_by_k_broken_fails(adapter.oracle_stack(broken=broken), broken, ORACLE_BROKEN)
    if broken == "prefetch_accumulate":  # every micro-batch of the last window stepped
        assert "the recipe took 3 optimizer steps; the scenario has 1 windows" in report.text


def test_differential_passes():
    shared.differential_passes(adapter.differential_stack(), cases=6, seed=1, shrinks=2)


@pytest.mark.parametrize("broken", ["naive_mean", "divided_twice"])
def test_differential_broken_fails(broken):
    shared.differential_fails(adapter.differential_stack(broken=broken), cases=6, seed=1, shrinks=2)


@pytest.mark.parametrize("broken", ["prefetch_accumulate", "no_dataloader_sync"])
def test_differential_step_count_configurations_fail(tmp_path, broken):
    # K = 3; the last window holds 2 micro-batches: prefetching steps on both, no dataloader sync on none.
    # A wrong number of accumulated steps is a verdict (differential-counters, exit 1), not bad input.
    splits = {"seed": 4, "windows": [[[0], [1, 2], [3]], [[4], [5]]]}
    case_path = shared.export_case(tmp_path, "--mode", "differential", "--splits", json.dumps(splits))
    runs, counters = adapter.differential_stack(broken=broken)(gacc_case.load_differential_case(case_path))
    assert len(runs["accumulated"]) == {"prefetch_accumulate": 3, "no_dataloader_sync": 1}[broken]
    result_path = str(tmp_path / "result.pt")
    gacc_case.save_differential_result(result_path, runs, counters)
    verdict = shared.verify(case_path, result_path)
    assert verdict.returncode == 1, verdict.stdout + verdict.stderr


def test_differential_float64_is_float64(tmp_path):
    shared.differential_float64_is_float64(adapter.differential_stack(), tmp_path)


def test_worker_serves_gacc_check_external():
    shared.oracle_worker_serves("gacc.adapters.accelerate", "bf16")
