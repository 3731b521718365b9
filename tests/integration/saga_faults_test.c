/* saga_faults_test.c - the orchestrator's fault paths with real nats-server,
 * PostgreSQL and the test participant (tests/participant/sagatest.c): one bad
 * saga row among many due timers, two STARTs of one saga id racing on two
 * orchestrators, pruning in its own transaction (issue 16 items 1, 4, 5), a
 * saga in flight keeping its version across a restart onto a newer one, and a
 * crash after a timer tick's commit (svc.tick_after_commit). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/bus.h"
#include "engine/bus_topology.h"
#include "engine/id.h"
#include "layby/v1/saga.pb-c.h"
#include "sagas_test.h"
#include "tsupport.h"

#define WAIT_MS 30000

static bus *admin;
static tsupport_proc procs[4]; /* stopped and checked in teardown whatever happened */
static PGconn *holder;         /* a second admin connection that holds locks */

static void
setup(void)
{
    admin = tsupport_sagatest_open("saga-faults-test");
}

static void
teardown(void)
{
    if (holder != NULL) /* first: a daemon stopping may wait for its locks */
        PQfinish(holder);
    holder = NULL;
    tsupport_stack_close(&admin, procs, LB_COUNTOF(procs));
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

#define RETENTION_60S "LAYBY_SAGA_RETENTION=60s" /* the shortest allowed */

static void
wait_status(const char *id, const char *status)
{
    tsupport_wait_count(WAIT_MS, 1,
                        "SELECT count(*) FROM saga.sagas WHERE saga_id = '%s' AND status = '%s'",
                        id, status);
}

/* Moves the saga's last change secs seconds into the past. */
static void
age(const char *id, int secs)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE saga.sagas SET updated_at = now() - make_interval(secs => %d), finished_at = "
             "CASE WHEN finished_at IS NOT NULL THEN now() - make_interval(secs => %d) END "
             "WHERE saga_id = '%s'",
             secs, secs, id);
    tsupport_sql(sql);
}

