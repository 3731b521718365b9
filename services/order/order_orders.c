/* order_orders.c - the orders a saga drives: create (PENDING) and set_status.
 *
 * Both are saga step commands: they carry saga_id/step/attempt and answer with
 * an event echoing them. Idempotency: create is keyed by order_id (a repeat
 * answers OrderCreated again); set_status by (order, status), because the
 * history has one row per status: a status already reached answers
 * OrderStatusSet again without touching the order. A move DESIGN §6 does not
 * allow is a final refusal (invalid_state, or not_cancellable for CANCELLED),
 * which the saga turns into its answer. */
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "order.h"

/* --- the state machine (DESIGN §6) --------------------------------------- */

typedef struct order_move {
    const char *from, *to;
} order_move;

/* clang-format off */
static const order_move order_moves[] = {
    { "PENDING",          "PAYMENT_PENDING" },
    { "PENDING",          "REJECTED" },
    { "PENDING",          "CANCELLED" },        /* the place saga failed before reserving */
    { "PAYMENT_PENDING",  "PAID" },
    { "PAYMENT_PENDING",  "CANCELLED" },
    { "PAID",             "CANCELLED" },
    { "PAID",             "RETURN_REQUESTED" },
    { "RETURN_REQUESTED", "RETURNED" },
};
static const char *const order_statuses[] = {
    "PENDING", "PAYMENT_PENDING", "PAID", "REJECTED", "CANCELLED", "RETURN_REQUESTED", "RETURNED",
};
/* clang-format on */

bool
order_transition_ok(const char *from, const char *to)
{
    for (size_t i = 0; i < LB_COUNTOF(order_moves); i++)
        if (strcmp(order_moves[i].from, from) == 0 && strcmp(order_moves[i].to, to) == 0)
            return true;
    return false;
}

bool
order_status_known(const char *s)
{
    for (size_t i = 0; i < LB_COUNTOF(order_statuses); i++)
        if (strcmp(order_statuses[i], s) == 0)
            return true;
    return false;
}

/* --- events -------------------------------------------------------------- */

static lb_status
emit_refused(svc_batch *b, svc_item *it, const char *saga_id, uint32_t step, uint32_t attempt,
             const char *order_id, bool final, lb_status code, const char *field, const char *why,
             lb_err *err)
{
    Layby__V1__OrderRefused ev = LAYBY__V1__ORDER_REFUSED__INIT;
    ev.saga_id = (char *)saga_id;
    ev.step = step;
    ev.attempt = attempt;
    ev.order_id = (char *)order_id;
    ev.final = final;
    ev.code = (char *)lb_status_code(code);
    ev.reason = (char *)why;
    ev.field = (char *)(field ? field : "");
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__order_refused__descriptor, it->env);
    /* The requester (if any) hears the refusal as its outcome too. */
    it->outcome = lb_err_field(&it->why, code, field ? field : "", "%s", why);
    return svc_emit_answer(b, it, SUBJ_ORDER_REFUSED, &env, &ev.base, err);
}

static lb_status
emit_created(svc_batch *b, svc_item *it, const Layby__V1__CreateOrder *c, lb_err *err)
{
    Layby__V1__OrderCreated ev = LAYBY__V1__ORDER_CREATED__INIT;
    ev.saga_id = c->saga_id;
    ev.step = c->step;
    ev.attempt = c->attempt;
    ev.order_id = c->order_id;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__order_created__descriptor, it->env);
    return svc_emit_answer(b, it, SUBJ_ORDER_CREATED, &env, &ev.base, err);
}

/* The saga named by notify_saga_id hears that the status was reached. */
static lb_status
emit_notify(svc_batch *b, svc_item *it, const Layby__V1__SetOrderStatus *c, int64_t total,
            lb_err *err)
{
    if (!id_valid(c->notify_saga_id))
        return LB_OK;
    Layby__V1__OrderPaid ev = LAYBY__V1__ORDER_PAID__INIT;
    ev.saga_id = c->notify_saga_id;
    ev.step = c->notify_step;
    ev.order_id = c->order_id;
    ev.total = total;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__order_paid__descriptor, it->env);
    return svc_emit(b, SUBJ_ORDER_PAID, &env, &ev.base, err);
}

/* Whether the requester of item it waits for the order itself (proto
 * answer_order: the place saga's payable step answering the buyer), and has
 * no answer yet. */
static bool
wants_order(const Layby__V1__SetOrderStatus *c, const svc_item *it)
{
    return c->answer_order && it->env->reply[0] != '\0' && it->reply == NULL;
}

/* The order as GetOrder would show it now, read in this transaction (after
 * the move), becomes the item's answer (svc_emit_answer() keeps it): the
 * edge's place answers with it instead of asking the order back, a query
 * round trip after the commit. */
