/* payment_handlers.c - charge and refund, the ledger's two commands.
 *
 * Invariants (the first two held by constraints in sql/0500_payment_init.sql):
 * (1) At most one CAPTURED charge per order, ever: a charge for an order that
 *     has one answers that capture, whichever saga asks.
 * (2) Refunds never exceed the capture (refunded_won <= amount_won).
 * (3) Each gateway call is one attempt row keyed '<saga>:<step>:<attempt>': a
 *     repeated command answers the stored outcome without calling again. A
 *     saga retrying after an outage sends a new attempt, which calls again.
 * (4) A refund keyed '<saga>:<step>' refunds once. Without a capture it
 *     refunds 0 and its row voids that saga: a late charge of the same saga
 *     (overtaken by its compensation) is refused.
 * (5) Once the order's place saga (saga id = order id, docs/ORDERS.md §5)
 *     refunded, the order is being cancelled: every later charge of the
 *     order is refused, whichever pay saga sends it. Charges and refunds of
 *     one order take a transaction lock on the order first, so a charge and
 *     that refund never pass each other unseen. Found by the randomized run
 *     (tests/e2e/chaos_test.c): the deadline's refund found nothing, a pay
 *     saga captured a moment later and set PAID before the undo set
 *     CANCELLED, and the order ended CANCELLED with its money kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payment.h"

/* --- events -------------------------------------------------------------- */

static lb_status
emit_captured(svc_batch *b, svc_item *it, const Layby__V1__Charge *c, const char *charge_id,
              int64_t amount, lb_err *err)
{
    Layby__V1__PaymentCaptured ev = LAYBY__V1__PAYMENT_CAPTURED__INIT;
    ev.saga_id = c->saga_id;
    ev.step = c->step;
    ev.attempt = c->attempt;
    ev.order_id = c->order_id;
    ev.charge_id = (char *)charge_id;
    ev.amount = amount;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__payment_captured__descriptor, it->env);
    return svc_emit_answer(b, it, SUBJ_PAYMENT_CAPTURED, &env, &ev.base, err);
}

static lb_status
emit_failed(svc_batch *b, svc_item *it, const Layby__V1__Charge *c, bool final, lb_status code,
            const char *why, lb_err *err)
{
    Layby__V1__PaymentFailed ev = LAYBY__V1__PAYMENT_FAILED__INIT;
    ev.saga_id = c->saga_id;
    ev.step = c->step;
    ev.attempt = c->attempt;
    ev.order_id = c->order_id;
    ev.final = final;
    ev.code = (char *)lb_status_code(code);
    ev.reason = (char *)why;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__payment_failed__descriptor, it->env);
    it->outcome = lb_err_set(&it->why, code, "%s", why);
    return svc_emit_answer(b, it, SUBJ_PAYMENT_FAILED, &env, &ev.base, err);
}

static lb_status
emit_refunded(svc_batch *b, svc_item *it, const Layby__V1__Refund *r, const char *refund_id,
              int64_t amount, lb_err *err)
{
    Layby__V1__PaymentRefunded ev = LAYBY__V1__PAYMENT_REFUNDED__INIT;
    ev.saga_id = r->saga_id;
    ev.step = r->step;
    ev.attempt = r->attempt;
    ev.order_id = r->order_id;
    ev.refund_id = (char *)refund_id;
    ev.amount = amount;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__payment_refunded__descriptor, it->env);
    return svc_emit_answer(b, it, SUBJ_PAYMENT_REFUNDED, &env, &ev.base, err);
}

static lb_status
emit_refund_failed(svc_batch *b, svc_item *it, const Layby__V1__Refund *r, lb_status code,
                   const char *why, lb_err *err)
{
    Layby__V1__RefundFailed ev = LAYBY__V1__REFUND_FAILED__INIT;
    ev.saga_id = r->saga_id;
    ev.step = r->step;
    ev.attempt = r->attempt;
    ev.order_id = r->order_id;
    ev.final = true;
    ev.code = (char *)lb_status_code(code);
    ev.reason = (char *)why;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__refund_failed__descriptor, it->env);
    it->outcome = lb_err_set(&it->why, code, "%s", why);
    return svc_emit_answer(b, it, SUBJ_PAYMENT_REFUND_FAILED, &env, &ev.base, err);
}

/* Invariant 5: until commit, no other charge or refund of this order runs. */
static lb_status
order_lock(store *s, const char *order_id, lb_err *err)
{
    const char *p[] = { order_id };
    return store_exec(s, NULL, PAYMENT_SQL(PAYMENT_SQL_ORDER_LOCK), 1, p, err);
}