static bool
log_has(const tsupport_proc *p, const char *needle)
{
    FILE *f = fopen(p->log, "r");
    cr_assert_not_null(f, "%s", p->log);
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

typedef struct log_want {
    const tsupport_proc *p;
    const char *needle;
} log_want;

static bool
log_has_cond(void *arg)
{
    const log_want *w = arg;
    return log_has(w->p, w->needle);
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
    /* COMPLETED commits with its event's outbox row; the relay publishes it
     * after the commit and deletes the row once JetStream acked it. */
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM saga.outbox");
    uint64_t completed = subject_count("LAYBY_EVT", "layby.evt.saga.completed");
    cr_assert_eq(completed, 1, "the saga ended %llu times", (unsigned long long)completed);
}

/* --- item 1: one bad saga row among many due timers ----------------------- */

static void
state_v99(saga_state *state)
{
    state->version = 99; /* no orchestrator has it */
}

static void
state_broken(saga_state *state)
{
    state->steps[0].status = SAGA_STEP_PENDING; /* while step b runs: saga.h invariant (1) */
}

/* Rewrites the stored state of saga id with edit(). */
static void
state_rewrite(const char *id, void (*edit)(saga_state *))
{
    PGconn *pg = tsupport_pg();
    const char *p[] = { id };
    PGresult *r = PQexecParams(pg, "SELECT state FROM saga.sagas WHERE saga_id = $1::uuid", 1, NULL,
                               p, NULL, NULL, 1);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    cr_assert_eq(PQntuples(r), 1);
    saga_state state;
    lb_err err;
    cr_assert_eq(saga_state_unpack(&state, (const uint8_t *)PQgetvalue(r, 0, 0),
                                   (size_t)PQgetlength(r, 0, 0), &err),
                 LB_OK, "%s", err.msg);
    PQclear(r);
    edit(&state);
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(saga_state_pack(&buf, &len, &state, &err), LB_OK, "%s", err.msg);
    const char *p2[] = { id, (const char *)buf };
    int lens[] = { 0, (int)len }, fmts[] = { 0, 1 };
    r = PQexecParams(pg, "UPDATE saga.sagas SET state = $2 WHERE saga_id = $1::uuid", 2, NULL, p2,
                     lens, fmts, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(pg));
    PQclear(r);
    free(buf);
}

/* N sagas wait for a timer; three of their rows are broken while the
 * orchestrator is down (a state that does not decode, one that names a version
 * not registered, one the decider finds broken) and come first among the due
 * timers. Every other timer must fire; the three are parked with their error. */
Test(saga_faults, one_bad_saga_row_among_due_timers_is_parked_and_the_others_fire)
{
    enum {
        N = 30
    };
    tsupport_sagatest_start(&procs[0], NULL);
    start_orchestrator(&procs[1], 0, NULL);
    /* Bench sagas whose step b's first command is lost: each waits for its
     * 30 s step timeout, which the test then makes due at once. */
    char ids[N][ID_STR_LEN];
    for (int i = 0; i < N; i++) {
        id_new(ids[i]);
        publish_start(ids[i], "1:drop=1", true);
    }
    tsupport_wait_count(WAIT_MS, N, "SELECT count(*) FROM sagatest.tries WHERE step = 1");
    tsupport_daemon_kill(&procs[1]);
    const char *garbage = ids[7], *unknown = ids[19], *broken = ids[23];
    char sql[512];
    snprintf(sql, sizeof sql, "UPDATE saga.sagas SET state = '\\xdeadbeef' WHERE saga_id = '%s'",
             garbage);
    tsupport_sql(sql);
    state_rewrite(unknown, state_v99);
    state_rewrite(broken, state_broken);
    tsupport_sql("UPDATE saga.sagas SET timer_due_at = now(), timer_slot = saga.timer_slot(now()) "
                 "WHERE timer_due_at IS NOT NULL");
    snprintf(sql, sizeof sql,
             "UPDATE saga.sagas SET timer_due_at = now() - interval '1 minute', "
             "timer_slot = saga.timer_slot(now() - interval '1 minute') "
             "WHERE saga_id IN ('%s', '%s', '%s')",
             garbage, unknown, broken);
    tsupport_sql(sql);
    start_orchestrator(&procs[1], 0, NULL);
    tsupport_wait_count(WAIT_MS, N - 3,
                        "SELECT count(*) FROM saga.sagas WHERE status = 'COMPLETED'");
    const char *bad[] = { garbage, unknown, broken };
    for (size_t i = 0; i < LB_COUNTOF(bad); i++) {
        wait_status(bad[i], "STUCK");
        cr_assert_eq(sql_int("SELECT count(*) FROM saga.sagas WHERE saga_id = '%s' AND "
                             "timer_due_at IS NULL AND parked_error <> ''",
                             bad[i]),
                     1, "parked without a timer, with its error");
    }
    cr_assert_eq(sql_int("SELECT count(*) FROM saga.sagas WHERE saga_id = '%s' AND "
                         "parked_error LIKE '%%sagabench v99%%'",
                         unknown),
                 1, "the error names the missing version");
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM saga.outbox");
    cr_assert_eq(subject_count("LAYBY_EVT", "layby.evt.saga.stuck"), 3, "announced STUCK");
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.effects WHERE kind = 'do'"),
                 3 * (N - 3) + 3,
                 "each other saga did its three steps once; the parked ones "
                 "only step a");
    cr_assert(log_has(&procs[1], "\"saga.parked\""), "%s", procs[1].log);
}

/* --- item 5: pruning in its own transaction ------------------------------- */

