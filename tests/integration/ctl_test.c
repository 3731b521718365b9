/* ctl_test.c - the operator commands of the real layby-ctl binary against real
 * nats-server, PostgreSQL, layby-orchestrator, the test participant and
 * layby-catalog: saga list/show/retry/resolve/replay on a STUCK saga, replay
 * of LAYBY_EVT as JSON lines, dlq show/retry of poison messages, and
 * db status/migrate (on the stack's database and on a fresh one). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/bus_topology.h"
#include "engine/id.h"
#include "engine/svc_table.h"
#include "layby/v1/catalog.pb-c.h"
#include "layby/v1/saga.pb-c.h"
#include "sagas_test.h"
#include "tsupport.h"

#define WAIT_MS     30000
#define SUBJ_POISON "layby.cmd.catalog.create_product"

static bus *admin;
static tsupport_proc procs[3]; /* stopped and checked in teardown whatever happened */

/* --- set-up ---------------------------------------------------------------- */

static void
setup(void)
{
    admin = tsupport_sagatest_open("ctl-test");
}

static void
teardown(void)
{
    tsupport_stack_close(&admin, procs, LB_COUNTOF(procs));
}

TestSuite(ctl, .init = setup, .fini = teardown, .timeout = 180);

/* --- running layby-ctl -------------------------------------------------------- */

#define CTL(out, ...) tsupport_ctl_run(out, true, NULL, (const char *const[]){ __VA_ARGS__, NULL })
#define CTL1(out, ...) \
    tsupport_ctl_run(out, false, NULL, (const char *const[]){ __VA_ARGS__, NULL })

/* --- sagas ---------------------------------------------------------------------- */

/* Statuses of the SagaChanged bodies of saga id in replay's JSON lines, "," joined. */
static void
changed_statuses(char *dst, size_t n, const char *lines, const char *id)
{
    dst[0] = '\0';
    for (const char *p = lines; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        json_error_t je;
        json_t *o = json_loadb(p, strcspn(p, "\n"), 0, &je);
        cr_assert_not_null(o, "not JSON: %.*s (%s)", (int)strcspn(p, "\n"), p, je.text);
        cr_assert_str_eq(json_string_value(json_object_get(o, "type")), "layby.v1.SagaChanged");
        cr_assert_not_null(json_object_get(o, "seq"));
        cr_assert_not_null(json_object_get(json_object_get(o, "headers"), BUS_H_MSG_ID));
        json_t *body = json_object_get(o, "body");
        cr_assert_not_null(body, "body not decoded: %.*s", (int)strcspn(p, "\n"), p);
        if (strcmp(json_string_value(json_object_get(body, "sagaId")), id) == 0) {
            const char *st = json_string_value(json_object_get(body, "status"));
            size_t at = strlen(dst);
            snprintf(dst + at, n - at, "%s%s", at ? "," : "", st ? st : "?");
        }
        json_decref(o);
    }
}

