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
    /* The same for a group of commands: row n for the n-th pair. Orders
     * and addresses named by key (`= ANY`), as in every array statement
     * here: the tables are analyzed rarely (sql/0951), and a join to the
     * arrays alone may be planned over a whole table (the pricing's was). */
    [ORDER_SQL_CREATE_LOOK_MANY] = { "order_create_look_many",
        "SELECT o.order_id IS NOT NULL, a.member_id::text, encode(a.sealed, 'hex') "
        "FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS x(o, a, n) "
        "LEFT JOIN orders o ON o.order_id = ANY($1::uuid[]) AND o.order_id = x.o "
        "LEFT JOIN addresses a ON a.address_id = ANY($2::uuid[]) AND a.address_id = x.a "
        "ORDER BY x.n" },
    /* set_status's first look: the order locked, and its history entry of
     * status $2 when it reached it before (NULL at otherwise). */
    [ORDER_SQL_ORDER_LOCK] = { "order_order_lock",
        "SELECT o.status, o.member_id::text, o.total_won, " TS("h.at") " FROM orders o "
        "LEFT JOIN order_history h ON h.order_id = o.order_id AND h.status = $2 "
        "WHERE o.order_id = $1::uuid FOR UPDATE OF o" },
    /* The same for a group's orders (distinct), each row led by the position
     * of its pair: locked in key order (LockRows runs above the sort), so
     * groups of two instances never wait on each other in a cycle. No row
     * for an order that does not exist. */
    [ORDER_SQL_ORDER_LOCK_MANY] = { "order_order_lock_many",
        "SELECT x.n, o.status, o.member_id::text, o.total_won, " TS("h.at") " "
        "FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS x(o, s, n) "
        "JOIN orders o ON o.order_id = ANY($1::uuid[]) AND o.order_id = x.o "
        "LEFT JOIN order_history h ON h.order_id = ANY($1::uuid[]) AND h.order_id = o.order_id "
        "AND h.status = x.s ORDER BY o.order_id FOR UPDATE OF o" },
    /* New orders PENDING with their lines and first history entries, one
     * statement for a group (order_orders.c create_rows): orders $1-$6, lines
     * $7-$10 naming their order. Inserted in key order (no cycle with another
     * instance's group); an order that exists already (a racing repeat) is
     * skipped with its lines. */
    [ORDER_SQL_ORDER_INSERT] = { "order_order_insert",
        "WITH o AS (INSERT INTO orders (order_id, member_id, address_id, ship_to, status, "
        "from_wishlist, created_at, updated_at) SELECT id, m, a, s, 'PENDING', w, t, t "
        "FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bytea[], $5::boolean[], "
        "$6::timestamptz[]) AS v(id, m, a, s, w, t) ORDER BY id "
        "ON CONFLICT (order_id) DO NOTHING RETURNING order_id, created_at), "
        "l AS (INSERT INTO order_lines (order_id, line_no, product_id, quantity) "
        "SELECT x.o, x.n, x.p, x.q FROM unnest($7::uuid[], $8::int[], $9::uuid[], $10::bigint[]) "
        "AS x(o, n, p, q) JOIN o ON o.order_id = x.o), "
        "h AS (INSERT INTO order_history (order_id, status, at, reason) "
        "SELECT order_id, 'PENDING', created_at, '' FROM o) "
        "SELECT order_id::text FROM o" },
    /* The reserved name and price of each line ($1 its order), then each
     * such order's total from its lines. Both tables are reached by key
     * (`= ANY($1)`) whatever the planner thinks of their size: joined only
     * to the unnest, the lines (whose key is order and line number, not
     * product) were hash-joined over a sequential scan, 0.76 ms a call with
     * one line at a quarter of the peak, against 0.13 ms for the single-row
     * statement before it (docs/BENCHMARKS.md, twenty-third sitting). */
    [ORDER_SQL_LINE_PRICE] = { "order_line_price",
        "WITH s AS (UPDATE order_lines l SET name = v.name, unit_price_won = v.price "
        "FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[]) AS v(o, p, name, price) "
        "WHERE l.order_id = ANY($1::uuid[]) AND l.order_id = v.o AND l.product_id = v.p "
        "RETURNING l.order_id, l.quantity * v.price AS sub) "
        "UPDATE orders SET total_won = coalesce((SELECT sum(s.sub) FROM s "
        "WHERE s.order_id = orders.order_id), 0) WHERE order_id = ANY($1::uuid[])" },
    /* The moves of a group's orders (distinct, locked) with their history
     * entries, one statement: each row led by the move's position; the
     * orders by key, as above. A reason
     * or short products ($6: comma-separated ids) left empty keep the
     * order's; a NULL deadline keeps it. */
    [ORDER_SQL_ORDER_SET] = { "order_order_set",
        "WITH v AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], "
        "$5::timestamptz[], $6::text[]) WITH ORDINALITY AS v(o, s, t, r, d, sh, n)), "
        "u AS (UPDATE orders SET status = v.s, updated_at = v.t, "
        "reason = CASE WHEN v.r = '' THEN orders.reason ELSE v.r END, "
        "payment_deadline = coalesce(v.d, orders.payment_deadline), "
        "short_products = CASE WHEN v.sh = '' THEN orders.short_products "
        "ELSE string_to_array(v.sh, ',')::uuid[] END "
        "FROM v WHERE orders.order_id = ANY($1::uuid[]) AND orders.order_id = v.o "
        "RETURNING v.n, orders.order_id, orders.total_won, "
        "v.s, v.t, v.r), "
        "h AS (INSERT INTO order_history (order_id, status, at, reason) "
        "SELECT order_id, s, t, r FROM u ON CONFLICT DO NOTHING) "
        "SELECT n, total_won FROM u" },
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
        STORE_CUSTOM "SELECT " ORDER_COLS " FROM orders WHERE ($1 = '' OR member_id = nullif($1, '')::uuid) "
        "AND ($2 = '' OR order_id < nullif($2, '')::uuid) AND ($3 = '' OR status = $3) "
        "ORDER BY order_id DESC LIMIT $4::int" },
    [ORDER_SQL_AUDIT_BY_STATUS] = { "order_audit_by_status",
        "SELECT status, count(*), coalesce(sum(total_won), 0) FROM orders "
        "GROUP BY status ORDER BY status" },
    /* A page of orders after $1 ('' = from the first), $2 of them. */
    [ORDER_SQL_AUDIT_ORDERS] = { "order_audit_orders",
        STORE_CUSTOM "SELECT order_id::text, status, total_won, "
        "(extract(epoch FROM updated_at) * 1000)::bigint FROM orders "
        "WHERE ($1 = '' OR order_id > nullif($1, '')::uuid) ORDER BY order_id LIMIT $2::int" },
};
/* clang-format on */
