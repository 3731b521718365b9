/* delivery_handlers.c - deliveries advanced by the order sagas.
 *
 * advance(order, status) is idempotent per (order, status): the history has
 * one row per status reached, and a status reached before answers
 * DeliveryAdvanced again. A move DESIGN §6 does not allow is a final refusal.
 * cancel is the compensation of PREPARING: allowed while PREPARING; with no
 * delivery yet it records the order as voided (so a late PREPARING that the
 * cancel overtook is refused) and answers cancelled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"

/* clang-format off */
static const struct {
    const char *from, *to;
} delivery_moves[] = {
    { "",              "PREPARING" },
    { "PREPARING",     "SHIPPING" },
    { "PREPARING",     "CANCELLED" },
    { "SHIPPING",      "DELIVERED" },
    { "DELIVERED",     "RETURN_PICKUP" },
    { "RETURN_PICKUP", "RETURNED" },
};
/* clang-format on */

bool
delivery_transition_ok(const char *from, const char *to)
{
    for (size_t i = 0; i < LB_COUNTOF(delivery_moves); i++)
        if (strcmp(delivery_moves[i].from, from) == 0 && strcmp(delivery_moves[i].to, to) == 0)
            return true;
    return false;
}

/* --- events -------------------------------------------------------------- */

static lb_status
emit_advanced(svc_batch *b, svc_item *it, const Layby__V1__AdvanceDelivery *c,
              const char *delivery_id, lb_err *err)
{
    Layby__V1__DeliveryAdvanced ev = LAYBY__V1__DELIVERY_ADVANCED__INIT;
    ev.saga_id = c->saga_id;
    ev.step = c->step;
    ev.attempt = c->attempt;
    ev.order_id = c->order_id;
    ev.delivery_id = (char *)delivery_id;
    ev.status = c->status;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__delivery_advanced__descriptor, it->env);
    return svc_emit_answer(b, it, SUBJ_DELIVERY_ADVANCED, &env, &ev.base, err);
}

static lb_status
emit_refused(svc_batch *b, svc_item *it, const Layby__V1__AdvanceDelivery *c, lb_status code,
             const char *why, lb_err *err)
{
    Layby__V1__DeliveryRefused ev = LAYBY__V1__DELIVERY_REFUSED__INIT;
    ev.saga_id = c->saga_id;
    ev.step = c->step;
    ev.attempt = c->attempt;
    ev.order_id = c->order_id;
    ev.final = true;
    ev.code = (char *)lb_status_code(code);
    ev.reason = (char *)why;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__delivery_refused__descriptor, it->env);
    it->outcome = lb_err_set(&it->why, code, "%s", why);
    return svc_emit_answer(b, it, SUBJ_DELIVERY_REFUSED, &env, &ev.base, err);
}

static lb_status
emit_cancelled(svc_batch *b, svc_item *it, const Layby__V1__CancelDelivery *c, lb_err *err)
{
    Layby__V1__DeliveryCancelled ev = LAYBY__V1__DELIVERY_CANCELLED__INIT;
    ev.saga_id = c->saga_id;
    ev.step = c->step;
    ev.attempt = c->attempt;
    ev.order_id = c->order_id;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__delivery_cancelled__descriptor, it->env);
    return svc_emit_answer(b, it, SUBJ_DELIVERY_CANCELLED, &env, &ev.base, err);
}

static lb_status
emit_cancel_failed(svc_batch *b, svc_item *it, const Layby__V1__CancelDelivery *c, lb_status code,
                   const char *why, lb_err *err)
{
    Layby__V1__DeliveryCancelFailed ev = LAYBY__V1__DELIVERY_CANCEL_FAILED__INIT;
    ev.saga_id = c->saga_id;
    ev.step = c->step;
    ev.attempt = c->attempt;
    ev.order_id = c->order_id;
    ev.final = true;
    ev.code = (char *)lb_status_code(code);
    ev.reason = (char *)why;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__delivery_cancel_failed__descriptor, it->env);
    it->outcome = lb_err_set(&it->why, code, "%s", why);
    return svc_emit_answer(b, it, SUBJ_DELIVERY_CANCEL_FAILED, &env, &ev.base, err);
}

/* --- handlers ------------------------------------------------------------ */

