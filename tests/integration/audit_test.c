/* audit_test.c - `layby-ctl audit` against real catalog, order, payment and
 * delivery daemons (their audit queries), nats-server and PostgreSQL. The books are
 * written with SQL as the services would have left them: a product, an order
 * paid, one waiting for payment, one cancelled and refunded. They balance
 * (exit 0, text and JSON); then a violation is planted with direct SQL and
 * the audit exits 1 naming the product or order; --settle keeps a fresh
 * change in flight; a wrong flag exits 2. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "engine/id.h"
#include "tsupport.h"

static tsupport_proc procs[4];

#define P1 "0190a1b2-0000-7000-8000-0000000000a1"
#define O1 "0190a1b2-0000-7000-8000-000000000001" /* PAID */
#define O2 "0190a1b2-0000-7000-8000-000000000002" /* PAYMENT_PENDING */
#define O3 "0190a1b2-0000-7000-8000-000000000003" /* CANCELLED after payment */
#define M1 "0190a1b2-0000-7000-8000-0000000000b1"
#define S1 "0190a1b2-0000-7000-8000-0000000000c1"

static void
setup(void)
{
    tsupport_reset();
    tsupport_daemon_start(&procs[0], "layby-catalog", 0, NULL, NULL);
    tsupport_daemon_start(&procs[1], "layby-order", 0, NULL, NULL);
    tsupport_daemon_start(&procs[2], "layby-payment", 0, NULL, NULL);
    tsupport_daemon_start(&procs[3], "layby-delivery", 0, NULL, NULL);
    /* P1: 10 units, restocked 2; O1 bought 2 (sold), O2 holds 1, O3's unit
     * came back when it was cancelled. A minute old, so settled. */
    tsupport_sql(
        "INSERT INTO catalog.products (product_id, name, price_won, details, category, "
        "stock_available, created_at, initial_stock, restocked, reserved, sold) VALUES "
        "('" P1 "', 'Laptop 14', 1500, '', 'laptops', 9, now(), 10, 2, 1, 2);"
        "INSERT INTO catalog.stock_orders VALUES "
        "('" O1 "', 'SOLD', now() - interval '1 min'), ('" O2 "', 'RESERVED', now() - interval "
        "'1 min'), ('" O3 "', 'RELEASED', now() - interval '1 min');"
        "INSERT INTO catalog.stock_lines VALUES ('" O1 "', '" P1 "', 1, 2, 'Laptop 14', 1500), "
        "('" O2 "', '" P1 "', 1, 1, 'Laptop 14', 1500), ('" O3 "', '" P1
        "', 1, 1, 'Laptop 14', 1500);"
        "INSERT INTO orders.orders (order_id, member_id, address_id, ship_to, status, total_won, "
        "created_at, updated_at) SELECT o, '" M1 "', '" M1 "', '\\x00', s, t, "
        "now() - interval '1 min', now() - interval '1 min' FROM (VALUES ('" O1 "'::uuid, "
        "'PAID', 3000), ('" O2 "', 'PAYMENT_PENDING', 1500), ('" O3
        "', 'CANCELLED', 1500)) v(o, s, t);"
        "INSERT INTO payment.charges (charge_id, order_id, saga_id, attempt_key, status, "
        "amount_won, refunded_won, method, created_at) VALUES "
        "(gen_random_uuid(), '" O1 "', '" S1 "', 'a:0:1', 'CAPTURED', 3000, 0, 'card', "
        "now() - interval '1 min'), (gen_random_uuid(), '" O3 "', '" S1 "', 'b:0:1', "
        "'CAPTURED', 1500, 1500, 'card', now() - interval '1 min');"
        "INSERT INTO payment.refunds (refund_id, order_id, saga_id, refund_key, amount_won, "
        "created_at) VALUES (gen_random_uuid(), '" O3 "', '" S1 "', 'b:4', 1500, "
        "now() - interval '1 min');"
        "INSERT INTO delivery.deliveries VALUES (gen_random_uuid(), '" O1 "', 'PREPARING', "
        "now() - interval '1 min', now() - interval '1 min'), (gen_random_uuid(), '" O3
        "', 'CANCELLED', now() - interval '1 min', now() - interval '1 min');");
}

static void
teardown(void)
{
    tsupport_daemons_finish(procs, LB_COUNTOF(procs));
}

TestSuite(audit, .init = setup, .fini = teardown, .timeout = 120);

/* Runs `layby-ctl audit <args>`; its stdout and stderr into out, returns its exit code. */
static int
audit_run(char *out, size_t n, const char *args)
{
    char cmdline[512];
    snprintf(cmdline, sizeof cmdline, "%s/layby-ctl audit %s 2>&1",
             tsupport_env_req("LAYBY_BUILD_DIR"), args);
    FILE *p = popen(cmdline, "r");
    cr_assert_not_null(p);
    size_t len = fread(out, 1, n - 1, p);
    out[len] = '\0';
    int rc = pclose(p);
    cr_assert(WIFEXITED(rc), "%s: %s", cmdline, out);
    return WEXITSTATUS(rc);
}

