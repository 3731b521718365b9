/* catalog_sql.c - every SQL statement of the catalog service, prepared by name
 * on each connection (store.h). Batches travel as arrays: one statement per
 * batch, not one per product. */
#include "catalog.h"

#define PRODUCT_COLS                                                                         \
    "product_id::text, name, price_won, details, category, stock_available, "                \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), version, " \
    "(extract(epoch FROM created_at) * 1000000)::bigint"

/* clang-format off */
static const char CATALOG_SQL_PRODUCTS_INSERT[] =
    "INSERT INTO catalog.products (product_id, name, price_won, details, category, "
    "stock_available, initial_stock, created_at) "
    "SELECT id, n, p, d, c, s, s, t FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], "
    "$5::text[], $6::bigint[], $7::timestamptz[]) AS u(id, n, p, d, c, s, t) "
    "ON CONFLICT (product_id) DO NOTHING RETURNING product_id::text";
static const char CATALOG_SQL_PRODUCTS_BY_IDS[] =
    "SELECT " PRODUCT_COLS " FROM catalog.products WHERE product_id = ANY($1::uuid[])";
static const char CATALOG_SQL_PRODUCT_GET[] =
    "SELECT " PRODUCT_COLS " FROM catalog.products WHERE product_id = $1::uuid";

/* Keyset page: $1 limit + 1 (one more tells whether a next page exists),
 * $2/$3 the cursor's (created_at in µs, product_id) or NULL on the first page,
 * $4 category or NULL, $5 ILIKE pattern or NULL. */
static const char CATALOG_SQL_PRODUCTS_PAGE[] =
    STORE_CUSTOM "SELECT " PRODUCT_COLS " FROM catalog.products "
    "WHERE ($2::bigint IS NULL OR (created_at, product_id) > "
    "(timestamptz 'epoch' + $2::bigint * interval '1 microsecond', $3::uuid)) "
    "AND ($4::text IS NULL OR category = $4::text) "
    "AND ($5::text IS NULL OR name ILIKE $5::text) "
    "ORDER BY created_at, product_id LIMIT $1::int";

/* --- stock ---------------------------------------------------------------- */

static const char CATALOG_SQL_STOCK_ORDERS_LOCK[] =
    "SELECT order_id::text, status FROM catalog.stock_orders "
    "WHERE order_id = ANY($1::uuid[]) ORDER BY order_id FOR UPDATE";
static const char CATALOG_SQL_STOCK_OPS_LOAD[] =
    "SELECT order_id::text, op, code, reason, array_to_string(short_ids, ',') "
    "FROM catalog.stock_ops WHERE order_id = ANY($1::uuid[])";
static const char CATALOG_SQL_STOCK_LINES_LOAD[] =
    "SELECT order_id::text, product_id::text, quantity, name, unit_price_won "
    "FROM catalog.stock_lines WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, position";
/* Locked in key order, so two batches never wait on each other in a cycle. */
static const char CATALOG_SQL_STOCK_PRODUCTS_LOCK[] =
    "SELECT " PRODUCT_COLS ", reserved, sold, returned "
    "FROM catalog.products WHERE product_id = ANY($1::uuid[]) ORDER BY product_id FOR UPDATE";
static const char CATALOG_SQL_STOCK_PRODUCTS_UPDATE[] =
    "UPDATE catalog.products p SET stock_available = u.a, reserved = u.r, sold = u.s, "
    "returned = u.ret, restocked = p.restocked + u.rs, version = u.v "
    "FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], "
    "$6::bigint[], $7::bigint[]) AS u(id, a, r, s, ret, rs, v) WHERE p.product_id = u.id";
/* A plain INSERT: an order another batch created meanwhile (it was not there
 * to lock) fails this batch, and its retry sees the committed row. */
static const char CATALOG_SQL_STOCK_ORDERS_INSERT[] =
    "INSERT INTO catalog.stock_orders (order_id, status, updated_at) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[])";
static const char CATALOG_SQL_STOCK_ORDERS_UPDATE[] =
    "UPDATE catalog.stock_orders o SET status = u.s, updated_at = u.t "
    "FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS u(id, s, t) WHERE o.order_id = u.id";
static const char CATALOG_SQL_STOCK_LINES_INSERT[] =
    "INSERT INTO catalog.stock_lines (order_id, product_id, position, quantity, name, unit_price_won) "
    "SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::bigint[], $5::text[], $6::bigint[])";
static const char CATALOG_SQL_STOCK_OPS_INSERT[] =
    "INSERT INTO catalog.stock_ops (order_id, op, code, reason, short_ids, at) "
    "SELECT o, p, c, r, string_to_array(s, ','), t FROM unnest($1::uuid[], $2::text[], $3::text[], "
    "$4::text[], $5::text[], $6::timestamptz[]) AS u(o, p, c, r, s, t)";

/* The counters, and beside them what the order ledger says they must be
 * (catalog_audit.c). One statement: one snapshot. */
/* A keyed adjustment applies once per product (sql/0410). */
static const char CATALOG_SQL_STOCK_ADJUST_SEEN[] =
    "SELECT 1 FROM catalog.stock_adjustments WHERE product_id = $1::uuid "
    "AND adjustment_id = $2::uuid";
static const char CATALOG_SQL_STOCK_ADJUST_INSERT[] =
    "INSERT INTO catalog.stock_adjustments (product_id, adjustment_id, delta, at) "
    "VALUES ($1::uuid, $2::uuid, $3::bigint, $4::timestamptz)";
