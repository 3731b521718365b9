/* order_place.c - the saga of one order, from placing it to the end of its
 * return window ("order_place" v5, and v1-v4 for the sagas started on them;
 * its id is the order id).
 *
 *   create (order PENDING)          undo: order CANCELLED, or REJECTED when stock was short
 *   reserve stock (v5: sent with create) undo: release (reserved or sold units)
 *   wishlist: ordered lines leave it (v3: skipped unless ordered from the wishlist)
 *   order PAYMENT_PENDING, deadline reply: 201 to the buyer    undo: refund what was paid
 *   WAIT for OrderPaid (the pay saga) until the deadline
 *   confirm the sale (reserved -> sold)
 *   delivery PREPARING              undo: cancel the delivery
 *   DELAY, delivery SHIPPING (pivot: nothing at or before it is undone any more)
 *   DELAY, delivery DELIVERED
 *   DELAY the return window (ends: the saga COMPLETES)
 *   -- after the `return` signal --
 *   order RETURN_REQUESTED, delivery RETURN_PICKUP, DELAY, refund, stock back,
 *   delivery RETURNED, order RETURNED
 *
 * Signals: `cancel` from create up to the delay before shipping (the delivery
 * is still PREPARING) undoes every done step in reverse and ends CANCELLED;
 * later it is refused not_cancellable. `return` during the window jumps to
 * the return branch; elsewhere not_returnable. The deadline passing is the
 * wait step's timeout: the same undo as a cancel (refund is a no-op that voids
 * a late charge), and the order ends CANCELLED.
 *
 * v1 refunded as the undo of the wait step, so an undo that began before the
 * saga reached it (a cancel while PAYMENT_PENDING was being set, and paid)
 * refunded nothing: v2 refunds as the undo of payment_pending (the tables
 * below say why; tests/integration/order_races_test.c forces that race).
 *
 * Builders are pure: they read the start command (PlaceOrder), the record
 * (OrderSagaRecord: reserved lines, prices, total, short products) and the
 * state (id, step, attempt, durations). */
#include <stdlib.h>
#include <string.h>

#include "layby/v1/catalog.pb-c.h"
#include "layby/v1/delivery.pb-c.h"
#include "layby/v1/order.pb-c.h"
#include "layby/v1/payment.pb-c.h"
#include "order.h"

#define P(name) ORDER_PLACE_##name

typedef const Layby__V1__PlaceOrder place_start;
typedef const Layby__V1__OrderSagaRecord place_record;

/* The order status set by each order step, and the delivery status of each
 * delivery step. */
/* clang-format off */
static const char *const place_order_status[ORDER_PLACE__STEPS] = {
    [P(PENDING)]        = "PAYMENT_PENDING",
    [P(RETURN_REQUEST)] = "RETURN_REQUESTED",
    [P(RETURNED)]       = "RETURNED",
};
static const char *const place_order_expect[ORDER_PLACE__STEPS] = {
    [P(PENDING)]        = "PENDING",
    [P(RETURN_REQUEST)] = "PAID",
    [P(RETURNED)]       = "RETURN_REQUESTED",
};
static const char *const place_delivery_status[ORDER_PLACE__STEPS] = {
    [P(PREPARE)]           = "PREPARING",
    [P(SHIP)]              = "SHIPPING",
    [P(DELIVER)]           = "DELIVERED",
    [P(PICKUP)]            = "RETURN_PICKUP",
    [P(DELIVERY_RETURNED)] = "RETURNED",
};
/* clang-format on */

/* --- builders ---------------------------------------------------------------- */

static lb_status
build_create(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    place_start *p = (place_start *)in->start;
    Layby__V1__CreateOrder c = LAYBY__V1__CREATE_ORDER__INIT;
    c.saga_id = (char *)in->s->id;
    c.step = in->cmd->step;
    c.attempt = in->cmd->attempt;
    c.order_id = p->order_id;
    c.member_id = p->member_id;
    if (p->draft != NULL) {
        c.address_id = p->draft->address_id;
        c.items = p->draft->items;
        c.n_items = p->draft->n_items;
        c.from_wishlist = p->draft->from_wishlist;
    }
    return order_saga_copy(out, &c.base, err);
}

