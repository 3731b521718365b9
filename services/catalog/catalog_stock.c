/* catalog_stock.c - stock reservations for the order sagas and the admin's
 * stock adjustments, decided a whole batch at a time.
 *
 * Why a batch: a flash sale sends thousands of reservations for one product
 * at once. Deciding each in its own transaction would queue them on that
 * product's row lock, one commit each. Here every fetched batch (svc runtime,
 * up to LAYBY_CATALOG_BATCH messages) locks the products it touches once, in
 * key order, decides every command in arrival order in memory, and writes the
 * new counts with one UPDATE per batch (docs/DECISIONS.md has the numbers).
 *
 * Invariants:
 * (1) Per product: initial_stock + restocked = stock_available + reserved +
 *     sold - returned; every move below changes both sides of that sum by the
 *     same amount, and no count goes below zero (CHECKs back this up).
 * (2) A reservation takes every line of an order or none.
 * (3) Each operation on an order has one outcome, stored in stock_ops with the
 *     batch that decided it; a repeat (another attempt, a re-sent command)
 *     changes nothing and emits that outcome again with its own saga fields.
 * (4) A release of an order that holds nothing succeeds and leaves a RELEASED
 *     row, so a reservation that arrives after its own compensation is
 *     refused instead of holding stock nobody will release.
 * (5) An adjustment with an adjustment_id applies once per product
 *     (stock_adjustments): a retried restock does not restock twice.
 * CRASH POINTS: everything is inside the svc batch transaction; a crash
 * before commit decides nothing, after commit the inbox skips redeliveries. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "engine/id.h"

/* --- operations and moves (tables) ------------------------------------------ */

typedef enum stock_op {
    OP_RESERVE,
    OP_RELEASE,
    OP_CONFIRM,
    OP_RETURN,
    OP__COUNT
} stock_op;

typedef struct op_row {
    const ProtobufCMessageDescriptor *cmd;
    const char *name;                        /* stock_ops.op and StockOpFailed.op */
    size_t saga_id, step, attempt, order_id; /* field offsets in cmd */
    const char *ok_subject;
    const ProtobufCMessageDescriptor *ok_event;
    const char *fail_subject;
} op_row;

#define OP_FIELDS(T) \
    offsetof(T, saga_id), offsetof(T, step), offsetof(T, attempt), offsetof(T, order_id)

/* clang-format off */
static const op_row op_rows[OP__COUNT] = {
    [OP_RESERVE] = { &layby__v1__reserve_stock__descriptor, "reserve",
                     OP_FIELDS(Layby__V1__ReserveStock), SUBJ_STOCK_RESERVED,
                     &layby__v1__stock_reserved__descriptor, SUBJ_STOCK_REJECTED },
    [OP_RELEASE] = { &layby__v1__release_stock__descriptor, "release",
                     OP_FIELDS(Layby__V1__ReleaseStock), SUBJ_STOCK_RELEASED,
                     &layby__v1__stock_released__descriptor, SUBJ_STOCK_RELEASE_FAILED },
    [OP_CONFIRM] = { &layby__v1__confirm_stock__descriptor, "confirm",
                     OP_FIELDS(Layby__V1__ConfirmStock), SUBJ_STOCK_CONFIRMED,
                     &layby__v1__stock_confirmed__descriptor, SUBJ_STOCK_CONFIRM_FAILED },
    [OP_RETURN]  = { &layby__v1__restock_returned__descriptor, "return",
                     OP_FIELDS(Layby__V1__RestockReturned), SUBJ_STOCK_RETURNED,
                     &layby__v1__stock_returned__descriptor, SUBJ_STOCK_RETURN_FAILED },
};

/* How an operation moves an order's units, per unit of each line. from NULL
 * = the order has no row yet. The reservation's own move (NULL -> RESERVED:
 * available -1, reserved +1) is checked against stock first (reserve_decide). */
typedef struct stock_move {
    stock_op op;
    const char *from, *to;
    int available, reserved, sold, returned;
} stock_move;

