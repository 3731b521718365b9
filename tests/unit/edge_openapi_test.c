/* edge_openapi_test.c - the route rows and the OpenAPI document generated
 * from them.
 *
 * The expectations here are derived from the rows and the protobuf
 * descriptors independently of edge_openapi.c, never from a hand-kept list:
 * a route, a message field, an enum value or an error code missing from the
 * document fails a test. The document is also validated as OpenAPI 3.0 by
 * tests/tools/openapi_check.py (the OpenAPI Initiative's JSON Schema).
 */
#include <civetweb.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "codectest.pb-c.h"
#include "edge_http.h"
#include "edge_openapi.h"
#include "edge_routes.h"
#include "edge_run.h"
#include "engine/subjects.h"
#include "layby/v1/catalog.pb-c.h"

static json_t *
build(const edge_route *routes, size_t n)
{
    json_t *doc = NULL;
    lb_err err;
    cr_assert_eq(edge_openapi_build(&doc, routes, n, &err), LB_OK, "%s", err.msg);
    return doc;
}

static json_t *
op_of(json_t *doc, const edge_route *rt)
{
    char m[16];
    size_t i = 0;
    for (; rt->method[i] && i < sizeof m - 1; i++)
        m[i] = (char)tolower((unsigned char)rt->method[i]);
    m[i] = '\0';
    return json_object_get(json_object_get(json_object_get(doc, "paths"), rt->path), m);
}

/* Follows a {"$ref":"#/components/schemas/X"} (or an allOf around one). */
static json_t *
deref(json_t *doc, json_t *s)
{
    if (json_object_get(s, "allOf") != NULL)
        s = json_array_get(json_object_get(s, "allOf"), 0);
    const char *ref = json_string_value(json_object_get(s, "$ref"));
    if (ref == NULL)
        return s;
    const char *prefix = "#/components/schemas/";
    cr_assert_eq(strncmp(ref, prefix, strlen(prefix)), 0, "%s", ref);
    json_t *t = json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"),
                                ref + strlen(prefix));
    cr_assert_not_null(t, "unresolved %s", ref);
    return t;
}

/* clang-format off */
static const struct { ProtobufCType type; const char *json; } want_types[] = {
    { PROTOBUF_C_TYPE_INT32, "integer" },  { PROTOBUF_C_TYPE_SINT32, "integer" },
    { PROTOBUF_C_TYPE_SFIXED32, "integer" }, { PROTOBUF_C_TYPE_INT64, "integer" },
    { PROTOBUF_C_TYPE_SINT64, "integer" }, { PROTOBUF_C_TYPE_SFIXED64, "integer" },
    { PROTOBUF_C_TYPE_UINT32, "integer" }, { PROTOBUF_C_TYPE_FIXED32, "integer" },
    { PROTOBUF_C_TYPE_UINT64, "integer" }, { PROTOBUF_C_TYPE_FIXED64, "integer" },
    { PROTOBUF_C_TYPE_FLOAT, "number" },   { PROTOBUF_C_TYPE_DOUBLE, "number" },
    { PROTOBUF_C_TYPE_BOOL, "boolean" },   { PROTOBUF_C_TYPE_STRING, "string" },
    { PROTOBUF_C_TYPE_BYTES, "string" },
};
/* clang-format on */

static void assert_message(json_t *doc, json_t *schema, const ProtobufCMessageDescriptor *d,
                           int depth);

/* One value of field f (an array element for a repeated field). */
static void
assert_value(json_t *doc, json_t *s, const ProtobufCFieldDescriptor *f, int depth)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        assert_message(doc, deref(doc, s), f->descriptor, depth + 1);
        return;
    }
    if (f->type == PROTOBUF_C_TYPE_ENUM) {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        json_t *names = json_object_get(deref(doc, s), "enum");
        cr_assert_eq(json_array_size(names), e->n_values, "%s: enum values", f->name);
        for (unsigned i = 0; i < e->n_values; i++)
            cr_assert_str_eq(json_string_value(json_array_get(names, i)), e->values[i].name);
        return;
    }
    const char *want = NULL;
    for (size_t i = 0; i < LB_COUNTOF(want_types); i++)
        if (want_types[i].type == f->type)
            want = want_types[i].json;
    cr_assert_not_null(want, "%s: type %d has no JSON type", f->name, f->type);
    cr_assert_str_eq(json_string_value(json_object_get(deref(doc, s), "type")), want, "%s",
                     f->name);
}