/* Undo of create: the order ends REJECTED when stock was short, else CANCELLED. */
static lb_status
build_create_undo(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    place_start *p = (place_start *)in->start;
    place_record *r = (place_record *)in->record;
    bool rejected = r != NULL && r->n_short_product_ids > 0;
    Layby__V1__SetOrderStatus c = LAYBY__V1__SET_ORDER_STATUS__INIT;
    c.saga_id = (char *)in->s->id;
    c.step = in->cmd->step;
    c.attempt = in->cmd->attempt;
    c.order_id = p->order_id;
    c.status = rejected ? "REJECTED" : "CANCELLED";
    c.reason = (in->s->flags & SAGA_F_CANCELLED) ? "cancelled by the buyer"
               : in->s->fail_reason[0]           ? (char *)in->s->fail_reason
                                                 : "the order could not be completed";
    if (rejected) {
        c.short_product_ids = r->short_product_ids;
        c.n_short_product_ids = r->n_short_product_ids;
    }
    return order_saga_copy(out, &c.base, err);
}

static lb_status
build_reserve(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    place_start *p = (place_start *)in->start;
    size_t n = p->draft != NULL ? p->draft->n_items : 0;
    Layby__V1__StockLine *lines = calloc(n + 1, sizeof *lines);
    Layby__V1__StockLine **ptrs = calloc(n + 1, sizeof *ptrs);
    lb_status st = LB_OK;
    if (lines == NULL || ptrs == NULL) {
        st = lb_err_set(err, LB_ERR_NOMEM, "reserve lines");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        layby__v1__stock_line__init(&lines[i]);
        lines[i].product_id = p->draft->items[i]->product_id;
        lines[i].quantity = p->draft->items[i]->quantity;
        ptrs[i] = &lines[i];
    }
    Layby__V1__ReserveStock c = LAYBY__V1__RESERVE_STOCK__INIT;
    c.saga_id = (char *)in->s->id;
    c.step = in->cmd->step;
    c.attempt = in->cmd->attempt;
    c.order_id = p->order_id;
    c.lines = ptrs;
    c.n_lines = n;
    st = order_saga_copy(out, &c.base, err);
out:
    free(lines);
    free(ptrs);
    return st;
}

/* ReleaseStock, ConfirmStock and RestockReturned: saga_id, step, attempt, order_id. */
static lb_status
build_stock_op(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    place_start *p = (place_start *)in->start;
    ProtobufCMessage *m = malloc(in->cmd->desc->sizeof_message);
    if (m == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "stock command");
    protobuf_c_message_init(in->cmd->desc, m);
    /* The three share their first four fields' numbers, names and types. */
    Layby__V1__ReleaseStock *r = (Layby__V1__ReleaseStock *)m;
    _Static_assert(offsetof(Layby__V1__ReleaseStock, order_id) ==
                           offsetof(Layby__V1__ConfirmStock, order_id) &&
                       offsetof(Layby__V1__ReleaseStock, order_id) ==
                           offsetof(Layby__V1__RestockReturned, order_id),
                   "stock commands differ in layout");
    r->step = in->cmd->step;
    r->attempt = in->cmd->attempt;
    r->saga_id = strdup(in->s->id);
    r->order_id = strdup(p->order_id);
    if (r->saga_id == NULL || r->order_id == NULL) {
        protobuf_c_message_free_unpacked(m, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "stock command");
    }
    *out = m;
    return LB_OK;
}

static lb_status
build_wishlist(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    place_start *p = (place_start *)in->start;
    bool from = p->draft != NULL && p->draft->from_wishlist;
    size_t n = from ? p->draft->n_items : 0;
    char **ids = calloc(n + 1, sizeof *ids);
    if (ids == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "wishlist ids");
    for (size_t i = 0; i < n; i++)
        ids[i] = p->draft->items[i]->product_id;
    Layby__V1__OrderWishlist c = LAYBY__V1__ORDER_WISHLIST__INIT;
    c.saga_id = (char *)in->s->id;
    c.step = in->cmd->step;
    c.attempt = in->cmd->attempt;
    c.member_id = p->member_id;
    c.order_id = p->order_id;
    c.product_ids = ids;
    c.n_product_ids = n;
    lb_status st = order_saga_copy(out, &c.base, err);
    free(ids);
    return st;
}

/* SetOrderStatus of an order step (place_order_status); PAYMENT_PENDING also
 * carries the reserved lines and the deadline. */
