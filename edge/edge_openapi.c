/* edge_openapi.c - generating the OpenAPI 3.0 document (see edge_openapi.h).
 *
 * Per row: the path's parameters (from path binds; a UUID bind says
 * format uuid), query parameters (query binds, typed by their field),
 * Idempotency-Key, the request body (the row's body message, minus fields
 * the edge sets itself when the body is the request: binds and the prepare
 * hook's fills, edge_route_sets()), the success answer
 * (the reply message, Location), 202 PENDING for kinds that answer it, and
 * one response per HTTP status of the error codes the row can answer: those
 * its features imply (a body: JSON faults and limits; a token: 401; admin:
 * 403; Idempotency-Key: 422; the bus: 503/504) and those it declares,
 * after its remap. Each error response lists its codes as an enum.
 *
 * Conventions the descriptors cannot carry (proto3 has no formats): a string
 * field named *_id is a UUID, *_at an RFC 3339 time (table name_formats[]).
 */
#include "edge_openapi.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "edge_bind.h"
#include "edge_idem.h"
#include "edge_run.h"

#define NAME_MAX_LEN 128 /* a schema or JSON field name */
#define SEEN_MAX     256 /* distinct messages reachable from replies */

/* clang-format off */
/* JSON Schema of each scalar protobuf type, as the codec writes it. */
static const struct scalar_row {
    ProtobufCType type;
    const char *json_type;
    const char *format; /* NULL = none */
    bool unsigned_;     /* minimum 0 */
} scalar_rows[] = {
    { PROTOBUF_C_TYPE_INT32,    "integer", "int32",  false },
    { PROTOBUF_C_TYPE_SINT32,   "integer", "int32",  false },
    { PROTOBUF_C_TYPE_SFIXED32, "integer", "int32",  false },
    { PROTOBUF_C_TYPE_INT64,    "integer", "int64",  false },
    { PROTOBUF_C_TYPE_SINT64,   "integer", "int64",  false },
    { PROTOBUF_C_TYPE_SFIXED64, "integer", "int64",  false },
    { PROTOBUF_C_TYPE_UINT32,   "integer", "int64",  true  },
    { PROTOBUF_C_TYPE_FIXED32,  "integer", "int64",  true  },
    { PROTOBUF_C_TYPE_UINT64,   "integer", "int64",  true  },
    { PROTOBUF_C_TYPE_FIXED64,  "integer", "int64",  true  },
    { PROTOBUF_C_TYPE_FLOAT,    "number",  "float",  false },
    { PROTOBUF_C_TYPE_DOUBLE,   "number",  "double", false },
    { PROTOBUF_C_TYPE_BOOL,     "boolean", NULL,     false },
    { PROTOBUF_C_TYPE_STRING,   "string",  NULL,     false },
    { PROTOBUF_C_TYPE_BYTES,    "string",  "byte",   false },
};

/* String formats by field-name suffix (a layby naming convention). */
static const struct { const char *suffix; const char *format; } name_formats[] = {
    { "_id", "uuid" },
    { "_at", "date-time" },
};

/* Codes every row with a feature can answer. */
static const lb_status body_codes[] = {
    LB_ERR_BAD_JSON, LB_ERR_UNKNOWN_FIELD, LB_ERR_TYPE, LB_ERR_INVALID,
    LB_ERR_LENGTH, LB_ERR_TOO_LARGE, LB_ERR_MEDIA_TYPE,
};
static const lb_status bus_codes[] = { LB_ERR_UNAVAILABLE, LB_ERR_INTERNAL };
/* clang-format on */

typedef struct gen {
    json_t *schemas;                                 /* components.schemas */
    const ProtobufCMessageDescriptor *out[SEEN_MAX]; /* messages reachable from replies */
    size_t n_out;
    lb_status status; /* first fault, LB_OK while building */
} gen;

static json_t *
schema_ref(const char *name)
{
    char ref[NAME_MAX_LEN + 32];
    snprintf(ref, sizeof ref, "#/components/schemas/%s", name);
    return json_pack("{s:s}", "$ref", ref);
}

static bool
is_output(const gen *g, const ProtobufCMessageDescriptor *d)
{
    for (size_t i = 0; i < g->n_out; i++)
        if (g->out[i] == d)
            return true;
    return false;
}

/* Marks d and every message below it as used in replies. */
static void
outputs_mark(gen *g, const ProtobufCMessageDescriptor *d)
{
    if (d == NULL || is_output(g, d))
        return;
    if (g->n_out == SEEN_MAX) {
        g->status = LB_ERR_CONFIG;
        return;
    }
    g->out[g->n_out++] = d;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE)
            outputs_mark(g, d->fields[i].descriptor);
}

