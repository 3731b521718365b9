/* edge_catalog.h - product routes: HTTP <-> catalog commands and queries.
 *
 * Ownership: handlers borrow the request; nothing outlives them.
 * Threads:   any civetweb worker thread.
 */
#ifndef LAYBY_EDGE_EDGE_CATALOG_H
#define LAYBY_EDGE_EDGE_CATALOG_H

#include "edge_http.h"

/* The catalog's subjects (DESIGN §2). */
#include "engine/subjects.h"

/* POST /api/v1/products (admin): 201 Product, 202 while the catalog has not
 * answered yet, or the catalog's refusal. */
void edge_product_create(edge_req *r);
/* GET /api/v1/products/{id}: 200 Product or 404. */
void edge_product_get(edge_req *r);

#endif