static size_t
lines_count(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

Test(ctl, operator_commands_on_a_stuck_saga)
{
    tsupport_sagatest_start(&procs[0], NULL);
    tsupport_daemon_start(&procs[1], "layby-orchestrator", 0, NULL, NULL);
    char id[ID_STR_LEN], other[ID_STR_LEN];
    tsupport_test_saga_start(admin, id, "2:fail 1:undofail=99");
    tsupport_saga_wait_status(WAIT_MS, id, "STUCK");
    char *out = NULL;

    cr_assert_eq(CTL(&out, "saga", "list", "--state", "STUCK"), 0, "%s", out);
    cr_assert_not_null(strstr(out, id), "%s", out);
    cr_assert_not_null(strstr(out, "1 saga\n"), "%s", out);
    free(out);
    cr_assert_eq(CTL(&out, "saga", "list", "--state", "COMPLETED"), 0, "%s", out);
    cr_assert_null(strstr(out, id), "%s", out);
    free(out);
    cr_assert_eq(CTL(&out, "saga", "list", "--state", "NOPE"), 2, "%s", out);
    free(out);

    cr_assert_eq(CTL(&out, "saga", "show", id), 0, "%s", out);
    cr_assert_not_null(strstr(out, "status        STUCK\n"), "%s", out);
    cr_assert_not_null(strstr(out, "COMPENSATING->STUCK"), "%s", out);
    cr_assert_not_null(strstr(out, " START "), "%s", out);
    char want_log[64];
    snprintf(want_log, sizeof want_log, "timeline (%lld entries)",
             (long long)tsupport_sql_int("SELECT count(*) FROM saga.saga_log"));
    cr_assert_not_null(strstr(out, want_log), "%s", out);
    /* the start input, decoded: what the saga was asked to do */
    cr_assert_not_null(strstr(out, "start         layby.v1.StartTestSaga {\"sagaId\":\""), "%s",
                       out);
    cr_assert_not_null(strstr(out, "\"script\":\"2:fail 1:undofail=99\""), "%s", out);
    char want_corr[64];
    snprintf(want_corr, sizeof want_corr, "correlation   %s\n", id);
    cr_assert_not_null(strstr(out, want_corr), "its own flow: %s", out);
    free(out);
    cr_assert_eq(CTL1(&out, "saga", "show", id, "--json"), 0, "%s", out);
    json_t *doc = json_loads(out, 0, NULL);
    cr_assert_not_null(doc, "%s", out);
    json_t *start = json_object_get(doc, "start");
    cr_assert_str_eq(json_string_value(json_object_get(start, "type")), "layby.v1.StartTestSaga");
    json_t *sm = json_object_get(start, "message");
    cr_assert_str_eq(json_string_value(json_object_get(sm, "sagaId")), id, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(sm, "key")), "key", "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(sm, "script")), "2:fail 1:undofail=99");
    cr_assert_str_eq(json_string_value(json_object_get(doc, "correlation")), id, "%s", out);
    json_decref(doc);
    free(out);
    id_new(other);
    cr_assert_eq(CTL(&out, "saga", "show", other), 1, "%s", out);
    cr_assert_not_null(strstr(out, "no saga"), "%s", out);
    free(out);

    cr_assert_eq(CTL(&out, "saga", "replay", id), 0, "%s", out);
    cr_assert_not_null(strstr(out, "replay matches"), "%s", out);
    free(out);

    cr_assert_eq(CTL(&out, "saga", "resolve", id, "--reason", "x", "--actor", "ops-anna"), 0, "%s",
                 out);
    cr_assert_not_null(strstr(out, "RESOLVED"), "%s", out);
    free(out);
    tsupport_saga_wait_status(WAIT_MS, id, "RESOLVED");
    cr_assert_eq(CTL(&out, "saga", "retry", id, "--reason", "again", "--actor", "ops-anna"), 1,
                 "%s", out);
    free(out);
    cr_assert_eq(CTL(&out, "saga", "retry", id), 2, "--reason is required: %s", out);
    free(out);
    cr_assert_eq(CTL(&out, "saga", "show", id), 0, "%s", out);
    cr_assert_not_null(strstr(out, "resolved by   ops-anna: x\n"), "%s", out);
    cr_assert_not_null(strstr(out, "RETRY   REFUSED"), "the refused retry is logged: %s", out);
    free(out);
    cr_assert_eq(CTL(&out, "saga", "replay", id), 0, "%s", out);
    cr_assert_not_null(strstr(out, "replay matches"), "%s", out);
    free(out);

    /* Every SagaChanged has left the outbox: replay shows the whole story. */
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM saga.outbox");
    char statuses[256];
    cr_assert_eq(CTL1(&out, "replay", "LAYBY_EVT", "--subject", "layby.evt.saga.>"), 0, "%s", out);
    changed_statuses(statuses, sizeof statuses, out, id);
    cr_assert_str_eq(statuses, "RUNNING,COMPENSATING,STUCK,RESOLVED", "%s", out);
    free(out);
    cr_assert_eq(CTL1(&out, "replay", "LAYBY_EVT", "--subject", "layby.evt.saga.>", "--limit", "2"),
                 0, "%s", out);
    cr_assert_eq(lines_count(out), 2, "%s", out);
    free(out);
    cr_assert_eq(CTL1(&out, "replay", "LAYBY_EVT", "--since", "2200-01-01T00:00:00+09:00"), 0, "%s",
                 out);
    cr_assert_str_eq(out, "", "nothing after the end");
    free(out);
    cr_assert_eq(CTL1(&out, "replay", "LAYBY_EVT", "--since", "2999-01-01T00:00:00Z"), 1, "%s",
                 out);
    free(out);

    /* A log that no longer decides the stored state is reported. */
    tsupport_sql("DELETE FROM saga.saga_log WHERE input_kind = 'RESOLVE'");
    cr_assert_eq(CTL(&out, "saga", "replay", id), 1, "%s", out);
    cr_assert_not_null(strstr(out, "MISMATCH"), "%s", out);
    free(out);
}

/* --- dead letters ------------------------------------------------------------- */

static uint64_t dlq_last; /* LAYBY_DLQ's last sequence, by dlq_has() */

static bool
dlq_has(void *arg)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, bus_js(admin), BUS_STREAM_DLQ, NULL, &jerr) != NATS_OK)
        return false;
    bool ok = si->State.Msgs == *(uint64_t *)arg;
    dlq_last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return ok;
}