static lb_status
build_order_status(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    place_start *p = (place_start *)in->start;
    place_record *r = (place_record *)in->record;
    uint32_t i = in->cmd->step;
    char *expect[] = { (char *)place_order_expect[i] };
    Layby__V1__SetOrderStatus c = LAYBY__V1__SET_ORDER_STATUS__INIT;
    c.saga_id = (char *)in->s->id;
    c.step = i;
    c.attempt = in->cmd->attempt;
    c.order_id = p->order_id;
    c.status = (char *)place_order_status[i];
    c.expect = expect;
    c.n_expect = 1;
    if (i == P(PENDING)) {
        if (r != NULL) {
            c.lines = r->lines;
            c.n_lines = r->n_lines;
        }
        /* updated_ms is when this command was decided; the wait starts right
         * after this step, so the real deadline is a little later, never earlier. */
        c.payment_deadline_ms = in->s->updated_ms + in->s->durations_ms[P(WAIT_PAID)];
        /* v4's step answers the buyer (.answers): with the order itself, so
         * the edge's place need not read it back. Without a Layby-Reply (the
         * saga has replied, or an older version) the flag changes nothing. */
        c.answer_order = true;
    }
    return order_saga_copy(out, &c.base, err);
}

/* Refund of whatever is left of the order's capture (the undo of the wait for
 * payment, and the return's refund): keyed by (saga, step) in the ledger. */
static lb_status
build_refund(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    const place_start *p = (const place_start *)in->start;
    return order_refund_build(out, in, p->order_id,
                              in->cmd->step == P(REFUND) ? "returned" : "order cancelled", err);
}

static lb_status
build_delivery(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    place_start *p = (place_start *)in->start;
    Layby__V1__AdvanceDelivery c = LAYBY__V1__ADVANCE_DELIVERY__INIT;
    c.saga_id = (char *)in->s->id;
    c.step = in->cmd->step;
    c.attempt = in->cmd->attempt;
    c.order_id = p->order_id;
    c.status = (char *)place_delivery_status[in->cmd->step];
    return order_saga_copy(out, &c.base, err);
}

static lb_status
build_delivery_cancel(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    place_start *p = (place_start *)in->start;
    Layby__V1__CancelDelivery c = LAYBY__V1__CANCEL_DELIVERY__INIT;
    c.saga_id = (char *)in->s->id;
    c.step = in->cmd->step;
    c.attempt = in->cmd->attempt;
    c.order_id = p->order_id;
    return order_saga_copy(out, &c.base, err);
}

/* An order not from the wishlist has nothing to take off it (saga_step.skip). */
static bool
skip_wishlist(const ProtobufCMessage *start)
{
    const place_start *p = (const place_start *)start;
    return p->draft == NULL || !p->draft->from_wishlist;
}

/* --- record ---------------------------------------------------------------------- */

/* StockReserved -> the lines with name and price, and the total;
 * StockRejected -> the short products (the order becomes REJECTED). */
static lb_status
merge_reserve(ProtobufCMessage *record, const ProtobufCMessage *event, lb_err *err)
{
    Layby__V1__OrderSagaRecord *r = (Layby__V1__OrderSagaRecord *)record;
    if (event->descriptor == &layby__v1__stock_rejected__descriptor) {
        const Layby__V1__StockRejected *e = (const Layby__V1__StockRejected *)event;
        char **ids = calloc(e->n_short_product_ids + 1, sizeof *ids);
        if (ids == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "record");
        for (size_t i = 0; i < e->n_short_product_ids; i++)
            if ((ids[i] = strdup(e->short_product_ids[i])) == NULL) {
                for (size_t k = 0; k < i; k++)
                    free(ids[k]);
                free(ids);
                return lb_err_set(err, LB_ERR_NOMEM, "record");
            }
        for (size_t i = 0; i < r->n_short_product_ids; i++)
            free(r->short_product_ids[i]);
        free(r->short_product_ids);
        r->short_product_ids = ids;
        r->n_short_product_ids = e->n_short_product_ids;
        return LB_OK;
    }
    const Layby__V1__StockReserved *e = (const Layby__V1__StockReserved *)event;
    Layby__V1__OrderLine **lines = calloc(e->n_lines + 1, sizeof *lines);
    if (lines == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "record");
    size_t n = 0;
    bool oom = false;
    int64_t total = 0;
    for (size_t i = 0; i < e->n_lines && !oom; i++) {
        Layby__V1__OrderLine *l = malloc(sizeof *l);
        if (l == NULL) {
            oom = true;
            break;
        }
        layby__v1__order_line__init(l);
        lines[n++] = l;
        l->product_id = strdup(e->lines[i]->product_id);
        l->name = strdup(e->lines[i]->name);
        oom = l->product_id == NULL || l->name == NULL;
        l->quantity = e->lines[i]->quantity;
        l->unit_price = e->lines[i]->unit_price;
        l->subtotal = l->quantity * l->unit_price;
        total += l->subtotal;
    }
    if (oom) {
        for (size_t i = 0; i < n; i++)
            protobuf_c_message_free_unpacked(&lines[i]->base, NULL);
        free(lines);
        return lb_err_set(err, LB_ERR_NOMEM, "record");
    }
    for (size_t i = 0; i < r->n_lines; i++)
        protobuf_c_message_free_unpacked(&r->lines[i]->base, NULL);
    free(r->lines);
    r->lines = lines;
    r->n_lines = n;
    r->total = total;
    return LB_OK;
}

