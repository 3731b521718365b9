/* edge_run.c - the one function that runs any route row that is not LOCAL.
 *
 * Steps, each answering the client itself when it fails:
 *   1. body:   read within limits, decode by the row's body type (generic
 *              codec); a body that is the request itself may not set a field
 *              a bind or the prepare hook fills (edge_route_sets: unknown_field),
 *              so the token's member id, the path's id or the client's address
 *              can never be overridden from the body.
 *   2. binds:  path, query and token values into request fields (400 naming
 *              the parameter).
 *   3. Idempotency-Key: claim, or answer with the remembered first outcome.
 *   4. new ids (derived from the key), then the row's prepare hook.
 *   5. send with Layby-Actor and traceparent, wait, map the outcome:
 *      reply -> the row's status (or the reply_status hook's), body, Location;
 *      a layby.v1.Throttled reply -> 429 with Retry-After;
 *      Failure -> its code's HTTP status through lb.h (after the row's remap);
 *      no outcome in time -> 202 PENDING for commands, 504 for queries.
 *      "In time" is the kind's setting: --saga-wait for a saga start (a
 *      checkout's place and pay, short so a buyer is not kept waiting while
 *      a saga still decides), --command-timeout for commands and signals,
 *      --query-timeout for queries.
 *   6. remember a final outcome under the Idempotency-Key, then send.
 */
#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "edge_app.h"
#include "edge_bind.h"
#include "edge_idem.h"
#include "edge_outcome.h"
#include "edge_routes.h"
#include "edge_run.h"
#include "metrics.h"

#define WAIT(f) offsetof(edge_cfg, f)

/* clang-format off */
static const edge_kind_info kinds[] = {
    /*                        name          command  pending_202  wait */
    [EDGE_KIND_LOCAL]      = { "local",      false,   false,       WAIT(query_timeout_ms) },
    [EDGE_KIND_QUERY]      = { "query",      false,   false,       WAIT(query_timeout_ms) },
    [EDGE_KIND_COMMAND]    = { "command",    true,    true,        WAIT(command_timeout_ms) },
    [EDGE_KIND_SAGA_START] = { "saga start", true,    true,        WAIT(saga_wait_ms) },
    [EDGE_KIND_SIGNAL]     = { "signal",     true,    true,        WAIT(command_timeout_ms) },
};
/* clang-format on */
_Static_assert(LB_COUNTOF(kinds) == EDGE_KIND__COUNT, "one row per edge_kind");

const edge_kind_info *
edge_kind_info_of(edge_kind k)
{
    return (size_t)k < LB_COUNTOF(kinds) ? &kinds[k] : &kinds[EDGE_KIND_LOCAL];
}

lb_status
edge_run_body_decode(ProtobufCMessage **out, const edge_route *rt, const char *text, size_t len,
                     lb_err *err)
{
    json_error_t je;
    json_t *root =
        json_loadb(text ? text : "", text ? len : 0, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (root == NULL)
        return lb_err_set(err, LB_ERR_BAD_JSON, "malformed JSON at line %d column %d: %s", je.line,
                          je.column, je.text);
    lb_status s = LB_OK;
    for (unsigned i = 0; i < rt->request->n_fields && json_is_object(root); i++) {
        const char *name = rt->request->fields[i].name;
        char key[LB_ERR_FIELD_MAX];
        codec_json_name(key, sizeof key, name);
        if (edge_route_sets(rt, name) && json_object_get(root, key) != NULL) {
            s = lb_err_field(err, LB_ERR_UNKNOWN_FIELD, key, "unknown field %s", key);
            break;
        }
    }
    if (s == LB_OK)
        s = codec_json_decode(out, rt->request, root, err);
    json_decref(root);
    return s;
}

static ProtobufCMessage *
message_new(const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = malloc(desc->sizeof_message);
    if (m != NULL)
        protobuf_c_message_init(desc, m);
    return m;
}

/* Steps 1 and 2. On failure it has replied and returns NULL. */
static ProtobufCMessage *
request_build_or_reply(edge_req *r)
{
    const edge_route *rt = r->route;
    ProtobufCMessage *req = NULL;
    lb_err err;
    lb_err_clear(&err);
    lb_status s = LB_OK;
    if (rt->body != NULL && rt->body_field == NULL) {
        if (edge_body_read_or_reply(r) != LB_OK)
            return NULL;
        s = edge_run_body_decode(&req, rt, r->body, r->body_len, &err);
    } else if (rt->body != NULL) {
        ProtobufCMessage *body = edge_body_decode_or_reply(r, rt->body);
        if (body == NULL)
            return NULL;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(rt->request, rt->body_field);
        req = message_new(rt->request);
        if (req == NULL || f == NULL) { /* f: edge_routes_check() refuses such rows */
            protobuf_c_message_free_unpacked(body, NULL);
            s = lb_err_set(&err, req ? LB_ERR_CONFIG : LB_ERR_NOMEM, "body field");
        } else {
            *(ProtobufCMessage **)((char *)req + f->offset) = body;
        }
    } else {
        req = message_new(rt->request);
        if (req == NULL)
            s = lb_err_set(&err, LB_ERR_NOMEM, "request");
    }
    if (s == LB_OK)
        s = edge_binds_apply(req, r, false, &err);
    if (s != LB_OK) {
        if (req != NULL)
            protobuf_c_message_free_unpacked(req, NULL);
        if (lb_status_http(s) >= 500)
            edge_fault_log(r, "edge.request_failed", &err);
        edge_reply_error(r, &err, NULL);
        return NULL;
    }
    return req;
}

static lb_status
remapped(const edge_route *rt, lb_status s)
{
    for (const edge_remap *m = rt->remap; m != NULL && m->from != LB_OK; m++)
        if (m->from == s)
            return m->to;
    return s;
}

/* The JSON text in the reply's reply_json field (a string: edge_routes_check). */
static lb_status
reply_json_load(json_t **out, const edge_route *rt, const ProtobufCMessage *reply, lb_err *err)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(reply->descriptor, rt->reply_json);
    const char *text = f != NULL ? *(char *const *)((const char *)reply + f->offset) : NULL;
    json_error_t je;
    *out = text != NULL ? json_loads(text, JSON_DECODE_ANY, &je) : NULL;
    return *out != NULL ? LB_OK
                        : lb_err_set(err, LB_ERR_DECODE, "%s.%s is not JSON",
                                     reply->descriptor->name, rt->reply_json);
}