Test(saga_faults, pruning_deletes_finished_sagas_past_the_retention_and_nothing_else)
{
    tsupport_sagatest_start(&procs[0], NULL);
    const char *env[] = { RETENTION_60S, NULL };
    start_orchestrator(&procs[1], 0, env);
    /* old = last changed 61 s ago, past the retention; new = 30 s ago. */
    enum {
        DONE_OLD,
        DONE_OLD2,
        FAILED_OLD,
        DONE_NEW,
        FAILED_NEW,
        STUCK_OLD,
        RUNNING_OLD,
        N_SAGAS,
        N_PRUNED = DONE_NEW /* the ones before it */
    };
    /* clang-format off */
    static const struct {
        const char *script;
        bool bench;
        const char *status;
        int age_s;
    } rows[N_SAGAS] = {
        [DONE_OLD]    = { "",                     false, "COMPLETED", 61 },
        [DONE_OLD2]   = { "",                     false, "COMPLETED", 61 },
        [FAILED_OLD]  = { "2:fail",               false, "FAILED",    61 },
        [DONE_NEW]    = { "",                     false, "COMPLETED", 30 },
        [FAILED_NEW]  = { "2:fail",               false, "FAILED",    30 },
        [STUCK_OLD]   = { "2:fail 1:undofail=99", false, "STUCK",     61 },
        /* step a's command is lost: RUNNING for its 30 s timeout */
        [RUNNING_OLD] = { "0:drop=1",             true,  "RUNNING",   61 },
    };
    /* clang-format on */
    char ids[N_SAGAS][ID_STR_LEN];
    int64_t logs[N_SAGAS];
    for (int i = 0; i < N_SAGAS; i++) {
        id_new(ids[i]);
        publish_start(ids[i], rows[i].script, rows[i].bench);
    }
    for (int i = 0; i < N_SAGAS; i++)
        wait_status(ids[i], rows[i].status);
    tsupport_wait_count(WAIT_MS, 1,
                        "SELECT count(*) FROM sagatest.tries WHERE saga_id = '%s' AND step = 0",
                        ids[RUNNING_OLD]);
    for (int i = 0; i < N_SAGAS; i++) {
        age(ids[i], rows[i].age_s);
        logs[i] = sql_int("SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s'", ids[i]);
        cr_assert_gt(logs[i], 0);
    }
    /* Pruning runs every 10 s. */
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM saga.sagas WHERE saga_id IN ('%s', '%s', '%s')",
             ids[DONE_OLD], ids[DONE_OLD2], ids[FAILED_OLD]);
    tsupport_wait_count(WAIT_MS, 0, "%s", sql);
    for (int i = 0; i < N_PRUNED; i++)
        cr_assert_eq(sql_int("SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s'", ids[i]), 0,
                     "saga %d's log went with it", i);
    for (int i = N_PRUNED; i < N_SAGAS; i++) {
        cr_assert_eq(sql_int("SELECT count(*) FROM saga.sagas WHERE saga_id = '%s'", ids[i]), 1,
                     "saga %d (%s, %d s old) is kept", i, rows[i].status, rows[i].age_s);
        cr_assert_eq(sql_int("SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s'", ids[i]),
                     logs[i], "and its log");
    }
}

/* --- the status gauges ----------------------------------------------------- */

#define GAUGE_RUNNING "layby_saga_sagas{status=\"RUNNING\"}"
#define GAUGE_STUCK   "layby_saga_sagas{status=\"STUCK\"}"

/* Inserts n sagas of status, with no timer (no tick takes them). */
static void
sagas_insert(int n, const char *status)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO saga.sagas (saga_id, saga_type, version, status, state, start_type,"
             " start, created_at, updated_at) SELECT gen_random_uuid(), 'sagatest', 1, '%s',"
             " '\\x00', 'layby.v1.TestSagaStart', '\\x00', now(), now()"
             " FROM generate_series(1, %d)",
             status, n);
    tsupport_sql(sql);
}

typedef struct gauge_want {
    int port;
    const char *series;
    double value;
} gauge_want;

/* The series is there and has the value (absent before the first round). */
static bool
gauge_is(void *arg)
{
    const gauge_want *w = arg;
    return tsupport_metric_try(w->port, w->series) == w->value;
}

/* Index entries of sagas_active read so far, after the orchestrator's
 * session flushed its statistics (at most every second when idle). */
static int64_t
sagas_active_reads(void)
{
    struct timespec ts = { 2, 0 };
    nanosleep(&ts, NULL);
    return tsupport_sql_int("SELECT idx_tup_read FROM pg_stat_user_indexes"
                            " WHERE indexrelid = 'saga.sagas_active'::regclass");
}

/* The gauges of unfinished sagas must not read every saga in flight every
 * few seconds: in a shop that is every order until its return window closes.
 * 20,000 RUNNING sagas are counted once when the orchestrator starts; in the
 * next 9-24 s (at least two rounds of the STUCK gauge, which sees a new
 * STUCK saga; well inside the minute) the gauges read a handful of index
 * entries, not 20,000 a round. */
