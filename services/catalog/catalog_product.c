/* catalog_product.c - products: registration, detail, keyset pages with their
 * opaque cursor.
 *
 * create_product is idempotent per product id (chosen by the sender): a repeat
 * inserts nothing, emits nothing and answers with the stored product, so a
 * retried HTTP request (Idempotency-Key) or a re-sent command has one effect.
 *
 * Pages are ordered by (created_at, product_id), a key that never changes, so
 * a walk with the cursor sees every product that existed when it began
 * exactly once, however many are added meanwhile (they sort after it). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "engine/id.h"
#include "engine/page_cursor.h"

/* --- validation ------------------------------------------------------------ */

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

/* --- create_product ----------------------------------------------------------- */

/* The insert's columns, one array each, built from the valid commands. */
enum {
    COL_ID,
    COL_NAME,
    COL_PRICE,
    COL_DETAILS,
    COL_CATEGORY,
    COL_STOCK,
    COL_TIME,
    COL__COUNT
};

typedef struct draft_cols {
    store_array a[COL__COUNT];
    size_t valid; /* commands that passed validation */
} draft_cols;

/* Finds the first unanswered valid item for product id among items[0..n). */
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

/* Refuses malformed commands (item outcome) and adds the others to the columns. */
static void
drafts_collect(draft_cols *dc, svc_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const Layby__V1__CreateProduct *c = (const Layby__V1__CreateProduct *)items[i].msg;
        lb_err *why = &items[i].why;
        if (!id_valid(c->product_id))
            items[i].outcome =
                lb_err_field(why, LB_ERR_INVALID, "productId", "productId must be a UUID");
        else if (c->draft == NULL)
            items[i].outcome = lb_err_field(why, LB_ERR_INVALID, "draft", "product fields missing");
        else
            items[i].outcome = catalog_draft_validate(c->draft, why);
        if (items[i].outcome != LB_OK)
            continue;
        for (char *p = c->product_id; *p; p++) /* PostgreSQL prints uuids in lower case */
            if (*p >= 'A' && *p <= 'F')
                *p = (char)(*p - 'A' + 'a');
        char when[32];
        lb_time_format(when, sizeof when, items[i].now_ms);
        store_array_text(&dc->a[COL_ID], c->product_id);
        store_array_text(&dc->a[COL_NAME], c->draft->name);
        store_array_int(&dc->a[COL_PRICE], c->draft->price);
        store_array_text(&dc->a[COL_DETAILS], c->draft->details);
        store_array_text(&dc->a[COL_CATEGORY], c->draft->category);
        store_array_int(&dc->a[COL_STOCK], c->draft->stock);
        store_array_text(&dc->a[COL_TIME], when);
        dc->valid++;
    }
}

/* Announces a newly inserted product and answers its command from the command. */
static lb_status
created_emit(svc_batch *b, svc_item *it, lb_err *err)
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

/* Inserts the new products and announces those the insert returned. */
static lb_status
drafts_insert(svc_batch *b, draft_cols *dc, svc_item *items, size_t n, size_t *inserted,
              lb_err *err)
{
    const char *params[COL__COUNT];
    for (size_t k = 0; k < COL__COUNT; k++) {
        store_array_end(&dc->a[k]);
        if (dc->a[k].oom)
            return lb_err_set(err, LB_ERR_NOMEM, "product arrays");
        params[k] = dc->a[k].p;
    }
    PGresult *res = NULL;
    lb_status st =
        store_exec(svc_batch_store(b), &res, "catalog_products_insert", COL__COUNT, params, err);
    *inserted = st == LB_OK ? (size_t)PQntuples(res) : 0;
    for (int r = 0; st == LB_OK && r < PQntuples(res); r++) {
        svc_item *it = item_by_product(items, n, PQgetvalue(res, r, 0));
        if (it != NULL)
            st = created_emit(b, it, err);
    }
    PQclear(res);
    return st;
}

