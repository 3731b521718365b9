/* order_common.c - parts the order sagas share: message copies, retry
 * policies and the DESIGN §6 durations. */
#include <stdlib.h>

#include "layby/v1/payment.pb-c.h"
#include "order.h"

lb_status
order_saga_copy(ProtobufCMessage **out, const ProtobufCMessage *m, lb_err *err)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "saga command");
    protobuf_c_message_pack(m, buf);
    *out = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    free(buf);
    return *out != NULL ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "saga command");
}

lb_status
order_refund_build(ProtobufCMessage **out, const saga_build_in *in, const char *order_id,
                   const char *reason, lb_err *err)
{
    Layby__V1__Refund c = LAYBY__V1__REFUND__INIT;
    c.saga_id = (char *)in->s->id;
    c.step = in->cmd->step;
    c.attempt = in->cmd->attempt;
    c.order_id = (char *)order_id;
    c.amount = 0; /* 0 = whatever is left of the capture */
    c.reason = (char *)reason;
    return order_saga_copy(out, &c.base, err);
}

#define MIN_MS  (60LL * 1000)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS  (24 * HOUR_MS)

int64_t
order_payment_deadline_ms(void)
{
    return sagas_duration_ms("LAYBY_PAYMENT_DEADLINE", 30 * MIN_MS, 20 * 1000);
}

int64_t
order_ship_delay_ms(void)
{
    return sagas_duration_ms("LAYBY_SHIP_DELAY", DAY_MS, 3 * 1000);
}

int64_t
order_deliver_delay_ms(void)
{
    return sagas_duration_ms("LAYBY_DELIVER_DELAY", DAY_MS, 3 * 1000);
}

int64_t
order_return_window_ms(void)
{
    return sagas_duration_ms("LAYBY_RETURN_WINDOW", DAY_MS, 30 * 1000);
}

int64_t
order_return_delay_ms(void)
{
    return sagas_duration_ms("LAYBY_RETURN_DELAY", DAY_MS, 3 * 1000);
}

int64_t
order_step_timeout_ms(void)
{
    return sagas_duration_ms("LAYBY_ORDER_STEP_TIMEOUT", 5000, 5000);
}

const saga_retry order_retry = {
    .attempts = 5,
    .base_ms = 200,
    .multiplier = 2,
    .cap_ms = 5000,
    .jitter_pct = 20,
};
const saga_retry order_undo_retry = {
    .attempts = 8,
    .base_ms = 500,
    .multiplier = 2,
    .cap_ms = 30000,
    .jitter_pct = 20,
};
const saga_retry order_charge_retry = {
    .attempts = 3,
    .base_ms = 100,
    .multiplier = 2,
    .cap_ms = 1000,
    .jitter_pct = 20,
};
