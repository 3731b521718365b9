/* edge_http_test.c - the pure parts of the edge's HTTP layer: the error body
 * shape, body admission (411/413/415), Idempotency-Key checks and hashes, and
 * route matching (params, 404 versus 405) on the real table and on tables
 * made for the purpose.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <ctype.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "edge_app.h"
#include "edge_auth.h"
#include "edge_http.h"
#include "edge_idem.h"
#include "edge_ops.h"
#include "edge_routes.h"
#include "engine/log.h"
#include "engine/subjects.h"

/* --- error body shape ---------------------------------------------------- */

static json_t *
parse_error(const char *text, const char **code, const char **message, const char **field)
{
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    cr_assert_not_null(root, "not JSON: %s (%s)", text, je.text);
    cr_assert_eq(json_object_size(root), 1, "only \"error\" at the top: %s", text);
    json_t *e = json_object_get(root, "error");
    cr_assert(json_is_object(e), "%s", text);
    *code = json_string_value(json_object_get(e, "code"));
    *message = json_string_value(json_object_get(e, "message"));
    *field = json_string_value(json_object_get(e, "field"));
    cr_assert_not_null(*code);
    cr_assert_not_null(*message);
    return root;
}

Test(edge_error, body_has_code_message_and_field)
{
    char *text = NULL;
    cr_assert_eq(
        edge_error_body(&text, LB_ERR_TYPE, "expected an integer", "items[2].quantity", NULL),
        LB_OK);
    const char *code, *msg, *field;
    json_t *root = parse_error(text, &code, &msg, &field);
    cr_assert_str_eq(code, "wrong_type");
    cr_assert_str_eq(msg, "expected an integer");
    cr_assert_str_eq(field, "items[2].quantity");
    cr_assert_eq(json_object_size(json_object_get(root, "error")), 3);
    json_decref(root);
    free(text);
}

Test(edge_error, field_omitted_when_empty_and_message_defaults)
{
    char *text = NULL;
    cr_assert_eq(edge_error_body(&text, LB_ERR_NOT_FOUND, NULL, "", NULL), LB_OK);
    const char *code, *msg, *field;
    json_t *root = parse_error(text, &code, &msg, &field);
    cr_assert_str_eq(code, "not_found");
    cr_assert_str_eq(msg, lb_status_text(LB_ERR_NOT_FOUND));
    cr_assert_null(field);
    cr_assert_eq(json_object_size(json_object_get(root, "error")), 2);
    json_decref(root);
    free(text);
}

Test(edge_error, message_with_quotes_is_escaped)
{
    char *text = NULL;
    cr_assert_eq(edge_error_body(&text, LB_ERR_INVALID, "bad \"name\"\n", "name", NULL), LB_OK);
    const char *code, *msg, *field;
    json_t *root = parse_error(text, &code, &msg, &field);
    cr_assert_str_eq(msg, "bad \"name\"\n");
    json_decref(root);
    free(text);
}

Test(edge_error, server_faults_hide_details)
{
    int status = 0;
    char *text = edge_error_text(&status, LB_ERR_DB, "store", "pq: password authentication failed");
    cr_assert_not_null(text);
    cr_assert_eq(status, 503);
    const char *code, *msg, *field;
    json_t *root = parse_error(text, &code, &msg, &field);
    cr_assert_str_eq(code, "unavailable");
    cr_assert_null(strstr(text, "password"), "internals leaked: %s", text);
    cr_assert_null(field);
    json_decref(root);
    free(text);
}

Test(edge_error, client_faults_keep_details_and_invalid_utf8_falls_back)
{
    int status = 0;
    char *text = edge_error_text(&status, LB_ERR_INVALID, "price", "price must be >= 0");
    cr_assert_eq(status, 400);
    cr_assert_not_null(strstr(text, "\"field\":\"price\""), "%s", text);
    free(text);
    text = edge_error_text(&status, LB_ERR_INVALID, "name", "bad \xff byte");
    cr_assert_not_null(text);
    const char *code, *msg, *field;
    json_t *root = parse_error(text, &code, &msg, &field);
    cr_assert_str_eq(code, "invalid_argument");
    json_decref(root);
    free(text);
    text = edge_error_text(&status, LB_OK, NULL, NULL);
    cr_assert_eq(status, 500, "LB_OK is never sent as an error");
    free(text);
}

/* --- body admission ------------------------------------------------------ */

typedef struct body_case {
    long long content_length;
    char content_type[48]; /* "" = no header; arrays, not pointers: Criterion
                              copies parameters into a fresh process */
    lb_status want;
} body_case;

