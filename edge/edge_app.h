/* edge_app.h - the edge process's settings and shared state.
 *
 * One edge_app exists per process, built by main() before civetweb starts and
 * handed to every request as edge_req.app.
 *
 * Ownership: main() owns the app and everything it points to; handlers borrow.
 * Threads:   config fields are read-only after start; each mutable field
 *            names its lock.
 */
#ifndef LAYBY_EDGE_EDGE_APP_H
#define LAYBY_EDGE_EDGE_APP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "edge_auth.h"
#include "lb.h"

/* Filled by cfg_load() from the table in main.c. */
typedef struct edge_cfg {
    const char *host;
    int64_t port;
    int64_t threads;
    int64_t max_body;           /* bytes */
    int64_t request_timeout_ms; /* civetweb: whole request, read and write */
    int64_t command_timeout_ms; /* wait for a command's or signal's outcome before 202 */
    int64_t saga_wait_ms;       /* wait for a saga start's outcome (place, pay) before 202 */
    int64_t query_timeout_ms;
    int64_t ready_timeout_ms; /* JetStream probe of /readyz */
    const char *jwt_key_file;
    const char *jwt_issuer;
    int64_t auth_cache;
    bool read_model; /* product reads from edge_model.h */
    const char *nats_url;
    const char *nats_user;
    const char *nats_password;
    const char *metrics_host; /* the daemons' /metrics, for the console's Overview */
    const char *instance;
    const char *log_level;
} edge_cfg;

typedef struct edge_app {
    /* config, fixed after start */
    edge_cfg cfg;
    bus *bus;                 /* thread-safe */
    edge_auth *auth;          /* thread-safe */
    edge_revoke *revoked;     /* thread-safe; revoked access-token ids (edge_revoke.h) */
    struct edge_model *model; /* thread-safe; product read model (edge_model.h), NULL = none */
    /* the table edge_dispatch() walks: NULL = edge_routes_table(); a test
     * passes its own (such rows get no per-route metrics) */
    const struct edge_route *routes;
    size_t n_routes;
    /* /readyz probe result, guarded by ready_lock: JetStream is asked at most
     * once a second however often the probe is hit. */
    pthread_mutex_t ready_lock;
    int64_t ready_at_us; /* when last asked, 0 = never */
    bool ready_ok;
    lb_err ready_why;
    /* idempotency bucket handle, guarded by kv_lock (opened lazily: the
     * bucket may be created after the edge starts) */
    pthread_mutex_t kv_lock;
    kvStore *kv;          /* NULL until opened */
    int64_t kv_failed_us; /* last failed open, to retry at most every few seconds */
} edge_app;

#endif
