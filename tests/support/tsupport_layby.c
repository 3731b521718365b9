/* tsupport_layby.c - set-up the saga, ctl and catalog suites share: the admin
 * bus, the test saga's participant, reading one metric of a daemon, checking a
 * daemon's log and exit, and stopping PostgreSQL for outage tests. */
#include <criterion/criterion.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "engine/bus.h"
#include "engine/bus_topology.h"
#include "engine/id.h"
#include "engine/metrics_scrape.h"
#include "layby/v1/catalog.pb-c.h"
#include "layby/v1/saga.pb-c.h"
#include "sagas_test.h"
#include "tsupport.h"

struct bus *
tsupport_admin_bus(const char *name)
{
    lb_err err;
    cr_assert_eq(id_init(&err), LB_OK);
    bus_opts o = BUS_OPTS_INIT;
    o.url = tsupport_env_req("LAYBY_NATS_URL");
    o.user = tsupport_env_req("LAYBY_CTL_NATS_USER");
    o.password = tsupport_env_req("LAYBY_CTL_NATS_PASSWORD");
    o.name = name;
    bus *b = NULL;
    cr_assert_eq(bus_open(&b, &o, &err), LB_OK, "%s", err.msg);
    return b;
}

void
tsupport_publish(bus *b, const char *subject, const ProtobufCMessage *m)
{
    bus_envelope env;
    bus_envelope_init(&env, m->descriptor, NULL);
    lb_err err;
    cr_assert_eq(bus_publish(b, subject, &env, m, &err), LB_OK, "%s: %s", subject, err.msg);
}

void
tsupport_test_saga_start(bus *admin, char *id, const char *script)
{
    id_new(id);
    Layby__V1__StartTestSaga m = LAYBY__V1__START_TEST_SAGA__INIT;
    m.saga_id = id;
    m.key = "key";
    m.script = (char *)script;
    tsupport_publish(admin, SAGA_SUBJ_START_TEST, &m.base);
}

void
tsupport_saga_wait_status(int timeout_ms, const char *id, const char *status)
{
    tsupport_wait_count(timeout_ms, 1,
                        "SELECT count(*) FROM saga.sagas WHERE saga_id = '%s' AND status = '%s'",
                        id, status);
}

/* Runs the SQL file at path, after the statements of before. */
static void
sql_file_run(const char *before, const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    static char sql[16384];
    size_t n = (size_t)snprintf(sql, sizeof sql, "%s\n", before);
    n += fread(sql + n, 1, sizeof sql - n - 1, f);
    cr_assert(feof(f), "%s: larger than %zu bytes", path, sizeof sql);
    fclose(f);
    sql[n] = '\0';
    tsupport_sql(sql);
}

void
tsupport_sagatest_setup(struct bus *admin)
{
    sql_file_run("", LAYBY_SOURCE_DIR "/tests/participant/schema.sql");
    /* The inbox and outbox as every service schema has them (indexes and
     * storage settings too), so what the runtime suites find holds there:
     * every file of sql/shared, in name order, as scripts/lib/pg.sh applies
     * them. */
    glob_t g;
    cr_assert_eq(glob(LAYBY_SOURCE_DIR "/sql/shared/*.sql", 0, NULL, &g), 0, "sql/shared");
    for (size_t i = 0; i < g.gl_pathc; i++)
        sql_file_run("SET search_path = sagatest;", g.gl_pathv[i]);
    globfree(&g);
    tsupport_sql("RESET search_path");
    /* a row of tests/support/services-test.tsv, compiled into test builds */
    const bus_topology_consumer *c = bus_topology_consumer_find("LAYBY_CMD", "sagatest");
    cr_assert_not_null(c,
                       "no durable LAYBY_CMD/sagatest: is this a test build (LAYBY_TEST_HOOKS)?");
    js_DeleteConsumer(bus_js(admin), c->stream, c->durable, NULL, NULL);
    bus_topology_change ch;
    lb_err err;
    cr_assert_eq(bus_topology_consumer_apply(&ch, bus_js(admin), c, tsupport_reset_opts(), &err),
                 LB_OK, "%s", err.msg);
}

bus *
tsupport_sagatest_open(const char *name)
{
    tsupport_reset();
    bus *admin = tsupport_admin_bus(name);
    tsupport_sagatest_setup(admin);
    return admin;
}

void
tsupport_sagatest_start(tsupport_proc *p, const char *const *env)
{
    tsupport_sagatest_spawn(p, env);
    tsupport_daemon_wait_ready(p, 30000);
}

void
tsupport_sagatest_spawn(tsupport_proc *p, const char *const *env)
{
    static char url[512], port[16];
    const char *admin_url = tsupport_env_req("LAYBY_TEST_PG_ADMIN_URL");
    snprintf(url, sizeof url, "%s%soptions=-csearch_path%%3Dsagatest", admin_url,
             strchr(admin_url, '?') ? "&" : "?");
    int pt = tsupport_port_free();
    snprintf(port, sizeof port, "%d", pt);
    const char *args[] = { "--database-url",
                           url,
                           "--nats-user",
                           tsupport_env_req("LAYBY_SAGATEST_NATS_USER"),
                           "--nats-password",
                           tsupport_env_req("LAYBY_SAGATEST_NATS_PASSWORD"),
                           "--metrics-port",
                           port,
                           "--nak-delay",
                           "50ms",
                           NULL };
    tsupport_daemon_spawn(p, "layby-sagatest", pt, args, env);
}

typedef struct want {
    char sql[512];
    int64_t n;
} want;

