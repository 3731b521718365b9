/* catalog_test.c - the catalog's routes through the whole stack (HTTP ->
 * layby-edge -> NATS -> layby-catalog -> PostgreSQL): product pages with the
 * keyset cursor, search and category, stock adjustments, stockAvailable after
 * reservations, and the wishlist, with each route's errors; the edge's
 * product read model: pages served from it, a change visible within the
 * bound, and after an edge restart and a nats-server restart. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "codec.h"
#include "id.h"
#include "layby/v1/catalog.pb-c.h"
#include "lb.h"
#include "subjects.h"
#include "tsupport.h"

static tsupport_proc catalog, edge;
static char admin_auth[2048], user_auth[2048];

static char *
file_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static void
call(tsupport_resp *r, const char *method, const char *path, const char *auth, const char *body)
{
    const char *h[3] = { "Content-Type: application/json" };
    size_t n = 1;
    if (auth != NULL)
        h[n++] = auth;
    h[n] = NULL;
    tsupport_http_call(r, edge.port, method, path, h, body, false);
}

static bool
catalog_answers(void *unused)
{
    (void)unused;
    char id[ID_STR_LEN], path[128];
    id_new(id);
    snprintf(path, sizeof path, "/api/v1/products/%s", id);
    tsupport_resp r;
    call(&r, "GET", path, NULL, NULL);
    return r.status == 404;
}

static void
setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    lb_err err;
    cr_assert_eq(id_init(&err), LB_OK);
    tsupport_reset();
    char *priv = file_text(tsupport_env_req("LAYBY_JWT_PRIVATE_KEY_FILE"));
    int64_t now = lb_now_ms() / 1000;
    tsupport_jwt_mint(admin_auth, sizeof admin_auth, "ADMIN", JWT_ALG_ES256, priv, now, now + 600);
    tsupport_jwt_mint(user_auth, sizeof user_auth, "USER", JWT_ALG_ES256, priv, now, now + 600);
    free(priv);
    tsupport_daemon_start(&catalog, "layby-catalog", 0, NULL, NULL);
    tsupport_daemon_start(&edge, "layby-edge", 0, NULL, NULL);
    cr_assert(tsupport_poll_until(catalog_answers, NULL, 20000), "catalog never answered");
}

static void
teardown(void)
{
    if (edge.pid != 0)
        tsupport_daemon_stop(&edge, 10000);
    if (catalog.pid != 0)
        tsupport_daemon_stop(&catalog, 10000);
    curl_global_cleanup();
}

TestSuite(catalog, .init = setup, .fini = teardown, .timeout = 240);

/* Creates a product over HTTP; its id into id. */
static void
product_post(char id[ID_STR_LEN], const char *name, const char *category, int64_t price,
             int64_t stock)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"name\":\"%s\",\"price\":%lld,\"details\":\"d\",\"category\":\"%s\","
             "\"stock\":%lld}",
             name, (long long)price, category, (long long)stock);
    tsupport_resp r;
    call(&r, "POST", "/api/v1/products", admin_auth, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *j = tsupport_http_json(&r);
    snprintf(id, ID_STR_LEN, "%s", json_string_value(json_object_get(j, "productId")));
    json_decref(j);
}

static json_t *
get_json(const char *path, const char *auth, long want)
{
    tsupport_resp r;
    call(&r, "GET", path, auth, NULL);
    cr_assert_eq(r.status, want, "GET %s: %ld %s", path, r.status, r.body);
    return tsupport_http_json(&r);
}

#define MODEL_READS "layby_edge_model_reads_total{answer=\"model\"}"

static bool
model_ready(void *unused)
{
    (void)unused;
    return tsupport_metric(edge.port, "layby_edge_model_ready") == 1;
}

static void
model_ready_wait(void)
{
    cr_assert(tsupport_poll_until(model_ready, NULL, 30000), "the read model is not ready");
}

/* --- pages ---------------------------------------------------------------------------- */

Test(catalog, paging_sees_every_product_once_while_products_are_added)
{
    enum {
        FIRST = 23
    };
    char ids[FIRST][ID_STR_LEN];
    for (int i = 0; i < FIRST; i++) {
        char name[32];
        snprintf(name, sizeof name, "walk %02d", i);
        product_post(ids[i], name, "walk", 1000 + i, 3);
    }
    int seen[FIRST] = { 0 };
    char cursor[256] = "", path[512], seen_ids[64][ID_STR_LEN];
    int n_seen = 0, pages = 0, added = 0;
    /* every page comes from the edge's read model */
    model_ready_wait();
    long long served = tsupport_metric(edge.port, MODEL_READS);
    do {
        snprintf(path, sizeof path, "/api/v1/products?limit=5%s%s", cursor[0] ? "&cursor=" : "",
                 cursor);
        json_t *pg = get_json(path, NULL, 200);
        json_t *items = json_object_get(pg, "items");
        cr_assert(json_array_size(items) <= 5);
        for (size_t i = 0; i < json_array_size(items); i++) {
            const char *id =
                json_string_value(json_object_get(json_array_get(items, i), "productId"));
            for (int k = 0; k < n_seen; k++)
                cr_assert_str_neq(seen_ids[k], id, "%s seen twice", id);
            cr_assert_lt(n_seen, 64);
            snprintf(seen_ids[n_seen++], ID_STR_LEN, "%s", id);
            for (int k = 0; k < FIRST; k++)
                if (strcmp(ids[k], id) == 0)
                    seen[k]++;
        }
        const char *next = json_string_value(json_object_get(pg, "nextCursor"));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        json_decref(pg);
        /* another product arrives while the client walks */
        if (added < 4) {
            char id[ID_STR_LEN];
            product_post(id, "walk late", "walk", 5, 1);
            added++;
        }
        pages++;
        cr_assert_lt(pages, 30, "the walk does not end");
    } while (cursor[0] != '\0');
    for (int k = 0; k < FIRST; k++)
        cr_assert_eq(seen[k], 1, "product %d seen %d times", k, seen[k]);
    cr_assert_eq(tsupport_metric(edge.port, MODEL_READS) - served, pages,
                 "not every page came from the read model");
    /* no limit: the default page of 20, and a cursor to the rest */
    json_t *pg = get_json("/api/v1/products?category=walk", NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(pg, "items")), 20);
    cr_assert_str_neq(json_string_value(json_object_get(pg, "nextCursor")), "");
    json_decref(pg);
}

