#!/usr/bin/env bash
# tests/stack/cluster_stack.sh - the clustered local stack (issue 23), end to
# end through scripts/dev itself: `scripts/dev up --cluster` in a temp folder
# on free ports, then
#   - `scripts/dev status` lists 3 running nats-server nodes, 2 PostgreSQL
#     clusters and 2 healthy instances of every daemon;
#   - every stream and bucket has 3 replicas (layby-ctl bus info);
#   - the catalog's database URL points at the second cluster, the others' at
#     the first, and the catalog's tables are on the second only;
#   - a checkout (sign-up with the mailbox code, login, address, place, pay)
#     goes through each of the two edges (bench_checkout, a few seconds each);
# then `scripts/dev down` and nothing of it runs any more. Run as root after a
# Release build (CI: .ci/run, after the Release compile). ~60-90 s.
set -euo pipefail
# shellcheck disable=SC2034 # lib.sh reads it
STACK_TEST=cluster_stack
# shellcheck source=tests/stack/lib.sh
. "$(dirname "$0")/lib.sh"

lb_stack_ports_free
lb_say "cluster_stack: scripts/dev up --cluster in $LAYBY_DEV_VAR"
"$ROOT/scripts/dev" up --cluster >"$TMP/up.log" 2>&1 || { tail -n 40 "$TMP/up.log" >&2; fail "scripts/dev up --cluster"; }
ok "up in $(lb_elapsed "$t0") s"

status=$("$ROOT/scripts/dev" status) || { printf '%s\n' "$status" >&2; fail "scripts/dev status is not all running"; }
printf '%s\n' "$status" >&2
count() { grep -cE "$1" <<<"$status" || true; }
[ "$(count '^nats-server(-[23])? +running')" = 3 ] || fail "status: not 3 running nats-server nodes"
[ "$(count '^postgres(-2)? +running')" = 2 ] || fail "status: not 2 running PostgreSQL clusters"
for row in "${LB_DAEMONS[@]}"; do
    read -r name _ <<<"$row"
    [ -x "$ROOT/build/release/$name" ] || continue
    [ "$(count "^$name(-2)? +running .*healthz ok")" = 2 ] || fail "status: not 2 healthy instances of $name"
done
ok "status: 3 nodes, 2 PostgreSQL clusters, 2 instances of every daemon"

set -a
# shellcheck disable=SC1090,SC1091
. "$LAYBY_DEV_VAR/env"
set +a
info=$("$ROOT/build/release/layby-ctl" bus info)
n=$(grep -cE '^(stream|bucket) ' <<<"$info")
r3=$(grep -E '^(stream|bucket) ' <<<"$info" | grep -c 'replicas 3' || true)
if [ "$n" = 0 ] || [ "$n" != "$r3" ]; then
    printf '%s\n' "$info" >&2
    fail "$r3 of $n streams at 3 replicas"
fi
ok "bus: $n streams, every one at 3 replicas"

case $LAYBY_CATALOG_DATABASE_URL in *":$LAYBY_PG2_PORT/"*) ;; *) fail "the catalog's URL is not on cluster 2" ;; esac
case $LAYBY_ORDER_DATABASE_URL in *":$LAYBY_PG_PORT/"*) ;; *) fail "the order service's URL is not on cluster 1" ;; esac
tables() { psql -XAtq "$1" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'catalog'"; }
[ "$(tables "$LAYBY_PG2_ADMIN_URL")" -gt 0 ] || fail "no catalog table on cluster 2"
[ "$(tables "$LAYBY_PG_ADMIN_URL")" = 0 ] || fail "catalog tables on cluster 1"
ok "PostgreSQL: the catalog on cluster 2 (:$LAYBY_PG2_PORT), the rest on cluster 1 (:$LAYBY_PG_PORT)"

for port in "$LAYBY_EDGE_PORT" "$LAYBY_EDGE_PORT_2"; do
    out=$(LAYBY_BENCH_EDGE_URL=http://127.0.0.1:$port "$ROOT/build/release/bench/bench_checkout" \
        --members 2 --products 2 --clients 2 --levels 1 --seconds 3 --half 0 2>"$TMP/checkout.err") ||
        { tail -n 20 "$TMP/checkout.err" >&2; fail "bench_checkout through the edge on :$port"; }
    n=$(sed -n 's/^checkout_peak .* checkouts=\([0-9]*\).*/\1/p' <<<"$out")
    [ "${n:-0}" -ge 1 ] || { printf '%s\n' "$out" >&2; fail "no checkout through the edge on :$port"; }
    ok "$n checkouts (placed and paid) through the edge on :$port"
done

"$ROOT/scripts/dev" down >/dev/null 2>&1 || fail "scripts/dev down"
if "$ROOT/scripts/dev" status >/dev/null 2>&1; then fail "status after down"; fi
left=$(find "$LAYBY_DEV_VAR/run" -name '*.pid' | wc -l)
[ "$left" = 0 ] || fail "$left pid files left after down"
ok "down: everything stopped"
lb_say "cluster_stack: passed in $(lb_elapsed "$t0") s"
