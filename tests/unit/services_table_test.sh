#!/usr/bin/env bash
# services_table_test.sh - the service table (etc/services.tsv) and its parser
# (scripts/lib/services.awk): the real tables are well-formed and derive what
# they must; a malformed table is refused with the line that is wrong.
# Needs no server: a unit suite (ctest -L unit).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
AWK=$ROOT/scripts/lib/services.awk
PROD=$ROOT/etc/services.tsv
TEST=$ROOT/tests/support/services-test.tsv
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0

view() { awk -v want="$1" -f "$AWK" "${@:2}"; }
ok() { printf 'ok    %s\n' "$1"; }
bad() {
    printf 'FAIL  %s\n' "$1"
    fails=$((fails + 1))
}
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# --- the real tables ---------------------------------------------------------
check "production table is well-formed" 'view check "$PROD"'
check "production + test table is well-formed" 'view check "$PROD" "$TEST"'

nats=$(view nats "$PROD")
# "service subject" pairs each durable row needs, against those derived
want=$(view c "$PROD" | awk -F'"' '/^    \{ "LAYBY_/ {
    svc = substr($8, 7); api = $2 "." $4
    print svc, "$JS.API.CONSUMER.INFO." api
    print svc, "$JS.API.CONSUMER.MSG.NEXT." api
    print svc, "$JS.ACK." api ".>"
}' | sort -u)
have=$(awk '$3 == "pub" { for (i = 4; i <= NF; i++) print $1, $i }' <<<"$nats" | sort -u)
check "every durable's reader may look it up, fetch and ack" \
    '[ -n "$want" ] && [ -z "$(comm -23 <(echo "$want") <(echo "$have"))" ]'
# (a key-value watcher's own consumer on its bucket's stream KV_* is allowed,
# and so is an ephemeral one on LAYBY_EVT: nats-server 2.9 answers the plain
# CREATE.<stream> subject for ephemeral consumers only, the edge's read model)
check "no daemon may create, change or delete a stream or durable of layby" \
    '! sed "s/ \\\$JS\.API\.CONSUMER\.CREATE\.LAYBY_EVT\( \|$\)/ /g" <<<"$nats" |
       grep -E "\\\$JS\.API\.(STREAM|CONSUMER)\.(CREATE|UPDATE|DELETE|PURGE|DURABLE)\.(LAYBY_|\*|>)|(^| )>( |$)"'
check "the production stack has no test user, durable or subject" \
    '! grep -q "sagatest" <<<"$nats" && ! view c "$PROD" | grep -q "sagatest"'
check "the test rows give the participant its own user, no wider than its subjects" '
    t=$(view nats "$PROD" "$TEST" | grep "^sagatest ")
    grep -q "pub layby.evt.sagatest.>" <<<"$t" && ! grep -q "layby.cmd\|layby.evt.>\|layby.evt.product" <<<"$t"'
check "roles: saga is the orchestrator's and layby-ctl's; order's schema is orders" \
    'view roles "$PROD" | grep -qx "saga ORCHESTRATOR CTL" && view roles "$PROD" | grep -qx "orders ORDER"'
check "the edge starts last (after every service it calls)" \
    '[ "$(view daemons "$PROD" | tail -n 1 | cut -d" " -f1)" = layby-edge ]'

# --- malformed tables are refused, naming the line ------------------------------
refuse() { # name, expected message part, table text
    printf '%s\n' "$3" >"$TMP/t.tsv"
    local out
    if out=$(view check "$TMP/t.tsv" 2>&1); then
        bad "refuses $1 (accepted)"
    elif ! grep -q -- "$2" <<<"$out" || ! grep -q "t.tsv:[0-9]" <<<"$out"; then
        bad "refuses $1 (message: $out)"
    else
        ok "refuses $1"
    fi
}
base='a durable LAYBY_CMD a layby.cmd.a.>'
refuse "an unknown field" "unknown field 'folders'" "$base
a folders services/a"
refuse "a durable without filter" "takes 3 values" "a durable LAYBY_CMD a"
refuse "one durable read by two services" "LAYBY_CMD/a is a's already" "$base
b durable LAYBY_CMD a layby.cmd.b.>"
refuse "one port for two daemons" "port 9101 is a's already" "$base
a port 9101
b port 9101"
refuse "a port given twice" "given twice" "$base
a port 9101
a port 9102"
refuse "a port that is none" "no TCP port" "$base
a port 70000"
refuse "schema public" "not public" "$base
a schema public"
refuse "one schema for two services" "schema x is a's already" "$base
a schema x
b schema x"
refuse "a service name in capitals" "service name 'A'" "A folder x"
refuse "a grant without subjects" "takes 2 or more" "$base
a grant edge"
refuse "quotes (they would break the generated C)" "no quotes" "$base
a publish layby.\"x"
printf '# nothing\n' >"$TMP/empty.tsv"
check "refuses an empty table" '! view check "$TMP/empty.tsv" 2>/dev/null'

[ $fails -eq 0 ] || { echo "$fails failed"; exit 1; }
echo "all passed"