Test(catalog, limits_cursors_categories_and_search)
{
    char id[ID_STR_LEN];
    product_post(id, "Laptop Pro 14", "laptop", 2000000, 2);
    product_post(id, "laptop air", "laptop", 1500000, 2);
    product_post(id, "100% cotton bag", "bag", 30000, 2);
    product_post(id, "Phone X", "phone", 900000, 2);
    tsupport_resp r;
    static const char *const bad_limits[] = { "0", "101", "-1", "abc", "20.5" };
    for (size_t i = 0; i < LB_COUNTOF(bad_limits); i++) {
        char path[64];
        snprintf(path, sizeof path, "/api/v1/products?limit=%s", bad_limits[i]);
        call(&r, "GET", path, NULL, NULL);
        tsupport_http_assert_error(&r, 400, "invalid_argument", "limit");
    }
    json_t *all = get_json("/api/v1/products", NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(all, "items")), 4, "default page holds all 4");
    cr_assert_str_eq(json_string_value(json_object_get(all, "nextCursor")), "");
    json_decref(all);

    json_t *pg = get_json("/api/v1/products?limit=1&category=laptop", NULL, 200);
    const char *c = json_string_value(json_object_get(pg, "nextCursor"));
    cr_assert(c != NULL && c[0] != '\0');
    char cur[128], path[512];
    snprintf(cur, sizeof cur, "%s", c);
    json_decref(pg);
    /* the cursor works for its own listing only, and only as it was made */
    snprintf(path, sizeof path, "/api/v1/products?limit=1&category=laptop&cursor=%s", cur);
    pg = get_json(path, NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(pg, "items")), 1);
    json_decref(pg);
    snprintf(path, sizeof path, "/api/v1/products?limit=1&category=phone&cursor=%s", cur);
    call(&r, "GET", path, NULL, NULL);
    tsupport_http_assert_error(&r, 400, "invalid_argument", "cursor");
    cur[strlen(cur) - 3] = '\0'; /* truncated */
    snprintf(path, sizeof path, "/api/v1/products?category=laptop&cursor=%s", cur);
    call(&r, "GET", path, NULL, NULL);
    tsupport_http_assert_error(&r, 400, "invalid_argument", "cursor");
    /* the right length and version, with a tag that does not match */
    static const char *const forged[] = { "AAAA", "'%20OR%201=1--",
                                          "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" };
    for (size_t i = 0; i < LB_COUNTOF(forged); i++) {
        snprintf(path, sizeof path, "/api/v1/products?cursor=%s", forged[i]);
        call(&r, "GET", path, NULL, NULL);
        tsupport_http_assert_error(&r, 400, "invalid_argument", "cursor");
    }

    /* search: any case, and % is a character, not a wildcard */
    pg = get_json("/api/v1/products?q=LAPTOP", NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(pg, "items")), 2);
    json_decref(pg);
    pg = get_json("/api/v1/products?q=0%25%20c", NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(pg, "items")), 1);
    json_decref(pg);
    pg = get_json("/api/v1/products?q=%25", NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(pg, "items")), 1);
    json_decref(pg);
    pg = get_json("/api/v1/products?category=phone&q=laptop", NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(pg, "items")), 0);
    json_decref(pg);
}

/* --- stock -------------------------------------------------------------------------------- */

static void
reserve_on_bus(const char *pid, int64_t qty)
{
    bus *b = tsupport_admin_bus("catalog-e2e");
    char order[ID_STR_LEN];
    id_new(order);
    Layby__V1__StockLine line = LAYBY__V1__STOCK_LINE__INIT, *lp = &line;
    line.product_id = (char *)pid;
    line.quantity = qty;
    Layby__V1__ReserveStock r = LAYBY__V1__RESERVE_STOCK__INIT;
    r.saga_id = order;
    r.attempt = 1;
    r.order_id = order;
    r.n_lines = 1;
    r.lines = &lp;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__reserve_stock__descriptor, NULL);
    lb_err err;
    cr_assert_eq(bus_publish(b, SUBJ_CATALOG_RESERVE_STOCK, &env, &r.base, &err), LB_OK);
    bus_close(b);
}