/* --- the table ---------------------------------------------------------------------- */

/* clang-format off */
#define ORDER_STATUS_STEP(step_name)                                                      \
    .name = step_name, .command = &layby__v1__set_order_status__descriptor,               \
    .subject = SUBJ_ORDER_SET_STATUS, .build = build_order_status,                        \
    .on_ok = &layby__v1__order_status_set__descriptor,                                    \
    .on_ok_subject = SUBJ_ORDER_STATUS_SET,                                               \
    .on_fail = &layby__v1__order_refused__descriptor, .on_fail_subject = SUBJ_ORDER_REFUSED, \
    .timeout_ms = 5000, .duration = order_step_timeout_ms, .retry = &order_retry

#define DELIVERY_STEP(step_name)                                                          \
    .name = step_name, .command = &layby__v1__advance_delivery__descriptor,               \
    .subject = SUBJ_DELIVERY_ADVANCE, .build = build_delivery,                            \
    .on_ok = &layby__v1__delivery_advanced__descriptor,                                   \
    .on_ok_subject = SUBJ_DELIVERY_ADVANCED,                                              \
    .on_fail = &layby__v1__delivery_refused__descriptor,                                  \
    .on_fail_subject = SUBJ_DELIVERY_REFUSED,                                             \
    .timeout_ms = 5000, .duration = order_step_timeout_ms, .retry = &order_retry

#define STOCK_STEP(step_name, cmd, subj, ok, ok_subj)                                     \
    .name = step_name, .command = (cmd), .subject = (subj), .build = build_stock_op,      \
    .on_ok = (ok), .on_ok_subject = (ok_subj),                                            \
    .on_fail = &layby__v1__stock_op_failed__descriptor,                                   \
    .timeout_ms = 5000, .duration = order_step_timeout_ms, .retry = &order_retry

#define DELAY_STEP(step_name, fn)                                                         \
    .name = step_name, .kind = SAGA_STEP_DELAY, .timeout_ms = 86400000, .duration = (fn)

/* A refund of what is left of the order's capture (a void when nothing was
 * captured, which also refuses every later charge of the order). */
#define REFUND_UNDO                                                                             \
    .compensate = &layby__v1__refund__descriptor, .compensate_subject = SUBJ_PAYMENT_REFUND,    \
    .build_compensate = build_refund,                                                           \
    .on_compensated = &layby__v1__payment_refunded__descriptor,                                 \
    .on_compensated_subject = SUBJ_PAYMENT_REFUNDED,                                            \
    .on_compensate_fail = &layby__v1__refund_failed__descriptor,                                \
    .on_compensate_fail_subject = SUBJ_PAYMENT_REFUND_FAILED,                                   \
    .compensate_retry = &order_undo_retry, .compensate_timeout_ms = 5000

#define WAIT_PAID_STEP                                                                          \
    .name = "wait_payment", .kind = SAGA_STEP_WAIT,                                             \
    .on_ok = &layby__v1__order_paid__descriptor, .on_ok_subject = SUBJ_ORDER_PAID,              \
    .timeout_ms = 30 * 60 * 1000, .duration = order_payment_deadline_ms

