/* catalog_handlers.c - the catalog's handler and query tables and their code.
 *
 * create_product is idempotent per product id (chosen by the sender): a repeat
 * inserts nothing, emits nothing and answers with the stored product, so a
 * retried HTTP request (Idempotency-Key) or a re-sent command has one effect. */
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "engine/log.h"

/* --- validation ---------------------------------------------------------- */

typedef struct text_rule {
    const char *field; /* JSON name */
    size_t offset;     /* char * in Layby__V1__ProductDraft */
    size_t min, max;   /* code points */
} text_rule;

/* clang-format off */
static const text_rule draft_text_rules[] = {
    { "name",     offsetof(Layby__V1__ProductDraft, name),     1, CATALOG_NAME_MAX },
    { "details",  offsetof(Layby__V1__ProductDraft, details),  0, CATALOG_DETAILS_MAX },
    { "category", offsetof(Layby__V1__ProductDraft, category), 1, CATALOG_CATEGORY_MAX },
};
/* clang-format on */

static bool
blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

lb_status
catalog_draft_validate(const Layby__V1__ProductDraft *d, lb_err *err)
{
    for (size_t i = 0; i < LB_COUNTOF(draft_text_rules); i++) {
        const text_rule *r = &draft_text_rules[i];
        const char *v = *(char *const *)((const char *)d + r->offset);
        if (v == NULL || !lb_utf8_valid(v))
            return lb_err_field(err, LB_ERR_INVALID, r->field, "%s must be UTF-8 text", r->field);
        size_t len = lb_utf8_len(v);
        if (len < r->min || (r->min > 0 && blank(v)))
            return lb_err_field(err, LB_ERR_INVALID, r->field, "%s must not be empty", r->field);
        if (len > r->max)
            return lb_err_field(err, LB_ERR_INVALID, r->field, "%s is longer than %zu characters",
                                r->field, r->max);
    }
    if (d->price <= 0 || d->price > CATALOG_PRICE_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "price", "price must be between 1 and %lld won",
                            CATALOG_PRICE_MAX);
    if (d->stock < 0 || d->stock > CATALOG_STOCK_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "stock", "stock must be between 0 and %lld",
                            CATALOG_STOCK_MAX);
    return LB_OK;
}

/* --- create_product ------------------------------------------------------ */

/* Finds item index by product id among items[0..n). */
static svc_item *
item_by_product(svc_item *items, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        const Layby__V1__CreateProduct *c = (const Layby__V1__CreateProduct *)items[i].msg;
        if (items[i].outcome == LB_OK && items[i].reply == NULL && strcmp(c->product_id, id) == 0)
            return &items[i];
    }
    return NULL;
}

static lb_status
emit_created(svc_batch *b, svc_item *it, lb_err *err)
{
    const Layby__V1__CreateProduct *c = (const Layby__V1__CreateProduct *)it->msg;
    Layby__V1__Product *p = NULL;
    lb_status st = catalog_msg_product_from_draft(&p, c->product_id, c->draft, it->now_ms, err);
    if (st != LB_OK)
        return st;
    Layby__V1__ProductCreated ev = LAYBY__V1__PRODUCT_CREATED__INIT;
    ev.product = p;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__product_created__descriptor, it->env);
    st = svc_emit(b, SUBJ_PRODUCT_CREATED, &env, &ev.base, err);
    if (st == LB_OK)
        it->reply = &p->base; /* the item owns it now */
    else
        protobuf_c_message_free_unpacked(&p->base, NULL);
    return st;
}

