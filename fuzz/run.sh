#!/usr/bin/env bash
# fuzz/run.sh - builds the libFuzzer targets (clang-14, ASan + UBSan) and runs
# each for SECONDS (default 30) on a copy of its committed seed corpus.
#
# usage: fuzz/run.sh [SECONDS] [TARGET...]
#   FUZZ_BUILD   build folder (default build/fuzz)
#   FUZZ_JOBS    parallel fuzzing processes per target (default 1)
#   FUZZ_OUT     where new corpus entries and crash files go (default a temp folder,
#                removed at the end unless a target failed)
#
# Prints one line per target: `fuzz <target> runs=<N> seconds=<S> exec_per_s=<R> ok|FAILED`
# and exits non-zero when any target crashed or broke an invariant. A crash
# file is kept under FUZZ_OUT/<target>/; add it to fuzz/corpus/<target>/ with
# the fix, and the unit test unit_fuzz_<target>_corpus replays it from then on.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
secs=${1:-30}
shift || true
build=${FUZZ_BUILD:-$root/build/fuzz}
jobs=${FUZZ_JOBS:-1}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=()
    for f in "$root"/fuzz/fuzz_*.c; do
        t=$(basename "$f" .c)
        [ "$t" = fuzz_common ] || targets+=("${t#fuzz_}")
    done
fi

command -v clang-14 >/dev/null || { echo "fuzz/run.sh: clang-14 is missing (scripts/lib/common.sh LB_PACKAGES)" >&2; exit 1; }
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang-14 -DCMAKE_BUILD_TYPE=Asan -DLAYBY_FUZZ=ON \
    "${launcher[@]}" >/dev/null
cmake --build "$build" -j2 --target fuzz >/dev/null

out=${FUZZ_OUT:-$(mktemp -d /tmp/layby-fuzz.XXXXXX)}
failed=0
for t in "${targets[@]}"; do
    bin=$build/fuzz/fuzz_$t
    [ -x "$bin" ] || { echo "fuzz/run.sh: no target $t" >&2; exit 1; }
    mkdir -p "$out/$t/corpus" "$out/$t/crash"
    cp "$root/fuzz/corpus/$t/"* "$out/$t/corpus/" 2>/dev/null || true
    log=$out/$t/log
    rc=0
    # -rss_limit_mb: the default 2 GB is more than a shared CI machine should give;
    # -timeout: one input may take at most 10 s (a hang is a failure too).
    (cd "$out/$t/crash" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 \
        -print_final_stats=1 -jobs="$jobs" -workers="$jobs" "$out/$t/corpus" >"$log" 2>&1) || rc=$?
    # with -jobs, each job writes fuzz-<n>.log next to the crash folder
    stats=$(cat "$log" "$out/$t"/crash/fuzz-*.log 2>/dev/null || true)
    runs=$(printf '%s\n' "$stats" | awk '/stat::number_of_executed_units:/ { s += $2 } END { print s + 0 }')
    rate=$(awk -v r="$runs" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')
    if [ "$rc" -ne 0 ] || ls "$out/$t"/crash/crash-* "$out/$t"/crash/leak-* "$out/$t"/crash/timeout-* >/dev/null 2>&1; then
        failed=1
        echo "fuzz $t runs=$runs seconds=$secs exec_per_s=$rate FAILED (log and inputs: $out/$t)"
        grep -m5 -E 'ERROR|invariant|SUMMARY' "$log" "$out/$t"/crash/fuzz-*.log 2>/dev/null >&2 || true
    else
        echo "fuzz $t runs=$runs seconds=$secs exec_per_s=$rate ok"
    fi
done
if [ "$failed" -eq 0 ] && [ -z "${FUZZ_OUT:-}" ]; then
    rm -rf "$out"
fi
exit "$failed"
