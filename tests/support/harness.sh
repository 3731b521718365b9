#!/usr/bin/env bash
# tests/support/harness.sh BUILD_DIR [ctest args...]
#
# Runs ctest in BUILD_DIR against a private nats-server and PostgreSQL on free
# loopback ports in a fresh temp folder, configured by the same steps as
# `scripts/dev up` (users and permissions, roles, schemas, migrations, streams
# and consumers), then stops them and removes the folder. Exits with ctest's
# status. `scripts/dev test` always runs through here; `ctest -L unit` needs
# no servers and may run without it.
#
# The stack is configured with the test-only rows of the service table too
# (tests/support/services-test.tsv: the test participant's NATS user and
# durable), which BUILD must be a test build (LAYBY_TEST_HOOKS) to know.
#
# Exported for the suites (tests/support/tsupport.h reads them): everything in
# the stack's env file (LAYBY_NATS_URL, LAYBY_<SVC>_NATS_USER/_PASSWORD,
# LAYBY_<SVC>_DATABASE_URL, LAYBY_<SVC>_METRICS_PORT, LAYBY_EDGE_PORT,
# LAYBY_JWT_*_KEY_FILE, ...), plus LAYBY_TEST_PG_ADMIN_URL, LAYBY_TEST_PG_DATA,
# LAYBY_TEST_NATS_ADMIN_USER/_PASSWORD, LAYBY_TEST_NATS_PORT,
# LAYBY_TEST_NATS_CONF, LAYBY_TEST_NATS_PID_FILE, LAYBY_TEST_TMP and
# LAYBY_BUILD_DIR.
#
# LAYBY_TEST_SQL_DIR=<dir> applies the migrations of another folder (to try
# the runner on throwaway files). LAYBY_TEST_KEEP=1 keeps the temp folder (logs, data) for a look afterwards;
# when ctest fails, the server and daemon logs are copied to
# BUILD_DIR/Testing/layby-logs (LAYBY_TEST_LOG_DIR=<dir> copies them there
# instead). LAYBY_TEST_CORE_DIR=<dir> runs every daemon the suites start in
# <dir>/<name>-<n>/ with core files allowed (tsupport.c), so a crash leaves
# its core there.
set -euo pipefail

[ $# -ge 1 ] || { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }
BUILD=$(cd "$1" && pwd)
shift

LB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
for lib in "$LB_ROOT"/scripts/lib/*.sh; do
    # shellcheck disable=SC1090
    . "$lib"
done
[ -x "$BUILD/layby-ctl" ] || lb_die "$BUILD/layby-ctl is not built"
# The test-only rows of the service table (the test participant's user and
# durable): only here, never in the stack of scripts/dev.
LB_SVC_TABLES+=("$LB_ROOT/tests/support/services-test.tsv")
lb_svc_load
grep -q '^LAYBY_TEST_HOOKS:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null ||
    lb_die "$BUILD is no test build (configure it with -DLAYBY_TEST_HOOKS=ON; Debug and Asan are)"

TMP=$(mktemp -d /tmp/layby-test.XXXXXX)
# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
    local rc=$?
    set +e
    # daemons the suites started leave pid files here too (tsupport.c)
    for f in "$LB_RUN"/*.pid; do
        [ "$f" = "$LB_RUN/nats-server.pid" ] || lb_pid_stop "$f" 5
    done
    lb_nats_stop
    [ -n "${LB_PG_ROOT:-}" ] && lb_pg_stop
    if [ "${LAYBY_TEST_KEEP:-}" = 1 ]; then
        lb_say "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(lb_now)
lb_layout "$TMP"
PG_PORT=$(lb_port_free)
NATS_PORT=$(lb_port_free "$PG_PORT")
taken=("$PG_PORT" "$NATS_PORT")
ports=()
for row in "${LB_DAEMONS[@]}"; do
    read -r _ var _ <<<"$row"
    p=$(lb_port_free "${taken[@]}")
    taken+=("$p")
    ports+=("$var=$p")
done

lb_secrets_init
lb_pg_locate
lb_pg_init
lb_pg_start "$PG_PORT" LAYBY_PG_PORT
lb_pg_provision "$PG_PORT"
lb_pg_migrate "$PG_PORT" "${LAYBY_TEST_SQL_DIR:-$LB_ROOT/sql}"
LAYBY_LOG_LEVEL=${LAYBY_LOG_LEVEL:-debug}
lb_env_write "$NATS_PORT" "$PG_PORT" "${ports[@]}"
lb_nats_conf "$NATS_PORT"
lb_nats_start "$NATS_PORT" LAYBY_NATS_PORT

set -a
# shellcheck disable=SC1090
. "$LB_ENV_FILE"
set +a
"$BUILD/layby-ctl" bus setup >"$LB_LOG/bus-setup.log" 2>&1 ||
    { cat "$LB_LOG/bus-setup.log" >&2; lb_die "layby-ctl bus setup failed"; }

export LAYBY_TEST_PG_ADMIN_URL=$LAYBY_PG_ADMIN_URL
export LAYBY_TEST_PG_DATA=$LB_PG_ROOT/data
export LAYBY_TEST_NATS_ADMIN_USER=$LAYBY_CTL_NATS_USER
export LAYBY_TEST_NATS_ADMIN_PASSWORD=$LAYBY_CTL_NATS_PASSWORD
export LAYBY_TEST_NATS_PORT=$NATS_PORT
export LAYBY_TEST_NATS_CONF=$LB_NATS_DIR/nats.conf
export LAYBY_TEST_NATS_PID_FILE=$LB_RUN/nats-server.pid
export LAYBY_TEST_TMP=$TMP
export LAYBY_BUILD_DIR=$BUILD
lb_say "harness: servers ready in $(lb_elapsed "$t0") s (postgres :$PG_PORT, nats :$NATS_PORT, $TMP)"

rc=0
(cd "$BUILD" && ctest --output-on-failure "$@") || rc=$?
if [ $rc -ne 0 ]; then
    keep=${LAYBY_TEST_LOG_DIR:-$BUILD/Testing/layby-logs}
    mkdir -p "$keep"
    cp -L "$LB_LOG"/*.log "$TMP"/*.log "$keep/" 2>/dev/null || true
    lb_say "harness: ctest failed ($rc); logs copied to $keep"
fi
exit $rc
