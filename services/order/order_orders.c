/* order_orders.c - the orders a saga drives: create (PENDING) and set_status.
 *
 * Both are saga step commands: they carry saga_id/step/attempt and answer with
 * an event echoing them. Idempotency: create is keyed by order_id (a repeat
 * answers OrderCreated again); set_status by (order, status), because the
 * history has one row per status: a status already reached answers
 * OrderStatusSet again without touching the order. A move DESIGN §6 does not
 * allow is a final refusal (invalid_state, or not_cancellable for CANCELLED),
 * which the saga turns into its answer. */
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "order.h"

/* --- the state machine (DESIGN §6) --------------------------------------- */

typedef struct order_move {
    const char *from, *to;
} order_move;

/* clang-format off */
static const order_move order_moves[] = {
    { "PENDING",          "PAYMENT_PENDING" },
    { "PENDING",          "REJECTED" },
    { "PENDING",          "CANCELLED" },        /* the place saga failed before reserving */
    { "PAYMENT_PENDING",  "PAID" },
    { "PAYMENT_PENDING",  "CANCELLED" },
    { "PAID",             "CANCELLED" },
    { "PAID",             "RETURN_REQUESTED" },
    { "RETURN_REQUESTED", "RETURNED" },
};
static const char *const order_statuses[] = {
    "PENDING", "PAYMENT_PENDING", "PAID", "REJECTED", "CANCELLED", "RETURN_REQUESTED", "RETURNED",
};
/* clang-format on */

bool
order_transition_ok(const char *from, const char *to)
{
    for (size_t i = 0; i < LB_COUNTOF(order_moves); i++)
        if (strcmp(order_moves[i].from, from) == 0 && strcmp(order_moves[i].to, to) == 0)
            return true;
    return false;
}

bool
order_status_known(const char *s)
{
    for (size_t i = 0; i < LB_COUNTOF(order_statuses); i++)
        if (strcmp(order_statuses[i], s) == 0)
            return true;
    return false;
}

/* --- events -------------------------------------------------------------- */

static lb_status
emit_refused(svc_batch *b, svc_item *it, const char *saga_id, uint32_t step, uint32_t attempt,
             const char *order_id, bool final, lb_status code, const char *field, const char *why,
             lb_err *err)
{
    Layby__V1__OrderRefused ev = LAYBY__V1__ORDER_REFUSED__INIT;
    ev.saga_id = (char *)saga_id;
    ev.step = step;
    ev.attempt = attempt;
    ev.order_id = (char *)order_id;
    ev.final = final;
    ev.code = (char *)lb_status_code(code);
    ev.reason = (char *)why;
    ev.field = (char *)(field ? field : "");
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__order_refused__descriptor, it->env);
    /* The requester (if any) hears the refusal as its outcome too. */
    it->outcome = lb_err_field(&it->why, code, field ? field : "", "%s", why);
    return svc_emit_answer(b, it, SUBJ_ORDER_REFUSED, &env, &ev.base, err);
}

static lb_status
emit_created(svc_batch *b, svc_item *it, const Layby__V1__CreateOrder *c, lb_err *err)
{
    Layby__V1__OrderCreated ev = LAYBY__V1__ORDER_CREATED__INIT;
    ev.saga_id = c->saga_id;
    ev.step = c->step;
    ev.attempt = c->attempt;
    ev.order_id = c->order_id;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__order_created__descriptor, it->env);
    return svc_emit_answer(b, it, SUBJ_ORDER_CREATED, &env, &ev.base, err);
}

/* The saga named by notify_saga_id hears that the status was reached. */
static lb_status
emit_notify(svc_batch *b, svc_item *it, const Layby__V1__SetOrderStatus *c, int64_t total,
            lb_err *err)
{
    if (!id_valid(c->notify_saga_id))
        return LB_OK;
    Layby__V1__OrderPaid ev = LAYBY__V1__ORDER_PAID__INIT;
    ev.saga_id = c->notify_saga_id;
    ev.step = c->notify_step;
    ev.order_id = c->order_id;
    ev.total = total;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__order_paid__descriptor, it->env);
    return svc_emit(b, SUBJ_ORDER_PAID, &env, &ev.base, err);
}