ParameterizedTestParameters(edge_body, check)
{
    static body_case cases[] = {
        { 10, "application/json", LB_OK },
        { 0, "application/json", LB_OK },
        { 65536, "application/json; charset=utf-8", LB_OK },
        { 10, "Application/JSON", LB_OK },
        { -1, "application/json", LB_ERR_LENGTH },
        { 65537, "application/json", LB_ERR_TOO_LARGE },
        { 10, "text/plain", LB_ERR_MEDIA_TYPE },
        { 10, "", LB_ERR_MEDIA_TYPE },
        { 10, "application/jsonx", LB_ERR_MEDIA_TYPE },
        { 10, "application/x-www-form-urlencoded", LB_ERR_MEDIA_TYPE },
    };
    return cr_make_param_array(body_case, cases, LB_COUNTOF(cases));
}

ParameterizedTest(body_case *c, edge_body, check)
{
    lb_err err;
    lb_err_clear(&err);
    const char *ct = c->content_type[0] ? c->content_type : NULL;
    lb_status s = edge_body_check(c->content_length, ct, 65536, &err);
    cr_assert_eq(s, c->want, "length %lld type %s: got %s", c->content_length, ct ? ct : "(none)",
                 lb_status_name(s));
    if (s != LB_OK)
        cr_assert_eq(err.code, s);
}

Test(edge_body, statuses_match_the_contract)
{
    cr_assert_eq(lb_status_http(LB_ERR_LENGTH), 411);
    cr_assert_eq(lb_status_http(LB_ERR_TOO_LARGE), 413);
    cr_assert_eq(lb_status_http(LB_ERR_MEDIA_TYPE), 415);
}

/* --- Idempotency-Key ------------------------------------------------------ */

Test(edge_idem, key_syntax)
{
    cr_assert(edge_idem_key_ok("order-2024-0001"));
    cr_assert(edge_idem_key_ok("a"));
    cr_assert_not(edge_idem_key_ok(""));
    cr_assert_not(edge_idem_key_ok(NULL));
    cr_assert_not(edge_idem_key_ok("tab\there"));
    char long_key[EDGE_IDEM_KEY_MAX + 1];
    memset(long_key, 'k', EDGE_IDEM_KEY_MAX);
    long_key[EDGE_IDEM_KEY_MAX] = '\0';
    cr_assert_not(edge_idem_key_ok(long_key));
    long_key[EDGE_IDEM_KEY_MAX - 1] = '\0';
    cr_assert(edge_idem_key_ok(long_key));
}

Test(edge_idem, hashes_are_stable_and_separate_their_inputs)
{
    char k1[EDGE_HASH_HEX], b1[EDGE_HASH_HEX], k2[EDGE_HASH_HEX], b2[EDGE_HASH_HEX];
    edge_idem_hashes(k1, b1, "m1", "POST /api/v1/products", "key", "{}", 2);
    edge_idem_hashes(k2, b2, "m1", "POST /api/v1/products", "key", "{}", 2);
    cr_assert_str_eq(k1, k2);
    cr_assert_str_eq(b1, b2);
    cr_assert_eq(strlen(k1), 64);
    cr_assert_eq(strspn(k1, "0123456789abcdef"), 64, "KV-safe hex: %s", k1);
    edge_idem_hashes(k2, b2, "m2", "POST /api/v1/products", "key", "{ }", 3);
    cr_assert_str_neq(k1, k2, "another member's key is another record");
    cr_assert_str_neq(b1, b2);
    edge_idem_hashes(k1, b1, "m1", "POST /api/v1/productsk", "ey", "", 0);
    edge_idem_hashes(k2, b2, "m1", "POST /api/v1/products", "key", "", 0);
    cr_assert_str_neq(k1, k2, "field boundaries matter");
}

/* --- route matching -------------------------------------------------------- */

static lb_status
find(const edge_route *routes, size_t n, const char *method, const char *path,
     const edge_route **out, edge_param *params, size_t *np, char *allow)
{
    *out = NULL;
    *np = 0;
    return edge_route_find(out, params, np, allow, routes, n, method, path);
}

