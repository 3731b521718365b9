/* catalog_audit.c - layby.qry.catalog.audit (DESIGN §7): what `layby-ctl
 * audit` needs from the catalog to check stock conservation.
 *
 * Per product, the counters (initial_stock + restocked = stock_available +
 * reserved + sold - returned) and, from the same snapshot, what the order
 * ledger (stock_orders x stock_lines) says reserved, sold and returned must
 * be; per order, its stock status, units and their value, a page at a time
 * in id order, so the operator's tool can match them with the order and
 * payment services' pages (svc_audit_reply()). Read-only; nothing here
 * changes a row. */
#include <stdlib.h>
#include <string.h>

#include "catalog.h"

static bool
product_fill(ProtobufCMessage *m, const PGresult *res, int r)
{
    Layby__V1__ProductStockTotals *t = (Layby__V1__ProductStockTotals *)m;
    t->product_id = strdup(PQgetvalue(res, r, 0));
    int64_t *const cols[] = { &t->initial,         &t->restocked,   &t->available,
                              &t->reserved,        &t->sold,        &t->returned,
                              &t->ledger_reserved, &t->ledger_sold, &t->ledger_returned };
    svc_audit_ints(cols, LB_COUNTOF(cols), res, r, 1);
    return t->product_id != NULL;
}

static bool
order_fill(ProtobufCMessage *m, const PGresult *res, int r)
{
    Layby__V1__OrderStockRow *o = (Layby__V1__OrderStockRow *)m;
    o->order_id = strdup(PQgetvalue(res, r, 0));
    o->status = strdup(PQgetvalue(res, r, 1));
    int64_t *const cols[] = { &o->units, &o->amount, &o->updated_ms };
    svc_audit_ints(cols, LB_COUNTOF(cols), res, r, 2);
    return o->order_id != NULL && o->status != NULL;
}

lb_status
catalog_stock_audit(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                    lb_err *err)
{
    const Layby__V1__GetStockAudit *g = (const Layby__V1__GetStockAudit *)req;
    static const svc_audit_def def = {
        .reply = &layby__v1__stock_audit__descriptor,
        .head_field = "products",
        .head_stmt = "catalog_stock_audit",
        .head_fill = product_fill,
        .orders_stmt = "catalog_stock_audit_orders",
        .orders_fill = order_fill,
    };
    return svc_audit_reply(q, &def, g->after_order_id, g->limit, reply, err);
}