/* --- charge -------------------------------------------------------------- */

/* Answers with the order's capture if it has one; *done says whether it did. */
static lb_status
answer_capture(svc_batch *b, svc_item *it, const Layby__V1__Charge *c, bool *done, lb_err *err)
{
    PGresult *res = NULL;
    const char *p[] = { c->order_id };
    lb_status st =
        store_exec(svc_batch_store(b), &res, PAYMENT_SQL(PAYMENT_SQL_CAPTURE_GET), 1, p, err);
    if (st != LB_OK)
        return st;
    *done = PQntuples(res) == 1;
    if (*done)
        st = emit_captured(b, it, c, PQgetvalue(res, 0, 0), atoll(PQgetvalue(res, 0, 1)), err);
    PQclear(res);
    return st;
}

/* Answers from what CHARGE_LOOK found before any gateway call: the order's
 * capture, a refund that voided this payment, or this attempt's stored
 * outcome (a repeat), in that order; *done says whether it did. */
static lb_status
answer_looked(svc_batch *b, svc_item *it, const Layby__V1__Charge *c, const PGresult *res,
              bool *done, lb_err *err)
{
    *done = true;
    if (!PQgetisnull(res, 0, 0))
        return emit_captured(b, it, c, PQgetvalue(res, 0, 0), atoll(PQgetvalue(res, 0, 1)), err);
    if (strcmp(PQgetvalue(res, 0, 2), "t") == 0)
        return emit_failed(b, it, c, true, LB_ERR_STATE, "this payment was cancelled", err);
    if (!PQgetisnull(res, 0, 3)) {
        const char *status = PQgetvalue(res, 0, 3);
        if (strcmp(status, "CAPTURED") == 0)
            return emit_captured(b, it, c, PQgetvalue(res, 0, 4), atoll(PQgetvalue(res, 0, 5)),
                                 err);
        if (strcmp(status, "DECLINED") == 0)
            return emit_failed(b, it, c, true, LB_ERR_PAYMENT_DECLINED, PQgetvalue(res, 0, 6), err);
        return emit_failed(b, it, c, false, LB_ERR_UNAVAILABLE, PQgetvalue(res, 0, 6), err);
    }
    *done = false;
    return LB_OK;
}

/* clang-format off */
static const struct {
    const char *status; /* charges.status */
    bool final;
    lb_status code;
    const char *why;
} verdict_rows[] = {
    [PAYMENT_APPROVED] = { "CAPTURED", false, LB_OK,                   "" },
    [PAYMENT_DECLINED] = { "DECLINED", true,  LB_ERR_PAYMENT_DECLINED, "the card was declined" },
    [PAYMENT_OUTAGE]   = { "FAILED",   false, LB_ERR_UNAVAILABLE,      "the card gateway did not answer" },
};
/* clang-format on */

/* The attempt's key: its saga, step and attempt (the gateway's idempotency key). */
static void
charge_key(char *key, size_t cap, const Layby__V1__Charge *c)
{
    snprintf(key, cap, "%s:%u:%u", c->saga_id, c->step, c->attempt);
}

/* The order locked (invariant 5), then what CHARGE_LOOK finds for this
 * attempt: the lock leaves right before the look, with it in the prefetch,
 * or here when nothing was prefetched. */
static lb_status
charge_look(svc_batch *b, const Layby__V1__Charge *c, const char *key, PGresult **res, lb_err *err)
{
    const char *lp[] = { c->order_id, c->saga_id, key };
    lb_status st = LB_OK;
    if ((res == NULL || !svc_batch_has_prefetched(b)) &&
        (st = order_lock(svc_batch_store(b), c->order_id, err)) != LB_OK)
        return st;
    return svc_batch_read_first(b, res, PAYMENT_SQL(PAYMENT_SQL_CHARGE_LOOK), 3, lp, err);
}

static lb_status
charge_prefetch(svc_batch *b, const svc_item *items, size_t n, lb_err *err)
{
    (void)n; /* one: svc_handler.prefetch */
    const Layby__V1__Charge *c = (const Layby__V1__Charge *)items[0].msg;
    if (!id_valid(c->order_id) || !id_valid(c->saga_id))
        return LB_OK; /* the handler refuses it without reading */
    char key[128];
    charge_key(key, sizeof key, c);
    return charge_look(b, c, key, NULL, err);
}

