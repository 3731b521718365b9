/* order.h - the order service's parts: SQL (order_sql.c), validation and the
 * messages it builds (order_msg.c), the address book (order_address.c), the
 * orders a saga drives (order_orders.c), queries (order_query.c), the audit
 * query (order_audit.c) and the handler tables (order_handlers.c).
 *
 * Personal data (addresses, and the ship-to copy on each order) is sealed
 * with order_keys (engine/seal.h), loaded once by main() before any thread.
 *
 * Ownership: builders return messages the caller frees with
 *            protobuf_c_message_free_unpacked(msg, NULL).
 * Threads:   handlers run on the svc runtime's threads, one store each;
 *            order_keys is read-only once main() loaded it.
 */
#ifndef LAYBY_SERVICES_ORDER_ORDER_H
#define LAYBY_SERVICES_ORDER_ORDER_H

#include <libpq-fe.h>

#include "engine/seal.h"
#include "engine/subjects.h"
#include "engine/svc.h"
#include "layby/v1/order.pb-c.h"

/* Limits (validation and sql/ CHECKs agree). */
#define ORDER_ITEMS_MAX     50
#define ORDER_QUANTITY_MAX  99
#define ORDER_ADDRESSES_MAX 20
#define ORDER_LIST_MAX      100
#define ORDER_SEALED_MAX    4096 /* a packed AddressDraft plus SEAL_OVERHEAD */

extern seal_keys order_keys;

typedef enum order_stmt_id {
    ORDER_SQL_ADDRESS_GET,
    ORDER_SQL_ADDRESS_COUNT,
    ORDER_SQL_ADDRESS_CLEAR_DEFAULT,
    ORDER_SQL_ADDRESS_INSERT,
    ORDER_SQL_ADDRESS_UPDATE,
    ORDER_SQL_ADDRESS_DELETE,
    ORDER_SQL_ADDRESS_PROMOTE,
    ORDER_SQL_ADDRESS_LIST,
    ORDER_SQL_CREATE_LOOK,
    ORDER_SQL_CREATE_LOOK_MANY,
    ORDER_SQL_ORDER_LOCK,
    ORDER_SQL_ORDER_LOCK_MANY,
    ORDER_SQL_ORDER_INSERT,
    ORDER_SQL_LINE_PRICE,
    ORDER_SQL_ORDER_SET,
    ORDER_SQL_HISTORY_HAS,
    ORDER_SQL_LINES,
    ORDER_SQL_ORDER_FULL,
    ORDER_SQL_ORDER_LIST,
    ORDER_SQL_AUDIT_BY_STATUS,
    ORDER_SQL_AUDIT_ORDERS,
    ORDER_STMTS_COUNT
} order_stmt_id;
extern const store_stmt order_stmts[ORDER_STMTS_COUNT];
/* The prepared name of statement id. */
#define ORDER_SQL(id) (order_stmts[(id)].name)

extern const svc_def order_def;

/* --- validation and messages (order_msg.c) ------------------------------ */

/* Checks a complete draft (create) or the fields a PATCH sets (partial). */
lb_status order_address_validate(const Layby__V1__AddressDraft *d, bool partial, lb_err *err);
/* Seals the draft's text fields for row `ad`; out holds ORDER_SEALED_MAX * 2 + 3
 * characters: the bytea hex literal "\x..." PostgreSQL reads as a parameter. */
lb_status order_address_seal(char *out, size_t cap, const Layby__V1__AddressDraft *d,
                             const char *ad, lb_err *err);
/* Opens a sealed draft read as hex (encode(sealed, 'hex')); *out is the caller's. */
lb_status order_address_open(Layby__V1__AddressDraft **out, const char *hex, const char *ad,
                             lb_err *err);
/* An Address from row r of columns address_id, member_id, sealed hex,
 * is_default, created_at. */
lb_status order_msg_address_from_row(Layby__V1__Address **out, const PGresult *r, int row,
                                     lb_err *err);

/* "orders.address:<id>" and "orders.ship_to:<id>": what a sealed value is bound to. */
void order_ad_address(char *out, size_t n, const char *address_id);
void order_ad_ship_to(char *out, size_t n, const char *order_id);

/* --- handlers ------------------------------------------------------------ */

lb_status order_address_create(svc_batch *b, svc_item *items, size_t n, lb_err *err);
lb_status order_address_update(svc_batch *b, svc_item *items, size_t n, lb_err *err);
lb_status order_address_delete(svc_batch *b, svc_item *items, size_t n, lb_err *err);
lb_status order_create(svc_batch *b, svc_item *items, size_t n, lb_err *err);
lb_status order_status_set(svc_batch *b, svc_item *items, size_t n, lb_err *err);
/* Their first reads sent with the inbox claim when a batch is one such
 * command (svc_handler.prefetch). */
lb_status order_create_prefetch(svc_batch *b, const svc_item *items, size_t n, lb_err *err);
lb_status order_status_prefetch(svc_batch *b, const svc_item *items, size_t n, lb_err *err);

lb_status order_addresses_list(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                               lb_err *err);
lb_status order_get(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                    lb_err *err);
lb_status order_list(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                     lb_err *err);
/* layby.qry.order.audit (DESIGN §7; order_audit.c). */
lb_status order_audit(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                      lb_err *err);

/* The order order_id as GetOrder answers it: lines, timeline, the ship-to
 * opened (one statement, ORDER_SQL_ORDER_FULL, on s: a query's connection or
 * a batch's transaction, which sees its own writes, and waits for the
 * statements sent before it). member_id "" is any member's; another member's
 * order is LB_ERR_NOT_FOUND. *out is the caller's. */
lb_status order_view_read(Layby__V1__Order **out, store *s, const char *order_id,
                          const char *member_id, lb_err *err);

/* True when an order may go from status `from` to `to` (DESIGN §6). */
bool order_transition_ok(const char *from, const char *to);
/* True for a status name of DESIGN §6's order machine. */
bool order_status_known(const char *s);

#endif
