/* edge_routes.c - the civetweb handler that walks the route table
 * (edge_table.c): route lookup (404/405), trace context, token and role
 * checks, the row's handler or the runner, then one metrics update and the
 * access log line (edge.request, at info only for failed or slow requests).
 *
 * The auth column is enforced here and nowhere else, so a handler never runs
 * for a caller its row does not admit.
 */
#include "edge_routes.h"

#include <civetweb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "edge_app.h"
#include "log.h"
#include "metrics.h"

#define UNMATCHED      EDGE_ROUTES_MAX /* metrics slot for requests no row matched */
#define STATUS_SLOTS   500             /* HTTP 100..599 */
#define ACCESS_SLOW_US 1000000         /* a request this slow is logged at info */

/* Per route: a latency histogram made at start, and request counters per
 * status made on first use (find-or-create in the registry takes a lock and
 * a scan, so each is looked up once and kept here). */
static metrics_metric *route_latency[EDGE_ROUTES_MAX + 1];
static _Atomic(metrics_metric *) route_count[EDGE_ROUTES_MAX + 1][STATUS_SLOTS];

/* The row in metrics slot `slot`, or NULL for UNMATCHED. */
static const edge_route *
route_at(size_t slot)
{
    size_t n;
    const edge_route *routes = edge_routes_table(&n);
    return slot < n ? &routes[slot] : NULL;
}

static const char *
route_label(size_t slot)
{
    return route_at(slot) ? route_at(slot)->path : "unmatched";
}

void
edge_routes_metrics_init(void)
{
    size_t n;
    edge_routes_table(&n);
    for (size_t i = 0; i <= n; i++) {
        size_t slot = i < n ? i : UNMATCHED;
        char labels[160];
        snprintf(labels, sizeof labels, "route=\"%s\"", route_label(slot));
        route_latency[slot] = metrics_histogram("layby_edge_request_duration_seconds", labels,
                                                "HTTP request latency by route");
    }
}

static void
count_request(size_t slot, int status, int64_t us)
{
    if (route_latency[slot] != NULL)
        metrics_observe_us(route_latency[slot], us);
    if (status < 100 || status > 599)
        return;
    _Atomic(metrics_metric *) *cell = &route_count[slot][status - 100];
    metrics_metric *m = atomic_load(cell);
    if (m == NULL) {
        char labels[200];
        /* the row's method, never the client's text: labels must stay bounded */
        snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",status=\"%d\"",
                 route_label(slot), route_at(slot) ? route_at(slot)->method : "any", status);
        m = metrics_counter("layby_edge_requests_total", labels,
                            "HTTP requests by route and status");
        atomic_store(cell, m);
    }
    metrics_add(m, 1);
}

/* The edge.request line's level: info for a request that failed (4xx, 5xx)
 * or was slow, debug for the rest. A line per request at info cost a
 * quarter to a third of the edge's throughput and multiplied its p99 (the
 * log file's writes under load; docs/DECISIONS.md §2 "Access log"), and
 * the per-route request counters and latency histograms already count
 * every request. */
static log_level
access_level(int status, int64_t us)
{
    return status >= 400 || us >= ACCESS_SLOW_US ? LOG_INFO : LOG_DEBUG;
}

/* Trace context: the caller's if well-formed, else a new one. */
static void
trace_init(edge_req *r)
{
    const char *tp = mg_get_header(r->conn, "traceparent");
    if (tp != NULL && strlen(tp) < sizeof r->traceparent &&
        bus_traceparent_check(tp, NULL) == LB_OK)
        snprintf(r->traceparent, sizeof r->traceparent, "%s", tp);
    else
        bus_traceparent_new(r->traceparent);
}

/* Enforces the row's auth column; on refusal it has replied. */
static bool
authorize_or_reply(edge_req *r)
{
    if (r->route->who == EDGE_PUBLIC)
        return true;
    const char *h = mg_get_header(r->conn, "Authorization");
    static const char scheme[] = "Bearer ";
    if (h == NULL || strncasecmp(h, scheme, sizeof scheme - 1) != 0) {
        edge_reply_status(r, LB_ERR_UNAUTHORIZED, NULL, "missing bearer token", NULL);
        return false;
    }
    const char *token = h + sizeof scheme - 1;
    while (*token == ' ')
        token++;
    lb_err err;
    if (edge_auth_verify(&r->claims, r->app->auth, token, lb_now_ms() / 1000, &err) != LB_OK) {
        edge_reply_error(r, &err, NULL);
        return false;
    }
    r->authed = true;
    snprintf(r->actor, sizeof r->actor, "%s %s", r->claims.sub, edge_role_name(r->claims.role));
    if (r->route->who == EDGE_ADMIN && r->claims.role != EDGE_ROLE_ADMIN) {
        edge_reply_status(r, LB_ERR_FORBIDDEN, NULL, "this route needs the ADMIN role", NULL);
        return false;
    }
    return true;
}

