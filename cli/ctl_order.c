/* ctl_order.c - `layby-ctl order list|show`: orders as the order service
 * answers them (queries as the admin user, any member's), the delivery from
 * the delivery service, and every saga of the order from schema saga, each
 * with its transition log: the place saga (its id is the order id; cancel
 * and return are its signals) and each pay request's saga (its correlation
 * is the order id, sql/0770), oldest first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "codec.h"
#include "ctl.h"
#include "ctl_saga_int.h"
#include "engine/subjects.h"
#include "layby/v1/delivery.pb-c.h"
#include "layby/v1/order.pb-c.h"

typedef struct order_list_conf {
    ctl_conn conn;
    const char *member;
    const char *status;
    int64_t limit;
} order_list_conf;

/* clang-format off */
static const cfg_opt order_list_opts[] = {
    { "member", NULL, CFG_STR, "",   offsetof(order_list_conf, member), 0, 0,   "only this member's orders" },
    { "status", NULL, CFG_STR, "",   offsetof(order_list_conf, status), 0, 0,   "only orders in this status" },
    { "limit",  NULL, CFG_INT, "20", offsetof(order_list_conf, limit),  1, 100, "how many" },
};
/* clang-format on */
const ctl_flags ctl_order_list_flags = CTL_FLAGS(order_list_opts);

/* A query as the admin; *out decoded as want. */
static lb_status
ask(ProtobufCMessage **out, bus *b, const ctl_conn *c, const char *subject,
    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *want, lb_err *err)
{
    bus_envelope env;
    bus_envelope_init(&env, req->descriptor, NULL);
    natsMsg *reply = NULL;
    lb_status s = bus_request(&reply, b, subject, &env, req, c->timeout_ms, err);
    if (s == LB_OK)
        s = bus_reply_decode(out, reply, want, err);
    natsMsg_Destroy(reply);
    return s;
}

int
ctl_order_list(const ctl_cmd *cmd, int argc, char **argv)
{
    order_list_conf conf = { 0 };
    int rc = ctl_args(&conf, cmd, order_list_opts, LB_COUNTOF(order_list_opts), argc, argv);
    if (rc >= 0)
        return rc;
    lb_err err;
    bus *b = NULL;
    Layby__V1__OrderList *list = NULL;
    Layby__V1__ListOrders l = LAYBY__V1__LIST_ORDERS__INIT;
    l.member_id = (char *)conf.member;
    l.status = (char *)conf.status;
    l.limit = conf.limit;
    lb_status s = ctl_bus_open(&b, &conf.conn, &err);
    if (s == LB_OK)
        s = ask((ProtobufCMessage **)&list, b, &conf.conn, SUBJ_ORDER_LIST_ORDERS, &l.base,
                &layby__v1__order_list__descriptor, &err);
    json_t *j = NULL;
    if (s == LB_OK && ctl_out.json) {
        if ((s = codec_json_encode_proto3(&j, &list->base, &err)) == LB_OK)
            ctl_json_doc(j);
    } else if (s == LB_OK) {
        printf("%-36s  %-16s  %12s  %-24s\n", "ORDER", "STATUS", "TOTAL", "CREATED");
        for (size_t i = 0; i < list->n_items; i++) {
            const Layby__V1__Order *o = list->items[i];
            printf("%-36s  %-16s  %12lld  %-24s\n", o->order_id, o->status, (long long)o->total,
                   o->created_at);
        }
        if (list->next_cursor[0] != '\0')
            printf("(more: the list is newest first; narrow it with --status or --member)\n");
    }
    if (list != NULL)
        protobuf_c_message_free_unpacked(&list->base, NULL);
    bus_close(b);
    return s == LB_OK ? CTL_EXIT_OK : ctl_fail(cmd, &err);
}

/* The ship-to address is a snapshot of the address's fields as they were
 * when ordering (services/order: an AddressDraft and the address id): an
 * Address's default flag and creation time are not part of it, and showing
 * them as false and "" would say something the order does not know. */
static void
order_fix(json_t *order)
{
    static const char *const not_held[] = { "isDefault", "createdAt" };
    json_t *ship_to = json_object_get(order, "shipTo");
    for (size_t i = 0; json_is_object(ship_to) && i < LB_COUNTOF(not_held); i++)
        json_object_del(ship_to, not_held[i]);
}

/* Prints msg as indented JSON under a heading, or with --json adds it to
 * doc under key; fix (NULL = none) trims the JSON first. */
