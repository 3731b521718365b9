/* svc_runtime_test.c - the service runtime's guarantees (engine/svc.h) shown
 * through a handler that is NOT idempotent: the test participant's counter
 * (tests/participant/sagatest.c, layby.cmd.sagatest.count adds one to
 * sagatest.counts[key] per handled command and emits one event). Only the
 * engine's inbox stands between a repeated delivery and a second count, so
 * these tests fail when the inbox, the crash handling, the transient-error
 * hold or the dead-lettering break. Real nats-server and PostgreSQL. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/bus_topology.h"
#include "engine/id.h"
#include "layby/v1/saga.pb-c.h"
#include "tsupport.h"

#define WAIT_MS     30000
#define SUBJ_COUNT  "layby.cmd.sagatest.count"
#define M_HANDLED   "layby_svc_messages_handled_total{service=\"sagatest\"}"
#define M_DUPLICATE "layby_svc_messages_duplicate_total{service=\"sagatest\"}"
#define M_REDELIVER "layby_svc_redeliveries_total{service=\"sagatest\"}"
#define M_DEAD      "layby_svc_dead_letters_total{service=\"sagatest\"}"
#define M_RETRIES   "layby_svc_batch_retries_total{service=\"sagatest\"}"
#define M_DB_WAITS  "layby_svc_db_waits_total{service=\"sagatest\"}"

static bus *admin;
static tsupport_proc procs[4]; /* stopped and checked in teardown whatever happened */
static bool cmd_stream_changed, pg_stopped, evt_limited;

static void
setup_with(const bus_topology_opts *o)
{
    tsupport_reset_with(o);
    if (admin == NULL)
        admin = tsupport_admin_bus("svc-runtime-test");
    tsupport_sagatest_setup(admin);
}

static void
setup(void)
{
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    setup_with(&o);
}

/* Applies stream settings to a stream of the topology (teardown puts LAYBY_CMD back). */
static void
stream_set(size_t i, const bus_topology_opts *o)
{
    bus_topology_change ch;
    lb_err err;
    cr_assert_eq(bus_topology_stream_apply(&ch, bus_js(admin), &bus_topology_streams[i], o, &err),
                 LB_OK, "%s", err.msg);
    cmd_stream_changed = true;
}

/* Caps a stream at max_msgs, refusing what comes beyond (discard new), or
 * lifts the cap (-1): settings the topology does not manage, so set here. */
static void
stream_cap(const char *stream, int64_t max_msgs)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(js_GetStreamInfo(&si, bus_js(admin), stream, NULL, &jerr), NATS_OK);
    si->Config->MaxMsgs = max_msgs;
    si->Config->Discard = max_msgs < 0 ? js_DiscardOld : js_DiscardNew;
    natsStatus ns = js_UpdateStream(NULL, bus_js(admin), si->Config, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    cr_assert_eq(ns, NATS_OK, "cap %s: %s (%d)", stream, natsStatus_GetText(ns), (int)jerr);
    evt_limited = max_msgs >= 0;
}

static void
teardown(void)
{
    if (pg_stopped) {
        tsupport_pg_start();
        pg_stopped = false;
    }
    if (evt_limited)
        stream_cap("LAYBY_EVT", -1);
    tsupport_daemons_finish(procs, LB_COUNTOF(procs));
    if (cmd_stream_changed) {
        bus_topology_opts defaults = BUS_TOPOLOGY_OPTS_INIT;
        for (size_t i = 0; i < bus_topology_n_streams; i++)
            stream_set(i, &defaults);
        cmd_stream_changed = false;
    }
    bus_close(admin);
    admin = NULL;
}

TestSuite(svc_runtime, .init = setup, .fini = teardown, .timeout = 240);

/* --- helpers ----------------------------------------------------------------- */

static void
count_msg(Layby__V1__TestStepDo *m, const char *key, const char *script)
{
    layby__v1__test_step_do__init(m);
    m->saga_id = (char *)key;
    m->script = (char *)script;
}

/* Publishes a count command for key under env; false when JetStream dropped
 * it as a duplicate. */
static bool
send_count_env(const bus_envelope *env, const char *key, const char *script)
{
    Layby__V1__TestStepDo m;
    count_msg(&m, key, script);
    natsMsg *msg = NULL;
    lb_err err;
    cr_assert_eq(bus_msg_new(&msg, SUBJ_COUNT, env, &m.base, &err), LB_OK, "%s", err.msg);
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_PublishMsg(&ack, bus_js(admin), msg, NULL, &jerr);
    cr_assert_eq(ns, NATS_OK, "publish: %s", natsStatus_GetText(ns));
    bool stored = !ack->Duplicate;
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(msg);
    return stored;
}

/* A count command for key under a fresh message id. */
static void
send_count(const char *key, const char *script)
{
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__test_step_do__descriptor, NULL);
    send_count_env(&env, key, script);
}

static void
send_counts(int n, const char *prefix)
{
    char key[64];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s-%d", prefix, i);
        send_count(key, "");
    }
}

/* Publishes raw bytes with the given ids; false when dropped as a duplicate. */
static bool
publish_raw(const char *subject, const char *msg_id, const char *type, const void *body, size_t len)
{
    natsMsg *m = NULL;
    cr_assert_eq(natsMsg_Create(&m, subject, NULL, body, (int)len), NATS_OK);
    natsMsgHeader_Set(m, BUS_H_MSG_ID, msg_id);
    natsMsgHeader_Set(m, BUS_H_TYPE, type);
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(js_PublishMsg(&ack, bus_js(admin), m, NULL, &jerr), NATS_OK);
    bool stored = !ack->Duplicate;
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(m);
    return stored;
}

