/* ctl_audit.h - `layby-ctl audit`: stock and money conservation across the
 * services, checked from their audit queries' answers alone (DESIGN §7),
 * while the shop runs.
 *
 * ctl_audit.c asks layby.qry.catalog.audit, layby.qry.order.audit,
 * layby.qry.payment.audit and layby.qry.delivery.audit (page after page) and fills a
 * ctl_audit_input; ctl_audit_check() (ctl_audit_check.c) is the pure judgement, unit-tested on its
 * own. What it checks (docs/OPERATIONS.md, "Audit"): per product, exactly (one snapshot of the
 * catalog): initial + restocked = available + reserved + sold - returned, and reserved, sold and
 * returned equal what the catalog's order ledger (stock_orders x stock_lines) says; per order,
 * always: at most one capture; refunds never above the charge; the refund rows and the charge's
 * refunded amount agree; per settled order (no change on any side since settled_before_ms): the
 * catalog holds its units as its status says (PAYMENT_PENDING reserved, PAID and RETURN_REQUESTED
 * sold, RETURNED returned, any other nothing); charged - refunded = its total when PAID or
 * RETURN_REQUESTED, else 0; its total is the value of its reserved lines; its delivery fits its
 * status (none before payment, PREPARING..DELIVERED when PAID, RETURN_PICKUP when RETURN_REQUESTED,
 * RETURNED when RETURNED, none or CANCELLED when CANCELLED). An order that changed since
 * settled_before_ms is in flight (a saga is between two services) and only counted.
 *
 * Ownership: the input's arrays are the caller's (ctl_audit_check() sorts
 *            them by id in place); a report owns its violations until
 *            ctl_audit_report_destroy().
 * Threads:   single-threaded tool.
 */
#ifndef LAYBY_CLI_CTL_AUDIT_H
#define LAYBY_CLI_CTL_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "id.h"
#include "lb.h"

#define CTL_AUDIT_STATUS_MAX 24
#define CTL_AUDIT_DETAIL_MAX 200

/* The catalog's counters of one product, and its order ledger's sums. */
typedef struct ctl_audit_product {
    char id[ID_STR_LEN];
    int64_t initial, restocked, available, reserved, sold, returned;
    int64_t ledger_reserved, ledger_sold, ledger_returned;
} ctl_audit_product;

/* The catalog's stock of one order (stock_orders.status). */
typedef struct ctl_audit_stock {
    char id[ID_STR_LEN];
    char status[CTL_AUDIT_STATUS_MAX];
    int64_t units, amount, updated_ms;
} ctl_audit_stock;

/* The order service's view of one order. */
typedef struct ctl_audit_order {
    char id[ID_STR_LEN];
    char status[CTL_AUDIT_STATUS_MAX];
    int64_t total, updated_ms;
} ctl_audit_order;

/* The delivery service's view of one order. */
typedef struct ctl_audit_delivery {
    char id[ID_STR_LEN];
    char status[CTL_AUDIT_STATUS_MAX];
    int64_t updated_ms;
} ctl_audit_delivery;

/* The payment ledger's view of one order. */
typedef struct ctl_audit_money {
    char id[ID_STR_LEN];
    int64_t captures, charged, refunded, refunded_on_charges, updated_ms;
} ctl_audit_money;

typedef struct ctl_audit_input {
    ctl_audit_product *products;
    size_t n_products;
    ctl_audit_stock *stock;
    size_t n_stock;
    ctl_audit_order *orders;
    size_t n_orders;
    ctl_audit_money *money;
    size_t n_money;
    ctl_audit_delivery *deliveries;
    size_t n_deliveries;
    int64_t settled_before_ms; /* a change at or after this: the order is in flight */
} ctl_audit_input;

/* clang-format off */
#define CTL_AUDIT_KINDS(X)                                                                  \
    X(STOCK_EQUATION, "stock_equation", "initial + restocked != available + reserved + sold - returned") \
    X(STOCK_LEDGER,   "stock_ledger",   "a counter differs from the catalog's order ledger")          \
    X(STOCK_HELD,     "stock_held",     "the catalog holds the order's units otherwise than its status says") \
    X(ORDER_TOTAL,    "order_total",    "the order's total differs from its reserved lines")            \
    X(CHARGED_TWICE,  "charged_twice",  "more than one successful charge")                              \
    X(REFUND_ABOVE,   "refund_above_charge", "refunded more than was charged")                          \
    X(REFUND_LEDGER,  "refund_ledger",  "refund rows and the charge's refunded amount differ")          \
    X(MONEY,          "money",          "charged - refunded differs from what the order's status says") \
    X(DELIVERY,       "delivery",       "the delivery's status does not fit the order's")
/* clang-format on */

typedef enum ctl_audit_kind {
#define X(k, name, what) CTL_AUDIT_##k,
    CTL_AUDIT_KINDS(X)
#undef X
    CTL_AUDIT_KIND__COUNT
} ctl_audit_kind;

typedef struct ctl_audit_violation {
    ctl_audit_kind kind;
    char id[ID_STR_LEN]; /* the product or order */
    char detail[CTL_AUDIT_DETAIL_MAX];
} ctl_audit_violation;

typedef struct ctl_audit_report {
    ctl_audit_violation *violations;
    size_t n_violations, cap;
    size_t products;  /* checked */
    size_t orders;    /* settled orders checked */
    size_t in_flight; /* orders skipped: changed since settled_before_ms */
    /* Over the settled orders: charged - refunded must equal paid_total. */
    int64_t charged, refunded;
    int64_t paid_total; /* totals of PAID and RETURN_REQUESTED orders */
} ctl_audit_report;

/* "stock_equation", ...; and one line saying what it means. */
const char *ctl_audit_kind_name(ctl_audit_kind k);
const char *ctl_audit_kind_what(ctl_audit_kind k);

/* Judges in (sorting its arrays by id) into *out (zeroed first). Fails only
 * when out of memory; violations are the report's content, not an error. */
lb_status ctl_audit_check(ctl_audit_report *out, ctl_audit_input *in, lb_err *err);
void ctl_audit_report_destroy(ctl_audit_report *r); /* NULL is a no-op */

#endif
