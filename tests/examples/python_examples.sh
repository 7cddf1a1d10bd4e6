#!/usr/bin/env bash
# python_examples.sh GACC PYTHON CASE: the PyTorch examples of examples/python, run for real through
# `gacc check-external` in the project's virtual environment.
#   correct   train_accumulate.py passes every property: exit 0
#   broken    train_accumulate_broken.py (mean of per-micro-batch means) is flagged: exit 1, with the
#             property that catches it and the lines that reproduce its shrunk counterexample
#   differential-correct   train_differential.py (a model outside the zoo) passes every differential check
#   differential-broken    train_differential_broken.py (mean of means) fails them: exit 1, the failing
#                          check, a shrunk counterexample and the lines that rerun it, which do
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
    line=$(grep -o "gacc case export --mode differential --splits '.*' --out case.pt && .*train_differential_broken.py 'case.pt' 'result.pt' && gacc case verify case.pt result.pt" "$dir/out" | head -1)
    [ -n "$line" ] || fail "no reproduce line"
    # The reproduce line reruns the loop by hand: gacc's own binary for "gacc".
    (cd "$dir" && eval "${line//gacc case/\"$gacc\" case}") >"$dir/rerun" 2>&1
    [ $? -eq 1 ] || { cat "$dir/rerun"; fail "the reproduce line did not fail again"; }
    grep -Eq "^differential-gradients +result +correct +fail" "$dir/rerun" || fail "the rerun did not fail differential-gradients" ;;
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