static const stock_move stock_moves[] = {
    /* op          from        to          avail  resv  sold  ret */
    { OP_RELEASE, "RESERVED", "RELEASED",  +1,   -1,    0,   0 },
    { OP_RELEASE, "SOLD",     "RELEASED",  +1,    0,   -1,   0 }, /* a paid order cancelled */
    { OP_RELEASE, "REJECTED", "RELEASED",   0,    0,    0,   0 },
    { OP_RELEASE, "RETURNED", "RETURNED",   0,    0,    0,   0 }, /* already back on hand */
    { OP_RELEASE, NULL,       "RELEASED",   0,    0,    0,   0 }, /* invariant (4) */
    { OP_CONFIRM, "RESERVED", "SOLD",       0,   -1,   +1,   0 },
    { OP_RETURN,  "SOLD",     "RETURNED",  +1,    0,    0,  +1 },
};
/* clang-format on */

static const stock_move reserve_move = { OP_RESERVE, NULL, "RESERVED", -1, +1, 0, 0 };

/* --- batch state ----------------------------------------------------------- */

typedef struct prod {
    const char *id; /* borrowed from the lock result */
    const char *name;
    int64_t price, available, reserved, sold, returned, restocked, version;
    int64_t loaded_available; /* available as locked: stock_changed announces a change of it */
    int row;                  /* in the lock result, for a full Product reply */
    bool dirty;
} prod;

typedef struct op_outcome {
    bool known;
    lb_status code;        /* LB_OK or the refusal */
    const char *reason;    /* borrowed (result, or own_reason below) */
    const char *short_ids; /* "id,id" */
    bool is_new;           /* decided by this batch: insert into stock_ops */
} op_outcome;

typedef struct order {
    char id[ID_STR_LEN];
    const char *status; /* NULL = no row; otherwise borrowed or a static literal */
    bool existed;       /* had a row when the batch began (UPDATE, else INSERT) */
    bool status_dirty;
    catalog_line *lines; /* borrowed slice of ctx.lines or the item's own */
    size_t n_lines;
    bool lines_new;
    op_outcome ops[OP__COUNT];
    char *own_short; /* short ids decided here */
    char own_reason[LB_ERR_MSG_MAX];
} order;

typedef struct ctx {
    svc_batch *b;
    store *s;
    order *orders;
    size_t n_orders;
    prod *prods;
    size_t n_prods;
    catalog_line *lines;     /* loaded lines, sliced by orders */
    catalog_line *new_lines; /* lines reserved by this batch */
    size_t n_new_lines;
    PGresult *r_orders, *r_ops, *r_lines, *r_prods;
} ctx;

static int
order_cmp(const void *a, const void *b)
{
    return strcmp(((const order *)a)->id, ((const order *)b)->id);
}

static order *
order_find(ctx *c, const char *id)
{
    order key;
    snprintf(key.id, sizeof key.id, "%s", id);
    return bsearch(&key, c->orders, c->n_orders, sizeof *c->orders, order_cmp);
}

static int
prod_cmp(const void *a, const void *b)
{
    return strcmp(((const prod *)a)->id, ((const prod *)b)->id);
}

static prod *
prod_find(ctx *c, const char *id)
{
    prod key = { .id = id };
    return bsearch(&key, c->prods, c->n_prods, sizeof *c->prods, prod_cmp);
}

static stock_op
op_of(const svc_item *it)
{
    for (int i = 0; i < OP__COUNT; i++)
        if (it->msg->descriptor == op_rows[i].cmd)
            return (stock_op)i;
    return OP__COUNT; /* AdjustStock */
}

static catalog_saga_ref
ref_of(const svc_item *it, stock_op op)
{
    const char *m = (const char *)it->msg;
    const op_row *r = &op_rows[op];
    return (catalog_saga_ref){ .saga_id = *(char *const *)(m + r->saga_id),
                               .step = *(const uint32_t *)(m + r->step),
                               .attempt = *(const uint32_t *)(m + r->attempt),
                               .order_id = *(char *const *)(m + r->order_id) };
}

/* UUIDs in PostgreSQL's canonical form (lower case), so they compare with
 * what it returns. Changes the decoded command in place: it is the batch's. */
