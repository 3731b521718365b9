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
 * it may take every role. status exits 1 when a migration is pending. */
#include <dirent.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

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

typedef struct mig {
    int version;
    char schema[64];
    char name[256];
    bool applied;
} mig;

typedef struct mig_set {
    mig m[MIG_MAX];
    size_t n;
} mig_set;

static int
mig_cmp(const void *a, const void *b)
{
    const mig *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
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
db_open(PGconn **pg, const db_conf *c, lb_err *err)
{
    ctl_conn admin = c->conn;
    admin.db_url = c->admin_url;
    admin.timeout_ms = 5000;
    return ctl_pg_open(pg, &admin, err);
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

/* One migration in one transaction, as its schema's role. */
static lb_status
mig_apply(PGconn *pg, const mig *m, const char *dir, lb_err *err)
{
    char *sql = file_read(dir, m->name, err);
    if (sql == NULL)
        return err->code;
    char as[256], version[16];
    if (strcmp(m->schema, "public") == 0)
        snprintf(as, sizeof as, "BEGIN; SET LOCAL search_path = public;");
    else
        snprintf(as, sizeof as, "BEGIN; SET LOCAL ROLE \"%s\"; SET LOCAL search_path = \"%s\";",
                 m->schema, m->schema);
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = { version, m->name };
    lb_status st = LB_OK;
    PGresult *r = PQexec(pg, as);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        st = db_error(r, pg, m->name, err);
    else if (PQclear(r), r = PQexec(pg, sql),
             PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        st = db_error(r, pg, m->name, err);
    else if (PQclear(r), r = PQexec(pg, "RESET ROLE"), PQresultStatus(r) != PGRES_COMMAND_OK)
        st = db_error(r, pg, m->name, err);
    else if (PQclear(r),
             r = PQexecParams(pg,
                              "INSERT INTO public.schema_migrations (version, name)"
                              " VALUES ($1::int, $2)",
                              2, NULL, params, NULL, NULL, 0),
             PQresultStatus(r) != PGRES_COMMAND_OK)
        st = db_error(r, pg, "public.schema_migrations", err);
    else
        PQclear(r);
    r = PQexec(pg, st == LB_OK ? "COMMIT" : "ROLLBACK");
    if (st == LB_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
        st = db_error(r, pg, m->name, err);
    else
        PQclear(r);
    free(sql);
    return st;
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

static int
db_run(const ctl_cmd *cmd, int argc, char **argv, bool migrate)
{
    db_conf conf = { 0 };
    PGconn *pg = NULL;
    lb_err err;
    mig_set *s = calloc(1, sizeof *s);
    int rc = s != NULL ? ctl_parse(&conf, cmd, argc, argv) : CTL_EXIT_FAIL;
    if (rc >= 0) {
        free(s);
        return rc;
    }
    size_t pending = 0, applied_now = 0;
    lb_status st = mig_scan(s, conf.sql_dir, &err);
    if (st == LB_OK)
        st = db_open(&pg, &conf, &err);
    if (st == LB_OK)
        st = mig_applied(s, pg, &err);
    json_t *arr = json_array();
    for (size_t i = 0; st == LB_OK && i < s->n; i++) {
        mig *m = &s->m[i];
        bool known = true;
        if (!m->applied && migrate && (st = schema_known(&known, pg, m->schema, &err)) == LB_OK) {
            if (!known)
                st = lb_err_set(&err, LB_ERR_INVALID, "migration %s: unknown schema '%s'", m->name,
                                m->schema);
            else if ((st = mig_apply(pg, m, conf.sql_dir, &err)) == LB_OK) {
                m->applied = true;
                applied_now++;
                ctl_progress("migration applied: %s\n", m->name);
            }
        }
        pending += !m->applied;
        json_array_append_new(arr, json_pack("{s:i,s:s,s:s,s:s}", "version", m->version, "schema",
                                             m->schema, "name", m->name, "state",
                                             m->applied ? "applied" : "pending"));
        if (!ctl_out.json)
            printf("%04d  %-10s %-8s %s\n", m->version, m->schema,
                   m->applied ? "applied" : "PENDING", m->name);
    }
    PQfinish(pg);
    free(s);
    if (st != LB_OK) {
        json_decref(arr);
        return ctl_fail(cmd, &err);
    }
    if (ctl_out.json)
        ctl_json_doc(json_pack("{s:o,s:I,s:I}", "migrations", arr, "pending", (json_int_t)pending,
                               "appliedNow", (json_int_t)applied_now));
    else {
        json_decref(arr);
        printf("%zu pending%s\n", pending, migrate ? "" : " (layby-ctl db migrate applies them)");
    }
    return pending == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
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