/* Whether the requester of item it waits for the order itself (proto
 * answer_order: the place saga's payable step answering the buyer), and has
 * no answer yet. */
static bool
wants_order(const Layby__V1__SetOrderStatus *c, const svc_item *it)
{
    return c->answer_order && it->env->reply[0] != '\0' && it->reply == NULL;
}

/* The order as GetOrder would show it now, read in this transaction (after
 * the move), becomes the item's answer (svc_emit_answer() keeps it): the
 * edge's place answers with it instead of asking the order back, a query
 * round trip after the commit. */
static lb_status
answer_order(svc_batch *b, svc_item *it, const char *order_id, lb_err *err)
{
    Layby__V1__Order *view = NULL;
    lb_status st = order_view_read(&view, svc_batch_store(b), order_id, "", err);
    if (st == LB_OK)
        it->reply = &view->base;
    return st;
}

static lb_status
emit_status_set(svc_batch *b, svc_item *it, const Layby__V1__SetOrderStatus *c, int64_t total,
                const char *member_id, const char *at, lb_err *err)
{
    lb_status st = emit_notify(b, it, c, total, err);
    if (st != LB_OK)
        return st;
    if (wants_order(c, it) && (st = answer_order(b, it, c->order_id, err)) != LB_OK)
        return st; /* a repeat: the order as it is now */
    Layby__V1__OrderStatusSet ev = LAYBY__V1__ORDER_STATUS_SET__INIT;
    ev.saga_id = c->saga_id;
    ev.step = c->step;
    ev.attempt = c->attempt;
    ev.order_id = c->order_id;
    ev.status = c->status;
    ev.total = total;
    ev.member_id = (char *)member_id;
    ev.at = (char *)at;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__order_status_set__descriptor, it->env);
    return svc_emit_answer(b, it, SUBJ_ORDER_STATUS_SET, &env, &ev.base, err);
}

/* --- create -------------------------------------------------------------- */

/* Checks the items: 1..ORDER_ITEMS_MAX, UUIDs, quantities, no product twice. */
static lb_status
items_validate(const Layby__V1__CreateOrder *c, lb_err *err)
{
    if (c->n_items == 0 || c->n_items > ORDER_ITEMS_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "items", "an order has 1 to %d items",
                            ORDER_ITEMS_MAX);
    for (size_t i = 0; i < c->n_items; i++) {
        const Layby__V1__OrderItem *it = c->items[i];
        char field[64];
        snprintf(field, sizeof field, "items[%zu].productId", i);
        if (!id_valid(it->product_id))
            return lb_err_field(err, LB_ERR_INVALID, field, "productId must be a UUID");
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->items[j]->product_id, it->product_id) == 0)
                return lb_err_field(err, LB_ERR_INVALID, field, "a product may appear once");
        if (it->quantity < 1 || it->quantity > ORDER_QUANTITY_MAX) {
            snprintf(field, sizeof field, "items[%zu].quantity", i);
            return lb_err_field(err, LB_ERR_INVALID, field, "quantity must be between 1 and %d",
                                ORDER_QUANTITY_MAX);
        }
    }
    return LB_OK;
}

/* The order if it exists, and the address with its owner (CREATE_LOOK). */
static lb_status
create_look(svc_batch *b, const Layby__V1__CreateOrder *c, PGresult **res, lb_err *err)
{
    const char *p[] = { c->order_id, c->address_id };
    return svc_batch_read_first(b, res, ORDER_SQL(ORDER_SQL_CREATE_LOOK), 2, p, err);
}

lb_status
order_create_prefetch(svc_batch *b, const svc_item *items, size_t n, lb_err *err)
{
    (void)n; /* one: svc_handler.prefetch */
    const Layby__V1__CreateOrder *c = (const Layby__V1__CreateOrder *)items[0].msg;
    if (!id_valid(c->order_id) || !id_valid(c->address_id))
        return LB_OK; /* the handler refuses it without reading */
    return create_look(b, c, NULL, err);
}

/* Refuses a command whose ids or items are not valid: *ok says whether it
 * goes on to the reads. */