#define WISHLIST_STEP                                                                           \
    .name = "wishlist", .command = &layby__v1__order_wishlist__descriptor,                      \
    .subject = SUBJ_CATALOG_WISHLIST_ORDERED, .build = build_wishlist,                          \
    .on_ok = &layby__v1__wishlist_ordered__descriptor, .on_ok_subject = SUBJ_WISHLIST_ORDERED,  \
    .timeout_ms = 5000, .duration = order_step_timeout_ms, .retry = &order_retry

/* Every step but wishlist, payment_pending and wait_payment, which the versions differ in;
 * fwd: whether the command steps after the payment are forward steps (v4);
 * ahd: whether reserve_stock is sent ahead, with create (v5). */
#define PLACE_STEPS_SHARED(fwd, ahd)                                                                 \
    [P(CREATE)] = {                                                                             \
        .name = "create", .command = &layby__v1__create_order__descriptor,                      \
        .subject = SUBJ_ORDER_CREATE, .build = build_create,                                    \
        .on_ok = &layby__v1__order_created__descriptor, .on_ok_subject = SUBJ_ORDER_CREATED,    \
        .on_fail = &layby__v1__order_refused__descriptor, .on_fail_subject = SUBJ_ORDER_REFUSED, \
        .timeout_ms = 5000, .duration = order_step_timeout_ms, .retry = &order_retry,           \
        .compensate = &layby__v1__set_order_status__descriptor,                                 \
        .compensate_subject = SUBJ_ORDER_SET_STATUS, .build_compensate = build_create_undo,     \
        .on_compensated = &layby__v1__order_status_set__descriptor,                             \
        .on_compensated_subject = SUBJ_ORDER_STATUS_SET,                                        \
        .compensate_retry = &order_undo_retry,                                                  \
    },                                                                                          \
    [P(RESERVE)] = {                                                                            \
        .name = "reserve_stock", .command = &layby__v1__reserve_stock__descriptor,              \
        .subject = SUBJ_CATALOG_RESERVE_STOCK, .build = build_reserve,                          \
        .on_ok = &layby__v1__stock_reserved__descriptor, .on_ok_subject = SUBJ_STOCK_RESERVED,  \
        .on_fail = &layby__v1__stock_rejected__descriptor, .on_fail_subject = SUBJ_STOCK_REJECTED, \
        .merge = merge_reserve, .ahead = (ahd),                                                 \
        .timeout_ms = 5000, .duration = order_step_timeout_ms, .retry = &order_retry,           \
        .compensate = &layby__v1__release_stock__descriptor,                                    \
        .compensate_subject = SUBJ_CATALOG_RELEASE_STOCK, .build_compensate = build_stock_op,   \
        .on_compensated = &layby__v1__stock_released__descriptor,                               \
        .on_compensated_subject = SUBJ_STOCK_RELEASED,                                          \
        .on_compensate_fail = &layby__v1__stock_op_failed__descriptor,                          \
        .on_compensate_fail_subject = SUBJ_STOCK_RELEASE_FAILED,                                \
        .compensate_retry = &order_undo_retry,                                                  \
    },                                                                                          \
    [P(CONFIRM)] = {                                                                            \
        STOCK_STEP("confirm_stock", &layby__v1__confirm_stock__descriptor,                      \
                   SUBJ_CATALOG_CONFIRM_STOCK, &layby__v1__stock_confirmed__descriptor,         \
                   SUBJ_STOCK_CONFIRMED),                                                       \
        .on_fail_subject = SUBJ_STOCK_CONFIRM_FAILED, .forward = (fwd),                         \
    },                                                                                          \
    [P(PREPARE)] = {                                                                            \
        DELIVERY_STEP("delivery_preparing"), .forward = (fwd),                                  \
        .compensate = &layby__v1__cancel_delivery__descriptor,                                  \
        .compensate_subject = SUBJ_DELIVERY_CANCEL, .build_compensate = build_delivery_cancel,  \
        .on_compensated = &layby__v1__delivery_cancelled__descriptor,                           \
        .on_compensated_subject = SUBJ_DELIVERY_CANCELLED,                                      \
        .on_compensate_fail = &layby__v1__delivery_cancel_failed__descriptor,                   \
        .on_compensate_fail_subject = SUBJ_DELIVERY_CANCEL_FAILED,                              \
        .compensate_retry = &order_undo_retry,                                                  \
    },                                                                                          \
    [P(SHIP_DELAY)] = { DELAY_STEP("ship_delay", order_ship_delay_ms) },                        \
    [P(SHIP)] = { DELIVERY_STEP("delivery_shipping"), .pivot = true, .forward = (fwd) },        \
    [P(DELIVER_DELAY)] = { DELAY_STEP("deliver_delay", order_deliver_delay_ms) },               \
    [P(DELIVER)] = { DELIVERY_STEP("delivery_delivered"), .forward = (fwd) },                   \
    [P(WINDOW)] = { DELAY_STEP("return_window", order_return_window_ms), .ends = true },        \
    [P(RETURN_REQUEST)] = { ORDER_STATUS_STEP("return_requested"), .forward = (fwd) },          \
    [P(PICKUP)] = { DELIVERY_STEP("delivery_return_pickup"), .forward = (fwd) },                \
    [P(RETURN_DELAY)] = { DELAY_STEP("return_delay", order_return_delay_ms) },                  \
    [P(REFUND)] = {                                                                             \
        .name = "refund", .command = &layby__v1__refund__descriptor,                            \
        .subject = SUBJ_PAYMENT_REFUND, .build = build_refund,                                  \
        .on_ok = &layby__v1__payment_refunded__descriptor, .on_ok_subject = SUBJ_PAYMENT_REFUNDED, \
        .on_fail = &layby__v1__refund_failed__descriptor,                                       \
        .on_fail_subject = SUBJ_PAYMENT_REFUND_FAILED,                                          \
        .timeout_ms = 5000, .duration = order_step_timeout_ms, .retry = &order_retry,           \
        .forward = (fwd),                                                                       \
    },                                                                                          \
    [P(RESTOCK)] = {                                                                            \
        STOCK_STEP("restock_returned", &layby__v1__restock_returned__descriptor,                \
                   SUBJ_CATALOG_RESTOCK_RETURNED, &layby__v1__stock_returned__descriptor,       \
                   SUBJ_STOCK_RETURNED),                                                        \
        .on_fail_subject = SUBJ_STOCK_RETURN_FAILED, .forward = (fwd),                          \
    },                                                                                          \
    [P(DELIVERY_RETURNED)] = { DELIVERY_STEP("delivery_returned"), .forward = (fwd) },          \
    [P(RETURNED)] = { ORDER_STATUS_STEP("returned"), .forward = (fwd) }