Test(audit, balanced_books_pass_in_text_and_json)
{
    char out[16384];
    cr_assert_eq(audit_run(out, sizeof out, "--settle 0"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "3 settled orders"), "%s", out);
    cr_assert_not_null(strstr(out, "OK"), "%s", out);

    cr_assert_eq(audit_run(out, sizeof out, "--settle 0 --json"), 0, "%s", out);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    cr_assert_not_null(j, "%s: %s", je.text, out);
    cr_assert(json_is_true(json_object_get(j, "ok")), "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(j, "orders")), 3);
    json_t *money = json_object_get(j, "money");
    cr_assert_eq(json_integer_value(json_object_get(money, "net")), 3000);
    cr_assert_eq(json_integer_value(json_object_get(money, "paidTotal")), 3000);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(j, "ordersByStatus"), "PAID"), "orders")),
                 1);
    cr_assert_eq(json_array_size(json_object_get(j, "violations")), 0);
    json_decref(j);
}

Test(audit, a_unit_planted_in_the_catalog_fails_naming_the_product)
{
    tsupport_sql("UPDATE catalog.products SET stock_available = stock_available + 1");
    char out[16384];
    cr_assert_eq(audit_run(out, sizeof out, "--settle 0"), 1, "%s", out);
    cr_assert_not_null(strstr(out, "stock_equation"), "%s", out);
    cr_assert_not_null(strstr(out, P1), "%s", out);
}

Test(audit, a_cancelled_order_that_kept_its_money_fails_naming_the_order)
{
    /* as if the refund compensation had been skipped */
    tsupport_sql("DELETE FROM payment.refunds; UPDATE payment.charges SET refunded_won = 0");
    char out[16384];
    cr_assert_eq(audit_run(out, sizeof out, "--settle 0 --json"), 1, "%s", out);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_not_null(j, "%s", out);
    cr_assert(json_is_false(json_object_get(j, "ok")));
    json_t *v = json_array_get(json_object_get(j, "violations"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(v, "kind")), "money", "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(v, "id")), O3, "%s", out);
    json_decref(j);
}

Test(audit, stock_left_reserved_for_a_cancelled_order_fails)
{
    /* as if the release compensation had been skipped */
    tsupport_sql("UPDATE orders.orders SET status = 'CANCELLED' WHERE order_id = '" O2 "'");
    char out[16384];
    cr_assert_eq(audit_run(out, sizeof out, "--settle 0"), 1, "%s", out);
    cr_assert_not_null(strstr(out, "stock_held"), "%s", out);
    cr_assert_not_null(strstr(out, O2), "%s", out);
}

Test(audit, a_cancelled_order_whose_delivery_goes_on_fails)
{
    /* as if the delivery cancel compensation had been skipped */
    tsupport_sql("UPDATE delivery.deliveries SET status = 'PREPARING' WHERE order_id = '" O3 "'");
    char out[16384];
    cr_assert_eq(audit_run(out, sizeof out, "--settle 0"), 1, "%s", out);
    cr_assert_not_null(strstr(out, "delivery "), "%s", out);
    cr_assert_not_null(strstr(out, O3), "%s", out);
}

Test(audit, a_fresh_change_is_in_flight_until_it_settles)
{
    /* charged and not yet PAID, a second ago: a pay saga between services */
    tsupport_sql("INSERT INTO payment.charges (charge_id, order_id, saga_id, attempt_key, status, "
                 "amount_won, method, created_at) VALUES (gen_random_uuid(), '" O2 "', '" S1
                 "', 'c:0:1', 'CAPTURED', 1500, 'card', now())");
    char out[16384];
    cr_assert_eq(audit_run(out, sizeof out, "--settle 30s"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "1 in flight"), "%s", out);
    cr_assert_eq(audit_run(out, sizeof out, "--settle 0"), 1, "%s", out);
    cr_assert_not_null(strstr(out, O2), "%s", out);
}

Test(audit, pages_of_one_order_add_up_like_one_page)
{
    char out[16384];
    cr_assert_eq(audit_run(out, sizeof out, "--settle 0 --page 1"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "3 settled orders"), "%s", out);
}

Test(audit, wrong_flags_exit_2)
{
    char out[16384];
    cr_assert_eq(audit_run(out, sizeof out, "--bogus"), 2, "%s", out);
    cr_assert_eq(audit_run(out, sizeof out, "--page 0"), 2, "%s", out);
}

Test(audit, the_first_audit_after_the_services_sessions_are_cut_passes)
{
    char out[16384];
    cr_assert_eq(audit_run(out, sizeof out, "--settle 0"), 0, "%s", out);
    /* Every session of the four services ends, their query threads' idle ones
     * too (as after a PostgreSQL restart): libpq learns it only when a
     * session is next used. Each read must then run once more on a new
     * session rather than answer 503 (once per responder thread). */
    cr_assert_gt(tsupport_sql_int("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) "
                                  "FROM pg_stat_activity WHERE usename IN "
                                  "('catalog', 'orders', 'payment', 'delivery')) t"),
                 3);
    for (int i = 0; i < 3; i++) /* each round meets the other thread of a service */
        cr_assert_eq(audit_run(out, sizeof out, "--settle 0"), 0, "round %d: %s", i, out);
    cr_assert_not_null(strstr(out, "3 settled orders"), "%s", out);
}
