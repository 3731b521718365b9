/* ctl_db.c - `layby-ctl db status|migrate`: the schema migrations of sql/,
 * the same rules as scripts/lib/pg.sh's lb_pg_migrate (which `scripts/dev up`
 * runs), so an operator can apply a release's migrations without the dev
 * scripts:
 *   - files NNNN_<schema>_<what>.sql, applied in version order, each version
 *     once, recorded in public.schema_migrations;
 *   - each file in one transaction as its schema's role (SET LOCAL ROLE), so
 *     the service role owns its tables; schema `public` as the connecting
 *     superuser. A file must not BEGIN/COMMIT itself;
 *   - a schema is known when a role of the same name owns it (the service
 *     table's roles) or it is `public`.
 * Both connect with the superuser URL (--admin-url, LAYBY_PG_ADMIN_URL): only
 * it may take every role. status exits 1 when a migration is pending.
 *
 * PostgreSQL per service (issue 23, OPERATIONS §6): a schema lives where its
 * service connects. When a service's LAYBY_<SERVICE>_DATABASE_URL
 * (engine/svc_table.h) names another server (host, port) than the admin URL,
 * its schema's migrations are checked and applied there, with the admin
 * URL's user and password on that server and the service's database; the
 * same rule as scripts/lib/pg.sh: NNNN_public_<schema>_* follows its schema,
 * other `public` ones go to every server, each server keeps its own
 * public.schema_migrations.
 *
 * Shared tables (the .sql files of sql/shared: the inbox and outbox every service schema
 * has, scripts/lib/pg.sh lb_pg_shared): after the numbered migrations,
 * migrate applies each file to every service schema on its server, one
 * transaction per schema as its role. The files are idempotent and carry
 * their tables' settings, so they run on every migrate: a release's change to
 * them reaches the schemas made before it. status counts a schema as pending
 * when a table the files create (CREATE TABLE IF NOT EXISTS <name>) is
 * missing there. */
#include <dirent.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "svc_table.h"

typedef struct db_conf {
    ctl_conn conn;
    const char *admin_url;
    const char *sql_dir;
} db_conf;

/* clang-format off */
static const cfg_opt db_opts[] = {
    { "admin-url", "LAYBY_PG_ADMIN_URL", CFG_STR, NULL,  offsetof(db_conf, admin_url), 0, 0, "PostgreSQL superuser URL (it takes each schema's role)" },
    { "sql-dir",   "LAYBY_SQL_DIR",      CFG_STR, "sql", offsetof(db_conf, sql_dir),   0, 0, "the migrations folder" },
};
/* clang-format on */
const ctl_flags ctl_db_flags = CTL_FLAGS(db_opts);

#define MIG_MAX 1024

#define SERVERS_MAX 8 /* PostgreSQL servers: the admin URL's and the services' */

typedef struct mig {
    int version;
    char schema[64];
    char name[256];
    char home[64]; /* the schema whose server runs it; "" = every server (public) */
    bool applied;
} mig;

/* One PostgreSQL server and the superuser connection string for it. */
typedef struct db_server {
    char where[128]; /* host:port, what the output names */
    char conninfo[2048];
} db_server;

#define SHARED_MAX 16 /* files in sql/shared, and the tables they create */

typedef struct mig_set {
    mig m[MIG_MAX];
    size_t n;
    char shared[SHARED_MAX][256]; /* sql/shared's files, in name order */
    size_t n_shared;
    char *shared_sql[SHARED_MAX]; /* their texts (owned) */
    char tables[SHARED_MAX][64];  /* the tables they create */
    size_t n_tables;
} mig_set;