/* v1: the refund undoes the wait for payment. A cancel while the saga was
 * still at payment_pending never reached it, so a payment racing that cancel
 * (the pay saga set PAID before the undo set CANCELLED; the OrderPaid came
 * while compensating and was ignored) kept its money. Kept for the sagas
 * started on it (docs/SAGAS.md §7). */
static const saga_step place_steps_v1[ORDER_PLACE__STEPS] = {
    PLACE_STEPS_SHARED(false, false),
    [P(WISHLIST)] = { WISHLIST_STEP },
    [P(PENDING)] = { ORDER_STATUS_STEP("payment_pending"), .reply = true },
    [P(WAIT_PAID)] = { WAIT_PAID_STEP, REFUND_UNDO },
};

/* v2: the refund undoes payment_pending, the step that made the order
 * payable. Any undo that passes it, whether the saga was waiting, still
 * setting PAYMENT_PENDING (uncertain: it may be set, and paid, already) or
 * past the wait, refunds what was captured, or voids the order so that a
 * later charge is refused. */
static const saga_step place_steps_v2[ORDER_PLACE__STEPS] = {
    PLACE_STEPS_SHARED(false, false),
    [P(WISHLIST)] = { WISHLIST_STEP },
    [P(PENDING)] = { ORDER_STATUS_STEP("payment_pending"), .reply = true, REFUND_UNDO },
    [P(WAIT_PAID)] = { WAIT_PAID_STEP },
};

/* v3: v2, but an order not from the wishlist skips the wishlist step (fixed
 * when the saga starts, from its PlaceOrder): v2 sent every order's saga
 * through it, a command, a catalog transaction and an event that changed
 * nothing, a tenth of a checkout's cost (docs/BENCHMARKS.md, perf20). */
