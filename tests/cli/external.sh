#!/usr/bin/env bash
# external.sh GACC CASE PYTHON: case files and external commands from the command line, one case
# per CTest test (PYTHON: the project's environment, with torch, to write files as a stack would).
#   export-verify        a case exported, a result written from the LibTorch loop's trace, verified: exit 0
#   bad-case-files       missing, empty, truncated, garbage, another format, another version: exit 3 naming it
#   bad-result-files     a missing key, a wrong shape, a wrong dtype: exit 3 naming it; a wrong number of
#                        steps: a failing verdict, exit 1
#   differential-export-verify   a differential case exported from splits, the example stack run by
#                        hand, verified: exit 0; a tampered result: exit 1; a damaged one: exit 3 naming the key
#   command-fails        an external command that exits non-zero: exit 4 with its standard error's tail
#   command-hangs        one that outlives --timeout: exit 4 within it, its process group ended
#   command-writes-nothing   exit 4
#   worker-misbehaves    --worker (Note [worker protocol]): a worker that never says it is ready, says
#                        something else, exits, hangs, answers an error or "done" without a result:
#                        exit 4 naming what it did, with its output's tail, its process group ended;
#                        placeholders with --worker, bad --worker-fds: exit 2
#   interrupt-external   Ctrl-C (SIGINT) during check-external: exit 130 at once, the command ended
#   interrupt-run        SIGINT during `gacc run` with data-parallel ranks: exit 130, no rank left, no report
set -u
gacc=$1
case_name=$2
python=$3
. "$(dirname "$0")/lib.sh"

scenario='{"model":{"arch":"mlp_tanh","input_dim":2,"hidden_dim":3,"output_dim":1,"init_seed":4},"data":{"seed":9,"global_batch":3,"windows":[[[2,1]],[[1,2]]]},"optimizer":{"kind":"adam","lr":0.01},"accumulation_steps":2,"steps":2}'

# write_result OUT EDIT: the torch-accumulate trace of $scenario as a result file, edited by the
# Python statement EDIT (on the dict `r`).
write_result() {
  "$gacc" repro --recipe torch-accumulate --trace "$dir/trace.json" "$scenario" >/dev/null || fail "repro"
  "$python" - "$dir/trace.json" "$1" "$2" <<'PY' || fail "writing a result with python"
import json, sys, torch
trace_path, out, edit = sys.argv[1:4]
doc = json.load(open(trace_path))
names, trace = doc["parameters"], doc["recipes"]["torch-accumulate"]
# The canonical element names ("fc1.weight[2,0]") give each parameter's shape.
shapes = {}
for element in names:
    name, index = element.split("[")
    shapes[name] = [int(i) + 1 for i in index.rstrip("]").split(",")]
def tensors(flat):
    out, at = {}, 0
    for name, shape in shapes.items():
        n = 1
        for d in shape: n *= d
        out[name] = torch.tensor(flat[at:at + n], dtype=torch.float32).reshape(shape)
        at += n
    return out
steps = []
for s in trace["steps"]:
    steps.append({"grad": tensors(s["grad"]), "pre_clip_norm": s["pre_clip_norm"], "loss": s["loss"],
                  "lr": s["lr"], "loss_scale": s["loss_scale"], "skipped": s["skipped"],
                  "params_after": tensors(s["params_after"]),
                  "optimizer_state": {k: tensors(v) for k, v in s["optimizer_state"].items()}})
c = trace["counters"]
r = {"format": "gacc-result", "version": 1, "steps": steps,
     "counters": {k: c[k] for k in ("micro_batches", "optimizer_steps", "zero_grads", "scheduler_steps")}}
exec(edit)
torch.save(r, out)
PY
}

