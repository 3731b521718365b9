/* order_races_test.c - a cancel racing a payment, forced through the real
 * orchestrator, catalog, order, payment and delivery services (issue 20;
 * sagas/order_place.c, docs/ORDERS.md §5).
 *
 * The race: the place saga has sent payment_pending (step 3) but not yet heard
 * that the order is PAYMENT_PENDING; a buyer who saw the order payable pays,
 * and a cancel is accepted meanwhile. The interleaving is forced by holding
 * services, not by timing: the catalog is stopped while the order is created,
 * so the saga waits at reserve_stock; then the order service is stopped and the
 * catalog started again, so payment_pending is sent to a stopped order service
 * and the orchestrator cannot hear it done. The pay saga (started on NATS, as
 * the edge would after reading the order PAYMENT_PENDING) captures and sends
 * PAID; the cancel comes next. When the order service is back it handles the
 * queued commands in order: PAYMENT_PENDING, PAID (which sends OrderPaid to the
 * place saga, now compensating, so it is ignored), CANCELLED. order_place v1
 * refunded only as the undo of the wait step, never reached here, so the order
 * ended CANCELLED with its money kept; v2 refunds as the undo of
 * payment_pending. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/id.h"
#include "engine/saga.h"
#include "engine/subjects.h"
#include "layby/v1/catalog.pb-c.h"
#include "layby/v1/order.pb-c.h"
#include "layby/v1/saga.pb-c.h"
#include "tsupport.h"

#define WAIT_MS 30000
#define PRICE   990000 /* tsupport_create_product()'s */

static bus *admin;
static tsupport_proc procs[5]; /* stopped and checked in teardown whatever happened */
static tsupport_proc *catalog = &procs[0], *order_svc = &procs[1];
static char member[ID_STR_LEN], product[ID_STR_LEN], address[ID_STR_LEN];

static void
setup(void)
{
    tsupport_reset();
    admin = tsupport_admin_bus("order-races-test");
    id_new(member);
    id_new(product);
    id_new(address);
}

static void
teardown(void)
{
    tsupport_stack_close(&admin, procs, LB_COUNTOF(procs));
}

TestSuite(order_races, .init = setup, .fini = teardown, .timeout = 240);

