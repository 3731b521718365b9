/* delivery_audit.c - layby.qry.delivery.audit (DESIGN §7): each order's
 * delivery status, a page at a time in order id order (svc_audit_reply()),
 * so `layby-ctl audit` can check that a cancelled order's delivery was
 * cancelled and a paid order's exists. Read-only. */
#include <stdlib.h>
#include <string.h>

#include "delivery.h"

static bool
order_fill(ProtobufCMessage *m, const PGresult *res, int r)
{
    Layby__V1__DeliveryAuditRow *o = (Layby__V1__DeliveryAuditRow *)m;
    o->order_id = strdup(PQgetvalue(res, r, 0));
    o->status = strdup(PQgetvalue(res, r, 1));
    o->updated_ms = atoll(PQgetvalue(res, r, 2));
    return o->order_id != NULL && o->status != NULL;
}

lb_status
delivery_audit(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__GetDeliveryAudit *g = (const Layby__V1__GetDeliveryAudit *)req;
    const svc_audit_def def = {
        .reply = &layby__v1__delivery_audit__descriptor,
        .orders_stmt = DELIVERY_SQL(DELIVERY_SQL_AUDIT),
        .orders_fill = order_fill,
    };
    return svc_audit_reply(q, &def, g->after_order_id, g->limit, reply, err);
}
