/* order_query.c - reads: one order with lines and timeline, a member's
 * orders (newest first, keyset cursor on the UUIDv7 order id). A member asks
 * with its id, so another member's order is simply not found. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "order.h"

static char *
text_dup(const char *s, bool *oom)
{
    char *d = strdup(s ? s : "");
    if (d == NULL)
        *oom = true;
    return d;
}

/* Splits PostgreSQL's text array "{a,b}" of UUIDs into o->short_product_ids. */
static void
shorts_fill(Layby__V1__Order *o, const char *arr, bool *oom)
{
    size_t n = 0;
    for (const char *p = arr; *p; p++)
        n += *p == ',';
    if (strcmp(arr, "{}") == 0 || arr[0] != '{')
        return;
    o->short_product_ids = calloc(n + 1, sizeof(char *));
    if (o->short_product_ids == NULL) {
        *oom = true;
        return;
    }
    const char *p = arr + 1;
    while (*p && *p != '}') {
        size_t len = strcspn(p, ",}");
        char *id = strndup(p, len);
        if (id == NULL) {
            *oom = true;
            return;
        }
        o->short_product_ids[o->n_short_product_ids++] = id;
        p += len;
        if (*p == ',')
            p++;
    }
}

/* Where a line's and a timeline entry's fields are in a result: their own
 * statement's columns (ORDER_SQL_LINES), or ORDER_SQL_ORDER_FULL's. */
typedef struct line_cols {
    int product, quantity, name, price;
} line_cols;
typedef struct event_cols {
    int status, at, reason;
} event_cols;

#define FULL_KIND 0 /* ORDER_SQL_ORDER_FULL: kind, n, then ORDER_COLS from column 2 */
#define FULL_COLS 2
static const line_cols lines_own = { 0, 1, 2, 3 };
static const line_cols lines_in_full = { 2, 7, 6, 8 };
static const event_cols events_in_full = { 6, 8, 9 };

/* An Order from row `row` of ORDER_COLS (order_sql.c) starting at column c,
 * without lines/timeline. */
static lb_status
order_from_row(Layby__V1__Order **out, const PGresult *r, int row, int c, lb_err *err)
{
    Layby__V1__Order *o = malloc(sizeof *o);
    if (o == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "order");
    layby__v1__order__init(o);
    bool oom = false;
    o->order_id = text_dup(PQgetvalue(r, row, c + 0), &oom);
    o->address_id = text_dup(PQgetvalue(r, row, c + 2), &oom);
    o->status = text_dup(PQgetvalue(r, row, c + 4), &oom);
    o->total = atoll(PQgetvalue(r, row, c + 5));
    o->payment_deadline = text_dup(PQgetvalue(r, row, c + 6), &oom);
    o->reason = text_dup(PQgetvalue(r, row, c + 7), &oom);
    shorts_fill(o, PQgetvalue(r, row, c + 8), &oom);
    o->created_at = text_dup(PQgetvalue(r, row, c + 9), &oom);
    o->updated_at = text_dup(PQgetvalue(r, row, c + 10), &oom);
    if (oom) {
        protobuf_c_message_free_unpacked(&o->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "order fields");
    }
    *out = o;
    return LB_OK;
}

static lb_status
ship_to_fill(Layby__V1__Order *o, const char *hex, lb_err *err)
{
    char ad[64];
    order_ad_ship_to(ad, sizeof ad, o->order_id);
    Layby__V1__AddressDraft *d = NULL;
    lb_status st = order_address_open(&d, hex, ad, err);
    if (st != LB_OK)
        return st;
    Layby__V1__Address *a = malloc(sizeof *a);
    if (a == NULL) {
        protobuf_c_message_free_unpacked(&d->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "ship-to");
    }
    layby__v1__address__init(a);
    bool oom = false;
    a->address_id = text_dup(o->address_id, &oom);
    a->label = text_dup(d->label, &oom);
    a->recipient = text_dup(d->recipient, &oom);
    a->phone = text_dup(d->phone, &oom);
    a->zipcode = text_dup(d->zipcode, &oom);
    a->city = text_dup(d->city, &oom);
    a->street = text_dup(d->street, &oom);
    a->detail = text_dup(d->detail, &oom);
    a->created_at = text_dup("", &oom);
    protobuf_c_message_free_unpacked(&d->base, NULL);
    o->ship_to = a;
    return oom ? lb_err_set(err, LB_ERR_NOMEM, "ship-to") : LB_OK;
}