static void
lower(char *s)
{
    for (; s != NULL && *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* --- 1. validation ---------------------------------------------------------- */

static lb_status
reserve_validate(Layby__V1__ReserveStock *r, lb_err *why)
{
    if (r->n_lines == 0 || r->n_lines > CATALOG_LINES_MAX)
        return lb_err_field(why, LB_ERR_INVALID, "lines", "an order has 1 to %d lines",
                            CATALOG_LINES_MAX);
    for (size_t i = 0; i < r->n_lines; i++) {
        Layby__V1__StockLine *l = r->lines[i];
        if (!id_valid(l->product_id))
            return lb_err_field(why, LB_ERR_INVALID, "lines", "line %zu: productId must be a UUID",
                                i);
        lower(l->product_id);
        if (l->quantity < 1 || l->quantity > CATALOG_LINE_QTY_MAX)
            return lb_err_field(why, LB_ERR_INVALID, "lines",
                                "line %zu: quantity must be between 1 and %d", i,
                                CATALOG_LINE_QTY_MAX);
        for (size_t k = 0; k < i; k++)
            if (strcmp(r->lines[k]->product_id, l->product_id) == 0)
                return lb_err_field(why, LB_ERR_INVALID, "lines", "line %zu repeats product %s", i,
                                    l->product_id);
    }
    return LB_OK;
}

/* Checks every item; a malformed one gets its refusal in outcome/why now. */
static void
items_validate(svc_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        svc_item *it = &items[i];
        stock_op op = op_of(it);
        if (op == OP__COUNT) {
            Layby__V1__AdjustStock *a = (Layby__V1__AdjustStock *)it->msg;
            if (!id_valid(a->product_id))
                it->outcome =
                    lb_err_field(&it->why, LB_ERR_INVALID, "productId", "productId must be a UUID");
            else if (a->delta == 0)
                it->outcome =
                    lb_err_field(&it->why, LB_ERR_INVALID, "delta", "delta must not be zero");
            else if (a->delta < -CATALOG_STOCK_MAX || a->delta > CATALOG_STOCK_MAX)
                it->outcome = lb_err_field(&it->why, LB_ERR_INVALID, "delta",
                                           "delta must be between -%lld and %lld",
                                           CATALOG_STOCK_MAX, CATALOG_STOCK_MAX);
            else if (a->adjustment_id[0] != '\0' && !id_valid(a->adjustment_id))
                it->outcome = lb_err_field(&it->why, LB_ERR_INVALID, "adjustmentId",
                                           "adjustmentId must be a UUID");
            lower(a->product_id);
            continue;
        }
        catalog_saga_ref ref = ref_of(it, op);
        if (!id_valid(ref.order_id)) {
            it->outcome =
                lb_err_field(&it->why, LB_ERR_INVALID, "orderId", "orderId must be a UUID");
            continue;
        }
        lower((char *)ref.order_id);
        if (op == OP_RESERVE)
            it->outcome = reserve_validate((Layby__V1__ReserveStock *)it->msg, &it->why);
    }
}

/* --- 2. loading ------------------------------------------------------------- */

/* The distinct orders of the valid items, sorted. */
static lb_status
orders_collect(ctx *c, svc_item *items, size_t n, lb_err *err)
{
    c->orders = calloc(n ? n : 1, sizeof *c->orders);
    if (c->orders == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "orders");
    for (size_t i = 0; i < n; i++) {
        stock_op op = op_of(&items[i]);
        if (items[i].outcome != LB_OK || op == OP__COUNT)
            continue;
        snprintf(c->orders[c->n_orders++].id, ID_STR_LEN, "%s", ref_of(&items[i], op).order_id);
    }
    qsort(c->orders, c->n_orders, sizeof *c->orders, order_cmp);
    size_t k = 0;
    for (size_t i = 0; i < c->n_orders; i++)
        if (k == 0 || strcmp(c->orders[k - 1].id, c->orders[i].id) != 0)
            c->orders[k++] = c->orders[i];
    c->n_orders = k;
    return LB_OK;
}

static lb_status
orders_load(ctx *c, lb_err *err)
{
    store_array ids = { 0 };
    store_array_begin(&ids);
    for (size_t i = 0; i < c->n_orders; i++)
        store_array_text(&ids, c->orders[i].id);
    store_array_end(&ids);
    lb_status st = LB_OK;
    int t[3];
    const char *params[] = { ids.p };
    if (ids.oom) {
        st = lb_err_set(err, LB_ERR_NOMEM, "order ids");
        goto out;
    }
    if ((st = store_send(c->s, &t[0], "catalog_stock_orders_lock", 1, params, 0, err)) != LB_OK ||
        (st = store_send(c->s, &t[1], "catalog_stock_ops_load", 1, params, 0, err)) != LB_OK ||
        (st = store_send(c->s, &t[2], "catalog_stock_lines_load", 1, params, 0, err)) != LB_OK ||
        (st = store_flush(c->s, err)) != LB_OK)
        goto out;
    c->r_orders = store_take(c->s, t[0]);
    c->r_ops = store_take(c->s, t[1]);
    c->r_lines = store_take(c->s, t[2]);
    if (c->r_orders == NULL || c->r_ops == NULL || c->r_lines == NULL) {
        st = lb_err_set(err, LB_ERR_DB, "stock order reads lost");
        goto out;
    }
    for (int r = 0; r < PQntuples(c->r_orders); r++) {
        order *o = order_find(c, PQgetvalue(c->r_orders, r, 0));
        if (o != NULL) {
            o->status = PQgetvalue(c->r_orders, r, 1);
            o->existed = true;
        }
    }
    for (int r = 0; r < PQntuples(c->r_ops); r++) {
        order *o = order_find(c, PQgetvalue(c->r_ops, r, 0));
        const char *name = PQgetvalue(c->r_ops, r, 1);
        for (int k = 0; o != NULL && k < OP__COUNT; k++) {
            if (strcmp(op_rows[k].name, name) != 0)
                continue;
            const char *code = PQgetvalue(c->r_ops, r, 2);
            o->ops[k] =
                (op_outcome){ .known = true,
                              .code = strcmp(code, "ok") == 0 ? LB_OK : lb_status_from_code(code),
                              .reason = PQgetvalue(c->r_ops, r, 3),
                              .short_ids = PQgetvalue(c->r_ops, r, 4) };
        }
    }
    int nl = PQntuples(c->r_lines);
    c->lines = calloc(nl ? (size_t)nl : 1, sizeof *c->lines);
    if (c->lines == NULL) {
        st = lb_err_set(err, LB_ERR_NOMEM, "lines");
        goto out;
    }
    for (int r = 0; r < nl; r++) {
        order *o = order_find(c, PQgetvalue(c->r_lines, r, 0));
        c->lines[r] = (catalog_line){ .product_id = PQgetvalue(c->r_lines, r, 1),
                                      .quantity = atoll(PQgetvalue(c->r_lines, r, 2)),
                                      .name = PQgetvalue(c->r_lines, r, 3),
                                      .unit_price = atoll(PQgetvalue(c->r_lines, r, 4)) };
        if (o != NULL && o->lines == NULL)
            o->lines = &c->lines[r]; /* rows come grouped by order */
        if (o != NULL)
            o->n_lines++;
    }
out:
    store_array_free(&ids);
    return st;
}

/* Locks every product the batch may touch, in key order. */
static lb_status
products_lock(ctx *c, const svc_item *items, size_t n, lb_err *err)
{
    store_array ids = { 0 };
    store_array_begin(&ids);
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].outcome != LB_OK)
            continue;
        stock_op op = op_of(&items[i]);
        if (op == OP__COUNT) {
            store_array_text(&ids, ((const Layby__V1__AdjustStock *)items[i].msg)->product_id);
            count++;
        } else if (op == OP_RESERVE) {
            const Layby__V1__ReserveStock *r = (const Layby__V1__ReserveStock *)items[i].msg;
            for (size_t k = 0; k < r->n_lines; k++, count++)
                store_array_text(&ids, r->lines[k]->product_id);
        }
    }
    for (int r = 0; c->r_lines != NULL && r < PQntuples(c->r_lines); r++, count++)
        store_array_text(&ids, PQgetvalue(c->r_lines, r, 1));
    store_array_end(&ids);
    lb_status st = LB_OK;
    const char *params[] = { ids.p };
    if (ids.oom) {
        st = lb_err_set(err, LB_ERR_NOMEM, "product ids");
        goto out;
    }
    if (count == 0)
        goto out;
    if ((st = store_exec(c->s, &c->r_prods, "catalog_stock_products_lock", 1, params, err)) !=
        LB_OK)
        goto out;
    int np = PQntuples(c->r_prods);
    c->prods = calloc(np ? (size_t)np : 1, sizeof *c->prods);
    if (c->prods == NULL) {
        st = lb_err_set(err, LB_ERR_NOMEM, "products");
        goto out;
    }
    for (int r = 0; r < np; r++) {
        const PGresult *p = c->r_prods;
        c->prods[r] = (prod){ .id = PQgetvalue(p, r, CATALOG_COL_ID),
                              .name = PQgetvalue(p, r, CATALOG_COL_NAME),
                              .price = atoll(PQgetvalue(p, r, CATALOG_COL_PRICE)),
                              .available = atoll(PQgetvalue(p, r, CATALOG_COL_STOCK)),
                              .loaded_available = atoll(PQgetvalue(p, r, CATALOG_COL_STOCK)),
                              .version = atoll(PQgetvalue(p, r, CATALOG_COL_VERSION)),
                              .reserved = atoll(PQgetvalue(p, r, CATALOG_PRODUCT_COLS + 0)),
                              .sold = atoll(PQgetvalue(p, r, CATALOG_PRODUCT_COLS + 1)),
                              .returned = atoll(PQgetvalue(p, r, CATALOG_PRODUCT_COLS + 2)),
                              .row = r };
    }
    c->n_prods = (size_t)np; /* ORDER BY product_id: sorted for prod_find */