static lb_status
create_check(svc_batch *b, svc_item *it, bool *ok, lb_err *err)
{
    const Layby__V1__CreateOrder *c = (const Layby__V1__CreateOrder *)it->msg;
    lb_err why;
    lb_err_clear(&why);
    *ok = false;
    if (!id_valid(c->order_id) || !id_valid(c->member_id))
        return emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true,
                            LB_ERR_INVALID, "orderId", "orderId and memberId must be UUIDs", err);
    if (!id_valid(c->address_id))
        return emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true,
                            LB_ERR_NOT_FOUND, "addressId", "no such address", err);
    if (items_validate(c, &why) != LB_OK)
        return emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true, why.code,
                            why.field, why.msg, err);
    *ok = true;
    return LB_OK;
}

/* The new orders of a group, as the array parameters of ORDER_INSERT: one
 * entry per order in o_*, one per line in l_* (the order's id repeated). */
typedef struct create_rows {
    store_array o_id, o_member, o_address, o_ship_to, o_wishlist, o_at;
    store_array l_order, l_no, l_product, l_qty;
} create_rows;
#define CREATE_ROWS_ARRAYS 10

static store_array *
create_rows_array(create_rows *r, size_t i)
{
    store_array *const all[CREATE_ROWS_ARRAYS] = {
        &r->o_id, &r->o_member, &r->o_address, &r->o_ship_to, &r->o_wishlist,
        &r->o_at, &r->l_order,  &r->l_no,      &r->l_product, &r->l_qty,
    };
    return all[i];
}

/* What the look found for a checked command (a row of CREATE_LOOK or
 * CREATE_LOOK_MANY from column col): a repeat answers again, another
 * member's or no address is refused, and a new order has its ship-to address
 * sealed and its rows added to r. */
static lb_status
create_decide(svc_batch *b, svc_item *it, const PGresult *res, int row, int col, create_rows *r,
              bool *added, lb_err *err)
{
    const Layby__V1__CreateOrder *c = (const Layby__V1__CreateOrder *)it->msg;
    *added = false;
    if (strcmp(PQgetvalue(res, row, col), "t") == 0) /* a repeat */
        return emit_created(b, it, c, err);
    if (PQgetisnull(res, row, col + 1) || strcmp(PQgetvalue(res, row, col + 1), c->member_id) != 0)
        return emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true,
                            LB_ERR_NOT_FOUND, "addressId", "no such address", err);
    /* The ship-to address is copied, sealed for the order's own row: later
     * edits of the book do not change where this order goes. */
    Layby__V1__AddressDraft *d = NULL;
    char ad[64], ship_ad[64], sealed[ORDER_SEALED_MAX * 2 + 3], when[32];
    order_ad_address(ad, sizeof ad, c->address_id);
    order_ad_ship_to(ship_ad, sizeof ship_ad, c->order_id);
    lb_status st = order_address_open(&d, PQgetvalue(res, row, col + 2), ad, err);
    if (st == LB_OK)
        st = order_address_seal(sealed, sizeof sealed, d, ship_ad, err);
    if (d != NULL)
        protobuf_c_message_free_unpacked(&d->base, NULL);
    if (st != LB_OK)
        return st;
    lb_time_format(when, sizeof when, it->now_ms);
    store_array_text(&r->o_id, c->order_id);
    store_array_text(&r->o_member, c->member_id);
    store_array_text(&r->o_address, c->address_id);
    store_array_text(&r->o_ship_to, sealed);
    store_array_text(&r->o_wishlist, c->from_wishlist ? "true" : "false");
    store_array_text(&r->o_at, when);
    for (size_t i = 0; i < c->n_items; i++) {
        store_array_text(&r->l_order, c->order_id);
        store_array_int(&r->l_no, (int64_t)i + 1);
        store_array_text(&r->l_product, c->items[i]->product_id);
        store_array_int(&r->l_qty, c->items[i]->quantity);
    }
    *added = true;
    return LB_OK;
}

static void
create_rows_begin(create_rows *r)
{
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < CREATE_ROWS_ARRAYS; i++)
        store_array_begin(create_rows_array(r, i));
}

static void
create_rows_free(create_rows *r)
{
    for (size_t i = 0; i < CREATE_ROWS_ARRAYS; i++)
        store_array_free(create_rows_array(r, i));
}

/* Inserts the orders of r, their lines and first history entries: one
 * statement. An order that exists by now (a racing repeat) is skipped. */