case "$case_name" in
  differential-export-verify)
    examples=$(cd "$(dirname "$0")/../../examples/python" && pwd)
    splits='{"seed":4,"windows":[[[0,1,2],[3],[4,5]],[[6],[7,8]]]}'
    expect 0 "^splits: \{\"accumulation_steps\":3,\"global_batch\":6," "$gacc" case export --mode differential --splits "$splits" --out "$dir/case.pt"
    "$python" "$examples/train_differential.py" "$dir/case.pt" "$dir/result.pt" || fail "train_differential.py"
    expect 0 "every correct recipe passes" "$gacc" case verify "$dir/case.pt" "$dir/result.pt"
    grep -Eq "^differential-gradients +result +correct +pass" "$dir/out" || fail "no passing differential-gradients row"
    "$python" - "$dir/result.pt" "$dir/wrong.pt" "$dir/damaged.pt" <<'PY' || fail "editing the result"
import sys, torch
r = torch.load(sys.argv[1])
r["accumulated"]["steps"][1]["grad"]["head.bias"] *= 1 + 1e-9
torch.save(r, sys.argv[2])
r["large_batch"]["steps"][0]["grad"]["head.bias"] = torch.zeros(3, dtype=torch.float64)
torch.save(r, sys.argv[3])
PY
    expect 1 "correct recipe failing: result" "$gacc" case verify "$dir/case.pt" "$dir/wrong.pt"
    grep -Eq "^differential-gradients +result +correct +fail" "$dir/out" || fail "the scaled gradient passed"
    expect 3 'result.large_batch.steps\[0\].grad\["head.bias"\]: shape \[3\], expected \[2\]' \
      "$gacc" case verify "$dir/case.pt" "$dir/damaged.pt"
    # The default: the first splits of a seed, as check-external --mode differential draws them.
    expect 0 "^splits: \{" "$gacc" case export --mode differential --seed 3 --out "$dir/seeded.pt"
    expect 2 "--splits needs --mode differential" "$gacc" case export --splits "$splits" --out "$dir/x.pt"
    expect 3 "splits.windows\[0\]\[1\]\[0\]: example index 0 appears twice" \
      "$gacc" case export --mode differential --splits '{"windows":[[[0],[0]]]}' --out "$dir/x.pt" ;;
  export-verify)
    expect 0 "^case: $dir/case.pt" "$gacc" case export --scenario "$scenario" --out "$dir/case.pt"
    write_result "$dir/result.pt" "pass"
    expect 0 "every correct recipe passes" "$gacc" case verify "$dir/case.pt" "$dir/result.pt"
    grep -Eq "^gradient-equivalence +result +correct +pass" "$dir/out" || fail "no passing gradient-equivalence row"
    grep -q "not judged from one result .*split-invariance" "$dir/out" || fail "split-invariance not listed as left out"
    # A result that is wrong, but well formed, fails the properties: exit 1.
    write_result "$dir/wrong.pt" 'r["steps"][0]["grad"]["fc1.weight"] *= 2'
    expect 1 "correct recipe failing: result" "$gacc" case verify "$dir/case.pt" "$dir/wrong.pt"
    # The default case: the first scenario of a seed.
    expect 0 "^scenario: \{" "$gacc" case export --seed 7 --out "$dir/seeded.pt"
    "$python" -c "
import sys, torch, torch.jit._pickle
with torch.serialization.safe_globals([torch.jit._pickle.restore_type_tag]):
    case = torch.load(sys.argv[1])
assert case['format'] == 'gacc-case' and case['version'] == 1, case['format']
" "$dir/seeded.pt" || fail "torch.load cannot read the case in its safe mode"
    expect 2 "--scenario and --seed exclude each other" "$gacc" case export --seed 7 --scenario "$scenario" --out "$dir/x.pt"
    expect 2 "--out is required" "$gacc" case export --seed 7 ;;
  bad-case-files)
    "$gacc" case export --scenario "$scenario" --out "$dir/case.pt" >/dev/null || fail "export"
    write_result "$dir/result.pt" "pass"
    expect 3 "cannot read $dir/none.pt" "$gacc" case verify "$dir/none.pt" "$dir/result.pt"
    : >"$dir/empty.pt"
    expect 3 "$dir/empty.pt: the file is empty" "$gacc" case verify "$dir/empty.pt" "$dir/result.pt"
    head -c 700 "$dir/case.pt" >"$dir/truncated.pt"
    expect 3 "$dir/truncated.pt: not a file torch.save or torch::pickle_save wrote" \
      "$gacc" case verify "$dir/truncated.pt" "$dir/result.pt"
    head -c 3000 /dev/urandom >"$dir/garbage.pt"
    expect 3 "$dir/garbage.pt: not a file torch.save" "$gacc" case verify "$dir/garbage.pt" "$dir/result.pt"
    expect 3 "case.format: \"gacc-result\", expected \"gacc-case\"" "$gacc" case verify "$dir/result.pt" "$dir/result.pt"
    "$python" -c "
