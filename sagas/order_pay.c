/* order_pay.c - paying an order ("order_pay" v3, v1-v2 for the sagas started
 * on them; one saga per pay request).
 *
 *   charge the card     a gateway outage is retried with backoff; a decline
 *                       is final: the saga FAILS and the buyer hears 402,
 *                       while the order stays PAYMENT_PENDING and may be paid
 *                       again until its deadline        undo: refund the charge
 *   order PAID          expected PAYMENT_PENDING; reaching it notifies the
 *                       order's place saga (OrderPaid to its wait step), which
 *                       goes on to confirm the sale and deliver
 *
 * The payment service keeps one capture per order whichever saga asks, and
 * setting PAID is idempotent per (order, status), so two pay requests race
 * harmlessly: the second one answers the first capture and PAID again. When
 * PAID is refused (the deadline passed and the order was cancelled
 * meanwhile), the charge is refunded. The place saga's id is the order id;
 * a pay saga's correlation is the order id too (pay_correlation): its
 * participants' events come back to it by their saga_id field.
 *
 * v3 keeps a record (PaySagaRecord): when the order became PAID, from the
 * order service's OrderStatusSet. The saga's answer carries it, so the edge
 * answers the payment with the order it read before paying, moved to PAID,
 * instead of reading the order again (one order query a checkout fewer). */
#include <stdlib.h>
#include <string.h>

#include "layby/v1/order.pb-c.h"
#include "layby/v1/payment.pb-c.h"
#include "order.h"

enum {
    PAY_CHARGE,
    PAY_MARK_PAID,
    PAY__STEPS
};

typedef const Layby__V1__PayOrder pay_start;

static lb_status
build_charge(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    pay_start *p = (pay_start *)in->start;
    Layby__V1__Charge c = LAYBY__V1__CHARGE__INIT;
    c.saga_id = (char *)in->s->id;
    c.step = in->cmd->step;
    c.attempt = in->cmd->attempt;
    c.order_id = p->order_id;
    c.amount = p->amount;
    c.member_id = p->member_id;
    if (p->draft != NULL) {
        c.method = p->draft->method;
        c.card_token = p->draft->card_token;
    }
    return order_saga_copy(out, &c.base, err);
}

static lb_status
build_refund(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    const pay_start *p = (const pay_start *)in->start;
    return order_refund_build(out, in, p->order_id, "the order could not be marked paid", err);
}

static lb_status
build_mark_paid(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    pay_start *p = (pay_start *)in->start;
    char *expect[] = { "PAYMENT_PENDING" };
    Layby__V1__SetOrderStatus c = LAYBY__V1__SET_ORDER_STATUS__INIT;
    c.saga_id = (char *)in->s->id;
    c.step = in->cmd->step;
    c.attempt = in->cmd->attempt;
    c.order_id = p->order_id;
    c.status = "PAID";
    c.expect = expect;
    c.n_expect = 1;
    c.notify_saga_id = p->order_id; /* the place saga */
    c.notify_step = ORDER_PLACE_WAIT_PAID;
    return order_saga_copy(out, &c.base, err);
}

/* OrderStatusSet of order_paid -> when the order became PAID (an OrderRefused
 * leaves the record as it is). */
static lb_status
merge_paid(ProtobufCMessage *record, const ProtobufCMessage *event, lb_err *err)
{
    if (event->descriptor != &layby__v1__order_status_set__descriptor)
        return LB_OK;
    Layby__V1__PaySagaRecord *r = (Layby__V1__PaySagaRecord *)record;
    const Layby__V1__OrderStatusSet *e = (const Layby__V1__OrderStatusSet *)event;
    char *at = strdup(e->at);
    if (at == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "record");
    if (r->paid_at != NULL && r->paid_at != protobuf_c_empty_string)
        free(r->paid_at);
    r->paid_at = at;
    return LB_OK;
}

/* The pay saga belongs to its order's flow (DESIGN §2): its messages carry
 * the order id as correlation, beside the place saga's. */