/* Every field of d is a property of schema, under its lowerCamelCase name. */
static void
assert_message(json_t *doc, json_t *schema, const ProtobufCMessageDescriptor *d, int depth)
{
    if (depth > 3) /* recursive messages: the first levels are enough */
        return;
    cr_assert_str_eq(json_string_value(json_object_get(schema, "type")), "object", "%s", d->name);
    json_t *props = json_object_get(schema, "properties");
    cr_assert_eq(json_object_size(props), d->n_fields, "%s: one property per field", d->name);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char name[128];
        codec_json_name(name, sizeof name, f->name);
        json_t *p = json_object_get(props, name);
        cr_assert_not_null(p, "%s: field %s (%s) missing", d->name, f->name, name);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            cr_assert_str_eq(json_string_value(json_object_get(p, "type")), "array", "%s", name);
            p = json_object_get(p, "items");
        }
        assert_value(doc, p, f, depth);
    }
}

static json_t *
response_of(json_t *op, int status)
{
    char key[8];
    snprintf(key, sizeof key, "%d", status);
    return json_object_get(json_object_get(op, "responses"), key);
}

static json_t *
content_schema(json_t *holder)
{
    json_t *content = json_object_get(holder, "content");
    const char *type;
    json_t *v;
    json_object_foreach(content, type, v)
    {
        return json_object_get(v, "schema");
    }
    return NULL;
}

/* Code `code` is listed in the error response for its HTTP status. */
static void
assert_code(json_t *op, const edge_route *rt, lb_status code)
{
    json_t *resp = response_of(op, lb_status_http(code));
    cr_assert_not_null(resp, "%s %s: no %d response for %s", rt->method, rt->path,
                       lb_status_http(code), lb_status_code(code));
    json_t *s = json_array_get(json_object_get(content_schema(resp), "allOf"), 1);
    json_t *list = json_object_get(
        json_object_get(json_object_get(json_object_get(json_object_get(s, "properties"), "error"),
                                        "properties"),
                        "code"),
        "enum");
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (strcmp(json_string_value(v), lb_status_code(code)) == 0)
            return;
    }
    cr_assert_fail("%s %s: code %s missing from its %d response", rt->method, rt->path,
                   lb_status_code(code), lb_status_http(code));
}

/* Every code the row can answer, derived from its features here, not from
 * edge_openapi.c. */
static void
assert_codes(json_t *op, const edge_route *rt)
{
    for (const lb_status *e = rt->errors; e != NULL && *e != LB_OK; e++) {
        lb_status s = *e;
        for (const edge_remap *m = rt->remap; m != NULL && m->from != LB_OK; m++)
            if (m->from == *e)
                s = m->to;
        assert_code(op, rt, s);
    }
    if (rt->who != EDGE_PUBLIC)
        assert_code(op, rt, LB_ERR_UNAUTHORIZED);
    if (rt->who == EDGE_ADMIN)
        assert_code(op, rt, LB_ERR_FORBIDDEN);
    if (rt->body != NULL) {
        static const lb_status body[] = { LB_ERR_BAD_JSON, LB_ERR_UNKNOWN_FIELD, LB_ERR_TYPE,
                                          LB_ERR_LENGTH,   LB_ERR_TOO_LARGE,     LB_ERR_MEDIA_TYPE,
                                          LB_ERR_INVALID };
        for (size_t i = 0; i < LB_COUNTOF(body); i++)
            assert_code(op, rt, body[i]);
    }
    if (rt->idempotent)
        assert_code(op, rt, LB_ERR_UNPROCESSABLE);
    for (const edge_bind *b = rt->binds; b != NULL && b->from != EDGE_FROM_END; b++)
        if (b->from == EDGE_FROM_PATH || b->from == EDGE_FROM_QUERY)
            assert_code(op, rt, LB_ERR_INVALID);
    if (rt->kind != EDGE_KIND_LOCAL)
        assert_code(op, rt, LB_ERR_UNAVAILABLE);
    if (rt->kind == EDGE_KIND_QUERY)
        assert_code(op, rt, LB_ERR_TIMEOUT);
}

