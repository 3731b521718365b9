/* edge_route.c - matching a request line against a route table, and
 * checking that a table's rows are well-formed (edge_routes_check).
 *
 * Kept apart from the table and the handlers (edge_routes.c) so it stays a
 * pure function that unit tests drive with tables of their own. Rows are
 * tried in order and the first match wins, so a literal segment
 * ("/products/search") must come before a {param} row that would swallow it.
 */
#include "edge_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "edge_bind.h"

/* Matches path against pat segment by segment, capturing {name} segments. */
static bool
pattern_match(const char *pat, const char *path, edge_param *params, size_t *n_params)
{
    size_t np = 0;
    while (*pat == '/' && *path == '/') {
        pat++;
        path++;
        size_t pl = strcspn(pat, "/");
        size_t sl = strcspn(path, "/");
        if (pl >= 2 && pat[0] == '{' && pat[pl - 1] == '}') {
            if (sl == 0 || np == EDGE_PARAMS_MAX)
                return false;
            params[np++] =
                (edge_param){ .name = pat + 1, .name_len = pl - 2, .val = path, .len = sl };
        } else if (pl != sl || memcmp(pat, path, pl) != 0) {
            return false;
        }
        pat += pl;
        path += sl;
    }
    if (*pat != '\0' || *path != '\0')
        return false;
    *n_params = np;
    return true;
}

static void
allow_add(char allow[EDGE_ALLOW_MAX], const char *method)
{
    /* a method listed twice (two rows for one path) is named once */
    size_t ml = strlen(method);
    for (const char *p = allow; (p = strstr(p, method)) != NULL; p += ml)
        if ((p == allow || p[-1] == ' ') && (p[ml] == '\0' || p[ml] == ','))
            return;
    size_t used = strlen(allow);
    snprintf(allow + used, EDGE_ALLOW_MAX - used, "%s%s", used ? ", " : "", method);
}

lb_status
edge_route_find(const edge_route **out, edge_param params[EDGE_PARAMS_MAX], size_t *n_params,
                char allow[EDGE_ALLOW_MAX], const edge_route *routes, size_t n, const char *method,
                const char *path)
{
    allow[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        edge_param found[EDGE_PARAMS_MAX];
        size_t nf = 0;
        if (!pattern_match(routes[i].path, path, found, &nf))
            continue;
        if (strcmp(routes[i].method, method) != 0) {
            allow_add(allow, routes[i].method);
            continue;
        }
        memcpy(params, found, nf * sizeof found[0]);
        *n_params = nf;
        *out = &routes[i];
        return LB_OK;
    }
    return allow[0] != '\0' ? LB_ERR_METHOD : LB_ERR_NOT_FOUND;
}

/* ---- row checks ----------------------------------------------------------- */

static bool
has_json_field(const ProtobufCMessageDescriptor *desc, const char *name, size_t len)
{
    for (unsigned i = 0; desc != NULL && i < desc->n_fields; i++) {
        char j[LB_ERR_FIELD_MAX];
        codec_json_name(j, sizeof j, desc->fields[i].name);
        if (strlen(j) == len && memcmp(j, name, len) == 0)
            return true;
    }
    return false;
}

static bool
path_bound(const edge_route *rt, const char *name, size_t len)
{
    for (const edge_bind *b = rt->binds; b != NULL && b->from != EDGE_FROM_END; b++)
        if (b->from == EDGE_FROM_PATH && strlen(b->name) == len && memcmp(b->name, name, len) == 0)
            return true;
    return false;
}

/* Every {name} of pattern passes ok(rt, name); the first that fails is named
 * with `why`. */
