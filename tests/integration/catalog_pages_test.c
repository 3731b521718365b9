/* catalog_pages_test.c - a deep page of the product list reads its page,
 * not every product before it, whatever plan PostgreSQL would choose.
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
 * in the list must still read a few buffers (pg_stat_statements). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/subjects.h"
#include "layby/v1/catalog.pb-c.h"
#include "tsupport.h"

#define PRODUCTS  10000
#define PAGE      100
#define DEEP_PAGE 90 /* 8,900 products in */

static bus *admin;
static tsupport_proc procs[1];

static void
setup(void)
{
    tsupport_reset();
    admin = tsupport_admin_bus("catalog-pages-test");
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO catalog.products (product_id, name, price_won, details, category, "
             "stock_available, created_at) SELECT gen_random_uuid(), 'page product ' || i, 1000, "
             "'', 'pages', 5, now() - (%d - i) * interval '1 second' "
             "FROM generate_series(1, %d) i",
             PRODUCTS, PRODUCTS);
    tsupport_sql(sql);
    tsupport_sql("ANALYZE catalog.products");
    tsupport_sql("ALTER ROLE catalog SET plan_cache_mode = force_generic_plan");
}

static void
teardown(void)
{
    tsupport_sql("ALTER ROLE catalog RESET plan_cache_mode");
    tsupport_stack_close(&admin, procs, LB_COUNTOF(procs));
}

TestSuite(catalog_pages, .init = setup, .fini = teardown, .timeout = 120);

/* One page after cursor; its next cursor into next (PAGE_CURSOR_MAX). */
static void
page_get(const char *cursor, char *next, size_t n)
{
    Layby__V1__ListProducts l = LAYBY__V1__LIST_PRODUCTS__INIT;
    l.limit = PAGE;
    l.cursor = (char *)cursor;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__list_products__descriptor, NULL);
    natsMsg *reply = NULL;
    ProtobufCMessage *m = NULL;
    lb_err err = { 0 };
    cr_assert_eq(bus_request(&reply, admin, SUBJ_CATALOG_LIST_PRODUCTS, &env, &l.base, 10000, &err),
                 LB_OK, "%s", err.msg);
    cr_assert_eq(bus_reply_decode(&m, reply, &layby__v1__product_page__descriptor, &err), LB_OK,
                 "%s", err.msg);
    natsMsg_Destroy(reply);
    Layby__V1__ProductPage *pg = (Layby__V1__ProductPage *)m;
    cr_assert_eq(pg->n_items, PAGE);
    cr_assert_str_neq(pg->next_cursor, "");
    snprintf(next, n, "%s", pg->next_cursor);
    protobuf_c_message_free_unpacked(m, NULL);
}

/* Buffers the page statement touched since the last reset. */
static int64_t
page_buffers(void)
{
    return tsupport_sql_int("SELECT coalesce(sum(shared_blks_hit + shared_blks_read), 0)::bigint "
                            "FROM pg_stat_statements WHERE query LIKE '%FROM catalog.products%' "
                            "AND query LIKE '%ORDER BY created_at, product_id LIMIT%'");
}

Test(catalog_pages, a_deep_page_reads_its_page_even_where_a_generic_plan_was_chosen)
{
    tsupport_daemon_start(&procs[0], "layby-catalog", 0, NULL, NULL);
    char cursor[256] = "", next[256];
    for (int i = 1; i < DEEP_PAGE; i++) {
        page_get(cursor, next, sizeof next);
        memcpy(cursor, next, sizeof cursor);
    }
    tsupport_sql("SELECT pg_stat_statements_reset()");
    page_get(cursor, next, sizeof next);
    int64_t blocks = page_buffers();
    /* 100 rows on a few heap and index pages (6 buffers when written),
     * against 8,900 index entries and their rows from the first product on
     * (200 with the generic plan). */
    cr_expect_gt(blocks, 0, "pg_stat_statements saw no page statement");
    cr_expect_lt(blocks, 40, "a page %d pages deep read %lld buffers", DEEP_PAGE,
                 (long long)blocks);
}