static lb_status
answer_order(svc_batch *b, svc_item *it, const char *order_id, lb_err *err)
{
    Layby__V1__Order *view = NULL;
    lb_status st = order_view_read(&view, svc_batch_store(b), order_id, "", err);
    if (st == LB_OK)
        it->reply = &view->base;
    return st;
}

static lb_status
emit_status_set(svc_batch *b, svc_item *it, const Layby__V1__SetOrderStatus *c, int64_t total,
                const char *member_id, const char *at, lb_err *err)
{
    lb_status st = emit_notify(b, it, c, total, err);
    if (st != LB_OK)
        return st;
    if (wants_order(c, it) && (st = answer_order(b, it, c->order_id, err)) != LB_OK)
        return st; /* a repeat: the order as it is now */
    Layby__V1__OrderStatusSet ev = LAYBY__V1__ORDER_STATUS_SET__INIT;
    ev.saga_id = c->saga_id;
    ev.step = c->step;
    ev.attempt = c->attempt;
    ev.order_id = c->order_id;
    ev.status = c->status;
    ev.total = total;
    ev.member_id = (char *)member_id;
    ev.at = (char *)at;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__order_status_set__descriptor, it->env);
    return svc_emit_answer(b, it, SUBJ_ORDER_STATUS_SET, &env, &ev.base, err);
}

/* --- create -------------------------------------------------------------- */

/* Checks the items: 1..ORDER_ITEMS_MAX, UUIDs, quantities, no product twice. */
static lb_status
items_validate(const Layby__V1__CreateOrder *c, lb_err *err)
{
    if (c->n_items == 0 || c->n_items > ORDER_ITEMS_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "items", "an order has 1 to %d items",
                            ORDER_ITEMS_MAX);
    for (size_t i = 0; i < c->n_items; i++) {
        const Layby__V1__OrderItem *it = c->items[i];
        char field[64];
        snprintf(field, sizeof field, "items[%zu].productId", i);
        if (!id_valid(it->product_id))
            return lb_err_field(err, LB_ERR_INVALID, field, "productId must be a UUID");
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->items[j]->product_id, it->product_id) == 0)
                return lb_err_field(err, LB_ERR_INVALID, field, "a product may appear once");
        if (it->quantity < 1 || it->quantity > ORDER_QUANTITY_MAX) {
            snprintf(field, sizeof field, "items[%zu].quantity", i);
            return lb_err_field(err, LB_ERR_INVALID, field, "quantity must be between 1 and %d",
                                ORDER_QUANTITY_MAX);
        }
    }
    return LB_OK;
}

/* The order if it exists, and the address with its owner (CREATE_LOOK). */
static lb_status
create_look(svc_batch *b, const Layby__V1__CreateOrder *c, PGresult **res, lb_err *err)
{
    const char *p[] = { c->order_id, c->address_id };
    return svc_batch_read_first(b, res, ORDER_SQL(ORDER_SQL_CREATE_LOOK), 2, p, err);
}

lb_status
order_create_prefetch(svc_batch *b, const svc_item *items, size_t n, lb_err *err)
{
    (void)n; /* one: svc_handler.prefetch */
    const Layby__V1__CreateOrder *c = (const Layby__V1__CreateOrder *)items[0].msg;
    if (!id_valid(c->order_id) || !id_valid(c->address_id))
        return LB_OK; /* the handler refuses it without reading */
    return create_look(b, c, NULL, err);
}

