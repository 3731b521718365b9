#!/usr/bin/env bash
# bench/checkout_profile.sh - where a checkout's cost goes, on a private stack.
#
#   LAYBY_LOG_LEVEL=info tests/support/harness.sh BUILD -S "$PWD/bench/checkout_profile.cmake"
#
# BUILD is a Release build with LAYBY_TEST_HOOKS=ON (the harness wants a test
# build; -DCMAKE_BUILD_TYPE=Release -DLAYBY_TEST_HOOKS=ON). Inside the harness
# (private PostgreSQL and nats-server on free ports, a temp folder) this starts
# the stack's daemons of BUILD, warms up with a short run, then runs
# `bench_checkout --levels 1 --half 0` ($LAYBY_PROFILE_ARGS, default 24
# members, 48 clients, 15 s) and prints, per checkout finished (the drain
# after the window included):
#   profile_cpu     CPU ms of each of the stack's own processes (pid files of
#                   the daemons, nats-server, the postmaster and its children:
#                   not the other stacks on the machine)
#   profile_pg      commits, WAL syncs, WAL records and bytes (pg_stat_database,
#                   pg_stat_wal)
#   profile_role    pg_stat_statements per service role: calls, execution and
#                   planning ms (wall time of the backend: on a loaded machine
#                   it includes waiting for a core)
#   profile_sql     the same per statement, the costliest first ($LAYBY_PROFILE_TOP, 30)
#   profile_js      JetStream publishes per stream (LAYBY_CMD, LAYBY_EVT:
#                   each a hop: stored, delivered, acked; `layby-ctl bus info`,
#                   the streams' last sequence before and after)
#   profile_hot     per table, updates and how many were HOT (pg_stat_user_tables,
#                   since the stack started, read 11 s after the run so every
#                   backend has flushed its counts)
# LAYBY_PROFILE_SQL, when set, runs as the superuser before the warm-up: an
# A/B switch on one build (e.g. re-create an index a change dropped).
# LAYBY_PROFILE_PGBENCH=1 first runs bench/run.sh's baseline on this stack's
# PostgreSQL (pgbench, 16 clients, single-row inserts, 10 s) and prints
# `profile_pgbench tps=`, so the checkout rate has a same-run baseline.
# The counts cover the window and its drain, not the sign-in before
# (LAYBY_BENCH_MARK). pg_stat_statements.track_planning is turned on and the
# statistics reset at the window's start (this stack only). Output: stdout, and $LAYBY_PROFILE_OUT
# (default $LAYBY_BUILD_DIR/checkout-profile.txt). Not part of bench/run.sh:
# it is the tool that says what to cut, not a figure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for lib in "$ROOT"/scripts/lib/*.sh; do
    # shellcheck disable=SC1090
    . "$lib"
done
[ -n "${LAYBY_TEST_TMP:-}" ] || lb_die "run me through tests/support/harness.sh (see the header)"
lb_layout "$LAYBY_TEST_TMP"
lb_svc_load
BUILD=$LAYBY_BUILD_DIR
OUT=${LAYBY_PROFILE_OUT:-$BUILD/checkout-profile.txt}
ARGS=${LAYBY_PROFILE_ARGS:---members 24 --clients 48 --seconds 15}
lb_daemons_start "$BUILD"
export LAYBY_MAILBOX LAYBY_EDGE_PORT LAYBY_PG_ADMIN_URL
q() { psql -X -At -F ' ' "$LAYBY_PG_ADMIN_URL" -c "$1"; }
POSTMASTER=$(head -1 "$LAYBY_TEST_PG_DATA/postmaster.pid")

