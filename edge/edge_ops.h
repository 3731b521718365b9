/* edge_ops.h - operational routes: liveness, readiness, metrics, API document.
 *
 * Ownership: handlers borrow the request.
 * Threads:   any civetweb worker; the readiness cache in edge_app has a lock.
 */
#ifndef LAYBY_EDGE_EDGE_OPS_H
#define LAYBY_EDGE_EDGE_OPS_H

#include "edge_http.h"

#define EDGE_READY_CACHE_US 1000000 /* JetStream is probed at most once a second */

/* GET /healthz: 200 while the process serves requests. */
void edge_ops_healthz(edge_req *r);
/* GET /readyz: 200 when NATS is connected and JetStream answers, else 503. */
void edge_ops_readyz(edge_req *r);
/* GET /metrics: Prometheus text. */
void edge_ops_metrics(edge_req *r);
/* GET /api/v1/openapi.json: the generated OpenAPI 3.0 document (edge_openapi.c). */
void edge_ops_openapi(edge_req *r);

#endif
