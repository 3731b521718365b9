/* payment.h - the payment service's parts: the simulated gateway
 * (payment_gateway.c), SQL (payment_sql.c), handlers (payment_handlers.c) and
 * the audit query (payment_audit.c).
 *
 * Ownership: handlers own nothing beyond a call.
 * Threads:   handlers run on the svc runtime's threads, one store each;
 *            payment_conf is filled by svc_main() before any thread starts
 *            and only read afterwards.
 */
#ifndef LAYBY_SERVICES_PAYMENT_PAYMENT_H
#define LAYBY_SERVICES_PAYMENT_PAYMENT_H

#include <libpq-fe.h>

#include "engine/subjects.h"
#include "engine/svc.h"
#include "layby/v1/payment.pb-c.h"

#define PAYMENT_AMOUNT_MAX  1000000000000000LL /* won */
#define PAYMENT_FLAKY_FAILS 2                  /* tok_flaky fails this often per order */

/* The gateway's settings (LAYBY_PAYMENT_*; DESIGN §6). */
typedef struct payment_conf {
    int64_t decline_per_mille; /* random declines of approved tokens, 0..1000 */
    int64_t latency_ms;        /* each gateway call takes this long */
} payment_conf;
extern payment_conf payment_settings;

/* What the simulated gateway said. */
typedef enum payment_verdict {
    PAYMENT_APPROVED,
    PAYMENT_DECLINED, /* final: the card said no */
    PAYMENT_OUTAGE,   /* transient: the gateway did not answer; retry later */
} payment_verdict;

/* Decides a charge for card_token (DESIGN §6): tok_decline declined,
 * tok_error an outage, tok_flaky an outage for the first PAYMENT_FLAKY_FAILS
 * attempts of an order (earlier_outages counts them), anything else approved
 * unless the random decline rate says no. roll is 0..999, uniform. Pure. */
payment_verdict payment_gateway_decide(const char *card_token, int64_t earlier_outages,
                                       int64_t decline_per_mille, uint32_t roll);
/* Waits the configured latency, then payment_gateway_decide() with a fresh roll. */
payment_verdict payment_gateway_call(const char *card_token, int64_t earlier_outages);

typedef enum payment_stmt_id {
    PAYMENT_SQL_CAPTURE_GET,
    PAYMENT_SQL_ORDER_LOCK,
    PAYMENT_SQL_CHARGE_LOOK,
    PAYMENT_SQL_CHARGE_INSERT,
    PAYMENT_SQL_REFUND_GET,
    PAYMENT_SQL_CHARGE_LOCK,
    PAYMENT_SQL_CHARGE_REFUND,
    PAYMENT_SQL_REFUND_INSERT,
    PAYMENT_SQL_SUMMARY,
    PAYMENT_SQL_AUDIT_TOTALS,
    PAYMENT_SQL_AUDIT_ORDERS,
    PAYMENT_SQL_LEDGER,
    PAYMENT_STMTS_COUNT
} payment_stmt_id;
extern const store_stmt payment_stmts[PAYMENT_STMTS_COUNT];
#define PAYMENT_SQL(id) (payment_stmts[(id)].name)

extern const svc_def payment_def;

/* layby.qry.payment.audit (DESIGN §7; payment_audit.c). */
lb_status payment_audit(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                        lb_err *err);

/* layby.qry.payment.ledger: an order's charge attempts and refunds
 * (payment_ledger.c). */
lb_status payment_ledger(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                         lb_err *err);

#endif
