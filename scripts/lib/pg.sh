# scripts/lib/pg.sh - a private PostgreSQL 15 cluster: init, start, roles,
# schemas, migrations, stop. Never touches the system cluster.
#
# initdb refuses root, so the cluster belongs to the `postgres` user, which
# must be able to reach its folder (PLATFORM.md). A checkout it cannot enter
# (under /root, mode 700) gets the cluster in a private folder under /tmp,
# remembered in $LB_VAR/pg.location.
#
# One cluster or two, by the same code: cluster K's folder is $LB_VAR/pg[-K]
# (pg[-K].location, log postgres[-K].log; cluster 1's names carry no number),
# chosen by lb_pg_locate K / lb_pg_find K, which set LB_PG_ROOT for the
# functions below. LB_PG_SECOND lists the schemas placed on cluster 2 (each
# with its role, its migrations and its LAYBY_<X>_DATABASE_URL there, and
# nowhere on cluster 1); empty (the default) puts every schema on cluster 1.
# shellcheck shell=bash

LB_PG_BIN=/usr/lib/postgresql/15/bin
LB_PG_DB=layby

# Service roles from the service table (etc/services.tsv): role (= the schema
# it owns), then the LAYBY_<X>_DATABASE_URL prefixes that connect as it.
# layby-ctl works on sagas, so it is `saga` too.
lb_pg_roles() { lb_svc roles; }

LB_PG_SECOND=${LB_PG_SECOND:-}

# lb_pg_cluster_of SCHEMA: 2 when the schema is placed on cluster 2, else 1.
lb_pg_cluster_of() {
    case " $LB_PG_SECOND " in *" $1 "*) echo 2 ;; *) echo 1 ;; esac
}

# lb_pg_roles_on K: the rows of lb_pg_roles whose schema lives on cluster K.
lb_pg_roles_on() {
    local role rest
    while read -r role rest; do
        [ "$(lb_pg_cluster_of "$role")" != "$1" ] || echo "$role $rest"
    done < <(lb_pg_roles)
}

lb_pg_sfx() { [ "${1:-1}" = 1 ] || printf -- '-%s' "$1"; }

lb_pg_url() {
    local pw
    if [ "$1" = postgres ]; then pw=$(lb_secret pg-postgres.pw); else pw=$(lb_secret "pg-$1.pw"); fi
    printf 'postgresql://%s:%s@127.0.0.1:%s/%s' "$1" "$pw" "$2" "$LB_PG_DB"
}

lb_pg() { (cd / && runuser -u postgres -- "$@"); }

# lb_pg_locate [K]: sets LB_PG_ROOT to cluster K's folder (default 1;
# data/, sock/, postgres.log live there), creating it.
lb_pg_locate() {
    local sfx
    sfx=$(lb_pg_sfx "${1:-1}")
    local loc=$LB_VAR/pg$sfx.location
    if [ -f "$loc" ] && [ -d "$(cat "$loc")" ]; then
        LB_PG_ROOT=$(cat "$loc")
    elif [ ! -f "$loc" ] && lb_pg test -x "$LB_VAR"; then
        LB_PG_ROOT=$LB_VAR/pg$sfx
    else
        LB_PG_ROOT=$(mktemp -d /tmp/layby-pg.XXXXXX)
        chmod 755 "$LB_PG_ROOT"
        echo "$LB_PG_ROOT" >"$loc"
        lb_say "note: the postgres user cannot reach $LB_VAR; PostgreSQL data is in $LB_PG_ROOT (see $loc)"
    fi
    mkdir -p "$LB_PG_ROOT"
    chown postgres: "$LB_PG_ROOT"
    ln -sfn "$LB_PG_ROOT/postgres.log" "$LB_LOG/postgres$sfx.log"
}

# lb_pg_init: creates the cluster once; the superuser is postgres with a password.
lb_pg_init() {
    local data=$LB_PG_ROOT/data pwfile
    [ -f "$data/PG_VERSION" ] && return 0
    pwfile=$LB_PG_ROOT/.pw
    (umask 077 && lb_secret pg-postgres.pw >"$pwfile")
    chown postgres: "$pwfile"
    lb_pg "$LB_PG_BIN/initdb" -D "$data" -U postgres -E UTF8 --no-locale \
        --auth-local=peer --auth-host=scram-sha-256 --pwfile="$pwfile" >"$LB_PG_ROOT/initdb.log" 2>&1 ||
        { rm -f "$pwfile"; cat "$LB_PG_ROOT/initdb.log" >&2; lb_die "initdb failed"; }
    rm -f "$pwfile"
    echo "include_if_exists = 'layby.conf'" >>"$data/postgresql.conf"
}

