/* catalog_sql.c - every SQL statement of the catalog service, prepared by name
 * on each connection (store.h). Batches travel as arrays: one statement per
 * batch, not one per product. */
#include "catalog.h"

#define PRODUCT_COLS                                                          \
    "product_id::text, name, price_won, details, category, stock_available, " \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* clang-format off */
static const char CATALOG_SQL_PRODUCTS_INSERT[] =
    "INSERT INTO catalog.products (product_id, name, price_won, details, category, "
    "stock_available, created_at) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], "
    "$6::bigint[], $7::timestamptz[]) "
    "ON CONFLICT (product_id) DO NOTHING RETURNING product_id::text";
static const char CATALOG_SQL_PRODUCTS_BY_IDS[] =
    "SELECT " PRODUCT_COLS " FROM catalog.products WHERE product_id = ANY($1::uuid[])";
static const char CATALOG_SQL_PRODUCT_GET[] =
    "SELECT " PRODUCT_COLS " FROM catalog.products WHERE product_id = $1::uuid";

const store_stmt catalog_stmts[CATALOG_STMTS_COUNT] = {
    { "catalog_products_insert", CATALOG_SQL_PRODUCTS_INSERT },
    { "catalog_products_by_ids", CATALOG_SQL_PRODUCTS_BY_IDS },
    { "catalog_product_get",     CATALOG_SQL_PRODUCT_GET },
};
/* clang-format on */
