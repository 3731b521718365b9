/* edge_orders.c - hooks of the order routes (edge_orders.h).
 *
 * GET /api/v1/orders/{id} shows the delivery beside the order (DESIGN §5), but
 * the order service does not keep deliveries: the hook asks the delivery
 * service, after the order query proved the order is the member's. A missing
 * delivery (not paid yet) or an unanswered query leaves the field out rather
 * than failing the page.
 *
 * Placing, paying, cancelling and returning run the order sagas
 * (sagas/order_place.c, order_pay.c). Their rows answer what the buyer
 * wants to see rather than the saga's outcome: the order as placed or paid
 * (read back with a query), or the status a signal set it on its way to. The
 * pay and signal rows first read the order as the member, so another
 * member's order is 404 before anything is sent. The pay row answers with
 * that first read moved to PAID at the time the pay saga's record says
 * (order_pay v3), and reads the order again only when it cannot.
 *
 * Both sagas' answering steps (saga.h .answers: place's payment_pending,
 * pay's order_paid) have the order service answer the edge directly, one
 * orchestrator hop before the saga's own reply: the rows accept its answer
 * (step_answer) as well as the saga's outcome. Place's is the order itself
 * (proto answer_order), so a place reads nothing back; pay's is the
 * OrderStatusSet, from which the first read is moved to PAID.
 *
 * The admin's order (GET /api/v1/admin/orders/{id}, the console's order
 * page) gathers the order, its payment ledger and its delivery. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_app.h"
#include "edge_orders.h"
#include "engine/id.h"
#include "engine/subjects.h"
#include "layby/v1/admin.pb-c.h"
#include "layby/v1/catalog.pb-c.h"
#include "layby/v1/delivery.pb-c.h"
#include "layby/v1/order.pb-c.h"
#include "layby/v1/payment.pb-c.h"
#include "layby/v1/saga.pb-c.h"

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

/* --- shared --------------------------------------------------------------- */

/* Sends req on subject as a query of r and decodes `want` into *out. */
static lb_status
ask(ProtobufCMessage **out, edge_req *r, const char *subject, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *want, lb_err *err)
{
    bus_envelope env;
    edge_envelope_init(r, &env, req->descriptor);
    natsMsg *reply = NULL;
    lb_status s =
        bus_request(&reply, r->app->bus, subject, &env, req, r->app->cfg.query_timeout_ms, err);
    if (s == LB_OK)
        s = bus_reply_decode(out, reply, want, err);
    natsMsg_Destroy(reply);
    return s;
}

/* The member's order order_id (not_found when it is another member's). */
static lb_status
order_read(Layby__V1__Order **out, edge_req *r, const char *order_id, lb_err *err)
{
    Layby__V1__GetOrder g = LAYBY__V1__GET_ORDER__INIT;
    g.member_id = r->claims.sub;
    g.order_id = (char *)order_id;
    return ask((ProtobufCMessage **)out, r, SUBJ_ORDER_GET_ORDER, &g.base,
               &layby__v1__order__descriptor, err);
}

/* Sets a string field of a decoded message (whose empty value is protobuf-c's
 * shared empty string, never to be freed) to a copy of v. */
static bool
text_set(char **field, const char *v)
{
    char *copy = strdup(v);
    if (copy == NULL)
        return false;
    if (*field != NULL && *field != protobuf_c_empty_string)
        free(*field);
    *field = copy;
    return true;
}

/* Replaces the saga's outcome by the order it is about, read back. */
static lb_status
swap_for_order(ProtobufCMessage **reply, edge_req *r, const char *order_id, lb_err *err)
{
    Layby__V1__Order *o = NULL;
    lb_status s = order_read(&o, r, order_id, err);
    if (s != LB_OK)
        return s;
    protobuf_c_message_free_unpacked(*reply, NULL);
    *reply = &o->base;
    return LB_OK;
}

/* --- place --------------------------------------------------------------------- */

/* The order order_id of a place repeated with its Idempotency-Key exists:
 * LB_OK when it does, else the status of the question (not_found when not). */
static lb_status
order_exists(edge_req *r, const char *order_id, lb_err *err)
{
    Layby__V1__Order *o = NULL;
    lb_status s = order_read(&o, r, order_id, err);
    if (s == LB_OK)
        protobuf_c_message_free_unpacked(&o->base, NULL);
    return s;
}

