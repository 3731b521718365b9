#!/usr/bin/env bash
# bench/phases.sh [BUILD [RATE [COUNT]]] - issue 25's per-phase breakdown of a
# batch (layby_svc_phase_seconds: fetch, read, handle, write, commit, settle;
# engine/svc_internal.h) for the orchestrator and a participant at the same
# load, in one run: COUNT (default 3000) test sagas paced at RATE (default 100)
# a second (bench_saga), the participant keeping an inbox (layby-sagatest
# without LAYBY_SAGATEST_NOOP, so both run a transaction per batch). Prints
# per daemon and phase the mean (sum / count) and, for the phases inside the
# batch, their share of the batch time; the pull before the batch (fetch) and
# the relay's publish (layby_outbox_drain_seconds) beside them.
#
# Also prints, from the same run, the statements' calls and mean time
# (pg_stat_statements, reset before the sagas start) and each hop's p50/p99
# (bench/saga_timeline.py over layby-ctl replay). LAYBY_PHASES_NOOP=1 runs the
# participant stateless (no inbox, no commit: bench/run.sh's no-op participant,
# the issue's "participant hop"); the default participant commits, as the
# orchestrator does, but makes three awaited round trips per command (test
# code), so it saturates first: at load 10 it kept up with 170 sagas/s, not
# with 500.
#
# BUILD (default build/bench-test) is a test build (the test saga types); the
# stack is scripts/dev's on free ports in a temp folder (LAYBY_DEV_VAR,
# lb_stack_ports_free) from build/release, as bench/cluster.sh. Not part of
# bench/run.sh (~1-2 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
LB_ROOT=$(pwd)
for lib in "$LB_ROOT"/scripts/lib/*.sh; do
    # shellcheck disable=SC1090
    . "$lib"
done
BT=${1:-build/bench-test}
RATE=${2:-100}
COUNT=${3:-3000}
OUT=$(mktemp -d /tmp/layby-bench-phases.XXXXXX)
chmod 755 "$OUT" # the postgres user keeps its clusters under var/ (lb_pg_locate)
export LAYBY_DEV_VAR=$OUT/var
# shellcheck disable=SC2034 # read by lb_env_get (scripts/lib/daemons.sh)
LB_ENV_FILE=$LAYBY_DEV_VAR/env LB_RUN=$LAYBY_DEV_VAR/run
export LAYBY_DEV_BUILD=0
PIDS=()
# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    scripts/dev down >/dev/null 2>&1 || true
    rm -rf "$LAYBY_DEV_VAR"/pg "$LAYBY_DEV_VAR"/nats
    echo "bench/phases.sh: logs in $OUT" >&2
}
trap cleanup EXIT
lb_stack_ports_free
scripts/dev up >"$OUT/up.log" 2>&1 || { tail -n 30 "$OUT/up.log" >&2; exit 1; }
set -a
# shellcheck disable=SC1090,SC1091
. "$LAYBY_DEV_VAR/env"
set +a
"$BT"/bench/bench_saga --setup 1
for pid in "$LAYBY_DEV_VAR"/run/layby-orchestrator*.pid; do lb_pid_stop "$pid" 10; done
PPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LAYBY_ORCHESTRATOR_NATS_USER=$LAYBY_CTL_NATS_USER LAYBY_ORCHESTRATOR_NATS_PASSWORD=$LAYBY_CTL_NATS_PASSWORD \
    "$BT"/layby-orchestrator 2>"$OUT/orchestrator.log" &
PIDS+=($!)
${LAYBY_PHASES_NOOP:+env LAYBY_SAGATEST_NOOP=1} "$BT"/layby-sagatest --database-url "$LAYBY_PG_ADMIN_URL?options=-csearch_path%3Dsagatest" \
    --nats-user "$LAYBY_CTL_NATS_USER" --nats-password "$LAYBY_CTL_NATS_PASSWORD" \
    --metrics-port "$PPORT" --log-level warn 2>"$OUT/participant.log" &
PIDS+=($!)
for port in "$LAYBY_ORCHESTRATOR_METRICS_PORT" "$PPORT"; do
    until curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; do sleep 0.2; done
done
psql -qAt "$LAYBY_PG_ADMIN_URL" -c 'SELECT pg_stat_statements_reset()' >/dev/null
since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sleep 1 # replay --since has a resolution of a second
"$BT"/bench/bench_saga --count "$COUNT" --rate "$RATE" | tee "$OUT/saga"
curl -fsS "http://127.0.0.1:$LAYBY_ORCHESTRATOR_METRICS_PORT/metrics" >"$OUT/orchestrator.metrics"
curl -fsS "http://127.0.0.1:$PPORT/metrics" >"$OUT/participant.metrics"
for who in orchestrator participant; do
    awk -v who="$who" '
        /^layby_svc_phase_seconds_(sum|count)\{/ {
            match($0, /phase="[a-z]+"/); ph = substr($0, RSTART + 7, RLENGTH - 8)
            if ($1 ~ /_sum/) s[ph] += $2; else c[ph] += $2
        }
        /^layby_svc_batch_seconds_(sum|count)\{/ { if ($1 ~ /_sum/) bs += $2; else bc += $2 }
        /^layby_outbox_drain_seconds_(sum|count)\{/ { if ($1 ~ /_sum/) ds += $2; else dc += $2 }
        END {
            printf "phases %s batches=%d batch_ms=%.3f", who, bc, bc ? bs / bc * 1000 : 0
            printf " fetch_ms=%.3f", c["fetch"] ? s["fetch"] / c["fetch"] * 1000 : 0
            n = split("read handle write commit settle", order, " ")
            for (i = 1; i <= n; i++) {
                p = order[i]
                printf " %s_ms=%.3f(%d%%)", p, c[p] ? s[p] / c[p] * 1000 : 0,
                    bs ? 100 * s[p] / bs : 0
            }
            printf " drain_ms=%.3f\n", dc ? ds / dc * 1000 : 0
        }' "$OUT/$who.metrics"
done | tee "$OUT/results"
psql -A -F ' | ' "$LAYBY_PG_ADMIN_URL" -c "SELECT calls, round(mean_exec_time::numeric, 3) AS mean_ms,
    round(total_exec_time::numeric, 1) AS total_ms, left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS query
    FROM pg_stat_statements WHERE calls >= 50 ORDER BY total_exec_time DESC LIMIT 12" | tee "$OUT/statements"
for s in LAYBY_CMD LAYBY_EVT; do
    "$BT"/layby-ctl replay "$s" --since "$since" --limit $((COUNT * 8 + 1000)) >"$OUT/$s.jsonl"
done
bench/saga_timeline.py "$OUT/LAYBY_CMD.jsonl" "$OUT/LAYBY_EVT.jsonl" | tee "$OUT/timeline"
