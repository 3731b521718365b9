/* delivery.h - the delivery service's parts: SQL (delivery_sql.c), the
 * handler tables with their code (delivery_handlers.c) and the audit query
 * (delivery_audit.c).
 *
 * Ownership: handlers own nothing beyond a call.
 * Threads:   handlers run on the svc runtime's threads, one store each.
 */
#ifndef LAYBY_SERVICES_DELIVERY_DELIVERY_H
#define LAYBY_SERVICES_DELIVERY_DELIVERY_H

#include <libpq-fe.h>

#include "engine/subjects.h"
#include "engine/svc.h"
#include "layby/v1/delivery.pb-c.h"

typedef enum delivery_stmt_id {
    DELIVERY_SQL_LOCK,
    DELIVERY_SQL_ADVANCE_LOOK,
    DELIVERY_SQL_VOID,
    DELIVERY_SQL_INSERT,
    DELIVERY_SQL_SET,
    DELIVERY_SQL_HISTORY_ADD,
    DELIVERY_SQL_HISTORY_HAS,
    DELIVERY_SQL_GET,
    DELIVERY_SQL_HISTORY,
    DELIVERY_SQL_AUDIT,
    DELIVERY_STMTS_COUNT
} delivery_stmt_id;
extern const store_stmt delivery_stmts[DELIVERY_STMTS_COUNT];
#define DELIVERY_SQL(id) (delivery_stmts[(id)].name)

extern const svc_def delivery_def;

/* layby.qry.delivery.audit (DESIGN §7; delivery_audit.c). */
lb_status delivery_audit(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                         lb_err *err);

/* True when a delivery may go from `from` to `to` (DESIGN §6); from "" is
 * "no delivery yet", which only PREPARING leaves. */
bool delivery_transition_ok(const char *from, const char *to);

#endif