static void
schema_name(char out[NAME_MAX_LEN], const gen *g, const ProtobufCMessageDescriptor *d, bool input)
{
    snprintf(out, NAME_MAX_LEN, "%s%s", d->short_name, input && is_output(g, d) ? "Input" : "");
}

static json_t *message_schema_ref(gen *g, const ProtobufCMessageDescriptor *d, bool input);

static json_t *
enum_schema_ref(gen *g, const ProtobufCEnumDescriptor *e)
{
    if (json_object_get(g->schemas, e->short_name) == NULL) {
        json_t *names = json_array();
        for (unsigned i = 0; i < e->n_values; i++)
            json_array_append_new(names, json_string(e->values[i].name));
        json_object_set_new(g->schemas, e->short_name,
                            json_pack("{s:s, s:o}", "type", "string", "enum", names));
    }
    return schema_ref(e->short_name);
}

static const struct scalar_row *
scalar_of(ProtobufCType t)
{
    for (size_t i = 0; i < LB_COUNTOF(scalar_rows); i++)
        if (scalar_rows[i].type == t)
            return &scalar_rows[i];
    return NULL;
}

/* The schema of one value of field f (an element, for a repeated field). */
static json_t *
value_schema(gen *g, const ProtobufCFieldDescriptor *f, bool input)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return message_schema_ref(g, f->descriptor, input);
    if (f->type == PROTOBUF_C_TYPE_ENUM)
        return enum_schema_ref(g, f->descriptor);
    const struct scalar_row *row = scalar_of(f->type);
    json_t *s = json_pack("{s:s}", "type", row ? row->json_type : "string");
    const char *format = row ? row->format : NULL;
    size_t nl = strlen(f->name);
    for (size_t i = 0; f->type == PROTOBUF_C_TYPE_STRING && i < LB_COUNTOF(name_formats); i++) {
        size_t sl = strlen(name_formats[i].suffix);
        if (nl > sl && strcmp(f->name + nl - sl, name_formats[i].suffix) == 0)
            format = name_formats[i].format;
    }
    if (format != NULL)
        json_object_set_new(s, "format", json_string(format));
    if (row != NULL && row->unsigned_)
        json_object_set_new(s, "minimum", json_integer(0));
    return s;
}

static json_t *
field_schema(gen *g, const ProtobufCFieldDescriptor *f, bool input)
{
    json_t *v = value_schema(g, f, input);
    json_t *s = f->label == PROTOBUF_C_LABEL_REPEATED
                    ? json_pack("{s:s, s:o}", "type", "array", "items", v)
                    : v;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        /* a $ref cannot carry siblings in OpenAPI 3.0: wrap it */
        if (json_object_get(s, "$ref") != NULL)
            s = json_pack("{s:[o]}", "allOf", s);
        json_object_set_new(s, "description",
                            json_string("member of a oneof: at most one member is set, and only "
                                        "the set one is written"));
    }
    return s;
}

/* The inline schema of message d; with a route (the body is its request),
 * without the fields the edge sets itself (edge_route_sets). */
static json_t *
message_schema(gen *g, const ProtobufCMessageDescriptor *d, bool input, const edge_route *rt)
{
    json_t *props = json_object(), *required = json_array();
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (rt != NULL && edge_route_sets(rt, f->name))
            continue;
        char name[NAME_MAX_LEN];
        codec_json_name(name, sizeof name, f->name);
        json_object_set_new(props, name, field_schema(g, f, input));
        if (!input && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            json_array_append_new(required, json_string(name));
    }
    json_t *s =
        json_pack("{s:s, s:s, s:o}", "type", "object", "description", d->name, "properties", props);
    if (input)
        json_object_set_new(s, "additionalProperties", json_false());
    if (json_array_size(required) > 0)
        json_object_set(s, "required", required);
    json_decref(required);
    return s;
}

static json_t *
message_schema_ref(gen *g, const ProtobufCMessageDescriptor *d, bool input)
{
    char name[NAME_MAX_LEN];
    schema_name(name, g, d, input);
    if (json_object_get(g->schemas, name) == NULL) {
        /* a placeholder first: a recursive message refers to itself */
        json_object_set_new(g->schemas, name, json_object());
        json_object_set_new(g->schemas, name, message_schema(g, d, input, NULL));
    }
    return schema_ref(name);
}

static json_t *
json_content(const char *type, json_t *schema)
{
    return json_pack("{s:{s:{s:o}}}", "content", type, "schema", schema);
}

/* ---- parameters ----------------------------------------------------------- */

