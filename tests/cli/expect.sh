#!/usr/bin/env bash
# expect.sh CODE PATTERN COMMAND... : runs COMMAND, requires exit code CODE and PATTERN (an
# extended regular expression) somewhere in its output. Prints what it saw when it fails.
set -u
want_code=$1
pattern=$2
shift 2
output=$("$@" 2>&1)
code=$?
if [ "$code" -ne "$want_code" ]; then
  echo "expected exit code $want_code, got $code from: $*"
  echo "$output" | tail -40
  exit 1
fi
if ! grep -Eq -- "$pattern" <<<"$output"; then
  echo "expected output matching /$pattern/ from: $*"
  echo "$output" | tail -40
  exit 1
fi
exit 0
