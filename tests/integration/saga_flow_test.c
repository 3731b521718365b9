/* saga_flow_test.c - wait and delay steps, signals and the record through the
 * real orchestrator, nats-server, PostgreSQL and the test participant, with
 * the test saga type "sagaflow" (tests/sagas/sagaflow.c):
 *   a -> pay (wait) -> prepare -> ship_delay (delay) -> ship (pivot)
 *     -> window (delay, ends) [return] -> ret_delay -> refund
 * The pay step waits for a TestStepDone{step 1} that the test publishes, as
 * the payment service will publish PaymentCaptured. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/bus_topology.h"
#include "engine/id.h"
#include "layby/v1/common.pb-c.h"
#include "layby/v1/saga.pb-c.h"
#include "sagas_test.h"
#include "tsupport.h"

#define WAIT_MS 30000

static bus *admin;
static tsupport_proc procs[3]; /* stopped and checked in teardown whatever happened */

static void
setup(void)
{
    admin = tsupport_sagatest_open("saga-flow-test");
}

static void
teardown(void)
{
    tsupport_stack_close(&admin, procs, LB_COUNTOF(procs));
}

TestSuite(saga_flow, .init = setup, .fini = teardown, .timeout = 180);

static void
flow_start_scripted(char id[ID_STR_LEN], const char *script)
{
    id_new(id);
    Layby__V1__StartTestSaga m = LAYBY__V1__START_TEST_SAGA__INIT;
    m.saga_id = id;
    m.key = "order-1";
    m.script = (char *)script;
    tsupport_publish(admin, SAGA_SUBJ_START_FLOW, &m.base);
}

static void
flow_start(char id[ID_STR_LEN])
{
    flow_start_scripted(id, "");
}

/* What the payment service does for the order saga: the event the wait step
 * waits for, with what the record keeps. */
static void
pay(const char *id, const char *note)
{
    Layby__V1__TestStepDone m = LAYBY__V1__TEST_STEP_DONE__INIT;
    m.saga_id = (char *)id;
    m.step = SAGAFLOW_PAY;
    m.attempt = 1;
    m.note = (char *)note;
    tsupport_publish(admin, SAGA_SUBJ_TEST_DONE, &m.base);
}

/* Sends a signal and returns the orchestrator's answer: LB_OK with the saga's
 * status in status_out, or the refusal's code. */
static lb_status
signal_send(const char *id, const char *name, char *status_out, size_t n)
{
    Layby__V1__SignalSaga m = LAYBY__V1__SIGNAL_SAGA__INIT;
    m.saga_id = (char *)id;
    m.name = (char *)name;
    m.actor = "member-1 USER";
    m.reason = "integration test";
    bus_envelope env;
    bus_envelope_init(&env, m.base.descriptor, NULL);
    natsMsg *reply = NULL;
    lb_err err;
    cr_assert_eq(bus_command(&reply, admin, SAGA_SUBJ_SIGNAL, &env, &m.base, WAIT_MS, &err), LB_OK,
                 "%s", err.msg);
    ProtobufCMessage *out = NULL;
    lb_status s = bus_reply_decode(&out, reply, &layby__v1__saga_outcome__descriptor, &err);
    if (s == LB_OK) {
        snprintf(status_out, n, "%s", ((Layby__V1__SagaOutcome *)out)->status);
        protobuf_c_message_free_unpacked(out, NULL);
    }
    natsMsg_Destroy(reply);
    return s;
}

static int64_t
effects(const char *id, const char *kind)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM sagatest.effects WHERE saga_id = '%s' AND kind = '%s'", id,
             kind);
    return tsupport_sql_int(sql);
}

static void
wait_effects(const char *id, const char *kind, int64_t n)
{
    tsupport_wait_count(
        WAIT_MS, n, "SELECT count(*) FROM sagatest.effects WHERE saga_id = '%s' AND kind = '%s'",
        id, kind);
}

static void
wait_status(const char *id, const char *status)
{
    tsupport_wait_count(WAIT_MS, 1,
                        "SELECT count(*) FROM saga.sagas WHERE saga_id = '%s' AND status = '%s'",
                        id, status);
}

