/* catalog.h - the catalog service's parts: SQL (catalog_sql.c), the messages it
 * builds (catalog_msg.c), products and their pages (catalog_product.c), stock
 * reservations and adjustments (catalog_stock.c), the wishlist
 * (catalog_wishlist.c) and the handler tables (catalog_handlers.c).
 *
 * Ownership: builders return messages the caller frees with
 *            protobuf_c_message_free_unpacked(msg, NULL).
 * Threads:   handlers run on the svc runtime's threads, one store each.
 */
#ifndef LAYBY_SERVICES_CATALOG_CATALOG_H
#define LAYBY_SERVICES_CATALOG_CATALOG_H

#include <libpq-fe.h>

#include "engine/subjects.h"
#include "engine/svc.h"
#include "layby/v1/catalog.pb-c.h"

/* Limits of a product's fields (catalog_validate and sql/ CHECKs agree). */
#define CATALOG_NAME_MAX     200
#define CATALOG_DETAILS_MAX  10000
#define CATALOG_CATEGORY_MAX 100
#define CATALOG_PRICE_MAX    1000000000000LL /* one trillion won */
#define CATALOG_STOCK_MAX    1000000000LL
/* Pages of GET /api/v1/products. */
#define CATALOG_PAGE_DEFAULT 20
#define CATALOG_PAGE_MAX     100
#define CATALOG_Q_MAX        100 /* code points of a search */
/* A reservation: lines per order and units per line. */
#define CATALOG_LINES_MAX    100
#define CATALOG_LINE_QTY_MAX 1000
/* Wishlist quantity (sql/0101 CHECK agrees). */
#define CATALOG_WISH_QTY_MAX 99

#define CATALOG_STMTS_COUNT 21
extern const store_stmt catalog_stmts[CATALOG_STMTS_COUNT];
extern const svc_def catalog_def;

/* --- catalog_product.c ---------------------------------------------------- */

/* Checks a draft; on refusal fills err with the field's JSON name. */
lb_status catalog_draft_validate(const Layby__V1__ProductDraft *d, lb_err *err);
lb_status catalog_product_create(svc_batch *b, svc_item *items, size_t n, lb_err *err);
lb_status catalog_product_get(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                              lb_err *err);
lb_status catalog_product_list(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                               lb_err *err);
/* Every product with its stock version, a page at a time (ListProductStates). */
lb_status catalog_product_states(svc_query *q, const ProtobufCMessage *req,
                                 ProtobufCMessage **reply, lb_err *err);

/* --- catalog_audit.c ------------------------------------------------------ */

/* layby.qry.catalog.audit (DESIGN §7): every product's counters beside the
 * order ledger's (first page), and the orders' stock a page at a time. */
lb_status catalog_stock_audit(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                              lb_err *err);

/* --- catalog_stock.c ------------------------------------------------------ */

/* ReserveStock, ReleaseStock, ConfirmStock, RestockReturned and AdjustStock:
 * one function, so one batch's stock changes are decided in arrival order in
 * one transaction. */
lb_status catalog_stock_handle(svc_batch *b, svc_item *items, size_t n, lb_err *err);

/* --- catalog_wishlist.c --------------------------------------------------- */

lb_status catalog_wishlist_handle(svc_batch *b, svc_item *items, size_t n, lb_err *err);
lb_status catalog_wishlist_get(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                               lb_err *err);

/* --- catalog_msg.c -------------------------------------------------------- */

/* Product column order of catalog_sql.c's PRODUCT_COLS. */
enum {
    CATALOG_COL_ID,
    CATALOG_COL_NAME,
    CATALOG_COL_PRICE,
    CATALOG_COL_DETAILS,
    CATALOG_COL_CATEGORY,
    CATALOG_COL_STOCK,
    CATALOG_COL_CREATED,
    CATALOG_COL_VERSION,
    CATALOG_COL_CREATED_US,
    CATALOG_PRODUCT_COLS
};

/* A Product from the PRODUCT_COLS columns of row `row` of r. */
lb_status catalog_msg_product_from_row(Layby__V1__Product **out, const PGresult *r, int row,
                                       lb_err *err);
/* A Product from a create command and its creation time. */
lb_status catalog_msg_product_from_draft(Layby__V1__Product **out, const char *product_id,
                                         const Layby__V1__ProductDraft *d, int64_t created_ms,
                                         lb_err *err);

/* The saga fields every stock command carries and its outcome echoes. */
typedef struct catalog_saga_ref {
    const char *saga_id;
    uint32_t step;
    uint32_t attempt;
    const char *order_id;
} catalog_saga_ref;

/* A reserved line as StockReserved reports it (strings borrowed). */
typedef struct catalog_line {
    const char *product_id;
    int64_t quantity;
    const char *name;
    int64_t unit_price;
} catalog_line;

/* Emits layby.evt.stock.reserved for ref with lines[0..n). */
lb_status catalog_msg_emit_reserved(svc_batch *b, const bus_envelope *cause,
                                    const catalog_saga_ref *ref, const catalog_line *lines,
                                    size_t n, lb_err *err);
/* Emits layby.evt.stock.rejected: code, reason, short product ids joined by ','. */
lb_status catalog_msg_emit_rejected(svc_batch *b, const bus_envelope *cause,
                                    const catalog_saga_ref *ref, lb_status code, const char *reason,
                                    const char *short_ids, lb_err *err);
/* Emits a success event of type desc (StockReleased, StockConfirmed,
 * StockReturned: saga fields and order_id only) on subject. */
lb_status catalog_msg_emit_done(svc_batch *b, const bus_envelope *cause, const char *subject,
                                const ProtobufCMessageDescriptor *desc, const catalog_saga_ref *ref,
                                lb_err *err);
/* Emits StockOpFailed for op on subject. */
lb_status catalog_msg_emit_op_failed(svc_batch *b, const bus_envelope *cause, const char *subject,
                                     const catalog_saga_ref *ref, const char *op, lb_status code,
                                     const char *reason, lb_err *err);
/* Emits layby.evt.product.stock_changed. */
lb_status catalog_msg_emit_stock_changed(svc_batch *b, const bus_envelope *cause,
                                         const char *product_id, int64_t available, int64_t version,
                                         lb_err *err);

#endif