out:
    store_array_free(&ids);
    return st;
}

/* --- 3. deciding, in arrival order ----------------------------------------- */

static void
move_apply(prod *p, const stock_move *m, int64_t q)
{
    p->available += m->available * q;
    p->reserved += m->reserved * q;
    p->sold += m->sold * q;
    p->returned += m->returned * q;
    p->version++;
    p->dirty = true;
}

static lb_status
move_lines(ctx *c, order *o, const stock_move *m, lb_err *err)
{
    for (size_t i = 0; i < o->n_lines; i++) {
        prod *p = prod_find(c, o->lines[i].product_id);
        if (p == NULL)
            return lb_err_set(err, LB_ERR_INTERNAL, "order %s: product %s not locked", o->id,
                              o->lines[i].product_id);
        move_apply(p, m, o->lines[i].quantity);
        if (p->available < 0 || p->reserved < 0 || p->sold < 0)
            return lb_err_set(err, LB_ERR_INTERNAL, "order %s: product %s would go negative", o->id,
                              p->id);
    }
    return LB_OK;
}

static void
refuse(order *o, stock_op op, lb_status code, const char *fmt, const char *arg)
{
    snprintf(o->own_reason, sizeof o->own_reason, fmt, arg);
    o->ops[op] = (op_outcome){ .known = true,
                               .code = code,
                               .reason = o->own_reason,
                               .short_ids = o->own_short ? o->own_short : "",
                               .is_new = true };
}