Test(saga_faults, the_status_gauges_read_the_sagas_in_flight_once_a_minute)
{
    enum {
        N_RUNNING = 20000
    };
    sagas_insert(N_RUNNING, "RUNNING");
    sagas_insert(2, "STUCK");
    start_orchestrator(&procs[1], 0, NULL);
    gauge_want running = { procs[1].port, GAUGE_RUNNING, N_RUNNING };
    gauge_want stuck = { procs[1].port, GAUGE_STUCK, 2 };
    cr_assert(tsupport_poll_until(gauge_is, &running, WAIT_MS), "RUNNING was never %d", N_RUNNING);
    cr_assert(tsupport_poll_until(gauge_is, &stuck, WAIT_MS), "STUCK was never 2");
    int64_t before = sagas_active_reads();
    sagas_insert(1, "STUCK");
    stuck.value = 3;
    cr_assert(tsupport_poll_until(gauge_is, &stuck, 15000), "the STUCK gauge missed a new saga");
    struct timespec ts = { 5, 0 }; /* one more round of it */
    nanosleep(&ts, NULL);
    int64_t read = sagas_active_reads() - before;
    cr_assert_lt(read, 1000, "the gauges read %lld index entries in two rounds: RUNNING recounted",
                 (long long)read);
    cr_assert(gauge_is(&running), "the RUNNING gauge kept its count");
}

/* Makes every delete from saga.sagas fail (dropped again in .fini). */
#define PRUNE_REFUSE                                                                 \
    "CREATE FUNCTION saga.test_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS " \
    "$$ BEGIN RAISE EXCEPTION 'the test refuses deletes'; END $$; "                  \
    "CREATE TRIGGER test_refuse_delete BEFORE DELETE ON saga.sagas "                 \
    "FOR EACH ROW EXECUTE FUNCTION saga.test_refuse_delete()"
#define PRUNE_ALLOW                                             \
    "DROP TRIGGER IF EXISTS test_refuse_delete ON saga.sagas; " \
    "DROP FUNCTION IF EXISTS saga.test_refuse_delete()"

static void
teardown_prune(void)
{
    tsupport_sql(PRUNE_ALLOW);
    teardown();
}

/* saga.sagas and saga.saga_log are analyzed rarely (sql/0950), so the
 * prune's plan must need no statistics. With `saga_id IN (SELECT ...)`
 * PostgreSQL hash-joined the whole log at every round (a 240,000-row log
 * read for 500 sagas: 42 ms against 4 ms by index). 4 log rows a saga:
 * 82,000 changes stay below the tables' analyze threshold (100,000), so
 * autovacuum cannot give them statistics during the test. */
Test(saga_faults, the_prune_finds_sagas_and_their_log_by_index)
{
    tsupport_sql("INSERT INTO saga.sagas (saga_id, saga_type, version, status, state, start_type,"
                 " start, created_at, updated_at, finished_at)"
                 " SELECT gen_random_uuid(), 'sagatest', 1, 'COMPLETED', '\\x00',"
                 " 'layby.v1.TestSagaStart', '\\x00', f, f, f FROM (SELECT CASE WHEN i <= 500"
                 " THEN now() - interval '2 minutes' ELSE now() END AS f"
                 " FROM generate_series(1, 20500) i) x");
    tsupport_sql("INSERT INTO saga.saga_log (saga_id, at, msg_id, input_kind, input, verdict,"
                 " from_status, to_status, line) SELECT saga_id, now(), 'm' || g, 'START', '\\x00',"
                 " 'APPLIED', 'RUNNING', 'RUNNING', 'l' FROM saga.sagas, generate_series(1, 4) g");
    tsupport_sql("DELETE FROM pg_statistic WHERE starelid IN ('saga.sagas'::regclass,"
                 " 'saga.saga_log'::regclass)");
    tsupport_table_stats sagas = tsupport_table_stats_get("saga.sagas");
    tsupport_table_stats log = tsupport_table_stats_get("saga.saga_log");
    const char *env[] = { RETENTION_60S, NULL };
    start_orchestrator(&procs[1], 0, env);
    tsupport_table_stats sagas2 =
        tsupport_table_stats_wait("saga.sagas", sagas.deleted + 500, WAIT_MS);
    tsupport_table_stats log2 =
        tsupport_table_stats_wait("saga.saga_log", log.deleted + 2000, WAIT_MS);
    cr_assert_eq(sagas2.deleted - sagas.deleted, 500, "the prune's deletes were not counted");
    cr_assert_eq(log2.deleted - log.deleted, 2000, "the log's deletes were not counted");
    cr_assert_eq(sagas2.seq_scans, sagas.seq_scans, "saga.sagas was read whole");
    cr_assert_eq(log2.seq_scans, log.seq_scans, "saga.saga_log was read whole");
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM saga.sagas"), 20000);
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM saga.saga_log"), 80000);
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM pg_statistic WHERE starelid IN"
                                  " ('saga.sagas'::regclass, 'saga.saga_log'::regclass)"),
                 0, "analyzed meanwhile: the test proves nothing");
}

