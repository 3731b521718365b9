/* order_audit.c - layby.qry.order.audit (DESIGN §7): what `layby-ctl audit`
 * needs from the order service to check money and stock across services:
 * orders by status with their totals, and every order's status, total and
 * last change, a page at a time in id order (the catalog and payment
 * services page the same way, svc_audit_reply(), so the tool matches the
 * pages by order id). Read-only. */
#include <stdlib.h>
#include <string.h>

#include "order.h"

static bool
status_fill(ProtobufCMessage *m, const PGresult *res, int r)
{
    Layby__V1__OrderStatusTotals *t = (Layby__V1__OrderStatusTotals *)m;
    t->status = strdup(PQgetvalue(res, r, 0));
    int64_t *const cols[] = { &t->orders, &t->total };
    svc_audit_ints(cols, LB_COUNTOF(cols), res, r, 1);
    return t->status != NULL;
}

static bool
order_fill(ProtobufCMessage *m, const PGresult *res, int r)
{
    Layby__V1__OrderAuditRow *o = (Layby__V1__OrderAuditRow *)m;
    o->order_id = strdup(PQgetvalue(res, r, 0));
    o->status = strdup(PQgetvalue(res, r, 1));
    int64_t *const cols[] = { &o->total, &o->updated_ms };
    svc_audit_ints(cols, LB_COUNTOF(cols), res, r, 2);
    return o->order_id != NULL && o->status != NULL;
}

lb_status
order_audit(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__GetOrderAudit *g = (const Layby__V1__GetOrderAudit *)req;
    const svc_audit_def def = {
        .reply = &layby__v1__order_audit__descriptor,
        .head_field = "by_status",
        .head_stmt = ORDER_SQL(ORDER_SQL_AUDIT_BY_STATUS),
        .head_fill = status_fill,
        .orders_stmt = ORDER_SQL(ORDER_SQL_AUDIT_ORDERS),
        .orders_fill = order_fill,
    };
    return svc_audit_reply(q, &def, g->after_order_id, g->limit, reply, err);
}