/* Repeats (or a second command for one id in this batch): answer with what is stored. */
static lb_status
repeats_answer(svc_batch *b, const draft_cols *dc, svc_item *items, size_t n, lb_err *err)
{
    const char *idp[] = { dc->a[COL_ID].p };
    PGresult *res = NULL;
    lb_status st = store_exec(svc_batch_store(b), &res, "catalog_products_by_ids", 1, idp, err);
    for (int r = 0; st == LB_OK && r < PQntuples(res); r++) {
        svc_item *it;
        while (st == LB_OK && (it = item_by_product(items, n, PQgetvalue(res, r, 0))) != NULL) {
            Layby__V1__Product *p = NULL;
            if ((st = catalog_msg_product_from_row(&p, res, r, err)) == LB_OK)
                it->reply = &p->base;
        }
    }
    PQclear(res);
    return st;
}

lb_status
catalog_product_create(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    draft_cols dc = { .valid = 0 };
    size_t inserted = 0;
    lb_status st = LB_OK;
    for (size_t k = 0; k < COL__COUNT; k++)
        store_array_begin(&dc.a[k]);
    drafts_collect(&dc, items, n);
    if (dc.valid > 0 && (st = drafts_insert(b, &dc, items, n, &inserted, err)) == LB_OK &&
        inserted < dc.valid)
        st = repeats_answer(b, &dc, items, n, err);
    for (size_t k = 0; k < COL__COUNT; k++)
        store_array_free(&dc.a[k]);
    return st;
}

/* --- detail -------------------------------------------------------------------- */

lb_status
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

/* --- pages ------------------------------------------------------------------------ */

/* The ILIKE pattern for a substring search: %, _ and \ match themselves. */
static lb_status
pattern_make(char **out, const char *q, lb_err *err)
{
    size_t n = strlen(q);
    char *p = malloc(2 * n + 3);
    if (p == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "search pattern");
    size_t k = 0;
    p[k++] = '%';
    for (; *q; q++) {
        if (*q == '%' || *q == '_' || *q == '\\')
            p[k++] = '\\';
        p[k++] = *q;
    }
    p[k++] = '%';
    p[k] = '\0';
    *out = p;
    return LB_OK;
}

static lb_status
list_validate(const Layby__V1__ListProducts *l, lb_err *err)
{
    if (l->limit < 0 || l->limit > CATALOG_PAGE_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "limit", "limit must be between 1 and %d",
                            CATALOG_PAGE_MAX);
    if (!lb_utf8_valid(l->category) || lb_utf8_len(l->category) > CATALOG_CATEGORY_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "category", "category is not a valid category");
    if (!lb_utf8_valid(l->q) || lb_utf8_len(l->q) > CATALOG_Q_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "q",
                            "q must be UTF-8 text of at most %d characters", CATALOG_Q_MAX);
    return LB_OK;
}

static lb_status
page_build(Layby__V1__ProductPage **out, const PGresult *res, int limit,
           const Layby__V1__ListProducts *l, lb_err *err)
{
    Layby__V1__ProductPage *pg = malloc(sizeof *pg);
    if (pg == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "page");
    layby__v1__product_page__init(pg);
    int rows = PQntuples(res);
    int shown = rows > limit ? limit : rows;
    lb_status st = LB_OK;
    pg->items = calloc(shown ? (size_t)shown : 1, sizeof *pg->items);
    pg->next_cursor = calloc(1, PAGE_CURSOR_MAX);
    if (pg->items == NULL || pg->next_cursor == NULL) {
        st = lb_err_set(err, LB_ERR_NOMEM, "page");
        goto out;
    }
    for (int r = 0; r < shown; r++) {
        if ((st = catalog_msg_product_from_row(&pg->items[r], res, r, err)) != LB_OK)
            goto out;
        pg->n_items++;
    }
    if (rows > limit) /* one more than asked: there is a next page */
        page_cursor_encode(pg->next_cursor,
                           atoll(PQgetvalue(res, shown - 1, CATALOG_COL_CREATED_US)),
                           PQgetvalue(res, shown - 1, CATALOG_COL_ID), l->category, l->q);
out:
    if (st != LB_OK)
        protobuf_c_message_free_unpacked(&pg->base, NULL);
    else
        *out = pg;
    return st;
}