# "name ticks" of the stack's own processes (utime + stime, fields 14 and 15)
cpu_ticks() {
    local f pid
    for f in "$LB_RUN"/*.pid; do
        pid=$(cat "$f")
        [ -r "/proc/$pid/stat" ] || continue
        awk -v n="$(basename "$f" .pid)" '{sub(/.*\) /, ""); print n, $12 + $13}' "/proc/$pid/stat"
    done
    for pid in $POSTMASTER $(ps -o pid= --ppid "$POSTMASTER"); do
        [ -r "/proc/$pid/stat" ] && awk '{sub(/.*\) /, ""); print "postgres", $12 + $13}' "/proc/$pid/stat"
    done
    return 0
}
js_seqs() {
    "$BUILD/layby-ctl" --json bus info | jq -r '.streams[] | select(.lastSeq != null) | "\(.name) \(.lastSeq)"'
}
pg_counts() {
    q "SELECT (SELECT sum(xact_commit) FROM pg_stat_database), wal_sync, wal_records, wal_bytes FROM pg_stat_wal"
}

[ -z "${LAYBY_PROFILE_SQL:-}" ] || q "$LAYBY_PROFILE_SQL" >/dev/null
if [ "${LAYBY_PROFILE_PGBENCH:-0}" = 1 ]; then
    q 'CREATE TABLE public.bench_insert (id bigserial PRIMARY KEY, v int NOT NULL)' >/dev/null
    PGB_SQL=$(mktemp)
    echo 'INSERT INTO public.bench_insert (v) VALUES (1);' >"$PGB_SQL"
    TPS=$(pgbench -n -c 16 -j 2 -T 10 -f "$PGB_SQL" "$LAYBY_PG_ADMIN_URL" 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    echo "profile_pgbench clients=16 tps=$TPS"
    q 'DROP TABLE public.bench_insert' >/dev/null
    rm -f "$PGB_SQL"
fi
q "ALTER SYSTEM SET pg_stat_statements.track_planning = on" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
"$BUILD/bench/bench_checkout" --members 8 --clients 8 --seconds 3 --levels 1 --half 0 >/dev/null
TMPD=$(mktemp -d)
# bench_checkout calls this around its window (LAYBY_BENCH_MARK), after the sign-in
cat >"$TMPD/mark" <<MARK
#!/usr/bin/env bash
set -e
. "$ROOT/scripts/lib/common.sh"
$(declare -f q cpu_ticks pg_counts js_seqs)
LB_RUN=$LB_RUN POSTMASTER=$POSTMASTER BUILD=$BUILD
if [ "\$1" = begin ]; then
    q "SELECT pg_stat_statements_reset()" >/dev/null
    cpu_ticks >"$TMPD/cpu_a"; pg_counts >"$TMPD/pg_a"; js_seqs >"$TMPD/js_a"
else
    cpu_ticks >"$TMPD/cpu_b"; pg_counts >"$TMPD/pg_b"; js_seqs >"$TMPD/js_b"
fi
MARK
chmod +x "$TMPD/mark"
# shellcheck disable=SC2086 # ARGS is a list of flags
LAYBY_BENCH_MARK=$TMPD/mark "$BUILD/bench/bench_checkout" $ARGS --levels 1 --half 0 | tee "$TMPD/bench"
N=$(sed -n 's/^checkout_peak .* finished=\([0-9]*\).*/\1/p' "$TMPD/bench")
[ "${N:-0}" -gt 0 ] || lb_die "no checkout finished"
HZ=$(getconf CLK_TCK)
{
    awk -v n="$N" -v hz="$HZ" '
        FNR == NR { a[$1] += $2; next } { b[$1] += $2 }
        END { for (k in b) printf "profile_cpu process=%s ms_per_checkout=%.2f\n", k, (b[k] - a[k]) * 1000 / hz / n }' \
        "$TMPD/cpu_a" "$TMPD/cpu_b" | sort -t= -k3 -rn
    awk -v n="$N" 'FNR == NR { a[$1] = $2; next } ($1 in a) {
        printf "profile_js stream=%s publishes_per_checkout=%.2f\n", $1, ($2 - a[$1]) / n }' \
        "$TMPD/js_a" "$TMPD/js_b"
    paste -d ' ' "$TMPD/pg_a" "$TMPD/pg_b" | awk -v n="$N" '{
        printf "profile_pg checkouts=%d commits_per_checkout=%.1f wal_syncs_per_checkout=%.2f wal_records_per_checkout=%.0f wal_kb_per_checkout=%.1f\n",
            n, ($5 - $1) / n, ($6 - $2) / n, ($7 - $3) / n, ($8 - $4) / 1024 / n }'
    q "SELECT 'profile_role role=' || r.rolname || ' calls_per_checkout=' || round(sum(s.calls) / $N.0, 1)
            || ' exec_ms_per_checkout=' || round((sum(s.total_exec_time) / $N)::numeric, 3)
            || ' plan_ms_per_checkout=' || round((sum(s.total_plan_time) / $N)::numeric, 3)
        FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
        GROUP BY r.rolname ORDER BY sum(s.total_exec_time + s.total_plan_time) DESC"
    q "SELECT 'profile_sql role=' || r.rolname || ' calls_per_checkout=' || round(s.calls / $N.0, 2)
            || ' exec_ms_per_checkout=' || round((s.total_exec_time / $N)::numeric, 3)
            || ' plan_ms_per_checkout=' || round((s.total_plan_time / $N)::numeric, 3)
            || ' rows_per_call=' || round(s.rows / greatest(s.calls, 1)::numeric, 1)
            || ' sql=\"' || left(regexp_replace(s.query, '\s+', ' ', 'g'), 90) || '\"'
        FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
        ORDER BY s.total_exec_time + s.total_plan_time DESC LIMIT ${LAYBY_PROFILE_TOP:-30}"
    sleep 11 # a backend idle since its last commit flushes its table counts within 10 s
    q "SELECT 'profile_hot table=' || schemaname || '.' || relname || ' updates=' || n_tup_upd
            || ' hot=' || n_tup_hot_upd || ' hot_pct=' || round(100.0 * n_tup_hot_upd / n_tup_upd, 1)
        FROM pg_stat_user_tables WHERE n_tup_upd > 0 ORDER BY n_tup_upd DESC"
} | tee -a "$TMPD/bench"
cp "$TMPD/bench" "$OUT"
rm -rf "$TMPD"
