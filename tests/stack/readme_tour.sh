#!/usr/bin/env bash
# tests/stack/readme_tour.sh - the README's tour runs as written: the first
# ```sh block under "## A short tour" is taken from README.md unchanged and
# run by bash in a temp stack folder (LAYBY_DEV_VAR; the tour's own
# `LAYBY_FAST=1 scripts/dev up` starts it on the default ports, which must be
# free), then its output must show what the tour promises:
#   - the payment answered PAID with the order's total;
#   - the delivery reached DELIVERED by its timers (the tour's `until` loop);
#   - the cancel after delivery answered 409 not_cancellable, a misspelt
#     field unknown_field, in DESIGN's error shape;
#   - readyz ready, `layby-ctl status` ok, `layby-ctl audit` OK;
#   - the order's events replayed, its three delivery steps among them.
# A tour that hangs (a loop that never ends) fails after LAYBY_TOUR_TIMEOUT
# seconds (default 300). Then `scripts/dev down`. Run as root after a
# Release build (CI: .ci/run, after the Release compile). ~40 s.
set -euo pipefail
# shellcheck disable=SC2034 # lib.sh reads it
STACK_TEST=readme_tour
# shellcheck source=tests/stack/lib.sh
. "$(dirname "$0")/lib.sh"
STACK_KEEP=("$TMP/tour.sh" "$TMP/tour.out")
STACK_SHOW=$TMP/tour.out

awk '/^## A short tour/ { in_tour = 1 }
     in_tour && /^```sh$/ { in_block = 1; next }
     in_block && /^```$/ { exit }
     in_block' "$ROOT/README.md" >"$TMP/tour.sh"
[ -s "$TMP/tour.sh" ] || fail "no sh block under \"## A short tour\" in README.md"
ok "$(wc -l <"$TMP/tour.sh") lines of the tour"

# The tour names localhost:8080, the edge's default; `scripts/dev up` itself
# says so clearly when any other port of the stack is taken.
if lb_port_busy 8080; then fail "port 8080 is taken (is var/'s stack up? scripts/dev down)"; fi
# As a reader runs it: from the repository's root, one command after another;
# a failing command shows in the output, not in bash's status (the tour does
# not set -e), so the checks below read the output.
(cd "$ROOT" && timeout "${LAYBY_TOUR_TIMEOUT:-300}" bash "$TMP/tour.sh") >"$TMP/tour.out" 2>&1 ||
    fail "the tour exited with status $? (124: it ran past ${LAYBY_TOUR_TIMEOUT:-300} s)"
ok "the tour ran in $(lb_elapsed "$t0") s"

# One row per promise: what the output must hold (an extended regex), and what it means.
checks=(
    '\{"status":"PAID","total":2190000\}|the payment answered PAID with the total'
    '\{"status":"PAID","delivery":"DELIVERED"\}|the delivery reached DELIVERED'
    '\{"error":\{"code":"not_cancellable","message":"[^"]+"\}\}|the cancel after delivery is 409 not_cancellable'
    '\{"error":\{"code":"unknown_field","message":"[^"]+","field":"prize"\}\}|a misspelt field is unknown_field'
    '\{"status":"ready"\}|readyz is ready'
    '^status +ok$|layby-ctl status is ok'
    '^OK$|layby-ctl audit balances'
    'layby-ctl events replay: [0-9]+ messages|the order'"'"'s events replayed'
)
for row in "${checks[@]}"; do
    grep -qE "${row%%|*}" "$TMP/tour.out" || fail "${row#*|}: no line matching ${row%%|*}"
    ok "${row#*|}"
done
n=$(grep -c '"type":"layby.v1.DeliveryAdvanced"' "$TMP/tour.out" || true)
[ "$n" = 3 ] || fail "the replay shows $n DeliveryAdvanced events, not 3 (PREPARING, SHIPPING, DELIVERED)"
ok "the replay shows the delivery's three steps"

"$ROOT/scripts/dev" down >/dev/null 2>&1 || fail "scripts/dev down"
lb_say "readme_tour: passed in $(lb_elapsed "$t0") s"