static lb_status
placeholders_check(const edge_route *rt, const char *pattern, const char *what,
                   bool (*ok)(const edge_route *, const char *, size_t), const char *why,
                   lb_err *err)
{
    for (const char *p = pattern; (p = strchr(p, '{')) != NULL; p++) {
        const char *close = strchr(p, '}');
        if (close == NULL)
            return lb_err_set(err, LB_ERR_CONFIG, "%s %s: unclosed { in %s", rt->method, rt->path,
                              what);
        if (!ok(rt, p + 1, (size_t)(close - p - 1)))
            return lb_err_set(err, LB_ERR_CONFIG, "%s %s: %s names {%.*s}: %s", rt->method,
                              rt->path, what, (int)(close - p - 1), p + 1, why);
    }
    return LB_OK;
}

static bool
in_reply(const edge_route *rt, const char *name, size_t len)
{
    return has_json_field(rt->answer ? rt->answer : rt->reply, name, len);
}

/* A constant's text is read like any bound value: check it once, here. */
static bool
const_fits(const ProtobufCMessageDescriptor *desc, const edge_bind *b)
{
    ProtobufCMessage *m = malloc(desc->sizeof_message);
    if (m == NULL)
        return false;
    protobuf_c_message_init(desc, m);
    bool ok = edge_field_set(m, b->field, b->name, b->field, NULL) == LB_OK;
    protobuf_c_message_free_unpacked(m, NULL);
    return ok;
}

bool
edge_route_sets(const edge_route *rt, const char *proto_name)
{
    for (const edge_bind *b = rt->binds; b != NULL && b->from != EDGE_FROM_END; b++)
        if (strcmp(b->field, proto_name) == 0)
            return true;
    for (const char *const *f = rt->hooks ? rt->hooks->fills : NULL; f != NULL && *f != NULL; f++)
        if (strcmp(*f, proto_name) == 0)
            return true;
    return false;
}

static lb_status
fills_check(const edge_route *rt, lb_err *err)
{
    const char *const *f = rt->hooks ? rt->hooks->fills : NULL;
    if (f != NULL && rt->hooks->prepare == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "%s %s: fills without a prepare hook", rt->method,
                          rt->path);
    for (; f != NULL && *f != NULL; f++)
        if (protobuf_c_message_descriptor_get_field_by_name(rt->request, *f) == NULL)
            return lb_err_set(err, LB_ERR_CONFIG, "%s %s: %s has no field %s to fill", rt->method,
                              rt->path, rt->request->name, *f);
    return LB_OK;
}

static lb_status
binds_check(const edge_route *rt, lb_err *err)
{
    for (const edge_bind *b = rt->binds; b != NULL && b->from != EDGE_FROM_END; b++) {
        if (edge_field_scalar(rt->request, b->field) == NULL)
            return lb_err_set(err, LB_ERR_CONFIG, "%s %s: %s has no settable field %s", rt->method,
                              rt->path, rt->request->name, b->field);
        if (b->from != EDGE_FROM_SUB && b->name == NULL)
            return lb_err_set(err, LB_ERR_CONFIG, "%s %s: bind of %s needs a name", rt->method,
                              rt->path, b->field);
        if (b->from == EDGE_FROM_SUB && rt->who == EDGE_PUBLIC)
            return lb_err_set(err, LB_ERR_CONFIG, "%s %s: a public route has no token sub",
                              rt->method, rt->path);
        if (b->from == EDGE_FROM_CONST && !const_fits(rt->request, b))
            return lb_err_set(err, LB_ERR_CONFIG, "%s %s: \"%s\" does not fit %s", rt->method,
                              rt->path, b->name, b->field);
        if (b->from == EDGE_FROM_PATH) {
            char pat[EDGE_PARAMS_MAX * 32];
            snprintf(pat, sizeof pat, "{%s}", b->name);
            if (strstr(rt->path, pat) == NULL)
                return lb_err_set(err, LB_ERR_CONFIG, "%s %s: no %s in the path", rt->method,
                                  rt->path, pat);
        }
    }
    return LB_OK;
}