static int
mig_cmp(const void *a, const void *b)
{
    const mig *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* Which schema's server runs m: its own schema, or for NNNN_public_<schema>_*
 * that service schema (0100_public_catalog_trgm goes where the catalog is),
 * or every server (home ""). */
static void
mig_home(mig *m)
{
    m->home[0] = '\0';
    if (strcmp(m->schema, "public") != 0) {
        memcpy(m->home, m->schema, sizeof m->home); /* both NUL-terminated, same size */
        return;
    }
    const char *rest = m->name + strlen("NNNN_public_");
    for (size_t i = 0; i < svc_table_n_schemas; i++) {
        size_t n = strlen(svc_table_schemas[i].schema);
        if (strncmp(rest, svc_table_schemas[i].schema, n) == 0 && rest[n] == '_')
            snprintf(m->home, sizeof m->home, "%s", svc_table_schemas[i].schema);
    }
}

/* The folder's migrations in version order; LB_ERR_INVALID for a bad name
 * or a version used twice. */
static lb_status
mig_scan(mig_set *s, const char *dir, lb_err *err)
{
    regex_t re;
    regmatch_t g[3];
    DIR *d = opendir(dir);
    if (d == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "%s: %s", dir, strerror(errno));
    regcomp(&re, "^([0-9]{4})_([a-z]+)_[a-z0-9_]+\\.sql$", REG_EXTENDED);
    lb_status st = LB_OK;
    struct dirent *e;
    s->n = 0;
    while (st == LB_OK && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".sql") != 0 || e->d_name[0] < '0' ||
            e->d_name[0] > '9')
            continue;
        if (regexec(&re, e->d_name, 3, g, 0) != 0)
            st = lb_err_set(err, LB_ERR_INVALID,
                            "migration %s: name must be NNNN_<schema>_<what>.sql", e->d_name);
        else if (s->n == MIG_MAX)
            st = lb_err_set(err, LB_ERR_INVALID, "more than %d migrations", MIG_MAX);
        else {
            mig *m = &s->m[s->n++];
            m->version = atoi(e->d_name);
            snprintf(m->schema, sizeof m->schema, "%.*s", (int)(g[2].rm_eo - g[2].rm_so),
                     e->d_name + g[2].rm_so);
            snprintf(m->name, sizeof m->name, "%s", e->d_name);
            mig_home(m);
            m->applied = false;
        }
    }
    closedir(d);
    regfree(&re);
    qsort(s->m, s->n, sizeof s->m[0], mig_cmp);
    for (size_t i = 1; st == LB_OK && i < s->n; i++)
        if (s->m[i].version == s->m[i - 1].version)
            st = lb_err_set(err, LB_ERR_INVALID, "migration version %d is used twice (%s, %s)",
                            s->m[i].version, s->m[i - 1].name, s->m[i].name);
    return st;
}

static lb_status
db_error(PGresult *r, PGconn *pg, const char *what, lb_err *err)
{
    const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(pg);
    lb_err_set(err, LB_ERR_DB, "%s: %.*s", what, (int)strcspn(m, "\n"), m);
    PQclear(r);
    return LB_ERR_DB;
}

