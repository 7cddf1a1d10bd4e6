#!/usr/bin/env bash
# python_examples.sh GACC PYTHON CASE: the PyTorch examples of examples/python, run for real through
# `gacc check-external` in the project's virtual environment.
#   correct   train_accumulate.py passes every property: exit 0
#   broken    train_accumulate_broken.py (mean of per-micro-batch means) is flagged: exit 1, with the
#             property that catches it and the lines that reproduce its shrunk counterexample
#   differential-correct   train_differential.py (a model outside the zoo) passes every differential check
#   differential-broken    train_differential_broken.py (mean of means) fails them: exit 1, the failing
#                          check, a shrunk counterexample and the lines that rerun it, which do
#   worker    train_accumulate.py --worker: started once, it serves every case (Note [worker protocol])
#             and passes every property
#   worker-broken   train_accumulate_broken.py --worker is flagged: exit 1, a shrunk counterexample,
#             and its reproduce line (one request piped into the worker) fails again
#   package-check   gacc.check (python/gacc) on the example loop in this process: passes; its broken
#             variant fails with gradient-equivalence, a diagnosis and a shrunk counterexample; a stack
#             that raises is exit 4 naming the error, and the call returns
#   variant-reversed       loop_variants.py reversed (each window's micro-batches last to first) passes,
#                          BatchNorm's running statistics included (a free choice of the loop)
#   variant-scheduler-holds   loop_variants.py scheduler-holds (fp16: the scheduler holds on a skipped
#                          step, as accelerate does) passes, and the report says which policy it follows
#   variant-skip-partial-window   loop_variants.py skip-partial-window (the partial last window never
#                          run) is a failing verdict, exit 1, shrunk — never bad input (exit 3)
set -u
gacc=$1
python=$2
case_name=$3
examples=$(cd "$(dirname "$0")/../../examples/python" && pwd)
variants=$(cd "$(dirname "$0")" && pwd)/loop_variants.py
. "$(dirname "$0")/../cli/lib.sh"
[ -x "$python" ] || { echo "no Python at '$python' (configure with GACC_TORCH_PYTHON)"; exit 1; }

# reproduce_fails_again PATTERN PROPERTY: the output's reproduce line (matching PATTERN), run by
# hand with gacc's own binary for "gacc", fails PROPERTY again.
reproduce_fails_again() {
  local line
  line=$(grep -o "$1" "$dir/out" | head -1)
  [ -n "$line" ] || fail "no reproduce line"
  (cd "$dir" && eval "${line//gacc case/\"$gacc\" case}") >"$dir/rerun" 2>&1
  [ $? -eq 1 ] || { cat "$dir/rerun"; fail "the reproduce line did not fail again"; }
  grep -Eq "^$2 +result +correct +fail" "$dir/rerun" || fail "the rerun did not fail $2"
}

case "$case_name" in
  correct)
    expect 0 "every correct recipe passes" \
      "$gacc" check-external --cases 10 --seed 3 --cmd "$python $examples/train_accumulate.py {case} {result}"
    grep -Eq "^gradient-equivalence +external +correct +pass" "$dir/out" || fail "gradient-equivalence did not judge the loop"
    grep -Eq "^split-invariance +external +correct +pass" "$dir/out" || fail "split-invariance did not judge the loop" ;;
  broken)
    expect 1 "correct recipe failing: external" \
      "$gacc" check-external --cases 6 --seed 3 --shrinks 2 \
      --cmd "$python $examples/train_accumulate_broken.py {case} {result}"
    grep -Eq "^gradient-equivalence +external +correct +fail" "$dir/out" || fail "gradient-equivalence did not catch the mean of means"
    grep -q "gacc case export --scenario '.*' --out case.pt && .*train_accumulate_broken.py 'case.pt' 'result.pt' && gacc case verify case.pt result.pt" \
      "$dir/out" || fail "no reproduce line" ;;
  differential-correct)
    expect 0 "every correct recipe passes" \
      "$gacc" check-external --mode differential --cases 6 --seed 2 \
      --cmd "$python $examples/train_differential.py {case} {result}"
    for check in gradients losses params counters fp32-probe; do
      grep -Eq "^differential-$check +external +correct +pass +6 " "$dir/out" || fail "differential-$check did not pass on 6 cases"
    done ;;
  differential-broken)
    expect 1 "correct recipe failing: external" \
      "$gacc" check-external --mode differential --cases 3 --seed 2 --shrinks 3 \
      --cmd "$python $examples/train_differential_broken.py {case} {result}"
    grep -Eq "^differential-gradients +external +correct +fail" "$dir/out" || fail "differential-gradients did not catch the mean of means"
    grep -q "counterexample (case .* shrunk .* ratio" "$dir/out" || fail "no shrunk counterexample"
    reproduce_fails_again "gacc case export --mode differential --splits '.*' --out case.pt && .*train_differential_broken.py 'case.pt' 'result.pt' && gacc case verify case.pt result.pt" \
      differential-gradients ;;
  worker)
    expect 0 "every correct recipe passes" \
      "$gacc" check-external --worker --cases 10 --seed 3 --cmd "$python $examples/train_accumulate.py --worker"
    grep -Eq "^gradient-equivalence +external +correct +pass" "$dir/out" || fail "gradient-equivalence did not judge the loop"
    grep -Eq "^the worker served [0-9]+ cases \(started 1 time\)" "$dir/out" || fail "the worker was not started once" ;;
  worker-broken)
    expect 1 "correct recipe failing: external" \
      "$gacc" check-external --worker --cases 6 --seed 3 --shrinks 6 \
      --cmd "$python $examples/train_accumulate_broken.py --worker"
    grep -Eq "^gradient-equivalence +external +correct +fail" "$dir/out" || fail "gradient-equivalence did not catch the mean of means"
    reproduce_fails_again "gacc case export --scenario '.*' --out case.pt && printf .* | .*train_accumulate_broken.py --worker >/dev/null && gacc case verify case.pt result.pt" \
      gradient-equivalence ;;
  package-check)
    GACC_BINARY=$gacc "$python" - "$examples" "$dir" <<'PY' >"$dir/out" 2>&1 || fail "gacc.check did not do what it says"
