/* catalog_audit.c - layby.qry.catalog.audit (DESIGN §7): what `layby-ctl
 * audit` needs from the catalog to check stock conservation.
 *
 * Per product, the counters (initial_stock + restocked = stock_available +
 * reserved + sold - returned) and, from the same snapshot, what the order
 * ledger (stock_orders x stock_lines) says reserved, sold and returned must
 * be; per order, its stock status, units and their value, a page at a time
 * in id order, so the operator's tool can match them with the order and
 * payment services' pages. Read-only; nothing here changes a row. */
#include <stdlib.h>
#include <string.h>

#include "catalog.h"

static lb_status
products_fill(Layby__V1__StockAudit *a, store *s, lb_err *err)
{
    PGresult *res = NULL;
    lb_status st = store_exec(s, &res, "catalog_stock_audit", 0, NULL, err);
    if (st != LB_OK)
        return st;
    int rows = PQntuples(res);
    a->products = calloc((size_t)rows + 1, sizeof *a->products);
    bool oom = a->products == NULL;
    for (int r = 0; !oom && r < rows; r++) {
        Layby__V1__ProductStockTotals *t = malloc(sizeof *t);
        if (t == NULL) {
            oom = true;
            break;
        }
        layby__v1__product_stock_totals__init(t);
        a->products[a->n_products++] = t;
        t->product_id = strdup(PQgetvalue(res, r, 0));
        oom = t->product_id == NULL;
        int64_t *cols[] = { &t->initial,         &t->restocked,   &t->available,
                            &t->reserved,        &t->sold,        &t->returned,
                            &t->ledger_reserved, &t->ledger_sold, &t->ledger_returned };
        for (size_t c = 0; c < LB_COUNTOF(cols); c++)
            *cols[c] = atoll(PQgetvalue(res, r, (int)c + 1));
    }
    PQclear(res);
    return oom ? lb_err_set(err, LB_ERR_NOMEM, "audit products") : LB_OK;
}

static lb_status
orders_fill(Layby__V1__StockAudit *a, store *s, const char *after, const char *lim, lb_err *err)
{
    PGresult *res = NULL;
    const char *p[] = { after, lim };
    lb_status st = store_exec(s, &res, "catalog_stock_audit_orders", 2, p, err);
    if (st != LB_OK)
        return st;
    int rows = PQntuples(res);
    a->orders = calloc((size_t)rows + 1, sizeof *a->orders);
    bool oom = a->orders == NULL;
    for (int r = 0; !oom && r < rows; r++) {
        Layby__V1__OrderStockRow *o = malloc(sizeof *o);
        if (o == NULL) {
            oom = true;
            break;
        }
        layby__v1__order_stock_row__init(o);
        a->orders[a->n_orders++] = o;
        o->order_id = strdup(PQgetvalue(res, r, 0));
        o->status = strdup(PQgetvalue(res, r, 1));
        o->units = atoll(PQgetvalue(res, r, 2));
        o->amount = atoll(PQgetvalue(res, r, 3));
        o->updated_ms = atoll(PQgetvalue(res, r, 4));
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
catalog_stock_audit(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                    lb_err *err)
{
    const Layby__V1__GetStockAudit *g = (const Layby__V1__GetStockAudit *)req;
    char lim[16];
    lb_status st = svc_audit_page(lim, g->after_order_id, g->limit, err);
    if (st != LB_OK)
        return st;
    Layby__V1__StockAudit *a = malloc(sizeof *a);
    if (a == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "audit");
    layby__v1__stock_audit__init(a);
    store *s = svc_query_store(q);
    if (g->after_order_id[0] == '\0')
        st = products_fill(a, s, err);
    if (st == LB_OK)
        st = orders_fill(a, s, g->after_order_id, lim, err);
    if (st != LB_OK) {
        protobuf_c_message_free_unpacked(&a->base, NULL);
        return st;
    }
    *reply = &a->base;
    return LB_OK;
}