/* The saga's stored state. */
static void
state_read(saga_state *state, const char *id)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT state FROM saga.sagas WHERE saga_id = '%s'", id);
    PGresult *r = PQexecParams(tsupport_pg(), sql, 0, NULL, NULL, NULL, NULL, 1);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(tsupport_pg()));
    cr_assert_eq(PQntuples(r), 1);
    lb_err err;
    cr_assert_eq(saga_state_unpack(state, (const uint8_t *)PQgetvalue(r, 0, 0),
                                   (size_t)PQgetlength(r, 0, 0), &err),
                 LB_OK, "%s", err.msg);
    PQclear(r);
}

/* Re-decides the saga's whole log: the same verdicts, ending in the stored
 * state (what `layby-ctl saga replay` does). */
static void
replay_matches(const char *id)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT input, verdict FROM saga.saga_log WHERE saga_id = '%s' ORDER BY id", id);
    PGresult *r = PQexecParams(tsupport_pg(), sql, 0, NULL, NULL, NULL, NULL, 1);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    static const char *const verdicts[] = { "APPLIED", "IGNORED", "REFUSED" };
    saga_state s, stored;
    memset(&s, 0, sizeof s);
    lb_err err;
    for (int i = 0; i < PQntuples(r); i++) {
        static saga_input_rec rec;
        saga_decision d;
        cr_assert_eq(saga_input_unpack(&rec, &saga_sagaflow_v1,
                                       (const uint8_t *)PQgetvalue(r, i, 0),
                                       (size_t)PQgetlength(r, i, 0), &err),
                     LB_OK, "%s", err.msg);
        cr_assert_eq(saga_decide(&s, &d, &saga_sagaflow_v1, s.status ? &s : NULL, &rec.in, &err),
                     LB_OK, "%s", err.msg);
        cr_assert_str_eq(verdicts[d.verdict], PQgetvalue(r, i, 1), "log row %d: %s", i, d.log);
    }
    PQclear(r);
    state_read(&stored, id);
    uint8_t *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    cr_assert_eq(saga_state_pack(&a, &la, &s, &err), LB_OK);
    cr_assert_eq(saga_state_pack(&b, &lb, &stored, &err), LB_OK);
    cr_assert(la == lb && memcmp(a, b, la) == 0, "replay ends in the stored state");
    free(a);
    free(b);
}

/* A saga log line matching `like` exists: the saga decided that. */
static void
wait_line(const char *id, const char *like)
{
    tsupport_wait_count(
        WAIT_MS, 1, "SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s' AND line LIKE '%s'",
        id, like);
}

/* The saga has decided to wait at ship_delay (the participant's effect of
 * prepare commits before its event reaches the orchestrator). */
static void
wait_delay_pending(const char *id)
{
    wait_line(id, "%delay ship_delay for %");
}

static void
start_orchestrator(const char *const *env)
{
    tsupport_daemon_start(&procs[1], "layby-orchestrator", 0, NULL, env);
}