lb_status
catalog_product_list(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                     lb_err *err)
{
    const Layby__V1__ListProducts *l = (const Layby__V1__ListProducts *)req;
    lb_status st = list_validate(l, err);
    if (st != LB_OK)
        return st;
    int limit = l->limit ? l->limit : CATALOG_PAGE_DEFAULT;
    char after_us[24] = "", after_id[ID_STR_LEN] = "", lim[16];
    if (l->cursor[0] != '\0') {
        int64_t us = 0;
        if ((st = page_cursor_decode(l->cursor, l->category, l->q, &us, after_id, err)) != LB_OK)
            return st;
        snprintf(after_us, sizeof after_us, "%lld", (long long)us);
    }
    snprintf(lim, sizeof lim, "%d", limit + 1);
    char *pattern = NULL;
    if (l->q[0] != '\0' && (st = pattern_make(&pattern, l->q, err)) != LB_OK)
        return st;
    const char *params[] = { lim, after_us[0] ? after_us : NULL, after_id[0] ? after_id : NULL,
                             l->category[0] ? l->category : NULL, pattern };
    PGresult *res = NULL;
    st = store_exec(svc_query_store(q), &res, "catalog_products_page", 5, params, err);
    free(pattern);
    Layby__V1__ProductPage *pg = NULL;
    if (st == LB_OK && (st = page_build(&pg, res, limit, l, err)) == LB_OK)
        *reply = &pg->base;
    PQclear(res);
    return st;
}

/* --- product states (the edge read model's start) ---------------------------------- */

#define STATES_PAGE_MAX 1000

static lb_status
state_from_row(Layby__V1__ProductState **out, const PGresult *res, int r, lb_err *err)
{
    Layby__V1__ProductState *s = malloc(sizeof *s);
    if (s == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "product state");
    layby__v1__product_state__init(s);
    lb_status st = catalog_msg_product_from_row(&s->product, res, r, err);
    if (st != LB_OK) {
        free(s);
        return st;
    }
    s->version = atoll(PQgetvalue(res, r, CATALOG_COL_VERSION));
    s->created_us = atoll(PQgetvalue(res, r, CATALOG_COL_CREATED_US));
    *out = s;
    return LB_OK;
}

static lb_status
states_build(Layby__V1__ProductStates **out, const PGresult *res, int limit, lb_err *err)
{
    Layby__V1__ProductStates *ps = malloc(sizeof *ps);
    if (ps == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "product states");
    layby__v1__product_states__init(ps);
    int rows = PQntuples(res);
    int shown = rows > limit ? limit : rows;
    lb_status st = LB_OK;
    ps->items = calloc(shown ? (size_t)shown : 1, sizeof *ps->items);
    ps->next_cursor = calloc(1, PAGE_CURSOR_MAX);
    if (ps->items == NULL || ps->next_cursor == NULL) {
        st = lb_err_set(err, LB_ERR_NOMEM, "product states");
        goto out;
    }
    for (int r = 0; r < shown; r++) {
        if ((st = state_from_row(&ps->items[r], res, r, err)) != LB_OK)
            goto out;
        ps->n_items++;
    }
    if (rows > limit)
        page_cursor_encode(ps->next_cursor,
                           atoll(PQgetvalue(res, shown - 1, CATALOG_COL_CREATED_US)),
                           PQgetvalue(res, shown - 1, CATALOG_COL_ID), "", "");
out:
    if (st != LB_OK)
        protobuf_c_message_free_unpacked(&ps->base, NULL);
    else
        *out = ps;
    return st;
}

lb_status
catalog_product_states(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                       lb_err *err)
{
    const Layby__V1__ListProductStates *l = (const Layby__V1__ListProductStates *)req;
    if (l->limit < 0 || l->limit > STATES_PAGE_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "limit", "limit must be between 1 and %d",
                            STATES_PAGE_MAX);
    int limit = l->limit ? l->limit : STATES_PAGE_MAX;
    char after_us[24] = "", after_id[ID_STR_LEN] = "", lim[16];
    lb_status st;
    if (l->cursor[0] != '\0') {
        int64_t us = 0;
        if ((st = page_cursor_decode(l->cursor, "", "", &us, after_id, err)) != LB_OK)
            return st;
        snprintf(after_us, sizeof after_us, "%lld", (long long)us);
    }
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = { lim, after_us[0] ? after_us : NULL, after_id[0] ? after_id : NULL,
                             NULL, NULL };
    PGresult *res = NULL;
    st = store_exec(svc_query_store(q), &res, "catalog_products_page", 5, params, err);
    Layby__V1__ProductStates *ps = NULL;
    if (st == LB_OK && (st = states_build(&ps, res, limit, err)) == LB_OK)
        *reply = &ps->base;
    PQclear(res);
    return st;
}