lb_pg_running() {
    [ -f "$LB_PG_ROOT/data/PG_VERSION" ] && lb_pg "$LB_PG_BIN/pg_ctl" -D "$LB_PG_ROOT/data" status >/dev/null 2>&1
}

# lb_pg_start PORT SETTING: starts the cluster unless it runs already.
lb_pg_start() {
    local port=$1 data=$LB_PG_ROOT/data
    if lb_pg_running; then
        lb_say "postgres: already running on port $(lb_pg_port)"
        [ "$(lb_pg_port)" = "$port" ] || lb_die "postgres runs on port $(lb_pg_port), not $port: run 'scripts/dev down' first"
        return 0
    fi
    lb_port_check "$port" "$2" "PostgreSQL"
    mkdir -p "$LB_PG_ROOT/sock"
    chown postgres: "$LB_PG_ROOT/sock"
    # rewritten on every start so a changed port takes effect
    cat >"$data/layby.conf" <<CONF
# written by scripts/lib/pg.sh on every start
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$LB_PG_ROOT/sock'
shared_preload_libraries = 'pg_stat_statements'
max_connections = 200
fsync = on
# Outbox and saga tables churn (insert, update, delete within seconds): look
# for work every 10 s instead of every minute, and do not throttle it.
autovacuum_naptime = 10s
autovacuum_vacuum_cost_delay = 0
CONF
    chown postgres: "$data/layby.conf"
    lb_pg "$LB_PG_BIN/pg_ctl" -D "$data" -l "$LB_PG_ROOT/postgres.log" -w -t 60 start >/dev/null ||
        { tail -n 20 "$LB_PG_ROOT/postgres.log" >&2; lb_die "PostgreSQL did not start (log: $LB_LOG/postgres.log)"; }
}

lb_pg_port() { sed -n 's/^port = //p' "$LB_PG_ROOT/data/layby.conf" 2>/dev/null; }

lb_pg_stop() {
    lb_pg_running || return 0
    lb_pg "$LB_PG_BIN/pg_ctl" -D "$LB_PG_ROOT/data" -m fast -w stop >/dev/null
}

# lb_psql PORT DB ARGS...: psql as the superuser over TCP; the password goes
# through the environment, never the command line.
lb_psql() {
    local port=$1 db=$2
    shift 2
    PGOPTIONS="-c client_min_messages=warning" PGPASSWORD=$(lb_secret pg-postgres.pw) \
        psql -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}

# lb_pg_provision PORT [K]: database, roles and schemas of the services on
# cluster K (default 1), migrations table. Idempotent.
lb_pg_provision() {
    local port=$1 k=${2:-1} role roles=()
    lb_psql "$port" postgres <<SQL
SELECT 'CREATE DATABASE $LB_PG_DB' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$LB_PG_DB') \gexec
SQL
    while read -r role _; do roles+=("$role"); done < <(lb_pg_roles_on "$k")
    {
        echo "REVOKE ALL ON DATABASE $LB_PG_DB FROM PUBLIC;"
        echo "REVOKE ALL ON SCHEMA public FROM PUBLIC;"
        for role in "${roles[@]}"; do
            # the password is read from stdin, so it never shows in ps
            cat <<SQL
DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN CREATE ROLE $role; END IF;
END \$\$;
ALTER ROLE $role WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$(lb_secret "pg-$role.pw")';
ALTER ROLE $role SET search_path = $role;
GRANT CONNECT ON DATABASE $LB_PG_DB TO $role;
CREATE SCHEMA IF NOT EXISTS $role AUTHORIZATION $role;
REVOKE ALL ON SCHEMA $role FROM PUBLIC;
SQL
        done
        cat <<SQL
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
SQL
    } | lb_psql "$port" "$LB_PG_DB"
}

