#!/usr/bin/env bash
# data_parallel.sh GACC CASE [PYTHON]: data parallelism from the command line, one case per CTest test.
#   fault-crash | fault-exit | fault-hang   a rank of the local pool dies or hangs mid-window: exit 4
#                                           naming the rank, within the collective timeout, and no
#                                           gacc-rank process is left behind
#   torchrun            three `gacc run` processes under torchrun's variables agree and exit 0
#   torchrun-launcher   the same under torchrun itself (PYTHON's environment; skipped, 77, without)
#   torchrun-port-in-use | torchrun-no-master | torchrun-rank-missing | torchrun-bad-environment
#                                           a clear message and the documented exit code
#   nccl                the data-parallel recipes and pitfalls over NCCL on two GPUs: every correct
#                       one passes, every pitfall is caught
#   nccl-fault-crash | nccl-fault-hang      a NCCL rank dies or hangs: exit 4 naming it, no orphans
#                       (the nccl cases skip, 77, without two CUDA devices or the NCCL plugin)
set -u
gacc=$1
case_name=$2
python=${3:-}
. "$(dirname "$0")/lib.sh"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

run_dp=(run --filter ddp-accumulate --cases 60)

# The NCCL cases need two devices and the plugin: skip when gacc says either is missing.
skip_without_two_gpus() {
  local probe
  probe=$("$gacc" run --backend nccl --ranks 2 --filter no-such-recipe 2>&1)
  if grep -Eq "needs 2 CUDA devices|needs at least 2 CUDA devices|without the NCCL backend|cannot load the NCCL plugin" <<<"$probe"; then
    echo "$probe: skipped"
    exit 77
  fi
}
case "$case_name" in
  fault-crash)
    expect 4 "rank 1 \(pid [0-9]+\) was killed by signal 11 .* during job [0-9]+ \(ddp-accumulate on [0-9]+ ranks: gacc repro" \
      "$gacc" "${run_dp[@]}" --timeout 2 --inject-fault crash:1
    no_orphans ;;
  fault-exit)
    expect 4 "rank 2 \(pid [0-9]+\) exited with status 0 during job" \
      "$gacc" "${run_dp[@]}" --timeout 2 --inject-fault exit:2
    no_orphans ;;
  fault-hang)
    start=$(date +%s)
    # Whether rank 0's own timeout report is in by then is a race on a loaded machine: not required.
    expect 4 "rank 1 hung: no result and no progress for 3000 ms \(after step 0, micro-batch 0\)" \
      "$gacc" "${run_dp[@]}" --timeout 2 --inject-fault hang:1
    elapsed=$(($(date +%s) - start))
    # The hung rank is named once the timeout (2 s) and its grace second have passed: not a
    # performance figure, a bound on how long a hang goes unreported (generous for a loaded machine).
    [ "$elapsed" -le 30 ] || fail "the hang was reported after $elapsed s"
    no_orphans ;;
  torchrun)
    port=$(free_port)
    for rank in 1 2; do
      RANK=$rank WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
        "$gacc" run --filter ddp --cases 60 >"$dir/rank$rank" 2>&1 &
    done
    RANK=0 WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$gacc" run --filter ddp --cases 60 >"$dir/out" 2>&1
    code=$?
    for job in $(jobs -p); do wait "$job" || fail "a serving rank exited with status $? ($(cat "$dir"/rank*))"; done
    [ "$code" -eq 0 ] || fail "rank 0 exited with status $code"
    grep -Eq "^data-parallel +ddp-accumulate +correct +pass +[1-9]" "$dir/out" || fail "no data-parallel case judged on 3 ranks"
    grep -q "every correct recipe passes" "$dir/out" || fail "rank 0's summary"
    [ ! -s "$dir/rank1" ] && [ ! -s "$dir/rank2" ] || fail "serving ranks printed: $(cat "$dir"/rank*)"
    no_orphans ;;
  torchrun-launcher)
    torchrun="$(dirname "$python")/torchrun"
    [ -n "$python" ] && [ -x "$torchrun" ] || { echo "no torchrun beside '$python': skipped"; exit 77; }
    expect 0 "^data-parallel +ddp-accumulate +correct +pass +[1-9]" \
      "$torchrun" --standalone --nproc-per-node 3 --no-python "$gacc" run --filter ddp --cases 60
    grep -q "every correct recipe passes" "$dir/out" || fail "rank 0's summary"
    no_orphans ;;
  torchrun-port-in-use)
    python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1]); sys.stdout.flush(); time.sleep(60)' >"$dir/port" &
    holder=$!
    for _ in $(seq 50); do [ -s "$dir/port" ] && break; sleep 0.1; done
    port=$(cat "$dir/port")
    RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      expect 4 "cannot host the TCPStore on 127.0.0.1:$port \(is the port in use\?\)" "$gacc" "${run_dp[@]}" --timeout 1
    kill "$holder"; wait "$holder" 2>/dev/null
    no_orphans ;;
  torchrun-no-master)
    port=$(free_port)
    RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      expect 4 "cannot reach the master's TCPStore at 127.0.0.1:$port within 1000 ms" "$gacc" run --timeout 1 ;;
  torchrun-rank-missing)
    port=$(free_port)
    RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      expect 4 "rank 1 of 2 did not check in at 127.0.0.1:$port within 1000 ms" "$gacc" "${run_dp[@]}" --timeout 1
    no_orphans ;;
  torchrun-bad-environment)
    RANK=0 WORLD_SIZE=two expect 2 'WORLD_SIZE="two" \(torchrun.s convention\) is not an integer' "$gacc" run
    RANK=3 WORLD_SIZE=2 expect 2 "RANK=3 is not below WORLD_SIZE=2" "$gacc" run
    RANK=0 WORLD_SIZE=2 expect 2 "MASTER_ADDR and MASTER_PORT are not" "$gacc" run
    RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=99999 expect 2 'MASTER_PORT "99999" is not a port number' "$gacc" run ;;
  nccl)
    skip_without_two_gpus
    expect 0 "every correct recipe passes and every pitfall is caught" \
      "$gacc" run --backend nccl --ranks 2 --filter data-parallel --cases 60
    grep -Eq "^data-parallel +ddp-accumulate +correct +pass +[1-9]" "$dir/out" || fail "no data-parallel case judged over NCCL"
    no_orphans ;;
  nccl-fault-crash)
    skip_without_two_gpus
    expect 4 "rank 1 \(pid [0-9]+\) was killed by signal 11 .* during job [0-9]+ \(ddp-accumulate on 2 ranks" \
      "$gacc" "${run_dp[@]}" --backend nccl --ranks 2 --timeout 5 --inject-fault crash:1
    no_orphans ;;
  nccl-fault-hang)
    skip_without_two_gpus
    expect 4 "rank 1 hung: no result and no progress for 6000 ms" \
      "$gacc" "${run_dp[@]}" --backend nccl --ranks 2 --timeout 5 --inject-fault hang:1
    no_orphans ;;
  *)
    fail "unknown case" ;;
esac
exit 0