/* The wishlist's lines become the order's items. An empty wishlist is a 400,
 * unless this is a repeat of a place whose saga emptied it already (the
 * first answer was a 202, or the edge died before remembering it): the order
 * id derives from the Idempotency-Key, so the order is there, and starting
 * its saga again answers its outcome (one saga per id, whatever the draft). */
static lb_status
items_from_wishlist(Layby__V1__PlaceOrderDraft *d, edge_req *r, const char *order_id, lb_err *err)
{
    Layby__V1__GetWishlist g = LAYBY__V1__GET_WISHLIST__INIT;
    g.member_id = r->claims.sub;
    Layby__V1__Wishlist *w = NULL;
    lb_status s = ask((ProtobufCMessage **)&w, r, SUBJ_CATALOG_WISHLIST_GET, &g.base,
                      &layby__v1__wishlist__descriptor, err);
    if (s != LB_OK)
        return s;
    if (w->n_items == 0) {
        protobuf_c_message_free_unpacked(&w->base, NULL);
        s = order_exists(r, order_id, err);
        if (s == LB_ERR_NOT_FOUND)
            return lb_err_field(err, LB_ERR_INVALID, "fromWishlist", "the wishlist is empty");
        return s;
    }
    d->items = calloc(w->n_items, sizeof *d->items);
    bool oom = d->items == NULL;
    for (size_t i = 0; !oom && i < w->n_items; i++) {
        Layby__V1__OrderItem *it = malloc(sizeof *it);
        if (it == NULL) {
            oom = true;
            break;
        }
        layby__v1__order_item__init(it);
        d->items[d->n_items++] = it;
        oom = (it->product_id = strdup(w->items[i]->product_id)) == NULL;
        it->quantity = w->items[i]->quantity;
    }
    protobuf_c_message_free_unpacked(&w->base, NULL);
    return oom ? lb_err_set(err, LB_ERR_NOMEM, "wishlist items") : LB_OK;
}

/* DESIGN §2: the correlation of an order flow is the order id. The request's
 * messages (the saga's start command, the queries before it) carry it, like
 * everything the order's sagas send, so `layby-ctl events replay
 * --correlation <order id>` shows the whole flow. Set before the first
 * message (edge_envelope_init() keeps it). */
static void
flow_is_order(edge_req *r, const char *order_id)
{
    if (id_valid(order_id))
        snprintf(r->correlation, sizeof r->correlation, "%s", order_id);
}

static lb_status
place_prepare(ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    Layby__V1__PlaceOrder *p = (Layby__V1__PlaceOrder *)req;
    Layby__V1__PlaceOrderDraft *d = p->draft;
    if (d == NULL)
        return lb_err_field(err, LB_ERR_INVALID, "items", "give items or fromWishlist");
    if (!id_valid(d->address_id))
        return lb_err_field(err, LB_ERR_INVALID, "addressId", "addressId must be a UUID");
    if (d->from_wishlist && d->n_items > 0)
        return lb_err_field(err, LB_ERR_INVALID, "items", "give items or fromWishlist, not both");
    if (!d->from_wishlist && d->n_items == 0)
        return lb_err_field(err, LB_ERR_INVALID, "items", "an order needs at least one item");
    if (!text_set(&p->saga_id, p->order_id)) /* the saga's id is the order's */
        return lb_err_set(err, LB_ERR_NOMEM, "saga id");
    flow_is_order(r, p->order_id);
    return d->from_wishlist ? items_from_wishlist(d, r, p->order_id, err) : LB_OK;
}

/* The reply is the order service's Order when its step answered first
 * (saga.h .answers, proto answer_order): the answer as it is. Else it is
 * the saga's outcome, or the OrderStatusSet of an order service from before
 * answer_order, and the order is read back. */
static lb_status
place_swap(ProtobufCMessage **reply, edge_req *r, lb_err *err)
{
    if ((*reply)->descriptor == &layby__v1__order__descriptor)
        return LB_OK;
    char id[ID_STR_LEN];
    if ((*reply)->descriptor == &layby__v1__order_status_set__descriptor)
        snprintf(id, sizeof id, "%s", ((const Layby__V1__OrderStatusSet *)*reply)->order_id);
    else
        snprintf(id, sizeof id, "%s", ((const Layby__V1__SagaOutcome *)*reply)->saga_id);
    return swap_for_order(reply, r, id, err);
}

const edge_hooks edge_orders_place_hooks = { .prepare = place_prepare, .reply_swap = place_swap };

/* --- pay ----------------------------------------------------------------------- */

