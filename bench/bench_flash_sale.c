/* bench_flash_sale.c - stock reservations through the catalog's command path:
 * one volley of --buyers ReserveStock commands (one unit each, distinct
 * orders) spread over --products products of --units units each, published
 * asynchronously at once; we listen to layby.evt.stock.> and report the time
 * from the first publish to the last decision, decisions per second and how
 * many were reserved, refused out_of_stock, or anything else.
 *
 *   flash sale:   --buyers 2000 --products 1 --units 100
 *   hot:          --buyers 4000 --products 1 --units 4000   (all succeed, one row)
 *   uncontended:  --buyers 4000 --products 4000 --units 1   (all succeed, one row each)
 *
 * The buyer's index rides in the command's `step` field, which the catalog
 * echoes in its answer, so no lookup table is needed. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "engine/id.h"
#include "engine/subjects.h"
#include "layby/v1/catalog.pb-c.h"

typedef struct run {
    int64_t buyers, products;
    char (*pids)[ID_STR_LEN];
    atomic_long created;
    int64_t *sent_us, *recv_us;
    atomic_long seen, reserved, rejected, other;
    char tag[ID_STR_LEN]; /* saga_id of this run's commands */
} run;

static void
on_created(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc;
    (void)sub;
    atomic_fetch_add(&((run *)closure)->created, 1);
    natsMsg_Destroy(m);
}

/* StockReserved and StockRejected both start saga_id, step: decode as the
 * one the subject names. */
static void
on_stock(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc;
    (void)sub;
    run *r = closure;
    const char *subj = natsMsg_GetSubject(m);
    const uint8_t *data = (const uint8_t *)natsMsg_GetData(m);
    size_t len = (size_t)natsMsg_GetDataLength(m);
    const char *saga = NULL;
    uint32_t idx = UINT32_MAX;
    atomic_long *bucket = &r->other;
    ProtobufCMessage *msg = NULL;
    if (strcmp(subj, SUBJ_STOCK_RESERVED) == 0) {
        Layby__V1__StockReserved *ev = layby__v1__stock_reserved__unpack(NULL, len, data);
        if (ev != NULL) {
            saga = ev->saga_id, idx = ev->step, msg = &ev->base;
            bucket = &r->reserved;
        }
    } else if (strcmp(subj, SUBJ_STOCK_REJECTED) == 0) {
        Layby__V1__StockRejected *ev = layby__v1__stock_rejected__unpack(NULL, len, data);
        if (ev != NULL) {
            saga = ev->saga_id, idx = ev->step, msg = &ev->base;
            bucket = strcmp(ev->code, "out_of_stock") == 0 ? &r->rejected : &r->other;
        }
    }
    if (saga != NULL && strcmp(saga, r->tag) == 0 && idx < r->buyers && r->recv_us[idx] == 0) {
        r->recv_us[idx] = lb_mono_us();
        atomic_fetch_add(bucket, 1);
        atomic_fetch_add(&r->seen, 1);
    }
    if (msg != NULL)
        protobuf_c_message_free_unpacked(msg, NULL);
    natsMsg_Destroy(m);
}

static int
products_create(run *r, bus *b, int64_t units, int64_t timeout_s)
{
    Layby__V1__ProductDraft d = LAYBY__V1__PRODUCT_DRAFT__INIT;
    Layby__V1__CreateProduct c = LAYBY__V1__CREATE_PRODUCT__INIT;
    d.name = "flash sale item";
    d.price = 49000;
    d.details = "bench";
    d.category = "bench";
    d.stock = units;
    c.draft = &d;
    for (int64_t i = 0; i < r->products; i++) {
        id_new(r->pids[i]);
        c.product_id = r->pids[i];
        bus_envelope env;
        bus_envelope_init(&env, &layby__v1__create_product__descriptor, NULL);
        natsMsg *m = NULL;
        lb_err err;
        if (bus_msg_new(&m, SUBJ_CATALOG_CREATE_PRODUCT, &env, &c.base, &err) != LB_OK ||
            js_PublishMsgAsync(bus_js(b), &m, NULL) != NATS_OK) {
            natsMsg_Destroy(m);
            fprintf(stderr, "bench: create product failed\n");
            return 1;
        }
    }
    int64_t deadline = lb_mono_us() + timeout_s * 1000000;
    while (atomic_load(&r->created) < r->products && lb_mono_us() < deadline)
        nats_Sleep(20);
    return atomic_load(&r->created) < r->products;
}

