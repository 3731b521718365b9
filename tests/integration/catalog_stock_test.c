/* catalog_stock_test.c - stock reservations through bus commands against a
 * real catalog daemon, nats-server and PostgreSQL: no oversell under a volley,
 * all-or-nothing orders, one effect per operation however often it arrives,
 * a reservation arriving after its own release, stock adjustments and the
 * audit's conservation law; and the edge's read model of the volley. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "engine/bus.h"
#include "engine/id.h"
#include "engine/subjects.h"
#include "layby/v1/catalog.pb-c.h"
#include "tsupport.h"

#define WAIT_MS 60000

static bus *admin;
static tsupport_proc procs[3];

static void
setup(void)
{
    tsupport_reset();
    admin = tsupport_admin_bus("catalog-stock-test");
}

static void
teardown(void)
{
    tsupport_stack_close(&admin, procs, LB_COUNTOF(procs));
}

TestSuite(catalog_stock, .init = setup, .fini = teardown, .timeout = 300);

/* --- helpers ---------------------------------------------------------------- */

static void
product_add(char pid[ID_STR_LEN], const char *name, int64_t stock)
{
    id_new(pid);
    Layby__V1__ProductDraft d;
    Layby__V1__CreateProduct c;
    tsupport_create_product(&c, &d, pid, name);
    d.stock = stock;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__create_product__descriptor, NULL);
    lb_err err;
    cr_assert_eq(bus_publish(admin, SUBJ_CATALOG_CREATE_PRODUCT, &env, &c.base, &err), LB_OK, "%s",
                 err.msg);
}

static int64_t
product_int(const char *pid, const char *col)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s FROM catalog.products WHERE product_id = '%s'", col, pid);
    return tsupport_sql_int(sql);
}

/* Publishes cmd (a stock command) with a fresh message id. */
static void
send_cmd(const char *subject, const ProtobufCMessage *cmd)
{
    bus_envelope env;
    bus_envelope_init(&env, cmd->descriptor, NULL);
    lb_err err;
    cr_assert_eq(bus_publish(admin, subject, &env, cmd, &err), LB_OK, "%s", err.msg);
}

static void
send_reserve(const char *order_id, uint32_t attempt, const char *const *pids, const int64_t *qty,
             size_t n)
{
    Layby__V1__StockLine lines[8], *lp[8];
    Layby__V1__ReserveStock r = LAYBY__V1__RESERVE_STOCK__INIT;
    char saga[ID_STR_LEN];
    id_new(saga);
    r.saga_id = saga;
    r.step = 0;
    r.attempt = attempt;
    r.order_id = (char *)order_id;
    for (size_t i = 0; i < n; i++) {
        layby__v1__stock_line__init(&lines[i]);
        lines[i].product_id = (char *)pids[i];
        lines[i].quantity = qty[i];
        lp[i] = &lines[i];
    }
    r.n_lines = n;
    r.lines = lp;
    send_cmd(SUBJ_CATALOG_RESERVE_STOCK, &r.base);
}

/* Release, confirm or return (they share one shape) for order_id. */
static void
send_op(const char *subject, const ProtobufCMessageDescriptor *d, const char *order_id,
        uint32_t attempt)
{
    union {
        Layby__V1__ReleaseStock a;
        Layby__V1__ConfirmStock b;
        Layby__V1__RestockReturned c;
    } mem;
    ProtobufCMessage *m = (ProtobufCMessage *)&mem;
    protobuf_c_message_init(d, m);
    /* The three share field order: saga_id, step, attempt, order_id. */
    Layby__V1__ReleaseStock *r = (Layby__V1__ReleaseStock *)m;
    r->saga_id = "0190a1b2-c3d4-7e5f-8a9b-000000000001";
    r->step = 3;
    r->attempt = attempt;
    r->order_id = (char *)order_id;
    send_cmd(subject, m);
}

