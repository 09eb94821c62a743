#!/usr/bin/env bash
# Runs the test suite (debug) under the thread sanitizer.
#
#   scripts/tsan.sh                       # the suites that run threads (see below)
#   scripts/tsan.sh all                   # every test (slow: the UNet parity tests in debug)
#   scripts/tsan.sh ConvTests PoolTests   # these filters only
#
# The default filters cover the code that runs on several threads: parallelFor
# (DistillCore/Parallel.swift, used by conv, norm, pooling, reductions and the optimizers), the
# buffer cache behind a lock (CKernels/pool.c), the storage copy-on-write, and the image I/O
# (C libraries, called from Swift Testing's parallel tests). Swift Testing runs tests in
# parallel, so shared state between tests is exercised as well.
# The build goes to .build-tsan; the log to .build-tsan/tsan.log. Exits nonzero if a test fails
# or TSan reports a race (TSAN_OPTIONS exitcode=66).
# Environment: TSAN_JOBS (build jobs, default 2).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$root/.build-tsan"
mkdir -p "$scratch"
log="$scratch/tsan.log"

filters=()
if [ "${1:-}" = all ]; then
  :
elif [ $# -gt 0 ]; then
  for f in "$@"; do filters+=(--filter "$f"); done
else
  for f in DistillCoreTests ImageIOTests DistillDiffusionTests.SamplerTests; do filters+=(--filter "$f"); done
fi

# halt_on_error=0: report every race in one run; history_size=4 keeps both stacks of a race.
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=0 history_size=4 second_deadlock_stack=1 exitcode=66}"
echo "swift test --sanitize=thread ${filters[*]:-(all)} -> $log"
set +e
swift test --package-path "$root" --scratch-path "$scratch" -j "${TSAN_JOBS:-2}" --sanitize=thread \
  "${filters[@]}" >"$log" 2>&1
rc=$?
set -e
races=$(grep -c "WARNING: ThreadSanitizer" "$log" || true)
summary=$(grep -E "Test run with [0-9]+ tests" "$log" | tail -1)
echo "${summary:-no Swift Testing summary (see the log)}"
echo "ThreadSanitizer warnings: $races (exit $rc)"
[ "$races" -eq 0 ] && [ "$rc" -eq 0 ]
