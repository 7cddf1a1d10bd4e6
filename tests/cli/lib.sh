#!/usr/bin/env bash
# lib.sh: what the command-line test scripts share. Source it after setting `case_name`; it makes
# `$dir` (a temporary directory removed on exit) and exports a marker every child inherits.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# Every process this test starts inherits the marker: the orphan check looks for it.
export GACC_TEST_MARKER="gacc-cli-test-$$-$RANDOM"
unset RANK WORLD_SIZE MASTER_ADDR MASTER_PORT

fail() {
  echo "FAILED ($case_name): $*"
  [ -f "$dir/out" ] && tail -20 "$dir/out"
  exit 1
}

# expect CODE PATTERN COMMAND...: exit code and a line matching PATTERN (output kept in $dir/out).
expect() {
  local code=$1 pattern=$2
  shift 2
  "$@" >"$dir/out" 2>&1
  local got=$?
  [ "$got" -eq "$code" ] || fail "expected exit code $code, got $got from: $*"
  grep -Eq -- "$pattern" "$dir/out" || fail "expected output matching /$pattern/ from: $*"
}

# No process carrying this test's marker may outlive the command (the ranks are reaped before gacc
# exits; PR_SET_PDEATHSIG is the backstop).
no_orphans() {
  sleep 0.2
  local left=""
  for environ in /proc/[0-9]*/environ; do
    if { tr '\0' '\n' <"$environ"; } 2>/dev/null | grep -qx "GACC_TEST_MARKER=$GACC_TEST_MARKER"; then
      local pid=${environ#/proc/}
      pid=${pid%/environ}
      [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ] || left="$left $pid($(cat /proc/"$pid"/comm 2>/dev/null))"
    fi
  done
  [ -z "$left" ] || fail "processes left behind:$left"
}

