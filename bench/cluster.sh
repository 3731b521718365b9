#!/usr/bin/env bash
# bench/cluster.sh [COUNT] [RUNS] - the price of three replicas on one machine
# (issue 23): completed 3-step sagas per second (bench_saga, the test saga
# with the no-op participant, as bench/run.sh section c) and p50/p99 at half
# of that peak, on the single stack and on the clustered one
# (`scripts/dev up --cluster`: 3 nats-server nodes, streams at R3, two
# orchestrators and two participants), in the same sitting, alternating
# single, cluster RUNS times (default 1). COUNT sagas per peak run (10000).
#
# Each stack runs in a temp folder on free ports (LAYBY_DEV_VAR,
# lb_stack_ports_free), so it runs beside a var/ stack. What limits it: the CPU
# each process used during the peak run (utime + stime from /proc, in cores:
# each nats-server node, the PostgreSQL cluster, the orchestrators, the
# participants, the bench itself), printed per shape.
#
# Not part of bench/run.sh (two stacks, one of them 3 nodes: ~4-6 minutes).
# Lines: "cluster_peak shape=S per_s=..", "cluster_half shape=S rate=.. p50_ms=..
# p99_ms=..", "cluster_cpu shape=S <process>=<cores> ...", then a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
LB_ROOT=$(pwd)
for lib in "$LB_ROOT"/scripts/lib/*.sh; do
    # shellcheck disable=SC1090
    . "$lib"
done
COUNT=${1:-10000}
RUNS=${2:-1}
B=build/release
BT=build/bench-test

# The test saga types and their participant are test-only code
# (LAYBY_TEST_HOOKS): a Release build with the hooks on, as bench/run.sh (c).
cmake -S . -B $BT -DCMAKE_BUILD_TYPE=Release -DLAYBY_TEST_HOOKS=ON >/dev/null
cmake --build $BT -j2 --target layby-sagatest layby-orchestrator >/dev/null

OUT=$(mktemp -d /tmp/layby-bench-cluster.XXXXXX)
chmod 755 "$OUT" # the postgres user keeps its clusters under var/ (lb_pg_locate)
export LAYBY_DEV_VAR=$OUT/var
# shellcheck disable=SC2034 # read by lb_env_get (scripts/lib/daemons.sh)
LB_ENV_FILE=$LAYBY_DEV_VAR/env LB_RUN=$LAYBY_DEV_VAR/run
# one look at the Release build, not one per `scripts/dev up`
daemons=()
for row in "${LB_DAEMONS[@]}"; do daemons+=("${row%% *}"); done
cmake --build $B -j2 --target layby-ctl bench_saga "${daemons[@]}" >/dev/null
export LAYBY_DEV_BUILD=0
BENCH_PIDS=()
# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
    local p
    for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    scripts/dev down >/dev/null 2>&1 || true
    rm -rf "$LAYBY_DEV_VAR"/pg "$LAYBY_DEV_VAR"/pg-2 "$LAYBY_DEV_VAR"/nats
    lb_say "bench/cluster.sh: results and logs in $OUT"
}
trap cleanup EXIT
lb_stack_ports_free

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
say() { printf '%s\n' "$*" >&2; }

# ticks PID...: utime + stime of the processes, in clock ticks.
ticks() {
    local p t=0 s
    for p in "$@"; do
        s=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        t=$((t + $(awk '{ print $12 + $13 }' <<<"$s")))
    done
    echo $t
}
# pg_pids PORT: the postmaster listening on PORT and its children (backends).
pg_pids() {
    local pm
    pm=$(ss -Htlnp "sport = :$1" | sed -n 's/.*pid=\([0-9]*\),.*/\1/p' | head -1)
    [ -n "$pm" ] || return 0
    echo "$pm"
    pgrep -P "$pm" || true
}