static bool
has_param(json_t *op, const char *in, const char *name, size_t len)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(op, "parameters"), i, p)
    {
        const char *n = json_string_value(json_object_get(p, "name"));
        const char *ref = json_string_value(json_object_get(p, "$ref"));
        if (ref != NULL && strcmp(in, "header") == 0 && strstr(ref, "IdempotencyKey") != NULL)
            return true;
        if (n != NULL && strlen(n) == len && strncmp(n, name, len) == 0 &&
            strcmp(json_string_value(json_object_get(p, "in")), in) == 0)
            return true;
    }
    return false;
}

/* Everything a row promises is in its operation. */
static void
assert_route(json_t *doc, const edge_route *rt)
{
    json_t *op = op_of(doc, rt);
    cr_assert(json_is_object(op), "%s %s missing from the document", rt->method, rt->path);
    cr_assert_str_eq(json_string_value(json_object_get(op, "operationId")), rt->operation);
    cr_assert_eq(json_object_get(op, "security") != NULL, rt->who != EDGE_PUBLIC, "%s %s: security",
                 rt->method, rt->path);
    for (const char *p = rt->path; (p = strchr(p, '{')) != NULL; p++)
        cr_assert(has_param(op, "path", p + 1, strcspn(p + 1, "}")), "%s: path parameter",
                  rt->path);
    for (const edge_bind *b = rt->binds; b != NULL && b->from != EDGE_FROM_END; b++)
        if (b->from == EDGE_FROM_QUERY)
            cr_assert(has_param(op, "query", b->name, strlen(b->name)), "%s: ?%s", rt->path,
                      b->name);
    if (rt->idempotent)
        cr_assert(has_param(op, "header", "Idempotency-Key", 15), "%s: Idempotency-Key", rt->path);

    json_t *body = json_object_get(op, "requestBody");
    cr_assert_eq(body != NULL, rt->body != NULL, "%s %s: requestBody", rt->method, rt->path);
    /* A body that is the request loses the fields the edge sets: checked by
     * edge_set_fields_are_not_in_request_bodies below. */
    bool edge_sets = (rt->binds != NULL && rt->binds->from != EDGE_FROM_END) ||
                     (rt->hooks != NULL && rt->hooks->fills != NULL);
    if (rt->body != NULL && (rt->body_field != NULL || !edge_sets))
        assert_message(doc, deref(doc, content_schema(body)), rt->body, 0);

    int ok = rt->kind == EDGE_KIND_LOCAL ? 200 : rt->status;
    json_t *resp = response_of(op, ok);
    cr_assert_not_null(resp, "%s %s: no %d response", rt->method, rt->path, ok);
    if (rt->reply_json != NULL) /* the daemon's own document: the row's schema says it */
        cr_assert_str_eq(json_string_value(json_object_get(content_schema(resp), "type")), "object",
                         "%s %s: reply_json schema", rt->method, rt->path);
    else if (rt->kind != EDGE_KIND_LOCAL && ok != 204)
        assert_message(doc, deref(doc, content_schema(resp)), rt->answer ? rt->answer : rt->reply,
                       0);
    if (rt->location != NULL)
        cr_assert_not_null(json_object_get(json_object_get(resp, "headers"), "Location"));
    if (edge_kind_info_of(rt->kind)->pending_202)
        cr_assert_not_null(response_of(op, 202), "%s %s: 202", rt->method, rt->path);
    assert_codes(op, rt);
}

Test(edge_openapi, the_table_is_well_formed)
{
    size_t n;
    const edge_route *routes = edge_routes_table(&n);
    lb_err err;
    cr_assert_eq(edge_routes_check(routes, n, &err), LB_OK, "%s", err.msg);
}

Test(edge_openapi, every_route_field_and_code_is_described)
{
    size_t n;
    const edge_route *routes = edge_routes_table(&n);
    json_t *doc = build(routes, n);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "openapi")), "3.0.3");
    for (size_t i = 0; i < n; i++)
        assert_route(doc, &routes[i]);
    size_t described = 0;
    const char *key;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), key, item)
    {
        described += json_object_size(item);
    }
    cr_assert_eq(described, n, "the document describes a route the table does not serve");
    /* the status table: every code the edge can send */
    json_t *codes = json_object_get(
        json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"),
                        "ErrorCode"),
        "enum");
    for (int s = 1; s < LB__STATUS_COUNT; s++) {
        bool found = false;
        size_t k;
        json_t *v;
        json_array_foreach(codes, k, v)
        {
            found |= strcmp(json_string_value(v), lb_status_code((lb_status)s)) == 0;
        }
        cr_assert(found, "ErrorCode lacks %s", lb_status_code((lb_status)s));
    }
    json_decref(doc);
}