/* The order's delivery, locked: *found, its id and status. */
static lb_status
lock_delivery(store *s, const char *order_id, bool *found, char id[ID_STR_LEN], char status[32],
              lb_err *err)
{
    PGresult *res = NULL;
    const char *p[] = { order_id };
    lb_status st = store_exec(s, &res, DELIVERY_SQL(DELIVERY_SQL_LOCK), 1, p, err);
    if (st != LB_OK)
        return st;
    *found = PQntuples(res) == 1;
    id[0] = status[0] = '\0';
    if (*found) {
        snprintf(id, ID_STR_LEN, "%s", PQgetvalue(res, 0, 0));
        snprintf(status, 32, "%s", PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return LB_OK;
}

static lb_status
has_row(store *s, int stmt, const char *a, const char *b2, int nparams, bool *yes, lb_err *err)
{
    PGresult *res = NULL;
    const char *p[] = { a, b2 };
    lb_status st = store_exec(s, &res, delivery_stmts[stmt].name, nparams, p, err);
    if (st == LB_OK)
        *yes = PQntuples(res) > 0;
    PQclear(res);
    return st;
}

static lb_status
advance_one(svc_batch *b, svc_item *it, lb_err *err)
{
    const Layby__V1__AdvanceDelivery *c = (const Layby__V1__AdvanceDelivery *)it->msg;
    store *s = svc_batch_store(b);
    if (!id_valid(c->order_id))
        return emit_refused(b, it, c, LB_ERR_INVALID, "orderId must be a UUID", err);
    bool found = false, yes = false;
    char id[ID_STR_LEN], status[32], when[32];
    lb_time_format(when, sizeof when, it->now_ms);
    /* The delivery locked, whether it reached c->status before and whether it
     * was voided, in one round trip. An entry committed after this statement's
     * snapshot (another instance advanced it while this one waited for the
     * lock) is not seen: the status then is c->status already, which no move
     * allows, and the history is asked again with a new snapshot. */
    PGresult *res = NULL;
    const char *lp[] = { c->order_id, c->status };
    lb_status st = store_exec(s, &res, DELIVERY_SQL(DELIVERY_SQL_ADVANCE_LOOK), 2, lp, err);
    if (st != LB_OK)
        return st;
    found = !PQgetisnull(res, 0, 0);
    id[0] = status[0] = '\0';
    if (found) {
        snprintf(id, ID_STR_LEN, "%s", PQgetvalue(res, 0, 0));
        snprintf(status, sizeof status, "%s", PQgetvalue(res, 0, 1));
    }
    bool reached = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    bool voided = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
    PQclear(res);
    if (reached) /* reached before: the first outcome again */
        return emit_advanced(b, it, c, id, err);
    if (!found && strcmp(c->status, "PREPARING") == 0 && voided)
        return emit_refused(b, it, c, LB_ERR_STATE, "the delivery was cancelled", err);
    if (!delivery_transition_ok(status, c->status)) {
        if (found &&
            (st = has_row(s, DELIVERY_SQL_HISTORY_HAS, id, c->status, 2, &yes, err)) != LB_OK)
            return st;
        if (yes) /* reached meanwhile: the first outcome again */
            return emit_advanced(b, it, c, id, err);
        char why[128];
        snprintf(why, sizeof why, "delivery %s cannot become %s", found ? status : "(none)",
                 c->status);
        return emit_refused(b, it, c, found ? LB_ERR_STATE : LB_ERR_NOT_FOUND, why, err);
    }
    if (!found) {
        id_new(id);
        const char *ip[] = { id, c->order_id, when };
        if ((st = store_exec(s, NULL, DELIVERY_SQL(DELIVERY_SQL_INSERT), 3, ip, err)) != LB_OK)
            return st;
    } else {
        const char *up[] = { id, c->status, when };
        if ((st = store_exec(s, NULL, DELIVERY_SQL(DELIVERY_SQL_SET), 3, up, err)) != LB_OK)
            return st;
    }
    const char *hp[] = { id, c->status, when };
    if ((st = store_exec(s, NULL, DELIVERY_SQL(DELIVERY_SQL_HISTORY_ADD), 3, hp, err)) != LB_OK)
        return st;
    return emit_advanced(b, it, c, id, err);
}

static lb_status
cancel_one(svc_batch *b, svc_item *it, lb_err *err)
{
    const Layby__V1__CancelDelivery *c = (const Layby__V1__CancelDelivery *)it->msg;
    store *s = svc_batch_store(b);
    if (!id_valid(c->order_id))
        return emit_cancel_failed(b, it, c, LB_ERR_INVALID, "orderId must be a UUID", err);
    bool found = false;
    char id[ID_STR_LEN], status[32], when[32];
    lb_time_format(when, sizeof when, it->now_ms);
    lb_status st = lock_delivery(s, c->order_id, &found, id, status, err);
    if (st != LB_OK)
        return st;
    if (!found) {
        const char *vp[] = { c->order_id, when };
        if ((st = store_exec(s, NULL, DELIVERY_SQL(DELIVERY_SQL_VOID), 2, vp, err)) != LB_OK)
            return st;
        return emit_cancelled(b, it, c, err);
    }
    if (strcmp(status, "CANCELLED") == 0)
        return emit_cancelled(b, it, c, err);
    if (strcmp(status, "PREPARING") != 0)
        return emit_cancel_failed(b, it, c, LB_ERR_NOT_CANCELLABLE, "the delivery has shipped",
                                  err);
    const char *up[] = { id, "CANCELLED", when };
    if ((st = store_exec(s, NULL, DELIVERY_SQL(DELIVERY_SQL_SET), 3, up, err)) != LB_OK ||
        (st = store_exec(s, NULL, DELIVERY_SQL(DELIVERY_SQL_HISTORY_ADD), 3, up, err)) != LB_OK)
        return st;
    return emit_cancelled(b, it, c, err);
}

static lb_status
delivery_advance(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        lb_status st = advance_one(b, &items[i], err);
        if (st != LB_OK)
            return st;
    }
    return LB_OK;
}

static lb_status
delivery_cancel(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        lb_status st = cancel_one(b, &items[i], err);
        if (st != LB_OK)
            return st;
    }
    return LB_OK;
}