/* Waits until the query built from fmt counts at least one row. */
static void wait_any(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
wait_any(const char *fmt, ...)
{
    char q[768], sql[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    snprintf(sql, sizeof sql, "SELECT least(count(*), 1) FROM (%s) q", q);
    tsupport_wait_count(WAIT_MS, 1, "%s", sql);
}

/* Waits up to ms until saga id's log has a line like `like`. */
static void
wait_log_ms(int ms, const char *id, const char *like)
{
    tsupport_wait_count(ms, 1,
                        "SELECT least(count(*), 1) FROM saga.saga_log WHERE saga_id = '%s' "
                        "AND line LIKE '%s'",
                        id, like);
}

static void
wait_log(const char *id, const char *like)
{
    wait_log_ms(WAIT_MS, id, like);
}

static int64_t sql_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t
sql_int(const char *fmt, ...)
{
    char q[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    return tsupport_sql_int(q);
}

/* Every daemon of the order flow, the orchestrator with env. */
static void
stack_start_with(const char *const *env)
{
    tsupport_daemon_start(catalog, "layby-catalog", 0, NULL, NULL);
    tsupport_daemon_start(order_svc, "layby-order", 0, NULL, NULL);
    tsupport_daemon_start(&procs[2], "layby-payment", 0, NULL, NULL);
    tsupport_daemon_start(&procs[3], "layby-delivery", 0, NULL, NULL);
    tsupport_daemon_start(&procs[4], "layby-orchestrator", 0, NULL, env);

    Layby__V1__ProductDraft d;
    Layby__V1__CreateProduct c;
    tsupport_create_product(&c, &d, product, "Laptop 14");
    tsupport_publish(admin, SUBJ_CATALOG_CREATE_PRODUCT, &c.base);
    wait_any("SELECT 1 FROM catalog.products WHERE product_id = '%s'", product);

    Layby__V1__AddressDraft a = LAYBY__V1__ADDRESS_DRAFT__INIT;
    a.recipient = "Kim Minji";
    a.phone = "010-1234-5678";
    a.zipcode = "06236";
    a.city = "Seoul";
    a.street = "12 Teheran-ro";
    Layby__V1__CreateAddress ca = LAYBY__V1__CREATE_ADDRESS__INIT;
    ca.member_id = member;
    ca.address_id = address;
    ca.draft = &a;
    tsupport_publish(admin, SUBJ_ORDER_CREATE_ADDRESS, &ca.base);
    wait_any("SELECT 1 FROM orders.addresses WHERE address_id = '%s'", address);
}

/* The step timeout is long, so the steps held below wait instead of being
 * retried and failed. */
static void
stack_start(void)
{
    const char *env[] = { "LAYBY_FAST=1", "LAYBY_ORDER_STEP_TIMEOUT=60s",
                          "LAYBY_PAYMENT_DEADLINE=120s", "LAYBY_SHIP_DELAY=120s", NULL };
    stack_start_with(env);
}

/* Starts the place saga of a new order for one unit (its id is the order id). */
static void
place(char order[ID_STR_LEN])
{
    id_new(order);
    Layby__V1__OrderItem item = LAYBY__V1__ORDER_ITEM__INIT;
    item.product_id = product;
    item.quantity = 1;
    Layby__V1__OrderItem *items[] = { &item };
    Layby__V1__PlaceOrderDraft d = LAYBY__V1__PLACE_ORDER_DRAFT__INIT;
    d.address_id = address;
    d.items = items;
    d.n_items = 1;
    Layby__V1__PlaceOrder p = LAYBY__V1__PLACE_ORDER__INIT;
    p.saga_id = order;
    p.order_id = order;
    p.member_id = member;
    p.draft = &d;
    tsupport_publish(admin, SUBJ_SAGA_START_ORDER_PLACE, &p.base);
}

/* Places an order for one unit (the saga's id is the order id) and holds it
 * at payment_pending: sent, but the order service is stopped. */
static void
place_and_hold_at_payment_pending(char order[ID_STR_LEN])
{
    cr_assert_eq(tsupport_daemon_stop(catalog, 10000), 0);
    place(order);
    /* the order exists and the orchestrator heard it (reserve_stock went with
     * create since v5, to the stopped catalog) */
    wait_log(order, "%create done%");
    cr_assert_eq(tsupport_daemon_stop(order_svc, 10000), 0);
    tsupport_daemon_start(catalog, "layby-catalog", 0, NULL, NULL);
    wait_log(order, "%send payment_pending attempt 1%");
    cr_assert_eq(sql_int("SELECT count(*) FROM orders.orders WHERE order_id = '%s' "
                         "AND status = 'PENDING'",
                         order),
                 1);
}

/* Starts a pay saga for order as the edge would (amount = the order's total). */
static void
pay_start(const char *order, char pay_id[ID_STR_LEN])
{
    id_new(pay_id);
    Layby__V1__PaymentDraft d = LAYBY__V1__PAYMENT_DRAFT__INIT;
    d.method = "card";
    d.card_token = "tok_visa";
    Layby__V1__PayOrder p = LAYBY__V1__PAY_ORDER__INIT;
    p.saga_id = pay_id;
    p.order_id = (char *)order;
    p.member_id = member;
    p.amount = PRICE;
    p.draft = &d;
    tsupport_publish(admin, SUBJ_SAGA_START_ORDER_PAY, &p.base);
}

/* The buyer's cancel, as the edge sends it; the answer must be accepted. */
static void
cancel(const char *order)
{
    Layby__V1__SignalSaga m = LAYBY__V1__SIGNAL_SAGA__INIT;
    m.saga_id = (char *)order;
    m.name = "cancel";
    m.actor = "member USER";
    m.reason = "order_races_test";
    bus_envelope env;
    bus_envelope_init(&env, m.base.descriptor, NULL);
    natsMsg *reply = NULL;
    lb_err err;
    cr_assert_eq(bus_command(&reply, admin, SAGA_SUBJ_SIGNAL, &env, &m.base, WAIT_MS, &err), LB_OK,
                 "%s", err.msg);
    ProtobufCMessage *out = NULL;
    cr_assert_eq(bus_reply_decode(&out, reply, &layby__v1__saga_outcome__descriptor, &err), LB_OK,
                 "the cancel was refused: %s", err.msg);
    cr_assert_str_eq(((Layby__V1__SagaOutcome *)out)->status, "COMPENSATING");
    protobuf_c_message_free_unpacked(out, NULL);
    natsMsg_Destroy(reply);
}

static void
wait_saga(const char *id, const char *status)
{
    tsupport_wait_count(WAIT_MS, 1,
                        "SELECT count(*) FROM saga.sagas WHERE saga_id = '%s' AND status = '%s'",
                        id, status);
}

/* The books of order after the race: CANCELLED, stock back, and what was
 * captured all refunded. */
static void
expect_cancelled_with_nothing_kept(const char *order)
{
    wait_saga(order, "CANCELLED");
    cr_expect_eq(sql_int("SELECT count(*) FROM orders.orders WHERE order_id = '%s' "
                         "AND status = 'CANCELLED'",
                         order),
                 1);
    cr_expect_eq(sql_int("SELECT coalesce(sum(amount_won - refunded_won), 0) FROM payment.charges "
                         "WHERE order_id = '%s' AND status = 'CAPTURED'",
                         order),
                 0, "the order is CANCELLED, so no money of it may be kept");
    cr_expect_eq(
        sql_int("SELECT stock_available FROM catalog.products WHERE product_id = '%s'", product), 5,
        "the reserved unit is released");
}

Test(order_races, a_cancel_while_payment_pending_is_set_refunds_a_payment_that_raced_it)
{
    stack_start();
    char order[ID_STR_LEN], pay_id[ID_STR_LEN];
    place_and_hold_at_payment_pending(order);

    /* the payment goes through up to PAID, which waits for the order service */
    pay_start(order, pay_id);
    wait_log(pay_id, "%send order_paid attempt 1%");
    cr_assert_eq(sql_int("SELECT count(*) FROM payment.charges WHERE order_id = '%s' "
                         "AND status = 'CAPTURED'",
                         order),
                 1);

    /* the cancel: payment_pending may have been set (it was sent), so it is
     * undone too; the undo reaches create, whose CANCELLED waits */
    cancel(order);
    wait_log(order, "%compensate create attempt 1%");

    tsupport_daemon_start(order_svc, "layby-order", 0, NULL, NULL);
    wait_saga(pay_id, "COMPLETED"); /* PAID was set before CANCELLED: the race happened */
    expect_cancelled_with_nothing_kept(order);
    /* the place saga heard of the payment only while compensating */
    cr_expect_eq(sql_int("SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s' "
                         "AND line LIKE 'ignored:%%'",
                         order) > 0,
                 true);
    cr_expect_eq(sql_int("SELECT count(*) FROM orders.order_history WHERE order_id = '%s' "
                         "AND status = 'PAID'",
                         order),
                 1, "the order was PAID before it was CANCELLED");
}

Test(order_races, a_payment_after_that_cancel_is_refused)
{
    stack_start();
    char order[ID_STR_LEN], pay_id[ID_STR_LEN];
    place_and_hold_at_payment_pending(order);

    /* the cancel first: its refund finds nothing and voids the order */
    cancel(order);
    wait_log(order, "%compensate create attempt 1%");
    /* a buyer who saw the order payable pays now: the charge is refused */
    pay_start(order, pay_id);
    wait_saga(pay_id, "FAILED");
    cr_expect_eq(sql_int("SELECT count(*) FROM payment.charges WHERE order_id = '%s'", order), 0,
                 "no charge is attempted once the order was voided");

    tsupport_daemon_start(order_svc, "layby-order", 0, NULL, NULL);
    expect_cancelled_with_nothing_kept(order);
}

/* `layby-ctl audit --settle 0` balances the books of every service. */
static void
expect_audit_passes(void)
{
    char *out = NULL;
    const char *args[] = { "audit", "--settle", "0", NULL };
    int rc = tsupport_ctl_run(&out, true, NULL, args);
    cr_expect_eq(rc, 0, "layby-ctl audit: %s", out != NULL ? out : "");
    free(out);
}

/* Issue 20, docs/SAGAS.md §5.1 (R11, forward recovery): the delivery service
 * is away longer than a step's whole retry budget (5 attempts of 2 s and
 * their backoffs, about 13 s) while the saga ships. order_place v2 and v3 gave up on
 * delivery_shipping and undid delivery_preparing, but its attempts were still
 * queued: the returning service shipped, refused the cancel, and the saga was
 * STUCK with the goods shipped and the money being refunded. v4 retries the
 * steps after the payment until they are done: the order is delivered and
 * paid, nothing refunded, the books balance. */
Test(order_races, a_delivery_away_longer_than_the_retry_budget_delivers_when_back)
{
    const char *env[] = { "LAYBY_FAST=1",
                          "LAYBY_ORDER_STEP_TIMEOUT=2s",
                          "LAYBY_PAYMENT_DEADLINE=120s",
                          "LAYBY_SHIP_DELAY=4s",
                          "LAYBY_DELIVER_DELAY=1s",
                          "LAYBY_RETURN_WINDOW=1s",
                          NULL };
    tsupport_proc *delivery = &procs[3];
    stack_start_with(env);
    char order[ID_STR_LEN], pay_id[ID_STR_LEN];
    place(order);
    wait_log(order, "%wait for wait_payment%");
    pay_start(order, pay_id);
    wait_saga(pay_id, "COMPLETED");
    wait_log(order, "%delivery_preparing done%");

    /* away from the ship delay past the last attempt's timeout */
    cr_assert_eq(tsupport_daemon_stop(delivery, 10000), 0);
    wait_log_ms(90000, order, "%timer STEP_TIMEOUT of delivery_shipping attempt 5%");
    cr_expect_eq(sql_int("SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s' "
                         "AND line LIKE '%%delivery_shipping failed after%%'",
                         order),
                 0, "the saga gave up on shipping while the delivery service was away");
    tsupport_daemon_start(delivery, "layby-delivery", 0, NULL, NULL);

    tsupport_wait_count(120000, 1,
                        "SELECT count(*) FROM saga.sagas WHERE saga_id = '%s' "
                        "AND status IN ('COMPLETED', 'STUCK', 'FAILED', 'CANCELLED')",
                        order);
    cr_assert_eq(sql_int("SELECT count(*) FROM saga.sagas WHERE saga_id = '%s' "
                         "AND status = 'COMPLETED'",
                         order),
                 1, "the order's saga ends COMPLETED (not STUCK)");
    cr_expect_eq(sql_int("SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s' "
                         "AND line LIKE '%%forward step%%'",
                         order) > 0,
                 true, "the retries past the budget are in the saga's log");
    cr_expect_eq(sql_int("SELECT count(*) FROM delivery.deliveries WHERE order_id = '%s' "
                         "AND status = 'DELIVERED'",
                         order),
                 1);
    cr_expect_eq(sql_int("SELECT count(*) FROM payment.charges WHERE order_id = '%s' "
                         "AND status = 'CAPTURED' AND refunded_won = 0",
                         order),
                 1, "one charge, kept");
    cr_expect_eq(
        sql_int("SELECT stock_available FROM catalog.products WHERE product_id = '%s'", product), 4,
        "the unit is sold, once");
    expect_audit_passes();
}
