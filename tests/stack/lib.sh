# tests/stack/lib.sh - what the stack checks share: sourced by each one after
# it sets STACK_TEST (its name). Gives ROOT, scripts/lib's functions, t0,
# fail/ok (lines prefixed with the name), and a temp folder TMP whose var/
# is the stack's (LAYBY_DEV_VAR), run from the Release build that is there
# (LAYBY_DEV_BUILD=0 unless set: CI builds it in the step before).
# On exit the stack goes down and TMP goes; when a check failed, the stack's
# logs and the files named in STACK_KEEP are copied to
# build/release/Testing/$STACK_TEST-logs first, and STACK_SHOW (a file) is
# printed.
# shellcheck shell=bash
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC2034 # scripts/lib reads it
LB_ROOT=$ROOT
for lib in "$ROOT"/scripts/lib/*.sh; do
    # shellcheck disable=SC1090
    . "$lib"
done
# shellcheck disable=SC2034 # the checks print their time with it
t0=$(lb_now)
fail() {
    printf '%s: FAIL: %s\n' "$STACK_TEST" "$*" >&2
    exit 1
}
ok() { printf '%s: ok: %s\n' "$STACK_TEST" "$*" >&2; }

TMP=$(mktemp -d "/tmp/layby-$STACK_TEST.XXXXXX")
chmod 755 "$TMP" # the postgres user keeps its clusters under var/ (lb_pg_locate)
export LAYBY_DEV_VAR=$TMP/var
export LAYBY_DEV_BUILD=${LAYBY_DEV_BUILD:-0}

STACK_KEEP=()
STACK_SHOW=
# shellcheck disable=SC2317 # runs from the EXIT trap
stack_cleanup() {
    local rc=$? dir=$ROOT/build/release/Testing/$STACK_TEST-logs
    set +e
    "$ROOT/scripts/dev" down >/dev/null 2>&1
    if [ $rc -ne 0 ]; then
        [ -n "$STACK_SHOW" ] && tail -n 60 "$STACK_SHOW" >&2
        mkdir -p "$dir"
        cp -L "${STACK_KEEP[@]}" "$LAYBY_DEV_VAR"/log/*.log "$dir/" 2>/dev/null
        lb_say "$STACK_TEST: logs copied to build/release/Testing/$STACK_TEST-logs"
    fi
    rm -rf "$TMP"
    exit $rc
}
trap stack_cleanup EXIT
trap 'exit 130' INT TERM