static const char CATALOG_SQL_STOCK_AUDIT[] =
    "SELECT p.product_id::text, p.initial_stock, p.restocked, p.stock_available, p.reserved, "
    "p.sold, p.returned, "
    "coalesce(sum(l.quantity) FILTER (WHERE o.status = 'RESERVED'), 0), "
    "coalesce(sum(l.quantity) FILTER (WHERE o.status IN ('SOLD', 'RETURNED')), 0), "
    "coalesce(sum(l.quantity) FILTER (WHERE o.status = 'RETURNED'), 0) "
    "FROM catalog.products p LEFT JOIN catalog.stock_lines l ON l.product_id = p.product_id "
    "LEFT JOIN catalog.stock_orders o ON o.order_id = l.order_id "
    "GROUP BY p.product_id ORDER BY p.product_id";
/* A page of orders after $1 ('' = from the first), $2 of them. */
static const char CATALOG_SQL_STOCK_AUDIT_ORDERS[] =
    "SELECT o.order_id::text, o.status, coalesce(sum(l.quantity), 0), "
    "coalesce(sum(l.quantity * l.unit_price_won), 0), "
    "(extract(epoch FROM o.updated_at) * 1000)::bigint "
    "FROM catalog.stock_orders o LEFT JOIN catalog.stock_lines l ON l.order_id = o.order_id "
    "WHERE ($1 = '' OR o.order_id > nullif($1, '')::uuid) "
    "GROUP BY o.order_id ORDER BY o.order_id LIMIT $2::int";

/* --- wishlist --------------------------------------------------------------- */

static const char CATALOG_SQL_WISHLIST_GET[] =
    "SELECT w.product_id::text, p.name, p.price_won, w.quantity "
    "FROM catalog.wishlist_items w JOIN catalog.products p USING (product_id) "
    "WHERE w.member_id = $1::uuid ORDER BY w.added_at, w.product_id";
/* Inserts or sets the quantity; no row back = no such product. */
static const char CATALOG_SQL_WISHLIST_PUT[] =
    "INSERT INTO catalog.wishlist_items (member_id, product_id, quantity, added_at) "
    "SELECT $1::uuid, product_id, $3::int, $4::timestamptz FROM catalog.products "
    "WHERE product_id = $2::uuid "
    "ON CONFLICT (member_id, product_id) DO UPDATE SET quantity = EXCLUDED.quantity "
    "RETURNING product_id::text";
static const char CATALOG_SQL_WISHLIST_REMOVE[] =
    "DELETE FROM catalog.wishlist_items WHERE member_id = $1::uuid AND product_id = $2::uuid "
    "RETURNING product_id::text";
/* Once per order: a repeat finds the order recorded and removes nothing. */
static const char CATALOG_SQL_WISHLIST_ORDERED[] =
    "WITH o AS (INSERT INTO catalog.wishlist_orders (order_id, member_id, at) "
    "VALUES ($1::uuid, $2::uuid, $4::timestamptz) ON CONFLICT DO NOTHING RETURNING order_id) "
    "DELETE FROM catalog.wishlist_items WHERE member_id = $2::uuid "
    "AND product_id = ANY($3::uuid[]) AND EXISTS (SELECT 1 FROM o)";

const store_stmt catalog_stmts[CATALOG_STMTS_COUNT] = {
    { "catalog_products_insert",       CATALOG_SQL_PRODUCTS_INSERT },
    { "catalog_products_by_ids",       CATALOG_SQL_PRODUCTS_BY_IDS },
    { "catalog_product_get",           CATALOG_SQL_PRODUCT_GET },
    { "catalog_products_page",         CATALOG_SQL_PRODUCTS_PAGE },
    { "catalog_stock_orders_lock",     CATALOG_SQL_STOCK_ORDERS_LOCK },
    { "catalog_stock_ops_load",        CATALOG_SQL_STOCK_OPS_LOAD },
    { "catalog_stock_lines_load",      CATALOG_SQL_STOCK_LINES_LOAD },
    { "catalog_stock_products_lock",   CATALOG_SQL_STOCK_PRODUCTS_LOCK },
    { "catalog_stock_products_update", CATALOG_SQL_STOCK_PRODUCTS_UPDATE },
    { "catalog_stock_orders_insert",   CATALOG_SQL_STOCK_ORDERS_INSERT },
    { "catalog_stock_orders_update",   CATALOG_SQL_STOCK_ORDERS_UPDATE },
    { "catalog_stock_lines_insert",    CATALOG_SQL_STOCK_LINES_INSERT },
    { "catalog_stock_ops_insert",      CATALOG_SQL_STOCK_OPS_INSERT },
    { "catalog_stock_adjust_seen",     CATALOG_SQL_STOCK_ADJUST_SEEN },
    { "catalog_stock_adjust_insert",   CATALOG_SQL_STOCK_ADJUST_INSERT },
    { "catalog_stock_audit",           CATALOG_SQL_STOCK_AUDIT },
    { "catalog_stock_audit_orders",    CATALOG_SQL_STOCK_AUDIT_ORDERS },
    { "catalog_wishlist_get",          CATALOG_SQL_WISHLIST_GET },
    { "catalog_wishlist_put",          CATALOG_SQL_WISHLIST_PUT },
    { "catalog_wishlist_remove",       CATALOG_SQL_WISHLIST_REMOVE },
    { "catalog_wishlist_ordered",      CATALOG_SQL_WISHLIST_ORDERED },
};
/* clang-format on */
