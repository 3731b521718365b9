/* order.h - the shop's order sagas (issue 20, DESIGN §4-§6):
 *   order_place (sagas/order_place.c): create the order, reserve stock, wait
 *     for payment until the deadline, confirm the sale, deliver, keep the
 *     return window open; `cancel` and `return` are signals;
 *   order_pay (sagas/order_pay.c): charge the card (gateway outages retried
 *     with backoff), mark the order PAID, which wakes order_place's wait step.
 * Shared parts (message copies, retry policies, durations) are in
 * order_common.c. docs/ORDERS.md describes the flows.
 *
 * Ownership: static const tables; builders return messages the caller frees
 *            with protobuf_c_message_free_unpacked(msg, NULL).
 * Threads:   reentrant.
 */
#ifndef LAYBY_SAGAS_ORDER_H
#define LAYBY_SAGAS_ORDER_H

#include "engine/saga.h"
#include "engine/subjects.h"
#include "sagas.h"

/* order_place's steps, in order. */
enum order_place_step {
    ORDER_PLACE_CREATE,
    ORDER_PLACE_RESERVE,
    ORDER_PLACE_WISHLIST,
    ORDER_PLACE_PENDING,
    ORDER_PLACE_WAIT_PAID,
    ORDER_PLACE_CONFIRM,
    ORDER_PLACE_PREPARE,
    ORDER_PLACE_SHIP_DELAY,
    ORDER_PLACE_SHIP,
    ORDER_PLACE_DELIVER_DELAY,
    ORDER_PLACE_DELIVER,
    ORDER_PLACE_WINDOW,
    ORDER_PLACE_RETURN_REQUEST,
    ORDER_PLACE_PICKUP,
    ORDER_PLACE_RETURN_DELAY,
    ORDER_PLACE_REFUND,
    ORDER_PLACE_RESTOCK,
    ORDER_PLACE_DELIVERY_RETURNED,
    ORDER_PLACE_RETURNED,
    ORDER_PLACE__STEPS
};

/* order_place v5 is the one new orders start on; v1 (it refunded as the
 * undo of the wait step), v2 (it ran the wishlist step for every order), v3
 * (its steps after the payment gave up and compensated) and v4 (it reserved
 * the stock only once the order was created) stay registered for the sagas
 * started on them. order_pay v2 marks a charged order PAID
 * however long it takes; v1 gave up. */
extern const saga_type saga_order_place_v1;
extern const saga_type saga_order_place_v2;
extern const saga_type saga_order_place_v3;
extern const saga_type saga_order_place_v4;
extern const saga_type saga_order_place_v5;
extern const saga_type saga_order_pay_v1;
extern const saga_type saga_order_pay_v2;
extern const saga_type saga_order_pay_v3;

/* What a buyer whose cancel or return is refused reads (the 409's message;
 * the saga's log names its status and step). */
#define ORDER_NOT_CANCELLABLE_TEXT                                                      \
    "this order can no longer be cancelled: an order can be cancelled while it awaits " \
    "payment, or once paid until its delivery ships"
#define ORDER_NOT_RETURNABLE_TEXT                                                     \
    "this order cannot be returned: a return is accepted in the return window after " \
    "the delivery"

/* --- order_common.c -------------------------------------------------------- */

/* *out = a deep copy of m (whose strings may be borrowed). */
lb_status order_saga_copy(ProtobufCMessage **out, const ProtobufCMessage *m, lb_err *err);

/* *out = a Refund of what is left of order_id's capture for the command in
 * `in` (keyed by saga, step and attempt in the payment ledger). Both order
 * sagas refund this way. */
lb_status order_refund_build(ProtobufCMessage **out, const saga_build_in *in, const char *order_id,
                             const char *reason, lb_err *err);

/* Durations of DESIGN §6 (sagas_duration_ms(): the variable, else LAYBY_FAST's
 * value, else the default), read when a saga starts. */
int64_t order_payment_deadline_ms(void); /* LAYBY_PAYMENT_DEADLINE   30m / fast 20s */
int64_t order_ship_delay_ms(void);       /* LAYBY_SHIP_DELAY         1d  / fast 3s */
int64_t order_deliver_delay_ms(void);    /* LAYBY_DELIVER_DELAY      1d  / fast 3s */
int64_t order_return_window_ms(void);    /* LAYBY_RETURN_WINDOW      1d  / fast 30s */
int64_t order_return_delay_ms(void);     /* LAYBY_RETURN_DELAY       1d  / fast 3s */
int64_t order_step_timeout_ms(void);     /* LAYBY_ORDER_STEP_TIMEOUT 5s: one command attempt */

/* Retry policies: a participant's command (5 tries from 200 ms, doubling to
 * 5 s); an undo (8 tries from 500 ms to 30 s, then STUCK for an operator);
 * a card charge (3 tries from 100 ms: a gateway outage is retried quickly
 * while the buyer waits). */
extern const saga_retry order_retry;
extern const saga_retry order_undo_retry;
extern const saga_retry order_charge_retry;

#endif
