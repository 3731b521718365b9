/* edge_routes.h - the edge's routing table and the one civetweb handler that
 * walks it.
 *
 * Each route is { method, path pattern, who may call it, handler }. Patterns
 * are literal segments and {name} segments that capture one non-empty path
 * segment. A path that matches no pattern is 404; a path that matches only
 * under other methods is 405 with an Allow header.
 *
 * Ownership: route tables are static const; edge_param values point into the
 *            caller's path.
 * Threads:   edge_route_find() is pure; edge_dispatch() runs on any civetweb
 *            worker thread.
 */
#ifndef LAYBY_EDGE_EDGE_ROUTES_H
#define LAYBY_EDGE_EDGE_ROUTES_H

#include <stddef.h>

#include "edge_http.h"
#include "lb.h"

struct mg_connection;

typedef enum edge_who {
    EDGE_PUBLIC, /* anyone */
    EDGE_MEMBER, /* a valid access token of any role */
    EDGE_ADMIN   /* a valid access token with role ADMIN */
} edge_who;

/* Answers the request; must reply exactly once (edge_reply*). */
typedef void (*edge_handler_fn)(edge_req *r);

struct edge_route {
    const char *method;
    const char *path;
    edge_who who;
    edge_handler_fn fn;
};

#define EDGE_ALLOW_MAX 64 /* "GET, POST, PUT, PATCH, DELETE" */

/* Finds the route for method and path in routes[0..n). LB_OK sets *out and
 * params; LB_ERR_NOT_FOUND for an unknown path; LB_ERR_METHOD when the path is
 * known under other methods, listed in allow ("GET, POST"). */
lb_status edge_route_find(const edge_route **out, edge_param params[EDGE_PARAMS_MAX],
                          size_t *n_params, char allow[EDGE_ALLOW_MAX], const edge_route *routes,
                          size_t n, const char *method, const char *path);

/* The edge's table (edge_routes.c). */
const edge_route *edge_routes_table(size_t *n);

/* Creates the per-route metrics; call once before edge_dispatch() runs. */
void edge_routes_metrics_init(void);

/* The civetweb request handler for "/": cbdata is the edge_app. */
int edge_dispatch(struct mg_connection *conn, void *cbdata);

#endif
