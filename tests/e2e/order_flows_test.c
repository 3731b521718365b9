/* order_flows_test.c - the order sagas end to end over HTTP (issue 20): the
 * whole stack (edge, orchestrator, catalog, order, payment, delivery) with
 * LAYBY_FAST-style durations set per test. Every flow and failure of the
 * issue: out of stock; declined then paid; gateway outages retried; the
 * payment deadline; cancel before and after shipping; return inside and
 * outside the window; idempotent repeats of place and pay; ordering from the
 * wishlist; another member's order is 404. Waiting is polling with a
 * deadline, never sleeping. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"
#include "layby/v1/order.pb-c.h"
#include "lb.h"
#include "subjects.h"
#include "tsupport.h"

#define AUTH_MAX 2048
#define WAIT_MS  30000

static tsupport_proc procs[8];
static tsupport_proc *edge = &procs[0];
static char alice[ID_STR_LEN], bob[ID_STR_LEN];
static char alice_auth[AUTH_MAX], bob_auth[AUTH_MAX], admin_auth[AUTH_MAX];

static void
setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tsupport_reset();
    id_new(alice);
    id_new(bob);
    char admin[ID_STR_LEN];
    id_new(admin);
    tsupport_jwt_member(alice_auth, sizeof alice_auth, alice, "USER");
    tsupport_jwt_member(bob_auth, sizeof bob_auth, bob, "USER");
    tsupport_jwt_member(admin_auth, sizeof admin_auth, admin, "ADMIN");
}

static void
teardown(void)
{
    tsupport_daemons_kill(procs, LB_COUNTOF(procs));
}

/* Starts the stack with extra environment for the orchestrator (the
 * durations of this test), the payment service and the edge (NULL = none). */
static void
stack_start_with(const char *const *orchestrator_env, const char *const *payment_env,
                 const char *const *edge_env)
{
    tsupport_daemon_start(&procs[1], "layby-catalog", 0, NULL, NULL);
    tsupport_daemon_start(&procs[2], "layby-order", 0, NULL, NULL);
    tsupport_daemon_start(&procs[3], "layby-payment", 0, NULL, payment_env);
    tsupport_daemon_start(&procs[4], "layby-delivery", 0, NULL, NULL);
    tsupport_daemon_start(&procs[5], "layby-orchestrator", 0, NULL, orchestrator_env);
    tsupport_daemon_start(edge, "layby-edge", 0, NULL, edge_env);
}

static void
stack_start(const char *const *orchestrator_env)
{
    stack_start_with(orchestrator_env, NULL, NULL);
}

TestSuite(order_flows, .init = setup, .fini = teardown, .timeout = 240);

/* --- HTTP -------------------------------------------------------------------- */

static void
call(tsupport_resp *r, const char *method, const char *path, const char *auth, const char *body,
     const char *idem)
{
    char key[300];
    const char *h[4] = { "Content-Type: application/json" };
    size_t n = 1;
    if (auth != NULL)
        h[n++] = auth;
    if (idem != NULL) {
        snprintf(key, sizeof key, "Idempotency-Key: %s", idem);
        h[n++] = key;
    }
    h[n] = NULL;
    tsupport_http_call(r, edge->port, method, path, h, body, false);
}

static const char *
jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    cr_assert(json_is_string(v), "%s is not a string", k);
    return json_string_value(v);
}

/* A product with stock and price; its id into out. */
static void
product_add(int stock, int price, char out[ID_STR_LEN])
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"name\":\"Laptop 14\",\"price\":%d,\"details\":\"\",\"category\":\"laptops\","
             "\"stock\":%d}",
             price, stock);
    tsupport_resp r;
    call(&r, "POST", "/api/v1/products", admin_auth, body, NULL);
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *j = tsupport_http_json(&r);
    snprintf(out, ID_STR_LEN, "%s", jstr(j, "productId"));
    json_decref(j);
}

/* GET of `prefix` + id as auth (NULL: nobody), which must answer 200: the
 * body decoded (the caller's), the answer in *r. */
static json_t *
get_ok(tsupport_resp *r, const char *auth, const char *prefix, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "%s%s", prefix, id);
    call(r, "GET", path, auth, NULL, NULL);
    cr_assert_eq(r->status, 200, "%s", r->body);
    return tsupport_http_json(r);
}

static long long
stock_of(const char *product)
{
    tsupport_resp r;
    json_t *j = get_ok(&r, NULL, "/api/v1/products/", product);
    long long n = json_integer_value(json_object_get(j, "stockAvailable"));
    json_decref(j);
    return n;
}

static void
address_add(const char *auth, char out[ID_STR_LEN])
{
    tsupport_resp r;
    call(&r, "POST", "/api/v1/me/addresses", auth,
         "{\"recipient\":\"Kim Minji\",\"phone\":\"010-1234-5678\",\"zipcode\":\"06236\","
         "\"city\":\"Seoul\",\"street\":\"12 Teheran-ro\"}",
         NULL);
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *j = tsupport_http_json(&r);
    snprintf(out, ID_STR_LEN, "%s", jstr(j, "addressId"));
    json_decref(j);
}

/* POST /api/v1/orders for qty of product; the answer in r. */
static void
place(tsupport_resp *r, const char *auth, const char *address, const char *product, int qty,
      const char *idem)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"items\":[{\"productId\":\"%s\",\"quantity\":%d}],\"addressId\":\"%s\"}", product,
             qty, address);
    call(r, "POST", "/api/v1/orders", auth, body, idem);
}

/* Places an order that must be accepted; its id into out. */
static void
place_ok(const char *address, const char *product, int qty, char out[ID_STR_LEN])
{
    tsupport_resp r;
    place(&r, alice_auth, address, product, qty, NULL);
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *j = tsupport_http_json(&r);
    cr_assert_str_eq(jstr(j, "status"), "PAYMENT_PENDING");
    cr_assert_neq(jstr(j, "paymentDeadline")[0], '\0');
    snprintf(out, ID_STR_LEN, "%s", jstr(j, "orderId"));
    json_decref(j);
}