static lb_status
create_rows_insert(store *s, create_rows *r, lb_err *err)
{
    store_array *arrays[CREATE_ROWS_ARRAYS];
    const char *p[CREATE_ROWS_ARRAYS];
    for (size_t i = 0; i < CREATE_ROWS_ARRAYS; i++)
        arrays[i] = create_rows_array(r, i);
    if (!store_arrays_end(arrays, CREATE_ROWS_ARRAYS, p))
        return lb_err_set(err, LB_ERR_NOMEM, "order rows");
    return store_exec(s, NULL, ORDER_SQL(ORDER_SQL_ORDER_INSERT), CREATE_ROWS_ARRAYS, p, err);
}

/* One command: its look prefetched with the inbox claim when it is the
 * batch's only message. */
static lb_status
create_one(svc_batch *b, svc_item *it, lb_err *err)
{
    const Layby__V1__CreateOrder *c = (const Layby__V1__CreateOrder *)it->msg;
    bool ok, added;
    lb_status st = create_check(b, it, &ok, err);
    if (st != LB_OK || !ok)
        return st;
    PGresult *res = NULL;
    create_rows r;
    create_rows_begin(&r);
    if ((st = create_look(b, c, &res, err)) == LB_OK &&
        (st = create_decide(b, it, res, 0, 0, &r, &added, err)) == LB_OK && added &&
        (st = create_rows_insert(svc_batch_store(b), &r, err)) == LB_OK)
        st = emit_created(b, it, c, err);
    create_rows_free(&r);
    PQclear(res);
    return st;
}

/* What a group does with each of its commands. */
typedef enum order_role {
    ROLE_DONE,  /* answered already (refused before any read) */
    ROLE_LEAD,  /* in the group's statements */
    ROLE_LATER, /* an order a lead has too: run alone after them */
} order_role;

/* ROLE_LATER when a lead of items[0..i) names the same order: the command
 * then runs alone after the group's statements and sees their writes, as it
 * would in a batch of its own; else ROLE_LEAD. */
static order_role
order_role_of(const svc_item *items, const order_role *roles, size_t i,
              const char *(*order_of)(const svc_item *))
{
    const char *id = order_of(&items[i]);
    for (size_t j = 0; j < i; j++)
        if (roles[j] == ROLE_LEAD && strcasecmp(order_of(&items[j]), id) == 0)
            return ROLE_LATER;
    return ROLE_LEAD;
}

/* How a handler's group is read first: the check that refuses a command
 * before any read, and the two fields of each lead its first statement
 * takes as arrays (the order id, then the address or the status). */
typedef struct order_group_kind {
    lb_status (*check)(svc_batch *b, svc_item *it, bool *ok, lb_err *err);
    const char *(*order_of)(const svc_item *it);
    const char *(*second_of)(const svc_item *it);
    order_stmt_id first_read;
} order_group_kind;

/* A group's commands in roles[] (room for n, zeroed): each checked (a
 * refusal answered at once, ROLE_DONE), then a lead or later; the leads'
 * items in lead_item[0..*leads), their first read into *res (NULL without
 * leads), its rows the caller's to match to the leads. */
static lb_status
order_group_read(svc_batch *b, const order_group_kind *kind, svc_item *items, size_t n,
                 order_role *roles, size_t *lead_item, size_t *leads, PGresult **res, lb_err *err)
{
    store_array ids = { 0 }, second = { 0 };
    store_array_begin(&ids);
    store_array_begin(&second);
    lb_status st = LB_OK;
    *leads = 0;
    *res = NULL;
    for (size_t i = 0; st == LB_OK && i < n; i++) {
        bool ok;
        if ((st = kind->check(b, &items[i], &ok, err)) != LB_OK || !ok ||
            (roles[i] = order_role_of(items, roles, i, kind->order_of)) != ROLE_LEAD)
            continue;
        lead_item[(*leads)++] = i;
        store_array_text(&ids, kind->order_of(&items[i]));
        store_array_text(&second, kind->second_of(&items[i]));
    }
    if (st == LB_OK && *leads > 0) {
        store_array *arrays[] = { &ids, &second };
        const char *p[2];
        st = store_arrays_end(arrays, 2, p)
                 ? store_exec(svc_batch_store(b), res, ORDER_SQL(kind->first_read), 2, p, err)
                 : lb_err_set(err, LB_ERR_NOMEM, "order ids");
    }
    store_array_free(&ids);
    store_array_free(&second);
    return st;
}