/* Reserves every line of r for o, or none (invariant 2). */
static lb_status
reserve_decide(ctx *c, order *o, const Layby__V1__ReserveStock *r, lb_err *err)
{
    if (o->status != NULL) { /* released before it arrived: invariant (4) */
        refuse(o, OP_RESERVE, LB_ERR_STATE, "the stock of order %s was released already", o->id);
        return LB_OK;
    }
    size_t cap = r->n_lines * ID_STR_LEN + 1, len = 0;
    lb_status code = LB_OK;
    for (size_t i = 0; i < r->n_lines; i++) {
        prod *p = prod_find(c, r->lines[i]->product_id);
        lb_status why = p == NULL                              ? LB_ERR_NOT_FOUND
                        : p->available < r->lines[i]->quantity ? LB_ERR_STOCK
                                                               : LB_OK;
        if (why == LB_OK)
            continue;
        /* not_found outranks out_of_stock: the order cannot succeed later either */
        if (code != LB_ERR_NOT_FOUND)
            code = why;
        if (o->own_short == NULL && (o->own_short = calloc(cap, 1)) == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "short ids");
        len += (size_t)snprintf(o->own_short + len, cap - len, "%s%s", len ? "," : "",
                                r->lines[i]->product_id);
    }
    if (code != LB_OK) {
        o->status = "REJECTED";
        o->status_dirty = true;
        refuse(o, OP_RESERVE, code,
               code == LB_ERR_STOCK ? "not enough stock for order %s" : "unknown product in %s",
               o->id);
        return LB_OK;
    }
    o->lines = &c->new_lines[c->n_new_lines];
    o->n_lines = r->n_lines;
    o->lines_new = true;
    for (size_t i = 0; i < r->n_lines; i++) {
        prod *p = prod_find(c, r->lines[i]->product_id);
        c->new_lines[c->n_new_lines++] = (catalog_line){ .product_id = p->id,
                                                         .quantity = r->lines[i]->quantity,
                                                         .name = p->name,
                                                         .unit_price = p->price };
        move_apply(p, &reserve_move, r->lines[i]->quantity);
    }
    o->status = "RESERVED";
    o->status_dirty = true;
    o->ops[OP_RESERVE] = (op_outcome){ .known = true, .code = LB_OK, .is_new = true };
    return LB_OK;
}

