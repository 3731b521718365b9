/* catalog_test.c - the catalog's routes through the whole stack (HTTP ->
 * layby-edge -> NATS -> layby-catalog -> PostgreSQL): product pages with the
 * keyset cursor, search and category, stock adjustments, stockAvailable after
 * reservations, and the wishlist, with each route's errors. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
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
