#!/bin/sh
# bench/overview_counts.sh - the console Overview's saga counts on a big
# saga.sagas (docs/BENCHMARKS.md "The Overview's saga counts"): a private
# PostgreSQL with the saga migrations, 2,000,000 finished sagas over a week,
# the last five minutes of a busy shop (30 finished a second) and 2,000
# unfinished ones; then, each 5 times (median of EXPLAIN ANALYZE's execution
# time), layby-ctl status's GROUP BY over the whole table beside the
# orchestrator's overview statement (engine/orchestrator/saga_overview.c),
# with sql/0930's sagas_finished and with the one before it.
# Usage: bench/overview_counts.sh [PORT]   (root: the cluster is postgres's)
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin | sort | tail -1)
PORT=${1:-25432}
T=$(mktemp -d /tmp/overview-counts.XXXXXX)
chmod 755 "$T"
mkdir -p "$T/pg" "$T/sock"
chown postgres "$T/pg" "$T/sock"
runuser -u postgres -- "$PGBIN/initdb" -D "$T/pg" -U postgres --auth-local=trust >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/pg" -l "$T/sock/pg.log" -w start \
    -o "-p $PORT -k $T/sock -c listen_addresses=''" >/dev/null
trap 'runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/pg" -m fast stop >/dev/null; rm -rf "$T"' EXIT
p() { psql -h "$T/sock" -p "$PORT" -U postgres -q -v ON_ERROR_STOP=1 "$@"; }
p -c "CREATE ROLE saga" -c "CREATE SCHEMA saga AUTHORIZATION saga"
for f in 0002_saga_init 0004_saga_outbox_quiet 0700_saga_cancelled 0760_saga_hot_updates \
    0770_saga_correlation 0790_saga_parked_error 0930_saga_overview 0940_saga_plain_timer_columns; do
    p -f "$SRC/sql/$f.sql"
done
COLS="saga_id, saga_type, version, status, state, start_type, start, created_at, updated_at"
FCOLS="$COLS, finished_at" # finished ones: finished_at = updated_at (sql/0940)
p -c "INSERT INTO saga.sagas ($FCOLS) SELECT gen_random_uuid(),
  CASE WHEN g % 2 = 0 THEN 'order_place' ELSE 'order_pay' END, 1,
  CASE WHEN g % 50 = 0 THEN 'CANCELLED' WHEN g % 97 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
  '\\x00', 't', '\\x00', now() - make_interval(secs => (2000000 - g) * 0.3 + 3600),
  now() - make_interval(secs => (2000000 - g) * 0.3 + 3599),
  now() - make_interval(secs => (2000000 - g) * 0.3 + 3599) FROM generate_series(1, 2000000) g"
p -c "INSERT INTO saga.sagas ($FCOLS) SELECT gen_random_uuid(),
  CASE WHEN g % 2 = 0 THEN 'order_place' ELSE 'order_pay' END, 1,
  CASE WHEN g % 50 = 0 THEN 'CANCELLED' ELSE 'COMPLETED' END, '\\x00', 't', '\\x00',
  now() - make_interval(secs => g / 30.0), now() - make_interval(secs => g / 30.0),
  now() - make_interval(secs => g / 30.0) FROM generate_series(1, 9000) g"
p -c "INSERT INTO saga.sagas ($COLS) SELECT gen_random_uuid(), 'order_place', 1,
  CASE WHEN g % 100 = 0 THEN 'STUCK' ELSE 'RUNNING' END, '\\x00', 't', '\\x00', now(), now()
  FROM generate_series(1, 2000) g"
p -c "VACUUM ANALYZE saga.sagas"
p -c "SELECT count(*) AS sagas, pg_size_pretty(pg_total_relation_size('saga.sagas')) AS size FROM saga.sagas"
B="floor(extract(epoch FROM now()) / 10)::bigint"
S="to_timestamp(($B - 29) * 10)"
OV="SELECT 'a', saga_type, status, 0::bigint, count(*) FROM saga.sagas
  WHERE status IN ('RUNNING', 'COMPENSATING', 'STUCK') GROUP BY 2, 3 UNION ALL
  SELECT 'f', saga_type, status, floor(extract(epoch FROM finished_at) / 10)::bigint, count(*)
  FROM saga.sagas WHERE finished_at >= $S GROUP BY 2, 3, 4 UNION ALL
  SELECT 's', '', '', floor(extract(epoch FROM created_at) / 10)::bigint, count(*)
  FROM saga.sagas WHERE created_at >= $S GROUP BY 4 UNION ALL SELECT 'n', '', '', $B, 0"
median() { # label sql
    for _ in 1 2 3 4 5; do
        p -At -c "EXPLAIN (ANALYZE, FORMAT JSON) $2" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])'
    done | sort -n | sed -n 3p | sed "s/^/$1 median ms: /"
}
both() {
    median "layby-ctl status GROUP BY" "SELECT saga_type, status, count(*) FROM saga.sagas GROUP BY 1, 2"
    median "overview statement       " "$OV"
}
echo "--- sagas_finished (finished_at) INCLUDE (saga_type, status) (sql/0930)"
both
p -c "EXPLAIN (ANALYZE, BUFFERS) $OV" | grep -E "Scan|Heap Fetches|Execution"
p -c "DROP INDEX saga.sagas_finished"
p -c "CREATE INDEX sagas_finished ON saga.sagas (finished_at) WHERE finished_at IS NOT NULL"
p -c "VACUUM ANALYZE saga.sagas"
echo "--- sagas_finished (finished_at) (before sql/0930)"
both