static void
json_print(json_t *doc, const char *key, const char *title, const ProtobufCMessage *msg,
           void (*fix)(json_t *))
{
    json_t *j = NULL;
    if (codec_json_encode(&j, msg, NULL) != LB_OK)
        return;
    if (fix != NULL)
        fix(j);
    if (ctl_out.json) {
        json_object_set_new(doc, key, j);
        return;
    }
    char *text = json_dumps(j, JSON_INDENT(2));
    printf("%s\n%s\n", title, text ? text : "");
    free(text);
    json_decref(j);
}

/* The order's sagas, oldest first. */
#define SQL_ORDER_SAGAS                                                        \
    "SELECT saga_id::text, saga_type FROM saga.sagas WHERE saga_id = $1::uuid" \
    " OR correlation = $1::uuid ORDER BY created_at, saga_id"

/* Every saga of order id: with --json into doc's "sagas" (and the place
 * saga, as before, under "saga"), else printed one after the other. */
static lb_status
sagas_show(json_t *doc, PGconn *pg, const char *id, lb_err *err)
{
    const char *p[] = { id };
    PGresult *r = saga_view_query(pg, SQL_ORDER_SAGAS, 1, p, err);
    if (r == NULL)
        return LB_ERR_DB;
    json_t *all = json_array();
    lb_status s = LB_OK;
    int n = PQntuples(r);
    if (!ctl_out.json)
        printf("sagas: %d\n", n);
    for (int i = 0; i < n && s == LB_OK; i++) {
        const char *sid = PQgetvalue(r, i, 0);
        json_t *saga = NULL;
        if (!ctl_out.json) {
            printf("saga %d of %d (%s):\n", i + 1, n, PQgetvalue(r, i, 1));
            s = ctl_saga_print(pg, sid, err);
        } else if ((s = saga_view_show(&saga, pg, sid, SAGA_VIEW_PAGE_ALL, err)) == LB_OK) {
            if (strcmp(sid, id) == 0)
                json_object_set(doc, "saga", saga);
            json_array_append_new(all, saga);
        }
    }
    PQclear(r);
    if (s == LB_OK && n == 0)
        s = lb_err_set(err, LB_ERR_NOT_FOUND, "no saga of order %s", id);
    json_object_set_new(doc, "sagas", all);
    return s;
}

typedef struct order_show_conf {
    ctl_conn conn;
} order_show_conf;

int
ctl_order_show(const ctl_cmd *cmd, int argc, char **argv)
{
    order_show_conf conf = { 0 };
    const char *id = NULL;
    int rc = ctl_positional(&id, cmd, "order id", &argc, argv);
    if (rc < 0)
        rc = ctl_args(&conf, cmd, NULL, 0, argc, argv);
    if (rc >= 0)
        return rc;
    lb_err err;
    bus *b = NULL;
    PGconn *pg = NULL;
    ProtobufCMessage *o = NULL, *d = NULL;
    Layby__V1__GetOrder g = LAYBY__V1__GET_ORDER__INIT;
    g.order_id = (char *)id; /* member "" = any order */
    lb_status s = ctl_bus_open(&b, &conf.conn, &err);
    if (s == LB_OK)
        s = ask(&o, b, &conf.conn, SUBJ_ORDER_GET_ORDER, &g.base, &layby__v1__order__descriptor,
                &err);
    json_t *doc = json_object();
    if (s == LB_OK) {
        json_print(doc, "order", "order:", o, order_fix);
        Layby__V1__GetDelivery gd = LAYBY__V1__GET_DELIVERY__INIT;
        gd.order_id = (char *)id;
        lb_err derr;
        if (ask(&d, b, &conf.conn, SUBJ_DELIVERY_GET, &gd.base, &layby__v1__delivery__descriptor,
                &derr) == LB_OK)
            json_print(doc, "delivery", "delivery:", d, NULL);
        else if (!ctl_out.json)
            printf("delivery: none (%s)\n", derr.msg);
        if ((s = ctl_pg_open(&pg, &conf.conn, &err)) == LB_OK)
            s = sagas_show(doc, pg, id, &err);
        if (s == LB_OK && ctl_out.json)
            ctl_json_doc(json_incref(doc));
    }
    json_decref(doc);
    if (o != NULL)
        protobuf_c_message_free_unpacked(o, NULL);
    if (d != NULL)
        protobuf_c_message_free_unpacked(d, NULL);
    PQfinish(pg);
    bus_close(b);
    return s == LB_OK ? CTL_EXIT_OK : ctl_fail(cmd, &err);
}
