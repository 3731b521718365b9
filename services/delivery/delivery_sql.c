/* delivery_sql.c - every SQL statement of the delivery service. */
#include "delivery.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* clang-format off */
const store_stmt delivery_stmts[DELIVERY_STMTS_COUNT] = {
    [DELIVERY_SQL_LOCK] = { "delivery_lock",
        "SELECT delivery_id::text, status FROM deliveries WHERE order_id = $1::uuid FOR UPDATE" },
    /* advance's first look, one round trip (was two): the order's delivery
     * locked (NULL when none), whether it reached status $2 before, whether
     * the order's delivery was voided (cancelled before it was made). */
    [DELIVERY_SQL_ADVANCE_LOOK] = { "delivery_advance_look",
        "SELECT d.delivery_id::text, d.status, EXISTS (SELECT 1 FROM delivery_history h "
        "WHERE h.delivery_id = d.delivery_id AND h.status = $2), "
        "EXISTS (SELECT 1 FROM voided WHERE order_id = $1::uuid) FROM (SELECT 1) one "
        "LEFT JOIN LATERAL (SELECT delivery_id, status FROM deliveries "
        "WHERE order_id = $1::uuid FOR UPDATE) d ON true" },
    [DELIVERY_SQL_VOID] = { "delivery_void",
        "INSERT INTO voided (order_id, at) VALUES ($1::uuid, $2::timestamptz) "
        "ON CONFLICT DO NOTHING" },
    [DELIVERY_SQL_INSERT] = { "delivery_insert",
        "INSERT INTO deliveries (delivery_id, order_id, status, created_at, updated_at) "
        "VALUES ($1::uuid, $2::uuid, 'PREPARING', $3::timestamptz, $3::timestamptz)" },
    [DELIVERY_SQL_SET] = { "delivery_set",
        "UPDATE deliveries SET status = $2, updated_at = $3::timestamptz "
        "WHERE delivery_id = $1::uuid" },
    [DELIVERY_SQL_HISTORY_ADD] = { "delivery_history_add",
        "INSERT INTO delivery_history (delivery_id, status, at) "
        "VALUES ($1::uuid, $2, $3::timestamptz) ON CONFLICT DO NOTHING" },
    [DELIVERY_SQL_HISTORY_HAS] = { "delivery_history_has",
        "SELECT 1 FROM delivery_history WHERE delivery_id = $1::uuid AND status = $2" },
    [DELIVERY_SQL_GET] = { "delivery_get",
        "SELECT delivery_id::text, order_id::text, status FROM deliveries "
        "WHERE order_id = $1::uuid" },
    [DELIVERY_SQL_HISTORY] = { "delivery_history",
        "SELECT status, " TS("at") " FROM delivery_history WHERE delivery_id = $1::uuid "
        "ORDER BY at, status" },
    /* A page of deliveries after order $1 ('' = from the first), $2 of them. */
    [DELIVERY_SQL_AUDIT] = { "delivery_audit",
        STORE_CUSTOM "SELECT order_id::text, status, (extract(epoch FROM updated_at) * 1000)::bigint "
        "FROM deliveries WHERE ($1 = '' OR order_id > nullif($1, '')::uuid) "
        "ORDER BY order_id LIMIT $2::int" },
};
/* clang-format on */
