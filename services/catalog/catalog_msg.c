/* catalog_msg.c - builds every message the catalog sends (STYLE §7): products
 * for replies and events, and the outcome events of stock operations. Events
 * are built on the stack from borrowed strings: svc_emit() copies them. */
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
    return product_new(
        out, PQgetvalue(r, row, CATALOG_COL_ID), PQgetvalue(r, row, CATALOG_COL_NAME),
        atoll(PQgetvalue(r, row, CATALOG_COL_PRICE)), PQgetvalue(r, row, CATALOG_COL_DETAILS),
        PQgetvalue(r, row, CATALOG_COL_CATEGORY), atoll(PQgetvalue(r, row, CATALOG_COL_STOCK)),
        PQgetvalue(r, row, CATALOG_COL_CREATED), err);
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

/* --- stock outcome events -------------------------------------------------- */

static lb_status
emit(svc_batch *b, const bus_envelope *cause, const char *subject, const ProtobufCMessage *m,
     lb_err *err)
{
    bus_envelope env;
    bus_envelope_init(&env, m->descriptor, cause);
    return svc_emit(b, subject, &env, m, err);
}

lb_status
catalog_msg_emit_reserved(svc_batch *b, const bus_envelope *cause, const catalog_saga_ref *ref,
                          const catalog_line *lines, size_t n, lb_err *err)
{
    Layby__V1__ReservedLine stack_lines[16];
    Layby__V1__ReservedLine *ls = stack_lines;
    Layby__V1__ReservedLine *stack_ptrs[16];
    Layby__V1__ReservedLine **ptrs = stack_ptrs;
    if (n > LB_COUNTOF(stack_lines)) {
        ls = malloc(n * sizeof *ls);
        ptrs = malloc(n * sizeof *ptrs);
        if (ls == NULL || ptrs == NULL) {
            free(ls);
            free(ptrs);
            return lb_err_set(err, LB_ERR_NOMEM, "reserved lines");
        }
    }
    Layby__V1__StockReserved ev = LAYBY__V1__STOCK_RESERVED__INIT;
    ev.saga_id = (char *)ref->saga_id;
    ev.step = ref->step;
    ev.attempt = ref->attempt;
    ev.order_id = (char *)ref->order_id;
    for (size_t i = 0; i < n; i++) {
        layby__v1__reserved_line__init(&ls[i]);
        ls[i].product_id = (char *)lines[i].product_id;
        ls[i].quantity = lines[i].quantity;
        ls[i].name = (char *)lines[i].name;
        ls[i].unit_price = lines[i].unit_price;
        ev.total += lines[i].quantity * lines[i].unit_price;
        ptrs[i] = &ls[i];
    }
    ev.n_lines = n;
    ev.lines = ptrs;
    lb_status st = emit(b, cause, SUBJ_STOCK_RESERVED, &ev.base, err);
    if (ls != stack_lines) {
        free(ls);
        free(ptrs);
    }
    return st;
}

lb_status
catalog_msg_emit_rejected(svc_batch *b, const bus_envelope *cause, const catalog_saga_ref *ref,
                          lb_status code, const char *reason, const char *short_ids, lb_err *err)
{
    /* short_ids is "id,id,...": split into a copy (at most CATALOG_LINES_MAX ids). */
    char *copy = strdup(short_ids ? short_ids : "");
    char *ids[CATALOG_LINES_MAX];
    size_t n = 0;
    if (copy == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "short ids");
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t != NULL && n < LB_COUNTOF(ids);
         t = strtok_r(NULL, ",", &save))
        ids[n++] = t;
    Layby__V1__StockRejected ev = LAYBY__V1__STOCK_REJECTED__INIT;
    ev.saga_id = (char *)ref->saga_id;
    ev.step = ref->step;
    ev.attempt = ref->attempt;
    ev.order_id = (char *)ref->order_id;
    ev.n_short_product_ids = n;
    ev.short_product_ids = ids;
    ev.code = (char *)lb_status_code(code);
    ev.reason = (char *)(reason ? reason : "");
    ev.final = true;
    lb_status st = emit(b, cause, SUBJ_STOCK_REJECTED, &ev.base, err);
    free(copy);
    return st;
}

/* Sets string or uint32 field `name` of m, if m has it. */
static void
field_set(ProtobufCMessage *m, const char *name, const void *v)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (f == NULL)
        return;
    void *at = (char *)m + f->offset;
    if (f->type == PROTOBUF_C_TYPE_STRING)
        *(char **)at = (char *)v;
    else if (f->type == PROTOBUF_C_TYPE_UINT32)
        *(uint32_t *)at = *(const uint32_t *)v;
}

lb_status
catalog_msg_emit_done(svc_batch *b, const bus_envelope *cause, const char *subject,
                      const ProtobufCMessageDescriptor *desc, const catalog_saga_ref *ref,
                      lb_err *err)
{
    /* StockReleased, StockConfirmed and StockReturned share one shape. */
    union {
        Layby__V1__StockReleased a;
        Layby__V1__StockConfirmed b;
        Layby__V1__StockReturned c;
    } mem;
    if (desc->sizeof_message > sizeof mem)
        return lb_err_set(err, LB_ERR_INTERNAL, "%s is larger than expected", desc->name);
    ProtobufCMessage *m = (ProtobufCMessage *)&mem;
    protobuf_c_message_init(desc, m);
    field_set(m, "saga_id", ref->saga_id);
    field_set(m, "step", &ref->step);
    field_set(m, "attempt", &ref->attempt);
    field_set(m, "order_id", ref->order_id);
    return emit(b, cause, subject, m, err);
}

lb_status
catalog_msg_emit_op_failed(svc_batch *b, const bus_envelope *cause, const char *subject,
                           const catalog_saga_ref *ref, const char *op, lb_status code,
                           const char *reason, lb_err *err)
{
    Layby__V1__StockOpFailed ev = LAYBY__V1__STOCK_OP_FAILED__INIT;
    ev.saga_id = (char *)ref->saga_id;
    ev.step = ref->step;
    ev.attempt = ref->attempt;
    ev.order_id = (char *)ref->order_id;
    ev.op = (char *)op;
    ev.code = (char *)lb_status_code(code);
    ev.reason = (char *)(reason ? reason : "");
    ev.final = true;
    return emit(b, cause, subject, &ev.base, err);
}

lb_status
catalog_msg_emit_stock_changed(svc_batch *b, const bus_envelope *cause, const char *product_id,
                               int64_t available, int64_t version, lb_err *err)
{
    Layby__V1__ProductStockChanged ev = LAYBY__V1__PRODUCT_STOCK_CHANGED__INIT;
    ev.product_id = (char *)product_id;
    ev.stock_available = available;
    ev.version = version;
    return emit(b, cause, SUBJ_PRODUCT_STOCK_CHANGED, &ev.base, err);
}
