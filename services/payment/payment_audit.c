/* payment_audit.c - layby.qry.payment.audit (DESIGN §7): what `layby-ctl
 * audit` needs from the ledger to check money across services: the totals
 * (charged, refunded, orders charged twice, refunds above their charge) and,
 * a page at a time in order id order, what each order was charged and
 * refunded, counted from both tables (charges.refunded_won and the refund
 * rows must agree). Read-only. */
#include <stdlib.h>
#include <string.h>

#include "payment.h"

static lb_status
totals_fill(Layby__V1__PaymentAudit *a, store *s, lb_err *err)
{
    PGresult *res = NULL;
    lb_status st = store_exec(s, &res, PAYMENT_SQL(PAYMENT_SQL_AUDIT_TOTALS), 0, NULL, err);
    if (st != LB_OK)
        return st;
    Layby__V1__PaymentAuditTotals *t = malloc(sizeof *t);
    if (t != NULL) {
        layby__v1__payment_audit_totals__init(t);
        int64_t *cols[] = { &t->charged,
                            &t->refunded,
                            &t->captures,
                            &t->orders_charged_twice,
                            &t->orders_refunded_above_charge,
                            &t->declined,
                            &t->failed };
        for (size_t c = 0; c < LB_COUNTOF(cols); c++)
            *cols[c] = atoll(PQgetvalue(res, 0, (int)c));
        a->totals = t;
    }
    PQclear(res);
    return t == NULL ? lb_err_set(err, LB_ERR_NOMEM, "audit totals") : LB_OK;
}

static lb_status
orders_fill(Layby__V1__PaymentAudit *a, store *s, const char *after, const char *lim, lb_err *err)
{
    PGresult *res = NULL;
    const char *p[] = { after, lim };
    lb_status st = store_exec(s, &res, PAYMENT_SQL(PAYMENT_SQL_AUDIT_ORDERS), 2, p, err);
    if (st != LB_OK)
        return st;
    int rows = PQntuples(res);
    a->orders = calloc((size_t)rows + 1, sizeof *a->orders);
    bool oom = a->orders == NULL;
    for (int r = 0; !oom && r < rows; r++) {
        Layby__V1__PaymentAuditRow *o = malloc(sizeof *o);
        if (o == NULL) {
            oom = true;
            break;
        }
        layby__v1__payment_audit_row__init(o);
        a->orders[a->n_orders++] = o;
        o->order_id = strdup(PQgetvalue(res, r, 0));
        int64_t *cols[] = { &o->captures, &o->charged, &o->refunded, &o->refunded_on_charges,
                            &o->updated_ms };
        for (size_t c = 0; c < LB_COUNTOF(cols); c++)
            *cols[c] = atoll(PQgetvalue(res, r, (int)c + 1));
        oom = o->order_id == NULL;
    }
    /* a full page may have a next one; the caller asks until one is short */
    if (!oom)
        a->next_order_id =
            strdup(rows > 0 && rows == atoi(lim) ? PQgetvalue(res, rows - 1, 0) : "");
    PQclear(res);
    return oom || a->next_order_id == NULL ? lb_err_set(err, LB_ERR_NOMEM, "audit orders") : LB_OK;
}

lb_status
payment_audit(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__GetPaymentAudit *g = (const Layby__V1__GetPaymentAudit *)req;
    char lim[16];
    lb_status st = svc_audit_page(lim, g->after_order_id, g->limit, err);
    if (st != LB_OK)
        return st;
    Layby__V1__PaymentAudit *a = malloc(sizeof *a);
    if (a == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "audit");
    layby__v1__payment_audit__init(a);
    store *s = svc_query_store(q);
    if (g->after_order_id[0] == '\0')
        st = totals_fill(a, s, err);
    if (st == LB_OK)
        st = orders_fill(a, s, g->after_order_id, lim, err);
    if (st != LB_OK) {
        protobuf_c_message_free_unpacked(&a->base, NULL);
        return st;
    }
    *reply = &a->base;
    return LB_OK;
}
