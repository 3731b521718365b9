# scripts/lib/common.sh - shared by scripts/dev and tests/support/harness.sh.
#
# Every function works on the "layout" chosen by lb_layout: one folder that
# holds config, data, logs, pid files and secrets (var/ of the project for the
# local stack, a temp folder for the test harness), so both run the very same
# steps on different ports and folders.
# shellcheck shell=bash

LB_ROOT=${LB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

# Debian packages the project needs to build, run and test. The one list.
LB_PACKAGES=(
    build-essential cmake pkg-config clang-format
    nats-server libnats-dev
    protobuf-c-compiler libprotobuf-c-dev
    libsodium-dev libjwt-dev libcivetweb-dev libcriterion-dev
    postgresql postgresql-contrib libpq-dev
    libjansson-dev libcurl4-openssl-dev libssl-dev openssl
    curl jq wrk
    python3-jsonschema openapi-specification
    python3-aiosmtpd python3-protobuf
    clang-14 libclang-rt-14-dev
    chromium nodejs
)

# The daemons (LB_DAEMONS), NATS users and database roles come from the
# service table etc/services.tsv (scripts/lib/services.sh).

lb_say() { printf '%s\n' "$*" >&2; }
lb_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Seconds since the epoch with milliseconds, for timings.
lb_now() { date +%s.%3N; }
lb_elapsed() { awk -v a="$1" -v b="$(lb_now)" 'BEGIN { printf "%.1f", b - a }'; }

# lb_layout VAR_DIR: sets every path used below.
# shellcheck disable=SC2034 # the paths are used by the other scripts/lib files
lb_layout() {
    LB_VAR=$1
    LB_SECRETS=$LB_VAR/secrets
    LB_LOG=$LB_VAR/log
    LB_RUN=$LB_VAR/run
    LB_NATS_DIR=$LB_VAR/nats
    LB_ENV_FILE=$LB_VAR/env
    mkdir -p "$LB_VAR" "$LB_LOG" "$LB_RUN" "$LB_NATS_DIR"
    # postgres must be able to traverse it (see lb_pg_locate)
    chmod 755 "$LB_VAR"
    mkdir -p "$LB_SECRETS"
    chmod 700 "$LB_SECRETS"
}

# Installs missing packages; apt-get update only when something is missing.
lb_deps_install() {
    local p missing=()
    for p in "${LB_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    lb_say "installing: ${missing[*]}"
    [ "$(id -u)" -eq 0 ] || lb_die "missing packages (${missing[*]}); run as root to install them"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# The browser test's npm packages (tests/browser: puppeteer-core, pinned by its
# package-lock.json) into tests/browser/node_modules, when missing or older
# than the lock file. npm comes with the nodejs package of some sources;
# Debian's own packs it apart.
lb_browser_install() {
    local dir=$LB_ROOT/tests/browser t0
    [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ] && return 0
    command -v npm >/dev/null || {
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm >&2
    }
    t0=$(lb_now)
    npm ci --prefix "$dir" --no-audit --no-fund >&2
    lb_say "npm ci (tests/browser) took $(lb_elapsed "$t0") s"
}

# lb_build DIR TYPE: configures and builds the tree.
lb_build() {
    local dir=$1 type=$2 out
    mkdir -p "$dir"
    out=$(cmake -S "$LB_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="$type" 2>&1) ||
        { printf '%s\n' "$out" >&2; lb_die "cmake configure failed ($dir)"; }
    cmake --build "$dir" -j2 >&2 || lb_die "build failed ($dir)"
}

# True when something listens on TCP port $1 (any local address).
lb_port_busy() {
    [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
}

# lb_port_check PORT SETTING WHAT: fails clearly when the port is taken.
lb_port_check() {
    if lb_port_busy "$1"; then
        lb_die "port $1 ($3) is already in use by another program; choose another with $2=<port>"
    fi
}

# Prints a free loopback port not in the list given as arguments. It is drawn
# below the kernel's ephemeral range (ip_local_port_range): a port handed out
# now but bound only later (a daemon a test restarts on its own metrics port)
# must not be taken meanwhile by bind(0) or by an outgoing connection.
lb_port_free() {
    local p lo=32768 span taken=" $* "
    { read -r lo _ </proc/sys/net/ipv4/ip_local_port_range; } 2>/dev/null || lo=32768
    span=$((lo - 10000))
    [ "$span" -ge 1000 ] || lb_die "the ephemeral port range starts at $lo: no room below it"
    for _ in $(seq 1 200); do
        p=$((10000 + (RANDOM * 32768 + RANDOM) % span))
        case $taken in *" $p "*) continue ;; esac
        lb_port_busy "$p" || { echo "$p"; return 0; }
    done
    lb_die "no free port found"
}

# lb_wait_port PORT SECONDS: waits until something listens on PORT.
lb_wait_port() {
    local deadline=$((SECONDS + $2))
    while ! lb_port_busy "$1"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

# True when the pid in file $1 is alive and still the program the file is
# named after (<program>[-<n>].pid): a stale file whose pid was reused by
# another program, or a zombie, counts as not running.
lb_pid_alive() {
    local pid comm state
    [ -f "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
    [ "$state" != Z ] && [[ $(basename "$1" .pid) == "$comm"* ]]
}

# lb_pid_stop PIDFILE SECONDS: SIGTERM, then SIGKILL after the deadline.
lb_pid_stop() {
    local pid deadline=$((SECONDS + $2))
    lb_pid_alive "$1" || { rm -f "$1"; return 0; }
    pid=$(cat "$1")
    kill -TERM "$pid" 2>/dev/null || true
    while lb_pid_alive "$1"; do
        if [ $SECONDS -ge $deadline ]; then
            lb_say "pid $pid did not stop in $2 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.1
    done
    rm -f "$1"
}