int
edge_dispatch(struct mg_connection *conn, void *cbdata)
{
    int64_t t0 = lb_mono_us();
    edge_app *app = cbdata;
    edge_req r = {
        .conn = conn,
        .ri = mg_get_request_info(conn),
        .app = app,
        .max_body = app->cfg.max_body,
    };
    trace_init(&r);
    const char *method = r.ri->request_method ? r.ri->request_method : "";
    const char *path = r.ri->local_uri ? r.ri->local_uri : "";

    char allow[EDGE_ALLOW_MAX];
    size_t n_routes = app->n_routes;
    const edge_route *routes = app->routes;
    size_t n_own;
    const edge_route *own = edge_routes_table(&n_own);
    if (routes == NULL) {
        routes = own;
        n_routes = n_own;
    }
    lb_status s =
        edge_route_find(&r.route, r.params, &r.n_params, allow, routes, n_routes, method, path);
    if (s == LB_ERR_NOT_FOUND) {
        edge_reply_status(&r, s, NULL, "no such route", NULL);
    } else if (s == LB_ERR_METHOD) {
        char extra[EDGE_ALLOW_MAX + 16];
        snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
        edge_reply_status(&r, s, NULL, NULL, extra);
    } else if (authorize_or_reply(&r)) {
        if (r.route->kind == EDGE_KIND_LOCAL)
            r.route->fn(&r);
        else
            edge_route_run(&r);
        if (r.status == 0) /* a handler that forgot to answer is our bug */
            edge_reply_status(&r, LB_ERR_INTERNAL, NULL, NULL, NULL);
    }

    int64_t us = lb_mono_us() - t0;
    size_t slot = r.route && routes == own ? (size_t)(r.route - routes) : UNMATCHED;
    count_request(slot, r.status, us);
    log_ctx lc = { .correlation = r.correlation[0] ? r.correlation : NULL };
    const log_kv kvs[] = { LOG_STR("method", method),
                           LOG_STR("route", r.route ? r.route->path : "unmatched"),
                           LOG_INT("status", r.status), LOG_INT("duration_us", us),
                           LOG_STR("traceparent", r.traceparent) };
    log_write(access_level(r.status, us), &lc, "edge.request", "request", kvs, LB_COUNTOF(kvs));
    edge_req_destroy(&r);
    return r.status;
}

/* --- listening ------------------------------------------------------------------ */

static int
civetweb_log(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_warn(NULL, "edge.civetweb", message);
    return 1; /* handled: civetweb prints nothing itself */
}

/* civetweb accepts connections once mg_start() has started its threads, which
 * is before mg_set_request_handler() can install edge_dispatch(): a request
 * in between got civetweb's own 404 (the chaos run's clients, repeating their
 * POSTs the moment a killed edge listened again, got five). begin_request runs
 * before civetweb looks for a handler, so each such request waits here until
 * the handler is in place. */
static atomic_bool listen_routed;

static int
listen_wait_routed(struct mg_connection *conn)
{
    (void)conn;
    for (int i = 0; i < 10000 && !atomic_load(&listen_routed); i++)
        usleep(1000);
    return 0; /* civetweb goes on to the handler */
}

lb_status
edge_listen_open(struct mg_context **out, edge_app *app, lb_err *err)
{
    char ports[128], threads[16], timeout[24];
    if (lb_fmt(ports, sizeof ports, err, "%s:%lld", app->cfg.host, (long long)app->cfg.port) !=
        LB_OK)
        return err->code;
    snprintf(threads, sizeof threads, "%lld", (long long)app->cfg.threads);
    snprintf(timeout, sizeof timeout, "%lld", (long long)app->cfg.request_timeout_ms);
    /* tcp_nodelay: a response leaves as headers then body; with Nagle the body
     * waits for the client's delayed ACK, 40 ms per keep-alive request. */
    const char *options[] = {
        "listening_ports",
        ports,
        "num_threads",
        threads,
        "enable_keep_alive",
        "yes",
        "request_timeout_ms",
        timeout,
        "tcp_nodelay",
        "1",
        NULL,
    };
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.log_message = civetweb_log;
    cb.begin_request = listen_wait_routed;
    atomic_store(&listen_routed, false);
    struct mg_context *ctx = mg_start(&cb, app, options);
    if (ctx == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "cannot listen on %s (see edge.civetweb log)", ports);
    *out = ctx;
    return LB_OK;
}

void
edge_listen_route(struct mg_context *ctx, edge_app *app)
{
    mg_set_request_handler(ctx, "/", edge_dispatch, app);
    atomic_store(&listen_routed, true);
}

lb_status
edge_listen(struct mg_context **out, edge_app *app, lb_err *err)
{
    lb_status s = edge_listen_open(out, app, err);
    if (s == LB_OK)
        edge_listen_route(*out, app);
    return s;
}