static const char *
create_order_of(const svc_item *it)
{
    return ((const Layby__V1__CreateOrder *)it->msg)->order_id;
}

static const char *
create_address_of(const svc_item *it)
{
    return ((const Layby__V1__CreateOrder *)it->msg)->address_id;
}

static const order_group_kind create_group = { create_check, create_order_of, create_address_of,
                                               ORDER_SQL_CREATE_LOOK_MANY };

/* A group of commands in two statements whatever its size (was two a
 * command): the looks, then the inserts; then repeats of an order within the
 * group one by one. */
lb_status
order_create(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    if (n == 1)
        return create_one(b, &items[0], err);
    order_role *roles = calloc(n, sizeof *roles); /* ROLE_DONE */
    size_t *lead_item = calloc(n, sizeof *lead_item), leads = 0, n_done = 0;
    svc_item **done = calloc(n, sizeof *done);
    create_rows r;
    create_rows_begin(&r);
    PGresult *res = NULL;
    lb_status st = roles && lead_item && done ? order_group_read(b, &create_group, items, n, roles,
                                                                 lead_item, &leads, &res, err)
                                              : lb_err_set(err, LB_ERR_NOMEM, "order group");
    /* Row k of the look is the k-th lead's. */
    for (size_t k = 0; st == LB_OK && k < leads; k++) {
        bool added;
        svc_item *it = &items[lead_item[k]];
        if ((st = create_decide(b, it, res, (int)k, 0, &r, &added, err)) == LB_OK && added)
            done[n_done++] = it;
    }
    if (st == LB_OK && n_done > 0)
        st = create_rows_insert(svc_batch_store(b), &r, err);
    for (size_t i = 0; st == LB_OK && i < n_done; i++)
        st = emit_created(b, done[i], (const Layby__V1__CreateOrder *)done[i]->msg, err);
    for (size_t i = 0; st == LB_OK && i < n; i++)
        if (roles[i] == ROLE_LATER)
            st = create_one(b, &items[i], err);
    PQclear(res);
    create_rows_free(&r);
    free(roles);
    free(lead_item);
    free(done);
    return st;
}

/* --- set_status ---------------------------------------------------------- */

static bool
expected(const Layby__V1__SetOrderStatus *c, const char *now)
{
    if (c->n_expect == 0)
        return true;
    for (size_t i = 0; i < c->n_expect; i++)
        if (strcmp(c->expect[i], now) == 0)
            return true;
    return false;
}

/* The moves a group makes, as the array parameters of LINE_PRICE (one entry
 * per priced line, l_*) and ORDER_SET (one per move, o_*), and what each
 * move's answer needs. */
typedef struct set_moves {
    store_array l_order, l_product, l_name, l_price;
    store_array o_id, o_status, o_at, o_reason, o_deadline, o_shorts;
    size_t n, n_lines;
    struct set_move {
        svc_item *it;
        int64_t total; /* the locked row's; the priced total once written */
        char member[ID_STR_LEN];
        char at[32];
    } * m; /* room for the group */
} set_moves;
#define SET_LINE_ARRAYS 4
#define SET_MOVE_ARRAYS 6

static store_array *
set_moves_array(set_moves *mv, size_t i)
{
    store_array *const all[SET_LINE_ARRAYS + SET_MOVE_ARRAYS] = {
        &mv->l_order,  &mv->l_product, &mv->l_name,   &mv->l_price,    &mv->o_id,
        &mv->o_status, &mv->o_at,      &mv->o_reason, &mv->o_deadline, &mv->o_shorts,
    };
    return all[i];
}

static lb_status
set_moves_begin(set_moves *mv, size_t cap, lb_err *err)
{
    memset(mv, 0, sizeof *mv);
    for (size_t i = 0; i < SET_LINE_ARRAYS + SET_MOVE_ARRAYS; i++)
        store_array_begin(set_moves_array(mv, i));
    mv->m = calloc(cap, sizeof *mv->m);
    return mv->m != NULL ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "order moves");
}

