/* bus_fetch_test.c - bus_fetch() (engine/bus.h) against the real nats-server:
 * a fetch never returns more than it asked for, even when earlier pull
 * requests left messages waiting in the subscription (nats.c 3.4's
 * natsSubscription_Fetch() then wrote past its array: heap corruption, and
 * the daemon died later), whether more than half a batch waits or a status
 * message (408) waits among them; fetches while nats-server is away leave no
 * pull requests in the reconnect buffer to be answered all at once after it
 * (the chaos run's twin orchestrator died of SIGSEGV after a restart); and
 * every message still arrives exactly once. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bus.h"
#include "tsupport.h"

#define DURABLE "fetchtest"
#define SUBJECT "layby.cmd.fetchtest.x"
#define N       400

static bus *admin;
static natsSubscription *sub;

static void
setup(void)
{
    tsupport_reset();
    admin = tsupport_admin_bus("fetch-test");
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = DURABLE;
    cc.FilterSubject = "layby.cmd.fetchtest.>";
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = 60LL * 1000 * 1000 * 1000;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(js_AddConsumer(&ci, bus_js(admin), "LAYBY_CMD", &cc, NULL, &jerr), NATS_OK,
                 "add consumer: %d", (int)jerr);
    jsConsumerInfo_Destroy(ci);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = "LAYBY_CMD";
    so.Consumer = DURABLE;
    so.ManualAck = true;
    cr_assert_eq(js_PullSubscribe(&sub, bus_js(admin), NULL, DURABLE, NULL, &so, &jerr), NATS_OK);
}

static void
teardown(void)
{
    tsupport_nats_start(); /* a test that failed while it was away */
    natsSubscription_Destroy(sub);
    sub = NULL;
    js_DeleteConsumer(bus_js(admin), "LAYBY_CMD", DURABLE, NULL, NULL);
    bus_close(admin);
    admin = NULL;
}

TestSuite(bus_fetch, .init = setup, .fini = teardown, .timeout = 60);

