"""gacc.adapters.transformers: the Hugging Face Trainer's own accumulation checked by gacc.

The correctly configured Trainer passes in oracle mode (fp32, bf16) and in differential mode; each
broken configuration fails with exit 1, the failing property and gacc's diagnosis, and does what its
name says; fp16, several ranks and windows one Trainer cannot make are refused; the Trainer's
windows are checked against gacc's; the differential float64 runs are float64 throughout. The checks
shared with the other adapters are conftest.py's.

    cd tests/python && GACC_BINARY=.../gacc python -m pytest -q adapters/test_transformers.py
"""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from gacc import case as gacc_case  # noqa: E402
from gacc.adapters import _shared as common  # noqa: E402
from gacc.adapters import hf_models  # noqa: E402
from gacc.adapters import transformers as adapter  # noqa: E402

import conftest as shared  # noqa: E402


def differential_case(windows: list[list[list[int]]], k: int, seed: int = 5) -> gacc_case.DifferentialCase:
    tensors = [[torch.tensor(m, dtype=torch.int64) for m in window] for window in windows]
    return gacc_case.DifferentialCase(seed=seed, global_batch=max(sum(map(len, w)) for w in windows),
                                      windows=tensors, dtypes={}, accumulation_steps=k)


def test_interface():
    shared.check_interface(adapter, ("fp32", "bf16"), {"naive_mean", "divided_twice"})


@pytest.mark.parametrize("precision,cases", [("fp32", 16), ("bf16", 10)])
def test_oracle_passes(precision, cases):
    shared.oracle_passes(adapter.oracle_stack(), precision, cases=cases, seed=2, shrinks=3)


def test_an_epoch_shorter_than_k_is_one_step(tmp_path):
    # The Trainer calls model.zero_grad() before training too: 2 for one step.
    shared.partial_epoch_steps_once(adapter.oracle_stack(), tmp_path,
                                    {"micro_batches": 2, "optimizer_steps": 1, "zero_grads": 2, "scheduler_steps": 1})


