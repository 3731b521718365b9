/* edge_dispatch_test.c - the edge's HTTP behaviour in one process, without
 * NATS: civetweb with edge_dispatch on a free port, driven with libcurl.
 *
 * Everything answered before a message would be sent is checked here: the
 * error shape on the wire, 404/405 with Allow, 401 with WWW-Authenticate,
 * 403, the body limits (411/413/415), JSON decoding faults with their field,
 * a malformed id, trace context echo, the operational routes. The bus is
 * NULL, so a request that got as far as the bus would crash the test.
 */
#define _GNU_SOURCE /* strcasestr */
#include <civetweb.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <jwt.h>
#include <string.h>

#include "edge_app.h"
#include "edge_auth.h"
#include "edge_http.h"
#include "edge_idem.h"
#include "edge_openapi.h"
#include "edge_ops.h"
#include "edge_routes.h"
#include "engine/log.h"
#include "tsupport.h"

static edge_app app;
static struct mg_context *http;
static int port;
static char priv_pem[4096], pub_pem[1024];

static void
setup(void)
{
    tsupport_es256_keys(priv_pem, sizeof priv_pem, pub_pem, sizeof pub_pem);

    memset(&app, 0, sizeof app);
    app.cfg.max_body = 1024;
    app.cfg.command_timeout_ms = 1000;
    app.cfg.query_timeout_ms = 1000;
    lb_err err;
    cr_assert_eq(edge_auth_new(&app.auth, pub_pem, strlen(pub_pem), NULL, &err), LB_OK);
    pthread_mutex_init(&app.ready_lock, NULL);
    pthread_mutex_init(&app.kv_lock, NULL);
    cr_assert_eq(id_init(&err), LB_OK);
    edge_routes_metrics_init();
    log_init("edge-test", "t", LOG_ERROR);

    mg_init_library(0);
    const char *opts[] = { "listening_ports",   "127.0.0.1:0", "num_threads", "4",
                           "enable_keep_alive", "yes",         NULL };
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    http = mg_start(&cb, &app, opts);
    cr_assert_not_null(http);
    mg_set_request_handler(http, "/", edge_dispatch, &app);
    struct mg_server_port ports[2];
    cr_assert_eq(mg_get_server_ports(http, 2, ports), 1);
    port = ports[0].port;
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void
teardown(void)
{
    mg_stop(http);
    mg_exit_library();
    edge_auth_free(app.auth);
    curl_global_cleanup();
}

static bool
has_header(const tsupport_resp *r, const char *line)
{
    return strcasestr(r->headers, line) != NULL;
}

/* The shared error-shape check, plus the media type on the wire. */
static void
assert_error(const tsupport_resp *r, long status, const char *code, const char *field)
{
    cr_assert_eq(r->status, status, "want %ld got %ld: %s", status, r->status, r->body);
    cr_assert(has_header(r, "Content-Type: application/json"), "%s", r->headers);
    tsupport_http_assert_error(r, status, code, field);
}

static char admin_auth[2048], user_auth[2048];

static void
tokens(void)
{
    int64_t exp = lb_now_ms() / 1000 + 600;
    tsupport_jwt_mint(admin_auth, sizeof admin_auth, "ADMIN", JWT_ALG_ES256, priv_pem,
                      TSUPPORT_JWT_NO_IAT, exp);
    tsupport_jwt_mint(user_auth, sizeof user_auth, "USER", JWT_ALG_ES256, priv_pem,
                      TSUPPORT_JWT_NO_IAT, exp);
}

static void
post_product(tsupport_resp *r, const char *auth, const char *ctype, const char *body)
{
    const char *h[] = { auth, ctype, NULL };
    tsupport_http_call(r, port, "POST", "/api/v1/products", h, body, false);
}

TestSuite(edge_dispatch, .init = setup, .fini = teardown);

Test(edge_dispatch, healthz_and_trace_context)
{
    tsupport_resp r;
    const char *tp = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const char *h[] = { tp, NULL };
    tsupport_http_call(&r, port, "GET", "/healthz", h, NULL, false);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    cr_assert(has_header(&r, tp), "traceparent echoed: %s", r.headers);

    const char *bad[] = { "traceparent: 00-zz-00", NULL };
    tsupport_http_call(&r, port, "GET", "/healthz", bad, NULL, false);
    const char *got = strcasestr(r.headers, "traceparent: ");
    cr_assert_not_null(got);
    char val[64];
    sscanf(got + strlen("traceparent: "), "%63s", val);
    cr_assert_eq(bus_traceparent_check(val, NULL), LB_OK, "a fresh valid one: %s", val);
}

Test(edge_dispatch, unknown_route_is_404_and_wrong_method_is_405)
{
    tsupport_resp r;
    tsupport_http_call(&r, port, "GET", "/api/v1/nothing", NULL, NULL, false);
    assert_error(&r, 404, "not_found", NULL);
    tsupport_http_call(&r, port, "DELETE", "/api/v1/products/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                       NULL, NULL, false);
    assert_error(&r, 405, "method_not_allowed", NULL);
    cr_assert(has_header(&r, "Allow: GET\r\n"), "%s", r.headers);
    tsupport_http_call(&r, port, "PUT", "/api/v1/products", NULL, NULL, false);
    assert_error(&r, 405, "method_not_allowed", NULL);
    cr_assert(has_header(&r, "Allow: POST, GET\r\n"), "%s", r.headers);
}

Test(edge_dispatch, head_gets_headers_without_a_body)
{
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
    tsupport_resp r;
    memset(&r, 0, sizeof r);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, tsupport_http_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    long code;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    cr_assert_eq(code, 405);
    cr_assert(has_header(&r, "Allow: GET"), "%s", r.headers);
    /* the same connection still works: no stray body bytes were sent */
    curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tsupport_http_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    cr_assert_eq(code, 200);
    cr_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    curl_easy_cleanup(c);
}

Test(edge_dispatch, tokens_and_roles)
{
    tokens();
    tsupport_resp r;
    post_product(&r, NULL, "Content-Type: application/json", "{}");
    assert_error(&r, 401, "unauthorized", NULL);
    cr_assert(has_header(&r, "WWW-Authenticate: Bearer"), "%s", r.headers);

    post_product(&r, "Authorization: Basic YWRtaW46YWRtaW4=", "Content-Type: application/json",
                 "{}");
    assert_error(&r, 401, "unauthorized", NULL);

    post_product(&r, user_auth, "Content-Type: application/json", "{}");
    assert_error(&r, 403, "forbidden", NULL);

    char h[2048];
    tsupport_jwt_mint(h, sizeof h, "ADMIN", JWT_ALG_HS256, pub_pem, TSUPPORT_JWT_NO_IAT,
                      lb_now_ms() / 1000 + 600);
    post_product(&r, h, "Content-Type: application/json", "{}");
    assert_error(&r, 401, "unauthorized", NULL);

    tsupport_jwt_mint(h, sizeof h, "ADMIN", JWT_ALG_ES256, priv_pem, TSUPPORT_JWT_NO_IAT,
                      lb_now_ms() / 1000 - 1);
    post_product(&r, h, "Content-Type: application/json", "{}");
    assert_error(&r, 401, "unauthorized", NULL);
}

Test(edge_dispatch, body_limits_and_content_type)
{
    tokens();
    tsupport_resp r;
    post_product(&r, admin_auth, "Content-Type: text/plain", "{\"name\":\"x\"}");
    assert_error(&r, 415, "unsupported_media_type", NULL);

    char big[2048];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[0] = '{';
    big[sizeof big - 2] = '}';
    post_product(&r, admin_auth, "Content-Type: application/json", big);
    assert_error(&r, 413, "payload_too_large", NULL);
    cr_assert(has_header(&r, "Connection: close"), "unread body: close (%s)", r.headers);

    const char *h[] = { admin_auth, "Content-Type: application/json", NULL };
    tsupport_http_call(&r, port, "POST", "/api/v1/products", h, "{\"name\":\"x\"}", true);
    assert_error(&r, 411, "length_required", NULL);
}

Test(edge_dispatch, json_faults_name_the_field)
{
    tokens();
    tsupport_resp r;
    const char *ct = "Content-Type: application/json; charset=utf-8";
    post_product(&r, admin_auth, ct, "{\"name\":");
    assert_error(&r, 400, "malformed_json", NULL);
    post_product(&r, admin_auth, ct, "{\"name\":\"TV\",\"colour\":\"red\"}");
    assert_error(&r, 400, "unknown_field", "colour");
    post_product(&r, admin_auth, ct, "{\"name\":\"TV\",\"price\":true}");
    assert_error(&r, 400, "wrong_type", "price");
    post_product(&r, admin_auth, ct, "{\"name\":5}");
    assert_error(&r, 400, "wrong_type", "name");
    post_product(&r, admin_auth, ct, "[1,2]");
    assert_error(&r, 400, "wrong_type", NULL);
    post_product(&r, admin_auth, ct, "");
    assert_error(&r, 400, "malformed_json", NULL);
}

Test(edge_dispatch, malformed_product_id_is_400)
{
    tsupport_resp r;
    tsupport_http_call(&r, port, "GET", "/api/v1/products/not-a-uuid", NULL, NULL, false);
    assert_error(&r, 400, "invalid_argument", "id");
}

Test(edge_dispatch, metrics_and_openapi)
{
    tsupport_resp r;
    tsupport_http_call(&r, port, "GET", "/nope", NULL, NULL, false);
    tsupport_http_call(&r, port, "GET", "/api/v1/openapi.json", NULL, NULL, false);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, edge_openapi_text(), "the generated document is what is served");
    json_t *doc = json_loads(r.body, 0, NULL);
    cr_assert(json_is_object(json_object_get(doc, "paths")));
    json_decref(doc);
    tsupport_http_call(&r, port, "GET", "/metrics", NULL, NULL, false);
    cr_assert_eq(r.status, 200);
    cr_assert(has_header(&r, "Content-Type: text/plain"), "%s", r.headers);
    cr_assert_not_null(strstr(r.body,
                              "layby_edge_requests_total{route=\"unmatched\",method=\"any\","
                              "status=\"404\"} 1"),
                       "%s", r.body);
    cr_assert_not_null(
        strstr(r.body, "layby_edge_requests_total{route=\"/api/v1/openapi.json\",method=\"GET\","
                       "status=\"200\"} 1"),
        "%s", r.body);
    cr_assert_not_null(strstr(r.body, "layby_edge_request_duration_seconds_bucket"), "%s", r.body);
}

Test(edge_dispatch, keep_alive_connection_serves_many_requests)
{
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
    tsupport_resp r;
    memset(&r, 0, sizeof r);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tsupport_http_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    for (int i = 0; i < 20; i++) {
        r.body_len = 0;
        cr_assert_eq(curl_easy_perform(c), CURLE_OK);
        long code, conns = -1;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
        cr_assert_eq(code, 200);
        if (i > 0)
            cr_assert_eq(conns, 0, "request %d opened a new connection", i);
    }
    curl_easy_cleanup(c);
}