static const edge_bind *
bind_named(const edge_route *rt, edge_from from, const char *name, size_t len)
{
    for (const edge_bind *b = rt->binds; b != NULL && b->from != EDGE_FROM_END; b++)
        if (b->from == from && strlen(b->name) == len && strncmp(b->name, name, len) == 0)
            return b;
    return NULL;
}

static json_t *
bind_schema(gen *g, const edge_route *rt, const edge_bind *b)
{
    if (b == NULL)
        return json_pack("{s:s}", "type", "string");
    if (b->fmt == EDGE_FMT_UUID)
        return json_pack("{s:s, s:s}", "type", "string", "format", "uuid");
    return value_schema(g, edge_field_scalar(rt->request, b->field), true);
}

static json_t *
parameters(gen *g, const edge_route *rt)
{
    json_t *ps = json_array();
    for (const char *p = rt->path; (p = strchr(p, '{')) != NULL; p++) {
        size_t len = strcspn(p + 1, "}");
        const edge_bind *b = bind_named(rt, EDGE_FROM_PATH, p + 1, len);
        json_array_append_new(ps,
                              json_pack("{s:s%, s:s, s:b, s:o}", "name", p + 1, len, "in", "path",
                                        "required", 1, "schema", bind_schema(g, rt, b)));
    }
    for (const edge_bind *b = rt->binds; b != NULL && b->from != EDGE_FROM_END; b++) {
        if (b->from != EDGE_FROM_QUERY)
            continue;
        json_t *q = json_pack("{s:s, s:s, s:b, s:o}", "name", b->name, "in", "query", "required", 0,
                              "schema", bind_schema(g, rt, b));
        if (b->doc != NULL)
            json_object_set_new(q, "description", json_string(b->doc));
        json_array_append_new(ps, q);
    }
    if (rt->idempotent)
        json_array_append_new(ps,
                              json_pack("{s:s}", "$ref", "#/components/parameters/IdempotencyKey"));
    return ps;
}

/* ---- responses ------------------------------------------------------------ */

static json_t *
location_header(void)
{
    return json_pack("{s:{s:{s:s}}}", "Location", "schema", "type", "string");
}

/* The codes row rt can answer, as a set indexed by lb_status. */
static void
row_codes(bool codes[LB__STATUS_COUNT], const edge_route *rt)
{
    memset(codes, 0, LB__STATUS_COUNT * sizeof codes[0]);
    for (const lb_status *e = rt->errors; e != NULL && *e != LB_OK; e++) {
        lb_status s = *e;
        for (const edge_remap *m = rt->remap; m != NULL && m->from != LB_OK; m++)
            s = m->from == *e ? m->to : s;
        codes[s] = true;
    }
    for (size_t i = 0; rt->body != NULL && i < LB_COUNTOF(body_codes); i++)
        codes[body_codes[i]] = true;
    for (const edge_bind *b = rt->binds; b != NULL && b->from != EDGE_FROM_END; b++)
        codes[LB_ERR_INVALID] |= b->from == EDGE_FROM_PATH || b->from == EDGE_FROM_QUERY;
    codes[LB_ERR_UNAUTHORIZED] |= rt->who != EDGE_PUBLIC;
    codes[LB_ERR_FORBIDDEN] |= rt->who == EDGE_ADMIN;
    codes[LB_ERR_INVALID] |= rt->idempotent;
    codes[LB_ERR_UNPROCESSABLE] |= rt->idempotent;
    for (size_t i = 0; rt->kind != EDGE_KIND_LOCAL && i < LB_COUNTOF(bus_codes); i++)
        codes[bus_codes[i]] = true;
    codes[LB_ERR_TIMEOUT] |= rt->kind == EDGE_KIND_QUERY;
}

static json_t *
error_response(const char *description, json_t *codes)
{
    /* the shared Error shape, narrowed to this response's codes */
    return json_pack("{s:s, s:{s:{s:{s:[{s:s}, {s:s, s:{s:{s:s, s:{s:{s:s, s:o}}}}}]}}}}",
                     "description", description, "content", "application/json", "schema", "allOf",
                     "$ref", "#/components/schemas/Error", "type", "object", "properties", "error",
                     "type", "object", "properties", "code", "type", "string", "enum", codes);
}