/* --- query --------------------------------------------------------------- */

static lb_status
delivery_get(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__GetDelivery *g = (const Layby__V1__GetDelivery *)req;
    if (!id_valid(g->order_id))
        return lb_err_field(err, LB_ERR_INVALID, "orderId", "orderId must be a UUID");
    store *s = svc_query_store(q);
    PGresult *res = NULL, *hist = NULL;
    const char *p[] = { g->order_id };
    lb_status st = store_exec(s, &res, DELIVERY_SQL(DELIVERY_SQL_GET), 1, p, err);
    if (st != LB_OK)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no delivery for this order");
    }
    const char *hp[] = { PQgetvalue(res, 0, 0) };
    if ((st = store_exec(s, &hist, DELIVERY_SQL(DELIVERY_SQL_HISTORY), 1, hp, err)) != LB_OK) {
        PQclear(res);
        return st;
    }
    Layby__V1__Delivery *d = calloc(1, sizeof *d);
    int rows = PQntuples(hist);
    bool oom = d == NULL;
    if (!oom) {
        layby__v1__delivery__init(d);
        d->delivery_id = strdup(PQgetvalue(res, 0, 0));
        d->order_id = strdup(PQgetvalue(res, 0, 1));
        d->status = strdup(PQgetvalue(res, 0, 2));
        d->timeline = calloc((size_t)rows + 1, sizeof *d->timeline);
        oom = !d->delivery_id || !d->order_id || !d->status || !d->timeline;
    }
    for (int r = 0; !oom && r < rows; r++) {
        Layby__V1__DeliveryStep *e = malloc(sizeof *e);
        if (e == NULL) {
            oom = true;
            break;
        }
        layby__v1__delivery_step__init(e);
        d->timeline[d->n_timeline++] = e;
        e->status = strdup(PQgetvalue(hist, r, 0));
        e->at = strdup(PQgetvalue(hist, r, 1));
        oom = !e->status || !e->at;
    }
    PQclear(res);
    PQclear(hist);
    if (oom) {
        if (d != NULL)
            protobuf_c_message_free_unpacked(&d->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "delivery");
    }
    *reply = &d->base;
    return LB_OK;
}

/* --- tables -------------------------------------------------------------- */

/* clang-format off */
static const svc_handler delivery_handlers[] = {
    { SUBJ_DELIVERY_ADVANCE, &layby__v1__advance_delivery__descriptor, delivery_advance, NULL },
    { SUBJ_DELIVERY_CANCEL,  &layby__v1__cancel_delivery__descriptor,  delivery_cancel, NULL },
};

static const svc_query_route delivery_queries[] = {
    { SUBJ_DELIVERY_GET,   &layby__v1__get_delivery__descriptor,       delivery_get, SVC_QUERY_READS },
    { SUBJ_DELIVERY_AUDIT, &layby__v1__get_delivery_audit__descriptor, delivery_audit, SVC_QUERY_READS },
};

static const svc_consumer delivery_consumers[] = {
    { "LAYBY_CMD", "delivery" },
};
/* clang-format on */

const svc_def delivery_def = {
    .name = "delivery",
    .consumers = delivery_consumers,
    .n_consumers = LB_COUNTOF(delivery_consumers),
    .handlers = delivery_handlers,
    .n_handlers = LB_COUNTOF(delivery_handlers),
    .queries = delivery_queries,
    .n_queries = LB_COUNTOF(delivery_queries),
    .stmts = delivery_stmts,
    .n_stmts = DELIVERY_STMTS_COUNT,
};
