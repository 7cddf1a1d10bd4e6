#!/usr/bin/env bash
# every_flag.sh GACC: every flag of every command, given a bad value (docs/command-line.md, "Exit codes"): the
# documented exit code, a message naming the problem, and nothing written — no report, no
# temporary file, no probe left in the working directory or beside an output path. Every row runs;
# the test fails at the end listing every row that did not hold.
#
# An output path that cannot be written is refused before any work (exit 4), so these rows are as
# quick as the usage errors: each command would otherwise compute for minutes first.
set -u
gacc=$1
case_name="every flag"
source "$(dirname "$0")/lib.sh"

work="$dir/work"
mkdir "$work" "$work/a-directory"
cd "$work" || exit 1
failures=0

# row CODE PATTERN ARGS...: `gacc ARGS...` exits CODE with output matching PATTERN.
row() {
  local code=$1 pattern=$2
  shift 2
  timeout 60 "$gacc" "$@" >"$dir/out" 2>&1
  local got=$?
  if [ "$got" -ne "$code" ] || ! grep -Eq -- "$pattern" "$dir/out"; then
    echo "FAILED: gacc $* -> exit $got (expected $code, /$pattern/):"
    head -3 "$dir/out" | sed 's/^/    /'
    failures=$((failures + 1))
  fi
}

scenario='{"model":{"arch":"linear","input_dim":1,"output_dim":1,"init_seed":0},"data":{"seed":0,"global_batch":2,"windows":[[[1,1]]]},"optimizer":{"kind":"sgd","lr":0.25},"accumulation_steps":2,"steps":1}'
unwritable=/proc/no-such-directory/report
touch "$dir/a-file"
not_a_directory=$dir/a-file/plots
cmd='x {case} {result}'

# Flags shared by the commands that run recipes: --cases, --seed, --ranks, --timeout.
for command in run pitfalls "explain zero-grad-every-micro-batch"; do
  # shellcheck disable=SC2086
  set -- $command
  row 2 "--cases: Value 0 not in range" "$@" --cases 0
  row 2 "--cases: Value 10000001 not in range" "$@" --cases 10000001
  row 2 "--cases: Value abc could not be converted|--cases.*abc" "$@" --cases abc
  row 2 "--seed: must be an integer" "$@" --seed abc
  row 2 "--seed: must be an integer" "$@" --seed -1
  row 2 "--seed: must be an integer" "$@" --seed 18446744073709551616
  row 2 "--seed: must be an integer" "$@" --seed 1e3
  row 2 "--cases.*requires|--cases: .*argument|Argument.*--cases|--cases" "$@" --cases
done
for command in run pitfalls "explain zero-grad-every-micro-batch" "check-external --cmd x{case}{result}" \
  "bench coverage"; do
  # shellcheck disable=SC2086
  set -- $command
  row 2 "--precision: fp8 not in \{fp32,bf16,fp16\}" "$@" --precision fp8
  row 2 "--precision.*(requires|argument)|Argument.*--precision|--precision" "$@" --precision
done
for command in run pitfalls "explain zero-grad-every-micro-batch" "repro $scenario"; do
  # shellcheck disable=SC2086
  set -- $command
  row 2 "--ranks: Value 0 not in range" "$@" --ranks 0
  row 2 "--ranks: Value 65 not in range" "$@" --ranks 65
  row 2 "--timeout: Value 0 not in range" "$@" --timeout 0
  row 2 "--timeout: Value 3601 not in range" "$@" --timeout 3601
  row 2 "--timeout.*(could not be converted|not in range)|--timeout" "$@" --timeout soon
  row 2 "expected crash:RANK, hang:RANK, exit:RANK or throw:RANK" "$@" --inject-fault melt:1
  row 2 "--backend: mpi not in \{gloo,nccl\}" "$@" --backend mpi
  row 2 "--colour" "$@" --colour
done

# run
row 2 "matches no property and no recipe" run --filter no-such-thing
row 2 "--json: must name a path" run --json ""
row 2 "--junit: must name a path" run --junit ""
row 4 "cannot write $unwritable.json" run --json "$unwritable.json"
row 4 "cannot write $unwritable.xml" run --junit "$unwritable.xml"
row 4 "cannot write a-directory: it is a directory" run --json a-directory
row 2 "Could not convert: --verbose = maybe" run --verbose=maybe
row 2 "run.*(extra|arguments were not expected|unexpected)|The following argument" run stray-argument
# A report path that is fine, on a command refused for another reason: nothing written.
row 2 "--cases: Value 0 not in range" run --cases 0 --json report.json --junit report.xml

# list
row 2 "Could not convert: --json = yes-please" list --json=yes-please
row 2 "arguments were not expected|extra|The following argument" list stray-argument

# pitfalls
row 2 "--json: must name a path" pitfalls --json ""
row 2 "--plot: must name a path" pitfalls --plot ""
row 4 "cannot write $unwritable.json" pitfalls --json "$unwritable.json"
row 4 "cannot create the directory $not_a_directory: $dir/a-file is not a directory" pitfalls --plot "$not_a_directory"
row 4 "cannot create the directory /proc/no-such-directory/plots" pitfalls --plot /proc/no-such-directory/plots

# explain
row 2 "pitfall is required" explain
row 2 "unknown pitfall .no-such-pitfall.. the pitfalls are:" explain no-such-pitfall

