# scripts/lib/daemons.sh - starts and stops the layby daemons of a build.
#
# Each daemon runs with the environment of $LB_ENV_FILE, logs to
# $LB_LOG/<binary>.log and leaves its pid in $LB_RUN/<binary>.pid. It is ready
# when GET /healthz on its metrics (edge: HTTP) port answers 200.
# shellcheck shell=bash

# lb_env_get NAME: the value $LB_ENV_FILE gives NAME.
lb_env_get() {
    # shellcheck disable=SC1090
    (. "$LB_ENV_FILE" && printf '%s' "${!1:-}")
}

# lb_wait_healthy NAME PORT PIDFILE SECONDS
lb_wait_healthy() {
    local deadline=$((SECONDS + $4))
    until curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$2/healthz" 2>/dev/null; do
        lb_pid_alive "$3" || { tail -n 20 "$LB_LOG/$1.log" >&2; lb_die "$1 exited (log: $LB_LOG/$1.log)"; }
        [ $SECONDS -lt $deadline ] || lb_die "$1 not healthy after $4 s (log: $LB_LOG/$1.log)"
        sleep 0.1
    done
}

# lb_daemons_start BUILD_DIR: (re)starts every built daemon of the service
# table, in its order; skips the others (services whose folder has no code yet).
lb_daemons_start() {
    local build=$1 row name var port pid skipped=()
    for row in "${LB_DAEMONS[@]}"; do
        read -r name var _ <<<"$row"
        pid=$LB_RUN/$name.pid
        if [ ! -x "$build/$name" ]; then
            skipped+=("$name")
            continue
        fi
        lb_pid_stop "$pid" 10
        port=$(lb_env_get "$var")
        lb_port_check "$port" "$var" "$name"
        (
            # shellcheck disable=SC1090
            set -a && . "$LB_ENV_FILE" && set +a
            nohup "$build/$name" >>"$LB_LOG/$name.log" 2>&1 </dev/null &
            echo $! >"$pid"
        )
        lb_wait_healthy "$name" "$port" "$pid" 30
        lb_say "$name: running (pid $(cat "$pid"), http://127.0.0.1:$port/healthz)"
    done
    [ ${#skipped[@]} -eq 0 ] || lb_say "not built (yet), skipped: ${skipped[*]}"
}

lb_daemons_stop() {
    local row name var
    for row in "${LB_DAEMONS[@]}"; do
        read -r name var _ <<<"$row"
        lb_pid_stop "$LB_RUN/$name.pid" 10
    done
}