static void
pay(tsupport_resp *r, const char *auth, const char *order, const char *token, const char *idem)
{
    char path[128], body[128];
    snprintf(path, sizeof path, "/api/v1/orders/%s/payment", order);
    snprintf(body, sizeof body, "{\"method\":\"card\",\"cardToken\":\"%s\"}", token);
    call(r, "POST", path, auth, body, idem);
}

/* One unit of a new product (stock 5, price won) placed by alice and paid
 * with a card: the order's id into order. */
static void
order_paid(int price, char order[ID_STR_LEN])
{
    char product[ID_STR_LEN], address[ID_STR_LEN];
    product_add(5, price, product);
    address_add(alice_auth, address);
    place_ok(address, product, 1, order);
    tsupport_resp r;
    pay(&r, alice_auth, order, "tok_visa", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = tsupport_http_json(&r);
    cr_assert_str_eq(jstr(j, "status"), "PAID");
    json_decref(j);
}

/* The answer (r, decoded as answer) of a `what` call is alice's order as
 * GET /api/v1/orders/{id} shows it, but the delivery, which only GET fills
 * (null in the answers). */
static void
assert_shown_as_get(json_t *answer, const tsupport_resp *r, const char *order, const char *what)
{
    tsupport_resp g;
    json_t *shown = get_ok(&g, alice_auth, "/api/v1/orders/", order);
    json_object_del(shown, "delivery");
    json_object_del(answer, "delivery");
    cr_assert(json_equal(answer, shown), "%s answered %s\nGET shows %s", what, r->body, g.body);
    json_decref(shown);
}

static void
signal(tsupport_resp *r, const char *auth, const char *order, const char *what)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/orders/%s/%s", order, what);
    call(r, "POST", path, auth, NULL, NULL);
}

typedef struct order_want {
    const char *order;
    const char *status;          /* the order's status, or NULL */
    const char *delivery_status; /* the delivery's, or NULL */
    char seen[256];
} order_want;

static bool
order_is(void *arg)
{
    order_want *w = arg;
    char path[128];
    snprintf(path, sizeof path, "/api/v1/orders/%s", w->order);
    tsupport_resp r;
    call(&r, "GET", path, alice_auth, NULL, NULL);
    if (r.status != 200)
        return false;
    json_t *j = json_loads(r.body, 0, NULL);
    const char *st = json_string_value(json_object_get(j, "status"));
    const char *ds = json_string_value(json_object_get(json_object_get(j, "delivery"), "status"));
    snprintf(w->seen, sizeof w->seen, "order %s, delivery %s", st ? st : "-", ds ? ds : "-");
    bool ok = (w->status == NULL || (st != NULL && strcmp(st, w->status) == 0)) &&
              (w->delivery_status == NULL || (ds != NULL && strcmp(ds, w->delivery_status) == 0));
    json_decref(j);
    return ok;
}

static void
wait_order(const char *order, const char *status, const char *delivery_status)
{
    order_want w = { order, status, delivery_status, "" };
    cr_assert(tsupport_poll_until(order_is, &w, WAIT_MS), "order never reached %s/%s (%s)",
              status ? status : "-", delivery_status ? delivery_status : "-", w.seen);
}