import sys, torch, torch.jit._pickle
with torch.serialization.safe_globals([torch.jit._pickle.restore_type_tag]):
    case = torch.load(sys.argv[1])
case['version'] = 2
torch.save(case, sys.argv[2])
case['version'] = 1
case['parameters']['fc1.weight'] = case['parameters']['fc1.weight'].double().t()
torch.save(case, sys.argv[3])
" "$dir/case.pt" "$dir/v2.pt" "$dir/shape.pt" || fail "python"
    expect 3 "case.version: 2, but this gacc reads version 1 only" "$gacc" case verify "$dir/v2.pt" "$dir/result.pt"
    expect 3 "case.parameters\[\"fc1.weight\"\]: shape \[2, 3\], expected \[3, 2\]" \
      "$gacc" case verify "$dir/shape.pt" "$dir/result.pt" ;;
  bad-result-files)
    "$gacc" case export --scenario "$scenario" --out "$dir/case.pt" >/dev/null || fail "export"
    write_result "$dir/no-loss.pt" 'del r["steps"][1]["loss"]'
    expect 3 "result.steps\[1\]: has no key \"loss\"" "$gacc" case verify "$dir/case.pt" "$dir/no-loss.pt"
    write_result "$dir/shape.pt" 'r["steps"][0]["grad"]["fc2.bias"] = torch.zeros(2)'
    expect 3 "result.steps\[0\].grad\[\"fc2.bias\"\]: shape \[2\], expected \[1\]" \
      "$gacc" case verify "$dir/case.pt" "$dir/shape.pt"
    write_result "$dir/dtype.pt" 'r["steps"][1]["params_after"]["fc1.bias"] = torch.zeros(3, dtype=torch.int32)'
    expect 3 "result.steps\[1\].params_after\[\"fc1.bias\"\]: dtype Int, expected float32 or float64" \
      "$gacc" case verify "$dir/case.pt" "$dir/dtype.pt"
    # A wrong number of steps is the stack's behaviour: a failing verdict (exit 1), not bad input.
    write_result "$dir/steps.pt" 'r["steps"].append(r["steps"][0])'
    expect 1 "the recipe took 3 optimizer steps; the scenario has 2 windows" \
      "$gacc" case verify "$dir/case.pt" "$dir/steps.pt"
    write_result "$dir/counters.pt" 'r["counters"]["zero_grad"] = 2'
    expect 3 "result.counters: has an unknown key \"zero_grad\"" "$gacc" case verify "$dir/case.pt" "$dir/counters.pt"
    write_result "$dir/tuple.pt" 'r["steps"] = tuple(r["steps"])'
    expect 3 "result.steps: is a tuple, expected a list" "$gacc" case verify "$dir/case.pt" "$dir/tuple.pt" ;;
  command-fails)
    expect 4 "the external command exited with status 3: echo" \
      "$gacc" check-external --cases 2 --cmd "echo 'RuntimeError: shapes do not match' >&2; exit 3 # {case} {result}"
    grep -q -- "--- the end of its output ---" "$dir/out" || fail "no output section"
    grep -q "^RuntimeError: shapes do not match" "$dir/out" || fail "no stderr tail" ;;
  command-hangs)
    start=$(date +%s)
    expect 4 "ran past --timeout 1 s \(its process group was ended\)" \
      "$gacc" check-external --cases 2 --timeout 1 --cmd "sleep 60 & sleep 60 # {case} {result}"
    [ $(($(date +%s) - start)) -le 10 ] || fail "took more than 10 s to give up"
    no_orphans ;;
  command-writes-nothing)
    expect 4 "exited with status 0 but wrote no result" "$gacc" check-external --cases 1 --cmd "true {case} {result}"
    expect 2 "must contain \{case\} and \{result\}" "$gacc" check-external --cmd "true {case}" ;;
  worker-misbehaves)
    ready='echo "{\"gacc_worker\": 1}"'
    start=$(date +%s)
    expect 4 "the worker did not say it is ready .*did not answer within --timeout" \
      "$gacc" check-external --worker --cases 2 --timeout 1 --cmd "sleep 60 & sleep 60"
    [ $(($(date +%s) - start)) -le 10 ] || fail "took more than 10 s to give up on a silent worker"
    no_orphans
    expect 4 "answered where \{\"gacc_worker\": 1\} was due: Loading the model" \
      "$gacc" check-external --worker --cases 2 --cmd "echo 'Loading the model...'; sleep 60"
    expect 4 "the worker exited \(its (output ended|input is closed)\)" "$gacc" check-external --worker --cases 2 --cmd "$ready"
    expect 4 "speaks another protocol version than 1" \
      "$gacc" check-external --worker --cases 2 --cmd 'echo "{\"gacc_worker\": 2}"; sleep 60'
    expect 4 "the worker did not answer within --timeout" \
      "$gacc" check-external --worker --cases 2 --timeout 1 --cmd "$ready; sleep 60"
    no_orphans
    expect 4 "the worker failed on this case: RuntimeError: shapes do not match" \
      "$gacc" check-external --worker --cases 2 \
      --cmd "$ready; read -r request; echo 'Traceback: the stack' >&2; echo '{\"error\": \"RuntimeError: shapes do not match\"}'; sleep 60"
    grep -q "^Traceback: the stack" "$dir/out" || fail "no stderr tail of the worker"
    expect 4 "the worker answered done but wrote no result" \
      "$gacc" check-external --worker --cases 2 --cmd "$ready; read -r request; echo '{\"done\": true}'; sleep 60"
    expect 4 "the worker answered with no protocol line: 50% done" \
      "$gacc" check-external --worker --cases 2 --cmd "$ready; read -r request; echo '50% done'; sleep 60"
    no_orphans
    expect 2 "with --worker the command is started once" "$gacc" check-external --worker --cmd "train {case} {result}"
    expect 2 "--worker-fds:? must be IN,OUT" "$gacc" check-external --worker-fds 3
    expect 2 "--worker-fds 97,98: not two open file descriptors" "$gacc" check-external --worker-fds 97,98
    expect 2 "--cmd is required" "$gacc" check-external --cases 2
    expect 2 "give one of them" "$gacc" check-external --worker --worker-fds 0,1 --cmd "train" ;;
  interrupt-external)
    "$gacc" check-external --cases 2 --json "$dir/report.json" --cmd "sleep 60 # {case} {result}" >"$dir/out" 2>&1 &
    pid=$!
    sleep 1.5
    start=$(date +%s)
    kill -INT "$pid"
    wait "$pid"
    code=$?
    [ "$code" -eq 130 ] || fail "expected exit code 130 after SIGINT, got $code"
    [ $(($(date +%s) - start)) -le 5 ] || fail "took more than 5 s to stop"
    grep -q "interrupted by SIGINT" "$dir/out" || fail "no message saying it was interrupted"
    [ ! -e "$dir/report.json" ] || fail "an interrupted run wrote a report"
    no_orphans ;;
  interrupt-run)
    "$gacc" run --cases 400 --ranks 3 --json "$dir/report.json" >"$dir/out" 2>&1 &
    pid=$!
    sleep 6
    kill -INT "$pid"
    wait "$pid"
    code=$?
    [ "$code" -eq 130 ] || fail "expected exit code 130 after SIGINT, got $code"
    grep -q "interrupted by SIGINT" "$dir/out" || fail "no message saying it was interrupted"
    ls "$dir" | grep -q "report.json" && fail "an interrupted run left a report: $(ls "$dir")"
    no_orphans ;;
  *)
    fail "unknown case" ;;
esac
exit 0