# lb_pg_migrate PORT [SQL_DIR] [K]: applies sql/NNNN_<schema>_<what>.sql files
# not yet in public.schema_migrations, in order, each in one transaction run as
# the schema's role (so the service role owns its tables). Schema `public`
# runs as the superuser (extensions), on every cluster; a service's schema
# only on cluster K (default 1) when it is placed there (LB_PG_SECOND). A
# migration must not BEGIN/COMMIT itself.
lb_pg_migrate() {
    local port=$1 dir=${2:-$LB_ROOT/sql} k=${3:-1} f base version schema applied count=0 seen=" "
    local known=" public " here=" public "
    local role
    while read -r role _; do known+="$role "; done < <(lb_pg_roles)
    while read -r role _; do here+="$role "; done < <(lb_pg_roles_on "$k")
    applied=" $(lb_psql "$port" "$LB_PG_DB" -At -c 'SELECT version FROM public.schema_migrations' | tr '\n' ' ') "
    shopt -s nullglob
    for f in "$dir"/[0-9][0-9][0-9][0-9]_*.sql; do
        base=$(basename "$f")
        [[ $base =~ ^([0-9]{4})_([a-z]+)_[a-z0-9_]+\.sql$ ]] ||
            lb_die "migration $base: name must be NNNN_<schema>_<what>.sql (lower case)"
        version=$((10#${BASH_REMATCH[1]}))
        schema=${BASH_REMATCH[2]}
        case $seen in *" $version "*) lb_die "migration version $version is used twice ($base)" ;; esac
        seen+="$version "
        case $known in *" $schema "*) ;; *) lb_die "migration $base: unknown schema '$schema' (known:$known)" ;; esac
        case $applied in *" $version "*) continue ;; esac
        lb_pg_migration_here "$base" "$schema" "$here" || continue
        local as="SET LOCAL ROLE $schema; SET LOCAL search_path = $schema;"
        [ "$schema" = public ] && as="SET LOCAL search_path = public;"
        lb_psql "$port" "$LB_PG_DB" -1 -c "$as" -f "$f" \
            -c "RESET ROLE; INSERT INTO public.schema_migrations (version, name) VALUES ($version, '$base');" ||
            lb_die "migration $base failed (nothing of it was applied)"
        lb_say "migration applied: $base"
        count=$((count + 1))
    done
    shopt -u nullglob
    [ $count -gt 0 ] || lb_say "migrations: up to date"
    lb_pg_shared "$port" "$k"
}

# lb_pg_migration_here FILE SCHEMA HERE: true when migration FILE of SCHEMA
# belongs on the cluster holding the schemas HERE (" public a b "). A
# `public` migration made for one schema (NNNN_public_<schema>_<what>.sql, an
# extension inside that schema) goes where the schema is; any other public
# one everywhere.
lb_pg_migration_here() {
    local base=$1 schema=$2 here=$3 role
    if [ "$schema" = public ]; then
        while read -r role _; do
            case $base in [0-9][0-9][0-9][0-9]_public_"${role}"_*) schema=$role ;; esac
        done < <(lb_pg_roles)
    fi
    case $here in *" $schema "*) return 0 ;; esac
    return 1
}

# lb_pg_shared PORT [K]: the tables every service schema has (sql/shared/*.sql:
# inbox and outbox), applied to each schema on cluster K (default 1) as its
# role, one transaction per schema. The files are idempotent, so this runs on
# every start.
lb_pg_shared() {
    local port=$1 k=${2:-1} role f
    while read -r role _; do
        echo "BEGIN; SET LOCAL ROLE $role; SET LOCAL search_path = $role;"
        for f in "$LB_ROOT"/sql/shared/*.sql; do
            printf '\\i %s\n' "'$f'"
        done
        echo "COMMIT;"
    done < <(lb_pg_roles_on "$k") | lb_psql "$port" "$LB_PG_DB" || lb_die "sql/shared failed"
}

# lb_pg_find [K]: sets LB_PG_ROOT to cluster K's folder (default 1) without
# creating anything (down, status).
lb_pg_find() {
    local sfx
    sfx=$(lb_pg_sfx "${1:-1}")
    if [ -f "$LB_VAR/pg$sfx.location" ]; then
        LB_PG_ROOT=$(cat "$LB_VAR/pg$sfx.location")
    else
        LB_PG_ROOT=$LB_VAR/pg$sfx
    fi
}

# lb_pg_up K PORT SETTING [SQL_DIR]: cluster K from nothing to migrated:
# folder, initdb, start, roles and schemas of its services, migrations.
lb_pg_up() {
    lb_pg_locate "$1"
    lb_pg_init
    lb_pg_start "$2" "$3"
    lb_pg_provision "$2" "$1"
    lb_pg_migrate "$2" "${4:-$LB_ROOT/sql}" "$1"
}

# lb_pg_down K: stops cluster K if it runs.
lb_pg_down() {
    lb_pg_find "$1"
    lb_pg_stop
}
