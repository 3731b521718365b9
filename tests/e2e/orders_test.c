/* orders_test.c - orders, payment, delivery and the address book through the
 * whole stack: HTTP -> layby-edge -> JetStream -> the services (and the
 * orchestrator's order sagas) -> PostgreSQL, and back. Tokens are minted with
 * the harness's key for members of our choosing. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bus.h"
#include "id.h"
#include "lb.h"
#include "tsupport.h"

#define AUTH_MAX 2048

static tsupport_proc procs[8];
static tsupport_proc *edge = &procs[0];
static char alice[ID_STR_LEN], bob[ID_STR_LEN];
static char alice_auth[AUTH_MAX], bob_auth[AUTH_MAX];

static void
setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tsupport_reset();
    id_new(alice);
    id_new(bob);
    tsupport_jwt_member(alice_auth, sizeof alice_auth, alice, "USER");
    tsupport_jwt_member(bob_auth, sizeof bob_auth, bob, "USER");
    tsupport_daemon_start(&procs[1], "layby-order", 0, NULL, NULL);
    tsupport_daemon_start(&procs[2], "layby-delivery", 0, NULL, NULL);
    tsupport_daemon_start(edge, "layby-edge", 0, NULL, NULL);
}

static void
teardown(void)
{
    tsupport_daemons_kill(procs, LB_COUNTOF(procs));
}

TestSuite(orders, .init = setup, .fini = teardown, .timeout = 180);

/* method path as `auth` with an optional JSON body and Idempotency-Key. */
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

static const char ADDRESS[] =
    "{\"label\":\"home\",\"recipient\":\"Kim Minji\",\"phone\":\"010-1234-5678\","
    "\"zipcode\":\"06236\",\"city\":\"Seoul\",\"street\":\"12 Teheran-ro\",\"detail\":\"1203\"}";

/* Adds ADDRESS for auth; returns its id in out. */
static void
address_add(const char *auth, char out[ID_STR_LEN])
{
    tsupport_resp r;
    call(&r, "POST", "/api/v1/me/addresses", auth, ADDRESS, NULL);
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *j = tsupport_http_json(&r);
    snprintf(out, ID_STR_LEN, "%s", jstr(j, "addressId"));
    json_decref(j);
}

Test(orders, address_book_over_http_and_another_members_address_is_404)
{
    tsupport_resp r;
    call(&r, "POST", "/api/v1/me/addresses", alice_auth, ADDRESS, "addr-key-1");
    cr_assert_eq(r.status, 201, "%s", r.body);
    char loc[256];
    cr_assert(tsupport_http_header(&r, "Location", loc, sizeof loc));
    json_t *j = tsupport_http_json(&r);
    char id[ID_STR_LEN];
    snprintf(id, sizeof id, "%s", jstr(j, "addressId"));
    cr_assert(json_is_true(json_object_get(j, "isDefault")));
    cr_assert_str_eq(jstr(j, "street"), "12 Teheran-ro");
    json_decref(j);
    char want[128];
    snprintf(want, sizeof want, "/api/v1/me/addresses/%s", id);
    cr_assert_str_eq(loc, want);

    /* the same Idempotency-Key: the same address, not a second one */
    call(&r, "POST", "/api/v1/me/addresses", alice_auth, ADDRESS, "addr-key-1");
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM orders.addresses"), 1);

    char path[128];
    snprintf(path, sizeof path, "/api/v1/me/addresses/%s", id);
    call(&r, "PATCH", path, bob_auth, "{\"city\":\"Busan\"}", NULL);
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
    call(&r, "DELETE", path, bob_auth, NULL, NULL);
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
    call(&r, "GET", "/api/v1/me/addresses", bob_auth, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = tsupport_http_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);

    call(&r, "PATCH", path, alice_auth, "{\"city\":\"Busan\"}", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = tsupport_http_json(&r);
    cr_assert_str_eq(jstr(j, "city"), "Busan");
    cr_assert_str_eq(jstr(j, "street"), "12 Teheran-ro");
    json_decref(j);
    call(&r, "PATCH", path, alice_auth, "{\"zipcode\":\"1\"}", NULL);
    tsupport_http_assert_error(&r, 400, "invalid_argument", "zipcode");
    call(&r, "POST", "/api/v1/me/addresses", alice_auth, "{\"city\":\"Seoul\"}", NULL);
    tsupport_http_assert_error(&r, 400, "invalid_argument", "recipient");

    call(&r, "DELETE", path, alice_auth, NULL, NULL);
    cr_assert_eq(r.status, 204, "%s", r.body);
    call(&r, "GET", "/api/v1/me/addresses", alice_auth, NULL, NULL);
    j = tsupport_http_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);
    call(&r, "GET", "/api/v1/me/addresses", NULL, NULL, NULL);
    tsupport_http_assert_error(&r, 401, "unauthorized", NULL);
}

