#!/usr/bin/env bash
# time_run.sh [GACC] [CASES...]: wall time of `gacc run` at each case count (best of 3), against
# the 60 s target for the default matrix (bench/RESULTS.md).
set -euo pipefail
gacc=${1:-build/gacc}
shift || true
counts=("${@:-100 1000}")
for n in ${counts[@]}; do
  best=""
  for _ in 1 2 3; do
    start=$(date +%s.%N)
    "$gacc" run --cases "$n" >/dev/null
    end=$(date +%s.%N)
    t=$(echo "$end - $start" | bc -l)
    if [ -z "$best" ] || (( $(echo "$t < $best" | bc -l) )); then best=$t; fi
  done
  printf "gacc run --cases %-6s %7.3f s   %.4f of the 60 s target\n" "$n" "$best" "$(echo "$best / 60" | bc -l)"
done
