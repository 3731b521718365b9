/* products_test.c - products through the whole stack: HTTP -> layby-edge ->
 * JetStream -> layby-catalog -> PostgreSQL, and back.
 *
 * Runs under tests/support/harness.sh, which starts nats-server and
 * PostgreSQL and exports their settings and the dev JWT key pair. Each test
 * resets state and starts its own daemons; tokens are minted here with the
 * private key, as the member service will.
 */
#include <criterion/criterion.h>
#include <curl/curl.h> /* curl_global_init */
#include <jansson.h>
#include <jwt.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"
#include "lb.h"
#include "tsupport.h"

static tsupport_proc catalog, edge;
static char admin_auth[2048], user_auth[2048], hs256_auth[2048], expired_auth[2048];

/* --- tokens ------------------------------------------------------------------- */

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
tokens(void)
{
    char *priv = file_text(tsupport_env_req("LAYBY_JWT_PRIVATE_KEY_FILE"));
    char *pub = file_text(tsupport_env_req("LAYBY_JWT_PUBLIC_KEY_FILE"));
    int64_t now = lb_now_ms() / 1000, later = now + 600;
    tsupport_jwt_mint(admin_auth, sizeof admin_auth, "ADMIN", JWT_ALG_ES256, priv, now, later);
    tsupport_jwt_mint(user_auth, sizeof user_auth, "USER", JWT_ALG_ES256, priv, now, later);
    tsupport_jwt_mint(expired_auth, sizeof expired_auth, "ADMIN", JWT_ALG_ES256, priv, now,
                      now - 5);
    /* the alg-confusion attack: HMAC keyed with the public key text */
    tsupport_jwt_mint(hs256_auth, sizeof hs256_auth, "ADMIN", JWT_ALG_HS256, pub, now, later);
    free(priv);
    free(pub);
}

/* --- HTTP ----------------------------------------------------------------------- */

static void
get(tsupport_resp *r, const char *path)
{
    tsupport_http_call(r, edge.port, "GET", path, NULL, NULL, false);
}

static void
post_product(tsupport_resp *r, const char *auth, const char *idem_key, const char *body)
{
    char key[300] = "";
    if (idem_key != NULL)
        snprintf(key, sizeof key, "Idempotency-Key: %s", idem_key);
    /* auth and idem_key may be NULL: list only the lines there are */
    const char *h[4] = { "Content-Type: application/json" };
    size_t n = 1;
    if (auth != NULL)
        h[n++] = auth;
    if (idem_key != NULL)
        h[n++] = key;
    h[n] = NULL;
    tsupport_http_call(r, edge.port, "POST", "/api/v1/products", h, body, false);
}

static const char *
str_of(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    cr_assert_not_null(s, "no string %s", k);
    return s;
}

static bool
rfc3339_utc(const char *s)
{
    regex_t re;
    regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$",
            REG_EXTENDED | REG_NOSUB);
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

static int64_t
rows_named(const char *name)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM catalog.products WHERE name = '%s'", name);
    return tsupport_sql_int(sql);
}

/* --- daemons ---------------------------------------------------------------------- */

static bool
ready_is(void *want)
{
    tsupport_resp r;
    get(&r, "/readyz");
    return r.status == *(long *)want;
}

static void
start_edge(const char *const *env)
{
    tsupport_daemon_start(&edge, "layby-edge", 0, NULL, env);
    long ok = 200;
    cr_assert(tsupport_poll_until(ready_is, &ok, 10000), "edge never became ready");
}

static void
setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    lb_err err;
    cr_assert_eq(id_init(&err), LB_OK);
    tsupport_reset();
    tokens();
}

/* The catalog's /healthz answers before its query responders subscribe:
 * wait until a query gets an answer (404 for an unknown id), not 503. */
static bool
catalog_answers(void *unused)
{
    (void)unused;
    char id[ID_STR_LEN], path[128];
    id_new(id);
    snprintf(path, sizeof path, "/api/v1/products/%s", id);
    tsupport_resp r;
    get(&r, path);
    return r.status == 404;
}

static void
setup_both(void)
{
    setup();
    tsupport_daemon_start(&catalog, "layby-catalog", 0, NULL, NULL);
    start_edge(NULL);
    cr_assert(tsupport_poll_until(catalog_answers, NULL, 10000), "catalog never answered");
}

/* A daemon's sanitizer report lands in its log, not in this test's output:
 * look for one, so an Asan build cannot pass over a memory error. */
static void
assert_log_clean(const tsupport_proc *p)
{
    FILE *f = fopen(p->log, "r");
    if (f == NULL)
        return;
    char line[4096];
    while (fgets(line, sizeof line, f) != NULL)
        cr_expect(strstr(line, "Sanitizer") == NULL && strstr(line, "runtime error") == NULL,
                  "%s: %s", p->log, line);
    fclose(f);
}

