#!/usr/bin/env bash
# bench/chaos.sh - the chaos run of issue 22: tests/e2e/chaos_test.c for
# SECONDS (default 600) against private servers (tests/support/harness.sh,
# loopback only), then its throughput over time as an SVG and the recovery
# time after each fault (bench/chaos_plot.py).
#
#   bench/chaos.sh [BUILD [SECONDS [SVG]]]
#
# BUILD (default build/relhooks) must be a test build, since the harness
# needs the test rows; for a Release one:
#   cmake -S . -B build/relhooks -DCMAKE_BUILD_TYPE=Release -DLAYBY_TEST_HOOKS=ON \
#         -DCMAKE_C_COMPILER_LAUNCHER=ccache && cmake --build build/relhooks -j2
# SVG defaults to docs/chaos-throughput.svg. LAYBY_CHAOS_SEED replays a run;
# LAYBY_CHAOS_CLIENTS and LAYBY_CHAOS_LOAD as in the test. The run's files
# (rate.csv, faults.csv, summary.txt) stay in the folder printed at the end,
# with logs/ (every daemon's log, when the run failed) and cores/ (a folder
# per daemon start; a daemon that crashed leaves its core file in its own:
# the end of the run lists them with the binary to open them with).
# Release builds have -g (CMakeLists.txt), so a core shows lines.
# Exits with the test's status: 0 only when every check held.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/relhooks}
SECS=${2:-600}
SVG=${3:-docs/chaos-throughput.svg}
OUT=$(mktemp -d /tmp/layby-chaos.XXXXXX)

# Where the kernel writes cores: with the usual pattern "core" (relative),
# into the crashing daemon's folder; a pipe (systemd-coredump, apport) keeps
# them elsewhere. A hard limit of 0 allows none.
pattern=$(cat /proc/sys/kernel/core_pattern 2>/dev/null || echo '?')
echo "chaos: core_pattern '$pattern', core size hard limit $(ulimit -Hc)"

rc=0
# -R, not -L chaos: the label holds the cluster suites too (1.5 min each pass)
LAYBY_CHAOS_SECONDS=$SECS LAYBY_CHAOS_OUT=$OUT LAYBY_TEST_CORE_DIR=$OUT/cores \
    LAYBY_TEST_LOG_DIR=$OUT/logs \
    tests/support/harness.sh "$BUILD" -R e2e_chaos_test --output-on-failure || rc=$?
if [ -s "$OUT/rate.csv" ] && [ -s "$OUT/faults.csv" ]; then
    seed=$(sed -n 's/.*seed=\([0-9]*\).*/\1/p' "$OUT/summary.txt" 2>/dev/null || true)
    python3 bench/chaos_plot.py "$OUT" "$SVG" \
        "chaos run, ${SECS} s, seed ${seed:-?} ($(basename "$BUILD"))" | tee "$OUT/recovery.md"
fi
cat "$OUT/summary.txt" 2>/dev/null || echo "chaos: no summary (the test failed before its end)"
# -mindepth 1: cores/ itself stays, or the find below fails (set -e, pipefail)
find "$OUT/cores" -mindepth 1 -type d -empty -delete 2>/dev/null || true
find "$OUT/cores" -type f -name 'core*' 2>/dev/null | sort | while read -r core; do
    dir=$(basename "$(dirname "$core")") # <name>-<n>: the log <name>-<n>.log
    bin="$(cd "$BUILD" && pwd)/${dir%-*}"
    echo "chaos: core $core of $bin (log $OUT/logs/$dir.log): gdb -batch -ex 'thread apply all bt' $bin $core"
done || true
case $pattern in
    core*) ;;
    *) echo "chaos: cores went to core_pattern '$pattern', not $OUT/cores" ;;
esac
echo "chaos: exit $rc, files in $OUT"
exit "$rc"