static void
set_moves_free(set_moves *mv)
{
    for (size_t i = 0; i < SET_LINE_ARRAYS + SET_MOVE_ARRAYS; i++)
        store_array_free(set_moves_array(mv, i));
    free(mv->m);
}

/* Adds the move of item it, allowed from the locked row's state. */
static void
set_moves_add(set_moves *mv, svc_item *it, const char *member, int64_t total)
{
    const Layby__V1__SetOrderStatus *c = (const Layby__V1__SetOrderStatus *)it->msg;
    struct set_move *m = &mv->m[mv->n++];
    m->it = it;
    m->total = total;
    snprintf(m->member, sizeof m->member, "%s", member);
    lb_time_format(m->at, sizeof m->at, it->now_ms);
    for (size_t i = 0; i < c->n_lines; i++) {
        store_array_text(&mv->l_order, c->order_id);
        store_array_text(&mv->l_product, c->lines[i]->product_id);
        store_array_text(&mv->l_name, c->lines[i]->name);
        store_array_int(&mv->l_price, c->lines[i]->unit_price);
    }
    mv->n_lines += c->n_lines;
    store_array_text(&mv->o_id, c->order_id);
    store_array_text(&mv->o_status, c->status);
    store_array_text(&mv->o_at, m->at);
    store_array_text(&mv->o_reason, c->reason);
    if (c->payment_deadline_ms > 0) {
        char deadline[32];
        lb_time_format(deadline, sizeof deadline, c->payment_deadline_ms);
        store_array_text(&mv->o_deadline, deadline);
    } else {
        store_array_null(&mv->o_deadline);
    }
    /* The short products as one text element: the arrays of a group's moves
     * differ in length, which a SQL array of arrays cannot hold. */
    char shorts[ORDER_ITEMS_MAX * ID_STR_LEN + 1] = "";
    size_t used = 0;
    for (size_t i = 0; i < c->n_short_product_ids && i < ORDER_ITEMS_MAX; i++)
        if (id_valid(c->short_product_ids[i]))
            used += (size_t)snprintf(shorts + used, sizeof shorts - used, "%s%s",
                                     used > 0 ? "," : "", c->short_product_ids[i]);
    store_array_text(&mv->o_shorts, shorts);
}

/* Writes every move: the reserved names and prices and the totals from them
 * (LINE_PRICE), then the statuses with their history entries (ORDER_SET),
 * then answers each. A move whose requester waits for the order reads it
 * back after the writes, total included; the others' totals are the locked
 * rows' (only LINE_PRICE changes one) unless their lines were priced. So the
 * writes are waited for only when such a total must be read back: else
 * their failure fails the order read behind them (one round trip for all,
 * the place's payable step) or the commit. */
static lb_status
set_moves_write(svc_batch *b, set_moves *mv, lb_err *err)
{
    if (mv->n == 0)
        return LB_OK;
    store *s = svc_batch_store(b);
    store_array *arrays[SET_LINE_ARRAYS + SET_MOVE_ARRAYS];
    const char *p[SET_LINE_ARRAYS + SET_MOVE_ARRAYS];
    for (size_t i = 0; i < SET_LINE_ARRAYS + SET_MOVE_ARRAYS; i++)
        arrays[i] = set_moves_array(mv, i);
    if (!store_arrays_end(arrays, SET_LINE_ARRAYS + SET_MOVE_ARRAYS, p))
        return lb_err_set(err, LB_ERR_NOMEM, "order moves");
    bool totals = false;
    for (size_t i = 0; i < mv->n && !totals; i++) {
        const Layby__V1__SetOrderStatus *c = (const Layby__V1__SetOrderStatus *)mv->m[i].it->msg;
        totals = c->n_lines > 0 && !wants_order(c, mv->m[i].it);
    }
    PGresult *res = NULL;
    lb_status st = LB_OK;
    if (mv->n_lines > 0)
        st = store_exec(s, NULL, ORDER_SQL(ORDER_SQL_LINE_PRICE), SET_LINE_ARRAYS, p, err);
    if (st == LB_OK)
        st = store_exec(s, totals ? &res : NULL, ORDER_SQL(ORDER_SQL_ORDER_SET), SET_MOVE_ARRAYS,
                        p + SET_LINE_ARRAYS, err);
    /* Row: the move's position (1-based) and the order's total. */
    for (int r = 0; st == LB_OK && res != NULL && r < PQntuples(res); r++) {
        long k = atol(PQgetvalue(res, r, 0)) - 1;
        if (k >= 0 && (size_t)k < mv->n)
            mv->m[k].total = atoll(PQgetvalue(res, r, 1));
    }
    PQclear(res);
    for (size_t i = 0; st == LB_OK && i < mv->n; i++) {
        struct set_move *m = &mv->m[i];
        const Layby__V1__SetOrderStatus *c = (const Layby__V1__SetOrderStatus *)m->it->msg;
        if (wants_order(c, m->it)) {
            if ((st = answer_order(b, m->it, c->order_id, err)) != LB_OK)
                break;
            m->total = ((const Layby__V1__Order *)m->it->reply)->total;
        }
        st = emit_status_set(b, m->it, c, m->total, m->member, m->at, err);
    }
    return st;
}

