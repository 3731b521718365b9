/* edge_catalog.h - what the catalog's route rows (edge_table.c) cannot say as
 * data: the product list's limit check.
 *
 * Ownership: static const hooks.
 * Threads:   hooks run on any civetweb worker; they keep no state.
 */
#ifndef LAYBY_EDGE_EDGE_CATALOG_H
#define LAYBY_EDGE_EDGE_CATALOG_H

#include "edge_routes.h"

/* GET /api/v1/products: an explicit limit=0 is out of range (the message's 0
 * means "not given", which is the default page). */
extern const edge_hooks edge_catalog_list_hooks;

#endif
