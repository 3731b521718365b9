/* catalog_wishlist.c - a member's wishlist: set a quantity, remove an item,
 * clear the ordered items once an order was placed, and the list with current
 * names and prices.
 *
 * The member id always comes from the edge's verified token (a message field
 * the edge fills), never from the client's body, so a member only ever sees
 * and changes their own list. A write answers with the whole list as it is
 * after the write, read in the same transaction. */
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "engine/id.h"

/* The list of member_id as the catalog_wishlist_get statement returns it. */
static lb_status
wishlist_read(Layby__V1__Wishlist **out, store *s, const char *member_id, lb_err *err)
{
    const char *params[] = { member_id };
    PGresult *res = NULL;
    lb_status st = store_exec(s, &res, "catalog_wishlist_get", 1, params, err);
    if (st != LB_OK)
        return st;
    int rows = PQntuples(res);
    Layby__V1__Wishlist *w = malloc(sizeof *w);
    if (w == NULL) {
        PQclear(res);
        return lb_err_set(err, LB_ERR_NOMEM, "wishlist");
    }
    layby__v1__wishlist__init(w);
    w->items = calloc(rows ? (size_t)rows : 1, sizeof *w->items);
    for (int r = 0; w->items != NULL && r < rows; r++) {
        Layby__V1__WishlistItem *it = malloc(sizeof *it);
        if (it == NULL)
            break;
        layby__v1__wishlist_item__init(it);
        w->items[w->n_items++] = it;
        it->product_id = strdup(PQgetvalue(res, r, 0));
        it->name = strdup(PQgetvalue(res, r, 1));
        it->price = atoll(PQgetvalue(res, r, 2));
        it->quantity = atoll(PQgetvalue(res, r, 3));
        it->subtotal = it->price * it->quantity;
        w->total += it->subtotal;
        if (it->product_id == NULL || it->name == NULL)
            break;
    }
    PQclear(res);
    bool complete =
        w->items != NULL && w->n_items == (size_t)rows &&
        (rows == 0 || (w->items[rows - 1]->product_id != NULL && w->items[rows - 1]->name != NULL));
    if (!complete) {
        protobuf_c_message_free_unpacked(&w->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "wishlist items");
    }
    *out = w;
    return LB_OK;
}

/* What one wishlist command needs checked and run: table rows, no if-chain. */
typedef struct wish_cmd {
    const ProtobufCMessageDescriptor *desc;
    size_t member_off;
    lb_status (*run)(svc_batch *b, svc_item *it, lb_err *err);
} wish_cmd;

static lb_status
put_run(svc_batch *b, svc_item *it, lb_err *err)
{
    const Layby__V1__PutWishlistItem *p = (const Layby__V1__PutWishlistItem *)it->msg;
    if (!id_valid(p->product_id)) {
        it->outcome =
            lb_err_field(&it->why, LB_ERR_INVALID, "productId", "productId must be a UUID");
        return LB_OK;
    }
    if (p->quantity < 1 || p->quantity > CATALOG_WISH_QTY_MAX) {
        it->outcome = lb_err_field(&it->why, LB_ERR_INVALID, "quantity",
                                   "quantity must be between 1 and %d", CATALOG_WISH_QTY_MAX);
        return LB_OK;
    }
    char qty[16], when[32];
    snprintf(qty, sizeof qty, "%lld", (long long)p->quantity);
    lb_time_format(when, sizeof when, it->now_ms);
    const char *params[] = { p->member_id, p->product_id, qty, when };
    PGresult *res = NULL;
    lb_status st = store_exec(svc_batch_store(b), &res, "catalog_wishlist_put", 4, params, err);
    if (st == LB_OK && PQntuples(res) == 0)
        it->outcome = lb_err_set(&it->why, LB_ERR_NOT_FOUND, "no product %s", p->product_id);
    PQclear(res);
    return st;
}