static void
on_reply(edge_outcome *o, edge_req *r, const ProtobufCMessage *reply)
{
    const edge_route *rt = r->route;
    int status = rt->hooks && rt->hooks->reply_status ? rt->hooks->reply_status(reply, r) : 0;
    if (status == 0)
        status = rt->status;
    /* encoded once, for the body and the Location alike */
    json_t *obj = NULL;
    lb_err err;
    lb_err_clear(&err);
    if (rt->reply_json != NULL ? reply_json_load(&obj, rt, reply, &err) != LB_OK
                               : codec_json_encode(&obj, reply, &err) != LB_OK) {
        edge_fault_log(r, "edge.reply_failed", &err);
        edge_outcome_error(o, &err);
        return;
    }
    if (status == 204)
        edge_outcome_empty(o, status);
    else
        edge_outcome_json(o, status, obj);
    if (rt->location != NULL && o->status < 300)
        edge_outcome_location_json(o, rt->location, obj);
    json_decref(obj);
}

/* Stored (or maybe stored) and will be handled: tell the client what it will
 * be and where, instead of failing a command that will succeed. The body
 * names the ids the request carries from binds, and status PENDING. */
static void
on_pending(edge_outcome *o, edge_req *r, const ProtobufCMessage *req)
{
    const edge_route *rt = r->route;
    json_t *sent = NULL, *body = json_object();
    codec_json_encode(&sent, req, NULL);
    for (const edge_bind *b = rt->binds; b != NULL && b->from != EDGE_FROM_END; b++) {
        if (b->from != EDGE_FROM_NEW_ID && b->from != EDGE_FROM_PATH)
            continue;
        char key[LB_ERR_FIELD_MAX];
        codec_json_name(key, sizeof key, b->field);
        json_t *v = json_object_get(sent, key);
        if (body != NULL && v != NULL)
            json_object_set(body, key, v);
    }
    if (body != NULL)
        json_object_set_new(body, "status", json_string("PENDING"));
    edge_outcome_json(o, 202, body);
    json_decref(body);
    json_decref(sent);
    if (rt->location != NULL)
        edge_outcome_location(o, rt->location, req);
}

/* Counts a saga start answered by its answering step's participant (saga.h
 * .answers) rather than the saga, so a stack shows whether its buyers hear
 * the participant or wait the extra hop. */
static void
count_step_answer(void)
{
    static _Atomic(metrics_metric *) early;
    metrics_metric *m = atomic_load(&early);
    if (m == NULL) {
        m = metrics_counter("layby_edge_step_answers_total", "",
                            "saga starts answered by the saga's answering step, a hop early");
        atomic_store(&early, m);
    }
    metrics_add(m, 1);
}

