#!/usr/bin/env bash
# reports.sh GACC PYTHON: `gacc run --json --junit` writes both reports, complete and parseable,
# with the documented shapes, byte for byte the same from the same seed; an unwritable report path
# is exit 4.
set -eu
gacc=$1
python=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$gacc" run --cases 100 --seed 3 --json "$dir/report.json" --junit "$dir/report.xml" >/dev/null
"$python" - "$dir/report.json" "$dir/report.xml" <<'PY'
import json, sys, xml.etree.ElementTree as ET
report = json.load(open(sys.argv[1]))
assert set(report) >= {"version", "seed", "results", "summary"}, report.keys()
assert report["seed"] == 3
for row in report["results"]:
    assert set(row) >= {"property", "recipe", "recipe_kind", "verdict", "cases", "cases_judged", "checks",
                        "checks_not_judged", "worst_ratio", "notes", "diagnosis", "counterexample"}, row
    assert row["recipe_kind"] in ("correct", "pitfall")
    assert row["verdict"] in ("pass", "fail", "expected_fail", "skip", "not_judged")
    assert 0 <= row["cases_judged"] <= row["cases"] and 0 <= row["checks_not_judged"] <= row["checks"], row
    # A row that judged no case is never a pass (Note [looked]).
    assert row["verdict"] != "pass" or row["cases_judged"] > 0, row
    if row["recipe_kind"] == "correct" and row["verdict"] != "skip":
        assert row["verdict"] in ("pass", "expected_fail"), row
summary = report["summary"]
assert set(summary) >= {"pass", "fail", "expected_fail", "skip", "not_judged", "checks", "checks_not_judged",
                        "correct_failing", "pitfalls_escaping", "pitfalls_not_judged"}
assert summary["checks"] > 0 and summary["checks_not_judged"] < summary["checks"] / 10, summary
assert set(report["coverage"]) >= {"gradient-equivalence", "step-equivalence"}, report["coverage"].keys()
assert len(report["cells"]) == 54, report["cells"]
assert summary["correct_failing"] == [] and summary["pitfalls_escaping"] == [], summary
root = ET.parse(sys.argv[2]).getroot()
assert root.tag == "testsuites" and root.get("failures") == "0", ET.tostring(root)[:200]
assert len(root.findall("testsuite/testcase")) == len(report["results"])
PY
# Determinism: the same seed gives a byte-identical report, whatever the thread counts the
# environment asks for (gacc's arithmetic runs on one intra-op thread per process, ranks included).
OMP_NUM_THREADS=4 MKL_NUM_THREADS=4 "$gacc" run --cases 100 --seed 3 --json "$dir/again.json" >/dev/null
cmp -s "$dir/report.json" "$dir/again.json" || { echo "two runs of seed 3 wrote different reports"; diff "$dir/report.json" "$dir/again.json" | head; exit 1; }
"$gacc" pitfalls --cases 80 --seed 3 --json "$dir/pitfalls.json" >/dev/null
"$python" - "$dir/pitfalls.json" <<'PY'
import json, sys
pitfalls = json.load(open(sys.argv[1]))
assert len(pitfalls) >= 16, len(pitfalls)
for p in pitfalls:
    assert set(p) >= {"pitfall", "caught_by", "min_ratio", "reference"}, p.keys()
    assert p["reference"], p["pitfall"]
    assert p["caught_by"], p["pitfall"] + " escapes"
    for c in p["caught_by"]:
        assert c["worst_ratio"] is None or c["worst_ratio"] >= 1, (p["pitfall"], c)
PY
"$gacc" pitfalls --cases 10 --plot "$dir/plots" >/dev/null || true  # 10 cases need not catch every pitfall
for name in index forgotten-loss-scaling token-mean-of-means batch-norm-micro-batch-statistics \
            gradients-averaged-twice unused-parameters-not-synced; do
  head -c 200 "$dir/plots/$name.svg" | grep -q "<svg" || { echo "no SVG plot $name.svg"; exit 1; }
  grep -q "<polyline" "$dir/plots/$name.svg" || { echo "$name.svg draws no curve"; exit 1; }
