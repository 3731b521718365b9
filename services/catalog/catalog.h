/* catalog.h - the catalog service's parts: SQL (catalog_sql.c), the messages it
 * builds (catalog_msg.c) and its handler tables (catalog_handlers.c).
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

#define CATALOG_STMTS_COUNT 3
extern const store_stmt catalog_stmts[CATALOG_STMTS_COUNT];
extern const svc_def catalog_def;

/* Checks a draft; on refusal fills err with the field's JSON name. */
lb_status catalog_draft_validate(const Layby__V1__ProductDraft *d, lb_err *err);

/* A Product from columns product_id, name, price_won, details, category,
 * stock_available, created_at (RFC 3339) of row `row` of r. */
lb_status catalog_msg_product_from_row(Layby__V1__Product **out, const PGresult *r, int row,
                                       lb_err *err);
/* A Product from a create command and its creation time. */
lb_status catalog_msg_product_from_draft(Layby__V1__Product **out, const char *product_id,
                                         const Layby__V1__ProductDraft *d, int64_t created_ms,
                                         lb_err *err);

#endif
