"""gacc.adapters.lightning: Lightning's Trainer(accumulate_grad_batches=K) checked by gacc.

The correct configuration passes in oracle mode (fp32, bf16, fp16 through Lightning's MixedPrecision
plugin) and in differential mode; each broken configuration fails with exit 1, the failing property
and gacc's diagnosis; several ranks are refused; the differential "64-true" runs are float64
throughout; an epoch shorter than K (Lightning issue 21808) steps once, correctly. The checks shared
with the other adapters are conftest.py's.

    cd tests/python && GACC_BINARY=.../gacc python -m pytest -q adapters/test_lightning.py
"""

from __future__ import annotations

import pytest

pytest.importorskip("lightning")

from gacc.adapters import lightning as adapter  # noqa: E402

import conftest as shared  # noqa: E402


def test_interface():
    shared.check_interface(adapter, ("fp32", "bf16", "fp16"), {"naive_mean", "divided_twice"})


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_oracle_passes(precision):
    report = shared.oracle_passes(adapter.oracle_stack(), precision, cases=8, seed=1, shrinks=4)
    triggers = report.json["coverage"]["gradient-equivalence"]["triggers"]
    assert triggers["partial last window"]["judged"] >= 1  # Lightning steps on the epoch's last batch
    assert triggers["micro-batch without a counted token"]["judged"] >= 1
    if precision == "fp16":  # GradScaler skipped steps, recorded as skipped
        assert triggers["fp16 overflow"]["judged"] >= 1


def test_epoch_shorter_than_k_steps_once(tmp_path):
    # Lightning issue 21808: an epoch of fewer than K batches steps at its last batch, with the loss
    # still divided by K. In gacc's one epoch that is a partial last window: one step, correct with
    # the loss multiplied back by K over the window's elements.
    shared.partial_epoch_steps_once(adapter.oracle_stack(), tmp_path,
                                    {"micro_batches": 2, "optimizer_steps": 1, "zero_grads": 1, "scheduler_steps": 1})


def test_several_ranks_are_refused(tmp_path):
    shared.several_ranks_are_refused(adapter.oracle_stack(), tmp_path)


@pytest.mark.parametrize("broken", sorted(shared.STACK_LOSS_BROKEN))
def test_oracle_broken_fails(broken):
    # The loss training_step returns, which Lightning divides by accumulate_grad_batches.
    shared.divided_by_k_broken_fails(adapter.oracle_stack(broken=broken), broken, shared.STACK_LOSS_BROKEN)


def test_differential_passes():
    shared.differential_passes(adapter.differential_stack(), cases=6, seed=1, shrinks=2)


@pytest.mark.parametrize("broken", ["naive_mean", "divided_twice"])
def test_differential_broken_fails(broken):
    shared.differential_fails(adapter.differential_stack(broken=broken), cases=6, seed=1, shrinks=2)


def test_differential_float64_is_float64(tmp_path):
    # "64-true" converts the float32-initialized network to float64.
    shared.differential_float64_is_float64(adapter.differential_stack(), tmp_path)


def test_worker_serves_gacc_check_external():
    shared.oracle_worker_serves("gacc.adapters.lightning", "fp16")