static int64_t
sql_int(const char *fmt, ...)
{
    char q[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    return tsupport_sql_int(q);
}

/* Runs `layby-ctl <what> <arg>` and keeps its stdout in out; fails on exit != 0. */
static void
ctl_run(char *out, size_t n, const char *what, const char *arg)
{
    char cmdline[512];
    snprintf(cmdline, sizeof cmdline, "%s/layby-ctl %s %s 2>&1",
             tsupport_env_req("LAYBY_BUILD_DIR"), what, arg);
    FILE *p = popen(cmdline, "r");
    cr_assert_not_null(p);
    size_t len = fread(out, 1, n - 1, p);
    out[len] = '\0';
    cr_assert_eq(pclose(p), 0, "%s: %s", cmdline, out);
}

/* Runs `layby-ctl <what> <arg> --json` (stdout only, exit 0) and parses it. */
static json_t *
ctl_json(const char *what, const char *arg)
{
    char cmdline[512];
    snprintf(cmdline, sizeof cmdline, "%s/layby-ctl %s %s --json 2>/dev/null",
             tsupport_env_req("LAYBY_BUILD_DIR"), what, arg);
    FILE *p = popen(cmdline, "r");
    cr_assert_not_null(p);
    json_error_t je;
    json_t *j = json_loadf(p, 0, &je);
    cr_assert_eq(pclose(p), 0, "%s", cmdline);
    cr_assert_not_null(j, "%s: not JSON (%s)", cmdline, je.text);
    return j;
}

/* How many times needle occurs in hay. */
static int
occurrences(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* --- flows -------------------------------------------------------------------- */

/* What every table has had written so far (pg_stat_user_tables), kept on
 * the test's own session (a temporary table) for writes_analyzed_rarely(). */
static void
writes_before(void)
{
    tsupport_sql("SET client_min_messages = warning; DROP TABLE IF EXISTS pg_temp.writes_before; "
                 "CREATE TEMP TABLE writes_before AS SELECT relid, "
                 "n_tup_ins + n_tup_upd + n_tup_del AS n FROM pg_stat_user_tables");
}

/* The tables a purchase writes are analyzed rarely, not on every autovacuum
 * round (sql/0950_saga_rare_analyze.sql: each analyze was a burst of CPU and
 * made every session re-plan): every table written since writes_before(),
 * taken from PostgreSQL's own counts, carries the setting, but
 * catalog.products, whose list and search plans follow the statistics, and
 * orders.addresses, which the address book writes (here before the purchase:
 * a service reports its counts when idle, PostgreSQL 15 within about 10 s,
 * so they may land after writes_before()). The purchase's last write, the
 * refund, is waited for first. */
static void
writes_analyzed_rarely(void)
{
    static const char written[] =
        "SELECT s.schemaname || '.' || s.relname FROM pg_stat_user_tables s "
        "JOIN pg_class c ON c.oid = s.relid "
        "LEFT JOIN pg_temp.writes_before b ON b.relid = s.relid "
        "WHERE s.n_tup_ins + s.n_tup_upd + s.n_tup_del > coalesce(b.n, 0) "
        "AND s.schemaname <> 'public' AND s.schemaname NOT LIKE 'pg\\_temp%' ";
    char q[1024];
    snprintf(q, sizeof q, "SELECT count(*) FROM (%s AND s.relname = 'refunds') w", written);
    tsupport_wait_count(WAIT_MS, 1, "%s", q);
    snprintf(q, sizeof q,
             "SELECT coalesce(string_agg(t, ', ' ORDER BY t), '') FROM (%s AND "
             "(s.schemaname, s.relname) NOT IN (('catalog', 'products'), ('orders', 'addresses')) "
             "AND NOT coalesce("
             "c.reloptions @> '{autovacuum_analyze_scale_factor=1.0}', false)) w(t)",
             written);
    PGresult *res = PQexec(tsupport_pg(), q);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(tsupport_pg()));
    cr_expect_str_empty(PQgetvalue(res, 0, 0),
                        "written by a purchase, analyzed on every autovacuum round: %s",
                        PQgetvalue(res, 0, 0));
    PQclear(res);
}

Test(order_flows, place_pay_deliver_and_return_inside_the_window)
{
    const char *env[] = { "LAYBY_FAST=1",
                          "LAYBY_SHIP_DELAY=500ms",
                          "LAYBY_DELIVER_DELAY=500ms",
                          "LAYBY_RETURN_WINDOW=60s",
                          "LAYBY_RETURN_DELAY=500ms",
                          NULL };
    stack_start(env);
    char product[ID_STR_LEN], address[ID_STR_LEN], order[ID_STR_LEN];
    product_add(5, 1500000, product);
    address_add(alice_auth, address);
    writes_before();
    place_ok(address, product, 2, order);
    cr_assert_eq(stock_of(product), 3);

    tsupport_resp r;
    pay(&r, alice_auth, order, "tok_visa", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = tsupport_http_json(&r);
    cr_assert_str_eq(jstr(j, "status"), "PAID");
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 3000000);
    json_t *items = json_object_get(j, "items");
    cr_assert_str_eq(jstr(json_array_get(items, 0), "name"), "Laptop 14");
    /* The answer is the order read before paying moved to PAID at the time
     * the pay saga's record says (order_pay v3, no read after): it must be
     * the order as the service shows it, timeline and all (but the delivery,
     * which only GET fills; the order stays PAID for the 500 ms before
     * shipping). */
    assert_shown_as_get(j, &r, order, "pay");
    json_decref(j);
    cr_assert_eq(sql_int("SELECT version FROM saga.sagas WHERE saga_type = 'order_pay'"), 3);

    wait_order(order, "PAID", "DELIVERED");
    signal(&r, alice_auth, order, "return");
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = tsupport_http_json(&r);
    cr_assert_str_eq(jstr(j, "status"), "RETURN_REQUESTED");
    json_decref(j);
    wait_order(order, "RETURNED", "RETURNED");
    cr_assert_eq(stock_of(product), 5, "returned units are back");
    cr_assert_eq(sql_int("SELECT refunded_won FROM payment.charges WHERE order_id = '%s' "
                         "AND status = 'CAPTURED'",
                         order),
                 3000000);

    /* the timeline, in order */
    char path[128];
    snprintf(path, sizeof path, "/api/v1/orders/%s", order);
    call(&r, "GET", path, alice_auth, NULL, NULL);
    j = tsupport_http_json(&r);
    json_t *tl = json_object_get(j, "timeline");
    const char *want[] = { "PENDING", "PAYMENT_PENDING", "PAID", "RETURN_REQUESTED", "RETURNED" };
    cr_assert_eq(json_array_size(tl), LB_COUNTOF(want), "%s", r.body);
    for (size_t i = 0; i < LB_COUNTOF(want); i++)
        cr_assert_str_eq(jstr(json_array_get(tl, i), "status"), want[i]);
    cr_assert_eq(json_array_size(json_object_get(json_object_get(j, "delivery"), "timeline")), 5);
    json_decref(j);

    /* the operator's view: the order, its delivery and its saga's log */
    char out[65536];
    ctl_run(out, sizeof out, "order show", order);
    cr_assert_not_null(strstr(out, "\"RETURNED\""), "%s", out);
    cr_assert_not_null(strstr(out, "delivery:"), "%s", out);
    cr_assert_not_null(strstr(out, "return_window"), "the saga's steps: %s", out);
    /* the ship-to snapshot as the order holds it, nothing it does not */
    cr_assert_not_null(strstr(out, "\"recipient\""), "%s", out);
    cr_assert_null(strstr(out, "\"isDefault\""), "%s", out);
    cr_assert_null(strstr(out, "\"createdAt\": \"\""), "%s", out);
    ctl_run(out, sizeof out, "order list", "--status RETURNED");
    cr_assert_not_null(strstr(out, order), "%s", out);

    /* another member sees nothing of it */
    call(&r, "GET", path, bob_auth, NULL, NULL);
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
    signal(&r, bob_auth, order, "cancel");
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
    pay(&r, bob_auth, order, "tok_visa", NULL);
    tsupport_http_assert_error(&r, 404, "not_found", NULL);

    writes_analyzed_rarely();
}

/* The steps that make the order payable and paid answer the buyer (saga.h
 * .answers): their SetOrderStatus commands carry the edge's inbox, so the
 * order service answers a hop before the saga's reply would. No other command
 * of the flow carries it: its participant would answer the buyer with a
 * step's outcome while the saga still decides. Payable answers with the
 * order itself (proto answer_order): the place reads nothing back, and
 * shows the order as GET does. */
Test(order_flows, payable_and_paid_are_answered_by_the_order_service_a_hop_early)
{
    stack_start(NULL);
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL, *reads = NULL;
    cr_assert_eq(tsupport_nats_connect(&nc, "CTL", NULL, NULL), NATS_OK);
    cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, "layby.cmd.>"), NATS_OK);
    cr_assert_eq(natsConnection_SubscribeSync(&reads, nc, SUBJ_ORDER_GET_ORDER), NATS_OK);
    cr_assert_eq(natsConnection_Flush(nc), NATS_OK);
    char product[ID_STR_LEN], address[ID_STR_LEN], order[ID_STR_LEN];
    product_add(5, 1000, product);
    address_add(alice_auth, address);
    tsupport_resp r;
    place(&r, alice_auth, address, product, 1, NULL);
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *placed = tsupport_http_json(&r);
    snprintf(order, sizeof order, "%s", jstr(placed, "orderId"));
    natsMsg *read = NULL;
    cr_assert_eq(natsSubscription_NextMsg(&read, reads, 500), NATS_TIMEOUT,
                 "the place read the order back");
    assert_shown_as_get(placed, &r, order, "place");
    cr_assert_str_eq(jstr(json_object_get(placed, "shipTo"), "recipient"), "Kim Minji");
    json_decref(placed);
    pay(&r, alice_auth, order, "tok_visa", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);

    /* every command of the order's flow, up to the delivery PREPARING */
    int answering = 0, silent = 0;
    bool delivered = false;
    while (!delivered) {
        natsMsg *m = NULL;
        cr_assert_eq(natsSubscription_NextMsg(&m, sub, WAIT_MS), NATS_OK,
                     "the flow's commands stopped after %d", answering + silent);
        const char *subject = natsMsg_GetSubject(m), *corr = NULL, *reply = NULL;
        bool mine = natsMsgHeader_Get(m, "Layby-Correlation", &corr) == NATS_OK &&
                    strcmp(corr, order) == 0 && strncmp(subject, "layby.cmd.saga.", 15) != 0;
        bool replies = natsMsgHeader_Get(m, "Layby-Reply", &reply) == NATS_OK && reply[0];
        if (mine && strcmp(subject, "layby.cmd.order.set_status") == 0) {
            Layby__V1__SetOrderStatus *c = layby__v1__set_order_status__unpack(
                NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
            cr_assert_not_null(c);
            cr_assert(replies && strncmp(reply, "_INBOX.", 7) == 0,
                      "setting %s answers the buyer: Layby-Reply \"%s\"", c->status,
                      reply ? reply : "");
            answering++;
            layby__v1__set_order_status__free_unpacked(c, NULL);
        } else if (mine) {
            cr_assert(!replies, "%s carries the buyer's inbox %s", subject, reply);
            silent++;
            delivered = strcmp(subject, "layby.cmd.delivery.advance") == 0;
        }
        natsMsg_Destroy(m);
    }
    cr_assert_eq(answering, 2, "PAYMENT_PENDING and PAID");
    cr_assert_eq(silent, 5, "create, reserve, charge, confirm, delivery");
    /* and the edge took the order service's answers (the saga's come later;
     * at least one of the two was first, whatever the scheduler did) */
    long long early = tsupport_metric(edge->port, "layby_edge_step_answers_total");
    cr_assert(early >= 1 && early <= 2, "%lld", early);
    natsSubscription_Destroy(reads);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
}