static const char *
pay_correlation(const ProtobufCMessage *start)
{
    return ((pay_start *)start)->order_id;
}

/* clang-format off */
/* fwd: order_paid is a forward step (v2, docs/SAGAS.md §5.1): once the card
 * is charged, the order is marked PAID however long the order service is
 * away. v1 gave up after 5 attempts and refunded while its PAID commands were
 * still queued: the order became PAID and was delivered, its money refunded.
 * A refusal (the order was cancelled meanwhile) is final and still refunds. */
#define PAY_STEPS(fwd, paid_merge, answer)                                                                         \
    [PAY_CHARGE] = {                                                                               \
        .name = "charge", .command = &layby__v1__charge__descriptor,                               \
        .subject = SUBJ_PAYMENT_CHARGE, .build = build_charge,                                     \
        .on_ok = &layby__v1__payment_captured__descriptor, .on_ok_subject = SUBJ_PAYMENT_CAPTURED, \
        .on_fail = &layby__v1__payment_failed__descriptor, .on_fail_subject = SUBJ_PAYMENT_FAILED, \
        .timeout_ms = 5000, .duration = order_step_timeout_ms, .retry = &order_charge_retry,       \
        .compensate = &layby__v1__refund__descriptor,                                              \
        .compensate_subject = SUBJ_PAYMENT_REFUND, .build_compensate = build_refund,               \
        .on_compensated = &layby__v1__payment_refunded__descriptor,                                \
        .on_compensated_subject = SUBJ_PAYMENT_REFUNDED,                                           \
        .on_compensate_fail = &layby__v1__refund_failed__descriptor,                               \
        .on_compensate_fail_subject = SUBJ_PAYMENT_REFUND_FAILED,                                  \
        .compensate_retry = &order_undo_retry,                                                     \
    },                                                                                             \
    [PAY_MARK_PAID] = {                                                                            \
        .name = "order_paid", .command = &layby__v1__set_order_status__descriptor,                 \
        .subject = SUBJ_ORDER_SET_STATUS, .build = build_mark_paid,                                \
        .on_ok = &layby__v1__order_status_set__descriptor, .on_ok_subject = SUBJ_ORDER_STATUS_SET, \
        .on_fail = &layby__v1__order_refused__descriptor, .on_fail_subject = SUBJ_ORDER_REFUSED,   \
        .timeout_ms = 5000, .duration = order_step_timeout_ms, .retry = &order_retry,              \
        .forward = (fwd), .merge = (paid_merge), .answers = (answer),                              \
    }

static const saga_step pay_steps_v1[PAY__STEPS] = { PAY_STEPS(false, NULL, false) };
static const saga_step pay_steps_v2[PAY__STEPS] = { PAY_STEPS(true, NULL, false) };
/* v3: order_paid answers the buyer (saga.h .answers, added in place: it
 * changes who answers, not what is decided): the order service's
 * OrderStatusSet, PAID at its `at`, reaches the waiting edge one
 * orchestrator hop before this saga's reply. */
static const saga_step pay_steps_v3[PAY__STEPS] = { PAY_STEPS(true, merge_paid, true) };
/* clang-format on */

const saga_type saga_order_pay_v1 = {
    .name = "order_pay",
    .version = 1,
    .start = &layby__v1__pay_order__descriptor,
    .steps = pay_steps_v1,
    .n_steps = PAY__STEPS,
    .correlation = pay_correlation,
};

const saga_type saga_order_pay_v2 = {
    .name = "order_pay",
    .version = 2,
    .start = &layby__v1__pay_order__descriptor,
    .steps = pay_steps_v2,
    .n_steps = PAY__STEPS,
    .correlation = pay_correlation,
};

const saga_type saga_order_pay_v3 = {
    .name = "order_pay",
    .version = 3,
    .start = &layby__v1__pay_order__descriptor,
    .steps = pay_steps_v3,
    .n_steps = PAY__STEPS,
    .correlation = pay_correlation,
    .record = &layby__v1__pay_saga_record__descriptor,
};
