# scripts/lib/daemons.sh - starts and stops the layby daemons of a build.
#
# Each daemon runs N instances (1 on the single stack, 2 on the clustered
# one), each with the environment of $LB_ENV_FILE and:
#   instance I    LAYBY_INSTANCE=I (its name in logs)
#   port          the daemon's port variable (LAYBY_<SVC>_METRICS_PORT,
#                 LAYBY_EDGE_PORT) set to the value of <variable>_<I> in the
#                 env file for I > 1 (lb_daemon_port_var), to its own for I = 1
#   files         $LB_LOG/<binary>[-I].log, $LB_RUN/<binary>[-I].pid (instance
#                 1's names carry no number, so one instance is the 1-instance case)
# An instance is ready when GET /healthz on its port answers 200.
# shellcheck shell=bash

# lb_env_get NAME: the value $LB_ENV_FILE gives NAME; empty when the file
# has none, whatever the caller's environment holds (a shell that ran
# `eval "$(scripts/dev env)"` of the clustered stack exports LAYBY_PG2_PORT,
# which the single stack's file does not set).
lb_env_get() {
    # shellcheck disable=SC1090
    (unset "$1" && . "$LB_ENV_FILE" && printf '%s' "${!1:-}")
}

# lb_daemon_sfx I: the file-name suffix of instance I ("" for instance 1).
lb_daemon_sfx() { [ "${1:-1}" = 1 ] || printf -- '-%s' "$1"; }

# lb_daemon_port_var VAR I: the env-file variable holding instance I's port.
lb_daemon_port_var() { if [ "$2" = 1 ]; then printf '%s' "$1"; else printf '%s_%s' "$1" "$2"; fi; }

# lb_daemon_port_default DEFAULT I: instance I's default port (instance 2 of
# the edge's 8080 is 8180, of the catalog's 9101 is 9201).
lb_daemon_port_default() { echo $(($1 + 100 * ($2 - 1))); }

# lb_wait_healthy NAME PORT PIDFILE SECONDS [LOG]
lb_wait_healthy() {
    local deadline=$((SECONDS + $4)) log=${5:-$LB_LOG/$1.log}
    until curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$2/healthz" 2>/dev/null; do
        lb_pid_alive "$3" || { tail -n 20 "$log" >&2; lb_die "$1 exited (log: $log)"; }
        [ $SECONDS -lt $deadline ] || lb_die "$1 not healthy after $4 s (log: $log)"
        sleep 0.1
    done
}

# lb_daemons_instances: how many instances the env file asks for (LAYBY_INSTANCES, default 1).
lb_daemons_instances() {
    local n
    n=$(lb_env_get LAYBY_INSTANCES)
    echo "${n:-1}"
}

# lb_daemon_start BUILD NAME VAR I: (re)starts instance I of daemon NAME.
lb_daemon_start() {
    local build=$1 name=$2 var=$3 i=$4 sfx pid log port pvar
    sfx=$(lb_daemon_sfx "$i")
    pid=$LB_RUN/$name$sfx.pid log=$LB_LOG/$name$sfx.log
    pvar=$(lb_daemon_port_var "$var" "$i")
    lb_pid_stop "$pid" 10
    port=$(lb_env_get "$pvar")
    [ -n "$port" ] || lb_die "$name instance $i: no $pvar in $LB_ENV_FILE"
    lb_port_check "$port" "$pvar" "$name$sfx"
    (
        # shellcheck disable=SC1090
        set -a && . "$LB_ENV_FILE" && set +a
        export "$var=$port" LAYBY_INSTANCE="$i"
        nohup "$build/$name" >>"$log" 2>&1 </dev/null &
        echo $! >"$pid"
    )
    lb_wait_healthy "$name$sfx" "$port" "$pid" 30 "$log"
    lb_say "$name$sfx: running (pid $(cat "$pid"), http://127.0.0.1:$port/healthz)"
}

# lb_daemons_start BUILD_DIR: (re)starts every instance of every built daemon
# of the service table, in its order; skips the others (services whose
# folder has no code yet).
lb_daemons_start() {
    local build=$1 row name var n i skipped=()
    n=$(lb_daemons_instances)
    for row in "${LB_DAEMONS[@]}"; do
        read -r name var _ <<<"$row"
        if [ ! -x "$build/$name" ]; then
            skipped+=("$name")
            continue
        fi
        for i in $(seq 1 "$n"); do
            lb_daemon_start "$build" "$name" "$var" "$i"
        done
    done
    [ ${#skipped[@]} -eq 0 ] || lb_say "not built (yet), skipped: ${skipped[*]}"
}

# lb_daemons_stop: stops every instance of every daemon that runs.
lb_daemons_stop() {
    local row name f
    for row in "${LB_DAEMONS[@]}"; do
        read -r name _ <<<"$row"
        for f in "$LB_RUN/$name.pid" "$LB_RUN/$name"-[0-9]*.pid; do
            [ -e "$f" ] && lb_pid_stop "$f" 10
        done
    done
    return 0
}

# lb_stack_ports_free: exports free loopback ports for every setting of a
# clustered `scripts/dev up --cluster` (the nodes' client and route ports as
# two runs of three, both PostgreSQL clusters, both instances of each
# daemon), so a stack in a temp folder (LAYBY_DEV_VAR) runs beside var/'s.
lb_stack_ports_free() {
    local taken=() base k p row var v
    for v in LAYBY_NATS_PORT LAYBY_NATS_ROUTE_PORT; do
        for _ in $(seq 1 50); do
            base=$(lb_port_free "${taken[@]}")
            for k in 1 2; do lb_port_busy $((base + k)) && continue 2; done
            break
        done
        taken+=("$base" $((base + 1)) $((base + 2)))
        export "$v=$base"
    done
    for v in LAYBY_PG_PORT LAYBY_PG2_PORT; do
        p=$(lb_port_free "${taken[@]}")
        taken+=("$p")
        export "$v=$p"
    done
    for row in "${LB_DAEMONS[@]}"; do
        read -r _ var _ <<<"$row"
        for v in "$var" "$(lb_daemon_port_var "$var" 2)"; do
            p=$(lb_port_free "${taken[@]}")
            taken+=("$p")
            export "$v=$p"
        done
    done
}