typedef struct avail_want {
    const char *path;
    int64_t n;
} avail_want;

static bool
available_is(void *arg)
{
    avail_want *w = arg;
    tsupport_resp r;
    call(&r, "GET", w->path, NULL, NULL);
    if (r.status != 200)
        return false;
    json_t *j = tsupport_http_json(&r);
    bool ok = json_integer_value(json_object_get(j, "stockAvailable")) == w->n;
    json_decref(j);
    return ok;
}

Test(catalog, stock_adjustments_and_reservations_show_in_stock_available)
{
    char id[ID_STR_LEN], path[128], detail[128];
    product_post(id, "Camera", "camera", 700000, 4);
    snprintf(path, sizeof path, "/api/v1/products/%s/stock", id);
    snprintf(detail, sizeof detail, "/api/v1/products/%s", id);
    tsupport_resp r;
    call(&r, "PATCH", path, admin_auth, "{\"delta\":6}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = tsupport_http_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "stockAvailable")), 10);
    json_decref(j);
    call(&r, "PATCH", path, admin_auth, "{\"delta\":-11}");
    tsupport_http_assert_error(&r, 409, "stock_negative", "delta");
    call(&r, "PATCH", path, user_auth, "{\"delta\":1}");
    tsupport_http_assert_error(&r, 403, "forbidden", NULL);
    call(&r, "PATCH", path, NULL, "{\"delta\":1}");
    tsupport_http_assert_error(&r, 401, "unauthorized", NULL);
    call(&r, "PATCH", path, admin_auth, "{\"delta\":\"many\"}");
    tsupport_http_assert_error(&r, 400, "invalid_argument", "delta");
    call(&r, "PATCH", path, admin_auth, "{}");
    tsupport_http_assert_error(&r, 400, "invalid_argument", "delta");
    call(&r, "PATCH", path, admin_auth, "{\"delta\":1,\"productId\":\"x\"}");
    tsupport_http_assert_error(&r, 400, "unknown_field", "productId");
    char ghost[ID_STR_LEN], gpath[128];
    id_new(ghost);
    snprintf(gpath, sizeof gpath, "/api/v1/products/%s/stock", ghost);
    call(&r, "PATCH", gpath, admin_auth, "{\"delta\":1}");
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
    call(&r, "PATCH", "/api/v1/products/not-a-uuid/stock", admin_auth, "{\"delta\":1}");
    tsupport_http_assert_error(&r, 400, "invalid_argument", "id");
    /* reserved units are not available */
    reserve_on_bus(id, 3);
    avail_want w = { detail, 7 };
    cr_assert(tsupport_poll_until(available_is, &w, 20000), "stockAvailable never became 7");
}

/* PATCH with an Idempotency-Key. */
static void
call_key(tsupport_resp *r, const char *method, const char *path, const char *body, const char *idem)
{
    char key[300];
    snprintf(key, sizeof key, "Idempotency-Key: %s", idem);
    const char *h[] = { "Content-Type: application/json", admin_auth, key, NULL };
    tsupport_http_call(r, edge.port, method, path, h, body, false);
}

static int64_t
stock_in(const tsupport_resp *r)
{
    json_t *j = tsupport_http_json(r);
    int64_t n = json_integer_value(json_object_get(j, "stockAvailable"));
    json_decref(j);
    return n;
}

/* Issue 20: a restock retried after its answer was lost must not restock
 * twice. With an Idempotency-Key the edge remembers the first answer, and the
 * catalog keeps the adjustment id derived from the key, so even a retry the
 * edge did not remember (its first answer was a 202, or the edge died) is
 * applied once. */
Test(catalog, a_restock_repeated_with_its_idempotency_key_applies_once)
{
    char id[ID_STR_LEN], path[128], detail[128];
    product_post(id, "Speaker", "audio", 100000, 5);
    snprintf(path, sizeof path, "/api/v1/products/%s/stock", id);
    snprintf(detail, sizeof detail, "/api/v1/products/%s", id);
    tsupport_resp r1, r2;
    call_key(&r1, "PATCH", path, "{\"delta\":5}", "restock-1");
    cr_assert_eq(r1.status, 200, "%s", r1.body);
    cr_assert_eq(stock_in(&r1), 10);
    call_key(&r2, "PATCH", path, "{\"delta\":5}", "restock-1");
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    cr_assert_str_eq(r2.body, r1.body, "a repeat answers the first outcome");
    call_key(&r2, "PATCH", path, "{\"delta\":6}", "restock-1");
    tsupport_http_assert_error(&r2, 422, "unprocessable", NULL);

    /* the first answer is lost: the catalog is down, so the edge answers 202
     * after its command timeout and remembers nothing; the command is stored
     * and applied once the catalog is back; the admin retries with the key */
    cr_assert_eq(tsupport_daemon_stop(&edge, 10000), 0);
    tsupport_daemon_start(&edge, "layby-edge", 0, NULL,
                          (const char *const[]){ "LAYBY_EDGE_COMMAND_TIMEOUT=1s", NULL });
    cr_assert_eq(tsupport_daemon_stop(&catalog, 10000), 0);
    call_key(&r1, "PATCH", path, "{\"delta\":5}", "restock-2");
    cr_assert_eq(r1.status, 202, "%s", r1.body);
    tsupport_daemon_start(&catalog, "layby-catalog", 0, NULL, NULL);
    avail_want w = { detail, 15 };
    cr_assert(tsupport_poll_until(available_is, &w, 20000), "stockAvailable never became 15");
    call_key(&r2, "PATCH", path, "{\"delta\":5}", "restock-2");
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    cr_assert_eq(stock_in(&r2), 15, "the retried restock was applied twice: %s", r2.body);

    /* another key is another restock */
    call_key(&r2, "PATCH", path, "{\"delta\":5}", "restock-3");
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    cr_assert_eq(stock_in(&r2), 20);
    char q[256];
    snprintf(q, sizeof q, "SELECT restocked FROM catalog.products WHERE product_id = '%s'", id);
    cr_assert_eq(tsupport_sql_int(q), 15);
}

/* --- wishlist ------------------------------------------------------------------------------ */

Test(catalog, wishlist_add_set_remove_and_list_with_current_prices)
{
    char a[ID_STR_LEN], b[ID_STR_LEN], path[160];
    product_post(a, "Mouse", "acc", 30000, 5);
    product_post(b, "Keyboard", "acc", 90000, 5);
    tsupport_resp r;
    call(&r, "GET", "/api/v1/me/wishlist", NULL, NULL);
    tsupport_http_assert_error(&r, 401, "unauthorized", NULL);
    json_t *w = get_json("/api/v1/me/wishlist", user_auth, 200);
    cr_assert_eq(json_array_size(json_object_get(w, "items")), 0);
    json_decref(w);

    snprintf(path, sizeof path, "/api/v1/me/wishlist/items/%s", a);
    call(&r, "PUT", path, user_auth, "{\"quantity\":2}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    call(&r, "PUT", path, user_auth, "{\"quantity\":3}"); /* set, not add */
    cr_assert_eq(r.status, 200, "%s", r.body);
    snprintf(path, sizeof path, "/api/v1/me/wishlist/items/%s", b);
    call(&r, "PUT", path, user_auth, "{\"quantity\":1}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    static const char *const bad_qty[] = { "{\"quantity\":0}", "{\"quantity\":100}", "{}" };
    for (size_t i = 0; i < LB_COUNTOF(bad_qty); i++) {
        call(&r, "PUT", path, user_auth, bad_qty[i]);
        tsupport_http_assert_error(&r, 400, "invalid_argument", "quantity");
    }
    call(&r, "PUT", path, user_auth, "{\"quantity\":1,\"memberId\":\"x\"}");
    tsupport_http_assert_error(&r, 400, "unknown_field", "memberId");
    char ghost[ID_STR_LEN], gpath[160];
    id_new(ghost);
    snprintf(gpath, sizeof gpath, "/api/v1/me/wishlist/items/%s", ghost);
    call(&r, "PUT", gpath, user_auth, "{\"quantity\":1}");
    tsupport_http_assert_error(&r, 404, "not_found", NULL);

    /* a price change shows on the list */
    char sql[200];
    snprintf(sql, sizeof sql,
             "UPDATE catalog.products SET price_won = 25000 WHERE product_id = '%s'", a);
    tsupport_sql(sql);
    w = get_json("/api/v1/me/wishlist", user_auth, 200);
    json_t *items = json_object_get(w, "items");
    cr_assert_eq(json_array_size(items), 2);
    json_t *first = json_array_get(items, 0);
    cr_assert_str_eq(json_string_value(json_object_get(first, "name")), "Mouse");
    cr_assert_eq(json_integer_value(json_object_get(first, "price")), 25000);
    cr_assert_eq(json_integer_value(json_object_get(first, "quantity")), 3);
    cr_assert_eq(json_integer_value(json_object_get(first, "subtotal")), 75000);
    cr_assert_eq(json_integer_value(json_object_get(w, "total")), 75000 + 90000);
    json_decref(w);

    call(&r, "DELETE", path, user_auth, NULL);
    cr_assert_eq(r.status, 204, "%s", r.body);
    cr_assert_eq(r.body_len, 0);
    call(&r, "DELETE", path, user_auth, NULL);
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
    w = get_json("/api/v1/me/wishlist", user_auth, 200);
    cr_assert_eq(json_array_size(json_object_get(w, "items")), 1);
    json_decref(w);
}

Test(catalog, one_member_cannot_see_or_change_anothers_wishlist)
{
    char p[ID_STR_LEN], q[ID_STR_LEN], path_p[160], path_q[160];
    product_post(p, "Headset", "acc", 50000, 5);
    product_post(q, "Webcam", "acc", 70000, 5);
    snprintf(path_p, sizeof path_p, "/api/v1/me/wishlist/items/%s", p);
    snprintf(path_q, sizeof path_q, "/api/v1/me/wishlist/items/%s", q);
    char ma[ID_STR_LEN], mb[ID_STR_LEN], auth_a[2048], auth_b[2048], body[128];
    id_new(ma);
    id_new(mb);
    tsupport_jwt_member(auth_a, sizeof auth_a, ma, "USER");
    tsupport_jwt_member(auth_b, sizeof auth_b, mb, "USER");
    tsupport_resp r;
    call(&r, "PUT", path_p, auth_a, "{\"quantity\":4}");
    cr_assert_eq(r.status, 200, "%s", r.body);

    /* B sees nothing of A's list ... */
    json_t *w = get_json("/api/v1/me/wishlist", auth_b, 200);
    cr_assert_eq(json_array_size(json_object_get(w, "items")), 0);
    cr_assert_eq(json_integer_value(json_object_get(w, "total")), 0);
    json_decref(w);
    /* ... cannot remove A's item (it is not on B's list) ... */
    call(&r, "DELETE", path_p, auth_b, NULL);
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
    /* ... cannot name A: the member id comes from the token only ... */
    snprintf(body, sizeof body, "{\"quantity\":9,\"memberId\":\"%s\"}", ma);
    call(&r, "PUT", path_p, auth_b, body);
    tsupport_http_assert_error(&r, 400, "unknown_field", "memberId");
    /* ... and B's own lines of the same product are B's */
    call(&r, "PUT", path_p, auth_b, "{\"quantity\":1}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    call(&r, "PUT", path_q, auth_b, "{\"quantity\":2}");
    cr_assert_eq(r.status, 200, "%s", r.body);

    w = get_json("/api/v1/me/wishlist", auth_a, 200);
    json_t *items = json_object_get(w, "items");
    cr_assert_eq(json_array_size(items), 1, "A's list changed: %zu items", json_array_size(items));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "productId")), p);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(items, 0), "quantity")), 4);
    cr_assert_eq(json_integer_value(json_object_get(w, "total")), 4 * 50000);
    json_decref(w);

    /* A's removal leaves B's line of the same product */
    call(&r, "DELETE", path_p, auth_a, NULL);
    cr_assert_eq(r.status, 204, "%s", r.body);
    w = get_json("/api/v1/me/wishlist", auth_b, 200);
    cr_assert_eq(json_array_size(json_object_get(w, "items")), 2);
    cr_assert_eq(json_integer_value(json_object_get(w, "total")), 50000 + 2 * 70000);
    json_decref(w);
}