static lb_status
charge_one(svc_batch *b, svc_item *it, lb_err *err)
{
    const Layby__V1__Charge *c = (const Layby__V1__Charge *)it->msg;
    store *s = svc_batch_store(b);
    if (!id_valid(c->order_id) || !id_valid(c->saga_id))
        return emit_failed(b, it, c, true, LB_ERR_INVALID, "orderId and sagaId must be UUIDs", err);
    if (c->amount <= 0 || c->amount > PAYMENT_AMOUNT_MAX)
        return emit_failed(b, it, c, true, LB_ERR_INVALID, "amount out of range", err);
    if (c->card_token[0] == '\0')
        return emit_failed(b, it, c, true, LB_ERR_INVALID, "cardToken is required", err);
    bool done = false;
    char key[128];
    charge_key(key, sizeof key, c);
    PGresult *res = NULL;
    lb_status st = charge_look(b, c, key, &res, err);
    if (st != LB_OK)
        return st;
    st = answer_looked(b, it, c, res, &done, err);
    int64_t outages = atoll(PQgetvalue(res, 0, 7));
    PQclear(res);
    res = NULL;
    if (st != LB_OK || done)
        return st;
    /* The gateway call happens inside the transaction: a crash before commit
     * forgets it, and the redelivered command calls again, as a real client
     * of a real gateway would (with the attempt key as its idempotency key). */
    payment_verdict v = payment_gateway_call(c->card_token, outages);
    char charge_id[ID_STR_LEN], amount[24], when[32];
    id_new(charge_id);
    snprintf(amount, sizeof amount, "%lld", (long long)c->amount);
    lb_time_format(when, sizeof when, it->now_ms);
    const char *ip[] = { charge_id, c->order_id, c->saga_id,          key, verdict_rows[v].status,
                         amount,    c->method,   verdict_rows[v].why, when };
    if ((st = store_exec(s, &res, PAYMENT_SQL(PAYMENT_SQL_CHARGE_INSERT), 9, ip, err)) != LB_OK)
        return st;
    bool inserted = PQntuples(res) == 1;
    PQclear(res);
    if (!inserted) /* another capture won the race (invariant 1) */
        return answer_capture(b, it, c, &done, err);
    if (v == PAYMENT_APPROVED)
        return emit_captured(b, it, c, charge_id, c->amount, err);
    return emit_failed(b, it, c, verdict_rows[v].final, verdict_rows[v].code, verdict_rows[v].why,
                       err);
}

static lb_status
payment_charge(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        lb_status st = charge_one(b, &items[i], err);
        if (st != LB_OK)
            return st;
    }
    return LB_OK;
}

/* --- refund -------------------------------------------------------------- */

