/* catalog_msg.c - builds every message the catalog sends (STYLE §7): products
 * for replies and events. */
#include "catalog.h"

#include <stdlib.h>
#include <string.h>

static char *
dup_or_null(const char *s, bool *oom)
{
    char *d = strdup(s ? s : "");
    if (d == NULL)
        *oom = true;
    return d;
}

static lb_status
product_new(Layby__V1__Product **out, const char *id, const char *name, int64_t price,
            const char *details, const char *category, int64_t stock, const char *created,
            lb_err *err)
{
    Layby__V1__Product *p = malloc(sizeof *p);
    if (p == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "product");
    layby__v1__product__init(p);
    bool oom = false;
    p->product_id = dup_or_null(id, &oom);
    p->name = dup_or_null(name, &oom);
    p->details = dup_or_null(details, &oom);
    p->category = dup_or_null(category, &oom);
    p->created_at = dup_or_null(created, &oom);
    p->price = price;
    p->stock_available = stock;
    if (oom) {
        protobuf_c_message_free_unpacked(&p->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "product fields");
    }
    *out = p;
    return LB_OK;
}

lb_status
catalog_msg_product_from_row(Layby__V1__Product **out, const PGresult *r, int row, lb_err *err)
{
    return product_new(out, PQgetvalue(r, row, 0), PQgetvalue(r, row, 1),
                       atoll(PQgetvalue(r, row, 2)), PQgetvalue(r, row, 3), PQgetvalue(r, row, 4),
                       atoll(PQgetvalue(r, row, 5)), PQgetvalue(r, row, 6), err);
}

lb_status
catalog_msg_product_from_draft(Layby__V1__Product **out, const char *product_id,
                               const Layby__V1__ProductDraft *d, int64_t created_ms, lb_err *err)
{
    char created[32];
    lb_time_format(created, sizeof created, created_ms);
    return product_new(out, product_id, d->name, d->price, d->details, d->category, d->stock,
                       created, err);
}
