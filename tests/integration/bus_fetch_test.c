/* bus_fetch_test.c - bus_fetch() (engine/bus.h) against the real nats-server:
 * a fetch never returns more than it asked for, even when earlier pull
 * requests left more messages waiting in the subscription than half the batch
 * (nats.c 3.4's natsSubscription_Fetch() then wrote past its array: heap
 * corruption, and the daemon died later in natsMsg_Destroy()); and every
 * message still arrives exactly once. */
#include <criterion/criterion.h>
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
    int len = snprintf(req, sizeof req, "{\"batch\":%d,\"expires\":5000000000}", batch);
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
        lb_status st = bus_fetch(&list, sub, 128, 500, &err);
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