static lb_status
catalog_product_create(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    store_array ids = { 0 }, names = { 0 }, prices = { 0 }, details = { 0 }, cats = { 0 },
                stocks = { 0 }, times = { 0 };
    store_array *cols[] = { &ids, &names, &prices, &details, &cats, &stocks, &times };
    PGresult *res = NULL;
    lb_status st = LB_OK;
    size_t valid = 0;
    for (size_t c = 0; c < LB_COUNTOF(cols); c++)
        store_array_begin(cols[c]);
    for (size_t i = 0; i < n; i++) {
        const Layby__V1__CreateProduct *c = (const Layby__V1__CreateProduct *)items[i].msg;
        if (!id_valid(c->product_id)) {
            items[i].outcome = lb_err_field(&items[i].why, LB_ERR_INVALID, "productId",
                                            "productId must be a UUID");
            continue;
        }
        if (c->draft == NULL) {
            items[i].outcome =
                lb_err_field(&items[i].why, LB_ERR_INVALID, "draft", "product fields missing");
            continue;
        }
        if ((items[i].outcome = catalog_draft_validate(c->draft, &items[i].why)) != LB_OK)
            continue;
        char when[32];
        lb_time_format(when, sizeof when, items[i].now_ms);
        store_array_text(&ids, c->product_id);
        store_array_text(&names, c->draft->name);
        store_array_int(&prices, c->draft->price);
        store_array_text(&details, c->draft->details);
        store_array_text(&cats, c->draft->category);
        store_array_int(&stocks, c->draft->stock);
        store_array_text(&times, when);
        valid++;
    }
    if (valid == 0)
        goto out;
    bool oom = false;
    for (size_t c = 0; c < LB_COUNTOF(cols); c++) {
        store_array_end(cols[c]);
        oom |= cols[c]->oom;
    }
    if (oom) {
        st = lb_err_set(err, LB_ERR_NOMEM, "product arrays");
        goto out;
    }
    const char *params[] = { ids.p, names.p, prices.p, details.p, cats.p, stocks.p, times.p };
    store *s = svc_batch_store(b);
    if ((st = store_exec(s, &res, "catalog_products_insert", 7, params, err)) != LB_OK)
        goto out;
    /* Newly inserted: announce and answer from the command itself. */
    size_t inserted = (size_t)PQntuples(res);
    for (int r = 0; r < PQntuples(res); r++) {
        svc_item *it = item_by_product(items, n, PQgetvalue(res, r, 0));
        if (it != NULL && (st = emit_created(b, it, err)) != LB_OK)
            goto out;
    }
    PQclear(res);
    res = NULL;
    /* Repeats (or a second command for one id in this batch): answer with what is stored. */
    if (inserted < valid) {
        const char *idp[] = { ids.p };
        if ((st = store_exec(s, &res, "catalog_products_by_ids", 1, idp, err)) != LB_OK)
            goto out;
        for (int r = 0; r < PQntuples(res); r++) {
            svc_item *it;
            while ((it = item_by_product(items, n, PQgetvalue(res, r, 0))) != NULL) {
                Layby__V1__Product *p = NULL;
                if ((st = catalog_msg_product_from_row(&p, res, r, err)) != LB_OK)
                    goto out;
                it->reply = &p->base;
            }
        }
    }
out:
    PQclear(res);
    for (size_t c = 0; c < LB_COUNTOF(cols); c++)
        store_array_free(cols[c]);
    return st;
}

/* --- queries ------------------------------------------------------------- */

static lb_status
catalog_product_get(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                    lb_err *err)
{
    const Layby__V1__GetProduct *g = (const Layby__V1__GetProduct *)req;
    if (!id_valid(g->product_id))
        return lb_err_field(err, LB_ERR_INVALID, "productId", "productId must be a UUID");
    const char *params[] = { g->product_id };
    PGresult *res = NULL;
    lb_status st = store_exec(svc_query_store(q), &res, "catalog_product_get", 1, params, err);
    if (st != LB_OK)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no product %s", g->product_id);
    }
    Layby__V1__Product *p = NULL;
    st = catalog_msg_product_from_row(&p, res, 0, err);
    PQclear(res);
    if (st == LB_OK)
        *reply = &p->base;
    return st;
}

/* --- tables -------------------------------------------------------------- */

/* clang-format off */
static const svc_handler catalog_handlers[] = {
    /* subject                      body type                                  handler */
    { SUBJ_CATALOG_CREATE_PRODUCT, &layby__v1__create_product__descriptor, catalog_product_create },
};

static const svc_query_route catalog_queries[] = {
    { SUBJ_CATALOG_GET_PRODUCT,    &layby__v1__get_product__descriptor,    catalog_product_get },
};

static const svc_consumer catalog_consumers[] = {
    { "LAYBY_CMD", "catalog" },
};
/* clang-format on */

const svc_def catalog_def = {
    .name = "catalog",
    .consumers = catalog_consumers,
    .n_consumers = LB_COUNTOF(catalog_consumers),
    .handlers = catalog_handlers,
    .n_handlers = LB_COUNTOF(catalog_handlers),
    .queries = catalog_queries,
    .n_queries = LB_COUNTOF(catalog_queries),
    .stmts = catalog_stmts,
    .n_stmts = CATALOG_STMTS_COUNT,
};
