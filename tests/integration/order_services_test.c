/* order_services_test.c - layby-order, layby-payment and layby-delivery as
 * saga participants and as the address book, against real nats-server and
 * PostgreSQL: commands sent as a saga (or the edge) would, outcomes read from
 * the replies and from each service's own tables. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/id.h"
#include "layby/v1/common.pb-c.h"
#include "layby/v1/delivery.pb-c.h"
#include "layby/v1/order.pb-c.h"
#include "layby/v1/payment.pb-c.h"
#include "tsupport.h"

#define WAIT_MS 20000
/* A gateway outage travels as code "unavailable" (the first status with it). */
#define OUTAGE  lb_status_from_code("unavailable")

static bus *admin;
static tsupport_proc procs[3];

static void
setup(void)
{
    tsupport_reset();
    admin = tsupport_admin_bus("order-services-test");
    tsupport_daemon_start(&procs[0], "layby-order", 0, NULL, NULL);
    tsupport_daemon_start(&procs[1], "layby-payment", 0, NULL, NULL);
    tsupport_daemon_start(&procs[2], "layby-delivery", 0, NULL, NULL);
}

static void
teardown(void)
{
    tsupport_stack_close(&admin, procs, LB_COUNTOF(procs));
}

TestSuite(order_services, .init = setup, .fini = teardown, .timeout = 120);

/* Sends cmd and decodes the outcome: `want` into *out (LB_OK), or the
 * Failure's status with its text in err. */
static lb_status
send(const char *subject, const ProtobufCMessage *cmd, const ProtobufCMessageDescriptor *want,
     ProtobufCMessage **out, lb_err *err)
{
    bus_envelope env;
    bus_envelope_init(&env, cmd->descriptor, NULL);
    natsMsg *reply = NULL;
    lb_status st = bus_command(&reply, admin, subject, &env, cmd, WAIT_MS, err);
    cr_assert_eq(st, LB_OK, "%s: %s", subject, err->msg);
    ProtobufCMessage *m = NULL;
    st = bus_reply_decode(&m, reply, want, err);
    natsMsg_Destroy(reply);
    if (out != NULL)
        *out = m;
    else if (m != NULL)
        protobuf_c_message_free_unpacked(m, NULL);
    return st;
}

static lb_status
query(const char *subject, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *want,
      ProtobufCMessage **out, lb_err *err)
{
    bus_envelope env;
    bus_envelope_init(&env, req->descriptor, NULL);
    natsMsg *reply = NULL;
    lb_status st = bus_request(&reply, admin, subject, &env, req, WAIT_MS, err);
    cr_assert_eq(st, LB_OK, "%s: %s", subject, err->msg);
    st = bus_reply_decode(out, reply, want, err);
    natsMsg_Destroy(reply);
    return st;
}

/* --- address book ----------------------------------------------------------- */

static void
draft_fill(Layby__V1__AddressDraft *d, const char *street)
{
    layby__v1__address_draft__init(d);
    d->label = "home";
    d->recipient = "Kim Minji";
    d->phone = "010-1234-5678";
    d->zipcode = "06236";
    d->city = "Seoul";
    d->street = (char *)street;
    d->detail = "apt 1203";
}

static Layby__V1__Address *
address_create(const char *member, const char *street, bool make_default)
{
    char id[ID_STR_LEN];
    id_new(id);
    Layby__V1__AddressDraft d;
    draft_fill(&d, street);
    if (make_default) {
        d.is_default_present_case = LAYBY__V1__ADDRESS_DRAFT__IS_DEFAULT_PRESENT_IS_DEFAULT;
        d.is_default = true;
    }
    Layby__V1__CreateAddress c = LAYBY__V1__CREATE_ADDRESS__INIT;
    c.member_id = (char *)member;
    c.address_id = id;
    c.draft = &d;
    ProtobufCMessage *out = NULL;
    lb_err err;
    cr_assert_eq(send("layby.cmd.order.create_address", &c.base, &layby__v1__address__descriptor,
                      &out, &err),
                 LB_OK, "%s", err.msg);
    return (Layby__V1__Address *)out;
}