static uint64_t
stream_msgs(const char *stream)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(js_GetStreamInfo(&si, bus_js(admin), stream, NULL, &jerr), NATS_OK);
    uint64_t n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

typedef struct stream_want {
    const char *stream;
    uint64_t n;
} stream_want;

static bool
stream_has(void *arg)
{
    stream_want *w = arg;
    return stream_msgs(w->stream) >= w->n;
}

static void
wait_stream(const char *stream, uint64_t n)
{
    stream_want w = { stream, n };
    cr_assert(tsupport_poll_until(stream_has, &w, WAIT_MS), "%s never held %llu messages (%llu)",
              stream, (unsigned long long)n, (unsigned long long)stream_msgs(stream));
}

/* The i-th (0-based) message now in a stream (sequences keep growing across purges). */
static natsMsg *
stream_get(const char *stream, uint64_t i)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(js_GetStreamInfo(&si, bus_js(admin), stream, NULL, &jerr), NATS_OK);
    uint64_t first = si->State.FirstSeq;
    jsStreamInfo_Destroy(si);
    natsMsg *m = NULL;
    cr_assert_eq(js_GetMsg(&m, bus_js(admin), stream, first + i, NULL, &jerr), NATS_OK);
    return m;
}

static const char *
header(natsMsg *m, const char *name)
{
    const char *v = NULL;
    cr_assert_eq(natsMsgHeader_Get(m, name, &v), NATS_OK, "no %s header", name);
    return v;
}

/* True when the sagatest durable has nothing pending, unacked or redelivering. */
static bool
consumer_idle(void *arg)
{
    (void)arg;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    if (js_GetConsumerInfo(&ci, bus_js(admin), "LAYBY_CMD", "sagatest", NULL, &jerr) != NATS_OK)
        return false;
    bool idle = ci->NumPending == 0 && ci->NumAckPending == 0;
    jsConsumerInfo_Destroy(ci);
    return idle;
}

static void
wait_idle(void)
{
    cr_assert(tsupport_poll_until(consumer_idle, NULL, WAIT_MS), "sagatest durable never idle");
}

typedef struct metric_want {
    const tsupport_proc *p;
    const char *series;
    long long at_least;
} metric_want;

static bool
metric_reached(void *arg)
{
    metric_want *w = arg;
    return tsupport_metric(w->p->port, w->series) >= w->at_least;
}

static void
wait_metric(const tsupport_proc *p, const char *series, long long at_least)
{
    metric_want w = { p, series, at_least };
    cr_assert(tsupport_poll_until(metric_reached, &w, WAIT_MS), "%s never reached %lld (is %lld)",
              series, at_least, tsupport_metric(p->port, series));
}

static bool
never(void *arg)
{
    (void)arg;
    return false;
}

static void
pause_ms(int ms)
{
    tsupport_poll_until(never, NULL, ms);
}

typedef struct log_want {
    const tsupport_proc *p;
    const char *needle;
    int at_least;
} log_want;

static bool
log_reached(void *arg)
{
    log_want *w = arg;
    return tsupport_log_count(w->p, w->needle) >= w->at_least;
}

/* Every key counted exactly once: n keys, each n = 1. */
static void
assert_each_counted_once(int64_t n)
{
    tsupport_wait_count(WAIT_MS, n, "SELECT count(*) FROM sagatest.counts");
    cr_assert_eq(tsupport_sql_int("SELECT coalesce(sum(n), 0) FROM sagatest.counts"), n,
                 "a command had a second effect");
    cr_assert_eq(tsupport_sql_int("SELECT coalesce(max(n), 0) FROM sagatest.counts"), 1);
}

/* --- the inbox ---------------------------------------------------------------- */

Test(svc_runtime, one_msg_id_delivered_twice_counts_once)
{
    /* A short duplicate window lets the broker store the repeat, so the
     * consumer's inbox, not JetStream, is what must drop it. */
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    o.duplicates_ms = 200;
    stream_set(0, &o);
    tsupport_proc *p = &procs[0];
    tsupport_sagatest_start(p, NULL);
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__test_step_do__descriptor, NULL);
    cr_assert(send_count_env(&env, "twice", ""));
    tsupport_wait_count(WAIT_MS, 1, "SELECT count(*) FROM sagatest.counts");
    bool stored = false;
    for (int i = 0; i < 100 && !stored; i++) {
        stored = send_count_env(&env, "twice", "");
        if (!stored)
            pause_ms(100);
    }
    cr_assert(stored, "the broker never stored the repeat");
    wait_metric(p, M_DUPLICATE, 1);
    wait_idle();
    cr_assert_eq(tsupport_sql_int("SELECT n FROM sagatest.counts WHERE key = 'twice'"), 1,
                 "the repeat was counted again");
    cr_assert_eq(tsupport_metric(p->port, M_HANDLED), 1);
    cr_assert_eq(tsupport_metric(p->port, M_DUPLICATE), 1);
    cr_assert_eq(tsupport_metric(p->port, M_REDELIVER), 0, "two deliveries, not a redelivery");
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM sagatest.outbox");
    cr_assert_eq(stream_msgs("LAYBY_EVT"), 1, "one event, not two");
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* --- crashes ------------------------------------------------------------------ */

static void
setup_crash(void)
{
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    o.ack_wait_ms = 1000; /* a killed daemon's batch comes back soon */
    setup_with(&o);
}

