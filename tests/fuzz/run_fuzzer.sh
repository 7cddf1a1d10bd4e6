#!/usr/bin/env bash
# run_fuzzer.sh FUZZER CORPUS SECONDS [FLAGS...]: runs a libFuzzer target for SECONDS over the committed
# CORPUS (read only: new inputs go to a temporary directory). Any crash, sanitizer report, leak,
# timeout or out-of-memory fails the test and prints the input that caused it (base64), to be added
# to CORPUS once fixed.
#
# The mutations are seeded with GACC_FUZZ_SEED (default 1), so the test suite is a deterministic
# gate: the same inputs every run, as many as the machine gets through in SECONDS. Exploring with
# fresh seeds for longer is `make fuzz` (GACC_FUZZ_SEED=0: libFuzzer picks one).
set -u
fuzzer=$1
corpus=$2
seconds=$3
shift 3
[ -x "$fuzzer" ] || { echo "no fuzzer at $fuzzer (the clang fuzz build did not run)"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/new" "$dir/artifacts"
# -detect_leaks=0 (the file readers: LibTorch leaks on malformed archives) also stops the leak
# check at exit, which would count the same leaks again.
case " $* " in *" -detect_leaks=0 "*) export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" ;; esac
"$fuzzer" -seed="${GACC_FUZZ_SEED:-1}" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 -print_final_stats=1 \
  -artifact_prefix="$dir/artifacts/" "$@" "$dir/new" "$corpus" >"$dir/log" 2>&1
code=$?
grep -E "^stat::number_of_executed_units|^Done" "$dir/log"
if [ "$code" -ne 0 ] || [ -n "$(ls "$dir/artifacts")" ]; then
  echo "FUZZER FAILED (exit $code)"
  grep -vE "^#[0-9]+" "$dir/log" | tail -60
  for artifact in "$dir"/artifacts/*; do
    [ -f "$artifact" ] && echo "input $(basename "$artifact"): $(base64 -w0 "$artifact")"
  done
  exit 1
fi
exit 0
