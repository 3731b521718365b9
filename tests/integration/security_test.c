/* security_test.c - least privilege of every daemon, derived from the service
 * table (etc/services.tsv + tests/support/services-test.tsv, read through
 * scripts/lib/services.awk, the generator the stack itself uses), so a new
 * daemon, subject or schema is covered without a change here (issue 22):
 *   - NATS: every daemon's user publishes (core subjects, commands, events,
 *     dead letters, key-value and JetStream API subjects alike) and
 *     subscribes exactly where its rows allow, and is refused everywhere
 *     else. The probes are every subject any row allows anyone, made
 *     concrete ("*" and ">" filled), tried as every user.
 *   - PostgreSQL: each service's role reads and creates in its own schema
 *     only: another service's inbox is "permission denied" (42501), and so is
 *     creating a table in another schema or in public.
 * tests/integration/permissions_test.c keeps the hand-picked cases (durable
 * binding, topology changes, the idempotency bucket). */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb.h"
#include "tsupport.h"

#define USERS_MAX    24
#define PATTERNS_MAX 64
#define PROBES_MAX   256
#define SCHEMAS_MAX  16

typedef struct user_perms {
    char user[32], env[32];
    char *pub[PATTERNS_MAX], *sub[PATTERNS_MAX];
    size_t n_pub, n_sub;
} user_perms;

static user_perms users[USERS_MAX];
static size_t n_users;

/* Runs services.awk with `view` over the service tables; each output line to fn. */
static void
table_view(const char *view, void (*fn)(char *line))
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "awk -v want=%s -f %s/scripts/lib/services.awk %s/etc/services.tsv "
             "%s/tests/support/services-test.tsv",
             view, LAYBY_SOURCE_DIR, LAYBY_SOURCE_DIR, LAYBY_SOURCE_DIR);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "%s", cmd);
    char line[4096];
    while (fgets(line, sizeof line, p) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        fn(line);
    }
    cr_assert_eq(pclose(p), 0, "%s failed", cmd);
}

/* "catalog CATALOG pub a b c" */
static void
nats_row(char *line)
{
    char *save = NULL;
    char *user = strtok_r(line, " ", &save), *env = strtok_r(NULL, " ", &save);
    char *kind = strtok_r(NULL, " ", &save);
    cr_assert(user && env && kind, "services.awk nats line");
    user_perms *u = NULL;
    for (size_t i = 0; i < n_users; i++)
        if (strcmp(users[i].user, user) == 0)
            u = &users[i];
    if (u == NULL) {
        cr_assert_lt(n_users, USERS_MAX);
        u = &users[n_users++];
        snprintf(u->user, sizeof u->user, "%s", user);
        snprintf(u->env, sizeof u->env, "%s", env);
    }
    bool pub = strcmp(kind, "pub") == 0;
    for (char *s = strtok_r(NULL, " ", &save); s != NULL; s = strtok_r(NULL, " ", &save)) {
        size_t *n = pub ? &u->n_pub : &u->n_sub;
        cr_assert_lt(*n, PATTERNS_MAX);
        (pub ? u->pub : u->sub)[(*n)++] = strdup(s);
    }
}

/* NATS subject matching: "*" is one token, a final ">" one or more. */
static bool
subject_match(const char *pattern, const char *subject)
{
    while (*pattern != '\0' && *subject != '\0') {
        size_t pl = strcspn(pattern, "."), sl = strcspn(subject, ".");
        if (pl == 1 && pattern[0] == '>')
            return true;
        if (!(pl == 1 && pattern[0] == '*') && (pl != sl || memcmp(pattern, subject, pl) != 0))
            return false;
        pattern += pl;
        subject += sl;
        if (*pattern == '.' && *subject == '.') {
            pattern++;
            subject++;
        } else if (*pattern != *subject) {
            return false;
        }
    }
    return *pattern == '\0' && *subject == '\0';
}