/* Stops a daemon and checks it stopped cleanly. Called at the end of each
 * test body: assertions in .fini are printed but do not fail the test. */
static void
stop_checked(tsupport_proc *p)
{
    if (p->pid == 0)
        return;
    int rc = tsupport_daemon_stop(p, 10000);
    cr_expect_eq(rc, 0, "%s exited with %d (log %s)", p->name, rc, p->log);
    assert_log_clean(p);
}

static void
finish(void)
{
    stop_checked(&edge);
    stop_checked(&catalog);
}

static void
teardown(void)
{
    /* after a failed assertion the body did not reach finish() */
    if (edge.pid != 0)
        tsupport_daemon_stop(&edge, 10000);
    if (catalog.pid != 0)
        tsupport_daemon_stop(&catalog, 10000);
    curl_global_cleanup();
}

TestSuite(products, .init = setup_both, .fini = teardown, .timeout = 120);

/* --- the happy path ------------------------------------------------------------- */

Test(products, create_then_read_back)
{
    tsupport_resp r;
    const char *tp = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const char *h[] = { "Content-Type: application/json", admin_auth, tp, NULL };
    tsupport_http_call(&r, edge.port, "POST", "/api/v1/products", h,
                       "{\"name\":\"OLED TV 55\",\"price\":1890000,\"details\":\"4K, 120 Hz\","
                       "\"category\":\"tv\",\"stock\":7}",
                       false);
    cr_assert_eq(r.status, 201, "%s", r.body);
    char trace[64];
    cr_assert(tsupport_http_header(&r, "traceparent", trace, sizeof trace));
    cr_assert_str_eq(trace, tp + strlen("traceparent: "));

    json_t *p = tsupport_http_json(&r);
    const char *id = str_of(p, "productId");
    cr_assert(id_valid(id), "%s", id);
    cr_assert_str_eq(str_of(p, "name"), "OLED TV 55");
    cr_assert_eq(json_integer_value(json_object_get(p, "price")), 1890000);
    cr_assert_str_eq(str_of(p, "details"), "4K, 120 Hz");
    cr_assert_str_eq(str_of(p, "category"), "tv");
    cr_assert_eq(json_integer_value(json_object_get(p, "stockAvailable")), 7);
    cr_assert(rfc3339_utc(str_of(p, "createdAt")), "%s", str_of(p, "createdAt"));
    char loc[128], want_loc[128];
    snprintf(want_loc, sizeof want_loc, "/api/v1/products/%s", id);
    cr_assert(tsupport_http_header(&r, "Location", loc, sizeof loc), "%s", r.headers);
    cr_assert_str_eq(loc, want_loc);

    tsupport_resp g;
    get(&g, loc);
    cr_assert_eq(g.status, 200, "%s", g.body);
    json_t *q = tsupport_http_json(&g);
    cr_assert(json_equal(p, q), "read back differs:\n%s\n%s", r.body, g.body);
    json_decref(q);
    json_decref(p);
    cr_assert_eq(rows_named("OLED TV 55"), 1);
    finish();
}

Test(products, repeat_with_same_idempotency_key_is_the_same_product)
{
    const char *body = "{\"name\":\"Soundbar\",\"price\":399000,\"details\":\"5.1\","
                       "\"category\":\"audio\",\"stock\":3}";
    tsupport_resp a, b, c;
    post_product(&a, admin_auth, "create-soundbar-1", body);
    cr_assert_eq(a.status, 201, "%s", a.body);
    post_product(&b, admin_auth, "create-soundbar-1", body);
    cr_assert_eq(b.status, 201, "%s", b.body);
    cr_assert_str_eq(a.body, b.body, "a repeat returns the first outcome");
    char la[128], lb[128];
    cr_assert(tsupport_http_header(&a, "Location", la, sizeof la));
    cr_assert(tsupport_http_header(&b, "Location", lb, sizeof lb));
    cr_assert_str_eq(la, lb);
    cr_assert_eq(rows_named("Soundbar"), 1, "no second row");

    /* the same key with another body is refused, and creates nothing */
    post_product(&c, admin_auth, "create-soundbar-1",
                 "{\"name\":\"Soundbar\",\"price\":1,\"details\":\"5.1\",\"category\":\"audio\","
                 "\"stock\":3}");
    tsupport_http_assert_error(&c, 422, "unprocessable", NULL);
    cr_assert_eq(rows_named("Soundbar"), 1);

    /* another key is another product */
    post_product(&c, admin_auth, "create-soundbar-2", body);
    cr_assert_eq(c.status, 201, "%s", c.body);
    cr_assert_str_neq(a.body, c.body);
    cr_assert_eq(rows_named("Soundbar"), 2);
    finish();
}