static lb_status
op_decide(ctx *c, order *o, stock_op op, lb_err *err)
{
    for (size_t i = 0; i < LB_COUNTOF(stock_moves); i++) {
        const stock_move *m = &stock_moves[i];
        if (m->op != op || (m->from == NULL) != (o->status == NULL) ||
            (m->from != NULL && strcmp(m->from, o->status) != 0))
            continue;
        lb_status st = move_lines(c, o, m, err);
        if (st != LB_OK)
            return st;
        o->status = m->to;
        o->status_dirty = true;
        o->ops[op] = (op_outcome){ .known = true, .code = LB_OK, .is_new = true };
        return LB_OK;
    }
    refuse(o, op, LB_ERR_STATE, "order %s holds no stock in a state that allows this", o->id);
    return LB_OK;
}

/* Emits the outcome of op for it (the first outcome, whichever attempt asks). */
static lb_status
outcome_emit(ctx *c, const svc_item *it, stock_op op, const order *o, lb_err *err)
{
    catalog_saga_ref ref = ref_of(it, op);
    const op_row *r = &op_rows[op];
    if (o == NULL || o->ops[op].code != LB_OK) {
        lb_status code = o ? o->ops[op].code : it->outcome;
        const char *reason = o ? o->ops[op].reason : it->why.msg;
        if (op == OP_RESERVE)
            return catalog_msg_emit_rejected(c->b, it->env, &ref, code, reason,
                                             o ? o->ops[op].short_ids : "", err);
        return catalog_msg_emit_op_failed(c->b, it->env, r->fail_subject, &ref, r->name, code,
                                          reason, err);
    }
    if (op == OP_RESERVE)
        return catalog_msg_emit_reserved(c->b, it->env, &ref, o->lines, o->n_lines, err);
    return catalog_msg_emit_done(c->b, it->env, r->ok_subject, r->ok_event, &ref, err);
}

/* Whether the keyed adjustment a was applied before (this batch included: the
 * transaction sees its own rows). */
static lb_status
adjust_seen(ctx *c, const Layby__V1__AdjustStock *a, bool *seen, lb_err *err)
{
    PGresult *res = NULL;
    const char *p[] = { a->product_id, a->adjustment_id };
    lb_status st = store_exec(c->s, &res, "catalog_stock_adjust_seen", 2, p, err);
    *seen = st == LB_OK && PQntuples(res) > 0;
    PQclear(res);
    return st;
}

static lb_status
adjust_record(ctx *c, const Layby__V1__AdjustStock *a, int64_t now_ms, lb_err *err)
{
    char delta[24], when[32];
    snprintf(delta, sizeof delta, "%lld", (long long)a->delta);
    lb_time_format(when, sizeof when, now_ms);
    const char *p[] = { a->product_id, a->adjustment_id, delta, when };
    return store_exec(c->s, NULL, "catalog_stock_adjust_insert", 4, p, err);
}

/* The product as it is now, as the answer to it. */
static lb_status
adjust_answer(ctx *c, svc_item *it, const prod *p, lb_err *err)
{
    Layby__V1__Product *reply = NULL;
    lb_status st = catalog_msg_product_from_row(&reply, c->r_prods, p->row, err);
    if (st != LB_OK)
        return st;
    reply->stock_available = p->available;
    it->reply = &reply->base;
    return LB_OK;
}

static lb_status
adjust_decide(ctx *c, svc_item *it, lb_err *err)
{
    const Layby__V1__AdjustStock *a = (const Layby__V1__AdjustStock *)it->msg;
    prod *p = prod_find(c, a->product_id);
    if (p == NULL) {
        it->outcome = lb_err_set(&it->why, LB_ERR_NOT_FOUND, "no product %s", a->product_id);
        return LB_OK;
    }
    bool keyed = a->adjustment_id[0] != '\0';
    /* A repeat of a keyed adjustment (a restock retried after its answer was
     * lost) changes nothing: it answers the product as it is, before the
     * bounds check, which the first one passed. */
    bool seen = false;
    lb_status st = keyed ? adjust_seen(c, a, &seen, err) : LB_OK;
    if (st != LB_OK || seen)
        return st != LB_OK ? st : adjust_answer(c, it, p, err);
    if (p->available + a->delta < 0) {
        it->outcome = lb_err_field(&it->why, LB_ERR_STOCK_NEGATIVE, "delta",
                                   "%lld units are available; a delta of %lld would leave %lld",
                                   (long long)p->available, (long long)a->delta,
                                   (long long)(p->available + a->delta));
        return LB_OK;
    }
    if (keyed && (st = adjust_record(c, a, it->now_ms, err)) != LB_OK)
        return st;
    p->available += a->delta;
    p->restocked += a->delta;
    p->version++;
    p->dirty = true;
    return adjust_answer(c, it, p, err);
}