/* --- the read model ------------------------------------------------------------------------ */

/* stockAvailable as GET path answers it, -1 if it did not answer 200. */
static int64_t
detail_available(const char *path)
{
    tsupport_resp r;
    call(&r, "GET", path, NULL, NULL);
    if (r.status != 200)
        return -1;
    json_t *j = tsupport_http_json(&r);
    int64_t n = json_integer_value(json_object_get(j, "stockAvailable"));
    json_decref(j);
    return n;
}

#define MODEL_STALE_MAX_US 500000 /* "at most a few hundred milliseconds" */

Test(catalog, a_stock_change_shows_in_the_read_model_within_the_bound)
{
    model_ready_wait();
    char id[ID_STR_LEN], path[128], detail[128];
    product_post(id, "Tablet", "tablet", 500000, 10);
    snprintf(path, sizeof path, "/api/v1/products/%s/stock", id);
    snprintf(detail, sizeof detail, "/api/v1/products/%s", id);
    cr_assert_eq(detail_available(detail), 10);
    long long before = tsupport_metric(edge.port, MODEL_READS);
    long long reads = 0;
    int64_t worst_us = 0;
    for (int round = 1; round <= 5; round++) {
        tsupport_resp r;
        call(&r, "PATCH", path, admin_auth, "{\"delta\":1}");
        cr_assert_eq(r.status, 200, "%s", r.body); /* committed in the catalog */
        int64_t t0 = lb_mono_us(), got;
        while ((got = detail_available(detail)) != 10 + round && lb_mono_us() - t0 < 5000000)
            reads++;
        reads++;
        cr_assert_eq(got, 10 + round, "stockAvailable %lld after 5 s", (long long)got);
        if (lb_mono_us() - t0 > worst_us)
            worst_us = lb_mono_us() - t0;
    }
    cr_assert_eq(tsupport_metric(edge.port, MODEL_READS) - before, reads,
                 "a read was not answered by the read model");
    fprintf(stderr, "read model: a stock change showed after at most %lld us\n",
            (long long)worst_us);
    cr_assert_lt(worst_us, MODEL_STALE_MAX_US, "a stock change took %lld us to show",
                 (long long)worst_us);
}