static bool
allowed(char *const *patterns, size_t n, const char *subject)
{
    for (size_t i = 0; i < n; i++)
        if (subject_match(patterns[i], subject))
            return true;
    return false;
}

/* A pattern made concrete: each "*" -> "probe", a final ">" -> "probe.x". */
static void
concrete(char *out, size_t n, const char *pattern)
{
    size_t used = 0;
    out[0] = '\0';
    for (const char *p = pattern; *p != '\0';) {
        size_t tl = strcspn(p, ".");
        const char *tok = (tl == 1 && *p == '*')   ? "probe"
                          : (tl == 1 && *p == '>') ? "probe.x"
                                                   : NULL;
        used += (size_t)snprintf(out + used, n - used, "%.*s", tok ? (int)strlen(tok) : (int)tl,
                                 tok ? tok : p);
        p += tl;
        if (*p == '.') {
            used += (size_t)snprintf(out + used, n - used, ".");
            p++;
        }
    }
    cr_assert_lt(used, n, "pattern %s", pattern);
}

static char *probes_pub[PROBES_MAX], *probes_sub[PROBES_MAX];
static size_t n_probes_pub, n_probes_sub;

static void
probe_add(char **probes, size_t *n, const char *pattern)
{
    char s[256];
    concrete(s, sizeof s, pattern);
    for (size_t i = 0; i < *n; i++)
        if (strcmp(probes[i], s) == 0)
            return;
    cr_assert_lt(*n, PROBES_MAX);
    probes[(*n)++] = strdup(s);
}

static void
perms_load(void)
{
    n_users = n_probes_pub = n_probes_sub = 0;
    table_view("nats", nats_row);
    cr_assert_gt(n_users, 5, "the service table has only %zu users?", n_users);
    for (size_t i = 0; i < n_users; i++) {
        for (size_t k = 0; k < users[i].n_pub; k++)
            probe_add(probes_pub, &n_probes_pub, users[i].pub[k]);
        for (size_t k = 0; k < users[i].n_sub; k++)
            probe_add(probes_sub, &n_probes_sub, users[i].sub[k]);
    }
    /* and a few nobody's rows allow */
    probe_add(probes_pub, &n_probes_pub, "layby.cmd.nobody.>");
    probe_add(probes_pub, &n_probes_pub, "$JS.API.STREAM.DELETE.LAYBY_CMD");
    probe_add(probes_pub, &n_probes_pub, "$JS.API.CONSUMER.DELETE.LAYBY_CMD.*");
    probe_add(probes_sub, &n_probes_sub, "layby.cmd.>");
    probe_add(probes_sub, &n_probes_sub, "layby.evt.>");
}

/* Did the server refuse what was just sent on nc? (permissions_test.c: once
 * the flush's PONG came, any -ERR before it has been read.) */
static bool
refused(natsConnection *nc)
{
    natsStatus s = natsConnection_Flush(nc);
    const char *text = NULL;
    return s == NATS_NOT_PERMITTED || natsConnection_GetLastError(nc, &text) == NATS_NOT_PERMITTED;
}

static natsConnection *
connect_as(const char *env)
{
    natsConnection *nc = NULL;
    natsStatus s = tsupport_nats_connect(&nc, env, NULL, NULL);
    cr_assert_eq(s, NATS_OK, "connect as %s: %s", env, natsStatus_GetText(s));
    return nc;
}

TestSuite(security, .init = tsupport_reset, .timeout = 300);

Test(security, every_daemon_publishes_only_where_the_service_table_allows)
{
    perms_load();
    size_t refusals = 0;
    for (size_t u = 0; u < n_users; u++) {
        for (size_t p = 0; p < n_probes_pub; p++) {
            bool want = allowed(users[u].pub, users[u].n_pub, probes_pub[p]);
            natsConnection *nc = connect_as(users[u].env);
            cr_assert_eq(natsConnection_PublishString(nc, probes_pub[p], "security probe"),
                         NATS_OK);
            bool got = refused(nc);
            natsConnection_Destroy(nc);
            cr_expect_eq(got, !want, "%s publishing %s: %s, the table says %s", users[u].user,
                         probes_pub[p], got ? "refused" : "allowed", want ? "allow" : "refuse");
            refusals += got;
        }
    }
    cr_assert_gt(refusals, n_users, "hardly anything was refused (%zu)", refusals);
    tsupport_reset(); /* the allowed probes were stored where they may be */
}