static lb_status
pay_prepare(ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    Layby__V1__PayOrder *p = (Layby__V1__PayOrder *)req;
    if (p->draft == NULL || p->draft->card_token[0] == '\0')
        return lb_err_field(err, LB_ERR_INVALID, "cardToken", "cardToken is required");
    if (strcmp(p->draft->method, "card") != 0)
        return lb_err_field(err, LB_ERR_INVALID, "method", "method must be \"card\"");
    flow_is_order(r, p->order_id);
    Layby__V1__Order *o = NULL;
    lb_status s = order_read(&o, r, p->order_id, err);
    if (s != LB_OK)
        return s;
    /* A repeat of a pay answered 202 goes on whatever the order's status now:
     * its saga (the id derives from the key) answers with its outcome, PAID. */
    if (strcmp(o->status, "PAYMENT_PENDING") != 0 && !r->idem_repeat)
        s = lb_err_set(err, LB_ERR_STATE, "the order is %s, not PAYMENT_PENDING", o->status);
    p->amount = o->total;
    if (r->held != NULL)
        protobuf_c_message_free_unpacked(r->held, NULL);
    r->held = &o->base; /* for pay_swap */
    return s;
}

/* The order o as the order service shows it once PAID at paid_at: status,
 * updated_at and a last timeline entry (reason "", as the pay saga sets
 * none). False, o unchanged, when that cannot be told from o: it was not
 * PAYMENT_PENDING when read (a repeat), or paid_at does not sort after its
 * last entry (the service orders its timeline by time, then status). */
static bool
order_paid_at(Layby__V1__Order *o, const char *paid_at)
{
    if (strcmp(o->status, "PAYMENT_PENDING") != 0 || paid_at[0] == '\0' || o->n_timeline == 0 ||
        strcmp(o->timeline[o->n_timeline - 1]->at, paid_at) >= 0)
        return false;
    Layby__V1__OrderEvent **t = realloc(o->timeline, (o->n_timeline + 1) * sizeof *t);
    if (t == NULL)
        return false;
    o->timeline = t;
    Layby__V1__OrderEvent *e = malloc(sizeof *e);
    if (e == NULL)
        return false;
    layby__v1__order_event__init(e);
    e->status = strdup("PAID");
    e->at = strdup(paid_at);
    e->reason = strdup("");
    if (e->status == NULL || e->at == NULL || e->reason == NULL) {
        protobuf_c_message_free_unpacked(&e->base, NULL);
        return false;
    }
    if (!text_set(&o->status, "PAID") || !text_set(&o->updated_at, paid_at)) {
        protobuf_c_message_free_unpacked(&e->base, NULL);
        return false; /* o is a PAID order without its entry: not answered (caller reads) */
    }
    o->timeline[o->n_timeline++] = e;
    return true;
}

/* When the pay saga's reply says the order became PAID: the order service's
 * OrderStatusSet when its step answered first (saga.h .answers), else the
 * saga's outcome and its record (v3). "" when it does not say. */
static void
reply_paid_at(char *out, size_t n, const ProtobufCMessage *reply)
{
    out[0] = '\0';
    if (reply->descriptor == &layby__v1__order_status_set__descriptor) {
        const Layby__V1__OrderStatusSet *set = (const Layby__V1__OrderStatusSet *)reply;
        if (strcmp(set->status, "PAID") == 0)
            snprintf(out, n, "%s", set->at);
        return;
    }
    const Layby__V1__SagaOutcome *o = (const Layby__V1__SagaOutcome *)reply;
    if (strcmp(o->status, "COMPLETED") != 0 || o->record.len == 0)
        return;
    Layby__V1__PaySagaRecord *rec =
        layby__v1__pay_saga_record__unpack(NULL, o->record.len, o->record.data);
    if (rec != NULL) {
        snprintf(out, n, "%s", rec->paid_at);
        layby__v1__pay_saga_record__free_unpacked(rec, NULL);
    }
}

static lb_status
pay_swap(ProtobufCMessage **reply, edge_req *r, lb_err *err)
{
    char id[ID_STR_LEN], paid_at[64];
    if (!edge_param_copy(r, "id", id, sizeof id))
        return lb_err_set(err, LB_ERR_INTERNAL, "pay route without {id}");
    Layby__V1__Order *o = (Layby__V1__Order *)r->held;
    reply_paid_at(paid_at, sizeof paid_at, *reply);
    if (o == NULL || strcmp(o->order_id, id) != 0 || !order_paid_at(o, paid_at))
        /* a pay saga before v3, a repeat, a tie in time: as the service shows it */
        return swap_for_order(reply, r, id, err);
    protobuf_c_message_free_unpacked(*reply, NULL);
    *reply = &o->base;
    r->held = NULL;
    return LB_OK;
}