Test(catalog, read_model_rebuilds_after_an_edge_restart)
{
    model_ready_wait();
    char id[ID_STR_LEN], detail[128];
    product_post(id, "Monitor", "monitor", 300000, 9);
    snprintf(detail, sizeof detail, "/api/v1/products/%s", id);
    cr_assert_eq(tsupport_daemon_stop(&edge, 10000), 0);
    reserve_on_bus(id, 2); /* while no edge runs */
    tsupport_wait_count(20000, 7,
                        "SELECT stock_available FROM catalog.products WHERE product_id = '%s'", id);
    /* An edge whose model cannot load (the catalog is down) answers nothing
     * from it: an empty page would be a lie. */
    cr_assert_eq(tsupport_daemon_stop(&catalog, 10000), 0);
    tsupport_daemon_start(&edge, "layby-edge", 0, NULL, NULL);
    tsupport_resp r;
    call(&r, "GET", "/api/v1/products?category=monitor", NULL, NULL);
    cr_assert_geq(r.status, 500, "a cold model answered %ld %s", r.status, r.body);
    call(&r, "GET", detail, NULL, NULL);
    cr_assert_geq(r.status, 500, "a cold model answered %ld %s", r.status, r.body);
    tsupport_daemon_start(&catalog, "layby-catalog", 0, NULL, NULL);
    model_ready_wait(); /* the snapshot, once the catalog answers */
    cr_assert_eq(detail_available(detail), 7);
    reserve_on_bus(id, 3); /* after it: from the stream */
    tsupport_wait_count(20000, 4,
                        "SELECT stock_available FROM catalog.products WHERE product_id = '%s'", id);
    /* With the catalog stopped only the read model can answer. */
    cr_assert_eq(tsupport_daemon_stop(&catalog, 10000), 0);
    avail_want w = { detail, 4 };
    cr_assert(tsupport_poll_until(available_is, &w, 20000), "detail says %lld, not 4",
              (long long)detail_available(detail));
    json_t *pg = get_json("/api/v1/products?category=monitor", NULL, 200);
    json_t *items = json_object_get(pg, "items");
    cr_assert_eq(json_array_size(items), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "productId")), id);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(items, 0), "stockAvailable")),
                 4);
    json_decref(pg);
}