static uint64_t
events_on(const char *subject)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Info.SubjectsFilter = subject;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(js_GetStreamInfo(&si, bus_js(admin), "LAYBY_EVT", &o, &jerr), NATS_OK);
    uint64_t n = 0;
    for (int i = 0; si->State.Subjects != NULL && i < si->State.Subjects->Count; i++)
        n += si->State.Subjects->List[i].Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

typedef struct ev_want {
    const char *subject;
    uint64_t n;
} ev_want;

static bool
events_reached(void *arg)
{
    ev_want *w = arg;
    return events_on(w->subject) >= w->n;
}

static void
wait_events(const char *subject, uint64_t n)
{
    ev_want w = { subject, n };
    cr_assert(tsupport_poll_until(events_reached, &w, WAIT_MS), "%s: %llu events, want %llu",
              subject, (unsigned long long)events_on(subject), (unsigned long long)n);
}

/* The last event on subject, decoded as d (caller frees). */
static ProtobufCMessage *
last_event(const char *subject, const ProtobufCMessageDescriptor *d)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(js_GetLastMsg(&m, bus_js(admin), "LAYBY_EVT", subject, NULL, &jerr), NATS_OK);
    ProtobufCMessage *out = protobuf_c_message_unpack(d, NULL, (size_t)natsMsg_GetDataLength(m),
                                                      (const uint8_t *)natsMsg_GetData(m));
    natsMsg_Destroy(m);
    cr_assert_not_null(out);
    return out;
}

static uint64_t
stream_last_seq(void)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(js_GetStreamInfo(&si, bus_js(admin), "LAYBY_EVT", NULL, &jerr), NATS_OK);
    uint64_t n = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return n;
}

/* The event at stream sequence seq decoded as d if it is on subject, else NULL. */
static ProtobufCMessage *
event_at(uint64_t seq, const char *subject, const ProtobufCMessageDescriptor *d)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    if (js_GetMsg(&m, bus_js(admin), "LAYBY_EVT", seq, NULL, &jerr) != NATS_OK)
        return NULL;
    ProtobufCMessage *out = NULL;
    if (strcmp(natsMsg_GetSubject(m), subject) == 0)
        out = protobuf_c_message_unpack(d, NULL, (size_t)natsMsg_GetDataLength(m),
                                        (const uint8_t *)natsMsg_GetData(m));
    natsMsg_Destroy(m);
    return out;
}

/* initial + restocked = available + reserved + sold - returned, for every product. */
static void
assert_conserved(void)
{
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM catalog.products WHERE initial_stock + "
                                  "restocked <> stock_available + reserved + sold - returned"),
                 0, "stock conservation is broken");
}

static void
catalog_start(void)
{
    const char *env[] = { "LAYBY_CATALOG_WORKERS=2", NULL };
    tsupport_daemon_start(&procs[0], "layby-catalog", 0, NULL, env);
}

/* --- the volley ------------------------------------------------------------------ */

typedef struct sampler {
    const char *pid;
    int64_t min_available; /* lowest stock_available seen */
    int edge_port;         /* 0 = no edge */
    int64_t min_model;     /* lowest stockAvailable the edge answered */
    int64_t model_reads;   /* its answers */
} sampler;

/* stockAvailable of pid as the edge on port answers it, or -1000 if it did not. */
static int64_t
edge_available(int port, const char *pid)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/products/%s", pid);
    tsupport_resp r;
    tsupport_http_call(&r, port, "GET", path, NULL, NULL, false);
    if (r.status != 200)
        return -1000;
    json_t *j = tsupport_http_json(&r);
    int64_t a = json_integer_value(json_object_get(j, "stockAvailable"));
    json_decref(j);
    return a;
}

static bool
all_decided(void *arg)
{
    sampler *s = arg;
    int64_t a = product_int(s->pid, "stock_available");
    if (a < s->min_available)
        s->min_available = a;
    if (s->edge_port != 0 && (a = edge_available(s->edge_port, s->pid)) != -1000) {
        s->model_reads++;
        if (a < s->min_model)
            s->min_model = a;
    }
    return tsupport_sql_int("SELECT count(*) FROM catalog.stock_ops") >= 2000;
}

