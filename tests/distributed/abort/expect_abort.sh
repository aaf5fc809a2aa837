#!/bin/sh
# expect_abort.sh PATTERN COMMAND...: runs COMMAND (an mpirun command line) and passes when it exits
# with an error status and its output matches PATTERN (the failing rank's report): a rank that throws ends the whole job instead of leaving the
# others blocked in a collective (ctest's TIMEOUT on this test catches a hang).
pattern=$1
shift
out=$("$@" 2>&1)
rc=$?
echo "$out"
echo "exit status: $rc"
if [ "$rc" -eq 0 ]; then
  echo "FAIL: the job exited with status 0" >&2
  exit 1
fi
if ! echo "$out" | grep -q "$pattern"; then
  echo "FAIL: no line matches '$pattern'" >&2
  exit 1
fi
if echo "$out" | grep -q "finished the all_reduce"; then  # failing_rank's line past the collective
  echo "FAIL: a rank got past the collective" >&2
  exit 1
fi
exit 0