Test(order_services, address_book_keeps_one_default_and_hides_other_members)
{
    char alice[ID_STR_LEN], bob[ID_STR_LEN];
    id_new(alice);
    id_new(bob);
    Layby__V1__Address *a1 = address_create(alice, "12 Teheran-ro", false);
    cr_assert(a1->is_default, "a member's first address is the default");
    cr_assert_str_eq(a1->street, "12 Teheran-ro");
    Layby__V1__Address *a2 = address_create(alice, "7 Sejong-daero", true);
    cr_assert(a2->is_default);
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM orders.addresses WHERE is_default"), 1);

    /* Bob can neither change nor delete Alice's address: not found. */
    Layby__V1__AddressDraft patch = LAYBY__V1__ADDRESS_DRAFT__INIT;
    patch.city = "Busan";
    Layby__V1__UpdateAddress u = LAYBY__V1__UPDATE_ADDRESS__INIT;
    u.member_id = bob;
    u.address_id = a1->address_id;
    u.draft = &patch;
    lb_err err;
    cr_assert_eq(send("layby.cmd.order.update_address", &u.base, &layby__v1__address__descriptor,
                      NULL, &err),
                 LB_ERR_NOT_FOUND);
    Layby__V1__DeleteAddress del = LAYBY__V1__DELETE_ADDRESS__INIT;
    del.member_id = bob;
    del.address_id = a1->address_id;
    cr_assert_eq(send("layby.cmd.order.delete_address", &del.base,
                      &layby__v1__address_deleted__descriptor, NULL, &err),
                 LB_ERR_NOT_FOUND);

    /* Alice's PATCH changes one field and keeps the others. */
    u.member_id = alice;
    ProtobufCMessage *out = NULL;
    cr_assert_eq(send("layby.cmd.order.update_address", &u.base, &layby__v1__address__descriptor,
                      &out, &err),
                 LB_OK, "%s", err.msg);
    Layby__V1__Address *a1b = (Layby__V1__Address *)out;
    cr_assert_str_eq(a1b->city, "Busan");
    cr_assert_str_eq(a1b->street, "12 Teheran-ro");
    cr_assert(!a1b->is_default);

    /* Deleting the default makes the remaining address the default. */
    del.member_id = alice;
    del.address_id = a2->address_id;
    cr_assert_eq(send("layby.cmd.order.delete_address", &del.base,
                      &layby__v1__address_deleted__descriptor, NULL, &err),
                 LB_OK, "%s", err.msg);
    Layby__V1__ListAddresses l = LAYBY__V1__LIST_ADDRESSES__INIT;
    l.member_id = alice;
    out = NULL;
    cr_assert_eq(query("layby.qry.order.list_addresses", &l.base,
                       &layby__v1__address_list__descriptor, &out, &err),
                 LB_OK, "%s", err.msg);
    Layby__V1__AddressList *list = (Layby__V1__AddressList *)out;
    cr_assert_eq(list->n_items, 1);
    cr_assert(list->items[0]->is_default);
    l.member_id = bob;
    Layby__V1__AddressList *none = NULL;
    cr_assert_eq(query("layby.qry.order.list_addresses", &l.base,
                       &layby__v1__address_list__descriptor, (ProtobufCMessage **)&none, &err),
                 LB_OK);
    cr_assert_eq(none->n_items, 0);

    /* At rest nothing personal is readable. */
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM orders.addresses WHERE "
                                  "position('Teheran'::bytea IN sealed) > 0 OR "
                                  "position('Minji'::bytea IN sealed) > 0 OR "
                                  "position('010-1234'::bytea IN sealed) > 0"),
                 0);
    protobuf_c_message_free_unpacked(&none->base, NULL);
    protobuf_c_message_free_unpacked(&list->base, NULL);
    protobuf_c_message_free_unpacked(&a1b->base, NULL);
    protobuf_c_message_free_unpacked(&a2->base, NULL);
    protobuf_c_message_free_unpacked(&a1->base, NULL);
}

Test(order_services, invalid_address_names_the_field)
{
    char m[ID_STR_LEN], id[ID_STR_LEN];
    id_new(m);
    id_new(id);
    Layby__V1__AddressDraft d;
    draft_fill(&d, "1 Main st");
    d.phone = "call me";
    Layby__V1__CreateAddress c = LAYBY__V1__CREATE_ADDRESS__INIT;
    c.member_id = m;
    c.address_id = id;
    c.draft = &d;
    lb_err err;
    cr_assert_eq(send("layby.cmd.order.create_address", &c.base, &layby__v1__address__descriptor,
                      NULL, &err),
                 LB_ERR_INVALID);
    cr_assert_str_eq(err.field, "phone");
}

/* --- orders ------------------------------------------------------------------ */

static const char *SAGA = NULL;

/* CreateOrder of 2 x product, in *cmd (its parts live in cmd). */
typedef struct create_cmd {
    Layby__V1__OrderItem item;
    Layby__V1__OrderItem *items[1];
    Layby__V1__CreateOrder c;
} create_cmd;

static void
create_cmd_fill(create_cmd *cmd, const char *order, const char *member, const char *address,
                const char *product)
{
    layby__v1__order_item__init(&cmd->item);
    cmd->item.product_id = (char *)product;
    cmd->item.quantity = 2;
    cmd->items[0] = &cmd->item;
    layby__v1__create_order__init(&cmd->c);
    cmd->c.saga_id = (char *)SAGA;
    cmd->c.step = 0;
    cmd->c.attempt = 1;
    cmd->c.order_id = (char *)order;
    cmd->c.member_id = (char *)member;
    cmd->c.address_id = (char *)address;
    cmd->c.items = cmd->items;
    cmd->c.n_items = 1;
}

static void
order_create(const char *order, const char *member, const char *address, const char *product,
             lb_status want, lb_err *err)
{
    create_cmd cmd;
    create_cmd_fill(&cmd, order, member, address, product);
    cr_assert_eq(send("layby.cmd.order.create", &cmd.c.base, &layby__v1__order_created__descriptor,
                      NULL, err),
                 want, "%s", err->msg);
}

/* SetOrderStatus as the place saga sends it (lines and the deadline when a
 * product is given). answer_order asks for the order itself as the answer
 * (into *out when out is not NULL), else it is the OrderStatusSet. */
typedef struct set_cmd {
    Layby__V1__OrderLine line;
    Layby__V1__OrderLine *lines[1];
    Layby__V1__SetOrderStatus c;
} set_cmd;

static void
set_cmd_fill(set_cmd *cmd, const char *order, const char *status, const char *product,
             int64_t price, bool answer_order)
{
    layby__v1__order_line__init(&cmd->line);
    cmd->line.product_id = (char *)product;
    cmd->line.name = "Laptop 14";
    cmd->line.unit_price = price;
    cmd->lines[0] = &cmd->line;
    layby__v1__set_order_status__init(&cmd->c);
    cmd->c.saga_id = (char *)SAGA;
    cmd->c.step = 2;
    cmd->c.attempt = 1;
    cmd->c.order_id = (char *)order;
    cmd->c.status = (char *)status;
    if (product != NULL) {
        cmd->c.lines = cmd->lines;
        cmd->c.n_lines = 1;
        cmd->c.payment_deadline_ms = lb_now_ms() + 60000;
    }
    cmd->c.answer_order = answer_order;
}