typedef struct model_want {
    int port;
    const char *pid;
    int64_t n;
} model_want;

static bool
model_says(void *arg)
{
    model_want *w = arg;
    return edge_available(w->port, w->pid) == w->n;
}

static bool
model_ready(void *arg)
{
    return tsupport_metric(*(int *)arg, "layby_edge_model_ready") == 1;
}

Test(catalog_stock, two_thousand_single_unit_reservations_for_100_units_sell_exactly_100)
{
    catalog_start();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tsupport_daemon_start(&procs[1], "layby-edge", 0, NULL, NULL);
    cr_assert(tsupport_poll_until(model_ready, &procs[1].port, WAIT_MS), "read model not ready");
    char pid[ID_STR_LEN];
    product_add(pid, "flash sale", 100);
    tsupport_wait_count(WAIT_MS, 1, "SELECT count(*) FROM catalog.products");
    model_want full = { procs[1].port, pid, 100 };
    cr_assert(tsupport_poll_until(model_says, &full, WAIT_MS), "the edge never saw 100 units");
    /* 2,000 buyers at once: asynchronous publishes, so they land as one volley
     * that two workers take in concurrent batches. */
    jsCtx *js = bus_js(admin);
    for (int i = 0; i < 2000; i++) {
        char order[ID_STR_LEN], saga[ID_STR_LEN];
        id_new(order);
        id_new(saga);
        Layby__V1__StockLine line = LAYBY__V1__STOCK_LINE__INIT, *lp = &line;
        line.product_id = pid;
        line.quantity = 1;
        Layby__V1__ReserveStock r = LAYBY__V1__RESERVE_STOCK__INIT;
        r.saga_id = saga;
        r.attempt = 1;
        r.order_id = order;
        r.n_lines = 1;
        r.lines = &lp;
        bus_envelope env;
        bus_envelope_init(&env, &layby__v1__reserve_stock__descriptor, NULL);
        natsMsg *m = NULL;
        lb_err err;
        cr_assert_eq(bus_msg_new(&m, SUBJ_CATALOG_RESERVE_STOCK, &env, &r.base, &err), LB_OK);
        cr_assert_eq(js_PublishMsgAsync(js, &m, NULL), NATS_OK);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    cr_assert_eq(js_PublishAsyncComplete(js, &po), NATS_OK);
    sampler s = { pid, 100, procs[1].port, 100, 0 };
    cr_assert(tsupport_poll_until(all_decided, &s, WAIT_MS), "not every reservation was decided");
    cr_assert_geq(s.min_available, 0, "stock went negative: %lld", (long long)s.min_available);
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM catalog.stock_ops WHERE code = 'ok'"), 100);
    cr_assert_eq(
        tsupport_sql_int("SELECT count(*) FROM catalog.stock_ops WHERE code = 'out_of_stock'"),
        1900);
    cr_assert_eq(product_int(pid, "stock_available"), 0);
    cr_assert_eq(product_int(pid, "reserved"), 100);
    wait_events(SUBJ_STOCK_RESERVED, 100);
    wait_events(SUBJ_STOCK_REJECTED, 1900);
    cr_assert_eq(events_on(SUBJ_STOCK_RESERVED), 100);
    Layby__V1__StockRejected *rej = (Layby__V1__StockRejected *)last_event(
        SUBJ_STOCK_REJECTED, &layby__v1__stock_rejected__descriptor);
    cr_assert_str_eq(rej->code, "out_of_stock");
    cr_assert(rej->final);
    cr_assert_eq(rej->n_short_product_ids, 1);
    cr_assert_str_eq(rej->short_product_ids[0], pid);
    protobuf_c_message_free_unpacked(&rej->base, NULL);
    /* The read models' view: the highest version of stock_changed says 0
     * (events of two workers' batches may be published out of order). */
    int64_t best_version = 0, best_available = -1;
    for (uint64_t seq = 1; seq <= stream_last_seq(); seq++) {
        Layby__V1__ProductStockChanged *ch = (Layby__V1__ProductStockChanged *)event_at(
            seq, SUBJ_PRODUCT_STOCK_CHANGED, &layby__v1__product_stock_changed__descriptor);
        if (ch == NULL)
            continue;
        cr_assert_geq(ch->stock_available, 0);
        if (ch->version > best_version) {
            best_version = ch->version;
            best_available = ch->stock_available;
        }
        protobuf_c_message_free_unpacked(&ch->base, NULL);
    }
    cr_assert_eq(best_available, 0);
    cr_assert_eq(best_version, product_int(pid, "version"));
    assert_conserved();
    cr_assert_eq(tsupport_daemon_stop(&procs[0], 10000), 0);
    /* The edge's read model converges to 0, answering with the catalog
     * stopped (so no answer can be the catalog's), and never said < 0. */
    cr_assert_gt(s.model_reads, 0);
    cr_assert_geq(s.min_model, 0, "the edge answered %lld", (long long)s.min_model);
    model_want zero = { procs[1].port, pid, 0 };
    cr_assert(tsupport_poll_until(model_says, &zero, WAIT_MS),
              "the edge's read model says %lld, not 0",
              (long long)edge_available(procs[1].port, pid));
    cr_assert_eq(tsupport_daemon_stop(&procs[1], 10000), 0);
    tsupport_log_expect_clean(&procs[1]);
    curl_global_cleanup();
}

/* --- all or nothing ----------------------------------------------------------------- */

Test(catalog_stock, an_order_with_one_short_line_reserves_nothing)
{
    catalog_start();
    char a[ID_STR_LEN], b[ID_STR_LEN], order[ID_STR_LEN];
    product_add(a, "plenty", 10);
    product_add(b, "scarce", 1);
    tsupport_wait_count(WAIT_MS, 2, "SELECT count(*) FROM catalog.products");
    id_new(order);
    const char *pids[] = { a, b };
    const int64_t qty[] = { 3, 2 };
    send_reserve(order, 1, pids, qty, 2);
    wait_events(SUBJ_STOCK_REJECTED, 1);
    cr_assert_eq(product_int(a, "stock_available"), 10);
    cr_assert_eq(product_int(a, "reserved"), 0);
    cr_assert_eq(product_int(b, "stock_available"), 1);
    Layby__V1__StockRejected *rej = (Layby__V1__StockRejected *)last_event(
        SUBJ_STOCK_REJECTED, &layby__v1__stock_rejected__descriptor);
    cr_assert_str_eq(rej->order_id, order);
    cr_assert_str_eq(rej->code, "out_of_stock");
    cr_assert_eq(rej->n_short_product_ids, 1, "only the short line is named");
    cr_assert_str_eq(rej->short_product_ids[0], b);
    cr_assert_eq(rej->attempt, 1);
    protobuf_c_message_free_unpacked(&rej->base, NULL);
    /* The same order with lines that fit is a repeat: the first outcome stands. */
    const int64_t fits[] = { 1, 1 };
    send_reserve(order, 2, pids, fits, 2);
    wait_events(SUBJ_STOCK_REJECTED, 2);
    cr_assert_eq(product_int(b, "stock_available"), 1);
    assert_conserved();
}

Test(catalog_stock, an_unknown_product_is_not_found_and_reserves_nothing)
{
    catalog_start();
    char a[ID_STR_LEN], ghost[ID_STR_LEN], order[ID_STR_LEN];
    product_add(a, "real", 10);
    tsupport_wait_count(WAIT_MS, 1, "SELECT count(*) FROM catalog.products");
    id_new(ghost);
    id_new(order);
    const char *pids[] = { a, ghost };
    const int64_t qty[] = { 1, 1 };
    send_reserve(order, 1, pids, qty, 2);
    wait_events(SUBJ_STOCK_REJECTED, 1);
    Layby__V1__StockRejected *rej = (Layby__V1__StockRejected *)last_event(
        SUBJ_STOCK_REJECTED, &layby__v1__stock_rejected__descriptor);
    cr_assert_str_eq(rej->code, "not_found");
    cr_assert_str_eq(rej->short_product_ids[0], ghost);
    protobuf_c_message_free_unpacked(&rej->base, NULL);
    cr_assert_eq(product_int(a, "stock_available"), 10);
}

/* --- each operation twice ----------------------------------------------------------- */

Test(catalog_stock, reserve_release_confirm_and_return_each_delivered_twice_change_stock_once)
{
    catalog_start();
    char pid[ID_STR_LEN], o1[ID_STR_LEN], o2[ID_STR_LEN];
    product_add(pid, "twice", 10);
    tsupport_wait_count(WAIT_MS, 1, "SELECT count(*) FROM catalog.products");
    id_new(o1);
    id_new(o2);
    const char *pids[] = { pid };
    const int64_t three[] = { 3 }, two[] = { 2 };
    /* Reserve twice (the saga's second attempt): 3 units once. */
    send_reserve(o1, 1, pids, three, 1);
    send_reserve(o1, 2, pids, three, 1);
    send_reserve(o2, 1, pids, two, 1);
    wait_events(SUBJ_STOCK_RESERVED, 3);
    cr_assert_eq(product_int(pid, "stock_available"), 5);
    cr_assert_eq(product_int(pid, "reserved"), 5);
    Layby__V1__StockReserved *res = (Layby__V1__StockReserved *)last_event(
        SUBJ_STOCK_RESERVED, &layby__v1__stock_reserved__descriptor);
    cr_assert_eq(res->n_lines, 1);
    cr_assert_str_eq(res->lines[0]->name, "twice");
    cr_assert_eq(res->lines[0]->unit_price, 990000);
    protobuf_c_message_free_unpacked(&res->base, NULL);
    /* Release o2 twice: its 2 units back once. */
    send_op(SUBJ_CATALOG_RELEASE_STOCK, &layby__v1__release_stock__descriptor, o2, 1);
    send_op(SUBJ_CATALOG_RELEASE_STOCK, &layby__v1__release_stock__descriptor, o2, 2);
    wait_events(SUBJ_STOCK_RELEASED, 2);
    cr_assert_eq(product_int(pid, "stock_available"), 7);
    cr_assert_eq(product_int(pid, "reserved"), 3);
    /* Confirm o1 twice: 3 sold once. The units available stay 7, so the read
     * models hear nothing (every row of the batch published: outbox empty). */
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM catalog.outbox");
    uint64_t changes = events_on(SUBJ_PRODUCT_STOCK_CHANGED);
    cr_assert_geq(changes, 2, "the reservations and the release announce their stock");
    send_op(SUBJ_CATALOG_CONFIRM_STOCK, &layby__v1__confirm_stock__descriptor, o1, 1);
    send_op(SUBJ_CATALOG_CONFIRM_STOCK, &layby__v1__confirm_stock__descriptor, o1, 2);
    wait_events(SUBJ_STOCK_CONFIRMED, 2);
    cr_assert_eq(product_int(pid, "reserved"), 0);
    cr_assert_eq(product_int(pid, "sold"), 3);
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM catalog.outbox");
    cr_assert_eq(events_on(SUBJ_PRODUCT_STOCK_CHANGED), changes,
                 "a confirmed sale changes no units available: no stock_changed");
    /* Two workers may publish the two answers in either order: look at both. */
    uint32_t attempts = 0;
    for (uint64_t seq = 1; seq <= stream_last_seq(); seq++) {
        Layby__V1__StockConfirmed *conf = (Layby__V1__StockConfirmed *)event_at(
            seq, SUBJ_STOCK_CONFIRMED, &layby__v1__stock_confirmed__descriptor);
        if (conf == NULL)
            continue;
        attempts |= 1u << conf->attempt;
        cr_assert_eq(conf->step, 3);
        cr_assert_str_eq(conf->order_id, o1);
        protobuf_c_message_free_unpacked(&conf->base, NULL);
    }
    cr_assert_eq(attempts, (1u << 1) | (1u << 2), "each answer echoes its own attempt");
    /* Put o1 back twice: 3 units back on hand once. */
    send_op(SUBJ_CATALOG_RESTOCK_RETURNED, &layby__v1__restock_returned__descriptor, o1, 1);
    send_op(SUBJ_CATALOG_RESTOCK_RETURNED, &layby__v1__restock_returned__descriptor, o1, 2);
    wait_events(SUBJ_STOCK_RETURNED, 2);
    cr_assert_eq(product_int(pid, "stock_available"), 10);
    wait_events(SUBJ_PRODUCT_STOCK_CHANGED, changes + 1); /* the return announces its units */
    cr_assert_eq(product_int(pid, "returned"), 3);
    cr_assert_eq(product_int(pid, "sold"), 3);
    /* Confirm of a released order is refused, finally. */
    send_op(SUBJ_CATALOG_CONFIRM_STOCK, &layby__v1__confirm_stock__descriptor, o2, 1);
    wait_events(SUBJ_STOCK_CONFIRM_FAILED, 1);
    Layby__V1__StockOpFailed *f = (Layby__V1__StockOpFailed *)last_event(
        SUBJ_STOCK_CONFIRM_FAILED, &layby__v1__stock_op_failed__descriptor);
    cr_assert_str_eq(f->code, "invalid_state");
    cr_assert(f->final);
    protobuf_c_message_free_unpacked(&f->base, NULL);
    cr_assert_eq(events_on(SUBJ_STOCK_RESERVED), 3);
    assert_conserved();
}

Test(catalog_stock, a_reservation_after_its_own_release_is_refused)
{
    catalog_start();
    char pid[ID_STR_LEN], order[ID_STR_LEN];
    product_add(pid, "late", 10);
    tsupport_wait_count(WAIT_MS, 1, "SELECT count(*) FROM catalog.products");
    id_new(order);
    /* The saga gave up on the reservation and compensated first. */
    send_op(SUBJ_CATALOG_RELEASE_STOCK, &layby__v1__release_stock__descriptor, order, 1);
    wait_events(SUBJ_STOCK_RELEASED, 1);
    const char *pids[] = { pid };
    const int64_t one[] = { 1 };
    send_reserve(order, 1, pids, one, 1);
    wait_events(SUBJ_STOCK_REJECTED, 1);
    Layby__V1__StockRejected *rej = (Layby__V1__StockRejected *)last_event(
        SUBJ_STOCK_REJECTED, &layby__v1__stock_rejected__descriptor);
    cr_assert_str_eq(rej->code, "invalid_state");
    protobuf_c_message_free_unpacked(&rej->base, NULL);
    cr_assert_eq(product_int(pid, "stock_available"), 10);
    cr_assert_eq(product_int(pid, "reserved"), 0);
}

/* --- adjustments ---------------------------------------------------------------------- */

static lb_status
adjust(const char *pid, int64_t delta, Layby__V1__Product **out, lb_err *err)
{
    Layby__V1__AdjustStock a = LAYBY__V1__ADJUST_STOCK__INIT;
    a.product_id = (char *)pid;
    a.delta = delta;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__adjust_stock__descriptor, NULL);
    natsMsg *reply = NULL;
    lb_status st = bus_command(&reply, admin, SUBJ_CATALOG_ADJUST_STOCK, &env, &a.base, 20000, err);
    cr_assert(st == LB_OK, "%s", err->msg);
    st = bus_reply_decode((ProtobufCMessage **)out, reply, &layby__v1__product__descriptor, err);
    natsMsg_Destroy(reply);
    return st;
}