static lb_status
body_check(const edge_route *rt, lb_err *err)
{
    if (rt->body == NULL)
        return rt->body_field == NULL ? LB_OK
                                      : lb_err_set(err, LB_ERR_CONFIG, "%s %s: body_field, no body",
                                                   rt->method, rt->path);
    if (rt->body_field == NULL)
        return rt->body == rt->request
                   ? LB_OK
                   : lb_err_set(err, LB_ERR_CONFIG,
                                "%s %s: a body that is not the request needs body_field",
                                rt->method, rt->path);
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(rt->request, rt->body_field);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED ||
        f->descriptor != rt->body || (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return lb_err_set(err, LB_ERR_CONFIG, "%s %s: %s.%s is not a singular %s", rt->method,
                          rt->path, rt->request->name, rt->body_field, rt->body->name);
    return LB_OK;
}

static lb_status
row_check(const edge_route *rt, lb_err *err)
{
    if (rt->method == NULL || rt->path == NULL || rt->path[0] != '/' || rt->operation == NULL ||
        rt->summary == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "row %s %s: method, path, operation and summary",
                          rt->method ? rt->method : "?", rt->path ? rt->path : "?");
    if (rt->kind == EDGE_KIND_LOCAL)
        return rt->fn != NULL && rt->schema != NULL
                   ? LB_OK
                   : lb_err_set(err, LB_ERR_CONFIG, "%s %s: a LOCAL row needs fn and schema",
                                rt->method, rt->path);
    if ((size_t)rt->kind >= EDGE_KIND__COUNT || rt->subject == NULL || rt->request == NULL ||
        rt->reply == NULL || rt->status < 200 || rt->status > 299 || rt->fn != NULL)
        return lb_err_set(err, LB_ERR_CONFIG,
                          "%s %s: needs kind, subject, request, reply, a 2xx status, no fn",
                          rt->method, rt->path);
    if (rt->hooks != NULL && rt->hooks->local != NULL &&
        (rt->hooks->reply_status || rt->hooks->reply_swap || rt->location || rt->answer))
        return lb_err_set(err, LB_ERR_CONFIG,
                          "%s %s: a local hook answers as the row's reply, status and all",
                          rt->method, rt->path);
    if (rt->reply_json != NULL) {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(rt->reply, rt->reply_json);
        if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING ||
            f->label == PROTOBUF_C_LABEL_REPEATED || rt->schema == NULL || rt->answer != NULL ||
            rt->location != NULL || rt->status == 204)
            return lb_err_set(err, LB_ERR_CONFIG,
                              "%s %s: reply_json names a string field of the reply, with a "
                              "schema, no answer, Location or 204",
                              rt->method, rt->path);
    }
    /* The step's event is not what the client gets: the hook turns either
     * reply into the answer. */
    if (rt->step_answer[0] != NULL &&
        (rt->kind != EDGE_KIND_SAGA_START || rt->hooks == NULL || rt->hooks->reply_swap == NULL))
        return lb_err_set(err, LB_ERR_CONFIG,
                          "%s %s: a step_answer is for a saga start with a reply_swap hook",
                          rt->method, rt->path);
    if (rt->answer != NULL && (rt->hooks == NULL || rt->hooks->reply_swap == NULL))
        return lb_err_set(err, LB_ERR_CONFIG, "%s %s: an answer type needs a reply_swap hook",
                          rt->method, rt->path);
    lb_status s = body_check(rt, err);
    if (s == LB_OK)
        s = binds_check(rt, err);
    if (s == LB_OK)
        s = fills_check(rt, err);
    if (s == LB_OK)
        s = placeholders_check(rt, rt->path, "path", path_bound, "no path bind fills it", err);
    if (s == LB_OK && rt->location != NULL)
        s = placeholders_check(rt, rt->location, "Location", in_reply, "not a reply field", err);
    return s;
}

lb_status
edge_routes_check(const edge_route *routes, size_t n, lb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        lb_status s = row_check(&routes[i], err);
        if (s != LB_OK)
            return s;
        for (size_t j = 0; j < i; j++)
            if (strcmp(routes[j].operation, routes[i].operation) == 0)
                return lb_err_set(err, LB_ERR_CONFIG, "operation %s used twice",
                                  routes[i].operation);
    }
    return LB_OK;
}