static lb_status
remove_run(svc_batch *b, svc_item *it, lb_err *err)
{
    const Layby__V1__RemoveWishlistItem *r = (const Layby__V1__RemoveWishlistItem *)it->msg;
    if (!id_valid(r->product_id)) {
        it->outcome =
            lb_err_field(&it->why, LB_ERR_INVALID, "productId", "productId must be a UUID");
        return LB_OK;
    }
    const char *params[] = { r->member_id, r->product_id };
    PGresult *res = NULL;
    lb_status st = store_exec(svc_batch_store(b), &res, "catalog_wishlist_remove", 2, params, err);
    if (st == LB_OK && PQntuples(res) == 0)
        it->outcome = lb_err_set(&it->why, LB_ERR_NOT_FOUND, "product %s is not on the wishlist",
                                 r->product_id);
    PQclear(res);
    return st;
}

static lb_status
ordered_run(svc_batch *b, svc_item *it, lb_err *err)
{
    const Layby__V1__OrderWishlist *o = (const Layby__V1__OrderWishlist *)it->msg;
    if (!id_valid(o->order_id)) {
        it->outcome = lb_err_field(&it->why, LB_ERR_INVALID, "orderId", "orderId must be a UUID");
        return LB_OK;
    }
    store_array ids = { 0 };
    store_array_begin(&ids);
    for (size_t i = 0; i < o->n_product_ids; i++)
        if (id_valid(o->product_ids[i]))
            store_array_text(&ids, o->product_ids[i]);
    store_array_end(&ids);
    char when[32];
    lb_time_format(when, sizeof when, it->now_ms);
    const char *params[] = { o->order_id, o->member_id, ids.p, when };
    lb_status st =
        ids.oom ? lb_err_set(err, LB_ERR_NOMEM, "product ids")
                : store_exec(svc_batch_store(b), NULL, "catalog_wishlist_ordered", 4, params, err);
    store_array_free(&ids);
    if (st != LB_OK)
        return st;
    Layby__V1__WishlistOrdered ev = LAYBY__V1__WISHLIST_ORDERED__INIT;
    ev.saga_id = o->saga_id;
    ev.step = o->step;
    ev.attempt = o->attempt;
    ev.member_id = o->member_id;
    ev.order_id = o->order_id;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__wishlist_ordered__descriptor, it->env);
    return svc_emit(b, SUBJ_WISHLIST_ORDERED, &env, &ev.base, err);
}

/* clang-format off */
static const wish_cmd wish_cmds[] = {
    { &layby__v1__put_wishlist_item__descriptor,    offsetof(Layby__V1__PutWishlistItem, member_id),    put_run },
    { &layby__v1__remove_wishlist_item__descriptor, offsetof(Layby__V1__RemoveWishlistItem, member_id), remove_run },
    { &layby__v1__order_wishlist__descriptor,       offsetof(Layby__V1__OrderWishlist, member_id),      ordered_run },
};
/* clang-format on */

lb_status
catalog_wishlist_handle(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        svc_item *it = &items[i];
        const wish_cmd *c = NULL;
        for (size_t k = 0; k < LB_COUNTOF(wish_cmds) && c == NULL; k++)
            if (wish_cmds[k].desc == it->msg->descriptor)
                c = &wish_cmds[k];
        if (c == NULL)
            return lb_err_set(err, LB_ERR_INTERNAL, "no wishlist command %s",
                              it->msg->descriptor->name);
        const char *member = *(char *const *)((const char *)it->msg + c->member_off);
        if (!id_valid(member)) {
            it->outcome =
                lb_err_field(&it->why, LB_ERR_INVALID, "memberId", "memberId must be a UUID");
            continue;
        }
        lb_status st = c->run(b, it, err);
        if (st != LB_OK)
            return st;
        if (it->outcome != LB_OK || c->run == ordered_run)
            continue;
        Layby__V1__Wishlist *w = NULL;
        if ((st = wishlist_read(&w, svc_batch_store(b), member, err)) != LB_OK)
            return st;
        it->reply = &w->base;
    }
    return LB_OK;
}

lb_status
catalog_wishlist_get(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                     lb_err *err)
{
    const Layby__V1__GetWishlist *g = (const Layby__V1__GetWishlist *)req;
    if (!id_valid(g->member_id))
        return lb_err_field(err, LB_ERR_INVALID, "memberId", "memberId must be a UUID");
    Layby__V1__Wishlist *w = NULL;
    lb_status st = wishlist_read(&w, svc_query_store(q), g->member_id, err);
    if (st == LB_OK)
        *reply = &w->base;
    return st;
}