/* N sagas with a due timer when the orchestrator starts, and a finished saga
 * past the retention that cannot be deleted: the first tick fires the timers
 * and the prune fails. Identity values are never given back, so a timer
 * decision rolled back with a failed prune leaves a gap in saga_log's ids. */
Test(saga_faults, a_failing_prune_leaves_the_timers_firing, .fini = teardown_prune)
{
    enum {
        N = 20
    };
    tsupport_sagatest_start(&procs[0], NULL);
    const char *env[] = { RETENTION_60S, NULL };
    start_orchestrator(&procs[1], 0, env);
    char old[ID_STR_LEN];
    id_new(old);
    publish_start(old, "", false);
    wait_status(old, "COMPLETED");
    /* Bench sagas whose step b's first command is lost: each waits for its
     * 30 s step timeout. */
    char id[ID_STR_LEN];
    for (int i = 0; i < N; i++) {
        id_new(id);
        publish_start(id, "1:drop=1", true);
    }
    tsupport_wait_count(
        WAIT_MS, N, "SELECT count(*) FROM sagatest.tries WHERE step = 1 AND saga_id <> '%s'", old);
    tsupport_daemon_kill(&procs[1]);
    tsupport_sql(PRUNE_REFUSE);
    age(old, 61);
    tsupport_sql("UPDATE saga.sagas SET timer_due_at = now(), timer_slot = saga.timer_slot(now()) "
                 "WHERE timer_due_at IS NOT NULL");
    int64_t last_id = tsupport_sql_int("SELECT last_value FROM saga.saga_log_id_seq");
    start_orchestrator(&procs[1], 0, env);
    tsupport_wait_count(WAIT_MS, N + 1,
                        "SELECT count(*) FROM saga.sagas WHERE status = 'COMPLETED'");
    log_want w = { &procs[1], "\"saga.prune_failed\"" };
    cr_assert(tsupport_poll_until(log_has_cond, &w, WAIT_MS), "the prune failed: %s", procs[1].log);
    cr_assert_eq(sql_int("SELECT count(*) FROM saga.sagas WHERE saga_id = '%s'", old), 1);
    cr_assert_not(log_has(&procs[1], "\"svc.tick_failed\""), "no tick failed: %s", procs[1].log);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT max(id) - %lld - count(*) FROM saga.saga_log WHERE id > %lld",
             (long long)last_id, (long long)last_id);
    cr_assert_eq(tsupport_sql_int(sql), 0, "no log row was rolled back");
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM saga.saga_log WHERE input_kind = 'TIMER' "
                                  "AND line LIKE '%%timed out%%'"),
                 N, "each step timeout fired once");
}

/* --- version pinning through the real orchestrator -------------------------- */