Test(catalog_stock, adjustments_restock_and_refuse_to_go_below_zero)
{
    catalog_start();
    char pid[ID_STR_LEN];
    product_add(pid, "adjust", 5);
    tsupport_wait_count(WAIT_MS, 1, "SELECT count(*) FROM catalog.products");
    Layby__V1__Product *p = NULL;
    lb_err err;
    cr_assert_eq(adjust(pid, 7, &p, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(p->stock_available, 12);
    cr_assert_str_eq(p->name, "adjust");
    protobuf_c_message_free_unpacked(&p->base, NULL);
    p = NULL;
    cr_assert_eq(adjust(pid, -13, &p, &err), LB_ERR_STOCK_NEGATIVE);
    cr_assert_str_eq(err.field, "delta");
    cr_assert_eq(adjust(pid, -12, &p, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(p->stock_available, 0);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    char ghost[ID_STR_LEN];
    id_new(ghost);
    cr_assert_eq(adjust(ghost, 1, &p, &err), LB_ERR_NOT_FOUND);
    cr_assert_eq(product_int(pid, "restocked"), -5);
    assert_conserved();
    /* The audit query reports the same counts. */
    Layby__V1__GetStockAudit q = LAYBY__V1__GET_STOCK_AUDIT__INIT;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__get_stock_audit__descriptor, NULL);
    natsMsg *reply = NULL;
    cr_assert_eq(bus_request(&reply, admin, SUBJ_CATALOG_AUDIT, &env, &q.base, 10000, &err), LB_OK,
                 "%s", err.msg);
    Layby__V1__StockAudit *a = NULL;
    cr_assert_eq(
        bus_reply_decode((ProtobufCMessage **)&a, reply, &layby__v1__stock_audit__descriptor, &err),
        LB_OK, "%s", err.msg);
    natsMsg_Destroy(reply);
    cr_assert_eq(a->n_products, 1);
    cr_assert_eq(a->products[0]->initial, 5);
    cr_assert_eq(a->products[0]->restocked, -5);
    cr_assert_eq(a->products[0]->available, 0);
    protobuf_c_message_free_unpacked(&a->base, NULL);
}

/* --- layby-ctl product ------------------------------------------------------------------ */

/* Runs layby-ctl with args (one shell word each, no quoting needed), its
 * stdout into out; returns the exit status. */
static int
ctl(char *out, size_t n, const char *args)
{
    char cmdline[1024];
    snprintf(cmdline, sizeof cmdline, "%s/layby-ctl %s 2>/dev/null",
             tsupport_env_req("LAYBY_BUILD_DIR"), args);
    FILE *p = popen(cmdline, "r");
    cr_assert_not_null(p);
    size_t len = fread(out, 1, n - 1, p);
    out[len] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int64_t
json_int_of(const char *text, const char *key)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DISABLE_EOF_CHECK, &je);
    cr_assert_not_null(j, "not JSON: %s", text);
    int64_t v = json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

Test(catalog_stock, ctl_product_add_show_stock_and_list)
{
    catalog_start();
    char out[8192], args[256], id[ID_STR_LEN];
    cr_assert_eq(ctl(out, sizeof out,
                     "product add --name ctl-item --price 1000 --category ctl "
                     "--stock 3"),
                 0, "%s", out);
    json_error_t je;
    json_t *j = json_loads(out, JSON_DISABLE_EOF_CHECK, &je);
    cr_assert_not_null(j, "%s", out);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "productId")));
    json_decref(j);
    cr_assert(id_valid(id), "%s", out);
    snprintf(args, sizeof args, "product show %s", id);
    cr_assert_eq(ctl(out, sizeof out, args), 0);
    cr_assert_eq(json_int_of(out, "stockAvailable"), 3);
    snprintf(args, sizeof args, "product stock %s --delta 2", id);
    cr_assert_eq(ctl(out, sizeof out, args), 0);
    cr_assert_eq(json_int_of(out, "stockAvailable"), 5);
    snprintf(args, sizeof args, "product stock %s --delta -6", id);
    cr_assert_eq(ctl(out, sizeof out, args), 1, "below zero is refused");
    cr_assert_eq(product_int(id, "stock_available"), 5);
    cr_assert_eq(ctl(out, sizeof out, "product list --category ctl"), 0);
    cr_assert_not_null(strstr(out, id), "%s", out);
    cr_assert_eq(ctl(out, sizeof out, "product add --name ' ' --price 10 --category ctl"), 1,
                 "the catalog's validation answers");
}