import os, sys, time
sys.path.insert(0, sys.argv[1])
import torch
import gacc
import train_accumulate
from gacc import zoo
torch.set_num_threads(1)
directory = sys.argv[2]

start = time.time()
report = gacc.check(train_accumulate.train, cases=8, seed=3, json_path=os.path.join(directory, "r.json"),
                    junit_path=os.path.join(directory, "r.xml"))
print(f"correct: exit {report.exit_code}, {time.time() - start:.1f} s")
assert report.passed and report.exit_code == 0, report
assert os.path.exists(os.path.join(directory, "r.json")) and os.path.exists(os.path.join(directory, "r.xml"))
rows = {row["property"]: row for row in report.rows}
assert rows["gradient-equivalence"]["verdict"] == "pass" and rows["gradient-equivalence"]["cases_judged"] > 0, rows
assert report.worst_ratio("gradient-equivalence") <= 0.5
# --json lists each case's verdicts: every case, each check named, passing.
cases = report.json["case_verdicts"]
assert [c["case"] for c in cases] == list(range(8)), cases
assert all(c["checks"] and all(k["verdict"] in ("pass", "not judged") for k in c["checks"]) for c in cases), cases
assert {k["property"] for c in cases for k in c["checks"]} >= {"gradient-equivalence", "step-equivalence"}, cases

def mean_of_means(scenario, outputs, targets, window_elements, micro_batches):
    if scenario["loss"]["reduction"] == "sum":
        return zoo.summed_loss(scenario, outputs, targets)
    return zoo.batch_loss(scenario, outputs, targets) / micro_batches  # Broken! a mean of means

def broken(case):
    correct = train_accumulate.micro_batch_loss
    train_accumulate.micro_batch_loss = mean_of_means
    try:
        return train_accumulate.train(case)
    finally:
        train_accumulate.micro_batch_loss = correct

report = gacc.check(broken, cases=6, seed=3, shrinks=6)
print(f"broken: exit {report.exit_code}")
assert report.exit_code == 1 and not report.passed, report
failing = {row["property"]: row for row in report.failures}
assert "gradient-equivalence" in failing, report
counterexample = failing["gradient-equivalence"]["counterexample"]
assert counterexample and counterexample["scenario"], failing
assert counterexample["diagnosis"] or failing["gradient-equivalence"]["diagnosis"], failing
assert any(k["verdict"] == "fail" for c in report.json["case_verdicts"] for k in c["checks"]), report.json

def raises(case):
    raise RuntimeError("shapes do not match")

report = gacc.check(raises, cases=2)
print(f"raises: exit {report.exit_code}")
assert report.exit_code == 4, report
assert "failed on this case: RuntimeError: shapes do not match" in report.text, report
print("package-check ok")
PY
    grep -q "package-check ok" "$dir/out" || fail "no success line" ;;
  variant-reversed)
    expect 0 "every correct recipe passes" \
      "$gacc" check-external --cases 8 --seed 9 --cmd "$python $variants reversed {case} {result}"
    grep -Eq "^batch-norm +external +correct +(pass|expected) +[0-9]+ +[1-9]" "$dir/out" || fail "batch-norm judged no case" ;;
  variant-scheduler-holds)
    expect 0 "every correct recipe passes" \
      "$gacc" check-external --precision fp16 --cases 8 --seed 4 --verbose \
      --cmd "$python $variants scheduler-holds {case} {result}"
    grep -q "the scheduler holds on steps GradScaler skipped" "$dir/out" || fail "no case with a held scheduler was judged" ;;
  variant-skip-partial-window)
    expect 1 "correct recipe failing: external" \
      "$gacc" check-external --cases 6 --seed 3 --shrinks 4 \
      --cmd "$python $variants skip-partial-window {case} {result}"
    grep -Eq "^schedules-and-counters +external +correct +fail" "$dir/out" || fail "the missing window was not a failing verdict"
    grep -Eq "optimizer steps?; the scenario has" "$dir/out" || fail "the verdict does not name the step count"
    grep -Eq "counterexample \([1-9][0-9]* shrinks" "$dir/out" || fail "the structural failure was not shrunk" ;;
  *)
    fail "unknown case" ;;
esac
no_orphans
exit 0
