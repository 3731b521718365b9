#!/usr/bin/env bash
# bench/checkout_pair.sh - the checkout peak of two builds in turn, on fresh
# stacks: an A/B for a change (issue 20), where the machine's drift between
# runs is larger than most changes (docs/BENCHMARKS.md).
#
#   bench/checkout_pair.sh ROOT_A ROOT_B [ORDER]     (ORDER default: abba)
#
# ROOT_A and ROOT_B are checkouts with a Release build in build/release (a
# `git worktree add` of the base, built once). ORDER names the runs, e.g.
# abbaab. Each run: `scripts/dev down` and an empty var/ in that root, its
# stack up without building (only one stack runs at a time: they share the
# ports), a 5 s peak to warm it, then a measured 10 s peak
# (bench_checkout --members 128 --clients 192 --levels 1). One line a run:
# the rate, the statements a checkout of the order service's role, and the
# CPU a checkout of each database role's backends (/proc/<pid>/stat around
# the measured peak; a role's work includes its share of commits and WAL).
set -euo pipefail
[ $# -ge 2 ] || {
    sed -n '2,16p' "$0"
    exit 2
}
A=$(cd "$1" && pwd)
B=$(cd "$2" && pwd)
ORDER=${3:-abba}

stack_down() { (cd "$1" && scripts/dev down >/dev/null 2>&1) || true; }

# The CPU ticks of each role's backends, "role=ticks ...", from a pid list.
role_ticks() {
    while IFS='|' read -r role pid; do
        read -r -a f <"/proc/$pid/stat" 2>/dev/null || continue
        echo "$role $((f[13] + f[14]))"
    done <"$1" | awk '{t[$1] += $2} END {for (r in t) printf "%s=%d ", r, t[r]}'
}

run() { # run TAG ROOT
    local tag=$1 root=$2 out pids t0 t1
    stack_down "$A"
    stack_down "$B"
    (cd "$root" && rm -rf var && LAYBY_DEV_BUILD=0 scripts/dev up >/dev/null 2>&1)
    eval "$(cd "$root" && scripts/dev env)"
    local bc=$root/build/release/bench/bench_checkout
    "$bc" --members 128 --clients 192 --levels 1 --seconds 5 --half 0 >/dev/null
    psql -q "$LAYBY_PG_ADMIN_URL" -c 'SELECT pg_stat_statements_reset()' >/dev/null
    pids=$(mktemp)
    psql -At "$LAYBY_PG_ADMIN_URL" \
        -c 'SELECT usename, pid FROM pg_stat_activity WHERE usename IS NOT NULL AND pid <> pg_backend_pid()' >"$pids"
    t0=$(role_ticks "$pids")
    out=$("$bc" --members 128 --clients 192 --levels 1 --seconds 10 --half 0 |
        grep '^checkout_peak')
    t1=$(role_ticks "$pids")
    local calls
    calls=$(psql -At "$LAYBY_PG_ADMIN_URL" -c "SELECT sum(calls) FROM pg_stat_statements s
        JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'orders'")
    rm -f "$pids"
    stack_down "$root"
    echo "$tag $out order_calls=$calls" | awk -v t0="$t0" -v t1="$t1" '
        { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } print }
        END {
            n = split(t0, a, " "); for (i = 1; i <= n; i++) { split(a[i], kv, "="); b[kv[1]] = kv[2] }
            n = split(t1, a, " "); line = "  ms of backend CPU a checkout:"
            for (i = 1; i <= n; i++) { split(a[i], kv, "=");
                line = line sprintf(" %s=%.2f", kv[1], (kv[2] - b[kv[1]]) * 10 / v["finished"]) }
            printf "%s\n  order statements a checkout: %.1f\n", line, v["order_calls"] / v["finished"]
        }'
}

for ((i = 0; i < ${#ORDER}; i++)); do
    c=${ORDER:i:1}
    case $c in
    a) run "a$((i + 1))" "$A" ;;
    b) run "b$((i + 1))" "$B" ;;
    *) echo "ORDER: a or b, not $c" >&2; exit 2 ;;
    esac
done