static bool
has_string(const json_t *list, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

/* One response per HTTP status, listing its codes (each once) as an enum. */
static void
error_responses(json_t *responses, const edge_route *rt)
{
    bool codes[LB__STATUS_COUNT], done[LB__STATUS_COUNT] = { false };
    row_codes(codes, rt);
    for (int s = 1; s < LB__STATUS_COUNT; s++) {
        if (!codes[s] || done[s])
            continue;
        int http = lb_status_http((lb_status)s);
        json_t *list = json_array();
        char text[512] = "";
        size_t used = 0;
        for (int t = s; t < LB__STATUS_COUNT; t++) {
            const char *code = lb_status_code((lb_status)t);
            if (!codes[t] || lb_status_http((lb_status)t) != http || has_string(list, code))
                continue;
            done[t] = true;
            json_array_append_new(list, json_string(code));
            int w = snprintf(text + used, sizeof text - used, "%s%s", used ? ", " : "", code);
            used += w > 0 && (size_t)w < sizeof text - used ? (size_t)w : 0;
        }
        char key[8];
        snprintf(key, sizeof key, "%d", http);
        json_object_set_new(responses, key, error_response(text, list));
    }
}

static json_t *
pending_schema(const edge_route *rt)
{
    json_t *props = json_object();
    for (const edge_bind *b = rt->binds; b != NULL && b->from != EDGE_FROM_END; b++) {
        if (b->from != EDGE_FROM_NEW_ID && b->from != EDGE_FROM_PATH)
            continue;
        char name[NAME_MAX_LEN];
        codec_json_name(name, sizeof name, b->field);
        json_object_set_new(props, name, json_pack("{s:s}", "type", "string"));
    }
    json_object_set_new(props, "status",
                        json_pack("{s:s, s:[s]}", "type", "string", "enum", "PENDING"));
    return json_pack("{s:s, s:o, s:[s]}", "type", "object", "properties", props, "required",
                     "status");
}

static json_t *
success_response(gen *g, const edge_route *rt)
{
    json_t *resp = json_pack("{s:s}", "description", rt->summary);
    if (rt->kind == EDGE_KIND_LOCAL || rt->reply_json != NULL) {
        json_t *schema = json_loads(rt->schema, 0, NULL);
        if (schema == NULL)
            g->status = LB_ERR_CONFIG;
        json_object_update_new(resp, json_content(rt->produces ? rt->produces : "application/json",
                                                  schema ? schema : json_object()));
    } else if (rt->status != 204) {
        json_object_update_new(
            resp, json_content("application/json",
                               message_schema_ref(g, rt->answer ? rt->answer : rt->reply, false)));
    }
    if (rt->location != NULL)
        json_object_set_new(resp, "headers", location_header());
    return resp;
}

/* ---- operations ----------------------------------------------------------- */

static json_t *
operation(gen *g, const edge_route *rt)
{
    const edge_kind_info *k = edge_kind_info_of(rt->kind);
    json_t *op = json_pack("{s:s, s:s}", "summary", rt->summary, "operationId", rt->operation);
    if (rt->kind != EDGE_KIND_LOCAL) {
        char d[512];
        snprintf(d, sizeof d, "A %s: %s on `%s`, answered by %s.", k->name, rt->request->name,
                 rt->subject, rt->reply->name);
        json_object_set_new(op, "description", json_string(d));
    }
    if (rt->who != EDGE_PUBLIC)
        json_object_set_new(op, "security", json_pack("[{s:[]}]", "bearer"));
    json_t *ps = parameters(g, rt);
    if (json_array_size(ps) > 0)
        json_object_set(op, "parameters", ps);
    json_decref(ps);
    if (rt->body != NULL) {
        /* The request itself, minus what the edge sets: inline, since the
         * same message may be another row's body with other fields set. */
        bool whole = rt->body_field == NULL;
        bool edge_sets = (rt->binds != NULL && rt->binds->from != EDGE_FROM_END) ||
                         (rt->hooks != NULL && rt->hooks->fills != NULL);
        json_t *schema = whole && edge_sets ? message_schema(g, rt->body, true, rt)
                                            : message_schema_ref(g, rt->body, true);
        json_t *body = json_content("application/json", schema);
        json_object_set_new(body, "required", json_true());
        json_object_set_new(op, "requestBody", body);
    }
    json_t *responses = json_object();
    char key[8];
    snprintf(key, sizeof key, "%d", rt->kind == EDGE_KIND_LOCAL ? 200 : rt->status);
    json_object_set_new(responses, key, success_response(g, rt));
    if (k->pending_202 && rt->status != 202) {
        json_t *p = json_pack("{s:s}", "description",
                              "Accepted and stored, not yet decided: the outcome follows; "
                              "poll Location or repeat with the same Idempotency-Key");
        json_object_update_new(p, json_content("application/json", pending_schema(rt)));
        if (rt->location != NULL)
            json_object_set_new(p, "headers", location_header());
        json_object_set_new(responses, "202", p);
    }
    error_responses(responses, rt);
    json_object_set_new(op, "responses", responses);
    return op;
}

static void
lower(char *out, size_t n, const char *s)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < n; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
}