static lb_status
set_status_answer(const char *order, const char *status, const char *product, int64_t price,
                  bool answer_order, ProtobufCMessage **out, lb_err *err)
{
    set_cmd cmd;
    set_cmd_fill(&cmd, order, status, product, price, answer_order);
    return send("layby.cmd.order.set_status", &cmd.c.base,
                answer_order ? &layby__v1__order__descriptor
                             : &layby__v1__order_status_set__descriptor,
                out, err);
}

static lb_status
set_status(const char *order, const char *status, const char *product, int64_t price, lb_err *err)
{
    return set_status_answer(order, status, product, price, false, NULL, err);
}

/* GetOrder of order as member, which must answer it (the caller's). */
static Layby__V1__Order *
order_of(const char *member, const char *order)
{
    Layby__V1__GetOrder g = LAYBY__V1__GET_ORDER__INIT;
    g.member_id = (char *)member;
    g.order_id = (char *)order;
    Layby__V1__Order *o = NULL;
    lb_err err;
    cr_assert_eq(query("layby.qry.order.get_order", &g.base, &layby__v1__order__descriptor,
                       (ProtobufCMessage **)&o, &err),
                 LB_OK, "%s", err.msg);
    return o;
}

Test(order_services, order_snapshots_lines_and_moves_once_per_status)
{
    char saga[ID_STR_LEN], alice[ID_STR_LEN], bob[ID_STR_LEN], order[ID_STR_LEN],
        product[ID_STR_LEN];
    id_new(saga);
    SAGA = saga;
    id_new(alice);
    id_new(bob);
    id_new(order);
    id_new(product);
    Layby__V1__Address *a = address_create(alice, "12 Teheran-ro", false);
    lb_err err;
    /* Bob may not ship to Alice's address. */
    char other[ID_STR_LEN];
    id_new(other);
    order_create(other, bob, a->address_id, product, LB_ERR_NOT_FOUND, &err);
    cr_assert_str_eq(err.field, "addressId");

    order_create(order, alice, a->address_id, product, LB_OK, &err);
    order_create(order, alice, a->address_id, product, LB_OK, &err); /* a repeat */
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM orders.orders"), 1);
    cr_assert_eq(set_status(order, "PAID", NULL, 0, &err), LB_ERR_STATE, "PENDING -> PAID");
    cr_assert_eq(set_status(order, "PAYMENT_PENDING", product, 1500000, &err), LB_OK, "%s",
                 err.msg);
    cr_assert_eq(set_status(order, "PAYMENT_PENDING", product, 9, &err), LB_OK, "repeat");
    cr_assert_eq(tsupport_sql_int("SELECT total_won FROM orders.orders"), 3000000,
                 "the first snapshot stays");
    cr_assert_eq(set_status(order, "RETURN_REQUESTED", NULL, 0, &err), LB_ERR_NOT_RETURNABLE);
    /* A move without lines answers with the total and member of the row it
     * locked (the move itself is not waited for). */
    ProtobufCMessage *paid = NULL;
    cr_assert_eq(set_status_answer(order, "PAID", NULL, 0, false, &paid, &err), LB_OK, "%s",
                 err.msg);
    cr_assert_eq(((Layby__V1__OrderStatusSet *)paid)->total, 3000000);
    cr_assert_str_eq(((Layby__V1__OrderStatusSet *)paid)->member_id, alice);
    protobuf_c_message_free_unpacked(paid, NULL);
    cr_assert_eq(set_status(order, "CANCELLED", NULL, 0, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(set_status(order, "PAID", NULL, 0, &err), LB_OK, "PAID reached before: repeat");
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM orders.order_history"), 4);

    /* The order as its owner sees it; another member does not see it. */
    Layby__V1__Order *o = order_of(alice, order);
    cr_assert_str_eq(o->status, "CANCELLED");
    cr_assert_eq(o->n_items, 1);
    cr_assert_str_eq(o->items[0]->name, "Laptop 14");
    cr_assert_eq(o->items[0]->subtotal, 3000000);
    cr_assert_eq(o->total, 3000000);
    cr_assert_eq(o->n_timeline, 4);
    cr_assert_str_eq(o->timeline[0]->status, "PENDING");
    cr_assert_str_eq(o->ship_to->street, "12 Teheran-ro");
    cr_assert_neq(o->payment_deadline[0], '\0');
    protobuf_c_message_free_unpacked(&o->base, NULL);
    Layby__V1__GetOrder g = LAYBY__V1__GET_ORDER__INIT;
    g.member_id = bob;
    g.order_id = order;
    cr_assert_eq(query("layby.qry.order.get_order", &g.base, &layby__v1__order__descriptor,
                       (ProtobufCMessage **)&o, &err),
                 LB_ERR_NOT_FOUND);
    protobuf_c_message_free_unpacked(&a->base, NULL);
}

/* Publishes cmd to JetStream as a saga would, its outcome to reply ("" for
 * none), without waiting for it. */
static void
publish_cmd(const char *subject, const ProtobufCMessage *cmd, const char *reply)
{
    bus_envelope env;
    bus_envelope_init(&env, cmd->descriptor, NULL);
    snprintf(env.reply, sizeof env.reply, "%s", reply);
    natsMsg *m = NULL;
    lb_err err;
    cr_assert_eq(bus_msg_new(&m, subject, &env, cmd, &err), LB_OK, "%s", err.msg);
    jsErrCode jerr = 0;
    cr_assert_eq(js_PublishMsg(NULL, bus_js(admin), m, NULL, &jerr), NATS_OK);
    natsMsg_Destroy(m);
}

/* Moves queued while the order service was away arrive as one batch: one
 * transaction for all of them, each move read as it would be alone (a lone
 * move's read goes with the inbox claim, svc_handler.prefetch; a batch's
 * reads are each the handler's own). */
Test(order_services, moves_queued_while_away_are_one_transaction)
{
    enum {
        K = 6
    };
    char saga[ID_STR_LEN], alice[ID_STR_LEN], product[ID_STR_LEN], orders[K][ID_STR_LEN];
    id_new(saga);
    SAGA = saga;
    id_new(alice);
    id_new(product);
    Layby__V1__Address *a = address_create(alice, "12 Teheran-ro", false);
    lb_err err;
    for (int i = 0; i < K; i++) {
        id_new(orders[i]);
        order_create(orders[i], alice, a->address_id, product, LB_OK, &err);
        cr_assert_eq(set_status(orders[i], "PAYMENT_PENDING", product, 1500000, &err), LB_OK, "%s",
                     err.msg);
    }
    cr_assert_eq(tsupport_daemon_stop(&procs[0], 10000), 0);
    for (int i = 0; i < K; i++) {
        set_cmd cmd;
        set_cmd_fill(&cmd, orders[i], "PAID", NULL, 0, false);
        cmd.c.step = 4;
        publish_cmd("layby.cmd.order.set_status", &cmd.c.base, "");
    }
    tsupport_daemon_start(&procs[0], "layby-order", 0, NULL, NULL);
    tsupport_wait_count(WAIT_MS, K, "SELECT count(*) FROM orders.orders WHERE status = 'PAID'");
    cr_assert_eq(tsupport_metric(procs[0].port,
                                 "layby_svc_phase_seconds_count{service=\"order\",phase=\"read\"}"),
                 1, "the queued moves were not one transaction");
    cr_assert_eq(tsupport_metric(procs[0].port, "layby_svc_batch_retries_total{service=\"order\"}"),
                 0);
    cr_assert_eq(
        tsupport_sql_int("SELECT count(*) FROM orders.order_history WHERE status = 'PAID'"), K);
    protobuf_c_message_free_unpacked(&a->base, NULL);
}

/* A group of creates and moves in one batch is decided with a few
 * statements for the whole group (order_orders.c), and each command as it
 * would be alone: repeats of an order inside the group, refusals, an order
 * created earlier in the same batch, the place's answer with the order. The
 * commands queue while the service is away, so they arrive as one batch;
 * each names its own reply subject, so every outcome is checked. */
enum {
    G_NEW1,
    G_NEW2,
    G_NEW1_AGAIN,
    G_OTHERS_ADDRESS,
    G_BAD_ID, /* creates */
    G_PRICE,
    G_ANSWER,
    G_PRICE_AGAIN,
    G_TOO_EARLY,
    G_NO_ORDER,
    G_PRICE_NEW,
    G_PAID,
    G_PAID_AFTER,
    G__COUNT
};

static void
group_reply(char *out, size_t n, const char *tag, int i)
{
    snprintf(out, n, "_INBOX.%s.%d", tag, i);
}

Test(order_services, a_group_of_commands_is_decided_as_each_would_be_alone)
{
    char saga[ID_STR_LEN], alice[ID_STR_LEN], bob[ID_STR_LEN], product[ID_STR_LEN], tag[ID_STR_LEN],
        n1[ID_STR_LEN], n2[ID_STR_LEN], n3[ID_STR_LEN], e[4][ID_STR_LEN], none[ID_STR_LEN];
    id_new(saga);
    SAGA = saga;
    id_new(alice);
    id_new(bob);
    id_new(product);
    id_new(tag);
    id_new(n1);
    id_new(n2);
    id_new(n3);
    id_new(none);
    Layby__V1__Address *a = address_create(alice, "12 Teheran-ro", false);
    lb_err err;
    /* e[0..2] PENDING, e[3] PAYMENT_PENDING (2 x 500,000). */
    for (int i = 0; i < 4; i++) {
        id_new(e[i]);
        order_create(e[i], alice, a->address_id, product, LB_OK, &err);
    }
    cr_assert_eq(set_status(e[3], "PAYMENT_PENDING", product, 500000, &err), LB_OK, "%s", err.msg);
    /* Other members' orders, many, the tables never analyzed: the group's
     * statements must reach their rows by key whatever the planner thinks
     * of the tables (a pricing joined only to its arrays read every line). */
    tsupport_sql("INSERT INTO orders.orders (order_id, member_id, address_id, ship_to, status, "
                 "created_at, updated_at) SELECT gen_random_uuid(), gen_random_uuid(), "
                 "gen_random_uuid(), '\\x00', 'PAID', now(), now() FROM generate_series(1, 20000)");
    tsupport_sql(
        "INSERT INTO orders.order_lines (order_id, line_no, product_id, quantity) "
        "SELECT order_id, 1, gen_random_uuid(), 1 FROM orders.orders WHERE status = 'PAID'");
    tsupport_sql("DELETE FROM pg_statistic WHERE starelid IN ('orders.orders'::regclass, "
                 "'orders.order_lines'::regclass, 'orders.order_history'::regclass)");
    const char *tables[] = { "orders.order_lines", "orders.order_history" };
    tsupport_table_stats before[2];
    for (int i = 0; i < 2; i++)
        before[i] = tsupport_table_stats_get(tables[i]);

    natsSubscription *sub = NULL;
    char subj[96];
    snprintf(subj, sizeof subj, "_INBOX.%s.*", tag);
    cr_assert_eq(natsConnection_SubscribeSync(&sub, bus_conn(admin), subj), NATS_OK);
    cr_assert_eq(natsConnection_Flush(bus_conn(admin)), NATS_OK);
    cr_assert_eq(tsupport_daemon_stop(&procs[0], 10000), 0);
    char reply[G__COUNT][96];
    for (int i = 0; i < G__COUNT; i++)
        group_reply(reply[i], sizeof reply[i], tag, i);
    struct {
        const char *order, *member;
    } creates[] = {
        [G_NEW1] = { n1, alice },
        [G_NEW2] = { n2, alice },
        [G_NEW1_AGAIN] = { n1, alice },
        [G_OTHERS_ADDRESS] = { n3, bob },
        [G_BAD_ID] = { "not-a-uuid", alice },
    };
    for (int i = G_NEW1; i <= G_BAD_ID; i++) {
        create_cmd cmd;
        create_cmd_fill(&cmd, creates[i].order, creates[i].member, a->address_id, product);
        publish_cmd("layby.cmd.order.create", &cmd.c.base, reply[i]);
    }
    struct {
        const char *order, *status, *product;
        int64_t price;
        bool answer;
    } moves[] = {
        [G_PRICE] = { e[0], "PAYMENT_PENDING", product, 1500000, false },
        [G_ANSWER] = { e[1], "PAYMENT_PENDING", product, 700000, true },
        [G_PRICE_AGAIN] = { e[0], "PAYMENT_PENDING", product, 9, false },
        [G_TOO_EARLY] = { e[2], "PAID", NULL, 0, false },
        [G_NO_ORDER] = { none, "PAID", NULL, 0, false },
        [G_PRICE_NEW] = { n1, "PAYMENT_PENDING", product, 100, false },
        [G_PAID] = { e[3], "PAID", NULL, 0, false },
        [G_PAID_AFTER] = { e[0], "PAID", NULL, 0, false },
    };
    for (int i = G_PRICE; i < G__COUNT; i++) {
        set_cmd cmd;
        set_cmd_fill(&cmd, moves[i].order, moves[i].status, moves[i].product, moves[i].price,
                     moves[i].answer);
        publish_cmd("layby.cmd.order.set_status", &cmd.c.base, reply[i]);
    }
    tsupport_daemon_start(&procs[0], "layby-order", 0, NULL, NULL);

    ProtobufCMessage *got[G__COUNT] = { 0 };
    lb_status st[G__COUNT];
    lb_err why[G__COUNT];
    bool seen[G__COUNT] = { 0 };
    for (int k = 0; k < G__COUNT; k++) {
        natsMsg *m = NULL;
        cr_assert_eq(natsSubscription_NextMsg(&m, sub, WAIT_MS), NATS_OK, "%d of %d answers", k,
                     G__COUNT);
        const char *last = strrchr(natsMsg_GetSubject(m), '.');
        int i = atoi(last + 1);
        cr_assert(i >= 0 && i < G__COUNT && !seen[i], "answer %s", natsMsg_GetSubject(m));
        seen[i] = true;
        const ProtobufCMessageDescriptor *want =
            i <= G_BAD_ID     ? &layby__v1__order_created__descriptor
            : moves[i].answer ? &layby__v1__order__descriptor
                              : &layby__v1__order_status_set__descriptor;
        st[i] = bus_reply_decode(&got[i], m, want, &why[i]);
        natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(sub);
    cr_assert_eq(tsupport_metric(procs[0].port,
                                 "layby_svc_phase_seconds_count{service=\"order\",phase=\"read\"}"),
                 1, "the queued commands were not one transaction");
    cr_assert_eq(tsupport_metric(procs[0].port, "layby_svc_batch_retries_total{service=\"order\"}"),
                 0, "the group failed and was retried one by one");

    for (int i = 0; i < 2; i++) {
        tsupport_table_stats after = tsupport_table_stats_get(tables[i]);
        cr_assert_eq(after.seq_scans, before[i].seq_scans, "the group read %s whole (%lld -> %lld)",
                     tables[i], (long long)before[i].seq_scans, (long long)after.seq_scans);
    }
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM pg_statistic WHERE starelid = "
                                  "'orders.order_lines'::regclass"),
                 0, "the lines were analyzed meanwhile: the test proves nothing");

    for (int i = G_NEW1; i <= G_NEW1_AGAIN; i++)
        cr_assert_eq(st[i], LB_OK, "create %d: %s", i, why[i].msg);
    cr_assert_eq(st[G_OTHERS_ADDRESS], LB_ERR_NOT_FOUND);
    cr_assert_str_eq(why[G_OTHERS_ADDRESS].field, "addressId");
    cr_assert_eq(st[G_BAD_ID], LB_ERR_INVALID);
    char q[320];
    snprintf(q, sizeof q, "SELECT count(*) FROM orders.orders WHERE member_id <> '%s'", alice);
    cr_assert_eq(tsupport_sql_int(q), 20000, "bob's order was refused");
    snprintf(q, sizeof q,
             "SELECT count(*) FROM orders.order_lines JOIN orders.orders USING (order_id) "
             "WHERE member_id = '%s'",
             alice);
    cr_assert_eq(tsupport_sql_int(q), 6, "e0-e3, n1, n2: a line each");

    cr_assert_eq(st[G_PRICE], LB_OK, "%s", why[G_PRICE].msg);
    cr_assert_eq(((Layby__V1__OrderStatusSet *)got[G_PRICE])->total, 3000000);
    cr_assert_eq(st[G_ANSWER], LB_OK, "%s", why[G_ANSWER].msg);
    Layby__V1__Order *o = (Layby__V1__Order *)got[G_ANSWER];
    cr_assert_str_eq(o->status, "PAYMENT_PENDING");
    cr_assert_eq(o->total, 1400000);
    cr_assert_eq(o->n_items, 1);
    cr_assert_str_eq(o->items[0]->name, "Laptop 14");
    cr_assert_eq(st[G_PRICE_AGAIN], LB_OK, "a repeat answers as the first did");
    cr_assert_eq(((Layby__V1__OrderStatusSet *)got[G_PRICE_AGAIN])->total, 3000000);
    cr_assert_eq(st[G_TOO_EARLY], LB_ERR_STATE, "PENDING -> PAID");
    cr_assert_eq(st[G_NO_ORDER], LB_ERR_NOT_FOUND);
    cr_assert_eq(st[G_PRICE_NEW], LB_OK, "an order created in the same batch: %s",
                 why[G_PRICE_NEW].msg);
    cr_assert_eq(((Layby__V1__OrderStatusSet *)got[G_PRICE_NEW])->total, 200);
    cr_assert_eq(st[G_PAID], LB_OK, "%s", why[G_PAID].msg);
    cr_assert_eq(((Layby__V1__OrderStatusSet *)got[G_PAID])->total, 1000000,
                 "the locked row's total");
    cr_assert_str_eq(((Layby__V1__OrderStatusSet *)got[G_PAID])->member_id, alice);
    cr_assert_eq(st[G_PAID_AFTER], LB_OK, "PAID after the group's PAYMENT_PENDING: %s",
                 why[G_PAID_AFTER].msg);
    cr_assert_eq(((Layby__V1__OrderStatusSet *)got[G_PAID_AFTER])->total, 3000000);

    const struct {
        const char *order, *status;
        long long total, history;
    } want[] = {
        { e[0], "PAID", 3000000, 3 },      { e[1], "PAYMENT_PENDING", 1400000, 2 },
        { e[2], "PENDING", 0, 1 },         { e[3], "PAID", 1000000, 3 },
        { n1, "PAYMENT_PENDING", 200, 2 }, { n2, "PENDING", 0, 1 },
    };
    for (size_t i = 0; i < LB_COUNTOF(want); i++) {
        snprintf(q, sizeof q,
                 "SELECT count(*) FROM orders.orders o WHERE order_id = '%s' AND status = '%s' "
                 "AND total_won = %lld AND (SELECT count(*) FROM orders.order_history h "
                 "WHERE h.order_id = o.order_id) = %lld",
                 want[i].order, want[i].status, want[i].total, want[i].history);
        cr_assert_eq(tsupport_sql_int(q), 1, "order %zu: status, total or history", i);
    }
    snprintf(q, sizeof q,
             "SELECT count(*) FROM orders.orders WHERE order_id IN ('%s', '%s') "
             "AND payment_deadline IS NOT NULL",
             e[0], n1);
    cr_assert_eq(tsupport_sql_int(q), 2, "the deadlines were kept");
    for (int i = 0; i < G__COUNT; i++)
        if (got[i] != NULL)
            protobuf_c_message_free_unpacked(got[i], NULL);
    protobuf_c_message_free_unpacked(&a->base, NULL);
}

/* --- payment ----------------------------------------------------------------- */

static lb_status
charge(const char *saga, uint32_t attempt, const char *order, const char *token,
       Layby__V1__PaymentCaptured **out, lb_err *err)
{
    Layby__V1__Charge c = LAYBY__V1__CHARGE__INIT;
    c.saga_id = (char *)saga;
    c.step = 1;
    c.attempt = attempt;
    c.order_id = (char *)order;
    c.amount = 30000;
    c.method = "card";
    c.card_token = (char *)token;
    return send("layby.cmd.payment.charge", &c.base, &layby__v1__payment_captured__descriptor,
                (ProtobufCMessage **)out, err);
}

static lb_status
refund(const char *saga, uint32_t step, const char *order, int64_t amount,
       Layby__V1__PaymentRefunded **out, lb_err *err)
{
    Layby__V1__Refund r = LAYBY__V1__REFUND__INIT;
    r.saga_id = (char *)saga;
    r.step = step;
    r.attempt = 1;
    r.order_id = (char *)order;
    r.amount = amount;
    return send("layby.cmd.payment.refund", &r.base, &layby__v1__payment_refunded__descriptor,
                (ProtobufCMessage **)out, err);
}

/* A lone command whose ids are not UUIDs is refused at once: the read that
 * goes with its inbox claim (svc_handler.prefetch) is not sent for it, since
 * it would fail the whole transaction on the cast and the command would be
 * retried until it is dead-lettered. */
Test(order_services, lone_commands_with_malformed_ids_are_refused_at_once)
{
    char saga[ID_STR_LEN], member[ID_STR_LEN], address[ID_STR_LEN], product[ID_STR_LEN];
    id_new(saga);
    SAGA = saga;
    id_new(member);
    id_new(address);
    id_new(product);
    lb_err err;
    order_create("not-a-uuid", member, address, product, LB_ERR_INVALID, &err);
    char order[ID_STR_LEN];
    id_new(order);
    order_create(order, member, "not-a-uuid", product, LB_ERR_NOT_FOUND, &err);
    cr_assert_str_eq(err.field, "addressId");
    cr_assert_eq(set_status("not-a-uuid", "PAID", NULL, 0, &err), LB_ERR_NOT_FOUND);
    cr_assert_eq(set_status(order, "SHIPPED?", NULL, 0, &err), LB_ERR_INVALID);
    cr_assert_eq(charge(saga, 1, "not-a-uuid", "tok_visa", NULL, &err), LB_ERR_INVALID);
    cr_assert_eq(charge("not-a-uuid", 1, order, "tok_visa", NULL, &err), LB_ERR_INVALID);
    cr_assert_eq(tsupport_metric(procs[0].port, "layby_svc_batch_retries_total{service=\"order\"}"),
                 0);
    cr_assert_eq(
        tsupport_metric(procs[1].port, "layby_svc_batch_retries_total{service=\"payment\"}"), 0);
}

/* SetOrderStatus with answer_order (the place saga's payable step) answers
 * its requester with the order as GetOrder shows it, read in the move's
 * transaction: the edge's place answers with it and reads nothing back. A
 * repeat answers the order again; without the flag the answer stays the
 * OrderStatusSet (the pay saga's PAID, operators). */
static Layby__V1__Order *
set_status_order(const char *order, const char *status, const char *product, lb_err *err)
{
    ProtobufCMessage *out = NULL;
    cr_assert_eq(set_status_answer(order, status, product, 1500000, true, &out, err), LB_OK, "%s",
                 err->msg);
    return (Layby__V1__Order *)out;
}

Test(order_services, a_move_asked_to_answer_with_the_order_answers_it_as_get_shows_it)
{
    char saga[ID_STR_LEN], alice[ID_STR_LEN], order[ID_STR_LEN], product[ID_STR_LEN];
    id_new(saga);
    SAGA = saga;
    id_new(alice);
    id_new(order);
    id_new(product);
    Layby__V1__Address *a = address_create(alice, "12 Teheran-ro", false);
    lb_err err;
    order_create(order, alice, a->address_id, product, LB_OK, &err);
    Layby__V1__Order *o = set_status_order(order, "PAYMENT_PENDING", product, &err);
    cr_assert_str_eq(o->order_id, order);
    cr_assert_str_eq(o->status, "PAYMENT_PENDING");
    cr_assert_eq(o->total, 3000000, "priced in the same transaction");
    cr_assert_eq(o->n_items, 1);
    cr_assert_str_eq(o->items[0]->name, "Laptop 14");
    cr_assert_eq(o->n_timeline, 2, "PENDING and the move just made");
    cr_assert_str_eq(o->timeline[1]->status, "PAYMENT_PENDING");
    cr_assert_neq(o->payment_deadline[0], '\0');
    cr_assert_not_null(o->ship_to);
    cr_assert_str_eq(o->ship_to->recipient, "Kim Minji", "the ship-to opened");

    /* the same as GetOrder answers */
    Layby__V1__Order *shown = order_of(alice, order);
    uint8_t a1[4096], a2[4096];
    size_t n1 = protobuf_c_message_get_packed_size(&o->base);
    cr_assert(n1 <= sizeof a1 && n1 == protobuf_c_message_get_packed_size(&shown->base));
    protobuf_c_message_pack(&o->base, a1);
    protobuf_c_message_pack(&shown->base, a2);
    cr_assert(memcmp(a1, a2, n1) == 0, "the answer differs from GetOrder's");

    /* a repeat answers the order again, unchanged */
    Layby__V1__Order *again = set_status_order(order, "PAYMENT_PENDING", product, &err);
    cr_assert_eq(again->n_timeline, 2);
    cr_assert_str_eq(again->timeline[1]->at, o->timeline[1]->at);
    /* without the flag: the OrderStatusSet, as before */
    cr_assert_eq(set_status(order, "PAID", NULL, 0, &err), LB_OK, "%s", err.msg);
    protobuf_c_message_free_unpacked(&again->base, NULL);
    protobuf_c_message_free_unpacked(&shown->base, NULL);
    protobuf_c_message_free_unpacked(&o->base, NULL);
    protobuf_c_message_free_unpacked(&a->base, NULL);
}

Test(order_services, one_capture_per_order_whoever_asks)
{
    char s1[ID_STR_LEN], s2[ID_STR_LEN], order[ID_STR_LEN];
    id_new(s1);
    id_new(s2);
    id_new(order);
    lb_err err;
    Layby__V1__PaymentCaptured *c1 = NULL, *c2 = NULL;
    cr_assert_eq(charge(s1, 1, order, "tok_decline", NULL, &err), LB_ERR_PAYMENT_DECLINED);
    cr_assert_eq(charge(s1, 2, order, "tok_error", NULL, &err), OUTAGE);
    cr_assert_eq(charge(s1, 3, order, "tok_visa", &c1, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(charge(s2, 1, order, "tok_visa", &c2, &err), LB_OK, "%s", err.msg);
    cr_assert_str_eq(c1->charge_id, c2->charge_id, "a second saga gets the first capture");
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM payment.charges WHERE status = 'CAPTURED'"),
                 1);
    /* The constraint holds even against a hand-written second capture. */
    PGresult *r = PQexec(
        tsupport_pg(), "INSERT INTO payment.charges (charge_id, order_id, saga_id, attempt_key, "
                       "status, amount_won, method, created_at) SELECT gen_random_uuid(), "
                       "order_id, saga_id, 'x', 'CAPTURED', 1, 'card', now() FROM payment.charges "
                       "WHERE status = 'CAPTURED'");
    cr_assert_neq(PQresultStatus(r), PGRES_COMMAND_OK, "a second capture was stored");
    PQclear(r);
    protobuf_c_message_free_unpacked(&c1->base, NULL);
    protobuf_c_message_free_unpacked(&c2->base, NULL);
}

Test(order_services, flaky_gateway_answers_after_two_outages)
{
    char s[ID_STR_LEN], order[ID_STR_LEN];
    id_new(s);
    id_new(order);
    lb_err err;
    cr_assert_eq(charge(s, 1, order, "tok_flaky", NULL, &err), OUTAGE);
    cr_assert_eq(charge(s, 1, order, "tok_flaky", NULL, &err), OUTAGE,
                 "a repeated attempt answers its stored outcome");
    cr_assert_eq(charge(s, 2, order, "tok_flaky", NULL, &err), OUTAGE);
    cr_assert_eq(charge(s, 3, order, "tok_flaky", NULL, &err), LB_OK, "%s", err.msg);
}

Test(order_services, refunds_never_exceed_the_capture_and_void_a_late_charge)
{
    char s[ID_STR_LEN], order[ID_STR_LEN], s2[ID_STR_LEN], order2[ID_STR_LEN];
    id_new(s);
    id_new(order);
    id_new(s2);
    id_new(order2);
    lb_err err;
    Layby__V1__PaymentRefunded *r = NULL;
    cr_assert_eq(charge(s, 1, order, "tok_visa", NULL, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(refund(s, 5, order, 40000, NULL, &err), LB_ERR_INVALID, "above the charge");
    cr_assert_eq(refund(s, 5, order, 10000, &r, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(r->amount, 10000);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    cr_assert_eq(refund(s, 5, order, 10000, &r, &err), LB_OK, "a repeat");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    cr_assert_eq(refund(s, 6, order, 0, &r, &err), LB_OK, "the rest");
    cr_assert_eq(r->amount, 20000);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    cr_assert_eq(tsupport_sql_int("SELECT refunded_won FROM payment.charges "
                                  "WHERE status = 'CAPTURED'"),
                 30000);
    /* A compensation that overtook its charge voids it. */
    cr_assert_eq(refund(s2, 1, order2, 0, &r, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(r->amount, 0);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    cr_assert_eq(charge(s2, 1, order2, "tok_visa", NULL, &err), LB_ERR_STATE);
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM payment.charges WHERE status = 'CAPTURED'"),
                 1);
}

/* --- delivery ------------------------------------------------------------------ */

static lb_status
advance(const char *order, const char *status, lb_err *err)
{
    Layby__V1__AdvanceDelivery c = LAYBY__V1__ADVANCE_DELIVERY__INIT;
    char saga[ID_STR_LEN];
    id_new(saga);
    c.saga_id = saga;
    c.step = 3;
    c.attempt = 1;
    c.order_id = (char *)order;
    c.status = (char *)status;
    return send("layby.cmd.delivery.advance", &c.base, &layby__v1__delivery_advanced__descriptor,
                NULL, err);
}

static lb_status
cancel(const char *order, lb_err *err)
{
    Layby__V1__CancelDelivery c = LAYBY__V1__CANCEL_DELIVERY__INIT;
    char saga[ID_STR_LEN];
    id_new(saga);
    c.saga_id = saga;
    c.order_id = (char *)order;
    return send("layby.cmd.delivery.cancel", &c.base, &layby__v1__delivery_cancelled__descriptor,
                NULL, err);
}

Test(order_services, deliveries_move_along_the_machine_once_per_status)
{
    char o1[ID_STR_LEN], o2[ID_STR_LEN], o3[ID_STR_LEN];
    id_new(o1);
    id_new(o2);
    id_new(o3);
    lb_err err;
    cr_assert_eq(advance(o1, "SHIPPING", &err), LB_ERR_NOT_FOUND);
    cr_assert_eq(advance(o1, "PREPARING", &err), LB_OK, "%s", err.msg);
    cr_assert_eq(advance(o1, "DELIVERED", &err), LB_ERR_STATE);
    cr_assert_eq(advance(o1, "SHIPPING", &err), LB_OK, "%s", err.msg);
    cr_assert_eq(advance(o1, "SHIPPING", &err), LB_OK, "repeat");
    cr_assert_eq(cancel(o1, &err), LB_ERR_NOT_CANCELLABLE, "shipped");
    cr_assert_eq(advance(o1, "DELIVERED", &err), LB_OK, "%s", err.msg);
    cr_assert_eq(advance(o1, "RETURN_PICKUP", &err), LB_OK, "%s", err.msg);
    cr_assert_eq(advance(o1, "RETURNED", &err), LB_OK, "%s", err.msg);
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM delivery.delivery_history"), 5);

    cr_assert_eq(advance(o2, "PREPARING", &err), LB_OK, "%s", err.msg);
    cr_assert_eq(cancel(o2, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(cancel(o2, &err), LB_OK, "repeat");
    cr_assert_eq(advance(o2, "SHIPPING", &err), LB_ERR_STATE);

    cr_assert_eq(cancel(o3, &err), LB_OK, "nothing to cancel yet");
    cr_assert_eq(advance(o3, "PREPARING", &err), LB_ERR_STATE, "overtaken by its cancel");

    Layby__V1__GetDelivery g = LAYBY__V1__GET_DELIVERY__INIT;
    g.order_id = o1;
    Layby__V1__Delivery *d = NULL;
    cr_assert_eq(query("layby.qry.delivery.get", &g.base, &layby__v1__delivery__descriptor,
                       (ProtobufCMessage **)&d, &err),
                 LB_OK, "%s", err.msg);
    cr_assert_str_eq(d->status, "RETURNED");
    cr_assert_eq(d->n_timeline, 5);
    cr_assert_str_eq(d->timeline[0]->status, "PREPARING");
    protobuf_c_message_free_unpacked(&d->base, NULL);
}
