#!/usr/bin/env bash
# python_examples.sh GACC PYTHON CASE: the PyTorch examples of examples/python, run for real through
# `gacc check-external` in the project's virtual environment.
#   correct   train_accumulate.py passes every property: exit 0
#   broken    train_accumulate_broken.py (mean of per-micro-batch means) is flagged: exit 1, with the
#             property that catches it and the lines that reproduce its shrunk counterexample
set -u
gacc=$1
python=$2
case_name=$3
examples=$(cd "$(dirname "$0")/../../examples/python" && pwd)
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
  *)
    fail "unknown case" ;;
esac
no_orphans
exit 0