/* The order locked and its history entry of the status asked for (ORDER_LOCK). */
static lb_status
order_lock(svc_batch *b, const Layby__V1__SetOrderStatus *c, PGresult **res, lb_err *err)
{
    const char *p[] = { c->order_id, c->status };
    return svc_batch_read_first(b, res, ORDER_SQL(ORDER_SQL_ORDER_LOCK), 2, p, err);
}

lb_status
order_status_prefetch(svc_batch *b, const svc_item *items, size_t n, lb_err *err)
{
    (void)n; /* one: svc_handler.prefetch */
    const Layby__V1__SetOrderStatus *c = (const Layby__V1__SetOrderStatus *)items[0].msg;
    if (!id_valid(c->order_id) || !order_status_known(c->status))
        return LB_OK; /* the handler refuses it without reading */
    return order_lock(b, c, NULL, err);
}

/* Refuses a command without a valid order id or a known status: *ok says
 * whether it goes on to the lock. */
static lb_status
set_check(svc_batch *b, svc_item *it, bool *ok, lb_err *err)
{
    const Layby__V1__SetOrderStatus *c = (const Layby__V1__SetOrderStatus *)it->msg;
    *ok = false;
    if (!id_valid(c->order_id))
        return emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true,
                            LB_ERR_NOT_FOUND, "orderId", "no such order", err);
    if (!order_status_known(c->status))
        return emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true,
                            LB_ERR_INVALID, "status", "unknown order status", err);
    *ok = true;
    return LB_OK;
}

/* What the lock found for a checked command: row `row` of res from column
 * col (status, member, total, the status's history entry), row < 0 for no
 * such order. A status reached before answers as it did then; a move DESIGN
 * §6 allows joins mv; any other is refused.
 *
 * An entry committed after the lock's snapshot (another instance set the
 * status while this one waited for the lock) is not in the row: the status
 * then is c->status already, which no move allows, and the history is asked
 * again here with a new snapshot. */
static lb_status
set_decide(svc_batch *b, svc_item *it, const PGresult *res, int row, int col, set_moves *mv,
           lb_err *err)
{
    const Layby__V1__SetOrderStatus *c = (const Layby__V1__SetOrderStatus *)it->msg;
    if (row < 0)
        return emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true,
                            LB_ERR_NOT_FOUND, "orderId", "no such order", err);
    const char *now_status = PQgetvalue(res, row, col), *member = PQgetvalue(res, row, col + 1);
    int64_t total = atoll(PQgetvalue(res, row, col + 2));
    if (!PQgetisnull(res, row, col + 3)) /* reached before: the first outcome again */
        return emit_status_set(b, it, c, total, member, PQgetvalue(res, row, col + 3), err);
    if (expected(c, now_status) && order_transition_ok(now_status, c->status)) {
        set_moves_add(mv, it, member, total);
        return LB_OK;
    }
    PGresult *h = NULL;
    const char *hp[] = { c->order_id, c->status };
    lb_status st = store_exec(svc_batch_store(b), &h, ORDER_SQL(ORDER_SQL_HISTORY_HAS), 2, hp, err);
    if (st == LB_OK && PQntuples(h) == 1) { /* reached meanwhile: the first outcome again */
        st = emit_status_set(b, it, c, atoll(PQgetvalue(h, 0, 0)), PQgetvalue(h, 0, 1),
                             PQgetvalue(h, 0, 2), err);
    } else if (st == LB_OK) {
        bool cancel = strcmp(c->status, "CANCELLED") == 0;
        bool ret = strcmp(c->status, "RETURN_REQUESTED") == 0;
        lb_status code = cancel ? LB_ERR_NOT_CANCELLABLE
                         : ret  ? LB_ERR_NOT_RETURNABLE
                                : LB_ERR_STATE;
        char why[160];
        snprintf(why, sizeof why, "the order is %s: it cannot become %s", now_status, c->status);
        st = emit_refused(b, it, c->saga_id, c->step, c->attempt, c->order_id, true, code, NULL,
                          why, err);
    }
    PQclear(h);
    return st;
}

