/* order_sql.c - every SQL statement of the order service, prepared by name on
 * each connection (store.h). Sealed values travel as hex text. */
#include "order.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define ADDRESS_COLS \
    "address_id::text, member_id::text, encode(sealed, 'hex'), is_default, " TS("created_at")
#define ORDER_COLS                                                                              \
    "order_id::text, member_id::text, address_id::text, encode(ship_to, 'hex'), status, "       \
    "total_won, coalesce(" TS("payment_deadline") ", ''), reason, short_products::text[], " TS( \
        "created_at") ", " TS("updated_at")

/* clang-format off */
const store_stmt order_stmts[ORDER_STMTS_COUNT] = {
    [ORDER_SQL_ADDRESS_GET] = { "order_address_get",
        "SELECT " ADDRESS_COLS " FROM addresses WHERE address_id = $1::uuid" },
    [ORDER_SQL_ADDRESS_COUNT] = { "order_address_count",
        "SELECT count(*) FROM addresses WHERE member_id = $1::uuid" },
    [ORDER_SQL_ADDRESS_CLEAR_DEFAULT] = { "order_address_clear_default",
        "UPDATE addresses SET is_default = false, updated_at = $2::timestamptz "
        "WHERE member_id = $1::uuid AND is_default" },
    [ORDER_SQL_ADDRESS_INSERT] = { "order_address_insert",
        "INSERT INTO addresses (address_id, member_id, sealed, is_default, created_at, updated_at) "
        "VALUES ($1::uuid, $2::uuid, $3::bytea, $4::boolean, $5::timestamptz, $5::timestamptz) "
        "ON CONFLICT (address_id) DO NOTHING RETURNING " ADDRESS_COLS },
    [ORDER_SQL_ADDRESS_UPDATE] = { "order_address_update",
        "UPDATE addresses SET sealed = $2::bytea, is_default = $3::boolean, "
        "updated_at = $4::timestamptz WHERE address_id = $1::uuid RETURNING " ADDRESS_COLS },
    [ORDER_SQL_ADDRESS_DELETE] = { "order_address_delete",
        "DELETE FROM addresses WHERE address_id = $1::uuid AND member_id = $2::uuid "
        "RETURNING is_default" },
    /* After the default was deleted: the newest remaining address becomes it. */
    [ORDER_SQL_ADDRESS_PROMOTE] = { "order_address_promote",
        "UPDATE addresses SET is_default = true, updated_at = $2::timestamptz "
        "WHERE address_id = (SELECT address_id FROM addresses WHERE member_id = $1::uuid "
        "ORDER BY created_at DESC, address_id DESC LIMIT 1) "
        "AND NOT EXISTS (SELECT 1 FROM addresses WHERE member_id = $1::uuid AND is_default)" },
    [ORDER_SQL_ADDRESS_LIST] = { "order_address_list",
        "SELECT " ADDRESS_COLS " FROM addresses WHERE member_id = $1::uuid "
        "ORDER BY created_at, address_id" },
    /* create's first look, one round trip: whether the order exists (a
     * repeat) and the address it is to ship to (none: no row of a). */
    [ORDER_SQL_CREATE_LOOK] = { "order_create_look",
        "SELECT EXISTS (SELECT 1 FROM orders WHERE order_id = $1::uuid), a.member_id::text, "
        "encode(a.sealed, 'hex') FROM (SELECT 1) one "
        "LEFT JOIN addresses a ON a.address_id = $2::uuid" },
    /* set_status's first look: the order locked, and its history entry of
     * status $2 when it reached it before (NULL at otherwise). */
    [ORDER_SQL_ORDER_LOCK] = { "order_order_lock",
        "SELECT o.status, o.member_id::text, o.total_won, " TS("h.at") " FROM orders o "
        "LEFT JOIN order_history h ON h.order_id = o.order_id AND h.status = $2 "
        "WHERE o.order_id = $1::uuid FOR UPDATE OF o" },
    /* The order PENDING with its lines and its first history entry, one
     * statement (was three); nothing when it exists already (a racing repeat). */
    [ORDER_SQL_ORDER_INSERT] = { "order_order_insert",
        "WITH o AS (INSERT INTO orders (order_id, member_id, address_id, ship_to, status, "
        "from_wishlist, created_at, updated_at) VALUES ($1::uuid, $2::uuid, $3::uuid, $4::bytea, "
        "'PENDING', $5::boolean, $6::timestamptz, $6::timestamptz) ON CONFLICT (order_id) "
        "DO NOTHING RETURNING order_id), "
        "l AS (INSERT INTO order_lines (order_id, line_no, product_id, quantity) "
        "SELECT o.order_id, n, p, q FROM o, "
        "unnest($7::uuid[], $8::bigint[]) WITH ORDINALITY AS x(p, q, n)), "
        "h AS (INSERT INTO order_history (order_id, status, at, reason) "
        "SELECT order_id, 'PENDING', $6::timestamptz, '' FROM o) "
        "SELECT order_id::text FROM o" },
    /* The reserved name and price of each product, then the total from them. */
    [ORDER_SQL_LINE_PRICE] = { "order_line_price",
        "WITH s AS (UPDATE order_lines l SET name = v.name, unit_price_won = v.price "
        "FROM unnest($2::uuid[], $3::text[], $4::bigint[]) AS v(p, name, price) "
        "WHERE l.order_id = $1::uuid AND l.product_id = v.p RETURNING l.quantity * v.price AS sub) "
        "UPDATE orders SET total_won = (SELECT coalesce(sum(sub), 0) FROM s) "
        "WHERE order_id = $1::uuid" },
    /* The move and its history entry, one statement (was two). */
    [ORDER_SQL_ORDER_SET] = { "order_order_set",
        "WITH u AS (UPDATE orders SET status = $2, updated_at = $3::timestamptz, "
        "reason = CASE WHEN $4 = '' THEN reason ELSE $4 END, "
        "payment_deadline = coalesce($5::timestamptz, payment_deadline), "
        "short_products = CASE WHEN cardinality($6::uuid[]) = 0 THEN short_products ELSE $6::uuid[] END "
        "WHERE order_id = $1::uuid RETURNING order_id, total_won, member_id::text), "
        "h AS (INSERT INTO order_history (order_id, status, at, reason) "
        "SELECT order_id, $2, $3::timestamptz, $4 FROM u ON CONFLICT DO NOTHING) "
        "SELECT total_won, member_id FROM u" },
    [ORDER_SQL_HISTORY_HAS] = { "order_history_has",
        "SELECT o.total_won, o.member_id::text, " TS("h.at") " FROM order_history h "
        "JOIN orders o USING (order_id) "
        "WHERE h.order_id = $1::uuid AND h.status = $2" },
    [ORDER_SQL_LINES] = { "order_lines",
        "SELECT product_id::text, quantity, name, unit_price_won FROM order_lines "
        "WHERE order_id = $1::uuid ORDER BY line_no" },
    /* GET: the order (kind 0, ORDER_COLS), its lines (1: product, -, -, -,
     * name, quantity, unit price) and its timeline (2: -, -, -, -, status,
     * -, at, reason) in one statement: one round trip instead of three, as
     * the edge reads an order back three times a checkout. Ordered by kind,
     * then line number or time. By the order's id alone: order_get() checks
     * the member. With a member condition on a parameter ("$2 = '' OR
     * member_id = ...") PostgreSQL kept choosing a custom plan on some
     * connections, and planned this statement on every second call, 0.35 ms
     * each, more than its execution (docs/BENCHMARKS.md, sixteenth sitting);
     * with the key alone the generic plan is the custom one. STORE_GENERIC
     * too: on the query threads (auto) PostgreSQL still planned it at every
     * GetOrder, the pay's read of the order, 0.31 ms a checkout at the peak
     * (twenty-second sitting): the tables it joins are analyzed rarely
     * (sql/0951), so its estimates grow with them, and a generic plan built
     * later always looked dearer than the average of the custom plans
     * before it. */
    [ORDER_SQL_ORDER_FULL] = { "order_order_full",
        STORE_GENERIC "WITH o AS (SELECT * FROM orders WHERE order_id = $1::uuid) "
        "SELECT 0 AS k, 0::bigint AS n, " ORDER_COLS " FROM o "
        "UNION ALL SELECT 1, l.line_no, l.product_id::text, NULL, NULL, NULL, l.name, l.quantity, "
        "l.unit_price_won::text, NULL, NULL, NULL, NULL FROM order_lines l JOIN o USING (order_id) "
        "UNION ALL SELECT 2, row_number() OVER (ORDER BY h.at, h.status), NULL, NULL, NULL, NULL, "
        "h.status, NULL, " TS("h.at") ", h.reason, NULL, NULL, NULL "
        "FROM order_history h JOIN o USING (order_id) ORDER BY k, n" },
    [ORDER_SQL_ORDER_LIST] = { "order_order_list",
        "SELECT " ORDER_COLS " FROM orders WHERE ($1 = '' OR member_id = nullif($1, '')::uuid) "
        "AND ($2 = '' OR order_id < nullif($2, '')::uuid) AND ($3 = '' OR status = $3) "
        "ORDER BY order_id DESC LIMIT $4::int" },
    [ORDER_SQL_AUDIT_BY_STATUS] = { "order_audit_by_status",
        "SELECT status, count(*), coalesce(sum(total_won), 0) FROM orders "
        "GROUP BY status ORDER BY status" },
    /* A page of orders after $1 ('' = from the first), $2 of them. */
    [ORDER_SQL_AUDIT_ORDERS] = { "order_audit_orders",
        "SELECT order_id::text, status, total_won, "
        "(extract(epoch FROM updated_at) * 1000)::bigint FROM orders "
        "WHERE ($1 = '' OR order_id > nullif($1, '')::uuid) ORDER BY order_id LIMIT $2::int" },
};
/* clang-format on */