done
# A data-parallel pitfall is drawn beside the large batch and a correct data-parallel loop.
[ "$(grep -o "<polyline" "$dir/plots/unused-parameters-not-synced.svg" | wc -l)" -eq 3 ] ||
  { echo "unused-parameters-not-synced.svg lacks a curve"; exit 1; }
set +e
"$gacc" pitfalls --cases 1 --plot /proc/no-such-dir >/dev/null 2>"$dir/err"
code=$?
set -e
[ "$code" -eq 4 ] || { echo "unwritable --plot: expected exit 4, got $code"; exit 1; }
scenario='{"model":{"arch":"linear","input_dim":2,"output_dim":1,"init_seed":0},"data":{"seed":0,"global_batch":3,"windows":[[[1,2]],[[2,1]]]},"optimizer":{"kind":"sgd","lr":0.25,"momentum":0.5},"accumulation_steps":2,"steps":2}'
"$gacc" repro "$scenario" --trace "$dir/trace.json" >/dev/null
"$python" - "$dir/trace.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
assert len(t["oracle"]) == 2 and len(t["parameters"]) == 3, t.keys()
assert t["parameters"][0] == "linear.weight[0,0]"
step = t["oracle"][1]
assert set(step) >= {"grad", "grad_tolerance", "params_after", "params_after_tolerance", "optimizer_state"}
assert all(x > 0 for x in step["grad_tolerance"])
correct = t["recipes"]["torch-accumulate"]["steps"]
assert len(correct) == 2
for o, e, tol in zip(correct[1]["params_after"], step["params_after"], step["params_after_tolerance"]):
    assert abs(o - e) <= tol, (o, e, tol)
assert len(t["recipes"]["optimizer-step-every-micro-batch"]["steps"]) == 4
PY
# A row's worst case (--verbose: "worst (case N)"; --json: "worst_case") is generated case N of the
# run, and `gacc repro --case N` with the run's seed and precision reruns it to the same ratio.
"$gacc" run --cases 6 --seed 11 --precision bf16 --filter torch-accumulate --verbose --json "$dir/worst.json" >"$dir/worst.txt"
grep -Eq "^  worst \(case [0-5]\): " "$dir/worst.txt" || { echo "--verbose names no worst case"; head -20 "$dir/worst.txt"; exit 1; }
read -r worst_case worst_property worst_ratio < <("$python" - "$dir/worst.json" <<'PY'
import json, sys
rows = [r for r in json.load(open(sys.argv[1]))["results"] if r["recipe"] == "torch-accumulate" and r["verdict"] == "pass"]
row = max(rows, key=lambda r: r["worst_ratio"])
assert isinstance(row["worst_case"], int) and 0 <= row["worst_case"] < 6, row
print(row["worst_case"], row["property"], "%.3g" % row["worst_ratio"])
PY
)
"$gacc" repro --case "$worst_case" --seed 11 --precision bf16 --recipe torch-accumulate >"$dir/repro.txt"
grep -q '"precision":"bf16"' "$dir/repro.txt" || { echo "repro --case --precision bf16 drew another precision"; head -3 "$dir/repro.txt"; exit 1; }
# (The run's row passes; the one case alone may be not judged: its checks need not all look.)
grep -Eq "^$worst_property +torch-accumulate +correct +(pass|not judged) +1 +[01] +$worst_ratio\b" "$dir/repro.txt" ||
  { echo "repro --case $worst_case did not rerun $worst_property at ratio $worst_ratio"; grep "^$worst_property" "$dir/repro.txt"; exit 1; }
ls "$dir" | grep -q tmp && { echo "a temporary report file was left behind"; exit 1; }
set +e
"$gacc" run --cases 1 --json /nonexistent-dir/report.json >/dev/null 2>"$dir/err"
code=$?
set -e
[ "$code" -eq 4 ] || { echo "unwritable --json: expected exit 4, got $code"; exit 1; }
grep -q "/nonexistent-dir/report.json" "$dir/err" || { echo "the error does not name the path"; cat "$dir/err"; exit 1; }
echo "reports ok"
