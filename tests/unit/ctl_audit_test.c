/* ctl_audit_test.c - the audit's judgement (cli/ctl_audit_check.c) on
 * hand-made answers: balanced books pass; each rule, broken alone, is
 * reported once with the product or order it names; an order that changed
 * recently is in flight and not judged, except for what the ledger commits
 * in one transaction (two captures, refunds above the charge). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ctl_audit.h"

/* Ids in a different order than sorted, so the merge join's sort is used. */
#define O1 "0190a1b2-0000-7000-8000-000000000003"
#define O2 "0190a1b2-0000-7000-8000-000000000001"
#define O3 "0190a1b2-0000-7000-8000-000000000002"
#define O4 "0190a1b2-0000-7000-8000-000000000004"
#define P1 "0190a1b2-0000-7000-8000-0000000000a1"

#define NOW 1000000

/* A shop in balance: P1 had 10 units, restocked 2; O1 paid (2 units sold,
 * 3000 won), O2 waiting for payment (1 reserved), O3 cancelled after payment
 * (refunded, released, delivery cancelled), O4 returned (1 unit back,
 * refunded). */
typedef struct books {
    ctl_audit_product products[1];
    ctl_audit_stock stock[4];
    ctl_audit_order orders[4];
    ctl_audit_money money[3];
    ctl_audit_delivery deliveries[3];
    ctl_audit_input in;
} books;

static void
books_init(books *b)
{
    memset(b, 0, sizeof *b);
    b->products[0] = (ctl_audit_product){ .id = P1,
                                          .initial = 10,
                                          .restocked = 2,
                                          .available = 9,
                                          .reserved = 1,
                                          .sold = 3,
                                          .returned = 1,
                                          .ledger_reserved = 1,
                                          .ledger_sold = 3,
                                          .ledger_returned = 1 };
    b->stock[0] = (ctl_audit_stock){ O1, "SOLD", 2, 3000, 10 };
    b->stock[1] = (ctl_audit_stock){ O2, "RESERVED", 1, 1500, 10 };
    b->stock[2] = (ctl_audit_stock){ O3, "RELEASED", 1, 1500, 10 };
    b->stock[3] = (ctl_audit_stock){ O4, "RETURNED", 1, 1500, 10 };
    b->orders[0] = (ctl_audit_order){ O4, "RETURNED", 1500, 10 };
    b->orders[1] = (ctl_audit_order){ O3, "CANCELLED", 1500, 10 };
    b->orders[2] = (ctl_audit_order){ O1, "PAID", 3000, 10 };
    b->orders[3] = (ctl_audit_order){ O2, "PAYMENT_PENDING", 1500, 10 };
    b->money[0] = (ctl_audit_money){ O3, 1, 1500, 1500, 1500, 10 };
    b->money[1] = (ctl_audit_money){ O1, 1, 3000, 0, 0, 10 };
    b->money[2] = (ctl_audit_money){ O4, 1, 1500, 1500, 1500, 10 };
    b->deliveries[0] = (ctl_audit_delivery){ O4, "RETURNED", 10 };
    b->deliveries[1] = (ctl_audit_delivery){ O1, "SHIPPING", 10 };
    b->deliveries[2] = (ctl_audit_delivery){ O3, "CANCELLED", 10 };
    b->in = (ctl_audit_input){ .products = b->products,
                               .n_products = 1,
                               .stock = b->stock,
                               .n_stock = 4,
                               .orders = b->orders,
                               .n_orders = 4,
                               .money = b->money,
                               .n_money = 3,
                               .deliveries = b->deliveries,
                               .n_deliveries = 3,
                               .settled_before_ms = NOW };
}

static books b;
static ctl_audit_report r;

static void
setup(void)
{
    books_init(&b);
}

static void
teardown(void)
{
    ctl_audit_report_destroy(&r);
}

TestSuite(ctl_audit, .init = setup, .fini = teardown);