/* Effects of saga id: its steps done, in order ("0,1,2"). */
static const char *
steps_done(const char *id)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(string_agg(step::text, ',' ORDER BY id), '') FROM sagatest.effects "
             "WHERE saga_id = '%s' AND kind = 'do'",
             id);
    PGresult *r = PQexec(tsupport_pg(), sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(tsupport_pg()));
    static char out[64];
    snprintf(out, sizeof out, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

/* A saga runs on the version it started on (saga.h, saga_registry_for): a
 * sagabench v1 saga is in flight (step b's command lost, waiting for its 30 s
 * timeout) when the orchestrator restarts with v2 registered too (one more
 * step, d). The v1 saga finishes on v1's three steps; a saga started now runs
 * v2's four. */
Test(saga_faults, a_v1_saga_in_flight_finishes_on_v1_after_v2_is_registered)
{
    tsupport_sagatest_start(&procs[0], NULL);
    start_orchestrator(&procs[1], 0, NULL);
    char v1[ID_STR_LEN], v2[ID_STR_LEN];
    id_new(v1);
    publish_start(v1, "1:drop=1", true);
    tsupport_wait_count(
        WAIT_MS, 1, "SELECT count(*) FROM sagatest.tries WHERE saga_id = '%s' AND step = 1", v1);
    cr_assert_eq(tsupport_daemon_stop(&procs[1], 15000), 0, "log %s", procs[1].log);
    tsupport_log_expect_clean(&procs[1]);
    cr_assert_eq(sql_int("SELECT version FROM saga.sagas WHERE saga_id = '%s'", v1), 1);
    const char *both[] = { "LAYBY_TEST_SAGA_V2=1", NULL };
    start_orchestrator(&procs[1], 0, both);
    id_new(v2);
    publish_start(v2, "", true);
    wait_status(v2, "COMPLETED");
    cr_assert_eq(sql_int("SELECT version FROM saga.sagas WHERE saga_id = '%s'", v2), 2,
                 "a new saga starts on the latest version");
    cr_assert_str_eq(steps_done(v2), "0,1,2,3");
    /* Step b's timer would fire in 30 s: due now. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE saga.sagas SET timer_due_at = now(), timer_slot = saga.timer_slot(now()) "
             "WHERE saga_id = '%s'",
             v1);
    tsupport_sql(sql);
    wait_status(v1, "COMPLETED");
    cr_assert_eq(sql_int("SELECT version FROM saga.sagas WHERE saga_id = '%s'", v1), 1);
    cr_assert_str_eq(steps_done(v1), "0,1,2", "the v1 saga ran v1's steps, not v2's");
    cr_assert_eq(
        sql_int("SELECT count(*) FROM sagatest.tries WHERE saga_id = '%s' AND step = 3", v1), 0,
        "no step d command was sent for it");
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* --- svc.tick_after_commit --------------------------------------------------- */

/* CRASH POINT svc.tick_after_commit: a tick's timer decisions are committed
 * and the commands they send wait in saga.outbox, never handed to the relay,
 * when the orchestrator dies. N bench sagas' step b commands are lost once, so
 * each waits for its step timeout (made due at once), then a backoff, then
 * sends step b again: the tick that resends is the one killed. After the
 * restart each decision counts once: every step b is sent exactly twice (a
 * decision lost would wait out the next 30 s timeout and send a third; one
 * applied twice would send a third at once) and each timeout is logged once. */
Test(saga_faults, killed_after_a_tick_committed_each_timer_decision_applies_once)
{
    enum {
        N = 20
    };
    tsupport_sagatest_start(&procs[0], NULL);
    start_orchestrator(&procs[1], 0, NULL);
    char id[ID_STR_LEN];
    for (int i = 0; i < N; i++) {
        id_new(id);
        publish_start(id, "1:drop=1", true);
    }
    tsupport_wait_count(WAIT_MS, N, "SELECT count(*) FROM sagatest.tries WHERE step = 1");
    cr_assert_eq(tsupport_daemon_stop(&procs[1], 15000), 0, "log %s", procs[1].log);
    const char *fault[] = { "LAYBY_FAULT=svc.tick_after_commit", NULL };
    start_orchestrator(&procs[1], 0, fault);
    tsupport_sql("UPDATE saga.sagas SET timer_due_at = now(), timer_slot = saga.timer_slot(now()) "
                 "WHERE timer_due_at IS NOT NULL");
    tsupport_expect_fault_kill(&procs[1], WAIT_MS);
    /* Killed after the commit: the decisions and their commands are kept. */
    cr_assert_gt(tsupport_sql_int("SELECT count(*) FROM saga.saga_log WHERE input_kind = 'TIMER' "
                                  "AND line LIKE '%%timed out%%'"),
                 0);
    cr_assert_gt(tsupport_sql_int("SELECT count(*) FROM saga.outbox"), 0,
                 "the resent commands wait in the outbox");
    start_orchestrator(&procs[1], 0, NULL);
    tsupport_wait_count(WAIT_MS, N, "SELECT count(*) FROM saga.sagas WHERE status = 'COMPLETED'");
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.tries WHERE step = 1 AND "
                                  "kind = 'do' AND n = 2"),
                 N, "each step b sent exactly twice");
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM saga.saga_log WHERE input_kind = 'TIMER' "
                                  "AND line LIKE '%%timed out%%'"),
                 N, "each timeout decided once");
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.effects WHERE kind = 'do'"),
                 3 * N);
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM saga.outbox");
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}
