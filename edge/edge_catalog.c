/* edge_catalog.c - product routes.
 *
 * A create is a command through JetStream (it must not be lost), answered on
 * a reply inbox: the edge waits up to the command timeout and otherwise says
 * 202 with the product's Location, since the command is stored and will be
 * handled. A read is a core NATS query. The product id is chosen here, so a
 * repeat with the same Idempotency-Key is the same product whatever happened
 * to the first request.
 */
#include "edge_catalog.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "edge_app.h"
#include "edge_idem.h"
#include "edge_routes.h"
#include "layby/v1/catalog.pb-c.h"
#include "log.h"

#define LOCATION_MAX 96 /* "/api/v1/products/" + id */

/* An outcome to send (and maybe remember): status, body text, Location. */
typedef struct outcome {
    int status;
    char *body; /* malloc'd */
    char location[LOCATION_MAX];
} outcome;

static void
log_fault(edge_req *r, const char *event, const lb_err *err)
{
    log_ctx lc = { .correlation = r->correlation[0] ? r->correlation : NULL };
    log_warn(&lc, event, "catalog request failed", LOG_STR("route", r->route->path), LOG_ERR(err));
}

/* Client-visible status for a bus or decode fault of ours: a reply we cannot
 * decode is our bug, not the client's bad message. */
static lb_status
fault_status(lb_status s)
{
    return s == LB_ERR_DECODE ? LB_ERR_INTERNAL : s;
}

static void
outcome_error(outcome *o, const lb_err *err)
{
    o->body = edge_error_text(&o->status, err->code, err->field, err->msg);
}

static void
outcome_msg(outcome *o, int status, const ProtobufCMessage *msg)
{
    lb_err err;
    if (codec_json_encode_text(&o->body, msg, &err) != LB_OK) {
        outcome_error(o, &err);
        return;
    }
    o->status = status;
}

static void
outcome_send(edge_req *r, const outcome *o)
{
    if (o->body == NULL) {
        edge_reply_status(r, LB_ERR_NOMEM, NULL, NULL, NULL);
        return;
    }
    char extra[EDGE_HEADERS_MAX] = "";
    if (o->location[0] != '\0')
        snprintf(extra, sizeof extra, "Location: %s\r\n", o->location);
    edge_reply_json(r, o->status, o->body, extra);
}

/* The answer to a sent CreateProduct. */
static void
create_outcome(outcome *o, edge_req *r, lb_status s, natsMsg *reply, const char *id, lb_err *err)
{
    if (s == LB_OK) {
        ProtobufCMessage *p = NULL;
        s = bus_reply_decode(&p, reply, &layby__v1__product__descriptor, err);
        if (s == LB_OK) {
            const Layby__V1__Product *prod = (const Layby__V1__Product *)p;
            snprintf(o->location, sizeof o->location, "/api/v1/products/%s", prod->product_id);
            outcome_msg(o, 201, p);
            protobuf_c_message_free_unpacked(p, NULL);
            return;
        }
        if (lb_status_http(s) >= 500 || s == LB_ERR_DECODE)
            log_fault(r, "edge.catalog_failed", err);
        err->code = fault_status(s);
        outcome_error(o, err);
        return;
    }
    if (s == LB_ERR_TIMEOUT) {
        /* Stored (or maybe stored) and will be handled: tell the client where
         * the product will be instead of failing a create that succeeds. */
        json_t *j = json_pack("{s:s, s:s}", "productId", id, "status", "PENDING");
        o->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        o->status = 202;
        snprintf(o->location, sizeof o->location, "/api/v1/products/%s", id);
        return;
    }
    log_fault(r, "edge.command_failed", err);
    err->code = s == LB_ERR_INTERNAL || s == LB_ERR_NOMEM ? s : LB_ERR_UNAVAILABLE;
    outcome_error(o, err);
}

void
edge_product_create(edge_req *r)
{
    edge_app *app = r->app;
    ProtobufCMessage *draft = edge_body_decode_or_reply(r, &layby__v1__product_draft__descriptor);
    if (draft == NULL)
        return;

    const char *key = edge_header(r, "Idempotency-Key");
    edge_idem idem;
    bool replied;
    edge_idem_begin_or_reply(&idem, &replied, r, key);
    if (replied)
        goto out_draft;

    char id[ID_STR_LEN];
    if (key != NULL) {
        char k[EDGE_SUB_MAX + EDGE_IDEM_KEY_MAX + 2];
        snprintf(k, sizeof k, "%s:%s", r->claims.sub, key);
        id_from_key(id, "product", k);
    } else {
        id_new(id);
    }
    Layby__V1__CreateProduct cmd = LAYBY__V1__CREATE_PRODUCT__INIT;
    cmd.product_id = id;
    cmd.draft = (Layby__V1__ProductDraft *)draft;
    bus_envelope env;
    edge_envelope_init(r, &env, &layby__v1__create_product__descriptor);

    natsMsg *reply = NULL;
    lb_err err;
    lb_err_clear(&err);
    lb_status s = bus_command(&reply, app->bus, SUBJ_CATALOG_CREATE_PRODUCT, &env, &cmd.base,
                              app->cfg.command_timeout_ms, &err);
    outcome o = { .status = 0 };
    create_outcome(&o, r, s, reply, id, &err);
    natsMsg_Destroy(reply);

    outcome_send(r, &o);
    edge_idem_finish(&idem, r, o.status, o.body, o.location);
    free(o.body);
out_draft:
    protobuf_c_message_free_unpacked(draft, NULL);
}

void
edge_product_get(edge_req *r)
{
    edge_app *app = r->app;
    char id[ID_STR_LEN];
    if (!edge_param_copy(r, "id", id, sizeof id) || !id_valid(id)) {
        edge_reply_status(r, LB_ERR_INVALID, "id", "product id must be a UUID", NULL);
        return;
    }
    Layby__V1__GetProduct q = LAYBY__V1__GET_PRODUCT__INIT;
    q.product_id = id;
    bus_envelope env;
    edge_envelope_init(r, &env, &layby__v1__get_product__descriptor);

    natsMsg *reply = NULL;
    ProtobufCMessage *p = NULL;
    lb_err err;
    lb_err_clear(&err);
    lb_status s = bus_request(&reply, app->bus, SUBJ_CATALOG_GET_PRODUCT, &env, &q.base,
                              app->cfg.query_timeout_ms, &err);
    if (s == LB_OK)
        s = bus_reply_decode(&p, reply, &layby__v1__product__descriptor, &err);
    natsMsg_Destroy(reply);
    if (s == LB_OK) {
        edge_reply_msg(r, 200, p, NULL);
        protobuf_c_message_free_unpacked(p, NULL);
        return;
    }
    if (lb_status_http(s) >= 500 || s == LB_ERR_DECODE)
        log_fault(r, "edge.query_failed", &err);
    err.code = fault_status(s);
    edge_reply_error(r, &err, NULL);
}