const edge_hooks edge_orders_pay_hooks = { .prepare = pay_prepare, .reply_swap = pay_swap };

/* --- signals ------------------------------------------------------------------- */

/* The signal's name is a constant bind of the row; this adds who and why. */
static lb_status
signal_prepare(ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    Layby__V1__SignalSaga *sg = (Layby__V1__SignalSaga *)req;
    Layby__V1__Order *o = NULL;
    lb_status s = order_read(&o, r, sg->saga_id, err); /* the saga's id is the order's */
    if (s != LB_OK)
        return s;
    protobuf_c_message_free_unpacked(&o->base, NULL);
    if (!text_set(&sg->actor, r->actor) || !text_set(&sg->reason, "asked by the buyer"))
        return lb_err_set(err, LB_ERR_NOMEM, "signal");
    return LB_OK;
}

static lb_status
signal_swap(ProtobufCMessage **reply, const char *status, lb_err *err)
{
    const Layby__V1__SagaOutcome *o = (const Layby__V1__SagaOutcome *)*reply;
    Layby__V1__OrderSignalled *a = malloc(sizeof *a);
    if (a == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "answer");
    layby__v1__order_signalled__init(a);
    a->order_id = strdup(o->saga_id);
    a->status = strdup(status);
    if (a->order_id == NULL || a->status == NULL) {
        protobuf_c_message_free_unpacked(&a->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "answer");
    }
    protobuf_c_message_free_unpacked(*reply, NULL);
    *reply = &a->base;
    return LB_OK;
}

static lb_status
cancel_swap(ProtobufCMessage **reply, edge_req *r, lb_err *err)
{
    (void)r;
    return signal_swap(reply, "CANCELLED", err);
}

static lb_status
return_swap(ProtobufCMessage **reply, edge_req *r, lb_err *err)
{
    (void)r;
    return signal_swap(reply, "RETURN_REQUESTED", err);
}

const edge_hooks edge_orders_cancel_hooks = { .prepare = signal_prepare,
                                              .reply_swap = cancel_swap };
const edge_hooks edge_orders_return_hooks = { .prepare = signal_prepare,
                                              .reply_swap = return_swap };

/* --- admin --------------------------------------------------------------------- */

/* GET /api/v1/admin/orders/{id}: the order (read with member "", any
 * member's) with its ledger and delivery beside it. Unlike the buyer's page,
 * a service that does not answer fails the request: an operator shown no
 * charge must be able to trust that there is none. No delivery is not an
 * error (not paid yet, or cancelled before one was made). */
static lb_status
admin_order_swap(ProtobufCMessage **reply, edge_req *r, lb_err *err)
{
    Layby__V1__Order *o = (Layby__V1__Order *)*reply;
    Layby__V1__GetPaymentLedger gl = LAYBY__V1__GET_PAYMENT_LEDGER__INIT;
    Layby__V1__GetDelivery gd = LAYBY__V1__GET_DELIVERY__INIT;
    gl.order_id = gd.order_id = o->order_id;
    ProtobufCMessage *ledger = NULL, *delivery = NULL;
    lb_status s =
        ask(&ledger, r, SUBJ_PAYMENT_LEDGER, &gl.base, &layby__v1__payment_ledger__descriptor, err);
    if (s == LB_OK) {
        s = ask(&delivery, r, SUBJ_DELIVERY_GET, &gd.base, &layby__v1__delivery__descriptor, err);
        if (s == LB_ERR_NOT_FOUND)
            s = LB_OK;
    }
    Layby__V1__AdminOrder *a = s == LB_OK ? malloc(sizeof *a) : NULL;
    if (s == LB_OK && a == NULL)
        s = lb_err_set(err, LB_ERR_NOMEM, "admin order");
    if (s != LB_OK) {
        if (ledger != NULL)
            protobuf_c_message_free_unpacked(ledger, NULL);
        if (delivery != NULL)
            protobuf_c_message_free_unpacked(delivery, NULL);
        return s;
    }
    layby__v1__admin_order__init(a);
    a->order = o;
    a->ledger = (Layby__V1__PaymentLedger *)ledger;
    a->delivery = (Layby__V1__Delivery *)delivery;
    *reply = &a->base;
    return LB_OK;
}

const edge_hooks edge_orders_admin_get_hooks = { .reply_swap = admin_order_swap };