static bool
sql_is(void *arg)
{
    want *w = arg;
    return tsupport_sql_int(w->sql) == w->n;
}

void
tsupport_wait_count(int timeout_ms, int64_t n, const char *fmt, ...)
{
    want w = { .n = n };
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w.sql, sizeof w.sql, fmt, ap);
    va_end(ap);
    cr_assert(tsupport_poll_until(sql_is, &w, timeout_ms), "%s never became %lld (is %lld)", w.sql,
              (long long)n, (long long)tsupport_sql_int(w.sql));
}

void
tsupport_daemons_kill(tsupport_proc *procs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (procs[i].pid > 0)
            tsupport_daemon_kill(&procs[i]);
    memset(procs, 0, n * sizeof *procs);
}

double
tsupport_metric_try(int port, const char *series)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    char *text = NULL;
    lb_err err = { 0 };
    if (metrics_scrape(&text, url, 5000, &err) != LB_OK)
        return -1;
    double v = metrics_series_sum(text, series);
    free(text);
    return v;
}

long long
tsupport_metric(int port, const char *series)
{
    double v = tsupport_metric_try(port, series);
    cr_assert(v >= 0, "no %s in the metrics of port %d (or it did not answer)", series, port);
    return (long long)v;
}

void
tsupport_create_product(Layby__V1__CreateProduct *c, Layby__V1__ProductDraft *d, const char *pid,
                        const char *name)
{
    layby__v1__product_draft__init(d);
    d->name = (char *)name;
    d->price = 990000;
    d->details = "16 GB, 1 TB";
    d->category = "laptop";
    d->stock = 5;
    layby__v1__create_product__init(c);
    c->product_id = (char *)pid;
    c->draft = d;
}

/* Lines of p's log holding needle, counted up to most (has stops at the first). */
static int
log_lines(const tsupport_proc *p, const char *needle, int most)
{
    FILE *f = fopen(p->log, "r");
    if (f == NULL)
        return 0;
    static char line[16384];
    int n = 0;
    while (n < most && fgets(line, sizeof line, f) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

bool
tsupport_log_has(const tsupport_proc *p, const char *needle)
{
    return log_lines(p, needle, 1) > 0;
}

int
tsupport_log_count(const tsupport_proc *p, const char *needle)
{
    return log_lines(p, needle, INT_MAX);
}

void
tsupport_log_expect_clean(const tsupport_proc *p)
{
    static const char *const reports[] = { "Sanitizer", "runtime error" };
    for (size_t i = 0; i < LB_COUNTOF(reports); i++)
        cr_expect(!tsupport_log_has(p, reports[i]), "%s holds a sanitizer report (%s)", p->log,
                  reports[i]);
}

void
tsupport_daemons_stop_checked(tsupport_proc *procs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (procs[i].pid == 0)
            continue;
        int rc = tsupport_daemon_stop(&procs[i], 15000);
        cr_expect_eq(rc, 0, "%s exited with %d (log %s)", procs[i].name, rc, procs[i].log);
        tsupport_log_expect_clean(&procs[i]);
    }
}

void
tsupport_daemons_finish(tsupport_proc *procs, size_t n)
{
    static const char *const reports[] = { "Sanitizer", "runtime error" };
    for (size_t i = 0; i < n; i++) {
        if (procs[i].pid == 0)
            continue;
        int rc = tsupport_daemon_stop(&procs[i], 15000);
        const char *report = NULL;
        for (size_t k = 0; k < LB_COUNTOF(reports) && report == NULL; k++)
            if (tsupport_log_has(&procs[i], reports[k]))
                report = reports[k];
        if (rc != 0 || report != NULL)
            fprintf(stderr, "%s: %s exited with %d%s%s (log %s)\n", TSUPPORT_FINI_FAILED,
                    procs[i].name, rc, report != NULL ? ", its log holds a report: " : "",
                    report != NULL ? report : "", procs[i].log);
    }
    memset(procs, 0, n * sizeof *procs);
}

void
tsupport_stack_close(bus **admin, tsupport_proc *procs, size_t n)
{
    tsupport_daemons_finish(procs, n);
    bus_close(*admin);
    *admin = NULL;
}

static bool
proc_ended(void *arg)
{
    return !tsupport_daemon_alive(arg);
}

void
tsupport_expect_fault_kill(tsupport_proc *p, int timeout_ms)
{
    cr_assert(tsupport_poll_until(proc_ended, p, timeout_ms), "%s: the fault point never fired",
              p->name);
    cr_assert_eq(p->status, 128 + SIGKILL, "%s died with %d, not SIGKILL (log %s)", p->name,
                 p->status, p->log);
    cr_assert(tsupport_log_has(p, "\"event\":\"fault.kill\""), "no fault.kill line in %s", p->log);
    tsupport_log_expect_clean(p);
}

static void
pg_ctl(const char *action)
{
    const char *data = tsupport_env_req("LAYBY_TEST_PG_DATA");
    char cmd[2048];
    /* The log goes next to data/, where the harness keeps postgres.log. */
    snprintf(cmd, sizeof cmd,
             "cd / && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D '%s' -w -t 60 "
             "-m fast -l '%s/../postgres.log' %s >/dev/null 2>&1",
             data, data, action);
    int rc = system(cmd);
    cr_assert(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "pg_ctl %s failed (%d)", action,
              rc);
}

void
tsupport_pg_stop(void)
{
    pg_ctl("stop");
}

void
tsupport_pg_start(void)
{
    pg_ctl("start");
    PQreset(tsupport_pg()); /* its old session died with the server */
}