/* A table made for the purpose: every protobuf shape, query parameters, a
 * body that is the request itself (bound fields left out), both directions. */
static int
keep_status(const ProtobufCMessage *reply, const edge_req *r)
{
    (void)reply;
    (void)r;
    return 0;
}
static const edge_hooks test_hooks = { .reply_status = keep_status };

/* clang-format off */
static const edge_route shapes[] = {
    { .method = "GET", .path = "/t/{id}", .who = EDGE_MEMBER, .kind = EDGE_KIND_QUERY,
      .summary = "shapes", .operation = "shapes", .subject = "layby.qry.test.shapes",
      .request = &layby__test__everything__descriptor,
      .reply = &layby__test__everything__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "f_string"),
                          EDGE_QUERY("limit", "f_int32", "page size"),
                          EDGE_QUERY("big", "f_uint64", NULL),
                          EDGE_QUERY("color", "color", NULL),
                          EDGE_SUB("note")) },
    { .method = "PUT", .path = "/t/{id}", .who = EDGE_ADMIN, .kind = EDGE_KIND_SIGNAL,
      .summary = "put", .operation = "put", .subject = "layby.cmd.test.put",
      .request = &layby__test__everything__descriptor,
      .body = &layby__test__everything__descriptor,
      .reply = &layby__test__inner__descriptor, .status = 200, .idempotent = true,
      .binds = EDGE_BINDS(EDGE_PATH("id", "f_string"), EDGE_SUB("note")),
      .errors = EDGE_ERRORS(LB_ERR_STATE, LB_ERR_NOT_FOUND),
      .remap = EDGE_REMAP({ LB_ERR_STATE, LB_ERR_CONFLICT }), .hooks = &test_hooks },
    { .method = "POST", .path = "/t", .who = EDGE_PUBLIC, .kind = EDGE_KIND_COMMAND,
      .summary = "inner", .operation = "inner", .subject = "layby.cmd.test.inner",
      .request = &layby__test__everything__descriptor,
      .body = &layby__test__inner__descriptor, .body_field = "inner",
      .reply = &layby__test__everything__descriptor, .status = 201,
      .location = "/t/{fString}", .binds = EDGE_BINDS(EDGE_NEW_ID("t", "f_string")) },
};
/* clang-format on */

Test(edge_openapi, shapes_from_the_descriptors)
{
    lb_err err;
    cr_assert_eq(edge_routes_check(shapes, LB_COUNTOF(shapes), &err), LB_OK, "%s", err.msg);
    json_t *doc = build(shapes, LB_COUNTOF(shapes));
    for (size_t i = 0; i < LB_COUNTOF(shapes); i++)
        assert_route(doc, &shapes[i]);
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_t *out = json_object_get(schemas, "Everything");
    json_t *props = json_object_get(out, "properties");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(props, "fInt32"), "format")),
                     "int32");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(props, "fUint64"), "minimum")),
                 0);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(props, "fBytes"), "format")),
                     "byte");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(props, "color"), "$ref")),
                     "#/components/schemas/Color");
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(props, "rInner"), "items"), "$ref")),
                     "#/components/schemas/Inner");
    cr_assert_not_null(json_object_get(json_object_get(props, "choiceInner"), "allOf"),
                       "a $ref with a description is wrapped in allOf");
    /* replies list every written field as required; oneof members are not */
    json_t *req = json_object_get(out, "required");
    cr_assert_eq(json_array_size(req), 25, "25 fields outside oneofs");
    /* a message used both ways has an input schema, strict and with nothing required */
    json_t *in = json_object_get(schemas, "InnerInput");
    cr_assert_not_null(in, "Inner is a reply and a body");
    cr_assert(json_is_false(json_object_get(in, "additionalProperties")));
    cr_assert_null(json_object_get(in, "required"));

    /* the body that is the request: bound fields are not the client's */
    json_t *put = op_of(doc, &shapes[1]);
    json_t *body = content_schema(json_object_get(put, "requestBody"));
    json_t *bp = json_object_get(body, "properties");
    cr_assert_null(json_object_get(bp, "fString"), "bound to the path");
    cr_assert_null(json_object_get(bp, "note"), "bound to the token");
    cr_assert_not_null(json_object_get(bp, "fInt32"));
    cr_assert_eq(json_object_size(bp), layby__test__everything__descriptor.n_fields - 2);
    /* the remap shows the code the client sees, not the service's */
    assert_code(put, &shapes[1], LB_ERR_CONFLICT);
    json_t *c409 = response_of(put, 409);
    cr_assert_null(strstr(json_string_value(json_object_get(c409, "description")), "invalid_state"),
                   "remapped away");

    /* query parameters are typed by their fields */
    json_t *get = op_of(doc, &shapes[0]);
    size_t i;
    json_t *p;
    int seen = 0;
    json_array_foreach(json_object_get(get, "parameters"), i, p)
    {
        const char *name = json_string_value(json_object_get(p, "name"));
        json_t *s = json_object_get(p, "schema");
        if (strcmp(name, "limit") == 0) {
            cr_assert_str_eq(json_string_value(json_object_get(s, "type")), "integer");
            cr_assert_str_eq(json_string_value(json_object_get(p, "description")), "page size");
            seen++;
        } else if (strcmp(name, "color") == 0) {
            cr_assert_str_eq(json_string_value(json_object_get(s, "$ref")),
                             "#/components/schemas/Color");
            seen++;
        } else if (strcmp(name, "id") == 0) {
            cr_assert_str_eq(json_string_value(json_object_get(s, "format")), "uuid");
            seen++;
        }
    }
    cr_assert_eq(seen, 3);
    /* 202 names the new id */
    json_t *pending = content_schema(response_of(op_of(doc, &shapes[2]), 202));
    cr_assert_not_null(json_object_get(json_object_get(pending, "properties"), "fString"));
    json_decref(doc);
}