static void
check(void)
{
    lb_err err;
    cr_assert_eq(ctl_audit_check(&r, &b.in, &err), LB_OK, "%s", err.msg);
}

/* Exactly one violation, of kind k, naming id. */
static void
expect_one(ctl_audit_kind k, const char *id)
{
    check();
    cr_assert_eq(r.n_violations, 1, "%zu violations, first %s %s", r.n_violations,
                 r.n_violations ? ctl_audit_kind_name(r.violations[0].kind) : "-",
                 r.n_violations ? r.violations[0].detail : "");
    cr_assert_eq(r.violations[0].kind, k, "%s: %s", ctl_audit_kind_name(r.violations[0].kind),
                 r.violations[0].detail);
    cr_assert_str_eq(r.violations[0].id, id);
}

/* Finds the order row of id in the (possibly sorted) arrays. */
static ctl_audit_order *
order_of(const char *id)
{
    for (size_t i = 0; i < b.in.n_orders; i++)
        if (strcmp(b.orders[i].id, id) == 0)
            return &b.orders[i];
    cr_assert_fail("no order %s", id);
    return NULL;
}

static ctl_audit_money *
money_of(const char *id)
{
    for (size_t i = 0; i < b.in.n_money; i++)
        if (strcmp(b.money[i].id, id) == 0)
            return &b.money[i];
    cr_assert_fail("no money %s", id);
    return NULL;
}

static ctl_audit_delivery *
delivery_of(const char *id)
{
    for (size_t i = 0; i < b.in.n_deliveries; i++)
        if (strcmp(b.deliveries[i].id, id) == 0)
            return &b.deliveries[i];
    cr_assert_fail("no delivery %s", id);
    return NULL;
}

static ctl_audit_stock *
stock_of(const char *id)
{
    for (size_t i = 0; i < b.in.n_stock; i++)
        if (strcmp(b.stock[i].id, id) == 0)
            return &b.stock[i];
    cr_assert_fail("no stock %s", id);
    return NULL;
}

Test(ctl_audit, balanced_books_pass_with_their_totals)
{
    check();
    cr_assert_eq(r.n_violations, 0, "%s %s", r.n_violations ? r.violations[0].id : "",
                 r.n_violations ? r.violations[0].detail : "");
    cr_assert_eq(r.products, 1);
    cr_assert_eq(r.orders, 4);
    cr_assert_eq(r.in_flight, 0);
    cr_assert_eq(r.charged, 6000);
    cr_assert_eq(r.refunded, 3000);
    cr_assert_eq(r.paid_total, 3000, "only O1 is paid and not cancelled or returned");
}

Test(ctl_audit, a_unit_out_of_nowhere_breaks_the_stock_equation)
{
    b.products[0].available++;
    expect_one(CTL_AUDIT_STOCK_EQUATION, P1);
}

Test(ctl_audit, a_counter_beside_its_ledger_is_reported)
{
    /* both sides of the equation moved (a reservation counted without its order) */
    b.products[0].reserved++;
    b.products[0].available--;
    expect_one(CTL_AUDIT_STOCK_LEDGER, P1);
}

Test(ctl_audit, a_cancelled_order_whose_stock_was_never_released_is_reported)
{
    /* the compensation (release) was skipped: the catalog still sells O3's unit */
    snprintf(stock_of(O3)->status, CTL_AUDIT_STATUS_MAX, "%s", "SOLD");
    expect_one(CTL_AUDIT_STOCK_HELD, O3);
    cr_assert_not_null(strstr(r.violations[0].detail, "CANCELLED"), "%s", r.violations[0].detail);
}

Test(ctl_audit, stock_held_for_an_order_nobody_knows_is_reported)
{
    b.in.n_orders = 3; /* O2, the last row, unknown to the order service */
    cr_assert_str_eq(b.orders[3].id, O2);
    expect_one(CTL_AUDIT_STOCK_HELD, O2);
}

