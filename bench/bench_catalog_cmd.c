/* bench_catalog_cmd.c - commands handled per second through the catalog:
 * publish CreateProduct to LAYBY_CMD (async) -> catalog: inbox + row + outbox
 * in one transaction -> relay publishes ProductCreated -> we receive it.
 *
 * --rate 0 publishes as fast as JetStream takes them and reports the
 * end-to-end throughput (first publish to last event); --rate R paces the
 * publishes at R/s and reports p50/p99 of publish-to-event latency.
 * The sample index rides in the product name, so no lookup table is needed. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "engine/id.h"
#include "engine/subjects.h"
#include "layby/v1/catalog.pb-c.h"

typedef struct run {
    int64_t count;
    int64_t *sent_us; /* publish time per index */
    int64_t *recv_us; /* event time per index, 0 until seen */
    atomic_long seen;
    long long tag; /* per run, so events of earlier runs are ignored */
} run;

static void
on_event(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc;
    (void)sub;
    run *r = closure;
    Layby__V1__ProductCreated *ev = layby__v1__product_created__unpack(
        NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
    if (ev != NULL && ev->product != NULL) {
        long long tag = 0, idx = -1;
        if (sscanf(ev->product->name, "bench-%lld-%lld", &tag, &idx) == 2 && tag == r->tag &&
            idx >= 0 && idx < r->count && r->recv_us[idx] == 0) {
            r->recv_us[idx] = lb_mono_us();
            atomic_fetch_add(&r->seen, 1);
        }
        layby__v1__product_created__free_unpacked(ev, NULL);
    }
    natsMsg_Destroy(m);
}

int
main(int argc, char **argv)
{
    int64_t count = 20000, rate = 0, timeout_s = 120;
    const bench_flag flags[] = {
        { "count", &count, "commands to send" },
        { "rate", &rate, "commands per second (0 = as fast as possible)" },
        { "timeout", &timeout_s, "seconds to wait for the events" },
    };
    if (bench_flags(argc, argv, flags, LB_COUNTOF(flags)) != 0)
        return 2;
    lb_err err;
    bus *b = NULL;
    if (bench_open(&b, &err) != LB_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    run r = { .count = count, .tag = (long long)lb_now_ms() };
    r.sent_us = calloc((size_t)count, sizeof *r.sent_us);
    r.recv_us = calloc((size_t)count, sizeof *r.recv_us);
    natsSubscription *sub = NULL;
    natsConnection_Subscribe(&sub, bus_conn(b), SUBJ_PRODUCT_CREATED, on_event, &r);
    natsSubscription_SetPendingLimits(sub, -1, -1);
    natsConnection_Flush(bus_conn(b));

    Layby__V1__ProductDraft d = LAYBY__V1__PRODUCT_DRAFT__INIT;
    Layby__V1__CreateProduct c = LAYBY__V1__CREATE_PRODUCT__INIT;
    char name[64], pid[ID_STR_LEN];
    d.name = name;
    d.price = 129000;
    d.details = "benchmark product";
    d.category = "bench";
    d.stock = 100;
    c.draft = &d;
    c.product_id = pid;
    int64_t t0 = lb_mono_us();
    for (int64_t i = 0; i < count; i++) {
        bench_pace(t0, i, rate);
        snprintf(name, sizeof name, "bench-%lld-%lld", r.tag, (long long)i);
        id_new(pid);
        bus_envelope env;
        bus_envelope_init(&env, &layby__v1__create_product__descriptor, NULL);
        natsMsg *m = NULL;
        if (bus_msg_new(&m, SUBJ_CATALOG_CREATE_PRODUCT, &env, &c.base, &err) != LB_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        r.sent_us[i] = lb_mono_us();
        natsStatus s = js_PublishMsgAsync(bus_js(b), &m, NULL);
        if (s != NATS_OK) {
            natsMsg_Destroy(m);
            fprintf(stderr, "bench: publish: %s\n", natsStatus_GetText(s));
            return 1;
        }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    js_PublishAsyncComplete(bus_js(b), &po);
    char extra[48];
    snprintf(extra, sizeof extra, " publish_s=%.3f", (double)(lb_mono_us() - t0) / 1e6);
    long seen = bench_finish("catalog_cmd", count, rate, t0, r.sent_us, r.recv_us, &r.seen,
                             timeout_s, extra);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    free(r.sent_us);
    free(r.recv_us);
    bus_close(b);
    return seen == count ? 0 : 1;
}
