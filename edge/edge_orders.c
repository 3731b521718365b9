/* edge_orders.c - hooks of the order routes (edge_orders.h).
 *
 * GET /api/v1/orders/{id} shows the delivery beside the order (DESIGN §5), but
 * the order service does not keep deliveries: the hook asks the delivery
 * service, after the order query proved the order is the member's. A missing
 * delivery (not paid yet) or an unanswered query leaves the field out rather
 * than failing the page. */
#include <stdlib.h>
#include <string.h>

#include "edge_app.h"
#include "edge_orders.h"
#include "engine/subjects.h"
#include "layby/v1/delivery.pb-c.h"
#include "layby/v1/order.pb-c.h"

/* Asks the delivery service for order_id; NULL when there is none (yet). */
static Layby__V1__Delivery *
delivery_read(edge_req *r, const char *order_id)
{
    Layby__V1__GetDelivery g = LAYBY__V1__GET_DELIVERY__INIT;
    g.order_id = (char *)order_id;
    bus_envelope env;
    edge_envelope_init(r, &env, &layby__v1__get_delivery__descriptor);
    natsMsg *reply = NULL;
    lb_err err;
    if (bus_request(&reply, r->app->bus, SUBJ_DELIVERY_GET, &env, &g.base,
                    r->app->cfg.query_timeout_ms, &err) != LB_OK)
        return NULL;
    ProtobufCMessage *d = NULL;
    lb_status s = bus_reply_decode(&d, reply, &layby__v1__delivery__descriptor, &err);
    natsMsg_Destroy(reply);
    return s == LB_OK ? (Layby__V1__Delivery *)d : NULL;
}

/* The delivery as the order page shows it; NULL when out of memory. */
static Layby__V1__DeliveryView *
view_of(const Layby__V1__Delivery *d)
{
    Layby__V1__DeliveryView *v = calloc(1, sizeof *v);
    if (v == NULL)
        return NULL;
    layby__v1__delivery_view__init(v);
    bool oom = (v->delivery_id = strdup(d->delivery_id)) == NULL;
    oom |= (v->status = strdup(d->status)) == NULL;
    v->timeline = calloc(d->n_timeline + 1, sizeof *v->timeline);
    oom |= v->timeline == NULL;
    for (size_t i = 0; !oom && i < d->n_timeline; i++) {
        Layby__V1__OrderEvent *e = malloc(sizeof *e);
        if (e == NULL) {
            oom = true;
            break;
        }
        layby__v1__order_event__init(e);
        v->timeline[v->n_timeline++] = e;
        oom |= (e->status = strdup(d->timeline[i]->status)) == NULL;
        oom |= (e->at = strdup(d->timeline[i]->at)) == NULL;
        oom |= (e->reason = strdup("")) == NULL;
    }
    if (oom) {
        protobuf_c_message_free_unpacked(&v->base, NULL);
        return NULL;
    }
    return v;
}

static lb_status
order_get_swap(ProtobufCMessage **reply, edge_req *r, lb_err *err)
{
    (void)err;
    Layby__V1__Order *o = (Layby__V1__Order *)*reply;
    Layby__V1__Delivery *d = delivery_read(r, o->order_id);
    if (d != NULL) {
        o->delivery = view_of(d);
        protobuf_c_message_free_unpacked(&d->base, NULL);
    }
    return LB_OK;
}

const edge_hooks edge_orders_get_hooks = { .reply_swap = order_get_swap };