/* The order's lines from rows [first, end) of res. */
static lb_status
lines_take(Layby__V1__Order *o, const PGresult *res, int first, int end, const line_cols *c,
           lb_err *err)
{
    bool oom = false;
    o->items = calloc((size_t)(end - first) + 1, sizeof *o->items);
    oom = o->items == NULL;
    for (int r = first; !oom && r < end; r++) {
        Layby__V1__OrderLine *l = malloc(sizeof *l);
        if (l == NULL) {
            oom = true;
            break;
        }
        layby__v1__order_line__init(l);
        o->items[o->n_items++] = l;
        l->product_id = text_dup(PQgetvalue(res, r, c->product), &oom);
        l->quantity = atoll(PQgetvalue(res, r, c->quantity));
        l->name = text_dup(PQgetvalue(res, r, c->name), &oom);
        l->unit_price = atoll(PQgetvalue(res, r, c->price));
        l->subtotal = l->quantity * l->unit_price;
    }
    return oom ? lb_err_set(err, LB_ERR_NOMEM, "order lines") : LB_OK;
}

/* The order's lines, by their own statement (the list's orders). */
static lb_status
lines_fill(Layby__V1__Order *o, store *s, lb_err *err)
{
    PGresult *res = NULL;
    const char *p[] = { o->order_id };
    lb_status st = store_exec(s, &res, ORDER_SQL(ORDER_SQL_LINES), 1, p, err);
    if (st != LB_OK)
        return st;
    st = lines_take(o, res, 0, PQntuples(res), &lines_own, err);
    PQclear(res);
    return st;
}

/* The order's timeline from rows [first, end) of res. */
static lb_status
timeline_take(Layby__V1__Order *o, const PGresult *res, int first, int end, const event_cols *c,
              lb_err *err)
{
    bool oom = false;
    o->timeline = calloc((size_t)(end - first) + 1, sizeof *o->timeline);
    oom = o->timeline == NULL;
    for (int r = first; !oom && r < end; r++) {
        Layby__V1__OrderEvent *e = malloc(sizeof *e);
        if (e == NULL) {
            oom = true;
            break;
        }
        layby__v1__order_event__init(e);
        o->timeline[o->n_timeline++] = e;
        e->status = text_dup(PQgetvalue(res, r, c->status), &oom);
        e->at = text_dup(PQgetvalue(res, r, c->at), &oom);
        e->reason = text_dup(PQgetvalue(res, r, c->reason), &oom);
    }
    return oom ? lb_err_set(err, LB_ERR_NOMEM, "order timeline") : LB_OK;
}

/* The first row at or after `from` whose kind (ORDER_SQL_ORDER_FULL) is not
 * below `kind`: rows come ordered by kind. */
static int
kind_start(const PGresult *res, int from, int kind)
{
    int rows = PQntuples(res);
    while (from < rows && atoi(PQgetvalue(res, from, FULL_KIND)) < kind)
        from++;
    return from;
}

