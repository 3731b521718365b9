# scripts/lib/services.sh - the service table (etc/services.tsv) for the
# scripts: the daemons to start, NATS permission rows, PostgreSQL roles. Every
# view comes from scripts/lib/services.awk, the one parser (CMake and the
# build's generated C use it too).
# shellcheck shell=bash

# The tables read, in order. The test harness adds the test-only rows
# (tests/support/services-test.tsv) and calls lb_svc_load again.
LB_SVC_TABLES=("$LB_ROOT/etc/services.tsv")

# lb_svc VIEW: one view of the tables (check, nats, roles, daemons, folders).
lb_svc() {
    awk -v want="$1" -f "$LB_ROOT/scripts/lib/services.awk" "${LB_SVC_TABLES[@]}" ||
        lb_die "the service table is malformed (${LB_SVC_TABLES[*]})"
}

# Sets LB_DAEMONS: one "binary port-variable default" row per daemon with a
# port, in start order. scripts/dev starts those that are built.
lb_svc_load() {
    local rows
    rows=$(lb_svc daemons) || exit 1
    mapfile -t LB_DAEMONS <<<"$rows"
}

lb_svc_load