Test(order_flows, out_of_stock_is_409_and_the_order_rejected)
{
    stack_start((const char *const[]){ "LAYBY_FAST=1", NULL });
    char product[ID_STR_LEN], address[ID_STR_LEN];
    product_add(1, 1000, product);
    address_add(alice_auth, address);
    tsupport_resp r;
    place(&r, alice_auth, address, product, 2, NULL);
    tsupport_http_assert_error(&r, 409, "out_of_stock", NULL);
    cr_assert_eq(stock_of(product), 1);
    /* the order exists, REJECTED, naming the short product */
    tsupport_wait_count(WAIT_MS, 1,
                        "SELECT count(*) FROM orders.orders WHERE status = 'REJECTED' "
                        "AND short_products = ARRAY['%s']::uuid[]",
                        product);
    /* another member's address is not found */
    char bob_address[ID_STR_LEN];
    address_add(bob_auth, bob_address);
    place(&r, alice_auth, bob_address, product, 1, NULL);
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
    /* order_place v5 reserved the unit while the order service refused the
     * create (the reserve goes ahead, with it): the refusal releases it */
    tsupport_wait_count(WAIT_MS, 1,
                        "SELECT least(count(*), 1) FROM saga.saga_log WHERE line LIKE "
                        "'%%compensate reserve_stock%%'");
    tsupport_wait_count(WAIT_MS, 1,
                        "SELECT count(*) FROM catalog.products WHERE product_id = '%s' "
                        "AND stock_available = 1 AND reserved = 0",
                        product);
}

