/* edge_overview.h - GET /api/v1/admin/overview, the console's first page
 * (issue 24): the shop at a glance, gathered by the edge on each request.
 *   - servers: each NATS server the connection knows (engine/bus_status.c);
 *   - streams with their durables, and the dead-letter count (bus_status.c,
 *     what layby-ctl status reads);
 *   - daemons: each one's outbox backlog, from its /metrics
 *     (engine/metrics_scrape.c: each outbox is in its service's own schema);
 *   - sagas by type and state and their throughput per 10 s over 5 minutes,
 *     asked of the orchestrator (layby.qry.orchestrator.saga_overview);
 *   - lastAudit: what layby-ctl audit kept in KV LAYBY_OPS (audit.last).
 * A part that cannot be read says so in its place ("sagasError", a server or
 * daemon with ok:false) and the rest is still answered: the page is most
 * needed when something is down.
 *
 * Threads: any civetweb worker.
 */
#ifndef LAYBY_EDGE_EDGE_OVERVIEW_H
#define LAYBY_EDGE_EDGE_OVERVIEW_H

#include "edge_routes.h"

extern const edge_hooks edge_overview_hooks;

#endif