/* Marks what public.schema_migrations holds. */
static lb_status
mig_applied(mig_set *s, PGconn *pg, lb_err *err)
{
    PGresult *r = PQexec(pg, "SELECT version FROM public.schema_migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return db_error(r, pg, "public.schema_migrations", err);
    for (int i = 0; i < PQntuples(r); i++) {
        int v = atoi(PQgetvalue(r, i, 0));
        for (size_t k = 0; k < s->n; k++)
            if (s->m[k].version == v)
                s->m[k].applied = true;
    }
    PQclear(r);
    return LB_OK;
}

static lb_status
db_open(PGconn **pg, const db_conf *c, const db_server *srv, lb_err *err)
{
    ctl_conn admin = c->conn;
    admin.db_url = srv->conninfo;
    admin.timeout_ms = 5000;
    lb_status st = ctl_pg_open(pg, &admin, err);
    if (st != LB_OK)
        lb_err_set(err, err->code, "%s: %s", srv->where, err->msg);
    return st;
}

/* A connection string's value of key (from PQconninfoParse), or NULL. */
static const char *
opt_get(const PQconninfoOption *o, const char *key)
{
    for (; o != NULL && o->keyword != NULL; o++)
        if (strcmp(o->keyword, key) == 0)
            return o->val != NULL && o->val[0] != '\0' ? o->val : NULL;
    return NULL;
}

/* "host:port" of a parsed connection string, with libpq's defaults. */
static void
server_where(char *out, size_t n, const PQconninfoOption *o)
{
    const char *host = opt_get(o, "host"), *port = opt_get(o, "port");
    if (host == NULL)
        host = opt_get(o, "hostaddr");
    snprintf(out, n, "%s:%s", host != NULL ? host : "localhost", port != NULL ? port : "5432");
}

/* Appends key='value' to s (libpq's quoting: \\ and \'). */
static void
conninfo_add(char *s, size_t n, const char *key, const char *val)
{
    size_t len = strlen(s);
    len += (size_t)snprintf(s + len, len < n ? n - len : 0, "%s%s='", len ? " " : "", key);
    for (; *val != '\0' && len + 3 < n; val++) {
        if (*val == '\\' || *val == '\'')
            s[len++] = '\\';
        s[len++] = *val;
    }
    if (len + 2 <= n) {
        s[len++] = '\'';
        s[len] = '\0';
    }
}

/* The servers the migrations go to: [0] the admin URL's; one more for each
 * service whose database URL names another host:port, the admin URL's
 * options with that URL's host, port and database. home_of[k]: the server of
 * svc_table_schemas[k]. */
static lb_status
servers_find(db_server *srv, size_t *n_srv, size_t *home_of, const char *admin_url, lb_err *err)
{
    char *msg = NULL;
    PQconninfoOption *admin = PQconninfoParse(admin_url, &msg);
    if (admin == NULL) {
        lb_err_set(err, LB_ERR_CONFIG, "--admin-url: %s", msg != NULL ? msg : "cannot parse");
        PQfreemem(msg);
        return LB_ERR_CONFIG;
    }
    lb_status st = LB_OK;
    *n_srv = 1;
    server_where(srv[0].where, sizeof srv[0].where, admin);
    snprintf(srv[0].conninfo, sizeof srv[0].conninfo, "%s", admin_url);
    for (size_t k = 0; st == LB_OK && k < svc_table_n_schemas; k++) {
        home_of[k] = 0;
        const char *url = getenv(svc_table_schemas[k].url_env);
        PQconninfoOption *svc = url != NULL && url[0] != '\0' ? PQconninfoParse(url, NULL) : NULL;
        if (svc == NULL)
            continue; /* unset (or unreadable: the service itself says so): cluster 1 */
        char where[sizeof srv[0].where];
        server_where(where, sizeof where, svc);
        size_t i = 0;
        while (i < *n_srv && strcmp(srv[i].where, where) != 0)
            i++;
        if (i == *n_srv && i == SERVERS_MAX)
            st = lb_err_set(err, LB_ERR_INVALID, "more than %d PostgreSQL servers", SERVERS_MAX);
        else if (i == *n_srv) {
            db_server *d = &srv[(*n_srv)++];
            snprintf(d->where, sizeof d->where, "%s", where);
            d->conninfo[0] = '\0';
            for (const PQconninfoOption *o = admin; o->keyword != NULL; o++) {
                bool theirs = strcmp(o->keyword, "host") == 0 ||
                              strcmp(o->keyword, "hostaddr") == 0 ||
                              strcmp(o->keyword, "port") == 0 || strcmp(o->keyword, "dbname") == 0;
                const char *v = theirs ? opt_get(svc, o->keyword) : opt_get(admin, o->keyword);
                if (v != NULL)
                    conninfo_add(d->conninfo, sizeof d->conninfo, o->keyword, v);
            }
        }
        home_of[k] = i;
        PQconninfoFree(svc);
    }
    PQconninfoFree(admin);
    return st;
}

/* Whether m goes to server i. */
static bool
mig_on(const mig *m, size_t i, const size_t *home_of)
{
    if (m->home[0] == '\0')
        return true;
    for (size_t k = 0; k < svc_table_n_schemas; k++)
        if (strcmp(svc_table_schemas[k].schema, m->home) == 0)
            return home_of[k] == i;
    return i == 0; /* a schema of no service (a test's): the admin URL's server */
}

static char *
file_read(const char *dir, const char *name, lb_err *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        lb_err_set(err, LB_ERR_CONFIG, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0, k;
    char *buf = malloc(cap);
    while (buf != NULL && (k = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += k;
        if (cap - len < 4096) {
            char *p = realloc(buf, cap *= 2);
            if (p == NULL)
                free(buf);
            buf = p;
        }
    }
    fclose(f);
    if (buf == NULL)
        lb_err_set(err, LB_ERR_NOMEM, "%s", path);
    else
        buf[len] = '\0';
    return buf;
}

/* sql[0..n) in one transaction as schema's role (`public`: as the connecting
 * superuser), with search_path = schema: all or nothing. what names a failure. */
static lb_status
tx_as(PGconn *pg, const char *schema, char *const *sql, size_t n, const char *what, lb_err *err)
{
    char as[256];
    if (strcmp(schema, "public") == 0)
        snprintf(as, sizeof as, "BEGIN; SET LOCAL search_path = public;");
    else
        snprintf(as, sizeof as, "BEGIN; SET LOCAL ROLE \"%s\"; SET LOCAL search_path = \"%s\";",
                 schema, schema);
    lb_status st = LB_OK;
    PGresult *r = PQexec(pg, as);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        st = db_error(r, pg, what, err);
    else
        PQclear(r);
    for (size_t i = 0; st == LB_OK && i < n; i++) {
        r = PQexec(pg, sql[i]);
        ExecStatusType x = PQresultStatus(r);
        if (x != PGRES_COMMAND_OK && x != PGRES_TUPLES_OK && x != PGRES_EMPTY_QUERY)
            st = db_error(r, pg, what, err);
        else
            PQclear(r);
    }
    r = PQexec(pg, st == LB_OK ? "COMMIT" : "ROLLBACK");
    if (st == LB_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
        st = db_error(r, pg, what, err);
    else
        PQclear(r);
    return st;
}

/* One migration in one transaction, as its schema's role, recorded in the
 * same transaction (the name is checked by mig_scan: [0-9a-z_.] only). */
static lb_status
mig_apply(PGconn *pg, const mig *m, const char *dir, lb_err *err)
{
    char record[512];
    char *sql[2] = { file_read(dir, m->name, err), record };
    if (sql[0] == NULL)
        return err->code;
    snprintf(record, sizeof record,
             "RESET ROLE; INSERT INTO public.schema_migrations (version, name) VALUES (%d, '%s')",
             m->version, m->name);
    lb_status st = tx_as(pg, m->schema, sql, 2, m->name, err);
    free(sql[0]);
    return st;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* sql/shared's files (none when the folder is missing), their texts and the
 * tables they create, into s. */
static lb_status
shared_scan(mig_set *s, const char *sql_dir, lb_err *err)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/shared", sql_dir);
    s->n_shared = s->n_tables = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? LB_OK
                               : lb_err_set(err, LB_ERR_CONFIG, "%s: %s", dir, strerror(errno));
    lb_status st = LB_OK;
    struct dirent *e;
    while (st == LB_OK && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || e->d_name[0] == '.' || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        if (s->n_shared == SHARED_MAX)
            st = lb_err_set(err, LB_ERR_INVALID, "%s: more than %d files", dir, SHARED_MAX);
        else
            snprintf(s->shared[s->n_shared++], sizeof s->shared[0], "%s", e->d_name);
    }
    closedir(d);
    qsort(s->shared, s->n_shared, sizeof s->shared[0], name_cmp);
    regex_t re;
    regmatch_t g[2];
    regcomp(&re, "CREATE TABLE IF NOT EXISTS ([a-z_][a-z0-9_]*)", REG_EXTENDED | REG_ICASE);
    for (size_t i = 0; st == LB_OK && i < s->n_shared; i++) {
        if ((s->shared_sql[i] = file_read(dir, s->shared[i], err)) == NULL) {
            st = err->code;
            break;
        }
        for (const char *p = s->shared_sql[i]; regexec(&re, p, 2, g, 0) == 0; p += g[0].rm_eo)
            if (s->n_tables < SHARED_MAX)
                snprintf(s->tables[s->n_tables++], sizeof s->tables[0], "%.*s",
                         (int)(g[1].rm_eo - g[1].rm_so), p + g[1].rm_so);
    }
    regfree(&re);
    return st;
}

/* Whether every table the shared files create exists in schema. */
static lb_status
shared_present(bool *present, PGconn *pg, const mig_set *s, const char *schema, lb_err *err)
{
    *present = true;
    for (size_t i = 0; i < s->n_tables && *present; i++) {
        const char *p[] = { schema, s->tables[i] };
        PGresult *r = PQexecParams(
            pg, "SELECT to_regclass(quote_ident($1) || '.' || quote_ident($2)) IS NOT NULL", 2,
            NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            return db_error(r, pg, "pg_class", err);
        *present = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
    }
    return LB_OK;
}

/* Whether schema is `public` or owned by a role of its name. */
static lb_status
schema_known(bool *known, PGconn *pg, const char *schema, lb_err *err)
{
    const char *p[] = { schema };
    PGresult *r = PQexecParams(pg,
                               "SELECT 1 FROM pg_namespace n JOIN pg_roles o ON o.oid = n.nspowner"
                               " WHERE n.nspname = $1 AND (o.rolname = $1 OR $1 = 'public')",
                               1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return db_error(r, pg, "pg_namespace", err);
    *known = PQntuples(r) == 1;
    PQclear(r);
    return LB_OK;
}

/* What status and migrate found over all servers. */
typedef struct db_report {
    json_t *migrations, *shared, *servers;
    size_t pending, applied_now;
    bool many; /* more than one server: each line names its server */
} db_report;

/* The shared files on each service schema homed on server i: applied when
 * migrating (every time: they are idempotent), then present or pending. */
static lb_status
db_server_shared(PGconn *pg, const mig_set *s, const db_server *srv, size_t i,
                 const size_t *home_of, bool migrate, db_report *rep, lb_err *err)
{
    lb_status st = LB_OK;
    for (size_t k = 0; st == LB_OK && s->n_shared > 0 && k < svc_table_n_schemas; k++) {
        const char *schema = svc_table_schemas[k].schema;
        bool known = false, present = false;
        if (home_of[k] != i || (st = schema_known(&known, pg, schema, err)) != LB_OK)
            continue;
        if (!known && migrate)
            st = lb_err_set(err, LB_ERR_INVALID,
                            "sql/shared: no schema '%s' owned by its role on %s (create both "
                            "first: OPERATIONS.md section 6)",
                            schema, srv->where);
        else if (known && migrate &&
                 (st = tx_as(pg, schema, s->shared_sql, s->n_shared, "sql/shared", err)) == LB_OK)
            ctl_progress("shared tables applied: %s%s%s\n", schema, rep->many ? " on " : "",
                         rep->many ? srv->where : "");
        if (st == LB_OK && known)
            st = shared_present(&present, pg, s, schema, err);
        if (st != LB_OK)
            break;
        rep->pending += !present;
        json_array_append_new(rep->shared,
                              json_pack("{s:s,s:s,s:s}", "schema", schema, "state",
                                        present ? "applied" : "pending", "server", srv->where));
        if (!ctl_out.json)
            printf("sh    %-10s %-8s sql/shared%s%s\n", schema, present ? "applied" : "PENDING",
                   rep->many ? "  on " : "", rep->many ? srv->where : "");
    }
    return st;
}

/* status or migrate on one server: its migrations (mig_on) printed and
 * counted, applied ones marked in s; then the shared tables. */
static lb_status
db_server_run(mig_set *s, const db_conf *conf, const db_server *srv, size_t i,
              const size_t *home_of, bool migrate, db_report *rep, lb_err *err)
{
    PGconn *pg = NULL;
    for (size_t k = 0; k < s->n; k++)
        s->m[k].applied = false;
    lb_status st = db_open(&pg, conf, srv, err);
    if (st == LB_OK)
        st = mig_applied(s, pg, err);
    for (size_t k = 0; st == LB_OK && k < s->n; k++) {
        mig *m = &s->m[k];
        if (!mig_on(m, i, home_of))
            continue;
        bool known = true;
        if (!m->applied && migrate && (st = schema_known(&known, pg, m->schema, err)) == LB_OK) {
            if (!known)
                st = lb_err_set(err, LB_ERR_INVALID, "migration %s: unknown schema '%s' on %s",
                                m->name, m->schema, srv->where);
            else if ((st = mig_apply(pg, m, conf->sql_dir, err)) == LB_OK) {
                m->applied = true;
                rep->applied_now++;
                ctl_progress("migration applied: %s%s%s\n", m->name, rep->many ? " on " : "",
                             rep->many ? srv->where : "");
            }
        }
        rep->pending += !m->applied;
        json_array_append_new(rep->migrations,
                              json_pack("{s:i,s:s,s:s,s:s,s:s}", "version", m->version, "schema",
                                        m->schema, "name", m->name, "state",
                                        m->applied ? "applied" : "pending", "server", srv->where));
        if (!ctl_out.json)
            printf("%04d  %-10s %-8s %s%s%s\n", m->version, m->schema,
                   m->applied ? "applied" : "PENDING", m->name, rep->many ? "  on " : "",
                   rep->many ? srv->where : "");
    }
    /* After the numbered ones, as scripts/lib/pg.sh does: a schema's first
     * migration may be what creates it on an upgraded server. */
    if (st == LB_OK)
        st = db_server_shared(pg, s, srv, i, home_of, migrate, rep, err);
    PQfinish(pg);
    return st;
}

static int
db_run(const ctl_cmd *cmd, int argc, char **argv, bool migrate)
{
    db_conf conf = { 0 };
    lb_err err;
    mig_set *s = calloc(1, sizeof *s);
    db_server *srv = calloc(SERVERS_MAX, sizeof *srv);
    size_t *home_of = calloc(svc_table_n_schemas + 1, sizeof *home_of), n_srv = 0;
    int rc = s != NULL && srv != NULL && home_of != NULL ? ctl_parse(&conf, cmd, argc, argv)
                                                         : CTL_EXIT_FAIL;
    if (rc >= 0) {
        free(s);
        free(srv);
        free(home_of);
        return rc;
    }
    db_report rep = { .migrations = json_array(), .shared = json_array(), .servers = json_array() };
    lb_status st = mig_scan(s, conf.sql_dir, &err);
    if (st == LB_OK)
        st = shared_scan(s, conf.sql_dir, &err);
    if (st == LB_OK && (conf.admin_url == NULL || conf.admin_url[0] == '\0'))
        st =
            lb_err_set(&err, LB_ERR_CONFIG, "no superuser URL (--admin-url or LAYBY_PG_ADMIN_URL)");
    if (st == LB_OK)
        st = servers_find(srv, &n_srv, home_of, conf.admin_url, &err);
    rep.many = n_srv > 1;
    for (size_t i = 0; st == LB_OK && i < n_srv; i++) {
        st = db_server_run(s, &conf, &srv[i], i, home_of, migrate, &rep, &err);
        json_array_append_new(rep.servers, json_string(srv[i].where));
    }
    for (size_t i = 0; i < s->n_shared; i++)
        free(s->shared_sql[i]);
    free(s);
    free(srv);
    free(home_of);
    if (st != LB_OK) {
        json_decref(rep.migrations);
        json_decref(rep.shared);
        json_decref(rep.servers);
        return ctl_fail(cmd, &err);
    }
    if (ctl_out.json)
        ctl_json_doc(json_pack("{s:o,s:o,s:o,s:I,s:I}", "migrations", rep.migrations, "shared",
                               rep.shared, "servers", rep.servers, "pending",
                               (json_int_t)rep.pending, "appliedNow", (json_int_t)rep.applied_now));
    else {
        json_decref(rep.migrations);
        json_decref(rep.shared);
        json_decref(rep.servers);
        printf("%zu pending%s\n", rep.pending,
               migrate ? "" : " (layby-ctl db migrate applies them)");
    }
    return rep.pending == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

int
ctl_db_status(const ctl_cmd *cmd, int argc, char **argv)
{
    return db_run(cmd, argc, argv, false);
}

int
ctl_db_migrate(const ctl_cmd *cmd, int argc, char **argv)
{
    return db_run(cmd, argc, argv, true);
}