/* --- refusals ----------------------------------------------------------------------- */

Test(products, tokens_are_checked)
{
    const char *body = "{\"name\":\"Blocked\",\"price\":1000,\"details\":\"\",\"category\":\"x\","
                       "\"stock\":1}";
    tsupport_resp r;
    char www[64];
    post_product(&r, NULL, NULL, body);
    tsupport_http_assert_error(&r, 401, "unauthorized", NULL);
    cr_assert(tsupport_http_header(&r, "WWW-Authenticate", www, sizeof www));
    cr_assert_str_eq(www, "Bearer");
    post_product(&r, user_auth, NULL, body);
    tsupport_http_assert_error(&r, 403, "forbidden", NULL);
    post_product(&r, hs256_auth, NULL, body);
    tsupport_http_assert_error(&r, 401, "unauthorized", NULL);
    post_product(&r, expired_auth, NULL, body);
    tsupport_http_assert_error(&r, 401, "unauthorized", NULL);
    cr_assert_eq(rows_named("Blocked"), 0);
    finish();
}

Test(products, bad_bodies_are_400_with_field)
{
    tsupport_resp r;
    post_product(&r, admin_auth, NULL, "{\"name\": \"TV\",");
    tsupport_http_assert_error(&r, 400, "malformed_json", NULL);
    post_product(&r, admin_auth, NULL, "{\"name\":\"TV\",\"colour\":\"black\"}");
    tsupport_http_assert_error(&r, 400, "unknown_field", "colour");
    post_product(&r, admin_auth, NULL, "{\"name\":\"TV\",\"price\":true}");
    tsupport_http_assert_error(&r, 400, "wrong_type", "price");
    /* passes the codec, refused by the catalog's own validation */
    post_product(&r, admin_auth, NULL,
                 "{\"name\":\"Cheap TV\",\"price\":-5,\"details\":\"\",\"category\":\"tv\","
                 "\"stock\":1}");
    tsupport_http_assert_error(&r, 400, "invalid_argument", "price");
    cr_assert_eq(rows_named("Cheap TV"), 0);
    finish();
}

Test(products, body_limits_and_media_type)
{
    tsupport_resp r;
    size_t big = 70 * 1024; /* over the 64 KiB default */
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    post_product(&r, admin_auth, NULL, huge);
    free(huge);
    tsupport_http_assert_error(&r, 413, "payload_too_large", NULL);

    const char *h[] = { "Content-Type: application/json", admin_auth, NULL };
    tsupport_http_call(&r, edge.port, "POST", "/api/v1/products", h, "{\"name\":\"x\"}", true);
    tsupport_http_assert_error(&r, 411, "length_required", NULL);

    const char *t[] = { "Content-Type: text/plain", admin_auth, NULL };
    tsupport_http_call(&r, edge.port, "POST", "/api/v1/products", t, "{\"name\":\"x\"}", false);
    tsupport_http_assert_error(&r, 415, "unsupported_media_type", NULL);
    finish();
}

Test(products, unknown_and_malformed_ids)
{
    char id[ID_STR_LEN], path[128];
    id_new(id);
    snprintf(path, sizeof path, "/api/v1/products/%s", id);
    tsupport_resp r;
    get(&r, path);
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
    get(&r, "/api/v1/products/12345");
    tsupport_http_assert_error(&r, 400, "invalid_argument", "id");
    finish();
}

Test(products, routing_errors)
{
    tsupport_resp r;
    get(&r, "/api/v1/nothing-here");
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
    tsupport_http_call(&r, edge.port, "DELETE", "/api/v1/products", NULL, NULL, false);
    tsupport_http_assert_error(&r, 405, "method_not_allowed", NULL);
    char allow[64];
    cr_assert(tsupport_http_header(&r, "Allow", allow, sizeof allow));
    cr_assert_str_eq(allow, "POST, GET");
    finish();
}

Test(products, operational_routes)
{
    tsupport_resp r;
    get(&r, "/healthz");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    get(&r, "/readyz");
    cr_assert_eq(r.status, 200, "%s", r.body);
    get(&r, "/api/v1/openapi.json");
    cr_assert_eq(r.status, 200);
    json_t *doc = tsupport_http_json(&r);
    cr_assert_not_null(json_object_get(json_object_get(doc, "paths"), "/api/v1/products/{id}"));
    json_decref(doc);
    get(&r, "/metrics");
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "layby_edge_requests_total{route=\"/readyz\",method=\"GET\","
                                      "status=\"200\"}"),
                       "%s", r.body);
    cr_assert_not_null(strstr(r.body, "layby_edge_request_duration_seconds_count"), "%s", r.body);
    finish();
}