lb_status
order_view_read(Layby__V1__Order **out, store *s, const char *order_id, const char *member_id,
                lb_err *err)
{
    PGresult *res = NULL;
    const char *p[] = { order_id };
    lb_status st = store_exec(s, &res, ORDER_SQL(ORDER_SQL_ORDER_FULL), 1, p, err);
    if (st != LB_OK)
        return st;
    /* Another member's order is not found, as one that does not exist
     * (DESIGN §5); both ids are canonical UUID text (id_valid, ::text). */
    if (PQntuples(res) == 0 || atoi(PQgetvalue(res, 0, FULL_KIND)) != 0 ||
        (member_id[0] != '\0' && strcasecmp(PQgetvalue(res, 0, FULL_COLS + 1), member_id) != 0)) {
        PQclear(res);
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no such order");
    }
    int lines = kind_start(res, 1, 1), events = kind_start(res, lines, 2);
    Layby__V1__Order *o = NULL;
    if ((st = order_from_row(&o, res, 0, FULL_COLS, err)) == LB_OK &&
        (st = ship_to_fill(o, PQgetvalue(res, 0, FULL_COLS + 3), err)) == LB_OK &&
        (st = lines_take(o, res, lines, events, &lines_in_full, err)) == LB_OK)
        st = timeline_take(o, res, events, PQntuples(res), &events_in_full, err);
    PQclear(res);
    if (st != LB_OK) {
        if (o != NULL)
            protobuf_c_message_free_unpacked(&o->base, NULL);
        return st;
    }
    *out = o;
    return LB_OK;
}

lb_status
order_get(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__GetOrder *g = (const Layby__V1__GetOrder *)req;
    if (!id_valid(g->order_id))
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no such order");
    if (g->member_id[0] != '\0' && !id_valid(g->member_id))
        return lb_err_field(err, LB_ERR_INVALID, "memberId", "memberId must be a UUID");
    return order_view_read((Layby__V1__Order **)reply, svc_query_store(q), g->order_id,
                           g->member_id, err);
}

lb_status
order_list(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__ListOrders *l = (const Layby__V1__ListOrders *)req;
    if (l->member_id[0] != '\0' && !id_valid(l->member_id))
        return lb_err_field(err, LB_ERR_INVALID, "memberId", "memberId must be a UUID");
    if (l->cursor[0] != '\0' && !id_valid(l->cursor))
        return lb_err_field(err, LB_ERR_INVALID, "cursor", "cursor is not one this API gave");
    if (l->status[0] != '\0' && !order_status_known(l->status))
        return lb_err_field(err, LB_ERR_INVALID, "status", "unknown order status");
    int64_t limit = l->limit == 0 ? 20 : l->limit;
    if (limit < 1 || limit > ORDER_LIST_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "limit", "limit must be between 1 and %d",
                            ORDER_LIST_MAX);
    char lim[24];
    snprintf(lim, sizeof lim, "%lld", (long long)limit);
    store *s = svc_query_store(q);
    PGresult *res = NULL;
    const char *p[] = { l->member_id, l->cursor, l->status, lim };
    lb_status st = store_exec(s, &res, ORDER_SQL(ORDER_SQL_ORDER_LIST), 4, p, err);
    if (st != LB_OK)
        return st;
    int rows = PQntuples(res);
    Layby__V1__OrderList *out = malloc(sizeof *out);
    if (out == NULL) {
        PQclear(res);
        return lb_err_set(err, LB_ERR_NOMEM, "order list");
    }
    layby__v1__order_list__init(out);
    out->items = calloc((size_t)rows + 1, sizeof *out->items);
    if (out->items == NULL)
        st = lb_err_set(err, LB_ERR_NOMEM, "order list");
    for (int r = 0; st == LB_OK && r < rows; r++) {
        Layby__V1__Order *o = NULL;
        if ((st = order_from_row(&o, res, r, 0, err)) != LB_OK)
            break;
        out->items[out->n_items++] = o;
        if ((st = lines_fill(o, s, err)) != LB_OK)
            break;
    }
    bool oom = false;
    out->next_cursor =
        text_dup(st == LB_OK && rows == limit ? PQgetvalue(res, rows - 1, 0) : "", &oom);
    PQclear(res);
    if (st == LB_OK && oom)
        st = lb_err_set(err, LB_ERR_NOMEM, "order list");
    if (st != LB_OK) {
        protobuf_c_message_free_unpacked(&out->base, NULL);
        return st;
    }
    *reply = &out->base;
    return LB_OK;
}