static lb_status
create_one(svc_batch *b, svc_item *it, lb_err *err)
{
    const Layby__V1__CreateOrder *c = (const Layby__V1__CreateOrder *)it->msg;
    store *s = svc_batch_store(b);
    lb_err why;
    lb_err_clear(&why);
    if (!id_valid(c->order_id) || !id_valid(c->member_id))
        return emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true,
                            LB_ERR_INVALID, "orderId", "orderId and memberId must be UUIDs", err);
    if (!id_valid(c->address_id))
        return emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true,
                            LB_ERR_NOT_FOUND, "addressId", "no such address", err);
    if (items_validate(c, &why) != LB_OK)
        return emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true, why.code,
                            why.field, why.msg, err);
    PGresult *res = NULL;
    Layby__V1__AddressDraft *d = NULL;
    store_array pids = { 0 }, qtys = { 0 };
    lb_status st = create_look(b, c, &res, err);
    if (st != LB_OK)
        goto out;
    if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) { /* a repeat */
        st = emit_created(b, it, c, err);
        goto out;
    }
    if (PQgetisnull(res, 0, 1) || strcmp(PQgetvalue(res, 0, 1), c->member_id) != 0) {
        st = emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true,
                          LB_ERR_NOT_FOUND, "addressId", "no such address", err);
        goto out;
    }
    /* The ship-to address is copied, sealed for the order's own row: later
     * edits of the book do not change where this order goes. */
    char ad[64], ship_ad[64], sealed[ORDER_SEALED_MAX * 2 + 3], when[32];
    order_ad_address(ad, sizeof ad, c->address_id);
    order_ad_ship_to(ship_ad, sizeof ship_ad, c->order_id);
    if ((st = order_address_open(&d, PQgetvalue(res, 0, 2), ad, err)) != LB_OK ||
        (st = order_address_seal(sealed, sizeof sealed, d, ship_ad, err)) != LB_OK)
        goto out;
    lb_time_format(when, sizeof when, it->now_ms);
    store_array_begin(&pids);
    store_array_begin(&qtys);
    for (size_t i = 0; i < c->n_items; i++) {
        store_array_text(&pids, c->items[i]->product_id);
        store_array_int(&qtys, c->items[i]->quantity);
    }
    store_array_end(&pids);
    store_array_end(&qtys);
    if (pids.oom || qtys.oom) {
        st = lb_err_set(err, LB_ERR_NOMEM, "order lines");
        goto out;
    }
    const char *ip[] = {
        c->order_id, c->member_id, c->address_id, sealed, c->from_wishlist ? "true" : "false",
        when,        pids.p,       qtys.p
    };
    if ((st = store_exec(s, NULL, ORDER_SQL(ORDER_SQL_ORDER_INSERT), 8, ip, err)) != LB_OK)
        goto out;
    st = emit_created(b, it, c, err);
out:
    if (d != NULL)
        protobuf_c_message_free_unpacked(&d->base, NULL);
    store_array_free(&pids);
    store_array_free(&qtys);
    PQclear(res);
    return st;
}

lb_status
order_create(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        lb_status st = create_one(b, &items[i], err);
        if (st != LB_OK)
            return st;
    }
    return LB_OK;
}

/* --- set_status ---------------------------------------------------------- */

static bool
expected(const Layby__V1__SetOrderStatus *c, const char *now)
{
    if (c->n_expect == 0)
        return true;
    for (size_t i = 0; i < c->n_expect; i++)
        if (strcmp(c->expect[i], now) == 0)
            return true;
    return false;
}

/* Stores the reserved names and prices and the total. */
static lb_status
lines_price(store *s, const Layby__V1__SetOrderStatus *c, lb_err *err)
{
    store_array pids = { 0 }, names = { 0 }, prices = { 0 };
    store_array_begin(&pids);
    store_array_begin(&names);
    store_array_begin(&prices);
    for (size_t i = 0; i < c->n_lines; i++) {
        store_array_text(&pids, c->lines[i]->product_id);
        store_array_text(&names, c->lines[i]->name);
        store_array_int(&prices, c->lines[i]->unit_price);
    }
    store_array_end(&pids);
    store_array_end(&names);
    store_array_end(&prices);
    lb_status st;
    if (pids.oom || names.oom || prices.oom) {
        st = lb_err_set(err, LB_ERR_NOMEM, "order lines");
    } else {
        const char *p[] = { c->order_id, pids.p, names.p, prices.p };
        st = store_exec(s, NULL, ORDER_SQL(ORDER_SQL_LINE_PRICE), 4, p, err);
    }
    store_array_free(&pids);
    store_array_free(&names);
    store_array_free(&prices);
    return st;
}

/* The order locked and its history entry of the status asked for (ORDER_LOCK). */
static lb_status
order_lock(svc_batch *b, const Layby__V1__SetOrderStatus *c, PGresult **res, lb_err *err)
{
    const char *p[] = { c->order_id, c->status };
    return svc_batch_read_first(b, res, ORDER_SQL(ORDER_SQL_ORDER_LOCK), 2, p, err);
}

lb_status
order_status_prefetch(svc_batch *b, const svc_item *items, size_t n, lb_err *err)
{
    (void)n; /* one: svc_handler.prefetch */
    const Layby__V1__SetOrderStatus *c = (const Layby__V1__SetOrderStatus *)items[0].msg;
    if (!id_valid(c->order_id) || !order_status_known(c->status))
        return LB_OK; /* the handler refuses it without reading */
    return order_lock(b, c, NULL, err);
}