Test(svc_runtime, killed_after_commit_before_ack_counts_once, .init = setup_crash)
{
    tsupport_proc *p = &procs[0];
    const char *fault[] = { "LAYBY_FAULT=svc.after_commit", NULL };
    tsupport_sagatest_start(p, fault);
    send_count("crash", "");
    tsupport_expect_fault_kill(p, WAIT_MS);
    /* Committed before the crash; the ack never left. */
    cr_assert_eq(tsupport_sql_int("SELECT n FROM sagatest.counts WHERE key = 'crash'"), 1);
    tsupport_sagatest_start(p, NULL);
    wait_metric(p, M_DUPLICATE, 1); /* the redelivery arrived and the inbox knew it */
    wait_idle();
    cr_assert_geq(tsupport_metric(p->port, M_REDELIVER), 1);
    cr_assert_eq(tsupport_metric(p->port, M_HANDLED), 0, "nothing was new after the restart");
    cr_assert_eq(tsupport_sql_int("SELECT n FROM sagatest.counts WHERE key = 'crash'"), 1);
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM sagatest.outbox");
    cr_assert_eq(stream_msgs("LAYBY_EVT"), 1);
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

Test(svc_runtime, killed_among_200_commands_counts_each_once, .init = setup_crash)
{
    enum {
        N = 200
    };
    /* All queued first, then taken 8 at a time: the fifth commit is the last. */
    send_counts(N, "k");
    tsupport_proc *p = &procs[0];
    const char *fault[] = { "LAYBY_FAULT=svc.after_commit:5", "LAYBY_SAGATEST_BATCH=8", NULL };
    /* Spawned, not started: with the queue already full it can reach its fifth
     * commit (and die there) before /healthz first answers. */
    tsupport_sagatest_spawn(p, fault);
    tsupport_expect_fault_kill(p, WAIT_MS);
    int64_t done = tsupport_sql_int("SELECT count(*) FROM sagatest.counts");
    cr_assert_lt(done, N, "killed in the middle, not after the end");
    cr_assert_gt(done, 0);
    const char *batch[] = { "LAYBY_SAGATEST_BATCH=8", NULL };
    tsupport_sagatest_start(p, batch);
    assert_each_counted_once(N);
    wait_idle();
    /* The killed batch was committed: its commands came back and were skipped. */
    cr_assert_geq(tsupport_metric(p->port, M_DUPLICATE), 1);
    cr_assert_geq(tsupport_metric(p->port, M_REDELIVER), 1);
    cr_assert_eq(tsupport_metric(p->port, M_HANDLED) + done, N);
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM sagatest.outbox");
    cr_assert_eq(stream_msgs("LAYBY_EVT"), N, "each command's event once");
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* Issue 25: with the durables' default AckWait (what `layby-ctl bus setup`
 * gives production), the batch a killed service held comes back within 5 s
 * of its restart: it used to wait out a 30 s AckWait. */
Test(svc_runtime, a_killed_service_s_batch_comes_back_seconds_after_its_restart)
{
    bus_topology_opts defaults = BUS_TOPOLOGY_OPTS_INIT;
    cr_assert_eq(tsupport_reset_opts()->ack_wait_ms, defaults.ack_wait_ms);
    enum {
        N = 200
    };
    send_counts(N, "k");
    tsupport_proc *p = &procs[0];
    const char *fault[] = { "LAYBY_FAULT=svc.after_commit:5", "LAYBY_SAGATEST_BATCH=8", NULL };
    /* Spawned, not started: with the queue already full it can reach its fifth
     * commit (and die there) before /healthz first answers. */
    tsupport_sagatest_spawn(p, fault);
    tsupport_expect_fault_kill(p, WAIT_MS);
    int64_t done = tsupport_sql_int("SELECT count(*) FROM sagatest.counts");
    cr_assert_lt(done, N, "killed in the middle, not after the end");
    int64_t t0 = lb_mono_us();
    const char *batch[] = { "LAYBY_SAGATEST_BATCH=8", NULL };
    tsupport_sagatest_start(p, batch);
    int64_t ready_us = lb_mono_us();
    wait_metric(p, M_DUPLICATE, 1); /* the killed batch came back and the inbox knew it */
    int64_t ms = (lb_mono_us() - ready_us) / 1000;
    assert_each_counted_once(N);
    fprintf(stderr,
            "recovery: daemon=service ready_ms=%lld back_ms=%lld done_ms=%lld "
            "(back: the killed batch seen again; done: all %d commands counted once)\n",
            (long long)((ready_us - t0) / 1000), (long long)ms,
            (long long)((lb_mono_us() - ready_us) / 1000), N);
    cr_assert_lt(ms, TSUPPORT_RECOVERY_MS, "the killed batch came back %lld ms after the restart",
                 (long long)ms);
    wait_idle();
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM sagatest.outbox");
    cr_assert_eq(stream_msgs("LAYBY_EVT"), N, "each command's event once");
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* A clean stop (SIGTERM) leaves no backlog: svc.c stops the relay, which
 * publishes and deletes what was committed, before the connection closes.
 * The relay is held (LAYBY_FAULT=relay.hold, test builds) so that nothing is
 * published while the service runs: every event in the stream afterwards is
 * the final drain's. A crash leaves the rows to the next start's sweep. */
Test(svc_runtime, a_clean_stop_publishes_every_committed_event_first)
{
    enum {
        N = 50
    };
    tsupport_proc *p = &procs[0];
    const char *hold[] = { "LAYBY_FAULT=relay.hold", NULL };
    tsupport_sagatest_start(p, hold);
    send_counts(N, "drain");
    assert_each_counted_once(N);
    cr_assert_eq(stream_msgs("LAYBY_EVT"), 0, "the held relay published");
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.outbox"), N);
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.outbox"), 0,
                 "rows left in the outbox after a clean stop");
    cr_assert_eq(stream_msgs("LAYBY_EVT"), N, "each committed event published once at the stop");
}

/* The relay deletes what it published from a hand-off itself, many ids a
 * statement, long before the sweep's grace: the sweep is for what a crash or
 * an outage left, and one that had to take these rows would publish each a
 * second time (dropped as a duplicate, but a store and an ack per row). */
Test(svc_runtime, a_hand_off_deletes_its_own_rows_before_any_sweep)
{
    enum {
        N = 50
    };
    tsupport_proc *p = &procs[0];
    tsupport_sagatest_start(p, NULL);
    send_counts(N, "handoff");
    assert_each_counted_once(N);
    wait_stream("LAYBY_EVT", N);
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM sagatest.outbox");
    cr_assert_eq(tsupport_metric(p->port, "layby_outbox_swept_total{service=\"sagatest\"}"), 0,
                 "the sweep took rows a hand-off had published");
    cr_assert_eq(tsupport_metric(p->port, "layby_outbox_published_total{service=\"sagatest\"}"), N);
    cr_assert_eq(stream_msgs("LAYBY_EVT"), N);
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* A handler slower than AckWait (a gateway call, an SMTP conversation) is
 * reported in progress while it runs (svc.c, the progress thread), so the
 * server neither redelivers its message nor spends a delivery on it. */
Test(svc_runtime, a_handler_slower_than_ack_wait_is_in_progress_not_redelivered)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(js_GetConsumerInfo(&ci, bus_js(admin), "LAYBY_CMD", "sagatest", NULL, &jerr),
                 NATS_OK);
    int64_t ack_wait_ms = ci->Config->AckWait / 1000000;
    jsConsumerInfo_Destroy(ci);
    cr_assert_lt(ack_wait_ms, 4500, "the handler must outlast AckWait (%lld ms)",
                 (long long)ack_wait_ms);
    tsupport_proc *p = &procs[0];
    tsupport_sagatest_start(p, NULL);
    send_count("slow", "sleep=4500");
    assert_each_counted_once(1);
    wait_idle();
    cr_assert_gt(tsupport_metric(p->port, "layby_svc_in_progress_total{service=\"sagatest\"}"), 0);
    cr_assert_eq(tsupport_metric(p->port, M_REDELIVER), 0, "the slow command was redelivered");
    cr_assert_eq(tsupport_metric(p->port, M_DUPLICATE), 0);
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM sagatest.outbox");
    cr_assert_eq(stream_msgs("LAYBY_EVT"), 1);
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* Issue 25's per-phase breakdown (layby_svc_phase_seconds, svc_internal.h
 * svc__phase): a batch's time lands in the phase that spent it. One command
 * whose handler sleeps 300 ms: its batch is timed once in every phase, and
 * only the handler's phase took more than 250 ms. */
#define M_PHASE(phase, what) \
    "layby_svc_phase_seconds" what "{service=\"sagatest\",phase=\"" phase "\"}"
#define M_PHASE_LE(phase, le) \
    "layby_svc_phase_seconds_bucket{service=\"sagatest\",phase=\"" phase "\",le=\"" le "\"}"

Test(svc_runtime, a_batch_s_time_is_told_by_phase)
{
    tsupport_proc *p = &procs[0];
    tsupport_sagatest_start(p, NULL);
    send_count("slow", "sleep=300");
    assert_each_counted_once(1);
    wait_idle();
    cr_assert_geq(tsupport_metric(p->port, M_PHASE("fetch", "_count")), 1);
    static const char *const phases[] = { "read", "handle", "write", "commit", "settle" };
    char series[160];
    for (size_t i = 0; i < LB_COUNTOF(phases); i++) {
        snprintf(series, sizeof series, M_PHASE("%s", "_count"), phases[i]);
        cr_assert_eq(tsupport_metric(p->port, series), 1, "%s", series);
    }
    cr_assert_eq(tsupport_metric(p->port, M_PHASE_LE("handle", "0.25")), 0,
                 "the handler's 300 ms are the handle phase's");
    cr_assert_eq(tsupport_metric(p->port, M_PHASE_LE("handle", "0.5")), 1);
    cr_assert_eq(tsupport_metric(p->port, M_PHASE_LE("commit", "0.25")), 1,
                 "the handler's sleep counted in the commit");
    cr_assert_eq(tsupport_metric(p->port, M_PHASE_LE("read", "0.25")), 1);
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* --- failures ----------------------------------------------------------------- */

Test(svc_runtime, a_batch_with_one_failing_message_commits_the_others_one_by_one)
{
    /* Queued before the participant starts, so they arrive as one batch. */
    send_counts(4, "before");
    send_count("bad", "fail");
    send_counts(5, "after");
    tsupport_proc *p = &procs[0];
    const char *env[] = { "LAYBY_MAX_DELIVER=2", NULL };
    tsupport_sagatest_start(p, env);
    assert_each_counted_once(9);
    wait_stream("LAYBY_DLQ", 1);
    wait_idle();
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.counts WHERE key = 'bad'"), 0);
    cr_assert_geq(tsupport_metric(p->port, M_RETRIES), 1, "the batch was split");
    cr_assert_eq(tsupport_metric(p->port, M_HANDLED), 9);
    cr_assert_eq(tsupport_metric(p->port, M_DEAD), 1);
    natsMsg *d = stream_get("LAYBY_DLQ", 0);
    cr_assert_str_eq(header(d, BUS_H_DLQ_DELIVERIES), "2");
    cr_assert(strstr(header(d, BUS_H_DLQ_ERROR), "scripted count failure") != NULL);
    natsMsg_Destroy(d);
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* Issue 16 item 2: a database outage is nobody's message's fault. Commands
 * keep arriving while PostgreSQL is down for 30 s; the batches in hand are
 * held (in progress, so the 3 s AckWait never redelivers them) and run again
 * once it is back. Before the fix each failed attempt spent a delivery and
 * with max-deliver 5 and 50 ms nak delays every held command was dead-lettered
 * within a second. */
Test(svc_runtime, a_postgres_outage_spends_no_deliveries_and_counts_each_once)
{
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    o.ack_wait_ms = 3000;
    setup_with(&o);
    tsupport_proc *p = &procs[0];
    const char *env[] = { "LAYBY_SAGATEST_BATCH=16", NULL };
    tsupport_sagatest_start(p, env);
    int sent = 0;
    char key[64];
    for (; sent < 400; sent++) {
        snprintf(key, sizeof key, "k-%d", sent);
        send_count(key, "");
    }
    tsupport_pg_stop();
    pg_stopped = true;
    /* Under load through the outage: a command every 20 ms for 30 s. */
    int64_t until = lb_mono_us() + 30LL * 1000 * 1000;
    while (lb_mono_us() < until) {
        snprintf(key, sizeof key, "k-%d", sent++);
        send_count(key, "");
        pause_ms(20);
    }
    cr_assert(tsupport_daemon_alive(p), "the participant died during the outage");
    tsupport_pg_start();
    pg_stopped = false;
    assert_each_counted_once(sent);
    wait_idle();
    cr_assert_eq(stream_msgs("LAYBY_DLQ"), 0, "nothing may be dead-lettered");
    cr_assert_eq(tsupport_metric(p->port, M_DEAD), 0);
    cr_assert_geq(tsupport_metric(p->port, M_DB_WAITS), 1, "a batch was held");
    cr_assert_eq(tsupport_metric(p->port, M_REDELIVER), 0,
                 "no delivery was spent: %lld redelivered, %lld dup, %lld handled",
                 tsupport_metric(p->port, M_REDELIVER), tsupport_metric(p->port, M_DUPLICATE),
                 tsupport_metric(p->port, M_HANDLED));
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM sagatest.outbox");
    cr_assert_eq(stream_msgs("LAYBY_EVT"), (uint64_t)sent, "each command's event once");
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* Between two commands every session of the participant ends while idle
 * (pg_terminate_backend, as a PostgreSQL restart does). The next batch's
 * worker sees its session is dead before it sends anything and runs the
 * batch once on a new session (engine/store.c session_dead): no batch held
 * (before, it failed on the dead session and was held 50 ms and run again,
 * which layby_svc_db_waits_total counts) and no delivery spent. */
Test(svc_runtime, a_command_after_the_sessions_are_cut_runs_once_on_a_new_session)
{
    tsupport_proc *p = &procs[0];
    tsupport_sagatest_start(p, NULL);
    send_count("before-cut", "");
    tsupport_wait_count(WAIT_MS, 1, "SELECT count(*) FROM sagatest.counts");
    wait_idle();
    /* The participant runs as the harness's admin role (its own search_path),
     * as this test's session does: every such session but this one. */
    static const char others[] = "FROM pg_stat_activity WHERE usename = current_user "
                                 "AND pid <> pg_backend_pid() AND backend_type = 'client backend'";
    char cut[256];
    snprintf(cut, sizeof cut, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) %s) t",
             others);
    int64_t cut_us = tsupport_sql_int("SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::int8");
    cr_assert_gt(tsupport_sql_int(cut), 0);
    tsupport_wait_count(10000, 0, "SELECT count(*) %s AND backend_start < to_timestamp(%lld / 1e6)",
                        others, (long long)cut_us);
    send_count("after-cut", "");
    tsupport_wait_count(WAIT_MS, 2, "SELECT count(*) FROM sagatest.counts");
    wait_idle();
    cr_assert_eq(tsupport_metric(p->port, M_DB_WAITS), 0,
                 "a batch failed on a dead session and was held");
    cr_assert_eq(tsupport_metric(p->port, M_REDELIVER), 0);
    cr_assert_eq(tsupport_metric(p->port, M_HANDLED), 2);
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* --- dead letters -------------------------------------------------------------- */

/* Issue 16 item 3: two services refuse messages with one Nats-Msg-Id. Each
 * dead letter has an id of its own, so LAYBY_DLQ keeps both (it used to drop
 * the second as a duplicate, and the service then Term'ed the original). */
Test(svc_runtime, two_services_dead_lettering_one_msg_id_keep_both_dead_letters)
{
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    o.duplicates_ms = 200; /* LAYBY_CMD stores the id twice; LAYBY_DLQ keeps its 2 min */
    stream_set(0, &o);
    tsupport_sagatest_start(&procs[0], NULL);
    tsupport_daemon_start(&procs[1], "layby-catalog", 0, NULL, NULL);
    static const char garbage[] = "\xff\xff\xff\xff not protobuf";
    cr_assert(publish_raw("layby.cmd.catalog.create_product", "one-id", "layby.v1.CreateProduct",
                          garbage, sizeof garbage - 1));
    wait_stream("LAYBY_DLQ", 1);
    bool stored = false;
    for (int i = 0; i < 100 && !stored; i++) {
        stored =
            publish_raw(SUBJ_COUNT, "one-id", "layby.v1.TestStepDo", garbage, sizeof garbage - 1);
        if (!stored)
            pause_ms(100);
    }
    cr_assert(stored);
    wait_stream("LAYBY_DLQ", 2);
    natsMsg *a = stream_get("LAYBY_DLQ", 0), *b = stream_get("LAYBY_DLQ", 1);
    cr_assert_str_eq(header(a, BUS_H_DLQ_CONSUMER), "LAYBY_CMD/catalog");
    cr_assert_str_eq(header(b, BUS_H_DLQ_CONSUMER), "LAYBY_CMD/sagatest");
    cr_assert_str_eq(header(a, BUS_H_DLQ_ORIGINAL_ID), "one-id");
    cr_assert_str_eq(header(b, BUS_H_DLQ_ORIGINAL_ID), "one-id");
    cr_assert_str_neq(header(a, BUS_H_MSG_ID), "one-id");
    cr_assert_str_neq(header(a, BUS_H_MSG_ID), header(b, BUS_H_MSG_ID));
    natsMsg_Destroy(a);
    natsMsg_Destroy(b);
    wait_idle();
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* LAYBY_DLQ cannot take the dead letter (its stream is gone): the message is
 * nak'd, not Term'ed, and lands there once the stream is back. */
Test(svc_runtime, a_dead_letter_that_cannot_be_stored_is_kept_until_it_can)
{
    tsupport_proc *p = &procs[0];
    tsupport_sagatest_start(p, NULL);
    jsErrCode jerr = 0;
    cr_assert_eq(js_DeleteStream(bus_js(admin), "LAYBY_DLQ", NULL, &jerr), NATS_OK);
    cmd_stream_changed = true; /* teardown recreates it whatever happens */
    static const char garbage[] = "\xff\xff not protobuf";
    cr_assert(publish_raw(SUBJ_COUNT, "dead-but-kept", "layby.v1.TestStepDo", garbage,
                          sizeof garbage - 1));
    log_want fail = { p, "\"svc.dead_letter_failed\"", 2 };
    cr_assert(tsupport_poll_until(log_reached, &fail, WAIT_MS), "the DLQ publish never failed");
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    stream_set(2, &o);
    wait_stream("LAYBY_DLQ", 1);
    wait_idle();
    natsMsg *d = stream_get("LAYBY_DLQ", 0);
    cr_assert_str_eq(header(d, BUS_H_DLQ_ORIGINAL_ID), "dead-but-kept");
    natsMsg_Destroy(d);
    cr_assert_eq(tsupport_metric(p->port, M_DEAD), 1);
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* Issue 16 item 6: an operator recreates the durable with a lower MaxDeliver.
 * Every worker rebinds and must dead-letter by the new value; each used to
 * keep the one read at start, so a failing message stopped coming back at the
 * server's limit without ever reaching LAYBY_DLQ. */
Test(svc_runtime, a_rebound_durable_s_max_deliver_applies_to_every_worker)
{
    tsupport_proc *p = &procs[0];
    /* Long fetches, so each deletion below finds both workers' pull requests
     * waiting and fails them (a worker binds again after five failures in a
     * row; a fetch that times out in between would reset its count). */
    const char *env[] = { "LAYBY_SAGATEST_WORKERS=2", "LAYBY_MAX_DELIVER=5", "LAYBY_FETCH_WAIT=10s",
                          NULL };
    tsupport_sagatest_start(p, env);
    bus_topology_opts o = *tsupport_reset_opts();
    o.max_deliver = 2;
    static const bus_topology_consumer c = { "LAYBY_CMD", "sagatest", "layby.cmd.sagatest.>",
                                             "layby-sagatest" };
    for (int round = 1; round <= 5; round++) {
        pause_ms(500); /* both workers are back in a fetch after their 200 ms pause */
        cr_assert_eq(js_DeleteConsumer(bus_js(admin), c.stream, c.durable, NULL, NULL), NATS_OK);
        bus_topology_change ch;
        lb_err err;
        cr_assert_eq(bus_topology_consumer_apply(&ch, bus_js(admin), &c, &o, &err), LB_OK, "%s",
                     err.msg);
        log_want failed = { p, "\"svc.fetch_failed\"", 2 * round };
        cr_assert(tsupport_poll_until(log_reached, &failed, WAIT_MS),
                  "round %d: the workers' fetches did not fail", round);
    }
    log_want rebound = { p, "\"svc.rebound\"", 2 };
    cr_assert(tsupport_poll_until(log_reached, &rebound, WAIT_MS), "the workers never rebound");
    send_count("always-fails", "fail");
    wait_stream("LAYBY_DLQ", 1);
    natsMsg *d = stream_get("LAYBY_DLQ", 0);
    cr_assert_str_eq(header(d, BUS_H_DLQ_DELIVERIES), "2");
    natsMsg_Destroy(d);
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* --- housekeeping and the relay ------------------------------------------------- */

/* The relay prunes inbox ids older than --inbox-keep, in rounds of 1000, and
 * nothing younger (a pruned id that comes back is handled again). */
Test(svc_runtime, inbox_pruning_deletes_what_is_old_enough_and_nothing_else)
{
    tsupport_sql("INSERT INTO sagatest.inbox (msg_id, received_at) SELECT 'old-' || i, "
                 "now() - interval '2 hours' FROM generate_series(1, 2500) i");
    tsupport_sql("INSERT INTO sagatest.inbox (msg_id, received_at) SELECT 'young-' || i, "
                 "now() - interval '50 minutes' FROM generate_series(1, 100) i");
    tsupport_proc *p = &procs[0];
    const char *env[] = { "LAYBY_INBOX_KEEP=1h", NULL };
    tsupport_sagatest_start(p, env);
    tsupport_wait_count(WAIT_MS, 0,
                        "SELECT count(*) FROM sagatest.inbox WHERE msg_id LIKE 'old-%%'");
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.inbox"), 100,
                 "ids younger than the keep were pruned too");
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* The inbox is analyzed rarely (sql/shared), so the prune's plan must need
 * no statistics. Without ORDER BY, `received_at < ... LIMIT 1000` on a table
 * with none is guessed to match a third of it and read in the heap's order:
 * a large inbox was read whole for ids not old enough (150 ms a prune of a
 * 200,000-id one); and `msg_id IN (SELECT ...)` hash-joined the whole table
 * below ~100,000 ids. Here the old ids lie behind 30,000 young ones, and
 * the prune must find them by index. */
Test(svc_runtime, inbox_pruning_reads_by_index_on_a_table_never_analyzed)
{
    tsupport_sql("INSERT INTO sagatest.inbox (msg_id, received_at) SELECT 'young-' || i, "
                 "now() - interval '1 minute' FROM generate_series(1, 30000) i");
    tsupport_sql("INSERT INTO sagatest.inbox (msg_id, received_at) SELECT 'old-' || i, "
                 "now() - interval '2 hours' FROM generate_series(1, 1500) i");
    tsupport_sql("DELETE FROM pg_statistic WHERE starelid = 'sagatest.inbox'::regclass");
    tsupport_table_stats before = tsupport_table_stats_get("sagatest.inbox");
    const char *env[] = { "LAYBY_INBOX_KEEP=1h", NULL };
    tsupport_sagatest_start(&procs[0], env);
    tsupport_table_stats after =
        tsupport_table_stats_wait("sagatest.inbox", before.deleted + 1500, WAIT_MS);
    cr_assert_eq(after.deleted - before.deleted, 1500, "the prune's deletes were not counted");
    cr_assert_eq(after.seq_scans, before.seq_scans, "the prune read the inbox whole (%lld -> %lld)",
                 (long long)before.seq_scans, (long long)after.seq_scans);
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.inbox"), 30000,
                 "the old ids, and only they, were pruned");
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM pg_statistic"
                                  " WHERE starelid = 'sagatest.inbox'::regclass"),
                 0, "the inbox was analyzed meanwhile: the test proves nothing");
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* Inserts n outbox rows of the participant in one transaction, created age_s
 * seconds ago, shaped as its handler writes them (a layby.evt.sagatest.counted
 * event each, ids from gen_random_uuid: any uuid will do for the relay). */
static void
outbox_rows_insert(int n, int age_s)
{
    Layby__V1__TestStepDone ev = LAYBY__V1__TEST_STEP_DONE__INIT;
    ev.saga_id = "from-the-outbox";
    uint8_t body[256];
    size_t len = layby__v1__test_step_done__pack(&ev, body);
    char hex[600], sql[1400];
    for (size_t i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", body[i]);
    snprintf(sql, sizeof sql,
             "INSERT INTO sagatest.outbox (id, subject, msg_type, correlation, causation, actor, "
             "reply, traceparent, body, created_at) SELECT gen_random_uuid(), "
             "'layby.evt.sagatest.counted', 'layby.v1.TestStepDone', 'c', '', '', '', '', "
             "'\\x%s', now() - make_interval(secs => %d) FROM generate_series(1, %d)",
             hex, age_s, n);
    tsupport_sql(sql);
}

/* A backlog (the relay was away, or NATS was) is swept by primary key: each
 * claim walks the id index for its LIMIT and deletes those ids, whatever
 * the planner thinks of a table never analyzed (the outbox is analyzed
 * rarely, sql/shared). `id IN (SELECT ... FOR UPDATE SKIP LOCKED)` was
 * planned as a hash join over the whole outbox there: every claim read the
 * table whole, so draining a backlog cost its size squared. */
Test(svc_runtime, a_swept_backlog_is_claimed_by_index_on_a_table_never_analyzed)
{
    enum {
        N = 20000
    };
    /* Nor vacuumed: a VACUUM mid-drain (the deletes make one due) tells the
     * planner how few rows are left, and a plan rebuilt from that may scan a
     * table it knows is small; that is a fair choice, not the one tested. */
    tsupport_sql("ALTER TABLE sagatest.outbox SET (autovacuum_enabled = false)");
    outbox_rows_insert(N, 60);
    tsupport_sql("DELETE FROM pg_statistic WHERE starelid = 'sagatest.outbox'::regclass");
    tsupport_table_stats before = tsupport_table_stats_get("sagatest.outbox");
    tsupport_sagatest_start(&procs[0], NULL);
    tsupport_table_stats after =
        tsupport_table_stats_wait("sagatest.outbox", before.deleted + N, WAIT_MS * 3);
    cr_assert_eq(after.deleted - before.deleted, N, "the sweep's deletes were not counted");
    wait_stream("LAYBY_EVT", N);
    cr_assert_eq(after.seq_scans, before.seq_scans,
                 "the sweep read the outbox whole (%lld -> %lld sequential scans)",
                 (long long)before.seq_scans, (long long)after.seq_scans);
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM pg_statistic"
                                  " WHERE starelid = 'sagatest.outbox'::regclass"),
                 0, "the outbox was analyzed meanwhile: the test proves nothing");
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* Three relays sweep one outbox at once: each row is claimed by one of them
 * and published once. The claim's DELETE makes it one: a second sweep's
 * DELETE of a row waits for the first and then finds it gone (without SKIP
 * LOCKED, which only spares that wait, this test still passes).
 * LAYBY_EVT's duplicate window is cut to 100 ms so a row published by two
 * sweeps would show as two. */
Test(svc_runtime, three_relays_sweeping_at_once_publish_each_row_once)
{
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    o.duplicates_ms = 100;
    stream_set(1, &o);
    enum {
        N = 600
    };
    for (size_t i = 0; i < 3; i++) {
        char inst[32];
        snprintf(inst, sizeof inst, "LAYBY_INSTANCE=%zu", i);
        const char *env[] = { inst, "LAYBY_RELAY_SWEEP=10ms", NULL };
        tsupport_sagatest_start(&procs[i], env);
    }
    outbox_rows_insert(N, 60); /* one commit: all three sweeps find them at once */
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM sagatest.outbox");
    wait_stream("LAYBY_EVT", N);
    pause_ms(500); /* a late second publish would land now */
    cr_assert_eq(stream_msgs("LAYBY_EVT"), N, "a row was published twice");
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

static bool
a_batch_waits_on_the_lock(void *arg)
{
    (void)arg;
    return tsupport_sql_int("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND query LIKE '%sagatest.counts%'") > 0;
}

static bool
handed_over_rows_wait(void *arg)
{
    return tsupport_sql_int("SELECT count(*) FROM sagatest.outbox") > *(int64_t *)arg;
}

/* nats-server goes away while the relay holds rows handed over by a commit
 * and rows older than the sweep's grace wait in the outbox. Once it is back
 * each row is published exactly once: nothing lost, nothing twice. To have a
 * commit land inside the outage every time, a lock holds the participant's
 * batch in its transaction until the server is down. */
Test(svc_runtime, a_nats_outage_loses_no_outbox_row_and_doubles_none, .init = setup_crash)
{
    enum {
        N = 400,
        OLD = 50
    };
    tsupport_proc *p = &procs[0];
    const char *env[] = { "LAYBY_SAGATEST_BATCH=16", NULL };
    tsupport_sagatest_start(p, env); /* before the lock: preparing its INSERT needs the table */
    PGconn *locker = PQconnectdb(tsupport_env_req("LAYBY_TEST_PG_ADMIN_URL"));
    cr_assert_eq(PQstatus(locker), CONNECTION_OK);
    PGresult *r = PQexec(locker, "BEGIN; LOCK TABLE sagatest.counts IN EXCLUSIVE MODE");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(locker));
    PQclear(r);
    send_counts(N, "k");
    cr_assert(tsupport_poll_until(a_batch_waits_on_the_lock, NULL, WAIT_MS));
    tsupport_nats_stop();
    PQclear(PQexec(locker, "COMMIT"));
    PQfinish(locker);
    outbox_rows_insert(OLD, 60);
    int64_t old = OLD;
    cr_assert(tsupport_poll_until(handed_over_rows_wait, &old, WAIT_MS),
              "the held batch's rows never waited for the relay");
    tsupport_nats_start();
    assert_each_counted_once(N);
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM sagatest.outbox");
    wait_stream("LAYBY_EVT", N + OLD);
    pause_ms(500);
    cr_assert_eq(stream_msgs("LAYBY_EVT"), N + OLD, "each row exactly once");
    cr_assert(tsupport_daemon_alive(p));
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}

/* The sweep's publish fails part-way: LAYBY_EVT takes CAP messages and
 * refuses the rest (max-msgs with discard new), so each sweep of the N old
 * rows gets CAP acks and N - CAP refusals. The sweep must roll its claim back
 * (the DELETE ... RETURNING of every row it tried), not commit it: a row is
 * deleted only once JetStream stored it. Once the cap is lifted each row is
 * published exactly once: the CAP already stored come again under their ids
 * and the duplicate window drops them. No hand-off is involved (the rows are
 * inserted by SQL, older than the sweep's grace). */
Test(svc_runtime, a_sweep_whose_publish_fails_keeps_every_row_and_publishes_each_once)
{
    enum {
        N = 50,
        CAP = 10
    };
    stream_cap("LAYBY_EVT", CAP);
    tsupport_proc *p = &procs[0];
    const char *env[] = { "LAYBY_RELAY_SWEEP=100ms", NULL };
    tsupport_sagatest_start(p, env);
    outbox_rows_insert(N, 60);
    /* Two failed sweeps: the rows survived the first, or the second had none. */
    log_want failed = { p, "\"outbox.sweep_failed\"", 2 };
    cr_assert(tsupport_poll_until(log_reached, &failed, WAIT_MS), "no sweep failed twice");
    cr_assert_eq(stream_msgs("LAYBY_EVT"), CAP, "the stream took more than its cap");
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.outbox"), N,
                 "a failed sweep deleted rows JetStream did not store");
    stream_cap("LAYBY_EVT", -1);
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM sagatest.outbox");
    wait_stream("LAYBY_EVT", N);
    pause_ms(500); /* a late second publish would land now */
    cr_assert_eq(stream_msgs("LAYBY_EVT"), N, "a row was published twice");
    cr_assert(tsupport_daemon_alive(p));
    tsupport_daemons_stop_checked(procs, LB_COUNTOF(procs));
}