Test(catalog, read_model_catches_up_after_a_nats_server_restart)
{
    model_ready_wait();
    char id[ID_STR_LEN], detail[128];
    product_post(id, "Speaker", "audio", 80000, 6);
    snprintf(detail, sizeof detail, "/api/v1/products/%s", id);
    tsupport_nats_stop();
    tsupport_nats_start();
    reserve_on_bus(id, 1);
    tsupport_wait_count(30000, 5,
                        "SELECT stock_available FROM catalog.products WHERE product_id = '%s'", id);
    model_ready_wait();
    avail_want w = { detail, 5 };
    cr_assert(tsupport_poll_until(available_is, &w, 20000), "detail says %lld, not 5",
              (long long)detail_available(detail));
    /* the current data comes from the model itself, not from the catalog */
    long long served = tsupport_metric(edge.port, MODEL_READS);
    cr_assert_eq(detail_available(detail), 5);
    json_t *pg = get_json("/api/v1/products?q=SPEAK", NULL, 200);
    json_t *items = json_object_get(pg, "items");
    cr_assert_eq(json_array_size(items), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(items, 0), "stockAvailable")),
                 5);
    json_decref(pg);
    cr_assert_eq(tsupport_metric(edge.port, MODEL_READS) - served, 2,
                 "the catalog answered after the restart");
}

Test(catalog, a_product_the_model_does_not_hold_is_read_from_the_catalog)
{
    model_ready_wait();
    /* Written behind the catalog's back: no event, so no model holds it, as
     * for a product created a moment ago through another edge. */
    char id[ID_STR_LEN], sql[512], detail[128];
    id_new(id);
    snprintf(sql, sizeof sql,
             "INSERT INTO catalog.products (product_id, name, price_won, details, category, "
             "stock_available, initial_stock, created_at) VALUES ('%s', 'Ghost', 1000, '', "
             "'ghost', 3, 3, now())",
             id);
    tsupport_sql(sql);
    snprintf(detail, sizeof detail, "/api/v1/products/%s", id);
    long long asked =
        tsupport_metric(edge.port, "layby_edge_model_reads_total{answer=\"catalog\"}");
    json_t *p = get_json(detail, NULL, 200);
    cr_assert_str_eq(json_string_value(json_object_get(p, "name")), "Ghost");
    cr_assert_eq(json_integer_value(json_object_get(p, "stockAvailable")), 3);
    json_decref(p);
    cr_assert_eq(tsupport_metric(edge.port, "layby_edge_model_reads_total{answer=\"catalog\"}"),
                 asked + 1);
    /* an unknown product is the catalog's 404 */
    char ghost[ID_STR_LEN];
    id_new(ghost);
    snprintf(detail, sizeof detail, "/api/v1/products/%s", ghost);
    tsupport_resp r;
    call(&r, "GET", detail, NULL, NULL);
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
}

/* The catalog's answer to a query on the bus, as JSON text the way the edge
 * encodes a reply (codec_json_encode_text). */