/* One command: its lock prefetched with the inbox claim when it is the
 * batch's only message. */
static lb_status
set_one(svc_batch *b, svc_item *it, lb_err *err)
{
    const Layby__V1__SetOrderStatus *c = (const Layby__V1__SetOrderStatus *)it->msg;
    bool ok;
    lb_status st = set_check(b, it, &ok, err);
    if (st != LB_OK || !ok)
        return st;
    PGresult *res = NULL;
    set_moves mv;
    if ((st = set_moves_begin(&mv, 1, err)) == LB_OK &&
        (st = order_lock(b, c, &res, err)) == LB_OK &&
        (st = set_decide(b, it, res, PQntuples(res) > 0 ? 0 : -1, 0, &mv, err)) == LB_OK)
        st = set_moves_write(b, &mv, err);
    set_moves_free(&mv);
    PQclear(res);
    return st;
}

static const char *
set_order_of(const svc_item *it)
{
    return ((const Layby__V1__SetOrderStatus *)it->msg)->order_id;
}

static const char *
set_status_of(const svc_item *it)
{
    return ((const Layby__V1__SetOrderStatus *)it->msg)->status;
}

static const order_group_kind set_group = { set_check, set_order_of, set_status_of,
                                            ORDER_SQL_ORDER_LOCK_MANY };

/* A group of commands in three statements whatever its size (was three or
 * four a command): the orders locked in key order (two instances' groups
 * never wait on each other in a cycle), the lines priced, the moves; then
 * commands for an order a lead has, one by one. */
lb_status
order_status_set(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    if (n == 1)
        return set_one(b, &items[0], err);
    order_role *roles = calloc(n, sizeof *roles); /* ROLE_DONE */
    size_t *lead_item = calloc(n, sizeof *lead_item), leads = 0;
    bool *found = calloc(n, sizeof *found);
    PGresult *res = NULL;
    set_moves mv;
    lb_status st = set_moves_begin(&mv, n, err);
    if (st == LB_OK)
        st = roles && lead_item && found
                 ? order_group_read(b, &set_group, items, n, roles, lead_item, &leads, &res, err)
                 : lb_err_set(err, LB_ERR_NOMEM, "order group");
    /* Rows in key order, each naming its lead (1-based); a lead with no row
     * has no order. */
    for (int r = 0; st == LB_OK && res != NULL && r < PQntuples(res); r++) {
        long k = atol(PQgetvalue(res, r, 0)) - 1;
        if (k < 0 || (size_t)k >= leads || found[k]) {
            st = lb_err_set(err, LB_ERR_INTERNAL, "order lock: row %d names no lead", r);
            break;
        }
        found[k] = true;
        st = set_decide(b, &items[lead_item[k]], res, r, 1, &mv, err);
    }
    for (size_t k = 0; st == LB_OK && k < leads; k++)
        if (!found[k])
            st = set_decide(b, &items[lead_item[k]], NULL, -1, 0, &mv, err);
    if (st == LB_OK)
        st = set_moves_write(b, &mv, err);
    for (size_t i = 0; st == LB_OK && i < n; i++)
        if (roles[i] == ROLE_LATER)
            st = set_one(b, &items[i], err);
    PQclear(res);
    set_moves_free(&mv);
    free(roles);
    free(lead_item);
    free(found);
    return st;
}
