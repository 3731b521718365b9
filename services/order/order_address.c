/* order_address.c - the members' address books: create, update, delete.
 *
 * Rules: one default per member (a partial unique index holds it whatever
 * races); a member's first address becomes the default; setting isDefault
 * moves it; deleting the default makes the newest remaining address the
 * default. Another member's address is not_found (404, never 403). The
 * address id is chosen by the sender, so a repeated create is the same
 * address and answers with the stored one. */
#include <stdlib.h>
#include <string.h>

#include "order.h"

/* The stored row of an address: its member and whether it is the default. */
typedef struct address_row {
    bool found;
    char member_id[ID_STR_LEN];
    bool is_default;
    PGresult *res; /* the row, for building the reply */
} address_row;

static lb_status
address_load(address_row *row, store *s, const char *address_id, lb_err *err)
{
    const char *p[] = { address_id };
    memset(row, 0, sizeof *row);
    lb_status st = store_exec(s, &row->res, ORDER_SQL(ORDER_SQL_ADDRESS_GET), 1, p, err);
    if (st != LB_OK)
        return st;
    if (PQntuples(row->res) == 1) {
        row->found = true;
        snprintf(row->member_id, sizeof row->member_id, "%s", PQgetvalue(row->res, 0, 1));
        row->is_default = PQgetvalue(row->res, 0, 3)[0] == 't';
    }
    return LB_OK;
}

/* Answers it with the address in row 0 of res. */
static lb_status
reply_address(svc_item *it, const PGresult *res, lb_err *err)
{
    Layby__V1__Address *a = NULL;
    lb_status st = order_msg_address_from_row(&a, res, 0, err);
    if (st == LB_OK)
        it->reply = &a->base;
    return st;
}

static lb_status
refuse(svc_item *it, lb_status code, const char *field, const char *msg)
{
    it->outcome = lb_err_field(&it->why, code, field, "%s", msg);
    return LB_OK;
}

static lb_status
create_one(store *s, svc_item *it, lb_err *err)
{
    const Layby__V1__CreateAddress *c = (const Layby__V1__CreateAddress *)it->msg;
    if (!id_valid(c->member_id))
        return refuse(it, LB_ERR_INVALID, "memberId", "memberId must be a UUID");
    if (!id_valid(c->address_id))
        return refuse(it, LB_ERR_INVALID, "addressId", "addressId must be a UUID");
    if (c->draft == NULL)
        return refuse(it, LB_ERR_INVALID, "", "address fields missing");
    if ((it->outcome = order_address_validate(c->draft, false, &it->why)) != LB_OK)
        return LB_OK;
    address_row row;
    PGresult *res = NULL;
    lb_status st = address_load(&row, s, c->address_id, err);
    if (st != LB_OK)
        goto out;
    if (row.found) { /* a repeat: the first outcome */
        if (strcmp(row.member_id, c->member_id) != 0)
            st = refuse(it, LB_ERR_CONFLICT, "addressId", "address id already taken");
        else
            st = reply_address(it, row.res, err);
        goto out;
    }
    const char *mp[] = { c->member_id };
    if ((st = store_exec(s, &res, ORDER_SQL(ORDER_SQL_ADDRESS_COUNT), 1, mp, err)) != LB_OK)
        goto out;
    long count = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    res = NULL;
    if (count >= ORDER_ADDRESSES_MAX) {
        st = refuse(it, LB_ERR_CONFLICT, "", "the address book is full (20 addresses)");
        goto out;
    }
    bool make_default =
        count == 0 || (c->draft->is_default_present_case ==
                           LAYBY__V1__ADDRESS_DRAFT__IS_DEFAULT_PRESENT_IS_DEFAULT &&
                       c->draft->is_default);
    char when[32], ad[64], sealed[ORDER_SEALED_MAX * 2 + 3];
    lb_time_format(when, sizeof when, it->now_ms);
    order_ad_address(ad, sizeof ad, c->address_id);
    if ((st = order_address_seal(sealed, sizeof sealed, c->draft, ad, err)) != LB_OK)
        goto out;
    if (make_default) {
        const char *cp[] = { c->member_id, when };
        if ((st = store_exec(s, NULL, ORDER_SQL(ORDER_SQL_ADDRESS_CLEAR_DEFAULT), 2, cp, err)) !=
            LB_OK)
            goto out;
    }
    const char *ip[] = { c->address_id, c->member_id, sealed, make_default ? "true" : "false",
                         when };
    if ((st = store_exec(s, &res, ORDER_SQL(ORDER_SQL_ADDRESS_INSERT), 5, ip, err)) != LB_OK)
        goto out;
    st = reply_address(it, res, err);
out:
    PQclear(res);
    PQclear(row.res);
    return st;
}