/* The request fields a row's prepare hook sets, found by running it on an
 * empty request with a made-up caller (address, token): the fields whose
 * value it changed. Independent of the row's own .fills list. Only hooks of
 * rows whose body is the request run here; those read the caller only. */
static void
prepare_sets(bool *set, const edge_route *rt)
{
    const ProtobufCMessageDescriptor *d = rt->request;
    memset(set, 0, d->n_fields * sizeof *set);
    if (rt->hooks == NULL || rt->hooks->prepare == NULL)
        return;
    struct mg_request_info ri;
    memset(&ri, 0, sizeof ri);
    snprintf(ri.remote_addr, sizeof ri.remote_addr, "203.0.113.7");
    edge_req r;
    memset(&r, 0, sizeof r);
    r.ri = &ri;
    r.route = rt;
    r.authed = true;
    r.claims = (edge_claims){ .sub = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                              .role = EDGE_ROLE_USER,
                              .exp_s = 1700000900,
                              .jti = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
                              .sid = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d" };
    snprintf(r.actor, sizeof r.actor, "%s USER", r.claims.sub);
    ProtobufCMessage *m = malloc(d->sizeof_message);
    protobuf_c_message_init(d, m);
    json_t *before = NULL, *after = NULL;
    lb_err err;
    cr_assert_eq(codec_json_encode(&before, m, &err), LB_OK);
    cr_assert_eq(rt->hooks->prepare(m, &r, &err), LB_OK, "%s %s: prepare: %s", rt->method, rt->path,
                 err.msg);
    cr_assert_eq(codec_json_encode(&after, m, &err), LB_OK);
    for (unsigned i = 0; i < d->n_fields; i++) {
        char key[128];
        codec_json_name(key, sizeof key, d->fields[i].name);
        json_t *a = json_object_get(before, key), *b = json_object_get(after, key);
        set[i] = (a != NULL || b != NULL) && !json_equal(a, b);
    }
    json_decref(before);
    json_decref(after);
    protobuf_c_message_free_unpacked(m, NULL);
}

/* What the edge fills itself (the token's member id, the client's address,
 * the login id) is not the client's to send: it must not appear in a request
 * body schema, and a hook that fills a field must say so in its row (.fills),
 * or the body could name it and the document would show it. */
Test(edge_openapi, edge_set_fields_are_not_in_request_bodies)
{
    size_t n;
    const edge_route *routes = edge_routes_table(&n);
    json_t *doc = build(routes, n);
    int hooked = 0;
    for (size_t i = 0; i < n; i++) {
        const edge_route *rt = &routes[i];
        if (rt->body == NULL || rt->body_field != NULL)
            continue; /* no body, or a draft message of its own */
        const ProtobufCMessageDescriptor *d = rt->request;
        bool set[128];
        cr_assert(d->n_fields <= LB_COUNTOF(set));
        prepare_sets(set, rt);
        json_t *props = json_object_get(
            deref(doc, content_schema(json_object_get(op_of(doc, rt), "requestBody"))),
            "properties");
        for (unsigned f = 0; f < d->n_fields; f++) {
            const char *name = d->fields[f].name;
            bool bound = false;
            for (const edge_bind *b = rt->binds; b != NULL && b->from != EDGE_FROM_END; b++)
                bound = bound || strcmp(b->field, name) == 0;
            char key[128];
            codec_json_name(key, sizeof key, name);
            if (set[f]) {
                hooked++;
                cr_assert(edge_route_sets(rt, name), "%s %s: prepare sets %s, not in .fills",
                          rt->method, rt->path, name);
            }
            if (bound || set[f])
                cr_assert_null(json_object_get(props, key),
                               "%s %s: the body schema shows %s, which the edge sets", rt->method,
                               rt->path, key);
            else
                cr_assert_not_null(json_object_get(props, key), "%s %s: body field %s missing",
                                   rt->method, rt->path, key);
        }
    }
    cr_assert_geq(hooked, 2, "login and password change: the finder found no hook-set field");
    /* the two that leaked once, by name */
    static const struct {
        const char *op, *hidden;
    } leaks[] = { { "login", "clientAddr" },
                  { "changePassword", "sessionId" },
                  { "changePassword", "memberId" } };
    for (size_t k = 0; k < LB_COUNTOF(leaks); k++) {
        bool found = false;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(routes[i].operation, leaks[k].op) != 0)
                continue;
            found = true;
            json_t *body =
                deref(doc, content_schema(json_object_get(op_of(doc, &routes[i]), "requestBody")));
            json_t *props = json_object_get(body, "properties");
            cr_assert_gt(json_object_size(props), 0, "%s: empty body schema", leaks[k].op);
            cr_assert_null(json_object_get(props, leaks[k].hidden), "%s shows %s", leaks[k].op,
                           leaks[k].hidden);
        }
        cr_assert(found, "no operation %s", leaks[k].op);
    }
    json_decref(doc);
}