Test(order_flows, declined_then_paid_and_gateway_outages_retried)
{
    stack_start((const char *const[]){ "LAYBY_FAST=1", "LAYBY_SHIP_DELAY=60s", NULL });
    char product[ID_STR_LEN], address[ID_STR_LEN], o1[ID_STR_LEN], o2[ID_STR_LEN], o3[ID_STR_LEN];
    char path[128];
    product_add(10, 1000, product);
    address_add(alice_auth, address);
    place_ok(address, product, 1, o1);
    tsupport_resp r;
    pay(&r, alice_auth, o1, "tok_decline", NULL);
    tsupport_http_assert_error(&r, 402, "payment_declined", NULL);
    wait_order(o1, "PAYMENT_PENDING", NULL);
    pay(&r, alice_auth, o1, "tok_visa", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    wait_order(o1, "PAID", "PREPARING");
    cr_assert_eq(sql_int("SELECT count(*) FROM payment.charges WHERE order_id = '%s' "
                         "AND status = 'CAPTURED'",
                         o1),
                 1);

    /* The order's flow (DESIGN §2: Layby-Correlation is the order id) holds
     * the place saga and both pay sagas; each pay saga's events came back to
     * it by saga_id: the declined one FAILED, the other COMPLETED. */
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM saga.outbox");
    json_t *shown = ctl_json("order show", o1);
    json_t *sagas = json_object_get(shown, "sagas");
    cr_assert_eq(json_array_size(sagas), 3, "place, declined pay, pay: %s", json_dumps(shown, 0));
    const char *want_type[] = { "order_place", "order_pay", "order_pay" };
    const char *want_state[] = { "RUNNING", "FAILED", "COMPLETED" };
    for (size_t i = 0; i < 3; i++) {
        json_t *sg = json_array_get(sagas, i);
        cr_assert_str_eq(jstr(sg, "type"), want_type[i]);
        cr_assert_str_eq(jstr(sg, "state"), want_state[i], "saga %zu", i);
        cr_assert_str_eq(jstr(sg, "correlation"), o1);
        cr_assert_str_eq(jstr(json_object_get(json_object_get(sg, "start"), "message"), "orderId"),
                         o1, "saga show decodes the start: the order it pays");
        cr_assert_gt(json_array_size(json_object_get(sg, "timeline")), 1);
    }
    cr_assert_str_eq(jstr(json_object_get(shown, "saga"), "sagaId"), o1);
    json_decref(shown);
    char out[262144];
    ctl_run(out, sizeof out, "order show", o1);
    cr_assert_not_null(strstr(out, "saga 3 of 3 (order_pay)"), "%s", out);
    snprintf(path, sizeof path, "--correlation %s", o1);
    ctl_run(out, sizeof out, "saga list", path);
    cr_assert_not_null(strstr(out, "3 sagas\n"), "%s", out);
    /* events replay --correlation <order id> shows the place and pay flows */
    snprintf(path, sizeof path, "--stream LAYBY_CMD --json --correlation %s", o1);
    ctl_run(out, sizeof out, "events replay", path);
    cr_assert_eq(occurrences(out, "\"type\":\"layby.v1.PlaceOrder\""), 1, "%s", out);
    cr_assert_eq(occurrences(out, "\"type\":\"layby.v1.ReserveStock\""), 1, "%s", out);
    cr_assert_eq(occurrences(out, "\"type\":\"layby.v1.PayOrder\""), 2, "%s", out);
    cr_assert_eq(occurrences(out, "\"type\":\"layby.v1.Charge\""), 2, "%s", out);
    snprintf(path, sizeof path, "--json --correlation %s", o1);
    ctl_run(out, sizeof out, "events replay", path);
    cr_assert_eq(occurrences(out, "\"type\":\"layby.v1.PaymentFailed\""), 1, "%s", out);
    cr_assert_eq(occurrences(out, "\"type\":\"layby.v1.PaymentCaptured\""), 1, "%s", out);
    /* and the check re-decides the three from their logs and finds the
     * commands each really sent, told apart by saga_id */
    snprintf(path, sizeof path, "--check --correlation %s", o1);
    ctl_run(out, sizeof out, "events replay", path);
    cr_assert_not_null(strstr(out, "check: 3 sagas re-decided, 0 differ"), "%s", out);

    /* tok_flaky: two outages, retried by the saga with backoff, then paid */
    place_ok(address, product, 1, o2);
    pay(&r, alice_auth, o2, "tok_flaky", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(sql_int("SELECT count(*) FROM payment.charges WHERE order_id = '%s' "
                         "AND status = 'FAILED'",
                         o2),
                 2);
    /* tok_error: every retry fails; the buyer hears 503, the order waits */
    place_ok(address, product, 1, o3);
    pay(&r, alice_auth, o3, "tok_error", NULL);
    tsupport_http_assert_error(&r, 503, "unavailable", NULL);
    cr_assert_eq(sql_int("SELECT count(*) FROM payment.charges WHERE order_id = '%s'", o3), 3);
    wait_order(o3, "PAYMENT_PENDING", NULL);
    /* with backoff: each outage waited before the next try (order_charge_retry:
     * 100 ms, doubling, less up to 20% jitter), as decided in the sagas' logs
     * and as seen in the gateway's attempt times (lower bounds only: load
     * makes gaps longer, never shorter) */
    cr_assert_eq(sql_int("SELECT count(*) FROM saga.saga_log "
                         "WHERE line LIKE '%%charge attempt _ failed%%retry in%%'"),
                 4, "two retries for each of the two orders with outages");
    const char *orders[] = { o2, o3 };
    for (size_t i = 0; i < LB_COUNTOF(orders); i++)
        cr_assert_eq(sql_int("SELECT count(*) FROM (SELECT created_at - lag(created_at) OVER "
                             "(ORDER BY created_at) AS gap, row_number() OVER (ORDER BY "
                             "created_at) AS n FROM payment.charges WHERE order_id = '%s') g "
                             "WHERE (n = 2 AND gap >= interval '80 ms') "
                             "OR (n = 3 AND gap >= interval '160 ms')",
                             orders[i]),
                     2, "order %s: the retries came without their backoff", orders[i]);
}

Test(order_flows, payment_deadline_cancels_and_releases_stock)
{
    stack_start((const char *const[]){ "LAYBY_FAST=1", "LAYBY_PAYMENT_DEADLINE=2s", NULL });
    char product[ID_STR_LEN], address[ID_STR_LEN], order[ID_STR_LEN];
    product_add(3, 1000, product);
    address_add(alice_auth, address);
    place_ok(address, product, 3, order);
    cr_assert_eq(stock_of(product), 0);
    wait_order(order, "CANCELLED", NULL);
    cr_assert_eq(stock_of(product), 3);
    tsupport_resp r;
    pay(&r, alice_auth, order, "tok_visa", NULL);
    tsupport_http_assert_error(&r, 409, "invalid_state", NULL);
    cr_assert_eq(sql_int("SELECT count(*) FROM payment.charges WHERE status = 'CAPTURED'"), 0);
}

Test(order_flows, cancel_before_shipping_refunds_and_after_shipping_is_409)
{
    stack_start((const char *const[]){ "LAYBY_FAST=1", "LAYBY_SHIP_DELAY=8s",
                                       "LAYBY_DELIVER_DELAY=60s", NULL });
    char product[ID_STR_LEN], address[ID_STR_LEN], o1[ID_STR_LEN], o2[ID_STR_LEN];
    product_add(5, 2000, product);
    address_add(alice_auth, address);
    place_ok(address, product, 1, o1);
    tsupport_resp r;
    pay(&r, alice_auth, o1, "tok_visa", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    wait_order(o1, "PAID", "PREPARING");
    signal(&r, alice_auth, o1, "cancel");
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = tsupport_http_json(&r);
    cr_assert_str_eq(jstr(j, "status"), "CANCELLED");
    json_decref(j);
    wait_order(o1, "CANCELLED", "CANCELLED");
    cr_assert_eq(sql_int("SELECT refunded_won FROM payment.charges WHERE order_id = '%s' "
                         "AND status = 'CAPTURED'",
                         o1),
                 2000);
    cr_assert_eq(stock_of(product), 5);
    signal(&r, alice_auth, o1, "cancel");
    cr_assert_eq(r.status, 200, "a repeated cancel: %s", r.body);

    place_ok(address, product, 1, o2);
    pay(&r, alice_auth, o2, "tok_visa", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    wait_order(o2, "PAID", "SHIPPING");
    signal(&r, alice_auth, o2, "cancel");
    tsupport_http_assert_error(&r, 409, "not_cancellable", NULL);
    /* in the shop's words (sagas/order.h), not the saga's step */
    cr_assert(strstr(r.body, "can no longer be cancelled") != NULL &&
                  strstr(r.body, "saga") == NULL,
              "%s", r.body);
    signal(&r, alice_auth, o2, "return");
    tsupport_http_assert_error(&r, 409, "not_returnable", NULL);
    cr_assert(strstr(r.body, "cannot be returned") != NULL && strstr(r.body, "saga") == NULL, "%s",
              r.body);
    wait_order(o2, "PAID", "SHIPPING");
}

Test(order_flows, return_outside_the_window_is_409)
{
    stack_start((const char *const[]){ "LAYBY_FAST=1", "LAYBY_SHIP_DELAY=200ms",
                                       "LAYBY_DELIVER_DELAY=200ms", "LAYBY_RETURN_WINDOW=1s",
                                       NULL });
    char order[ID_STR_LEN];
    order_paid(2000, order);
    wait_order(order, "PAID", "DELIVERED");
    tsupport_resp r;
    tsupport_wait_count(WAIT_MS, 1,
                        "SELECT count(*) FROM saga.sagas WHERE saga_id = '%s' "
                        "AND status = 'COMPLETED'",
                        order);
    signal(&r, alice_auth, order, "return");
    tsupport_http_assert_error(&r, 409, "not_returnable", NULL);
    signal(&r, alice_auth, order, "cancel");
    tsupport_http_assert_error(&r, 409, "not_cancellable", NULL);
}

Test(order_flows, repeats_with_one_key_are_one_order_and_one_charge)
{
    stack_start((const char *const[]){ "LAYBY_FAST=1", "LAYBY_SHIP_DELAY=60s", NULL });
    char product[ID_STR_LEN], address[ID_STR_LEN], order[ID_STR_LEN];
    product_add(5, 1000, product);
    address_add(alice_auth, address);
    tsupport_resp r1, r2;
    place(&r1, alice_auth, address, product, 1, "place-key-1");
    place(&r2, alice_auth, address, product, 1, "place-key-1");
    cr_assert_eq(r1.status, 201, "%s", r1.body);
    cr_assert_eq(r2.status, 201, "%s", r2.body);
    json_t *j1 = tsupport_http_json(&r1), *j2 = tsupport_http_json(&r2);
    cr_assert_str_eq(jstr(j1, "orderId"), jstr(j2, "orderId"));
    snprintf(order, sizeof order, "%s", jstr(j1, "orderId"));
    json_decref(j1);
    json_decref(j2);
    cr_assert_eq(sql_int("SELECT count(*) FROM orders.orders"), 1);
    cr_assert_eq(stock_of(product), 4);

    pay(&r1, alice_auth, order, "tok_visa", "pay-key-1");
    pay(&r2, alice_auth, order, "tok_visa", "pay-key-1");
    cr_assert_eq(r1.status, 200, "%s", r1.body);
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    /* another key: the order is paid already */
    pay(&r2, alice_auth, order, "tok_visa", "pay-key-2");
    tsupport_http_assert_error(&r2, 409, "invalid_state", NULL);
    cr_assert_eq(sql_int("SELECT count(*) FROM payment.charges WHERE status = 'CAPTURED'"), 1);

    /* The same key and body on another order's payment is that order's own
     * request (a key is scoped to the path it was sent to), not a replay of
     * the first order's answer: the second order is paid, with its charge. */
    char other[ID_STR_LEN];
    place_ok(address, product, 1, other);
    pay(&r2, alice_auth, other, "tok_visa", "pay-key-1");
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    json_t *j = tsupport_http_json(&r2);
    cr_assert_str_eq(jstr(j, "orderId"), other, "%s", r2.body);
    cr_assert_str_eq(jstr(j, "status"), "PAID", "%s", r2.body);
    json_decref(j);
    cr_assert_eq(sql_int("SELECT count(*) FROM payment.charges WHERE order_id = '%s' "
                         "AND status = 'CAPTURED'",
                         other),
                 1);
    /* and its repeat is still one charge */
    pay(&r2, alice_auth, other, "tok_visa", "pay-key-1");
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    cr_assert_eq(sql_int("SELECT count(*) FROM payment.charges WHERE status = 'CAPTURED'"), 2);
}

Test(order_flows, ordering_from_the_wishlist_empties_it_once_placed)
{
    stack_start((const char *const[]){ "LAYBY_FAST=1", NULL });
    char p1[ID_STR_LEN], p2[ID_STR_LEN], address[ID_STR_LEN], path[160];
    product_add(5, 1000, p1);
    product_add(5, 3000, p2);
    address_add(alice_auth, address);
    tsupport_resp r;
    snprintf(path, sizeof path, "/api/v1/me/wishlist/items/%s", p1);
    call(&r, "PUT", path, alice_auth, "{\"quantity\":2}", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    snprintf(path, sizeof path, "/api/v1/me/wishlist/items/%s", p2);
    call(&r, "PUT", path, alice_auth, "{\"quantity\":1}", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char body[160];
    snprintf(body, sizeof body, "{\"fromWishlist\":true,\"addressId\":\"%s\"}", address);
    call(&r, "POST", "/api/v1/orders", alice_auth, body, NULL);
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *j = tsupport_http_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 5000);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 2);
    json_decref(j);
    call(&r, "GET", "/api/v1/me/wishlist", alice_auth, NULL, NULL);
    j = tsupport_http_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 0, "%s", r.body);
    json_decref(j);
    cr_assert_eq(stock_of(p1), 3);
    /* an empty wishlist is a 400 naming the field */
    call(&r, "POST", "/api/v1/orders", alice_auth, body, NULL);
    tsupport_http_assert_error(&r, 400, "invalid_argument", "fromWishlist");

    /* an order that is not placed (out of stock: REJECTED) leaves the
     * wishlist as it was: lines leave it only once the order is placed */
    snprintf(path, sizeof path, "/api/v1/me/wishlist/items/%s", p1);
    call(&r, "PUT", path, alice_auth, "{\"quantity\":9}", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    call(&r, "POST", "/api/v1/orders", alice_auth, body, NULL);
    tsupport_http_assert_error(&r, 409, "out_of_stock", NULL);
    call(&r, "GET", "/api/v1/me/wishlist", alice_auth, NULL, NULL);
    j = tsupport_http_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 1, "%s", r.body);
    json_decref(j);

    /* an order of items (not fromWishlist) skips the wishlist step: its saga
     * sends no OrderWishlist (order_place v3), the wishlist order's did */
    char plain[ID_STR_LEN];
    place_ok(address, p2, 1, plain);
    call(&r, "GET", "/api/v1/me/wishlist", alice_auth, NULL, NULL);
    j = tsupport_http_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 1, "%s", r.body);
    json_decref(j);
    cr_assert_eq(sql_int("SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s' "
                         "AND line LIKE '%%skip wishlist%%'",
                         plain),
                 1);
    cr_assert_eq(sql_int("SELECT count(DISTINCT saga_id) FROM saga.saga_log WHERE line LIKE "
                         "'%%send wishlist%%'"),
                 1, "only the placed wishlist order ran the step");
    /* the skip is logged with the START, so a replay of every saga here (the
     * wishlist order that ran the step, the one rejected, the one that
     * skipped it) decides the same */
    char out[65536];
    ctl_run(out, sizeof out, "events replay", "--check");
    cr_assert_not_null(strstr(out, " re-decided, 0 differ"), "%s", out);
}

/* --- the edge's wait, and paying at once ---------------------------------------- */

/* A 202's body names the order and PENDING, and Location is the order to poll. */
static void
assert_pending(const tsupport_resp *r, const char *order_or_null, char out[ID_STR_LEN])
{
    cr_assert_eq(r->status, 202, "%s", r->body);
    json_t *j = tsupport_http_json(r);
    cr_assert_str_eq(jstr(j, "status"), "PENDING");
    snprintf(out, ID_STR_LEN, "%s", jstr(j, "orderId"));
    if (order_or_null != NULL)
        cr_assert_str_eq(out, order_or_null);
    json_decref(j);
    char loc[160], want[160];
    snprintf(want, sizeof want, "/api/v1/orders/%s", out);
    cr_assert(tsupport_http_header(r, "Location", loc, sizeof loc), "%s", r->headers);
    cr_assert_str_eq(loc, want);
}

Test(order_flows, a_saga_still_deciding_after_the_wait_is_202_with_location_and_is_polled)
{
    /* the edge waits 1.5 s; the simulated gateway takes 3 s per charge. Not
     * shorter: the repeats below are answered by the orchestrator within the
     * same wait, and an ASan stack beside another suite group once took
     * longer than 500 ms (a 202 instead of the outcome). */
    stack_start_with((const char *const[]){ "LAYBY_FAST=1", "LAYBY_SHIP_DELAY=60s", NULL },
                     (const char *const[]){ "LAYBY_PAYMENT_LATENCY=3s", NULL },
                     (const char *const[]){ "LAYBY_EDGE_SAGA_WAIT=1500ms", NULL });
    char product[ID_STR_LEN], address[ID_STR_LEN], order[ID_STR_LEN];
    product_add(5, 1000, product);
    address_add(alice_auth, address);

    /* place while the order service is down: the saga cannot decide in the wait */
    cr_assert_eq(tsupport_daemon_stop(&procs[2], 10000), 0);
    tsupport_resp r, r2;
    int64_t t0 = lb_mono_us();
    place(&r, alice_auth, address, product, 2, "place-202");
    cr_assert_lt(lb_mono_us() - t0, 4000000, "answered after the saga wait, not 5 s");
    assert_pending(&r, NULL, order);
    tsupport_daemon_start(&procs[2], "layby-order", 0, NULL, NULL);
    wait_order(order, "PAYMENT_PENDING", NULL);
    tsupport_wait_count(WAIT_MS, 1,
                        "SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s' "
                        "AND line LIKE '%%wait for wait_payment%%'",
                        order);
    /* the same key again: the saga has decided by now, so the order, 201 */
    place(&r2, alice_auth, address, product, 2, "place-202");
    cr_assert_eq(r2.status, 201, "%s", r2.body);
    cr_assert_eq(stock_of(product), 3, "one order, reserved once");

    /* pay: the charge takes 3 s, so 202, and the client polls until PAID */
    char again[ID_STR_LEN];
    t0 = lb_mono_us();
    pay(&r, alice_auth, order, "tok_visa", "pay-202");
    cr_assert_lt(lb_mono_us() - t0, 2900000, "answered before the charge was done");
    assert_pending(&r, order, again);
    wait_order(order, "PAID", "PREPARING");
    /* the same key again: the pay saga's outcome, not "the order is PAID already" */
    pay(&r2, alice_auth, order, "tok_visa", "pay-202");
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    json_t *j = tsupport_http_json(&r2);
    cr_assert_str_eq(jstr(j, "status"), "PAID");
    json_decref(j);
    cr_assert_eq(sql_int("SELECT count(*) FROM payment.charges WHERE order_id = '%s' "
                         "AND status = 'CAPTURED'",
                         order),
                 1);
}

/* A fromWishlist order whose first answer was not remembered (a 202 here;
 * an edge crash before it stored the outcome in the randomized run): the
 * saga emptied the wishlist, so the repeat finds it empty. It must answer
 * the order, as a repeat of any place does, not 400 fromWishlist. */
Test(order_flows, a_wishlist_order_repeated_with_its_key_after_a_202_answers_the_order)
{
    stack_start_with((const char *const[]){ "LAYBY_FAST=1", "LAYBY_SHIP_DELAY=60s", NULL }, NULL,
                     (const char *const[]){ "LAYBY_EDGE_SAGA_WAIT=500ms", NULL });
    char product[ID_STR_LEN], address[ID_STR_LEN], order[ID_STR_LEN], path[160], body[160];
    product_add(5, 1000, product);
    address_add(alice_auth, address);
    tsupport_resp r, r2;
    snprintf(path, sizeof path, "/api/v1/me/wishlist/items/%s", product);
    call(&r, "PUT", path, alice_auth, "{\"quantity\":2}", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    snprintf(body, sizeof body, "{\"fromWishlist\":true,\"addressId\":\"%s\"}", address);

    cr_assert_eq(tsupport_daemon_stop(&procs[2], 10000), 0);
    call(&r, "POST", "/api/v1/orders", alice_auth, body, "wish-key-1");
    assert_pending(&r, NULL, order);
    tsupport_daemon_start(&procs[2], "layby-order", 0, NULL, NULL);
    wait_order(order, "PAYMENT_PENDING", NULL);
    call(&r, "GET", "/api/v1/me/wishlist", alice_auth, NULL, NULL);
    json_t *j = tsupport_http_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 0, "%s", r.body);
    json_decref(j);

    call(&r2, "POST", "/api/v1/orders", alice_auth, body, "wish-key-1");
    cr_assert_eq(r2.status, 201, "the repeat: %s", r2.body);
    j = tsupport_http_json(&r2);
    cr_assert_str_eq(jstr(j, "orderId"), order);
    cr_assert_str_eq(jstr(j, "status"), "PAYMENT_PENDING");
    json_decref(j);
    cr_assert_eq(sql_int("SELECT count(*) FROM orders.orders"), 1);
    cr_assert_eq(stock_of(product), 3, "one order, reserved once");
    /* without a key (or with another) an empty wishlist is still a 400 */
    call(&r, "POST", "/api/v1/orders", alice_auth, body, "wish-key-2");
    tsupport_http_assert_error(&r, 400, "invalid_argument", "fromWishlist");
}

#define RACERS 16

typedef struct racer {
    char address[ID_STR_LEN], product[ID_STR_LEN];
    char order[ID_STR_LEN];
    long place_status, pay_status;
    int polls;
} racer;

static bool
payable(void *arg)
{
    racer *x = arg;
    order_want w = { x->order, "PAYMENT_PENDING", NULL, "" };
    x->polls++;
    return order_is(&w);
}

/* One buyer: place, then pay the moment the order is PAYMENT_PENDING (at once
 * after a 201; after a 202, at the first poll that shows it). Only results
 * are recorded here; the test thread asserts. */
static void *
racer_run(void *arg)
{
    racer *x = arg;
    tsupport_resp *r = malloc(sizeof *r);
    if (r == NULL)
        return NULL;
    place(r, alice_auth, x->address, x->product, 1, NULL);
    x->place_status = r->status;
    json_t *j = json_loads(r->body, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "orderId"));
    snprintf(x->order, sizeof x->order, "%s", id != NULL ? id : "");
    json_decref(j);
    if ((x->place_status == 201 || x->place_status == 202) && x->order[0] != '\0' &&
        (x->place_status == 201 || tsupport_poll_until(payable, x, WAIT_MS))) {
        pay(r, alice_auth, x->order, "tok_visa", NULL);
        x->pay_status = r->status;
    }
    free(r);
    return NULL;
}

/* docs/ORDERS.md §5: a payment that reaches the place saga before it waits
 * for one is kept (engine R10), so no paid order is cancelled at its
 * deadline. Buyers pay as soon as they may, concurrently; a short saga wait
 * makes some of them learn PAYMENT_PENDING by polling the order service,
 * possibly before the orchestrator heard it. (The order sagas' events go
 * through one durable, so one orchestrator rarely sees them out of order:
 * tests/integration/saga_flow_test.c forces the early payment.) */
Test(order_flows, paying_the_moment_an_order_is_payable_never_loses_the_payment)
{
    stack_start_with((const char *const[]){ "LAYBY_FAST=1", "LAYBY_SHIP_DELAY=60s",
                                            "LAYBY_PAYMENT_DEADLINE=15s", NULL },
                     NULL, (const char *const[]){ "LAYBY_EDGE_SAGA_WAIT=50ms", NULL });
    static racer racers[RACERS];
    memset(racers, 0, sizeof racers);
    char product[ID_STR_LEN], address[ID_STR_LEN];
    product_add(RACERS, 1000, product);
    address_add(alice_auth, address);
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++) {
        snprintf(racers[i].address, ID_STR_LEN, "%s", address);
        snprintf(racers[i].product, ID_STR_LEN, "%s", product);
        cr_assert_eq(pthread_create(&th[i], NULL, racer_run, &racers[i]), 0);
    }
    int pending = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        racer *x = &racers[i];
        cr_assert(x->place_status == 201 || x->place_status == 202, "place %d: %ld", i,
                  x->place_status);
        cr_assert(x->pay_status == 200 || x->pay_status == 202, "pay %d: %ld", i, x->pay_status);
        pending += x->place_status == 202;
    }
    cr_log_info("%d of %d places answered 202 and were polled", pending, RACERS);
    /* Each place saga got past its wait step (the delivery exists only then);
     * a lost payment would have left it waiting until the deadline cancelled
     * the paid order and refunded it. */
    for (int i = 0; i < RACERS; i++)
        wait_order(racers[i].order, "PAID", "PREPARING");
    cr_assert_eq(sql_int("SELECT count(*) FROM payment.charges WHERE status = 'CAPTURED'"), RACERS);
    cr_assert_eq(sql_int("SELECT coalesce(sum(refunded_won), 0) FROM payment.charges"), 0);
    cr_assert_eq(sql_int("SELECT count(*) FROM orders.orders WHERE status <> 'PAID'"), 0);
    cr_assert_eq(stock_of(product), 0);
}
