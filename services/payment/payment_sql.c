/* payment_sql.c - every SQL statement of the payment service. */
#include "payment.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* clang-format off */
const store_stmt payment_stmts[PAYMENT_STMTS_COUNT] = {
    [PAYMENT_SQL_CAPTURE_GET] = { "payment_capture_get",
        "SELECT charge_id::text, amount_won FROM charges WHERE order_id = $1::uuid "
        "AND status = 'CAPTURED'" },
    /* Charges and refunds of one order, one transaction at a time (invariant 5). */
    [PAYMENT_SQL_ORDER_LOCK] = { "payment_order_lock",
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))" },
    /* Everything a charge looks at before calling the gateway, in one round
     * trip (was four): the order's capture (columns 0-1, NULL when none);
     * whether a refund of this saga came first, or the order's place saga
     * (its id is the order id) gave the money back: the order is being
     * cancelled, no charge may happen any more (2, invariant 5); this
     * attempt's stored outcome (3-6, NULL when it is a new attempt); the
     * order's outages so far (7). One capture per order and one charge per
     * attempt key (unique indexes): one row. */
    [PAYMENT_SQL_CHARGE_LOOK] = { "payment_charge_look",
        "SELECT c.charge_id::text, c.amount_won, EXISTS (SELECT 1 FROM refunds "
        "WHERE order_id = $1::uuid AND (saga_id = $2::uuid OR saga_id = $1::uuid)), "
        "a.status, a.charge_id::text, a.amount_won, a.reason, "
        "(SELECT count(*) FROM charges WHERE order_id = $1::uuid AND status = 'FAILED') "
        "FROM (SELECT 1) one "
        "LEFT JOIN charges c ON c.order_id = $1::uuid AND c.status = 'CAPTURED' "
        "LEFT JOIN charges a ON a.attempt_key = $3" },
    /* No conflict target: the attempt key and the one-capture index both count. */
    [PAYMENT_SQL_CHARGE_INSERT] = { "payment_charge_insert",
        "INSERT INTO charges (charge_id, order_id, saga_id, attempt_key, status, amount_won, "
        "method, reason, created_at) VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5, $6::bigint, "
        "$7, $8, $9::timestamptz) ON CONFLICT DO NOTHING RETURNING charge_id::text" },
    [PAYMENT_SQL_REFUND_GET] = { "payment_refund_get",
        "SELECT refund_id::text, amount_won FROM refunds WHERE order_id = $1::uuid "
        "AND refund_key = $2" },
    [PAYMENT_SQL_CHARGE_LOCK] = { "payment_charge_lock",
        "SELECT charge_id::text, amount_won - refunded_won FROM charges "
        "WHERE order_id = $1::uuid AND status = 'CAPTURED' FOR UPDATE" },
    [PAYMENT_SQL_CHARGE_REFUND] = { "payment_charge_refund",
        "UPDATE charges SET refunded_won = refunded_won + $2::bigint WHERE charge_id = $1::uuid" },
    [PAYMENT_SQL_REFUND_INSERT] = { "payment_refund_insert",
        "INSERT INTO refunds (refund_id, order_id, saga_id, refund_key, charge_id, amount_won, "
        "reason, created_at) VALUES ($1::uuid, $2::uuid, $3::uuid, $4, nullif($5, '')::uuid, "
        "$6::bigint, $7, $8::timestamptz)" },
    [PAYMENT_SQL_SUMMARY] = { "payment_summary",
        "SELECT coalesce(max(charge_id::text) FILTER (WHERE status = 'CAPTURED'), ''), "
        "coalesce(sum(amount_won) FILTER (WHERE status = 'CAPTURED'), 0), "
        "coalesce(sum(refunded_won) FILTER (WHERE status = 'CAPTURED'), 0), "
        "count(*) FILTER (WHERE status = 'DECLINED'), count(*) FILTER (WHERE status = 'FAILED') "
        "FROM charges WHERE order_id = $1::uuid" },
    /* The ledger's totals; the last two counts are 0 while the constraints
     * hold (charges_one_capture, refunded_won <= amount_won). */
    [PAYMENT_SQL_AUDIT_TOTALS] = { "payment_audit_totals",
        "SELECT coalesce(sum(amount_won) FILTER (WHERE status = 'CAPTURED'), 0), "
        "(SELECT coalesce(sum(amount_won), 0) FROM refunds), "
        "count(*) FILTER (WHERE status = 'CAPTURED'), "
        "(SELECT count(*) FROM (SELECT order_id FROM charges WHERE status = 'CAPTURED' "
        "GROUP BY order_id HAVING count(*) > 1) t), "
        "(SELECT count(*) FROM (SELECT r.order_id FROM refunds r GROUP BY r.order_id "
        "HAVING sum(r.amount_won) > (SELECT coalesce(sum(c.amount_won), 0) FROM charges c "
        "WHERE c.order_id = r.order_id AND c.status = 'CAPTURED')) t), "
        "count(*) FILTER (WHERE status = 'DECLINED'), count(*) FILTER (WHERE status = 'FAILED') "
        "FROM charges" },
    /* A page of the orders with a charge attempt or a refund after $1 ('' =
     * from the first), $2 of them. */
    [PAYMENT_SQL_AUDIT_ORDERS] = { "payment_audit_orders",
        STORE_CUSTOM "WITH ids AS (SELECT order_id FROM charges WHERE $1 = '' OR order_id > nullif($1, '')::uuid "
        "UNION SELECT order_id FROM refunds WHERE $1 = '' OR order_id > nullif($1, '')::uuid "
        "ORDER BY 1 LIMIT $2::int) "
        "SELECT i.order_id::text, c.n, c.charged, "
        "coalesce((SELECT sum(amount_won) FROM refunds r WHERE r.order_id = i.order_id), 0), "
        "c.refunded, (extract(epoch FROM greatest(c.at, (SELECT max(created_at) FROM refunds r "
        "WHERE r.order_id = i.order_id))) * 1000)::bigint "
        "FROM ids i, LATERAL (SELECT count(*) FILTER (WHERE status = 'CAPTURED') AS n, "
        "coalesce(sum(amount_won) FILTER (WHERE status = 'CAPTURED'), 0) AS charged, "
        "coalesce(sum(refunded_won) FILTER (WHERE status = 'CAPTURED'), 0) AS refunded, "
        "max(created_at) AS at FROM charges WHERE order_id = i.order_id) c "
        "ORDER BY i.order_id" },
    /* An order's ledger lines, oldest first, $2 of them (charges_order and
     * refunds_saga serve both halves). A refund without a charge is a void. */
    [PAYMENT_SQL_LEDGER] = { "payment_ledger",
        "SELECT kind, id, saga, status, method, reason, key, charge, " TS("at") ", amount, "
        "refunded FROM ("
        "SELECT 'CHARGE' AS kind, charge_id::text AS id, saga_id::text AS saga, status, "
        "amount_won AS amount, refunded_won AS refunded, method, reason, attempt_key AS key, "
        "'' AS charge, created_at AS at FROM charges WHERE order_id = $1::uuid "
        "UNION ALL SELECT 'REFUND', refund_id::text, saga_id::text, "
        "CASE WHEN charge_id IS NULL THEN 'VOID' ELSE 'REFUNDED' END, amount_won, 0, '', reason, "
        "refund_key, coalesce(charge_id::text, ''), created_at FROM refunds "
        "WHERE order_id = $1::uuid) l ORDER BY at, kind, id LIMIT $2::int" },
};
/* clang-format on */