static void
publish_n(int n)
{
    for (int i = 0; i < n; i++) {
        char body[16];
        int len = snprintf(body, sizeof body, "%d", i);
        cr_assert_eq(js_PublishAsync(bus_js(admin), SUBJECT, body, len, NULL), NATS_OK);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 10000;
    cr_assert_eq(js_PublishAsyncComplete(bus_js(admin), &po), NATS_OK);
}

/* A pull request of our own, answered into the subscription's inbox, as the
 * requests a fetch leaves open on the server are. */
static void
pull_request(int batch)
{
    char subj[128], req[64];
    snprintf(subj, sizeof subj, "$JS.API.CONSUMER.MSG.NEXT.LAYBY_CMD.%s", DURABLE);
    int len = snprintf(req, sizeof req, "{\"batch\":%d,\"expires\":30000000000}", batch);
    cr_assert_eq(natsConnection_PublishRequest(bus_conn(admin), subj,
                                               natsSubscription_GetSubject(sub), req, len),
                 NATS_OK);
}

static bool
pending_at_least(void *arg)
{
    int msgs = 0, bytes = 0;
    natsSubscription_GetPending(sub, &msgs, &bytes);
    return msgs >= *(int *)arg;
}

Test(bus_fetch, never_returns_more_than_the_batch_when_many_messages_wait)
{
    publish_n(N);
    /* 100 messages wait in the subscription (more than half of a batch of
     * 128), and a second request is still open on the server. */
    pull_request(100);
    int want = 100;
    cr_assert(tsupport_poll_until(pending_at_least, &want, 10000));
    pull_request(150);
    bool seen[N] = { false };
    int total = 0;
    for (int round = 0; round < 50 && total < N; round++) {
        natsMsgList list = { 0 };
        lb_err err;
        lb_status st = bus_fetch(&list, admin, sub, 128, 500, &err);
        if (st == LB_ERR_TIMEOUT)
            continue;
        cr_assert_eq(st, LB_OK, "%s", err.msg);
        cr_assert_leq(list.Count, 128, "a fetch of 128 returned %d messages", list.Count);
        for (int i = 0; i < list.Count; i++) {
            int k = atoi(natsMsg_GetData(list.Msgs[i]));
            cr_assert(k >= 0 && k < N);
            cr_assert(!seen[k], "message %d delivered twice", k);
            seen[k] = true;
            natsMsg_Ack(list.Msgs[i], NULL);
            total++;
        }
        natsMsgList_Destroy(&list);
    }
    cr_assert_eq(total, N, "every message arrives once");
}

/* Publishes n messages numbered from first after a pause (a thread of its own). */
typedef struct trickle {
    int first, n, after_ms;
} trickle;

static void *
trickle_main(void *arg)
{
    trickle *t = arg;
    struct timespec ts = { t->after_ms / 1000, (t->after_ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
    bus *b = tsupport_admin_bus("fetch-test-publisher");
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 10000;
    for (int i = 0; i < t->n; i++) {
        char body[16];
        int len = snprintf(body, sizeof body, "%d", t->first + i);
        js_PublishAsync(bus_js(b), SUBJECT, body, len, NULL);
    }
    js_PublishAsyncComplete(bus_js(b), &po);
    bus_close(b);
    return NULL;
}

/* Takes messages until want new ones came or rounds run out; checks each
 * fetch's size and, unless dup_ok, that no message comes twice (a killed
 * nats-server may forget acks it had not written: those come again). Returns
 * how many new ones came. */
static int
take(int want, int batch, int64_t wait_ms, bool *seen, int n_seen, bool dup_ok)
{
    int total = 0;
    for (int round = 0; round < 400 && total < want; round++) {
        natsMsgList list = { 0 };
        lb_err err;
        lb_status st = bus_fetch(&list, admin, sub, batch, wait_ms, &err);
        if (st == LB_ERR_TIMEOUT)
            continue;
        if (st != LB_OK) { /* nats-server away for a moment */
            struct timespec ts = { 0, 50 * 1000 * 1000 };
            nanosleep(&ts, NULL);
            continue;
        }
        cr_assert_leq(list.Count, batch, "a fetch of %d returned %d messages", batch, list.Count);
        for (int i = 0; i < list.Count; i++) {
            int k = atoi(natsMsg_GetData(list.Msgs[i]));
            cr_assert(k >= 0 && k < n_seen);
            cr_assert(dup_ok || !seen[k], "message %d delivered twice", k);
            total += !seen[k];
            seen[k] = true;
            natsMsg_Ack(list.Msgs[i], NULL);
        }
        natsMsgList_Destroy(&list);
    }
    return total;
}

/* What waits counts a status message (the 408 ending a pull request) that
 * Fetch does not take: 36 messages and a 408 wait, so a fetch of those 37
 * got 36 and then asked for 1 more, while another open request's answers
 * streamed in (nats.c 3.4 wrote them all past its array of 37). */
Test(bus_fetch, never_returns_more_than_the_batch_when_a_status_message_waits)
{
    enum {
        M = 136
    };
    static bool seen[M];
    publish_n(36);
    char subj[128];
    snprintf(subj, sizeof subj, "$JS.API.CONSUMER.MSG.NEXT.LAYBY_CMD.%s", DURABLE);
    cr_assert_eq(natsConnection_PublishRequestString(bus_conn(admin), subj,
                                                     natsSubscription_GetSubject(sub),
                                                     "{\"batch\":40,\"expires\":200000000}"),
                 NATS_OK);
    int want = 37; /* 36 messages, then the 408 when the request expires */
    cr_assert(tsupport_poll_until(pending_at_least, &want, 10000));
    pull_request(100); /* open: takes the next 100 */
    trickle t = { .first = 36, .n = 100, .after_ms = 50 };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, trickle_main, &t), 0);
    int total = take(M, 64, 500, seen, M, false);
    pthread_join(th, NULL);
    cr_assert_eq(total, M, "every message arrives once");
}

static bool
admin_is(void *arg)
{
    return bus_connected(admin) == *(bool *)arg;
}

/* Fetches while nats-server is away must not leave pull requests in the
 * reconnect buffer: all of them were answered at once after it, a batch
 * each, into the subscription (the stream that killed the chaos run's twin
 * orchestrator once a fetch ran into it). */
Test(bus_fetch, sends_no_pull_request_while_disconnected)
{
    static bool seen[N];
    publish_n(N);
    tsupport_nats_stop();
    bool want = false;
    cr_assert(tsupport_poll_until(admin_is, &want, 10000), "the bus did not notice");
    for (int i = 0; i < 5; i++) {
        natsMsgList list = { 0 };
        lb_err err;
        cr_expect_neq(bus_fetch(&list, admin, sub, 64, 100, &err), LB_OK);
        natsMsgList_Destroy(&list);
    }
    tsupport_nats_start();
    want = true;
    cr_assert(tsupport_poll_until(admin_is, &want, 15000), "the bus did not reconnect");
    struct timespec ts = { 0, 500 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    int waiting = 0, bytes = 0;
    natsSubscription_GetPending(sub, &waiting, &bytes);
    cr_expect_eq(waiting, 0, "%d messages came unasked after the reconnect", waiting);
    cr_assert_eq(take(N, 64, 500, seen, N, true), N, "every message arrives");
}
