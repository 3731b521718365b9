/* order_audit.c - layby.qry.order.audit (DESIGN §7): what `layby-ctl audit`
 * needs from the order service to check money and stock across services:
 * orders by status with their totals, and every order's status, total and
 * last change, a page at a time in id order (the catalog and payment
 * services page the same way, so the tool matches the pages by order id).
 * Read-only. */
#include <stdlib.h>
#include <string.h>

#include "order.h"

static lb_status
by_status_fill(Layby__V1__OrderAudit *a, store *s, lb_err *err)
{
    PGresult *res = NULL;
    lb_status st = store_exec(s, &res, ORDER_SQL(ORDER_SQL_AUDIT_BY_STATUS), 0, NULL, err);
    if (st != LB_OK)
        return st;
    int rows = PQntuples(res);
    a->by_status = calloc((size_t)rows + 1, sizeof *a->by_status);
    bool oom = a->by_status == NULL;
    for (int r = 0; !oom && r < rows; r++) {
        Layby__V1__OrderStatusTotals *t = malloc(sizeof *t);
        if (t == NULL) {
            oom = true;
            break;
        }
        layby__v1__order_status_totals__init(t);
        a->by_status[a->n_by_status++] = t;
        t->status = strdup(PQgetvalue(res, r, 0));
        t->orders = atoll(PQgetvalue(res, r, 1));
        t->total = atoll(PQgetvalue(res, r, 2));
        oom = t->status == NULL;
    }
    PQclear(res);
    return oom ? lb_err_set(err, LB_ERR_NOMEM, "audit by status") : LB_OK;
}

static lb_status
orders_fill(Layby__V1__OrderAudit *a, store *s, const char *after, const char *lim, lb_err *err)
{
    PGresult *res = NULL;
    const char *p[] = { after, lim };
    lb_status st = store_exec(s, &res, ORDER_SQL(ORDER_SQL_AUDIT_ORDERS), 2, p, err);
    if (st != LB_OK)
        return st;
    int rows = PQntuples(res);
    a->orders = calloc((size_t)rows + 1, sizeof *a->orders);
    bool oom = a->orders == NULL;
    for (int r = 0; !oom && r < rows; r++) {
        Layby__V1__OrderAuditRow *o = malloc(sizeof *o);
        if (o == NULL) {
            oom = true;
            break;
        }
        layby__v1__order_audit_row__init(o);
        a->orders[a->n_orders++] = o;
        o->order_id = strdup(PQgetvalue(res, r, 0));
        o->status = strdup(PQgetvalue(res, r, 1));
        o->total = atoll(PQgetvalue(res, r, 2));
        o->updated_ms = atoll(PQgetvalue(res, r, 3));
        oom = o->order_id == NULL || o->status == NULL;
    }
    /* a full page may have a next one; the caller asks until one is short */
    if (!oom)
        a->next_order_id =
            strdup(rows > 0 && rows == atoi(lim) ? PQgetvalue(res, rows - 1, 0) : "");
    PQclear(res);
    return oom || a->next_order_id == NULL ? lb_err_set(err, LB_ERR_NOMEM, "audit orders") : LB_OK;
}

lb_status
order_audit(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__GetOrderAudit *g = (const Layby__V1__GetOrderAudit *)req;
    char lim[16];
    lb_status st = svc_audit_page(lim, g->after_order_id, g->limit, err);
    if (st != LB_OK)
        return st;
    Layby__V1__OrderAudit *a = malloc(sizeof *a);
    if (a == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "audit");
    layby__v1__order_audit__init(a);
    store *s = svc_query_store(q);
    if (g->after_order_id[0] == '\0')
        st = by_status_fill(a, s, err);
    if (st == LB_OK)
        st = orders_fill(a, s, g->after_order_id, lim, err);
    if (st != LB_OK) {
        protobuf_c_message_free_unpacked(&a->base, NULL);
        return st;
    }
    *reply = &a->base;
    return LB_OK;
}