Test(saga_flow, a_delay_pending_across_a_restart_fires_and_a_return_runs_the_return_branch)
{
    static const char *const env[] = { "LAYBY_SAGAFLOW_DELAY_MS=2000",
                                       "LAYBY_SAGAFLOW_WINDOW_MS=120000",
                                       "LAYBY_SAGAFLOW_PAY_MS=120000", NULL };
    /* A killed orchestrator's last pull request may still take a message;
     * it comes back after AckWait: 2 s here, not 30 (as saga_test's crash
     * tests). */
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    o.ack_wait_ms = 2000;
    tsupport_reset_with(&o);
    tsupport_sagatest_setup(admin);
    tsupport_sagatest_start(&procs[0], NULL);
    start_orchestrator(env);
    char id[ID_STR_LEN];
    flow_start(id);
    wait_effects(id, "do", 1); /* a */
    /* Pay once the saga waits for it, as a client pays once told the order
     * is PAYMENT_PENDING (an earlier payment is kept too: R10, below). */
    wait_line(id, "%wait for pay%");
    pay(id, "charge-42");
    wait_effects(id, "do", 2); /* prepare */
    wait_delay_pending(id);
    saga_state state;
    state_read(&state, id);
    cr_assert_eq(state.step, SAGAFLOW_SHIP_DELAY);
    cr_assert(state.has_timer && state.timer.kind == SAGA_TIMER_DELAY);
    cr_assert_eq(state.durations_ms[SAGAFLOW_SHIP_DELAY], 2000, "read from the settings at start");

    /* The orchestrator dies while the delay is pending, and stays down past it. */
    tsupport_daemon_kill(&procs[1]);
    tsupport_wait_count(
        WAIT_MS, 1, "SELECT count(*) FROM saga.sagas WHERE saga_id = '%s' AND timer_due_at < now()",
        id);
    cr_assert_eq(effects(id, "do"), 2, "ship waited for the delay: nothing was done yet");
    /* Restarted with other settings: the saga keeps the durations it started with. */
    static const char *const env2[] = { "LAYBY_SAGAFLOW_WINDOW_MS=1", NULL };
    start_orchestrator(env2);
    wait_effects(id, "do", 3); /* ship, after the delay fired */
    tsupport_wait_count(WAIT_MS, 1,
                        "SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s' AND line LIKE "
                        "'%%delay window for 120000 ms%%'",
                        id);

    /* Past the pivot, cancel is refused (the edge's 409) and changes nothing. */
    char status[32] = "";
    cr_assert_eq(signal_send(id, "cancel", status, sizeof status), LB_ERR_STATE);
    cr_assert_eq(signal_send(id, "return", status, sizeof status), LB_OK);
    cr_assert_str_eq(status, "RUNNING");
    wait_status(id, "COMPLETED");
    cr_assert_eq(effects(id, "do"), 4, "a, prepare, ship, refund");
    cr_assert_eq(effects(id, "undo"), 0, "nothing before the pivot is undone");

    state_read(&state, id);
    ProtobufCMessage *rec = NULL;
    lb_err err;
    cr_assert_eq(saga_record_get(&rec, &saga_sagaflow_v1, &state, &err), LB_OK, "%s", err.msg);
    Layby__V1__TestSagaRecord *r = (Layby__V1__TestSagaRecord *)rec;
    cr_assert_eq(r->n_notes, 2, "a's and pay's notes");
    cr_assert_str_eq(r->notes[1], "1=charge-42");
    protobuf_c_message_free_unpacked(rec, NULL);
    cr_assert_str_eq(state.signal, "return");
    replay_matches(id);
}

Test(saga_flow, cancel_during_a_delay_undoes_in_reverse_and_the_saga_ends_cancelled)
{
    static const char *const env[] = { "LAYBY_SAGAFLOW_DELAY_MS=120000", NULL };
    tsupport_sagatest_start(&procs[0], NULL);
    start_orchestrator(env);
    char id[ID_STR_LEN];
    flow_start(id);
    wait_effects(id, "do", 1);
    wait_line(id, "%wait for pay%");
    pay(id, "charge-7");
    wait_effects(id, "do", 2);
    wait_delay_pending(id);
    char status[32] = "";
    cr_assert_eq(signal_send(id, "cancel", status, sizeof status), LB_OK);
    cr_assert_str_eq(status, "COMPENSATING", "answered when decided");
    wait_status(id, "CANCELLED");
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM sagatest.tries WHERE saga_id = '%s' AND kind = 'undo'", id);
    cr_assert_eq(tsupport_sql_int(sql), 3, "prepare, pay and a were each sent one undo");
    snprintf(sql, sizeof sql,
             "SELECT string_agg(step::text, ',' ORDER BY id) FROM sagatest.effects "
             "WHERE saga_id = '%s' AND kind = 'undo'",
             id);
    PGresult *r = PQexec(tsupport_pg(), sql);
    cr_assert_str_eq(PQgetvalue(r, 0, 0), "2,0", "reverse order; pay was never done here");
    PQclear(r);
    cr_assert_eq(effects(id, "do"), 2, "ship never ran");
    /* A second cancel is answered OK and changes nothing; a return is refused. */
    cr_assert_eq(signal_send(id, "cancel", status, sizeof status), LB_OK);
    cr_assert_str_eq(status, "CANCELLED");
    cr_assert_eq(signal_send(id, "return", status, sizeof status), LB_ERR_CONFLICT);
    tsupport_wait_count(WAIT_MS, 1,
                        "SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s' AND "
                        "input_kind = 'SIGNAL' AND verdict = 'REFUSED'",
                        id);
    replay_matches(id);
}

