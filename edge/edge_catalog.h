/* edge_catalog.h - what the catalog's route rows (edge_table.c) cannot say as
 * data: the product list's limit check, and product reads answered by the
 * edge's read model (edge_model.h) when it is ready.
 *
 * Ownership: static const hooks.
 * Threads:   hooks run on any civetweb worker; they keep no state of their own.
 */
#ifndef LAYBY_EDGE_EDGE_CATALOG_H
#define LAYBY_EDGE_EDGE_CATALOG_H

#include "edge_routes.h"

/* GET /api/v1/products: an explicit limit=0 is out of range (the message's 0
 * means "not given", which is the default page); pages from the read model. */
extern const edge_hooks edge_catalog_list_hooks;
/* GET /api/v1/products/{id}: the detail from the read model. */
extern const edge_hooks edge_catalog_get_hooks;
/* POST /api/v1/products: the created product enters this edge's read model
 * at once, so its creator finds it listed on the next request. */
extern const edge_hooks edge_catalog_create_hooks;

#endif