static const saga_step place_steps_v3[ORDER_PLACE__STEPS] = {
    PLACE_STEPS_SHARED(false, false),
    [P(WISHLIST)] = { WISHLIST_STEP, .skip = skip_wishlist },
    [P(PENDING)] = { ORDER_STATUS_STEP("payment_pending"), .reply = true, REFUND_UNDO },
    [P(WAIT_PAID)] = { WAIT_PAID_STEP },
};

/* v4: v3 with forward recovery (docs/SAGAS.md §5.1, R11). Every command step
 * after the payment (confirm the sale, the delivery's steps, the return
 * branch) retries until it is done instead of failing after its attempts:
 * a paid order is delivered, not refunded, when a participant is slow or
 * away. v3 gave up on delivery_shipping after 5 attempts while the attempts
 * were still queued at the stopped delivery service; the undo (cancel the
 * delivery) came after them, found it shipped and the saga went STUCK. A
 * final refusal still fails the step, and `cancel` still applies up to the
 * delay before shipping.
 * payment_pending answers the buyer (saga.h .answers, added to v4 in place:
 * it changes who answers, not what is decided): the order service's
 * OrderStatusSet reaches the waiting edge one orchestrator hop before this
 * saga's reply. */
/* v4's table, and v5's with ahd (reserve_stock sent ahead) */
#define PLACE_STEPS_V4(ahd)                                                                \
    PLACE_STEPS_SHARED(true, ahd), [P(WISHLIST)] = { WISHLIST_STEP, .skip = skip_wishlist }, \
    [P(PENDING)] = { ORDER_STATUS_STEP("payment_pending"), .reply = true, .answers = true,   \
                     REFUND_UNDO },                                                          \
    [P(WAIT_PAID)] = { WAIT_PAID_STEP }
static const saga_step place_steps_v4[ORDER_PLACE__STEPS] = { PLACE_STEPS_V4(false) };

/* v5: v4 with reserve_stock sent ahead (saga.h R12): the stock is reserved
 * while the order is created, so a place waits for two participants at once
 * and its answer comes two hops sooner (create and reserve one after the
 * other were 4 of the place's 6 hops). Nothing else changes: the order is
 * PENDING while its stock is reserved; a refusal that comes while the order
 * is being created counts once it is created (REJECTED with its PENDING
 * history); and an undo that starts before the saga reaches reserve_stock
 * (the create refused, a cancel) releases the stock too (the catalog's
 * release of a reservation never made is a no-op that refuses the late
 * reserve, docs/SAGAS.md §5 rule 2). */
static const saga_step place_steps_v5[ORDER_PLACE__STEPS] = { PLACE_STEPS_V4(true) };

/* The refusals' texts reach the buyer (the 409's message): DESIGN §6's rules
 * in the shop's words, not the saga's step. */
static const saga_signal place_signals[] = {
    /* name     first      last            action              to                 */
    { "cancel", P(CREATE), P(SHIP_DELAY), SAGA_SIGNAL_CANCEL, 0,
      .code = LB_ERR_NOT_CANCELLABLE, .refused = LB_ERR_NOT_CANCELLABLE,
      .refused_text = ORDER_NOT_CANCELLABLE_TEXT },
    { "return", P(WINDOW), P(WINDOW),     SAGA_SIGNAL_GOTO,   P(RETURN_REQUEST),
      .refused = LB_ERR_NOT_RETURNABLE, .refused_text = ORDER_NOT_RETURNABLE_TEXT },
};
/* clang-format on */

/* One type per version: the same name, start, signals and record; their own steps. */
#define PLACE_TYPE(v)                                                                        \
    {                                                                                        \
        .name = "order_place", .version = (v), .start = &layby__v1__place_order__descriptor, \
        .steps = place_steps_v##v, .n_steps = ORDER_PLACE__STEPS, .signals = place_signals,  \
        .n_signals = LB_COUNTOF(place_signals),                                              \
        .record = &layby__v1__order_saga_record__descriptor,                                 \
    }

const saga_type saga_order_place_v1 = PLACE_TYPE(1);
const saga_type saga_order_place_v2 = PLACE_TYPE(2);
const saga_type saga_order_place_v3 = PLACE_TYPE(3);
const saga_type saga_order_place_v4 = PLACE_TYPE(4);
const saga_type saga_order_place_v5 = PLACE_TYPE(5);