/* Overlays the fields a PATCH sets onto the stored draft. */
static void
draft_merge(Layby__V1__AddressDraft *stored, const Layby__V1__AddressDraft *patch, char **keep)
{
    char **dst[] = { &stored->label, &stored->recipient, &stored->phone, &stored->zipcode,
                     &stored->city,  &stored->street,    &stored->detail };
    char *const src[] = { patch->label, patch->recipient, patch->phone, patch->zipcode,
                          patch->city,  patch->street,    patch->detail };
    for (size_t i = 0; i < LB_COUNTOF(dst); i++) {
        keep[i] = *dst[i];
        if (src[i] != NULL && *src[i] != '\0')
            *dst[i] = src[i];
    }
}

static void
draft_unmerge(Layby__V1__AddressDraft *stored, char **keep)
{
    char **dst[] = { &stored->label, &stored->recipient, &stored->phone, &stored->zipcode,
                     &stored->city,  &stored->street,    &stored->detail };
    for (size_t i = 0; i < LB_COUNTOF(dst); i++)
        *dst[i] = keep[i];
}

static lb_status
update_one(store *s, svc_item *it, lb_err *err)
{
    const Layby__V1__UpdateAddress *u = (const Layby__V1__UpdateAddress *)it->msg;
    if (!id_valid(u->member_id))
        return refuse(it, LB_ERR_INVALID, "memberId", "memberId must be a UUID");
    if (!id_valid(u->address_id))
        return refuse(it, LB_ERR_NOT_FOUND, "", "no such address");
    if (u->draft == NULL)
        return refuse(it, LB_ERR_INVALID, "", "address fields missing");
    if ((it->outcome = order_address_validate(u->draft, true, &it->why)) != LB_OK)
        return LB_OK;
    address_row row;
    PGresult *res = NULL;
    Layby__V1__AddressDraft *stored = NULL;
    lb_status st = address_load(&row, s, u->address_id, err);
    if (st != LB_OK)
        goto out;
    if (!row.found || strcmp(row.member_id, u->member_id) != 0) {
        st = refuse(it, LB_ERR_NOT_FOUND, "", "no such address");
        goto out;
    }
    char when[32], ad[64], sealed[ORDER_SEALED_MAX * 2 + 3];
    lb_time_format(when, sizeof when, it->now_ms);
    order_ad_address(ad, sizeof ad, u->address_id);
    if ((st = order_address_open(&stored, PQgetvalue(row.res, 0, 2), ad, err)) != LB_OK)
        goto out;
    char *keep[7];
    draft_merge(stored, u->draft, keep);
    st = order_address_seal(sealed, sizeof sealed, stored, ad, err);
    draft_unmerge(stored, keep);
    if (st != LB_OK)
        goto out;
    bool set = u->draft->is_default_present_case ==
               LAYBY__V1__ADDRESS_DRAFT__IS_DEFAULT_PRESENT_IS_DEFAULT;
    /* The default can move to another address, not be switched off alone:
     * the book keeps exactly one default while it has addresses. */
    bool make_default = row.is_default || (set && u->draft->is_default);
    if (make_default && !row.is_default) {
        const char *cp[] = { u->member_id, when };
        if ((st = store_exec(s, NULL, ORDER_SQL(ORDER_SQL_ADDRESS_CLEAR_DEFAULT), 2, cp, err)) !=
            LB_OK)
            goto out;
    }
    const char *up[] = { u->address_id, sealed, make_default ? "true" : "false", when };
    if ((st = store_exec(s, &res, ORDER_SQL(ORDER_SQL_ADDRESS_UPDATE), 4, up, err)) != LB_OK)
        goto out;
    st = reply_address(it, res, err);
out:
    if (stored != NULL)
        protobuf_c_message_free_unpacked(&stored->base, NULL);
    PQclear(res);
    PQclear(row.res);
    return st;
}