def test_the_command_line_trains_one_case_file(tmp_path):
    case_path = shared.export_case(tmp_path, "--scenario", json.dumps(shared.PARTIAL_EPOCH))
    result_path = str(tmp_path / "result.pt")
    assert adapter.main([case_path, result_path]) == 0
    verified = shared.verify(case_path, result_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_fp16_is_refused():
    scenario = {"precision": "fp16", "world_size": 1, "accumulation_steps": 1}
    batch = {"inputs": torch.zeros(1, 1), "targets": torch.zeros(1, 1)}
    with pytest.raises(common.UnsupportedCase, match="makes neither a GradScaler nor an autocast for fp16"):
        adapter.train_oracle(gacc_case.Case(scenario, [], {}, [], {}, [[[batch]]]))


def test_several_ranks_are_refused(tmp_path):
    shared.several_ranks_are_refused(adapter.oracle_stack(), tmp_path)


def test_windows_the_trainer_cannot_make_are_refused():
    # An inner window shorter than K (gacc never makes one; a DifferentialCase built by hand can).
    with pytest.raises(common.UnsupportedCase, match=r"windows of \[1, 2\] micro-batches with K = 2"):
        adapter.train_differential(differential_case([[[0]], [[1], [2]]], k=2))


def test_the_trainers_windows_are_checked_against_gaccs():
    # gacc's windows hold 2 micro-batches; a Trainer told K = 3 would put a third one in the first.
    model = hf_models.build_causal_lm(3, torch.float64)
    windows = [[torch.tensor([0]), torch.tensor([1, 2])], [torch.tensor([3]), torch.tensor([4])]]
    with pytest.raises(RuntimeError, match="the Trainer's windows are not gacc's"):
        adapter.train_differential_run(model, windows, 3)


# Seeds whose first cases hold a mean loss over uneven micro-batches (diagnosed as a mean of means)
# and windows of K >= 2 (the double division shows).
ORACLE_BROKEN = {
    "naive_mean": ("gradient-equivalence", "the gradient is the mean of the micro-batches' own means"),
    "divided_twice": ("gradient-equivalence", "the gradient is 1/K = 1/2 of the large batch's: divided by K once "
                                              "too often"),
}


@pytest.mark.parametrize("broken", sorted(ORACLE_BROKEN))
def test_oracle_broken_fails(broken):
    prop, says = ORACLE_BROKEN[broken]
    report = shared.oracle_fails(adapter.oracle_stack(broken=broken), prop, says, cases=6, seed=2, shrinks=3)
    assert says in shared.row(report, prop)["diagnosis"]
    assert says in report.text
    assert shared.row(report, "schedules-and-counters")["verdict"] == "pass"  # one step per window all the same


def test_differential_passes():
    shared.differential_passes(adapter.differential_stack(), cases=12, seed=1, shrinks=3)


@pytest.mark.parametrize("broken", sorted(adapter.BROKEN))
def test_differential_broken_fails(broken):
    shared.differential_fails(adapter.differential_stack(broken=broken), cases=4, seed=2, shrinks=2)


def first_gradient(runs: dict, variant: str) -> torch.Tensor:
    return torch.cat([g.flatten() for g in runs[variant][0]["grad"].values()])


def test_the_broken_configurations_do_what_they_say():
    # One window of two micro-batches with 2 and 5 counted tokens (examples 1 and 2 of the dataset).
    labels = hf_models.dataset()["labels"][:, 1:]
    assert [int((labels[i] != -100).sum()) for i in (1, 2)] == [1, 5]
    case = differential_case([[[1], [2]]], k=2)
    large = first_gradient(adapter.train_differential(case)[0], "large_batch")
    # divided_twice: the Trainer divides the window-normalized loss by the micro-batch count again.
    twice = first_gradient(adapter.train_differential(case, "divided_twice")[0], "accumulated")
    torch.testing.assert_close(twice, large / 2, rtol=1e-12, atol=1e-15)
    # naive_mean: each micro-batch's own token mean, divided by K = 2 — the mean of the two means.
    own = [first_gradient(adapter.train_differential(differential_case([[[i]]], k=1))[0], "large_batch")
           for i in (1, 2)]
    naive = first_gradient(adapter.train_differential(case, "naive_mean")[0], "accumulated")
    torch.testing.assert_close(naive, (own[0] + own[1]) / 2, rtol=1e-12, atol=1e-15)
    assert (naive - large).abs().max() > 1e-3  # and that is not the window's mean


def test_the_trainer_counts_the_labels_the_loss_divides():
    """GPT-2's loss_type is None in transformers 5.25.0 (its class name holds no key of LOSS_MAPPING),
    so the Trainer counts num_items_in_batch over the unshifted labels: one label too many per row.
    hf_models sets loss_type; the window's loss is then the token mean."""
    data = hf_models.dataset()
    example = hf_models.batch(data, torch.tensor([1]))  # 2 labels, 1 of them a prediction target
    token_mean = hf_models.build_causal_lm(5, torch.float64)(**example).loss.item()
    counted = adapter.train_differential_run(hf_models.build_causal_lm(5, torch.float64), [[torch.tensor([1])]], 1)
    assert counted[0][0]["loss"] == pytest.approx(token_mean, rel=1e-14)
    stock = hf_models.build_causal_lm(5, torch.float64)
    stock.loss_type = None  # as GPT2LMHeadModel(config) has it
    over_counted = adapter.train_differential_run(stock, [[torch.tensor([1])]], 1)
    assert over_counted[0][0]["loss"] == pytest.approx(token_mean / 2, rel=1e-14)


def test_differential_float64_is_float64(monkeypatch):
    """Every floating-point value the Trainer's training step computes — forward, loss, backward — is
    float64; with transformers' own ForCausalLMLoss (logits.float()) it would not be."""
    from transformers import Trainer
    from transformers.loss.loss_utils import ForCausalLMLoss

    audits: list[hf_models.Float64Audit] = []
    training_step = Trainer.training_step

    def audited(self, *args, **kwargs):
        with hf_models.Float64Audit() as audit:
            loss = training_step(self, *args, **kwargs)
        audits.append(audit)
        return loss

    monkeypatch.setattr(Trainer, "training_step", audited)
    windows = [[torch.tensor([0, 1]), torch.tensor([2])], [torch.tensor([3]), torch.tensor([4, 5, 6])]]
    steps, counters = adapter.train_differential_run(hf_models.build_causal_lm(7, torch.float64), windows, 2)
    assert counters["micro_batches"] == len(audits) == 4
    assert all(audit.float64_outputs > 100 and audit.narrower == [] for audit in audits), audits[0].narrower
    assert all(g.dtype == torch.float64 for step in steps for g in step["grad"].values())

    audits.clear()
    model = hf_models.build_causal_lm(7, torch.float64)
    model.loss_function = ForCausalLMLoss
    adapter.train_differential_run(model, windows, 2)
    assert ("aten._log_softmax.default", torch.float32) in audits[0].narrower


def test_worker_serves_gacc_check_external():
    completed = shared.check_external("gacc.adapters.transformers --worker --mode differential --broken divided_twice",
                                      "--mode", "differential", "--cases", "2", "--seed", "3", "--shrinks", "1")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "UNEXPECTED: differential-gradients" in completed.stdout
    assert "(started 1 time)" in completed.stdout