Test(ctl_audit, a_paid_order_whose_stock_is_still_only_reserved_is_reported)
{
    snprintf(stock_of(O1)->status, CTL_AUDIT_STATUS_MAX, "%s", "RESERVED");
    expect_one(CTL_AUDIT_STOCK_HELD, O1);
}

Test(ctl_audit, a_total_beside_its_reserved_lines_is_reported)
{
    order_of(O2)->total = 1499;
    expect_one(CTL_AUDIT_ORDER_TOTAL, O2);
}

Test(ctl_audit, a_cancelled_order_that_kept_its_money_is_reported)
{
    money_of(O3)->refunded = 0;
    money_of(O3)->refunded_on_charges = 0;
    expect_one(CTL_AUDIT_MONEY, O3);
    cr_assert_eq(r.charged - r.refunded, r.paid_total + 1500);
}

Test(ctl_audit, a_paid_order_without_its_charge_is_reported)
{
    money_of(O1)->charged = 0;
    money_of(O1)->captures = 0;
    expect_one(CTL_AUDIT_MONEY, O1);
}

Test(ctl_audit, two_captures_are_reported_even_in_flight)
{
    money_of(O1)->captures = 2;
    money_of(O1)->updated_ms = NOW + 5;
    expect_one(CTL_AUDIT_CHARGED_TWICE, O1);
    cr_assert_eq(r.in_flight, 1);
}

Test(ctl_audit, a_refund_above_the_charge_is_reported)
{
    money_of(O4)->refunded = 1600;
    money_of(O4)->refunded_on_charges = 1600;
    check();
    cr_assert_eq(r.n_violations, 2, "refund above the charge, and the money rule");
    cr_assert_eq(r.violations[0].kind, CTL_AUDIT_REFUND_ABOVE);
    cr_assert_str_eq(r.violations[0].id, O4);
    cr_assert_eq(r.violations[1].kind, CTL_AUDIT_MONEY);
}

Test(ctl_audit, refund_rows_beside_the_charges_refunded_amount_are_reported)
{
    money_of(O3)->refunded_on_charges = 1000;
    expect_one(CTL_AUDIT_REFUND_LEDGER, O3);
}

Test(ctl_audit, an_order_changed_since_the_cutoff_is_in_flight_not_judged)
{
    /* charged, PAID not yet set: a pay saga between two services */
    order_of(O2)->updated_ms = NOW;
    money_of(O1)->charged = 0; /* settled: still judged */
    b.money[0] = (ctl_audit_money){ O2, 1, 1500, 0, 0, NOW + 1 };
    expect_one(CTL_AUDIT_MONEY, O1);
    cr_assert_eq(r.in_flight, 1);
    cr_assert_eq(r.orders, 3);
}

Test(ctl_audit, a_cancelled_order_whose_delivery_goes_on_is_reported)
{
    /* the compensation (cancel the delivery) was skipped */
    snprintf(delivery_of(O3)->status, CTL_AUDIT_STATUS_MAX, "%s", "PREPARING");
    expect_one(CTL_AUDIT_DELIVERY, O3);
}

Test(ctl_audit, a_paid_order_without_a_delivery_is_reported)
{
    cr_assert_str_eq(b.deliveries[1].id, O1);
    b.deliveries[1] = b.deliveries[2]; /* O1's row goes */
    b.in.n_deliveries = 2;
    expect_one(CTL_AUDIT_DELIVERY, O1);
}

Test(ctl_audit, every_kind_has_a_name_and_a_meaning)
{
    for (int k = 0; k < CTL_AUDIT_KIND__COUNT; k++) {
        cr_assert_neq(strcmp(ctl_audit_kind_name((ctl_audit_kind)k), "?"), 0);
        cr_assert_gt(strlen(ctl_audit_kind_what((ctl_audit_kind)k)), 10);
    }
}
