#!/usr/bin/env bash
# bench/members_ab.sh - GET /me p99 under a login storm, with layby-member in
# one scheduling group or another: an A/B for issue 18's "/me p99 during a
# login storm <= 2 x idle" (bench/run.sh section (e)), on the running local
# stack (scripts/dev up; bench/run.sh leaves it up).
#
#   bench/members_ab.sh [ROUNDS] [MODE...]     (defaults: 3, plain cgroup)
#
# MODE says where layby-member (only it) is restarted, with the stack's env:
#   plain   the caller's session, no hashing cgroup (LAYBY_MEMBER_HASH_CGROUP
#           empty): its autogroup holds the edge, nats-server, the other
#           daemons and the bench client; the Argon2id thread's SCHED_IDLE
#           yields only inside it
#   stack   as the stack's env file says (scripts/dev up: the cgroup below)
#   own     its own session (setsid): an autogroup of its own, nice 0
#   own19   its own session, autogroup nice 19 (weight 15 against 1024)
#   cgroup  the caller's session, the hashing thread in a cpu cgroup of the
#           member's default weight (LAYBY_MEMBER_HASH_CGROUP=$LAYBY_AB_CGROUP,
#           default /sys/fs/cgroup/cpu/layby-hash: member_pool.c); the
#           default is idle (as the idle mode) since 2026-12-03: cgroup32
#           is the former 32-share default
#   cgroupN the same at N shares (cgroup64: cpu.shares 64)
#   idle    the same cgroup made idle (cpu.idle = 1, shares 0)
# Each round restarts the member once per mode, in turn (A B C A B C ...: the
# modes share the machine's drift), and runs bench_members idle and with the
# storm of section (e) (POOL + QUEUE login clients). It prints each pair, then
# per mode the medians of idle p99, storm p99, their ratio and the logins/s.
# At the end layby-member runs again as scripts/dev starts it (mode stack).
# Each pair's line also has the hashing cgroup's weight as the kernel holds it.
# A mode that cannot start (no such cgroup support: member.hash_cgroup_failed
# in the member's log) still runs, as the stack mode: read the log.
# Figures are ratios within one run: on a loaded machine the SCHED_IDLE hash
# gets almost no CPU (0.2-1.2 logins/s at load 25), so there is no storm to
# measure; run it on a quiet machine.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ROUNDS=${1:-3}
shift || true
MODES=("$@")
[ ${#MODES[@]} -gt 0 ] || MODES=(plain cgroup)
B=${LAYBY_BENCH_BUILD:-build/release}
VAR=${LAYBY_DEV_VAR:-$ROOT/var}
ENV_FILE=$VAR/env
PIDF=$VAR/run/layby-member.pid
LOG=$VAR/log/layby-member.log
if [ ! -f "$ENV_FILE" ] || [ ! -f "$PIDF" ]; then
    echo "members_ab: no running stack (scripts/dev up)" >&2
    exit 2
fi
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a
# Every mode but stack and the cgroup ones hashes without a cgroup.
STACK_CG=${LAYBY_MEMBER_HASH_CGROUP:-}
export LAYBY_MEMBER_HASH_CGROUP=''
POOL=${LAYBY_MEMBER_HASH_THREADS:-1}
ADMITS=$((POOL + ${LAYBY_MEMBER_HASH_QUEUE:-1}))
OUT=$(mktemp -d /tmp/layby-members-ab.XXXXXX)

member_restart() {
    local pid
    pid=$(cat "$PIDF")
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    local cg=${LAYBY_AB_CGROUP:-/sys/fs/cgroup/cpu/layby-hash}
    case $1 in
    stack) LAYBY_MEMBER_HASH_CGROUP=$STACK_CG nohup "$B/layby-member" >>"$LOG" 2>&1 </dev/null & ;;
    plain) nohup "$B/layby-member" >>"$LOG" 2>&1 </dev/null & ;;
    cgroup) LAYBY_MEMBER_HASH_CGROUP=$cg nohup "$B/layby-member" >>"$LOG" 2>&1 </dev/null & ;;
    cgroup[0-9]*)
        LAYBY_MEMBER_HASH_CGROUP=$cg LAYBY_MEMBER_HASH_CGROUP_SHARES=${1#cgroup} \
            nohup "$B/layby-member" >>"$LOG" 2>&1 </dev/null &
        ;;
    idle)
        LAYBY_MEMBER_HASH_CGROUP=$cg LAYBY_MEMBER_HASH_CGROUP_SHARES=0 \
            nohup "$B/layby-member" >>"$LOG" 2>&1 </dev/null &
        ;;
    own) setsid "$B/layby-member" >>"$LOG" 2>&1 </dev/null & ;;
    own19)
        # shellcheck disable=SC2016 # $0 is the inner shell's
        setsid sh -c 'echo 19 >/proc/self/autogroup && exec "$0"' "$B/layby-member" \
            >>"$LOG" 2>&1 </dev/null &
        ;;
    *) echo "members_ab: unknown mode $1" >&2 && exit 2 ;;
    esac
    echo $! >"$PIDF"
    until curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$LAYBY_MEMBER_METRICS_PORT/healthz" 2>/dev/null; do
        sleep 0.1
    done
    sleep 1
}

# The cpu cgroup of each layby-member thread not in the root: "tid:/group", or "-".
cgroup_of_hash() {
    local t g out=''
    for t in /proc/"$(cat "$PIDF")"/task/*; do
        g=$(sed -n 's/^[0-9]*:cpu:\(.*\)/\1/p' "$t/cgroup" 2>/dev/null)
        [ -z "$g" ] || [ "$g" = / ] || out+="${t##*/}:$g "
    done
    echo "${out:--}"
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

for _ in $(seq "$ROUNDS"); do
    for m in "${MODES[@]}"; do
        member_restart "$m"
        group=$(cat "/proc/$(cat "$PIDF")/autogroup" 2>/dev/null || echo "?")
        idle=$("$B/bench/bench_members" --me-rate 100 --seconds 10 || true)
        storm=$("$B/bench/bench_members" --me-rate 100 --seconds 10 --storm "$ADMITS" || true)
        echo "$m [$group] load=$(cut -d' ' -f1 /proc/loadavg) idle: $idle"
        echo "$m cgroup: $(cgroup_of_hash) (${LAYBY_AB_CGROUP:-/sys/fs/cgroup/cpu/layby-hash}: shares $(cat "${LAYBY_AB_CGROUP:-/sys/fs/cgroup/cpu/layby-hash}/cpu.shares" 2>/dev/null || echo -))"
        echo "$m storm: $storm"
        echo "$idle" | field p99_ms >>"$OUT/$m.idle"
        echo "$storm" | field p99_ms >>"$OUT/$m.storm"
        echo "$storm" | field storm_per_s >>"$OUT/$m.logins"
    done
done
member_restart stack

printf '%-8s %14s %14s %10s %10s\n' mode "idle p99 ms" "storm p99 ms" "x idle" "logins/s"
for m in "${MODES[@]}"; do
    mi=$(median <"$OUT/$m.idle") ms=$(median <"$OUT/$m.storm") lg=$(median <"$OUT/$m.logins")
    printf '%-8s %14s %14s %10s %10s\n' "$m" "$mi" "$ms" \
        "$(awk -v a="$ms" -v b="$mi" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')" "$lg"
done
rm -rf "$OUT"