static lb_status
refund_one(svc_batch *b, svc_item *it, lb_err *err)
{
    const Layby__V1__Refund *r = (const Layby__V1__Refund *)it->msg;
    store *s = svc_batch_store(b);
    if (!id_valid(r->order_id) || !id_valid(r->saga_id))
        return emit_refund_failed(b, it, r, LB_ERR_INVALID, "orderId and sagaId must be UUIDs",
                                  err);
    if (r->amount < 0)
        return emit_refund_failed(b, it, r, LB_ERR_INVALID, "amount must not be negative", err);
    char key[96];
    snprintf(key, sizeof key, "%s:%u", r->saga_id, r->step);
    PGresult *res = NULL;
    const char *gp[] = { r->order_id, key };
    lb_status st = order_lock(s, r->order_id, err);
    if (st == LB_OK)
        st = store_exec(s, &res, PAYMENT_SQL(PAYMENT_SQL_REFUND_GET), 2, gp, err);
    if (st != LB_OK)
        return st;
    if (PQntuples(res) == 1) { /* a repeat */
        st = emit_refunded(b, it, r, PQgetvalue(res, 0, 0), atoll(PQgetvalue(res, 0, 1)), err);
        PQclear(res);
        return st;
    }
    PQclear(res);
    res = NULL;
    const char *lp[] = { r->order_id };
    if ((st = store_exec(s, &res, PAYMENT_SQL(PAYMENT_SQL_CHARGE_LOCK), 1, lp, err)) != LB_OK)
        return st;
    char charge_id[ID_STR_LEN] = "";
    int64_t left = 0, amount = 0;
    if (PQntuples(res) == 1) {
        snprintf(charge_id, sizeof charge_id, "%s", PQgetvalue(res, 0, 0));
        left = atoll(PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    amount = r->amount == 0 ? left : r->amount;
    if (amount > left) /* invariant 2: never above what is left of the capture */
        return emit_refund_failed(b, it, r, LB_ERR_INVALID, "refund exceeds the charge", err);
    char refund_id[ID_STR_LEN], amt[24], when[32];
    id_new(refund_id);
    snprintf(amt, sizeof amt, "%lld", (long long)amount);
    lb_time_format(when, sizeof when, it->now_ms);
    if (amount > 0) {
        const char *up[] = { charge_id, amt };
        if ((st = store_exec(s, NULL, PAYMENT_SQL(PAYMENT_SQL_CHARGE_REFUND), 2, up, err)) != LB_OK)
            return st;
    }
    const char *ip[] = { refund_id, r->order_id, r->saga_id, key, charge_id, amt, r->reason, when };
    if ((st = store_exec(s, NULL, PAYMENT_SQL(PAYMENT_SQL_REFUND_INSERT), 8, ip, err)) != LB_OK)
        return st;
    return emit_refunded(b, it, r, refund_id, amount, err);
}

static lb_status
payment_refund(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        lb_status st = refund_one(b, &items[i], err);
        if (st != LB_OK)
            return st;
    }
    return LB_OK;
}

/* --- query --------------------------------------------------------------- */

static lb_status
payment_get(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__GetPayment *g = (const Layby__V1__GetPayment *)req;
    if (!id_valid(g->order_id))
        return lb_err_field(err, LB_ERR_INVALID, "orderId", "orderId must be a UUID");
    PGresult *res = NULL;
    const char *p[] = { g->order_id };
    lb_status st =
        store_exec(svc_query_store(q), &res, PAYMENT_SQL(PAYMENT_SQL_SUMMARY), 1, p, err);
    if (st != LB_OK)
        return st;
    Layby__V1__PaymentSummary *out = malloc(sizeof *out);
    if (out == NULL) {
        PQclear(res);
        return lb_err_set(err, LB_ERR_NOMEM, "summary");
    }
    layby__v1__payment_summary__init(out);
    out->order_id = strdup(g->order_id);
    out->charge_id = strdup(PQgetvalue(res, 0, 0));
    out->charged = atoll(PQgetvalue(res, 0, 1));
    out->refunded = atoll(PQgetvalue(res, 0, 2));
    out->declined_attempts = atoll(PQgetvalue(res, 0, 3));
    out->failed_attempts = atoll(PQgetvalue(res, 0, 4));
    PQclear(res);
    if (out->order_id == NULL || out->charge_id == NULL) {
        protobuf_c_message_free_unpacked(&out->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "summary");
    }
    *reply = &out->base;
    return LB_OK;
}

/* --- tables -------------------------------------------------------------- */

/* clang-format off */
static const svc_handler payment_handlers[] = {
    { SUBJ_PAYMENT_CHARGE, &layby__v1__charge__descriptor, payment_charge, charge_prefetch },
    { SUBJ_PAYMENT_REFUND, &layby__v1__refund__descriptor, payment_refund, NULL },
};

static const svc_query_route payment_queries[] = {
    { SUBJ_PAYMENT_GET,   &layby__v1__get_payment__descriptor,       payment_get, SVC_QUERY_READS },
    { SUBJ_PAYMENT_AUDIT, &layby__v1__get_payment_audit__descriptor, payment_audit, SVC_QUERY_READS },
    { SUBJ_PAYMENT_LEDGER, &layby__v1__get_payment_ledger__descriptor, payment_ledger, SVC_QUERY_READS },
};

static const svc_consumer payment_consumers[] = {
    { "LAYBY_CMD", "payment" },
};

#define PC_OFF(f) offsetof(payment_conf, f)
static const cfg_opt payment_opts[] = {
    { "decline-per-mille", "LAYBY_PAYMENT_DECLINE_PER_MILLE", CFG_INT, "0", PC_OFF(decline_per_mille), 0, 1000,
      "random declines of otherwise approved cards, per 1000 (load tests)" },
    { "gateway-latency",   "LAYBY_PAYMENT_LATENCY",           CFG_MS,  "0", PC_OFF(latency_ms), 0, 60000,
      "how long each simulated gateway call takes" },
};
/* clang-format on */

const svc_def payment_def = {
    .name = "payment",
    .consumers = payment_consumers,
    .n_consumers = LB_COUNTOF(payment_consumers),
    .handlers = payment_handlers,
    .n_handlers = LB_COUNTOF(payment_handlers),
    .queries = payment_queries,
    .n_queries = LB_COUNTOF(payment_queries),
    .stmts = payment_stmts,
    .n_stmts = PAYMENT_STMTS_COUNT,
    .opts = { &payment_settings, payment_opts, LB_COUNTOF(payment_opts) },
};