static void
wait_dlq(uint64_t n)
{
    cr_assert(tsupport_poll_until(dlq_has, &n, WAIT_MS), "LAYBY_DLQ never held %llu",
              (unsigned long long)n);
}

/* Publishes CreateProduct(pid) with Layby-Type `type`, without a
 * Nats-Msg-Id when drop_id. */
static void
publish_create(const char *pid, const char *type, bool drop_id)
{
    Layby__V1__ProductDraft d;
    Layby__V1__CreateProduct c;
    tsupport_create_product(&c, &d, pid, "Poison laptop");
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__create_product__descriptor, NULL);
    snprintf(env.type, sizeof env.type, "%s", type);
    natsMsg *m = NULL;
    lb_err err;
    cr_assert_eq(bus_msg_new(&m, SUBJ_POISON, &env, &c.base, &err), LB_OK, "%s", err.msg);
    if (drop_id)
        cr_assert_eq(natsMsgHeader_Delete(m, BUS_H_MSG_ID), NATS_OK);
    jsPubAck *ack = NULL;
    cr_assert_eq(js_PublishMsg(&ack, bus_js(admin), m, NULL, NULL), NATS_OK);
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(m);
}

static json_t *
dlq_show(uint64_t seq)
{
    char arg[24], *out = NULL;
    snprintf(arg, sizeof arg, "%llu", (unsigned long long)seq);
    cr_assert_eq(CTL1(&out, "dlq", "show", arg), 0, "%s", out);
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    cr_assert_not_null(o, "not JSON (%s): %s", je.text, out);
    free(out);
    return o;
}

static const char *
jstr(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    return json_string_value(b ? json_object_get(v, b) : v);
}

Test(ctl, dead_letters_are_shown_and_retried)
{
    tsupport_daemon_start(&procs[2], "layby-catalog", 0, NULL, NULL);
    char pid[ID_STR_LEN], seq[24], *out = NULL;

    /* An unknown Layby-Type: dead at once, and its Nats-Msg-Id is fresh. */
    id_new(pid);
    publish_create(pid, "layby.v1.NoSuchType", false);
    wait_dlq(1);
    uint64_t poison = dlq_last;
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)poison);
    cr_assert_eq(CTL(&out, "dlq", "list"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "NoSuchType"), "%s", out);
    free(out);
    json_t *o = dlq_show(poison);
    cr_assert_str_eq(jstr(o, "headers", BUS_H_DLQ_SUBJECT), SUBJ_POISON);
    cr_assert_str_eq(jstr(o, "type", NULL), "layby.v1.NoSuchType");
    cr_assert_not_null(jstr(o, "bodyBase64", NULL), "undecodable bodies come raw");
    cr_assert_not_null(jstr(o, "error", NULL));
    cr_assert_null(json_object_get(o, "body"));
    json_decref(o);
    cr_assert_eq(CTL(&out, "dlq", "retry", seq), 1, "%s", out);
    cr_assert_not_null(strstr(out, "duplicate"), "%s", out);
    free(out);
    wait_dlq(1); /* kept */

    /* No Nats-Msg-Id: dead-lettered under a new id, so a retry goes through. */
    id_new(pid);
    publish_create(pid, layby__v1__create_product__descriptor.name, true);
    wait_dlq(2);
    uint64_t missing = dlq_last;
    o = dlq_show(missing);
    cr_assert_str_eq(jstr(o, "body", "productId"), pid);
    cr_assert_null(json_object_get(o, "bodyBase64"));
    json_decref(o);
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)missing);
    cr_assert_eq(CTL(&out, "dlq", "retry", seq), 0, "%s", out);
    cr_assert_not_null(strstr(out, "deleted message"), "%s", out);
    free(out);
    wait_dlq(1);
    tsupport_wait_count(WAIT_MS, 1, "SELECT count(*) FROM catalog.products WHERE product_id = '%s'",
                        pid);
    cr_assert_eq(CTL(&out, "dlq", "show", seq), 1, "%s", out);
    free(out);
    cr_assert_eq(CTL(&out, "dlq", "show", "zero"), 2, "%s", out);
    free(out);
}

/* --- migrations -------------------------------------------------------------- */