static lb_status
set_one(svc_batch *b, svc_item *it, lb_err *err)
{
    const Layby__V1__SetOrderStatus *c = (const Layby__V1__SetOrderStatus *)it->msg;
    store *s = svc_batch_store(b);
    if (!id_valid(c->order_id))
        return emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true,
                            LB_ERR_NOT_FOUND, "orderId", "no such order", err);
    if (!order_status_known(c->status))
        return emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true,
                            LB_ERR_INVALID, "status", "unknown order status", err);
    PGresult *res = NULL;
    store_array shorts = { 0 };
    /* The order locked and, in the same round trip, its entry for the status
     * when it reached it before. An entry committed after this statement's
     * snapshot (another instance set the status while this one waited for the
     * lock) is not seen here: the status then is c->status already, which no
     * move allows, and the history is asked again below with a new snapshot. */
    lb_status st = order_lock(b, c, &res, err);
    if (st != LB_OK)
        goto out;
    if (PQntuples(res) == 0) {
        st = emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true,
                          LB_ERR_NOT_FOUND, "orderId", "no such order", err);
        goto out;
    }
    if (!PQgetisnull(res, 0, 3)) { /* reached before: the first outcome again */
        st = emit_status_set(b, it, c, atoll(PQgetvalue(res, 0, 2)), PQgetvalue(res, 0, 1),
                             PQgetvalue(res, 0, 3), err);
        goto out;
    }
    char now_status[32], member[ID_STR_LEN];
    snprintf(now_status, sizeof now_status, "%s", PQgetvalue(res, 0, 0));
    snprintf(member, sizeof member, "%s", PQgetvalue(res, 0, 1));
    int64_t total = atoll(PQgetvalue(res, 0, 2));
    PQclear(res);
    res = NULL;
    bool allowed = expected(c, now_status) && order_transition_ok(now_status, c->status);
    if (!allowed) {
        const char *hp[] = { c->order_id, c->status };
        if ((st = store_exec(s, &res, ORDER_SQL(ORDER_SQL_HISTORY_HAS), 2, hp, err)) != LB_OK)
            goto out;
        if (PQntuples(res) == 1) { /* reached meanwhile: the first outcome again */
            st = emit_status_set(b, it, c, atoll(PQgetvalue(res, 0, 0)), PQgetvalue(res, 0, 1),
                                 PQgetvalue(res, 0, 2), err);
            goto out;
        }
        PQclear(res);
        res = NULL;
    }
    if (!allowed) {
        bool cancel = strcmp(c->status, "CANCELLED") == 0;
        bool ret = strcmp(c->status, "RETURN_REQUESTED") == 0;
        lb_status code = cancel ? LB_ERR_NOT_CANCELLABLE
                         : ret  ? LB_ERR_NOT_RETURNABLE
                                : LB_ERR_STATE;
        char why[160];
        snprintf(why, sizeof why, "the order is %s: it cannot become %s", now_status, c->status);
        st = emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true, code, NULL,
                          why, err);
        goto out;
    }
    char when[32], deadline[32];
    lb_time_format(when, sizeof when, it->now_ms);
    if (c->payment_deadline_ms > 0)
        lb_time_format(deadline, sizeof deadline, c->payment_deadline_ms);
    if (c->n_lines > 0 && (st = lines_price(s, c, err)) != LB_OK)
        goto out;
    store_array_begin(&shorts);
    for (size_t i = 0; i < c->n_short_product_ids; i++)
        if (id_valid(c->short_product_ids[i]))
            store_array_text(&shorts, c->short_product_ids[i]);
    store_array_end(&shorts);
    if (shorts.oom) {
        st = lb_err_set(err, LB_ERR_NOMEM, "short products");
        goto out;
    }
    const char *sp[] = {
        c->order_id, c->status, when, c->reason, c->payment_deadline_ms > 0 ? deadline : NULL,
        shorts.p
    };
    if (wants_order(c, it)) {
        /* The move is sent without waiting and the order read behind it: one
         * round trip for both, and the read gives the total and the member. */
        if ((st = store_exec(s, NULL, ORDER_SQL(ORDER_SQL_ORDER_SET), 6, sp, err)) != LB_OK ||
            (st = answer_order(b, it, c->order_id, err)) != LB_OK)
            goto out;
        st = emit_status_set(b, it, c, ((const Layby__V1__Order *)it->reply)->total, member, when,
                             err);
        goto out;
    }
    /* Without lines the total and the member are the locked row's (only
     * lines_price changes the total): the move is not waited for, and its
     * failure fails the commit. With lines, the total it wrote is read back. */
    if ((st = store_exec(s, c->n_lines > 0 ? &res : NULL, ORDER_SQL(ORDER_SQL_ORDER_SET), 6, sp,
                         err)) != LB_OK)
        goto out;
    if (res != NULL)
        total = atoll(PQgetvalue(res, 0, 0));
    st = emit_status_set(b, it, c, total, member, when, err);
out:
    store_array_free(&shorts);
    PQclear(res);
    return st;
}

lb_status
order_status_set(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        lb_status st = set_one(b, &items[i], err);
        if (st != LB_OK)
            return st;
    }
    return LB_OK;
}