/* ---- components ----------------------------------------------------------- */

static json_t *
error_code_schema(void)
{
    json_t *names = json_array();
    char text[2048] = "Every code and its HTTP status:";
    size_t used = strlen(text);
    for (int s = 1; s < LB__STATUS_COUNT; s++) {
        const char *code = lb_status_code((lb_status)s);
        if (has_string(names, code))
            continue;
        json_array_append_new(names, json_string(code));
        int w = snprintf(text + used, sizeof text - used, " %s %d;", code,
                         lb_status_http((lb_status)s));
        used += w > 0 && (size_t)w < sizeof text - used ? (size_t)w : 0;
    }
    return json_pack("{s:s, s:o, s:s}", "type", "string", "enum", names, "description", text);
}

static json_t *
components(gen *g)
{
    json_object_set_new(g->schemas, "ErrorCode", error_code_schema());
    json_object_set_new(
        g->schemas, "Error",
        json_pack("{s:s, s:[s], s:{s:{s:s, s:[s,s], s:{s:o, s:{s:s}, s:{s:s, s:s}}}}}", "type",
                  "object", "required", "error", "properties", "error", "type", "object",
                  "required", "code", "message", "properties", "code", schema_ref("ErrorCode"),
                  "message", "type", "string", "field", "type", "string", "description",
                  "JSON path of the offending field or parameter"));
    return json_pack(
        "{s:{s:{s:s, s:s, s:s}}, s:{s:{s:s, s:s, s:b, s:s, s:{s:s, s:i, s:i}}}, s:O}",
        "securitySchemes", "bearer", "type", "http", "scheme", "bearer", "bearerFormat",
        "JWT (ES256)", "parameters", "IdempotencyKey", "name", "Idempotency-Key", "in", "header",
        "required", 0, "description",
        "a repeat with the same key returns the first outcome; another body with it is 422",
        "schema", "type", "string", "minLength", 1, "maxLength", EDGE_IDEM_KEY_MAX - 1, "schemas",
        g->schemas);
}

static const char info_text[] =
    "Electronics shop backend. JSON bodies with lowerCamelCase fields, ids as strings, money as "
    "integer won, times as RFC 3339 UTC; 64-bit integers may also be sent as decimal strings, and "
    "a field left out of a request body takes its default (0, \"\", false, empty). Every error is "
    "{\"error\":{\"code\",\"message\",\"field\"?}}. POST routes that create or pay accept "
    "Idempotency-Key: a repeat returns the first outcome; a repeat with another body is 422. "
    "Generated from the edge's route table and the protobuf messages.";

lb_status
edge_openapi_build(json_t **out, const edge_route *routes, size_t n, lb_err *err)
{
    gen g = { .schemas = json_object(), .status = LB_OK };
    for (size_t i = 0; i < n; i++)
        if (routes[i].kind != EDGE_KIND_LOCAL)
            outputs_mark(&g, routes[i].answer ? routes[i].answer : routes[i].reply);
    json_t *paths = json_object();
    for (size_t i = 0; i < n && paths != NULL; i++) {
        json_t *item = json_object_get(paths, routes[i].path);
        if (item == NULL) {
            item = json_object();
            json_object_set_new(paths, routes[i].path, item);
        }
        char method[16];
        lower(method, sizeof method, routes[i].method);
        json_object_set_new(item, method, operation(&g, &routes[i]));
    }
    json_t *doc =
        json_pack("{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o, s:o}", "openapi", "3.0.3", "info",
                  "title", "layby HTTP API", "version", "1.0.0", "description", info_text,
                  "servers", "url", "/", "paths", paths, "components", components(&g));
    json_decref(g.schemas);
    if (g.status != LB_OK || doc == NULL) {
        json_decref(doc);
        return lb_err_set(err, g.status != LB_OK ? g.status : LB_ERR_NOMEM,
                          "cannot build the OpenAPI document (a LOCAL row's schema is not JSON, "
                          "too many messages, or out of memory)");
    }
    *out = doc;
    return LB_OK;
}

static pthread_once_t text_once = PTHREAD_ONCE_INIT;
static char *text;

static void
text_build(void)
{
    size_t n;
    const edge_route *routes = edge_routes_table(&n);
    json_t *doc = NULL;
    if (edge_openapi_build(&doc, routes, n, NULL) == LB_OK)
        text = json_dumps(doc, JSON_INDENT(1));
    json_decref(doc);
}

const char *
edge_openapi_text(void)
{
    pthread_once(&text_once, text_build);
    return text;
}
