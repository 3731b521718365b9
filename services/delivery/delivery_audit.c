/* delivery_audit.c - layby.qry.delivery.audit (DESIGN §7): each order's
 * delivery status, a page at a time in order id order, so `layby-ctl audit`
 * can check that a cancelled order's delivery was cancelled and a paid
 * order's exists. Read-only. */
#include <stdlib.h>
#include <string.h>

#include "delivery.h"

lb_status
delivery_audit(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__GetDeliveryAudit *g = (const Layby__V1__GetDeliveryAudit *)req;
    char lim[16];
    lb_status st = svc_audit_page(lim, g->after_order_id, g->limit, err);
    if (st != LB_OK)
        return st;
    PGresult *res = NULL;
    const char *p[] = { g->after_order_id, lim };
    if ((st = store_exec(svc_query_store(q), &res, DELIVERY_SQL(DELIVERY_SQL_AUDIT), 2, p, err)) !=
        LB_OK)
        return st;
    int rows = PQntuples(res);
    Layby__V1__DeliveryAudit *a = malloc(sizeof *a);
    bool oom = a == NULL;
    if (!oom) {
        layby__v1__delivery_audit__init(a);
        a->orders = calloc((size_t)rows + 1, sizeof *a->orders);
        oom = a->orders == NULL;
    }
    for (int r = 0; !oom && r < rows; r++) {
        Layby__V1__DeliveryAuditRow *o = malloc(sizeof *o);
        if (o == NULL) {
            oom = true;
            break;
        }
        layby__v1__delivery_audit_row__init(o);
        a->orders[a->n_orders++] = o;
        o->order_id = strdup(PQgetvalue(res, r, 0));
        o->status = strdup(PQgetvalue(res, r, 1));
        o->updated_ms = atoll(PQgetvalue(res, r, 2));
        oom = o->order_id == NULL || o->status == NULL;
    }
    /* a full page may have a next one; the caller asks until one is short */
    if (!oom) {
        a->next_order_id =
            strdup(rows > 0 && rows == atoi(lim) ? PQgetvalue(res, rows - 1, 0) : "");
        oom = a->next_order_id == NULL;
    }
    PQclear(res);
    if (oom) {
        if (a != NULL)
            protobuf_c_message_free_unpacked(&a->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "delivery audit");
    }
    *reply = &a->base;
    return LB_OK;
}
