/* edge_admin.h - admin reads the edge answers itself (issue 24): the dead
 * letters of LAYBY_DLQ, which no daemon owns and which the edge reads with
 * direct gets over its own JetStream context (engine/bus_dlq.c, the code
 * `layby-ctl dlq list|show` runs). Local hooks of QUERY rows, so the binds
 * check the parameters and the OpenAPI document lists them.
 *
 * Threads: any civetweb worker (the bus is thread-safe).
 */
#ifndef LAYBY_EDGE_EDGE_ADMIN_H
#define LAYBY_EDGE_EDGE_ADMIN_H

#include "edge_routes.h"

extern const edge_hooks edge_admin_dlq_list_hooks;
extern const edge_hooks edge_admin_dlq_show_hooks;

#endif