# bench
row 2 "what is required" bench
row 2 "unknown benchmark \"gpu-magic\"" bench gpu-magic
row 2 "--json: must name a path" bench oracle --json ""
row 4 "cannot write $unwritable.json" bench oracle --json "$unwritable.json"
row 4 "cannot write $unwritable.json" bench data-parallel --json "$unwritable.json"
row 2 "--backend: mpi not in \{gloo,nccl\}" bench data-parallel --backend mpi
row 2 "--backend is for gacc bench data-parallel, not oracle" bench oracle --backend nccl
row 2 "--cases and --precision are for gacc bench coverage, not oracle" bench oracle --cases 5
row 2 "--cases and --precision are for gacc bench coverage, not data-parallel" bench data-parallel --precision bf16
row 2 "--cases: Value 0 not in range" bench coverage --cases 0
row 4 "cannot write $unwritable.json" bench coverage --json "$unwritable.json"

# repro
row 2 "give a scenario, or --case N" repro
row 2 "--case excludes scenario|scenario excludes --case|excludes" repro --case 3 "$scenario"
row 2 "--seed requires --case|--seed.*needs|requires" repro --seed 3 "$scenario"
row 2 "--precision is for --case" repro --precision bf16 "$scenario"
row 2 "--case: Value -1 not in range|--case" repro --case -1
row 2 "--case: Value abc could not be converted|--case.*abc" repro --case abc
row 2 "unknown recipe .nope." repro --recipe nope "$scenario"
row 2 "--trace: must name a path" repro --trace "" "$scenario"
row 4 "cannot write $unwritable.json" repro --trace "$unwritable.json" "$scenario"
row 3 "cannot read /nonexistent/scenario.json" repro /nonexistent/scenario.json
row 3 "cannot read a-directory: it is a directory" repro a-directory
row 3 "malformed JSON" repro '{"model":'

# case export
row 2 "subcommand is required" case
row 2 "--out is required" case export --seed 1
row 2 "--out: must name a path" case export --out ""
row 2 "--seed: must be an integer" case export --seed abc --out case.pt
row 2 "--scenario and --seed exclude each other" case export --seed 2 --scenario "$scenario" --out case.pt
row 4 "cannot write $unwritable.pt" case export --seed 1 --out "$unwritable.pt"
row 4 "cannot write a-directory: it is a directory" case export --seed 1 --out a-directory
row 3 "malformed JSON" case export --scenario '{"model":' --out case.pt
row 3 "cannot read /nonexistent/scenario.json" case export --scenario /nonexistent/scenario.json --out case.pt

row 2 "--mode: nonsense not in \{oracle,differential\}" case export --mode nonsense --out case.pt
row 2 "--splits needs --mode differential" case export --splits '{}' --out case.pt
row 2 "--scenario is for --mode oracle" case export --mode differential --scenario "$scenario" --out case.pt
row 3 "splits: malformed JSON" case export --mode differential --splits '{"seed":' --out case.pt
row 3 "splits.windows\[0\]\[1\]\[0\]: example index 0 appears twice" case export --mode differential \
  --splits '{"seed":1,"global_batch":2,"windows":[[[0],[0]]]}' --out case.pt
row 3 "cannot read /nonexistent/splits.json" case export --mode differential --splits /nonexistent/splits.json --out case.pt

# case verify
row 2 "case is required" case verify
row 2 "result is required" case verify case.pt
row 2 "--json: must name a path" case verify --json "" case.pt result.pt
row 4 "cannot write $unwritable.json" case verify --json "$unwritable.json" case.pt result.pt
row 3 "cannot read case.pt" case verify case.pt result.pt
row 3 "cannot read a-directory: it is a directory" case verify a-directory result.pt

# check-external
row 2 "--cmd is required" check-external
row 2 "must contain \{case\} and \{result\}" check-external --cmd "true"
row 2 "--cases: Value 0 not in range" check-external --cmd "$cmd" --cases 0
row 2 "--seed: must be an integer" check-external --cmd "$cmd" --seed abc
row 2 "--timeout: Value 0 not in range" check-external --cmd "$cmd" --timeout 0
row 2 "--timeout: Value 86401 not in range" check-external --cmd "$cmd" --timeout 86401
row 2 "--ranks: Value 0 not in range" check-external --cmd "$cmd" --ranks 0
row 2 "--ranks: Value 65 not in range" check-external --cmd "$cmd" --ranks 65
row 2 "--shrinks: Value -1 not in range" check-external --cmd "$cmd" --shrinks -1
row 2 "--mode: nonsense not in \{oracle,differential\}" check-external --cmd "$cmd" --mode nonsense
row 2 "--keep: must name a path" check-external --cmd "$cmd" --keep ""
row 2 "--json: must name a path" check-external --cmd "$cmd" --json ""
row 2 "--junit: must name a path" check-external --cmd "$cmd" --junit ""
row 4 "cannot create the directory $not_a_directory" check-external --cmd "$cmd" --keep "$not_a_directory"
row 4 "cannot write $unwritable.json" check-external --cmd "$cmd" --json "$unwritable.json"
row 4 "cannot write $unwritable.xml" check-external --cmd "$cmd" --junit "$unwritable.xml"
row 2 "--cmd is required \(or --worker-fds" check-external --worker
row 2 "with --worker the command is started once" check-external --worker --cmd "$cmd"
row 2 "--worker-fds:? must be IN,OUT" check-external --worker-fds x,1
row 2 "--worker-fds:? must be IN,OUT" check-external --worker-fds ""
row 2 "--worker-fds 200,201: not two open file descriptors" check-external --worker-fds 200,201

# Nothing was written: the working directory holds what the test made, and nothing else.
left=$(find . -mindepth 1 ! -path ./a-directory | sort)
if [ -n "$left" ]; then
  echo "FAILED: files left behind: $left"
  failures=$((failures + 1))
fi
[ -z "$(ls -A a-directory)" ] || { echo "FAILED: a-directory was written into"; failures=$((failures + 1)); }
no_orphans
if [ "$failures" -ne 0 ]; then
  echo "$failures rows failed"
  exit 1
fi
echo "every row held"
exit 0