static void
file_write(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void
db_test_clean(void)
{
    tsupport_sql("DELETE FROM public.schema_migrations WHERE version IN (1018, 1019)");
    tsupport_sql("DROP TABLE IF EXISTS saga.ctl_db_test, saga.ctl_db_broken");
}

Test(ctl, db_status_and_migrate)
{
    const char *admin_url = tsupport_env_req("LAYBY_TEST_PG_ADMIN_URL");
    char sql[600], dir[] = "/tmp/ctl-db-XXXXXX", *out = NULL;
    snprintf(sql, sizeof sql, "%s/sql", LAYBY_SOURCE_DIR);
    db_test_clean();

    /* The harness applied the tree's migrations. */
    cr_assert_eq(CTL(&out, "db", "status", "--admin-url", admin_url, "--sql-dir", sql), 0, "%s",
                 out);
    cr_assert_not_null(strstr(out, "0 pending"), "%s", out);
    cr_assert_not_null(strstr(out, "0002  saga       applied"), "%s", out);
    free(out);

    /* A new one (in a folder of its own, numbered in ctl's range). */
    cr_assert_not_null(mkdtemp(dir));
    file_write(dir, "1019_saga_ctl_test.sql", "CREATE TABLE ctl_db_test (x int);\n");
    cr_assert_eq(CTL(&out, "db", "status", "--admin-url", admin_url, "--sql-dir", dir), 1, "%s",
                 out);
    cr_assert_not_null(strstr(out, "PENDING  1019_saga_ctl_test.sql"), "%s", out);
    free(out);
    cr_assert_eq(CTL(&out, "db", "migrate", "--admin-url", admin_url, "--sql-dir", dir), 0, "%s",
                 out);
    cr_assert_not_null(strstr(out, "migration applied: 1019_saga_ctl_test.sql"), "%s", out);
    free(out);
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM pg_tables WHERE schemaname = 'saga'"
                                  " AND tablename = 'ctl_db_test' AND tableowner = 'saga'"),
                 1, "created as the schema's role");
    cr_assert_eq(CTL(&out, "db", "migrate", "--admin-url", admin_url, "--sql-dir", dir), 0, "%s",
                 out);
    cr_assert_null(strstr(out, "migration applied"), "applied once: %s", out);
    free(out);

    /* A failing one leaves nothing behind and is not recorded. */
    file_write(dir, "1018_saga_ctl_broken.sql",
               "CREATE TABLE ctl_db_broken (x int);\nSELECT no_such_column FROM ctl_db_broken;\n");
    cr_assert_eq(CTL(&out, "db", "migrate", "--admin-url", admin_url, "--sql-dir", dir), 1, "%s",
                 out);
    free(out);
    cr_assert_eq(
        tsupport_sql_int("SELECT count(*) FROM pg_tables WHERE tablename = 'ctl_db_broken'"), 0);
    cr_assert_eq(
        tsupport_sql_int("SELECT count(*) FROM public.schema_migrations WHERE version = 1018"), 0);
    /* A badly named file is refused before anything runs. */
    file_write(dir, "1017-Bad.sql", "SELECT 1;\n");
    cr_assert_eq(CTL(&out, "db", "status", "--admin-url", admin_url, "--sql-dir", dir), 1, "%s",
                 out);
    free(out);
    cr_assert_eq(CTL(&out, "db", "status", "--sql-dir", dir, "--admin-url"), 2, "%s", out);
    free(out);

    db_test_clean();
    char rm[64];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    cr_assert_eq(system(rm), 0);
}

/* The one value of a one-row query on pg (the caller frees it). */
static char *
fresh_value(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(pg));
    cr_assert_eq(PQntuples(r), 1, "%s", sql);
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* An operator's install without the dev scripts: roles exist, each service's
 * schema is made and owned by its role (OPERATIONS.md section 6), then
 * `layby-ctl db migrate` must leave every schema with its business tables and
 * the shared inbox and outbox with their settings; and a later migrate
 * brings a schema's shared tables back to what sql/shared says (an upgrade
 * whose release changed them). */