run_shape() {
    local shape=$1 flag="" n=1 i pid group hz wall t0 t1 peak half
    [ "$shape" = single ] || { flag=--cluster n=2; }
    say "bench/cluster.sh: $shape stack up"
    scripts/dev down >/dev/null 2>&1 || true
    scripts/dev up $flag >"$OUT/up-$shape.log" 2>&1 || { tail -n 30 "$OUT/up-$shape.log" >&2; exit 1; }
    set -a
    # shellcheck disable=SC1090,SC1091
    . "$LAYBY_DEV_VAR/env"
    set +a
    $B/bench/bench_saga --setup 1
    # the test build's orchestrators replace the stack's (admin NATS user:
    # the production permission table has no test rows)
    for pid in "$LAYBY_DEV_VAR"/run/layby-orchestrator*.pid; do lb_pid_stop "$pid" 10; done
    BENCH_PIDS=()
    for i in $(seq 1 $n); do
        port=$(lb_env_get "$(lb_daemon_port_var LAYBY_ORCHESTRATOR_METRICS_PORT "$i")")
        LAYBY_INSTANCE=$i LAYBY_ORCHESTRATOR_METRICS_PORT=$port \
            LAYBY_ORCHESTRATOR_NATS_USER=$LAYBY_CTL_NATS_USER LAYBY_ORCHESTRATOR_NATS_PASSWORD=$LAYBY_CTL_NATS_PASSWORD \
            $BT/layby-orchestrator 2>"$OUT/orchestrator-$shape-$i.log" &
        BENCH_PIDS+=($!)
        LAYBY_INSTANCE=$i LAYBY_SAGATEST_NOOP=1 $BT/layby-sagatest \
            --database-url "$LAYBY_PG_ADMIN_URL?options=-csearch_path%3Dsagatest" \
            --nats-user "$LAYBY_CTL_NATS_USER" --nats-password "$LAYBY_CTL_NATS_PASSWORD" \
            --log-level warn 2>"$OUT/participant-$shape-$i.log" &
        BENCH_PIDS+=($!)
        until curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; do
            kill -0 "${BENCH_PIDS[-2]}" || { tail "$OUT/orchestrator-$shape-$i.log" >&2; exit 1; }
            sleep 0.1
        done
    done
    sleep 1
    # the processes whose CPU is counted, by group
    declare -A grp=()
    for i in $(seq 1 3); do
        [ -f "$(lb_nats_pidfile "$i")" ] && grp[nats-$i]=$(cat "$(lb_nats_pidfile "$i")")
    done
    grp[postgres]=$(pg_pids "$LAYBY_PG_PORT" | tr '\n' ' ')
    [ "$shape" = single ] || grp[postgres-2]=$(pg_pids "$LAYBY_PG2_PORT" | tr '\n' ' ')
    grp[orchestrators]="${BENCH_PIDS[0]} ${BENCH_PIDS[2]:-}"
    grp[participants]="${BENCH_PIDS[1]} ${BENCH_PIDS[3]:-}"
    declare -A before=()
    for group in "${!grp[@]}"; do
        # shellcheck disable=SC2086 # a list of pids
        before[$group]=$(ticks ${grp[$group]})
    done
    t0=$(lb_now)
    $B/bench/bench_saga --count "$COUNT" | tee "$OUT/peak-$shape" >&2 &
    local bpid=$!
    wait $bpid
    t1=$(lb_now)
    hz=$(getconf CLK_TCK)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    local cpu="cluster_cpu shape=$shape seconds=$wall"
    for group in $(printf '%s\n' "${!grp[@]}" | sort); do
        # shellcheck disable=SC2086
        cpu+=" $group=$(awk -v d=$(($(ticks ${grp[$group]}) - ${before[$group]})) -v hz="$hz" -v w="$wall" \
            'BEGIN { printf "%.2f", d / hz / w }')"
    done
    # (the postgres backends of connections opened during the run are not
    # counted: the daemons' pools are open before it starts)
    peak=$(field per_s <"$OUT/peak-$shape")
    echo "cluster_peak shape=$shape per_s=$peak" | tee -a "$OUT/results"
    echo "$cpu" | tee -a "$OUT/results"
    half=$(awk -v r="$peak" 'BEGIN { printf "%d", r / 2 }')
    $B/bench/bench_saga --count $((half * 6)) --rate "$half" | tee "$OUT/half-$shape" >&2
    echo "cluster_half shape=$shape rate=$half p50_ms=$(field p50_ms <"$OUT/half-$shape") p99_ms=$(field p99_ms <"$OUT/half-$shape")" |
        tee -a "$OUT/results"
    for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait "${BENCH_PIDS[@]}" 2>/dev/null || true
    BENCH_PIDS=()
    scripts/dev down >/dev/null 2>&1
}

say "bench/cluster.sh: load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq 1 "$RUNS"); do
    run_shape single
    run_shape cluster
done
say "bench/cluster.sh: load after: $(cut -d' ' -f1-3 /proc/loadavg)"

med() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
S=$(grep "^cluster_peak shape=single" "$OUT/results" | field per_s | med)
C=$(grep "^cluster_peak shape=cluster" "$OUT/results" | field per_s | med)
SP=$(grep "^cluster_half shape=single" "$OUT/results" | field p99_ms | med)
CP=$(grep "^cluster_half shape=cluster" "$OUT/results" | field p99_ms | med)
printf '%-40s %10s %10s %8s\n' "" single cluster ratio
printf '%-40s %10s %10s %8s\n' "completed 3-step sagas/s (peak)" "$S" "$C" "$(awk -v a="$C" -v b="$S" 'BEGIN { printf "%.2f", a / b }')"
printf '%-40s %10s %10s %8s\n' "p99 ms at half the peak" "$SP" "$CP" "$(awk -v a="$CP" -v b="$SP" 'BEGIN { printf "%.2f", a / b }')"
grep '^cluster_cpu' "$OUT/results"
