/* query_plans_test.c - the lists with optional filters read what they
 * answer, whatever plan PostgreSQL would choose (STORE_CUSTOM, engine/store.h).
 *
 * The page statement (catalog_sql.c) has an optional cursor and optional
 * filters. Its custom plan starts the index scan at the cursor; its generic
 * plan can only test the cursor row by row, from the first product on. The
 * catalog's query threads let PostgreSQL choose (plan_cache_mode auto), and
 * PostgreSQL took the generic plan once dear searches had raised the average
 * of its custom plans: on the dev stack (337,000 products) a page then cost
 * up to 3.6 s, and the edge's read model took 17 s to load after a restart.
 * The statement is STORE_CUSTOM. Here the catalog role's sessions start with
 * force_generic_plan, as if PostgreSQL had made that choice, and a page deep
 * in the list must still read a few buffers (pg_stat_statements). The order
 * list has the same shape ("$1 = '' OR member_id = ..."): its generic plan
 * reads every order to find one member's. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/subjects.h"
#include "layby/v1/catalog.pb-c.h"
#include "layby/v1/order.pb-c.h"
#include "tsupport.h"

#define PRODUCTS  10000
#define PAGE      100
#define DEEP_PAGE 90 /* 8,900 products in */
#define ORDERS    10000

static bus *admin;
static tsupport_proc procs[1];

static void
setup(void)
{
    tsupport_reset();
    admin = tsupport_admin_bus("query-plans-test");
}

static void
teardown(void)
{
    tsupport_sql("ALTER ROLE catalog RESET plan_cache_mode");
    tsupport_sql("ALTER ROLE orders RESET plan_cache_mode");
    tsupport_stack_close(&admin, procs, LB_COUNTOF(procs));
}

TestSuite(query_plans, .init = setup, .fini = teardown, .timeout = 120);

/* Buffers the statements matching `like` touched since the last reset. */
static int64_t
statement_buffers(const char *like)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(sum(shared_blks_hit + shared_blks_read), 0)::bigint "
             "FROM pg_stat_statements WHERE query LIKE '%s'",
             like);
    return tsupport_sql_int(sql);
}

/* Sends req to subject and decodes the answer as want. */
static ProtobufCMessage *
query(const char *subject, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *want)
{
    bus_envelope env;
    bus_envelope_init(&env, req->descriptor, NULL);
    natsMsg *reply = NULL;
    ProtobufCMessage *m = NULL;
    lb_err err = { 0 };
    cr_assert_eq(bus_request(&reply, admin, subject, &env, req, 10000, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(bus_reply_decode(&m, reply, want, &err), LB_OK, "%s", err.msg);
    natsMsg_Destroy(reply);
    return m;
}

static void
products_fill(void)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO catalog.products (product_id, name, price_won, details, category, "
             "stock_available, created_at) SELECT gen_random_uuid(), 'page product ' || i, 1000, "
             "'', 'pages', 5, now() - (%d - i) * interval '1 second' "
             "FROM generate_series(1, %d) i",
             PRODUCTS, PRODUCTS);
    tsupport_sql(sql);
    tsupport_sql("ANALYZE catalog.products");
}

/* One page after cursor; its next cursor into next (PAGE_CURSOR_MAX). */
static void
page_get(const char *cursor, char *next, size_t n)
{
    Layby__V1__ListProducts l = LAYBY__V1__LIST_PRODUCTS__INIT;
    l.limit = PAGE;
    l.cursor = (char *)cursor;
    Layby__V1__ProductPage *pg = (Layby__V1__ProductPage *)query(
        SUBJ_CATALOG_LIST_PRODUCTS, &l.base, &layby__v1__product_page__descriptor);
    cr_assert_eq(pg->n_items, PAGE);
    cr_assert_str_neq(pg->next_cursor, "");
    snprintf(next, n, "%s", pg->next_cursor);
    protobuf_c_message_free_unpacked(&pg->base, NULL);
}

Test(query_plans, a_deep_product_page_reads_its_page_even_where_a_generic_plan_was_chosen)
{
    products_fill();
    tsupport_sql("ALTER ROLE catalog SET plan_cache_mode = force_generic_plan");
    tsupport_daemon_start(&procs[0], "layby-catalog", 0, NULL, NULL);
    char cursor[256] = "", next[256];
    for (int i = 1; i < DEEP_PAGE; i++) {
        page_get(cursor, next, sizeof next);
        memcpy(cursor, next, sizeof cursor);
    }
    tsupport_sql("SELECT pg_stat_statements_reset()");
    page_get(cursor, next, sizeof next);
    int64_t blocks =
        statement_buffers("%FROM catalog.products%ORDER BY created_at, product_id LIMIT%");
    /* 100 rows on a few heap and index pages (6 buffers when written),
     * against 8,900 index entries and their rows from the first product on
     * (200 with the generic plan). */
    cr_expect_gt(blocks, 0, "pg_stat_statements saw no page statement");
    cr_expect_lt(blocks, 40, "a page %d pages deep read %lld buffers", DEEP_PAGE,
                 (long long)blocks);
}

/* A member without orders among 10,000 of others': the list's custom plan
 * looks in orders_member (a few buffers); the generic one reads every order
 * (~170 heap pages and the key's index). */
Test(query_plans,
     a_members_order_list_reads_that_members_orders_even_where_a_generic_plan_was_chosen)
{
    char sql[640];
    snprintf(sql, sizeof sql,
             "INSERT INTO orders.orders (order_id, member_id, address_id, ship_to, status, "
             "created_at, updated_at) SELECT gen_random_uuid(), gen_random_uuid(), "
             "gen_random_uuid(), '\\x00', 'PAID', now(), now() FROM generate_series(1, %d)",
             ORDERS);
    tsupport_sql(sql);
    tsupport_sql("ANALYZE orders.orders");
    tsupport_sql("ALTER ROLE orders SET plan_cache_mode = force_generic_plan");
    tsupport_daemon_start(&procs[0], "layby-order", 0, NULL, NULL);
    tsupport_sql("SELECT pg_stat_statements_reset()");
    Layby__V1__ListOrders l = LAYBY__V1__LIST_ORDERS__INIT;
    l.member_id = "01a24803-0000-7000-8000-000000000001";
    l.limit = 20;
    Layby__V1__OrderList *ol = (Layby__V1__OrderList *)query(SUBJ_ORDER_LIST_ORDERS, &l.base,
                                                             &layby__v1__order_list__descriptor);
    cr_expect_eq(ol->n_items, 0);
    protobuf_c_message_free_unpacked(&ol->base, NULL);
    int64_t blocks = statement_buffers("%FROM orders WHERE%ORDER BY order_id DESC LIMIT%");
    cr_expect_gt(blocks, 0, "pg_stat_statements saw no list statement");
    cr_expect_lt(blocks, 20, "one member's empty list read %lld buffers", (long long)blocks);
}