int
main(int argc, char **argv)
{
    int64_t buyers = 2000, products = 1, units = 100, timeout_s = 120;
    const bench_flag flags[] = {
        { "buyers", &buyers, "reservations (one unit, one order each)" },
        { "products", &products, "products they are spread over (round robin)" },
        { "units", &units, "stock of each product" },
        { "timeout", &timeout_s, "seconds to wait for the decisions" },
    };
    if (bench_flags(argc, argv, flags, LB_COUNTOF(flags)) != 0)
        return 2;
    lb_err err;
    bus *b = NULL;
    if (bench_open(&b, &err) != LB_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    run r = { .buyers = buyers, .products = products };
    r.pids = calloc((size_t)products, sizeof *r.pids);
    r.sent_us = calloc((size_t)buyers, sizeof *r.sent_us);
    r.recv_us = calloc((size_t)buyers, sizeof *r.recv_us);
    id_new(r.tag);
    natsSubscription *s1 = NULL, *s2 = NULL;
    natsConnection_Subscribe(&s1, bus_conn(b), SUBJ_PRODUCT_CREATED, on_created, &r);
    natsConnection_Subscribe(&s2, bus_conn(b), "layby.evt.stock.>", on_stock, &r);
    natsSubscription_SetPendingLimits(s1, -1, -1);
    natsSubscription_SetPendingLimits(s2, -1, -1);
    natsConnection_Flush(bus_conn(b));
    if (products_create(&r, b, units, timeout_s) != 0) {
        fprintf(stderr, "bench: products were not created in time\n");
        return 1;
    }

    Layby__V1__StockLine line = LAYBY__V1__STOCK_LINE__INIT, *lp = &line;
    line.quantity = 1;
    Layby__V1__ReserveStock cmd = LAYBY__V1__RESERVE_STOCK__INIT;
    char order[ID_STR_LEN];
    cmd.saga_id = r.tag;
    cmd.attempt = 1;
    cmd.order_id = order;
    cmd.n_lines = 1;
    cmd.lines = &lp;
    int64_t t0 = lb_mono_us();
    for (int64_t i = 0; i < buyers; i++) {
        id_new(order);
        line.product_id = r.pids[i % products];
        cmd.step = (uint32_t)i;
        bus_envelope env;
        bus_envelope_init(&env, &layby__v1__reserve_stock__descriptor, NULL);
        natsMsg *m = NULL;
        if (bus_msg_new(&m, SUBJ_CATALOG_RESERVE_STOCK, &env, &cmd.base, &err) != LB_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        r.sent_us[i] = lb_mono_us();
        if (js_PublishMsgAsync(bus_js(b), &m, NULL) != NATS_OK) {
            natsMsg_Destroy(m);
            fprintf(stderr, "bench: publish failed\n");
            return 1;
        }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    js_PublishAsyncComplete(bus_js(b), &po);
    int64_t deadline = lb_mono_us() + timeout_s * 1000000;
    while (atomic_load(&r.seen) < buyers && lb_mono_us() < deadline)
        nats_Sleep(5);
    int64_t last = 0;
    for (int64_t i = 0; i < buyers; i++)
        if (r.recv_us[i] > last)
            last = r.recv_us[i];
    double secs = (double)(last - t0) / 1e6;
    printf("flash_sale buyers=%lld products=%lld units=%lld reserved=%ld rejected=%ld other=%ld "
           "missing=%lld decide_s=%.3f per_s=%.0f\n",
           (long long)buyers, (long long)products, (long long)units, atomic_load(&r.reserved),
           atomic_load(&r.rejected), atomic_load(&r.other),
           (long long)(buyers - atomic_load(&r.seen)), secs,
           secs > 0 ? (double)atomic_load(&r.seen) / secs : 0.0);
    natsSubscription_Destroy(s1);
    natsSubscription_Destroy(s2);
    free(r.pids);
    free(r.sent_us);
    free(r.recv_us);
    bus_close(b);
    return atomic_load(&r.seen) == buyers && atomic_load(&r.other) == 0 ? 0 : 1;
}
