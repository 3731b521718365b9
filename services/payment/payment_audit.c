/* payment_audit.c - layby.qry.payment.audit (DESIGN §7): what `layby-ctl
 * audit` needs from the ledger to check money across services: the totals
 * (charged, refunded, orders charged twice, refunds above their charge) and,
 * a page at a time in order id order (svc_audit_reply()), what each order was
 * charged and refunded, counted from both tables (charges.refunded_won and
 * the refund rows must agree). Read-only. */
#include <stdlib.h>
#include <string.h>

#include "payment.h"

static bool
totals_fill(ProtobufCMessage *m, const PGresult *res, int r)
{
    Layby__V1__PaymentAuditTotals *t = (Layby__V1__PaymentAuditTotals *)m;
    int64_t *const cols[] = { &t->charged,
                              &t->refunded,
                              &t->captures,
                              &t->orders_charged_twice,
                              &t->orders_refunded_above_charge,
                              &t->declined,
                              &t->failed };
    svc_audit_ints(cols, LB_COUNTOF(cols), res, r, 0);
    return true;
}

static bool
order_fill(ProtobufCMessage *m, const PGresult *res, int r)
{
    Layby__V1__PaymentAuditRow *o = (Layby__V1__PaymentAuditRow *)m;
    o->order_id = strdup(PQgetvalue(res, r, 0));
    int64_t *const cols[] = { &o->captures, &o->charged, &o->refunded, &o->refunded_on_charges,
                              &o->updated_ms };
    svc_audit_ints(cols, LB_COUNTOF(cols), res, r, 1);
    return o->order_id != NULL;
}

lb_status
payment_audit(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__GetPaymentAudit *g = (const Layby__V1__GetPaymentAudit *)req;
    const svc_audit_def def = {
        .reply = &layby__v1__payment_audit__descriptor,
        .head_field = "totals",
        .head_stmt = PAYMENT_SQL(PAYMENT_SQL_AUDIT_TOTALS),
        .head_fill = totals_fill,
        .orders_stmt = PAYMENT_SQL(PAYMENT_SQL_AUDIT_ORDERS),
        .orders_fill = order_fill,
    };
    return svc_audit_reply(q, &def, g->after_order_id, g->limit, reply, err);
}