Test(orders, unknown_or_foreign_order_is_404)
{
    tsupport_resp r;
    char id[ID_STR_LEN], path[128];
    id_new(id);
    snprintf(path, sizeof path, "/api/v1/orders/%s", id);
    call(&r, "GET", path, alice_auth, NULL, NULL);
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
    call(&r, "GET", "/api/v1/orders/not-a-uuid", alice_auth, NULL, NULL);
    tsupport_http_assert_error(&r, 400, "invalid_argument", "id");
    call(&r, "GET", "/api/v1/orders?limit=500", alice_auth, NULL, NULL);
    tsupport_http_assert_error(&r, 400, "invalid_argument", "limit");
    call(&r, "GET", "/api/v1/orders", alice_auth, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char addr[ID_STR_LEN];
    address_add(alice_auth, addr);
}

/* --- the edge killed while it holds requests (issue 25) ------------------------ */

enum {
    HELD = 12 /* requests in the edge's hands at the kill (ORDER_ADDRESSES_MAX is 20) */
};

typedef struct held_call {
    int port;
    char key[64];
    long status; /* 0: no answer (the edge died) */
} held_call;

static size_t
discard(char *p, size_t sz, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return sz * n;
}

/* One client's POST /api/v1/me/addresses with its Idempotency-Key, on its own
 * thread: no Criterion assert here, the test's thread judges the status. */
static void *
held_post(void *arg)
{
    held_call *c = arg;
    char url[128], key[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/me/addresses", c->port);
    snprintf(key, sizeof key, "Idempotency-Key: %s", c->key);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, alice_auth);
    h = curl_slist_append(h, key);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, ADDRESS);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    c->status = 0;
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &c->status);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    return NULL;
}

static bool
order_commands_waiting(void *arg)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    if (js_GetConsumerInfo(&ci, bus_js(arg), "LAYBY_CMD", "order", NULL, &jerr) != NATS_OK)
        return false;
    bool all = ci->NumPending + (uint64_t)ci->NumAckPending >= HELD;
    jsConsumerInfo_Destroy(ci);
    return all;
}

/* The edge holds nothing durable: each command is stored in LAYBY_CMD before
 * it waits for the answer, and the id of the address is derived from the
 * Idempotency-Key. So after a SIGKILL the clients' repeats (same key) are
 * answered as soon as an edge runs again, with the entity the first try made
 * and no second one. The held requests wait on the order service (stopped),
 * with a command timeout longer than the test so none is answered 202. */
Test(orders, a_killed_edge_s_requests_are_answered_seconds_after_its_restart)
{
    struct bus *admin = tsupport_admin_bus("orders-test");
    const char *hold[] = { "LAYBY_EDGE_COMMAND_TIMEOUT=60s", NULL };
    tsupport_daemon_stop(edge, 10000);
    tsupport_daemon_stop(&procs[1], 10000);
    tsupport_daemon_start(edge, "layby-edge", 0, NULL, hold);
    held_call calls[HELD];
    pthread_t th[HELD];
    for (int i = 0; i < HELD; i++) {
        calls[i].port = edge->port;
        snprintf(calls[i].key, sizeof calls[i].key, "held-%d", i);
        cr_assert_eq(pthread_create(&th[i], NULL, held_post, &calls[i]), 0);
    }
    cr_assert(tsupport_poll_until(order_commands_waiting, admin, 30000),
              "the edge sent the %d commands", HELD);
    tsupport_daemon_kill(edge);
    for (int i = 0; i < HELD; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(calls[i].status, 0, "answered before the kill: %ld", calls[i].status);
    }
    tsupport_daemon_start(&procs[1], "layby-order", 0, NULL, NULL);
    int64_t t0 = lb_mono_us();
    tsupport_daemon_start(edge, "layby-edge", 0, NULL, NULL);
    int64_t ready_us = lb_mono_us();
    char ids[HELD][ID_STR_LEN];
    for (int i = 0; i < HELD; i++) {
        tsupport_resp r;
        call(&r, "POST", "/api/v1/me/addresses", alice_auth, ADDRESS, calls[i].key);
        cr_assert_eq(r.status, 201, "%s", r.body);
        json_t *j = tsupport_http_json(&r);
        snprintf(ids[i], ID_STR_LEN, "%s", jstr(j, "addressId"));
        json_decref(j);
    }
    int64_t ms = (lb_mono_us() - ready_us) / 1000;
    fprintf(stderr,
            "recovery: daemon=edge ready_ms=%lld back_ms=%lld done_ms=%lld "
            "(back and done: the %d held requests repeated and answered 201)\n",
            (long long)((ready_us - t0) / 1000), (long long)ms, (long long)ms, HELD);
    cr_assert_lt(ms, TSUPPORT_RECOVERY_MS,
                 "the held requests were answered %lld ms after the restart", (long long)ms);
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM orders.addresses"), HELD,
                 "each held request made one address");
    for (int i = 0; i < HELD; i++)
        for (int k = 0; k < i; k++)
            cr_assert_str_neq(ids[i], ids[k], "two keys, one address");
    bus_close(admin);
}
