/* saga_faults_test.c - the orchestrator's fault paths with real nats-server,
 * PostgreSQL and the test participant (tests/participant/sagatest.c): one bad
 * saga row among many due timers, two STARTs of one saga id racing on two
 * orchestrators, pruning in its own transaction (issue 16 items 1, 4, 5). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/bus_topology.h"
#include "engine/id.h"
#include "engine/saga.h"
#include "layby/v1/saga.pb-c.h"
#include "tsupport.h"

#define WAIT_MS 30000

static bus *admin;
static tsupport_proc procs[4]; /* killed in teardown whatever happened */
static PGconn *holder;         /* a second admin connection that holds locks */

static void
setup(void)
{
    tsupport_reset();
    admin = tsupport_admin_bus("saga-faults-test");
    tsupport_sagatest_setup(admin);
}

static void
teardown(void)
{
    tsupport_daemons_kill(procs, LB_COUNTOF(procs));
    if (holder != NULL)
        PQfinish(holder);
    holder = NULL;
    bus_close(admin);
    admin = NULL;
}

TestSuite(saga_faults, .init = setup, .fini = teardown, .timeout = 180);

/* Instance 0 uses the harness's metrics port; others a free one. env entries
 * must stay valid while the daemon starts (string literals or statics). */
static void
start_orchestrator(tsupport_proc *p, int instance, const char *const *env)
{
    if (instance == 0) {
        tsupport_daemon_start(p, "layby-orchestrator", 0, NULL, env);
        return;
    }
    static char port[16], inst[16];
    int pt = tsupport_port_free();
    snprintf(port, sizeof port, "%d", pt);
    snprintf(inst, sizeof inst, "%d", instance);
    const char *args[] = { "--metrics-port", port, "--instance", inst, NULL };
    tsupport_daemon_start(p, "layby-orchestrator", pt, args, env);
}

/* Publishes a START of saga id (a fresh message id every call): of the test
 * saga (1 s step timeouts), or with bench of the same steps with 30 s ones. */
static void
publish_start(const char *id, const char *script, bool bench)
{
    /* StartTestSaga and StartBenchSaga have the same fields. */
    Layby__V1__StartTestSaga m = LAYBY__V1__START_TEST_SAGA__INIT;
    if (bench)
        m.base.descriptor = &layby__v1__start_bench_saga__descriptor;
    m.saga_id = (char *)id;
    m.key = "key";
    m.script = (char *)script;
    bus_envelope env;
    bus_envelope_init(&env, m.base.descriptor, NULL);
    lb_err err;
    cr_assert_eq(bus_publish(admin, bench ? SAGA_SUBJ_START_BENCH : SAGA_SUBJ_START_TEST, &env,
                             &m.base, &err),
                 LB_OK, "%s", err.msg);
}

static int64_t
sql_int(const char *fmt, const char *id)
{
    char sql[512];
    snprintf(sql, sizeof sql, fmt, id);
    return tsupport_sql_int(sql);
}

/* Messages on subject in stream. */
static uint64_t
subject_count(const char *stream, const char *subject)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Info.SubjectsFilter = subject;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(js_GetStreamInfo(&si, bus_js(admin), stream, &o, &jerr), NATS_OK);
    uint64_t n = 0;
    if (si->State.Subjects != NULL)
        for (int i = 0; i < si->State.Subjects->Count; i++)
            n += si->State.Subjects->List[i].Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

static void
holder_exec(const char *sql)
{
    if (holder == NULL) {
        holder = PQconnectdb(tsupport_env_req("LAYBY_TEST_PG_ADMIN_URL"));
        cr_assert_eq(PQstatus(holder), CONNECTION_OK, "%s", PQerrorMessage(holder));
    }
    PGresult *r = PQexec(holder, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(holder));
    PQclear(r);
}

/* --- item 4: two STARTs of one saga id ----------------------------------- */

/* Sessions of the orchestrators waiting for a lock. */
#define LOCK_WAITERS \
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND usename = 'saga'"

/* Two orchestrators each take a START of the same new saga id (two message
 * ids, as when a client retries a start). A transaction of the test holds
 * saga.saga_log, so the first orchestrator's START stays uncommitted (its
 * saga row inserted, its log row waiting) while the second decides the same
 * START: neither could lock a row that did not exist. Only one may apply.
 * The bench saga's 30 s step timeouts send nothing more while it waits. */
Test(saga_faults, two_starts_of_one_saga_on_two_orchestrators_apply_once)
{
    /* One message per fetch: the blocked orchestrator holds no second pull
     * request, so the second START goes to the other one. */
    const char *env[] = { "LAYBY_ORCHESTRATOR_BATCH=1", NULL };
    start_orchestrator(&procs[1], 0, env);
    start_orchestrator(&procs[2], 1, env);
    holder_exec("BEGIN");
    holder_exec("LOCK TABLE saga.saga_log IN EXCLUSIVE MODE");
    char id[ID_STR_LEN];
    id_new(id);
    publish_start(id, "", true);
    tsupport_wait_count(WAIT_MS, 1, LOCK_WAITERS);
    publish_start(id, "", true);
    /* The second waits for the first one's uncommitted row (key check). */
    tsupport_wait_count(WAIT_MS, 2, LOCK_WAITERS);
    holder_exec("COMMIT");
    tsupport_wait_count(WAIT_MS, 2,
                        "SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s' AND "
                        "input_kind = 'START'",
                        id);
    cr_assert_eq(sql_int("SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s' AND "
                         "input_kind = 'START' AND verdict = 'APPLIED'",
                         id),
                 1, "one START created the saga");
    cr_assert_eq(sql_int("SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s' AND "
                         "input_kind = 'START' AND verdict = 'IGNORED'",
                         id),
                 1, "the other was a repeated START");
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM saga.outbox");
    uint64_t sent = subject_count("LAYBY_CMD", SAGA_SUBJ_TEST_DO);
    cr_assert_eq(sent, 1, "step a was sent once, not %llu times", (unsigned long long)sent);
    /* And the saga runs on as one. */
    tsupport_sagatest_start(&procs[0], NULL);
    tsupport_wait_count(
        WAIT_MS, 1, "SELECT count(*) FROM saga.sagas WHERE saga_id = '%s' AND status = 'COMPLETED'",
        id);
    cr_assert_eq(sql_int("SELECT count(*) FROM sagatest.effects WHERE saga_id = '%s'", id), 3);
    cr_assert_eq(subject_count("LAYBY_EVT", "layby.evt.saga.completed"), 1);
}