/* The same list refuses the field in a body: it is never taken from the client. */
Test(edge_openapi, a_body_naming_an_edge_set_field_is_refused)
{
    size_t n;
    const edge_route *routes = edge_routes_table(&n);
    const edge_route *login = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(routes[i].operation, "login") == 0)
            login = &routes[i];
    cr_assert_not_null(login);
    ProtobufCMessage *m = NULL;
    lb_err err;
    const char *ok = "{\"username\":\"alice\",\"password\":\"long enough pw\"}";
    cr_assert_eq(edge_run_body_decode(&m, login, ok, strlen(ok), &err), LB_OK, "%s", err.msg);
    protobuf_c_message_free_unpacked(m, NULL);
    m = NULL;
    const char *bad =
        "{\"username\":\"alice\",\"password\":\"long enough pw\",\"clientAddr\":\"10.0.0.1\"}";
    lb_err_clear(&err);
    cr_assert_eq(edge_run_body_decode(&m, login, bad, strlen(bad), &err), LB_ERR_UNKNOWN_FIELD);
    cr_assert_str_eq(err.field, "clientAddr");
    cr_assert_null(m);
}

/* Rows edge_routes_check() must refuse, each for one reason. */
static lb_status
prepare_nothing(ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    (void)req;
    (void)r;
    (void)err;
    return LB_OK;
}
static const edge_hooks fills_nope_hooks = { .prepare = prepare_nothing,
                                             .fills = EDGE_FILLS("nope") };