Test(security, every_daemon_subscribes_only_where_the_service_table_allows)
{
    perms_load();
    size_t refusals = 0;
    for (size_t u = 0; u < n_users; u++) {
        for (size_t p = 0; p < n_probes_sub; p++) {
            bool want = allowed(users[u].sub, users[u].n_sub, probes_sub[p]);
            natsConnection *nc = connect_as(users[u].env);
            natsSubscription *sub = NULL;
            cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, probes_sub[p]), NATS_OK);
            bool got = refused(nc);
            natsSubscription_Destroy(sub);
            natsConnection_Destroy(nc);
            cr_expect_eq(got, !want, "%s subscribing to %s: %s, the table says %s", users[u].user,
                         probes_sub[p], got ? "refused" : "allowed", want ? "allow" : "refuse");
            refusals += got;
        }
    }
    cr_assert_gt(refusals, n_users, "hardly anything was refused (%zu)", refusals);
}

/* ---- database roles ---------------------------------------------------- */

typedef struct role_row {
    char schema[32], env[32];
} role_row;

static role_row roles[SCHEMAS_MAX];
static size_t n_roles;

/* "catalog CATALOG" / "saga ORCHESTRATOR CTL" */
static void
role_line(char *line)
{
    cr_assert_lt(n_roles, SCHEMAS_MAX);
    role_row *r = &roles[n_roles++];
    cr_assert_eq(sscanf(line, "%31s %31s", r->schema, r->env), 2, "roles line %s", line);
}

/* The SQLSTATE of sql on pg ("00000" when it worked). */
static void
sql_state(char out[6], PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(out, 6, "%s",
             (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) ? "00000"
             : code                                            ? code
                                                               : "?????");
    PQclear(res);
}

Test(security, each_service_role_is_refused_on_every_other_schema)
{
    n_roles = 0;
    table_view("roles", role_line);
    cr_assert_gt(n_roles, 3, "only %zu schemas in the table?", n_roles);
    size_t refusals = 0;
    for (size_t i = 0; i < n_roles; i++) {
        char var[64];
        snprintf(var, sizeof var, "LAYBY_%s_DATABASE_URL", roles[i].env);
        PGconn *pg = PQconnectdb(tsupport_env_req(var));
        cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s: %s", var, PQerrorMessage(pg));
        char sql[256], state[6];
        /* control: its own schema */
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.inbox", roles[i].schema);
        sql_state(state, pg, sql);
        cr_expect_str_eq(state, "00000", "%s reading its own %s.inbox", roles[i].env,
                         roles[i].schema);
        for (size_t j = 0; j < n_roles; j++) {
            if (j == i)
                continue;
            snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.inbox", roles[j].schema);
            sql_state(state, pg, sql);
            cr_expect_str_eq(state, "42501", "%s reading %s.inbox", roles[i].env, roles[j].schema);
            refusals += strcmp(state, "42501") == 0;
            snprintf(sql, sizeof sql, "CREATE TABLE %s.security_probe (i int)", roles[j].schema);
            sql_state(state, pg, sql);
            cr_expect_str_eq(state, "42501", "%s creating a table in %s", roles[i].env,
                             roles[j].schema);
            refusals += strcmp(state, "42501") == 0;
        }
        sql_state(state, pg, "CREATE TABLE public.security_probe (i int)");
        cr_expect_str_eq(state, "42501", "%s creating a table in public", roles[i].env);
        PQfinish(pg);
    }
    cr_assert_eq(refusals, 2 * n_roles * (n_roles - 1));
}