static char *
catalog_json(const char *subject, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *reply_type)
{
    bus *b = tsupport_admin_bus("catalog-e2e");
    bus_envelope env;
    bus_envelope_init(&env, req->descriptor, NULL);
    natsMsg *reply = NULL;
    ProtobufCMessage *msg = NULL;
    char *text = NULL;
    lb_err err;
    lb_err_clear(&err);
    cr_assert_eq(bus_request(&reply, b, subject, &env, req, 5000, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(bus_reply_decode(&msg, reply, reply_type, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(codec_json_encode_text(&text, msg, &err), LB_OK, "%s", err.msg);
    protobuf_c_message_free_unpacked(msg, NULL);
    natsMsg_Destroy(reply);
    bus_close(b);
    return text;
}

/* GET path must be answered by the read model with exactly `want`. */
static void
model_body_is(const char *path, const char *want)
{
    long long served = tsupport_metric(edge.port, MODEL_READS);
    tsupport_resp r;
    call(&r, "GET", path, NULL, NULL);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
    cr_assert_eq(tsupport_metric(edge.port, MODEL_READS) - served, 1,
                 "GET %s was not answered by the read model", path);
    cr_assert_str_eq(r.body, want, "GET %s: the model and the catalog differ", path);
}

Test(catalog, the_read_model_answers_the_catalogs_bytes)
{
    model_ready_wait();
    /* text the codec must escape, non-ASCII, and a reserved unit */
    static const char *const names[] = { "Quote \\\"q\\\" and back\\\\slash </x>",
                                         "Ünïcode — 한국어 & tab\\there", "ctl \\u0001 char",
                                         "plain" };
    char ids[LB_COUNTOF(names)][ID_STR_LEN];
    for (size_t i = 0; i < LB_COUNTOF(names); i++)
        product_post(ids[i], names[i], "bytes", 999999999990 + (int64_t)i, 5 + (int64_t)i);
    reserve_on_bus(ids[0], 5); /* stock 0 */
    char path[512];
    snprintf(path, sizeof path, "/api/v1/products/%s", ids[0]);
    avail_want w = { path, 0 };
    cr_assert(tsupport_poll_until(available_is, &w, 20000), "stockAvailable never became 0");

    for (size_t i = 0; i < LB_COUNTOF(names); i++) {
        Layby__V1__GetProduct g = LAYBY__V1__GET_PRODUCT__INIT;
        g.product_id = ids[i];
        char *want =
            catalog_json(SUBJ_CATALOG_GET_PRODUCT, &g.base, &layby__v1__product__descriptor);
        snprintf(path, sizeof path, "/api/v1/products/%s", ids[i]);
        model_body_is(path, want);
        free(want);
    }
    /* pages with a cursor, the last page's empty cursor, a search */
    char cursor[256] = "";
    int pages = 0;
    do {
        Layby__V1__ListProducts l = LAYBY__V1__LIST_PRODUCTS__INIT;
        l.limit = 3;
        l.category = "bytes";
        l.cursor = cursor;
        char *want =
            catalog_json(SUBJ_CATALOG_LIST_PRODUCTS, &l.base, &layby__v1__product_page__descriptor);
        snprintf(path, sizeof path, "/api/v1/products?limit=3&category=bytes%s%s",
                 cursor[0] ? "&cursor=" : "", cursor);
        model_body_is(path, want);
        json_t *j = json_loads(want, 0, NULL);
        snprintf(cursor, sizeof cursor, "%s", json_string_value(json_object_get(j, "nextCursor")));
        json_decref(j);
        free(want);
        pages++;
    } while (cursor[0] != '\0' && pages < 5);
    cr_assert_eq(pages, 2);
    Layby__V1__ListProducts l = LAYBY__V1__LIST_PRODUCTS__INIT;
    l.category = "bytes";
    l.q = "UNÏ"; /* Ï does not fold (C locale): no match */
    char *want =
        catalog_json(SUBJ_CATALOG_LIST_PRODUCTS, &l.base, &layby__v1__product_page__descriptor);
    model_body_is("/api/v1/products?category=bytes&q=UN%C3%8F", want);
    cr_assert_str_eq(want, "{\"items\":[],\"nextCursor\":\"\"}");
    free(want);
    l.q = "QUOTE";
    want = catalog_json(SUBJ_CATALOG_LIST_PRODUCTS, &l.base, &layby__v1__product_page__descriptor);
    model_body_is("/api/v1/products?category=bytes&q=QUOTE", want);
    free(want);
}

static bool
events_applied(void *arg)
{
    return tsupport_metric(edge.port, "layby_edge_model_events_total") >= *(long long *)arg;
}

/* An event older than what the model holds: the relay publishing one again
 * after the duplicate window, or two catalog workers' batches stored out of
 * order. It must not move the stock back (the model keeps the highest
 * version per product). */
Test(catalog, an_older_event_does_not_move_the_read_model_back)
{
    model_ready_wait();
    char id[ID_STR_LEN], path[128], detail[128];
    product_post(id, "Router", "router", 120000, 8); /* version 1 */
    snprintf(path, sizeof path, "/api/v1/products/%s/stock", id);
    snprintf(detail, sizeof detail, "/api/v1/products/%s", id);
    tsupport_resp r;
    for (int i = 0; i < 2; i++) { /* versions 2 and 3 */
        call(&r, "PATCH", path, admin_auth, "{\"delta\":-1}");
        cr_assert_eq(r.status, 200, "%s", r.body);
    }
    avail_want w = { detail, 6 };
    cr_assert(tsupport_poll_until(available_is, &w, 20000), "stockAvailable never became 6");

    long long applied = tsupport_metric(edge.port, "layby_edge_model_events_total");
    bus *b = tsupport_admin_bus("catalog-e2e");
    lb_err err;
    lb_err_clear(&err);
    Layby__V1__ProductStockChanged ch = LAYBY__V1__PRODUCT_STOCK_CHANGED__INIT;
    ch.product_id = id;
    ch.stock_available = 7;
    ch.version = 2;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__product_stock_changed__descriptor, NULL);
    cr_assert_eq(bus_publish(b, SUBJ_PRODUCT_STOCK_CHANGED, &env, &ch.base, &err), LB_OK, "%s",
                 err.msg);
    /* the creation again: the whole product at version 1, stock 8 */
    Layby__V1__Product p = LAYBY__V1__PRODUCT__INIT;
    json_t *now = get_json(detail, NULL, 200);
    p.product_id = id;
    p.name = (char *)json_string_value(json_object_get(now, "name"));
    p.details = (char *)json_string_value(json_object_get(now, "details"));
    p.category = (char *)json_string_value(json_object_get(now, "category"));
    p.created_at = (char *)json_string_value(json_object_get(now, "createdAt"));
    p.price = 120000;
    p.stock_available = 8;
    Layby__V1__ProductCreated c = LAYBY__V1__PRODUCT_CREATED__INIT;
    c.product = &p;
    bus_envelope_init(&env, &layby__v1__product_created__descriptor, NULL);
    cr_assert_eq(bus_publish(b, SUBJ_PRODUCT_CREATED, &env, &c.base, &err), LB_OK, "%s", err.msg);
    json_decref(now);
    bus_close(b);
    long long want_applied = applied + 2;
    cr_assert(tsupport_poll_until(events_applied, &want_applied, 20000),
              "the model never applied the two events");

    long long served = tsupport_metric(edge.port, MODEL_READS);
    cr_assert_eq(detail_available(detail), 6, "an older event moved the detail's stock back");
    json_t *pg = get_json("/api/v1/products?category=router", NULL, 200);
    json_t *item = json_array_get(json_object_get(pg, "items"), 0);
    cr_assert_eq(json_integer_value(json_object_get(item, "stockAvailable")), 6,
                 "an older event moved the list's stock back");
    json_decref(pg);
    cr_assert_eq(tsupport_metric(edge.port, MODEL_READS) - served, 2,
                 "the catalog answered, not the model");
}

static bool
edge2_model_ready(void *port)
{
    return tsupport_metric(*(int *)port, "layby_edge_model_ready") == 1;
}

static int64_t
available_at(int port, const char *path)
{
    tsupport_resp r;
    tsupport_http_call(&r, port, "GET", path, NULL, NULL, false);
    if (r.status != 200)
        return -1;
    json_t *j = tsupport_http_json(&r);
    int64_t n = json_integer_value(json_object_get(j, "stockAvailable"));
    json_decref(j);
    return n;
}

typedef struct at_want {
    int port;
    const char *path;
    int64_t n;
} at_want;

static bool
available_at_is(void *arg)
{
    at_want *w = arg;
    return available_at(w->port, w->path) == w->n;
}

/* Several edges each keep their own model from the stream: a product
 * created through one and restocked is served by the other from its own
 * memory, with the catalog stopped. */
Test(catalog, two_edges_each_keep_their_own_read_model)
{
    tsupport_proc edge2;
    int port2 = tsupport_port_free();
    char env_port[64];
    snprintf(env_port, sizeof env_port, "LAYBY_EDGE_PORT=%d", port2);
    const char *const env[] = { env_port, NULL };
    tsupport_daemon_start(&edge2, "layby-edge", port2, NULL, env);
    model_ready_wait();
    cr_assert(tsupport_poll_until(edge2_model_ready, &port2, 30000), "edge 2's model not ready");

    char id[ID_STR_LEN], path[128], detail[128];
    product_post(id, "Dock", "dock", 150000, 4); /* through edge 1 */
    snprintf(path, sizeof path, "/api/v1/products/%s/stock", id);
    snprintf(detail, sizeof detail, "/api/v1/products/%s", id);
    tsupport_resp r;
    call(&r, "PATCH", path, admin_auth, "{\"delta\":5}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    at_want w2 = { port2, detail, 9 };
    cr_assert(tsupport_poll_until(available_at_is, &w2, 20000), "edge 2 says %lld, not 9",
              (long long)available_at(port2, detail));
    /* With the catalog stopped only each edge's own model can answer. */
    cr_assert_eq(tsupport_daemon_stop(&catalog, 10000), 0);
    long long served1 = tsupport_metric(edge.port, MODEL_READS);
    long long served2 = tsupport_metric(port2, MODEL_READS);
    cr_assert_eq(available_at(edge.port, detail), 9);
    cr_assert_eq(available_at(port2, detail), 9);
    tsupport_http_call(&r, port2, "GET", "/api/v1/products?category=dock", NULL, NULL, false);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *pg = tsupport_http_json(&r);
    json_t *items = json_object_get(pg, "items");
    cr_assert_eq(json_array_size(items), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "productId")), id);
    json_decref(pg);
    cr_assert_eq(tsupport_metric(edge.port, MODEL_READS) - served1, 1);
    cr_assert_eq(tsupport_metric(port2, MODEL_READS) - served2, 2);
    cr_assert_eq(tsupport_daemon_stop(&edge2, 10000), 0);
}