/* Step 5. */
static void
send_and_wait(edge_outcome *o, edge_req *r, const ProtobufCMessage *req)
{
    const edge_route *rt = r->route;
    const edge_kind_info *k = edge_kind_info_of(rt->kind);
    edge_app *app = r->app;
    bus_envelope env;
    edge_envelope_init(r, &env, rt->request);
    natsMsg *reply = NULL;
    lb_err err;
    lb_err_clear(&err);
    int64_t wait_ms = *(const int64_t *)((const char *)&app->cfg + k->wait_cfg);
    lb_status s = k->command ? bus_command(&reply, app->bus, rt->subject, &env, req, wait_ms, &err)
                             : bus_request(&reply, app->bus, rt->subject, &env, req, wait_ms, &err);
    if (s == LB_OK && edge_reply_is_throttled(reply)) {
        edge_outcome_throttled(o, reply); /* any service's rate limit: 429 + Retry-After */
    } else if (s == LB_OK) {
        ProtobufCMessage *p = NULL;
        const ProtobufCMessageDescriptor *wants[1 + EDGE_STEP_ANSWERS] = { rt->reply };
        size_t n_wants = 1;
        for (size_t i = 0; i < EDGE_STEP_ANSWERS && rt->step_answer[i] != NULL; i++)
            wants[n_wants++] = rt->step_answer[i];
        s = bus_reply_decode_any(&p, reply, wants, n_wants, &err);
        if (s == LB_OK && p->descriptor != rt->reply)
            count_step_answer();
        if (s == LB_OK && rt->hooks && rt->hooks->reply_swap &&
            (s = rt->hooks->reply_swap(&p, r, &err)) != LB_OK) {
            if (lb_status_http(s) >= 500)
                edge_fault_log(r, "edge.reply_swap_failed", &err);
            edge_outcome_error(o, &err);
            if (p != NULL) /* on failure the hook leaves *reply (ours) in place */
                protobuf_c_message_free_unpacked(p, NULL);
        } else if (s == LB_OK) {
            if (rt->hooks && rt->hooks->reply_seen)
                rt->hooks->reply_seen(p, r);
            on_reply(o, r, p);
            protobuf_c_message_free_unpacked(p, NULL);
        } else {
            /* a Failure (the service's answer) or a reply we cannot read */
            if (lb_status_http(s) >= 500 || s == LB_ERR_DECODE)
                edge_fault_log(r, "edge.reply_failed", &err);
            err.code = remapped(rt, edge_fault_status(s));
            edge_outcome_error(o, &err);
        }
    } else if (s == LB_ERR_TIMEOUT && k->pending_202) {
        on_pending(o, r, req);
    } else {
        edge_fault_log(r, k->command ? "edge.command_failed" : "edge.query_failed", &err);
        if (k->command)
            err.code = s == LB_ERR_INTERNAL || s == LB_ERR_NOMEM ? s : LB_ERR_UNAVAILABLE;
        else
            err.code = edge_fault_status(s);
        edge_outcome_error(o, &err);
    }
    natsMsg_Destroy(reply);
}

/* The row's local hook: true when it answered (o holds the answer). */
static bool
local_answered(edge_outcome *o, edge_req *r, const ProtobufCMessage *req)
{
    const edge_route *rt = r->route;
    if (rt->hooks == NULL || rt->hooks->local == NULL)
        return false;
    char *body = NULL;
    lb_err err;
    lb_err_clear(&err);
    lb_status s = rt->hooks->local(&body, req, r, &err);
    if (s == LB_ERR_UNAVAILABLE)
        return false;
    if (s == LB_OK) {
        free(o->body);
        o->body = body;
        o->status = rt->status;
    } else {
        if (lb_status_http(s) >= 500)
            edge_fault_log(r, "edge.local_failed", &err);
        edge_outcome_error(o, &err);
    }
    return true;
}

void
edge_route_run(edge_req *r)
{
    const edge_route *rt = r->route;
    ProtobufCMessage *req = request_build_or_reply(r);
    if (req == NULL)
        return;

    edge_idem idem = { .active = false };
    if (rt->idempotent) {
        bool replied;
        edge_idem_begin_or_reply(&idem, &replied, r, edge_header(r, "Idempotency-Key"));
        if (replied)
            goto out_req;
        r->idem_repeat = idem.repeat;
    }
    edge_outcome o = { .status = 0 };
    lb_err err;
    lb_err_clear(&err);
    if (edge_binds_apply(req, r, true, &err) != LB_OK ||
        (rt->hooks && rt->hooks->prepare && rt->hooks->prepare(req, r, &err) != LB_OK)) {
        if (lb_status_http(err.code) >= 500)
            edge_fault_log(r, "edge.request_failed", &err);
        edge_outcome_error(&o, &err);
    } else if (!local_answered(&o, r, req)) {
        send_and_wait(&o, r, req);
    }
    /* Remembered before it is sent: a client that repeats the moment it has
     * the answer must find the outcome, not the claim (which would run the
     * route again and answer anew). Sent first, a repeat raced the put. */
    edge_idem_finish(&idem, r, o.status, o.body, o.location);
    edge_outcome_send(r, &o);
    edge_outcome_destroy(&o);
out_req:
    protobuf_c_message_free_unpacked(req, NULL);
}