static lb_status
items_decide(ctx *c, svc_item *items, size_t n, lb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        svc_item *it = &items[i];
        stock_op op = op_of(it);
        lb_status st = LB_OK;
        if (op == OP__COUNT) {
            if (it->outcome == LB_OK)
                st = adjust_decide(c, it, err);
            if (st != LB_OK)
                return st;
            continue;
        }
        order *o = NULL;
        if (it->outcome == LB_OK) {
            o = order_find(c, ref_of(it, op).order_id);
            if (o != NULL && !o->ops[op].known)
                st = op == OP_RESERVE
                         ? reserve_decide(c, o, (const Layby__V1__ReserveStock *)it->msg, err)
                         : op_decide(c, o, op, err);
        }
        if (st != LB_OK || (st = outcome_emit(c, it, op, o, err)) != LB_OK)
            return st;
        /* The answer is the event; the command itself was handled. */
        it->outcome = LB_OK;
    }
    return LB_OK;
}

/* --- 4. writing --------------------------------------------------------------- */

static lb_status
arrays_send(ctx *c, const char *stmt, store_array *cols, size_t n_cols, lb_err *err)
{
    const char *params[8];
    for (size_t k = 0; k < n_cols; k++) {
        store_array_end(&cols[k]);
        if (cols[k].oom)
            return lb_err_set(err, LB_ERR_NOMEM, "%s arrays", stmt);
        params[k] = cols[k].p;
    }
    return store_exec(c->s, NULL, stmt, (int)n_cols, params, err);
}

static lb_status
products_write(ctx *c, lb_err *err)
{
    store_array cols[7] = { 0 };
    size_t n = 0;
    for (size_t k = 0; k < LB_COUNTOF(cols); k++)
        store_array_begin(&cols[k]);
    for (size_t i = 0; i < c->n_prods; i++) {
        const prod *p = &c->prods[i];
        if (!p->dirty)
            continue;
        store_array_text(&cols[0], p->id);
        store_array_int(&cols[1], p->available);
        store_array_int(&cols[2], p->reserved);
        store_array_int(&cols[3], p->sold);
        store_array_int(&cols[4], p->returned);
        store_array_int(&cols[5], p->restocked);
        store_array_int(&cols[6], p->version);
        n++;
    }
    lb_status st = n ? arrays_send(c, "catalog_stock_products_update", cols, 7, err) : LB_OK;
    for (size_t k = 0; k < LB_COUNTOF(cols); k++)
        store_array_free(&cols[k]);
    return st;
}

/* The columns of one statement, filled row by row. */
typedef struct cols {
    store_array a[6];
    size_t n_cols, rows;
} cols;

static void
cols_begin(cols *t, size_t n_cols)
{
    memset(t, 0, sizeof *t);
    t->n_cols = n_cols;
    for (size_t k = 0; k < n_cols; k++)
        store_array_begin(&t->a[k]);
}

static void
cols_free(cols *t)
{
    for (size_t k = 0; k < t->n_cols; k++)
        store_array_free(&t->a[k]);
}

static lb_status
cols_send(ctx *c, const char *stmt, cols *t, lb_err *err)
{
    return t->rows ? arrays_send(c, stmt, t->a, t->n_cols, err) : LB_OK;
}

