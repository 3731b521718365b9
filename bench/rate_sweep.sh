#!/usr/bin/env bash
# bench/rate_sweep.sh [RATES...] - issue 25's checkout p99 target (each call's
# p99 <= 3 x the disk's 4-commit p99 floor) across paced rates, not only at a
# quarter of the peak: where does the target stop holding, and how busy is the
# machine there?
#
# On the running local stack (scripts/dev up; start from `rm -rf var` so the
# tables are small): signs 96 members in, measures the peak once (10 s, 192
# clients) to warm the stack, then paces place + pay at each RATE a second
# for 20 s (default 10 25 50 75 110) and prints, per rate, each call's p50 /
# p99, the p99s over the floor of a bench_fsync run just before the sweep and
# one just after it (the larger floor, so the ratio is never flattered), and
# the share of the two cores that was busy (/proc/stat) during that rate's
# run. ~3 minutes; not part of bench/run.sh. Nothing else should run meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/release
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(10 25 50 75 110)
eval "$(scripts/dev env)"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

$B/bench/bench_fsync --seconds 10 --rate 500 --commits 4 >"$OUT/floor1"
$B/bench/bench_checkout --members 96 --clients 192 --seconds 10 --levels 1 --half 0 >"$OUT/peak" 2>&1
for rate in "${RATES[@]}"; do
    # --peak 4R paces the quarter at R; the half (2R) runs for one second only.
    read -r a0 t0 < <(busy)
    $B/bench/bench_checkout --members 96 --clients 192 --peak $((rate * 4)) --quarter-seconds 20 \
        --seconds 1 2>&1 | grep -o 'checkout_quarter .*' >"$OUT/rate.$rate"
    read -r a1 t1 < <(busy)
    echo "$a0 $t0 $a1 $t1" | awk '{printf "%.0f\n", 100 * ($3 - $1) / ($4 - $2)}' >"$OUT/busy.$rate"
done
$B/bench/bench_fsync --seconds 10 --rate 500 --commits 4 >"$OUT/floor2"

F=$(cat "$OUT/floor1" "$OUT/floor2" | field floor_p99_ms | sort -n | tail -1)
printf 'peak %s checkouts/s; the 4-commit p99 floor %s ms (the larger of two, before and after)\n' \
    "$(field per_s <"$OUT/peak" | tail -1)" "$F"
printf '%6s %6s %22s %22s %16s\n' "rate/s" "busy%" "place p50/p99 ms" "pay p50/p99 ms" "p99 / floor"
for rate in "${RATES[@]}"; do
    r=$OUT/rate.$rate
    pl50=$(field place_p50_ms <"$r") pl99=$(field place_p99_ms <"$r")
    py50=$(field pay_p50_ms <"$r") py99=$(field pay_p99_ms <"$r")
    printf '%6s %6s %22s %22s %16s\n' "$rate" "$(cat "$OUT/busy.$rate")" "$pl50 / $pl99" "$py50 / $py99" \
        "$(awk -v a="$pl99" -v b="$py99" -v f="$F" 'BEGIN {printf "%.1f / %.1f x", a / f, b / f}')"
done