/* At info the access log keeps the requests that failed (4xx, 5xx) or were
 * slow, not every request: a line per request cost a quarter to a third of
 * the edge's throughput (docs/DECISIONS.md §2 "Access log"). At debug, the
 * harness's level, every request has its line. */
Test(products, access_log_at_info_keeps_the_failed_requests)
{
    tsupport_resp r;
    get(&r, "/healthz");
    cr_assert_eq(r.status, 200);
    cr_assert(tsupport_log_has(&edge, "\"route\":\"/healthz\",\"status\":200"),
              "no line for a request at debug (%s)", edge.log);
    stop_checked(&edge);
    const char *const info[] = { "LAYBY_LOG_LEVEL=info", NULL };
    start_edge(info);
    get(&r, "/healthz");
    cr_assert_eq(r.status, 200);
    get(&r, "/api/v1/products?limit=0");
    cr_assert_eq(r.status, 400);
    get(&r, "/nope");
    cr_assert_eq(r.status, 404);
    stop_checked(&edge);
    cr_assert_not(tsupport_log_has(&edge, "\"route\":\"/healthz\""),
                  "a fast 200 has a line at info (%s)", edge.log);
    cr_assert_not(tsupport_log_has(&edge, "\"route\":\"/readyz\""),
                  "a fast 200 has a line at info (%s)", edge.log);
    cr_assert(tsupport_log_has(&edge, "\"route\":\"/api/v1/products\",\"status\":400"),
              "no line for a 400 at info (%s)", edge.log);
    cr_assert(tsupport_log_has(&edge, "\"route\":\"unmatched\",\"status\":404"),
              "no line for a 404 at info (%s)", edge.log);
    finish();
}

Test(products, readyz_follows_nats)
{
    long down = 503, up = 200;
    tsupport_nats_stop();
    bool went_down = tsupport_poll_until(ready_is, &down, 10000);
    tsupport_resp r;
    if (went_down) {
        get(&r, "/readyz");
        tsupport_http_assert_error(&r, 503, "unavailable", NULL);
    }
    tsupport_nats_start();
    cr_assert(went_down, "/readyz stayed 200 without NATS");
    cr_assert(tsupport_poll_until(ready_is, &up, 15000), "/readyz did not recover");
    finish();
}

Test(products, sigterm_stops_cleanly)
{
    cr_assert_eq(tsupport_daemon_stop(&edge, 10000), 0);
    cr_assert_not(tsupport_daemon_alive(&edge));
    assert_log_clean(&edge);
    finish();
}

/* --- without a catalog ------------------------------------------------------------- */

static bool
product_readable(void *path)
{
    tsupport_resp r;
    get(&r, path);
    return r.status == 200;
}

TestSuite(products_pending, .init = setup, .fini = teardown, .timeout = 120);

Test(products_pending, unanswered_create_is_202_and_lands_later)
{
    const char *env[] = { "LAYBY_EDGE_COMMAND_TIMEOUT=300ms", NULL };
    start_edge(env);
    tsupport_resp r;
    post_product(&r, admin_auth, "late-1",
                 "{\"name\":\"Late lamp\",\"price\":25000,\"details\":\"\",\"category\":\"home\","
                 "\"stock\":2}");
    cr_assert_eq(r.status, 202, "%s", r.body);
    json_t *p = tsupport_http_json(&r);
    cr_assert_str_eq(str_of(p, "status"), "PENDING");
    char loc[128], want[128];
    snprintf(want, sizeof want, "/api/v1/products/%s", str_of(p, "productId"));
    cr_assert(tsupport_http_header(&r, "Location", loc, sizeof loc));
    cr_assert_str_eq(loc, want);

    /* the command is stored: once the catalog runs, the product appears */
    tsupport_daemon_start(&catalog, "layby-catalog", 0, NULL, NULL);
    cr_assert(tsupport_poll_until(product_readable, loc, 15000), "product never appeared");

    /* the 202 was not remembered: a repeat now gets the real outcome */
    post_product(&r, admin_auth, "late-1",
                 "{\"name\":\"Late lamp\",\"price\":25000,\"details\":\"\",\"category\":\"home\","
                 "\"stock\":2}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *q = tsupport_http_json(&r);
    cr_assert_str_eq(str_of(q, "productId"), str_of(p, "productId"));
    json_decref(q);
    json_decref(p);
    cr_assert_eq(rows_named("Late lamp"), 1);
    finish();
}