/* R10 through the real orchestrator: the payment arrives while the saga still
 * runs a (as an order is paid by a buyer who polled it PAYMENT_PENDING after
 * a 202, before the orchestrator heard so). It is kept in the stored state,
 * and pay is done the moment the saga reaches it, not at the deadline. */
Test(saga_flow, a_payment_before_the_wait_step_is_kept_and_done_on_arrival)
{
    static const char *const env[] = { "LAYBY_SAGAFLOW_PAY_MS=120000",
                                       "LAYBY_SAGAFLOW_DELAY_MS=120000", NULL };
    tsupport_sagatest_start(&procs[0], NULL);
    start_orchestrator(env);
    char id[ID_STR_LEN];
    flow_start_scripted(id, "0:drop=2"); /* a is answered at its third attempt: > 2 s */
    wait_line(id, "%send a attempt 1%");
    pay(id, "charge-early");
    wait_line(id, "%pay: its event came before the saga reached it; kept%");
    saga_state state;
    state_read(&state, id);
    cr_assert_eq(state.step, SAGAFLOW_A, "still at a");
    cr_assert(state.steps[SAGAFLOW_PAY].flags & SAGA_STEP_F_EARLY, "kept in the stored state");
    wait_effects(id, "do", 2); /* a, then prepare: pay did not wait for its deadline */
    wait_delay_pending(id);
    wait_line(id, "%pay: what it waits for came already%");
    state_read(&state, id);
    ProtobufCMessage *rec = NULL;
    lb_err err;
    cr_assert_eq(saga_record_get(&rec, &saga_sagaflow_v1, &state, &err), LB_OK, "%s", err.msg);
    Layby__V1__TestSagaRecord *r = (Layby__V1__TestSagaRecord *)rec;
    cr_assert_eq(r->n_notes, 2, "a's and pay's notes");
    protobuf_c_message_free_unpacked(rec, NULL);
    replay_matches(id);
}

Test(saga_flow, a_signal_for_no_saga_is_not_found)
{
    tsupport_sagatest_start(&procs[0], NULL);
    start_orchestrator(NULL);
    char id[ID_STR_LEN], status[32];
    id_new(id);
    cr_assert_eq(signal_send(id, "cancel", status, sizeof status), LB_ERR_NOT_FOUND);
}

/* A running saga's step rewrites its row with a new timer (usually within the
 * same second as the last) and a new updated_at: no index may cover either,
 * or no such write is HOT (sql/0760_saga_hot_updates.sql). Two writes like a
 * step's, in one transaction of the test's own, the second inside the first's
 * timer second: PostgreSQL counts the HOT ones of the transaction. */
Test(saga_flow, a_running_sagas_step_write_is_a_hot_update)
{
    static const char *const env[] = { "LAYBY_SAGAFLOW_PAY_MS=120000", NULL };
    tsupport_sagatest_start(&procs[0], NULL);
    start_orchestrator(env);
    char id[ID_STR_LEN], sql[512];
    flow_start(id);
    wait_line(id, "%wait for pay up to%"); /* RUNNING, a 120 s timer, nothing in flight */
    tsupport_sql("BEGIN");
    for (int ms = 100; ms <= 200; ms += 100) {
        snprintf(sql, sizeof sql,
                 "UPDATE saga.sagas SET state = state || '\\x'::bytea, updated_at = "
                 "clock_timestamp(), timer_due_at = date_trunc('second', timer_due_at) + "
                 "make_interval(secs => %d / 1000.0) WHERE saga_id = '%s'",
                 ms, id);
        tsupport_sql(sql);
    }
    int64_t hot =
        tsupport_sql_int("SELECT pg_stat_get_xact_tuples_hot_updated('saga.sagas'::regclass)");
    tsupport_sql("ROLLBACK");
    cr_assert_geq(hot, 1, "the write within the timer's second was not a HOT update");
}