Test(ctl, db_migrate_makes_every_schema_whole_on_a_fresh_database)
{
    const char *admin_url = tsupport_env_req("LAYBY_TEST_PG_ADMIN_URL");
    char sql[600], url[1024], q[1024], *out = NULL;
    snprintf(sql, sizeof sql, "%s/sql", LAYBY_SOURCE_DIR);
    const char *slash = strrchr(admin_url, '/');
    cr_assert(slash != NULL && strchr(slash, '?') == NULL, "a URL ending /<dbname>: %s", admin_url);
    snprintf(url, sizeof url, "%.*s/layby_ctl_fresh", (int)(slash - admin_url), admin_url);
    tsupport_sql("DROP DATABASE IF EXISTS layby_ctl_fresh");
    tsupport_sql("CREATE DATABASE layby_ctl_fresh");
    PGconn *pg = PQconnectdb(url);
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    for (size_t k = 0; k < svc_table_n_schemas; k++) {
        snprintf(q, sizeof q, "CREATE SCHEMA \"%s\" AUTHORIZATION \"%s\"",
                 svc_table_schemas[k].schema, svc_table_schemas[k].schema);
        PQclear(PQexec(pg, q));
    }
    PQclear(PQexec(pg, "CREATE TABLE public.schema_migrations (version int PRIMARY KEY,"
                       " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"));
    /* Every schema on the admin URL's server, whatever the harness's stack. */
    char env_buf[16][96];
    const char *env[17] = { NULL };
    cr_assert_lt(svc_table_n_schemas, 16);
    for (size_t k = 0; k < svc_table_n_schemas; k++) {
        snprintf(env_buf[k], sizeof env_buf[k], "%s=", svc_table_schemas[k].url_env);
        env[k] = env_buf[k];
    }
    const char *status[] = { "db", "status", "--admin-url", url, "--sql-dir", sql, NULL };
    const char *migrate[] = { "db", "migrate", "--admin-url", url, "--sql-dir", sql, NULL };

    cr_assert_eq(tsupport_ctl_run(&out, true, env, status), 1, "%s", out);
    cr_assert_not_null(strstr(out, "PENDING  0001_catalog_init.sql"), "%s", out);
    cr_assert_not_null(strstr(out, "sh    orders     PENDING"), "%s", out);
    free(out);
    cr_assert_eq(tsupport_ctl_run(&out, true, env, migrate), 0, "%s", out);
    cr_assert_not_null(strstr(out, "shared tables applied: orders"), "%s", out);
    free(out);

    for (size_t k = 0; k < svc_table_n_schemas; k++) {
        const char *schema = svc_table_schemas[k].schema;
        snprintf(q, sizeof q,
                 "SELECT string_agg(c.relname || ':' || pg_get_userbyid(c.relowner) || ':' ||"
                 " coalesce(array_to_string(c.reloptions, ','), ''), ' ' ORDER BY c.relname)"
                 " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                 " WHERE n.nspname = '%s' AND c.relname IN ('inbox', 'outbox')",
                 schema);
        char *v = fresh_value(pg, q), want[512];
        snprintf(want, sizeof want,
                 "inbox:%s:autovacuum_analyze_scale_factor=1.0,"
                 "autovacuum_analyze_threshold=100000 "
                 "outbox:%s:autovacuum_vacuum_scale_factor=0,autovacuum_vacuum_threshold=2000,"
                 "autovacuum_analyze_scale_factor=1.0,autovacuum_analyze_threshold=100000",
                 schema, schema);
        cr_expect_str_eq(v, want, "schema %s", schema);
        free(v);
    }
    char *orders = fresh_value(pg, "SELECT count(*) FROM pg_tables WHERE schemaname = 'orders'"
                                   " AND tablename = 'orders' AND tableowner = 'orders'");
    cr_expect_str_eq(orders, "1", "the business tables too");
    free(orders);
    cr_assert_eq(tsupport_ctl_run(&out, true, env, status), 0, "%s", out);
    cr_assert_not_null(strstr(out, "sh    orders     applied"), "%s", out);
    cr_assert_not_null(strstr(out, "\n0 pending"), "%s", out);
    free(out);

    /* A schema made before a change to sql/shared: migrate brings it over. */
    PQclear(PQexec(pg, "ALTER TABLE delivery.outbox RESET (autovacuum_analyze_threshold)"));
    cr_assert_eq(tsupport_ctl_run(&out, true, env, migrate), 0, "%s", out);
    cr_assert_null(strstr(out, "migration applied"), "numbered ones once: %s", out);
    free(out);
    char *opt = fresh_value(pg, "SELECT array_to_string(reloptions, ',') FROM pg_class"
                                " WHERE oid = 'delivery.outbox'::regclass");
    cr_expect_not_null(strstr(opt, "autovacuum_analyze_threshold=100000"), "%s", opt);
    free(opt);

    PQfinish(pg);
    tsupport_sql("DROP DATABASE layby_ctl_fresh");
}