static lb_status
orders_write(ctx *c, int64_t now_ms, lb_err *err)
{
    char when[32];
    lb_time_format(when, sizeof when, now_ms);
    cols ins, upd, lines, ops;
    cols_begin(&ins, 3);
    cols_begin(&upd, 3);
    cols_begin(&lines, 6);
    cols_begin(&ops, 6);
    for (size_t i = 0; i < c->n_orders; i++) {
        const order *o = &c->orders[i];
        if (o->status_dirty) {
            cols *t = o->existed ? &upd : &ins;
            store_array_text(&t->a[0], o->id);
            store_array_text(&t->a[1], o->status);
            store_array_text(&t->a[2], when);
            t->rows++;
        }
        for (size_t k = 0; o->lines_new && k < o->n_lines; k++, lines.rows++) {
            store_array_text(&lines.a[0], o->id);
            store_array_text(&lines.a[1], o->lines[k].product_id);
            store_array_int(&lines.a[2], (int64_t)k);
            store_array_int(&lines.a[3], o->lines[k].quantity);
            store_array_text(&lines.a[4], o->lines[k].name);
            store_array_int(&lines.a[5], o->lines[k].unit_price);
        }
        for (int k = 0; k < OP__COUNT; k++) {
            const op_outcome *out = &o->ops[k];
            if (!out->is_new)
                continue;
            store_array_text(&ops.a[0], o->id);
            store_array_text(&ops.a[1], op_rows[k].name);
            store_array_text(&ops.a[2], out->code == LB_OK ? "ok" : lb_status_code(out->code));
            store_array_text(&ops.a[3], out->reason ? out->reason : "");
            store_array_text(&ops.a[4], out->short_ids ? out->short_ids : "");
            store_array_text(&ops.a[5], when);
            ops.rows++;
        }
    }
    /* stock_orders first: stock_lines refers to it. */
    lb_status st;
    if ((st = cols_send(c, "catalog_stock_orders_insert", &ins, err)) == LB_OK &&
        (st = cols_send(c, "catalog_stock_orders_update", &upd, err)) == LB_OK &&
        (st = cols_send(c, "catalog_stock_lines_insert", &lines, err)) == LB_OK)
        st = cols_send(c, "catalog_stock_ops_insert", &ops, err);
    cols_free(&ins);
    cols_free(&upd);
    cols_free(&lines);
    cols_free(&ops);
    return st;
}

/* One layby.evt.product.stock_changed per product whose available units the
 * batch changed: the read models need the result, not every step (a flash
 * sale's batch is one event). A sale confirmed (reserved -> sold) leaves them
 * as they were and announces nothing: one event a checkout fewer (issue 20).
 * Its version is skipped, which readers allow (they keep the highest). */
static lb_status
changes_emit(ctx *c, lb_err *err)
{
    for (size_t i = 0; i < c->n_prods; i++) {
        const prod *p = &c->prods[i];
        if (!p->dirty || p->available == p->loaded_available)
            continue;
        lb_status st =
            catalog_msg_emit_stock_changed(c->b, NULL, p->id, p->available, p->version, err);
        if (st != LB_OK)
            return st;
    }
    return LB_OK;
}

/* --- the handler -------------------------------------------------------------- */

lb_status
catalog_stock_handle(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    ctx c = { .b = b, .s = svc_batch_store(b) };
    lb_status st;
    size_t max_lines = 0;
    items_validate(items, n);
    for (size_t i = 0; i < n; i++)
        if (items[i].outcome == LB_OK && op_of(&items[i]) == OP_RESERVE)
            max_lines += ((const Layby__V1__ReserveStock *)items[i].msg)->n_lines;
    c.new_lines = calloc(max_lines ? max_lines : 1, sizeof *c.new_lines);
    if (c.new_lines == NULL) {
        st = lb_err_set(err, LB_ERR_NOMEM, "new lines");
        goto out;
    }
    if ((st = orders_collect(&c, items, n, err)) != LB_OK)
        goto out;
    if (c.n_orders > 0 && (st = orders_load(&c, err)) != LB_OK)
        goto out;
    if ((st = products_lock(&c, items, n, err)) != LB_OK ||
        (st = items_decide(&c, items, n, err)) != LB_OK ||
        (st = products_write(&c, err)) != LB_OK ||
        (st = orders_write(&c, items[0].now_ms, err)) != LB_OK ||
        (st = changes_emit(&c, err)) != LB_OK)
        goto out;
out:
    for (size_t i = 0; c.orders != NULL && i < c.n_orders; i++)
        free(c.orders[i].own_short);
    free(c.orders);
    free(c.prods);
    free(c.lines);
    free(c.new_lines);
    PQclear(c.r_orders);
    PQclear(c.r_ops);
    PQclear(c.r_lines);
    PQclear(c.r_prods);
    return st;
}
