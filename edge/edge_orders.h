/* edge_orders.h - the hooks of the order, payment and address routes
 * (rows in edge_table.c): what those rows cannot say as data.
 *
 * Ownership: hooks follow edge_hooks (edge_routes.h).
 * Threads:   any civetweb worker; nothing shared.
 */
#ifndef LAYBY_EDGE_EDGE_ORDERS_H
#define LAYBY_EDGE_EDGE_ORDERS_H

#include "edge_routes.h"

/* GET /api/v1/orders/{id}: the order's delivery, read from the delivery service. */
extern const edge_hooks edge_orders_get_hooks;

#endif