Test(edge_route, real_table_params_404_and_405)
{
    size_t n;
    const edge_route *routes = edge_routes_table(&n);
    const edge_route *r;
    edge_param p[EDGE_PARAMS_MAX];
    size_t np;
    char allow[EDGE_ALLOW_MAX];

    cr_assert_eq(find(routes, n, "GET", "/api/v1/products/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", &r,
                      p, &np, allow),
                 LB_OK);
    cr_assert_str_eq(r->path, "/api/v1/products/{id}");
    cr_assert_eq(r->who, EDGE_PUBLIC);
    cr_assert_eq(np, 1);
    cr_assert_eq(p[0].name_len, 2);
    cr_assert_eq(strncmp(p[0].name, "id", 2), 0);
    cr_assert_eq(p[0].len, 36);
    cr_assert_eq(strncmp(p[0].val, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", 36), 0);

    cr_assert_eq(find(routes, n, "POST", "/api/v1/products", &r, p, &np, allow), LB_OK);
    cr_assert_eq(r->who, EDGE_ADMIN);
    cr_assert_eq(r->kind, EDGE_KIND_COMMAND);
    cr_assert_str_eq(r->subject, SUBJ_CATALOG_CREATE_PRODUCT);
    cr_assert_eq(np, 0);

    cr_assert_eq(find(routes, n, "DELETE", "/api/v1/products/abc", &r, p, &np, allow),
                 LB_ERR_METHOD);
    cr_assert_null(r);
    cr_assert_str_eq(allow, "GET");
    cr_assert_eq(find(routes, n, "PUT", "/healthz", &r, p, &np, allow), LB_ERR_METHOD);
    cr_assert_str_eq(allow, "GET");

    static const char *const unknown[] = {
        "/",     "/api/v1/product",     "/api/v1/products/",         "/api/v1/products/a/b",
        "/nope", "/healthz/",           "/api/v1/products//",        "//api/v1/products",
        "",      "/api/v1/openapi.jso", "/api/v1/products/a/stocks",
    };
    for (size_t i = 0; i < LB_COUNTOF(unknown); i++)
        cr_assert_eq(find(routes, n, "GET", unknown[i], &r, p, &np, allow), LB_ERR_NOT_FOUND,
                     "%s should be 404", unknown[i]);
}

Test(edge_route, several_params_and_allow_lists)
{
    /* clang-format off */
    static const edge_route t[] = {
        { .method = "GET",    .path = "/a/{x}/b/{y}", .who = EDGE_MEMBER },
        { .method = "PATCH",  .path = "/a/{x}/b/{y}", .who = EDGE_MEMBER },
        { .method = "DELETE", .path = "/a/{x}/b/{y}", .who = EDGE_MEMBER },
        { .method = "PATCH",  .path = "/a/{x}/b/{y}", .who = EDGE_ADMIN  },
        { .method = "GET",    .path = "/a/search",    .who = EDGE_PUBLIC },
        { .method = "GET",    .path = "/a/{x}",       .who = EDGE_PUBLIC },
    };
    /* clang-format on */
    const edge_route *r;
    edge_param p[EDGE_PARAMS_MAX];
    size_t np;
    char allow[EDGE_ALLOW_MAX];

    cr_assert_eq(find(t, LB_COUNTOF(t), "DELETE", "/a/12/b/xyz", &r, p, &np, allow), LB_OK);
    cr_assert_eq(r, &t[2]);
    cr_assert_eq(np, 2);
    cr_assert_eq(p[0].len, 2);
    cr_assert_eq(strncmp(p[0].val, "12", 2), 0);
    cr_assert_eq(strncmp(p[1].val, "xyz", 3), 0);

    cr_assert_eq(find(t, LB_COUNTOF(t), "POST", "/a/12/b/xyz", &r, p, &np, allow), LB_ERR_METHOD);
    cr_assert_str_eq(allow, "GET, PATCH, DELETE", "each method once, in table order");

    cr_assert_eq(find(t, LB_COUNTOF(t), "GET", "/a/search", &r, p, &np, allow), LB_OK);
    cr_assert_eq(r, &t[4], "the literal row comes first");
    cr_assert_eq(np, 0);
    cr_assert_eq(find(t, LB_COUNTOF(t), "GET", "/a/other", &r, p, &np, allow), LB_OK);
    cr_assert_eq(r, &t[5]);
    cr_assert_eq(find(t, LB_COUNTOF(t), "get", "/a/other", &r, p, &np, allow), LB_ERR_METHOD,
                 "methods are case-sensitive (RFC 9110)");
}

Test(edge_route, param_copy_is_bounded)
{
    edge_req r = { .n_params = 1 };
    r.params[0] = (edge_param){ .name = "id}", .name_len = 2, .val = "abcdef/rest", .len = 6 };
    char out[7];
    cr_assert(edge_param_copy(&r, "id", out, sizeof out));
    cr_assert_str_eq(out, "abcdef");
    char small[6];
    cr_assert_not(edge_param_copy(&r, "id", small, sizeof small), "too long is refused");
    cr_assert_not(edge_param_copy(&r, "i", out, sizeof out));
    cr_assert_not(edge_param_copy(&r, "idx", out, sizeof out));
}