static lb_status
delete_one(store *s, svc_item *it, lb_err *err)
{
    const Layby__V1__DeleteAddress *d = (const Layby__V1__DeleteAddress *)it->msg;
    if (!id_valid(d->member_id))
        return refuse(it, LB_ERR_INVALID, "memberId", "memberId must be a UUID");
    if (!id_valid(d->address_id))
        return refuse(it, LB_ERR_NOT_FOUND, "", "no such address");
    PGresult *res = NULL;
    const char *p[] = { d->address_id, d->member_id };
    lb_status st = store_exec(s, &res, ORDER_SQL(ORDER_SQL_ADDRESS_DELETE), 2, p, err);
    if (st != LB_OK)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return refuse(it, LB_ERR_NOT_FOUND, "", "no such address");
    }
    bool was_default = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (was_default) {
        char when[32];
        lb_time_format(when, sizeof when, it->now_ms);
        const char *pp[] = { d->member_id, when };
        if ((st = store_exec(s, NULL, ORDER_SQL(ORDER_SQL_ADDRESS_PROMOTE), 2, pp, err)) != LB_OK)
            return st;
    }
    Layby__V1__AddressDeleted *r = malloc(sizeof *r);
    if (r == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "reply");
    layby__v1__address_deleted__init(r);
    r->address_id = strdup(d->address_id);
    if (r->address_id == NULL) {
        free(r);
        return lb_err_set(err, LB_ERR_NOMEM, "reply");
    }
    it->reply = &r->base;
    return LB_OK;
}

typedef lb_status (*one_fn)(store *s, svc_item *it, lb_err *err);

static lb_status
each(svc_batch *b, svc_item *items, size_t n, one_fn fn, lb_err *err)
{
    store *s = svc_batch_store(b);
    for (size_t i = 0; i < n; i++) {
        lb_status st = fn(s, &items[i], err);
        if (st != LB_OK)
            return st;
    }
    return LB_OK;
}

lb_status
order_address_create(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    return each(b, items, n, create_one, err);
}

lb_status
order_address_update(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    return each(b, items, n, update_one, err);
}

lb_status
order_address_delete(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    return each(b, items, n, delete_one, err);
}

lb_status
order_addresses_list(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                     lb_err *err)
{
    const Layby__V1__ListAddresses *l = (const Layby__V1__ListAddresses *)req;
    if (!id_valid(l->member_id))
        return lb_err_field(err, LB_ERR_INVALID, "memberId", "memberId must be a UUID");
    const char *p[] = { l->member_id };
    PGresult *res = NULL;
    lb_status st =
        store_exec(svc_query_store(q), &res, ORDER_SQL(ORDER_SQL_ADDRESS_LIST), 1, p, err);
    if (st != LB_OK)
        return st;
    Layby__V1__AddressList *out = malloc(sizeof *out);
    int rows = PQntuples(res);
    if (out == NULL) {
        PQclear(res);
        return lb_err_set(err, LB_ERR_NOMEM, "address list");
    }
    layby__v1__address_list__init(out);
    out->items = calloc((size_t)(rows > 0 ? rows : 1), sizeof *out->items);
    if (out->items == NULL)
        st = lb_err_set(err, LB_ERR_NOMEM, "address list");
    for (int r = 0; st == LB_OK && r < rows; r++) {
        if ((st = order_msg_address_from_row(&out->items[r], res, r, err)) == LB_OK)
            out->n_items++;
    }
    PQclear(res);
    if (st != LB_OK) {
        protobuf_c_message_free_unpacked(&out->base, NULL);
        return st;
    }
    *reply = &out->base;
    return LB_OK;
}
