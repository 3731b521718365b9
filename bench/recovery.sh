#!/usr/bin/env bash
# bench/recovery.sh [BUILD [RUNS]] - issue 25's recovery figures: how long
# after a SIGKILLed daemon's restart the work it held is taken up, for the
# orchestrator, a service and the edge. Each is one test (private servers,
# tests/support/harness.sh) that kills the daemon under load and prints a
# "recovery:" line:
#   - orchestrator: killed by a crash point after its 5th commit while 200
#     3-step sagas run; its held inputs come back (the inbox sees the
#     duplicate) and every saga completes once;
#   - service (the test participant, batches of 8): killed after its 5th
#     commit with 200 commands queued; the killed batch comes back and every
#     command counts once;
#   - edge: killed holding 12 POST /api/v1/me/addresses waiting on their
#     answers; the clients' repeats (same Idempotency-Key) are answered 201,
#     one address each.
# Every figure is counted from the moment the restarted daemon answers
# /healthz ("ready"; its start-up is printed beside it: it is the machine's
# load, not the engine's). The held messages come back at most AckWait (3 s)
# after the kill, so "back" is about AckWait minus the start-up; the edge
# holds nothing durable and needs one round trip. RUNS (default 3) runs of
# each, printed as they come and as medians.
#
# BUILD (default build/asan) must be a test build (the test rows); a Release
# one: cmake -S . -B build/relhooks -DCMAKE_BUILD_TYPE=Release
#   -DLAYBY_TEST_HOOKS=ON -DCMAKE_C_COMPILER_LAUNCHER=ccache, as bench/chaos.sh.
# Not part of bench/run.sh: ~1 min a run of the three under ASan.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/asan}
RUNS=${2:-3}
OUT=$(mktemp -d /tmp/layby-bench-recovery.XXXXXX)

# name  ctest regex  Criterion pattern
cases=(
    "orchestrator integration_saga_test saga/a_killed_orchestrator_s_held_inputs_come_back_seconds_after_its_restart"
    "service integration_svc_runtime_test svc_runtime/a_killed_service_s_batch_comes_back_seconds_after_its_restart"
    "edge e2e_orders_test orders/a_killed_edge_s_requests_are_answered_seconds_after_its_restart"
)
for run in $(seq 1 "$RUNS"); do
    for c in "${cases[@]}"; do
        read -r name regex pattern <<<"$c"
        log=$OUT/$name-$run.log
        CRITERION_TEST_PATTERN="$pattern" tests/support/harness.sh "$BUILD" -R "^$regex\$" -V \
            >"$log" 2>&1 || { tail -n 40 "$log" >&2; echo "recovery: $name failed, log $log" >&2; exit 1; }
        line=$(grep -o 'recovery: daemon=.*' "$log" | tail -1 | sed 's/^recovery: //; s/ (.*//')
        echo "recovery_run case=$name run=$run load=$(cut -d' ' -f1 /proc/loadavg) $line" | tee -a "$OUT/results"
    done
done
# medians of each field over the runs
for c in "${cases[@]}"; do
    read -r name _ <<<"$c"
    printf 'recovery case=%s runs=%s' "$name" "$RUNS"
    for f in ready_ms back_ms done_ms; do
        printf ' %s=%s' "$f" "$(grep "case=$name " "$OUT/results" | sed -n "s/.* $f=\([0-9]*\).*/\1/p" |
            sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
    done
    echo
done | tee -a "$OUT/results"
echo "bench/recovery.sh: logs in $OUT"
