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
/* POST /api/v1/orders: the saga id is the order id; fromWishlist reads the
 * items from the member's wishlist; the answer is the order as placed. */
extern const edge_hooks edge_orders_place_hooks;
/* POST /api/v1/orders/{id}/payment: the member's order, PAYMENT_PENDING; its
 * total is the amount (never the client's); the answer is the paid order. */
extern const edge_hooks edge_orders_pay_hooks;
/* POST /api/v1/orders/{id}/cancel and /return: only the member's own order
 * (404 otherwise); the answer names the status the order is on its way to. */
extern const edge_hooks edge_orders_cancel_hooks;
extern const edge_hooks edge_orders_return_hooks;
/* GET /api/v1/admin/orders/{id}: the order with its payment ledger and its
 * delivery, asked of the payment and delivery services (admin). */
extern const edge_hooks edge_orders_admin_get_hooks;

#endif