static const edge_hooks fills_unhooked = { .fills = EDGE_FILLS("product_id") };
static lb_status
local_nothing(char **body, const ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    (void)body;
    (void)req;
    (void)r;
    (void)err;
    return LB_ERR_UNAVAILABLE;
}
static const edge_hooks local_hooks = { .local = local_nothing };
/* clang-format off */
static const edge_route bad_rows[][2] = {
    { { .method = "GET", .path = "/x/{id}", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 200 } }, /* {id} unbound */
    { { .method = "GET", .path = "/x/{id}", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 200,
        .binds = EDGE_BINDS(EDGE_PATH("id", "nope")) } }, /* no such field */
    { { .method = "GET", .path = "/x", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 200,
        .binds = EDGE_BINDS(EDGE_PATH("id", "product_id")) } }, /* {id} not in the path */
    { { .method = "POST", .path = "/x", .kind = EDGE_KIND_COMMAND, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__create_product__descriptor,
        .body = &layby__v1__product_draft__descriptor, .body_field = "product_id",
        .reply = &layby__v1__product__descriptor, .status = 201 } }, /* body_field not the body */
    { { .method = "POST", .path = "/x", .kind = EDGE_KIND_COMMAND, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__create_product__descriptor,
        .body = &layby__v1__product_draft__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 201 } }, /* body is not the request */
    { { .method = "POST", .path = "/x", .kind = EDGE_KIND_COMMAND, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__create_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 201,
        .location = "/x/{nope}" } }, /* Location names no reply field */
    { { .method = "GET", .path = "/x", .kind = EDGE_KIND_LOCAL, .summary = "s", .operation = "a",
        .schema = "{}" } }, /* LOCAL without fn */
    { { .method = "GET", .path = "/x", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 200, .reply_json = "price",
        .schema = "{}" } }, /* reply_json names no string field */
    { { .method = "GET", .path = "/x", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 200,
        .reply_json = "name" } }, /* reply_json without a schema */
    { { .method = "GET", .path = "/x", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor, .status = 200 } }, /* no reply */
    { { .method = "GET", .path = "/x", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 200,
        .binds = EDGE_BINDS(EDGE_SUB("product_id")) } }, /* a public route has no sub */
    { { .method = "GET", .path = "/x", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 200 },
      { .method = "GET", .path = "/y", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 200 } }, /* operation twice */
    { { .method = "GET", .path = "/x", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 404 } }, /* not a 2xx */
    { { .method = "GET", .path = "/x", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__test__everything__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 200,
        .binds = EDGE_BINDS(EDGE_CONST("f_int32", "many")) } }, /* a constant that misfits */
    { { .method = "GET", .path = "/x", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 200,
        .answer = &layby__v1__get_product__descriptor } }, /* an answer no hook makes */
    { { .method = "GET", .path = "/x", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 200,
        .step_answer = { &layby__v1__get_product__descriptor } } }, /* a step answer, no saga */
    { { .method = "GET", .path = "/x", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 200,
        .hooks = &fills_nope_hooks } }, /* fills a field the request lacks */
    { { .method = "GET", .path = "/x", .kind = EDGE_KIND_QUERY, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__get_product__descriptor,
        .reply = &layby__v1__product__descriptor, .status = 200,
        .hooks = &fills_unhooked } }, /* fills, but no prepare hook fills them */
    { { .method = "POST", .path = "/x", .kind = EDGE_KIND_COMMAND, .summary = "s", .operation = "a",
        .subject = "s", .request = &layby__v1__create_product__descriptor,
        .body = &layby__v1__product_draft__descriptor, .body_field = "draft",
        .reply = &layby__v1__product__descriptor, .status = 201,
        .location = "/x/{productId}", .hooks = &local_hooks } }, /* a local answer has no Location */
};
/* clang-format on */

Test(edge_openapi, malformed_rows_are_refused)
{
    for (size_t i = 0; i < LB_COUNTOF(bad_rows); i++) {
        size_t n = bad_rows[i][1].method != NULL ? 2 : 1;
        lb_err err;
        lb_err_clear(&err);
        cr_assert_eq(edge_routes_check(bad_rows[i], n, &err), LB_ERR_CONFIG, "row %zu accepted", i);
        cr_assert_neq(err.msg[0], '\0');
    }
}

/* The served text is the generated document, and it is valid OpenAPI 3.0. */
Test(edge_openapi, the_document_is_valid_openapi_3)
{
    const char *text = edge_openapi_text();
    cr_assert_not_null(text);
    cr_assert_eq(edge_openapi_text(), text, "built once");
    char path[] = "/tmp/layby-openapi-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/tools/openapi_check.py %s",
             LAYBY_SOURCE_DIR, path);
    int rc = system(cmd);
    unlink(path);
    cr_assert_eq(rc, 0, "openapi_check.py failed (%d): see its output above", rc);
}
