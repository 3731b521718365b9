/* main.c - layby-edge: settings, wiring and the process lifecycle.
 *
 * Reads the settings table, loads the token key, connects to NATS, starts
 * civetweb with one handler for every path (edge_dispatch), then waits for
 * SIGINT/SIGTERM and stops in reverse order: civetweb first (no new requests,
 * running ones finish), then the bus.
 */
#include <civetweb.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "cfg.h"
#include "edge_app.h"
#include "edge_auth.h"
#include "edge_model.h"
#include "edge_revoke.h"
#include "edge_routes.h"
#include "engine/subjects.h"
#include "id.h"
#include "log.h"

#define OFF(f) offsetof(edge_cfg, f)

/* clang-format off */
static const cfg_opt edge_opts[] = {
    { "host", "LAYBY_EDGE_HOST", CFG_STR, "127.0.0.1", OFF(host), 0, 0, "address to listen on" },
    { "port", "LAYBY_EDGE_PORT", CFG_INT, "8080", OFF(port), 1, 65535, "HTTP port" },
    { "threads", "LAYBY_EDGE_THREADS", CFG_INT, "256", OFF(threads), 1, 4096,
      "worker threads (one per concurrent keep-alive client)" },
    { "max-body", "LAYBY_EDGE_MAX_BODY", CFG_INT, "65536", OFF(max_body), 1, 64 << 20,
      "largest request body in bytes (413 above)" },
    { "request-timeout", "LAYBY_EDGE_REQUEST_TIMEOUT", CFG_MS, "30s", OFF(request_timeout_ms),
      100, 3600000, "time to read a request and write its response" },
    { "command-timeout", "LAYBY_EDGE_COMMAND_TIMEOUT", CFG_MS, "5s", OFF(command_timeout_ms),
      10, 600000, "wait for a command's or signal's outcome, then answer 202" },
    { "saga-wait", "LAYBY_EDGE_SAGA_WAIT", CFG_MS, "2s", OFF(saga_wait_ms), 10, 600000,
      "wait for a saga start's outcome (place, pay), then 202 with Location to poll" },
    { "query-timeout", "LAYBY_EDGE_QUERY_TIMEOUT", CFG_MS, "2s", OFF(query_timeout_ms), 10,
      600000, "wait for a query's answer, then 504" },
    { "ready-timeout", "LAYBY_EDGE_READY_TIMEOUT", CFG_MS, "500ms", OFF(ready_timeout_ms), 10,
      60000, "JetStream probe timeout of /readyz" },
    { "jwt-public-key-file", "LAYBY_JWT_PUBLIC_KEY_FILE", CFG_STR, NULL, OFF(jwt_key_file), 0, 0,
      "PEM file with the ES256 public key of access tokens" },
    { "jwt-issuer", "LAYBY_JWT_ISSUER", CFG_STR, "layby", OFF(jwt_issuer), 0, 0,
      "required iss claim" },
    { "auth-cache", "LAYBY_EDGE_AUTH_CACHE", CFG_INT, "4096", OFF(auth_cache), 0, 1 << 20,
      "verified tokens remembered until their exp (0 = none)" },
    { "nats-url", "LAYBY_NATS_URL", CFG_STR, "nats://127.0.0.1:14222", OFF(nats_url), 0, 0,
      "NATS server URL, or a comma-separated list of a cluster's nodes" },
    { "nats-user", "LAYBY_EDGE_NATS_USER", CFG_STR, "", OFF(nats_user), 0, 0, "NATS user" },
    { "nats-password", "LAYBY_EDGE_NATS_PASSWORD", CFG_STR, "", OFF(nats_password), 0, 0,
      "NATS password" },
    { "read-model", "LAYBY_EDGE_READ_MODEL", CFG_BOOL, "true", OFF(read_model), 0, 0,
      "answer product reads from the edge's read model of LAYBY_EVT (false: ask the catalog)" },
    { "metrics-host", "LAYBY_EDGE_METRICS_HOST", CFG_STR, "127.0.0.1", OFF(metrics_host), 0, 0,
      "host of the daemons' metrics ports, for the console's Overview (outbox backlogs)" },
    { "instance", "LAYBY_INSTANCE", CFG_STR, "", OFF(instance), 0, 0,
      "instance name in logs (default edge-<pid>)" },
    { "log-level", "LAYBY_LOG_LEVEL", CFG_STR, "info", OFF(log_level), 0, 0,
      "debug|info|warn|error" },
};
/* clang-format on */

static const char about[] = "layby HTTP edge: JSON over HTTP to commands and queries on NATS.";

static int
fail(const char *what, const lb_err *err)
{
    fprintf(stderr, "layby-edge: %s: %s\n", what, err->msg);
    log_error(NULL, "edge.start_failed", what, LOG_ERR(err));
    return 1;
}

/* Settings and logging. Returns -1 to go on, else the exit code (0 after --help). */
static int
configure(edge_cfg *cfg, int argc, char **argv)
{
    lb_err err;
    bool help = false;
    if (cfg_load(cfg, edge_opts, LB_COUNTOF(edge_opts), argc, argv, &help, &err) != LB_OK) {
        fprintf(stderr, "layby-edge: %s\n", err.msg);
        return 2;
    }
    if (help) {
        cfg_help_write(stdout, "layby-edge", about, edge_opts, LB_COUNTOF(edge_opts));
        return 0;
    }
    log_level lvl;
    if (log_level_parse(&lvl, cfg->log_level, &err) != LB_OK) {
        fprintf(stderr, "layby-edge: --log-level: %s\n", err.msg);
        return 2;
    }
    char instance[64];
    if (cfg->instance[0] != '\0')
        snprintf(instance, sizeof instance, "%s", cfg->instance);
    else
        snprintf(instance, sizeof instance, "edge-%ld", (long)getpid());
    log_init("edge", instance, lvl);
    return -1;
}

int
main(int argc, char **argv)
{
    edge_app app;
    memset(&app, 0, sizeof app);
    int rc = configure(&app.cfg, argc, argv);
    if (rc >= 0)
        return rc;

    /* Signals are taken by sigwait() below: block them before any thread
     * (nats.c, civetweb) starts, so every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = 1;
    lb_err err;
    struct mg_context *http = NULL;
    /* before any thread: the Overview scrapes the daemons' /metrics from
     * request threads (engine/metrics_scrape.c) */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return fprintf(stderr, "layby-edge: libcurl cannot start\n"), 1;
    if (id_init(&err) != LB_OK)
        return fail("id_init", &err);
    size_t n_routes;
    const edge_route *routes = edge_routes_table(&n_routes);
    if (edge_routes_check(routes, n_routes, &err) != LB_OK)
        return fail("route table", &err); /* a bad row is our bug: refuse to start */
    edge_auth_opts ao = EDGE_AUTH_OPTS_INIT;
    ao.issuer = app.cfg.jwt_issuer;
    ao.cache_cap = (size_t)app.cfg.auth_cache;
    if (edge_auth_load(&app.auth, app.cfg.jwt_key_file, &ao, &err) != LB_OK)
        return fail("--jwt-public-key-file", &err);
    pthread_mutex_init(&app.ready_lock, NULL);
    pthread_mutex_init(&app.kv_lock, NULL);

    bus_opts bo = BUS_OPTS_INIT;
    bo.url = app.cfg.nats_url;
    bo.user = app.cfg.nats_user;
    bo.password = app.cfg.nats_password;
    bo.name = "layby-edge";
    if (bus_open(&app.bus, &bo, &err) != LB_OK) {
        fail("nats", &err);
        goto out_auth;
    }
    if (edge_revoke_new(&app.revoked, &err) != LB_OK ||
        edge_revoke_watch(app.revoked, app.bus, KV_REVOKED, &err) != LB_OK) {
        fail("revocations", &err);
        goto out_bus;
    }
    edge_auth_revocations(app.auth, app.revoked);
    if (app.cfg.read_model &&
        (edge_model_new(&app.model, &err) != LB_OK ||
         edge_model_follow(app.model, app.bus, app.cfg.query_timeout_ms, &err) != LB_OK)) {
        fail("read model", &err);
        goto out_bus;
    }
    edge_routes_metrics_init();
    mg_init_library(0);
    if (edge_listen(&http, &app, &err) != LB_OK) {
        fail("http", &err);
        goto out_library;
    }
    log_info(NULL, "edge.started", "listening", LOG_STR("host", app.cfg.host),
             LOG_INT("port", app.cfg.port), LOG_INT("threads", app.cfg.threads));

    int sig = 0;
    sigwait(&sigs, &sig);
    log_info(NULL, "edge.stopping", "signal received", LOG_INT("signal", sig));
    mg_stop(http); /* returns once running requests are answered */
    rc = 0;
out_library:
    mg_exit_library();
    if (app.kv != NULL)
        kvStore_Destroy(app.kv);
out_bus:
    /* The connection closes (joining nats.c's reader thread) before the
     * follower and the watcher destroy their subscriptions: a late delivery
     * racing a subscription's destruction crashed nats.c 3.4.1 in
     * natsConn_processMsg (engine/svc.c, the same order for the services). */
    edge_model_stop(app.model);
    edge_revoke_stop(app.revoked);
    bus_disconnect(app.bus);
    edge_model_free(app.model);
    edge_revoke_free(app.revoked);
    bus_close(app.bus);
out_auth:
    edge_auth_free(app.auth);
    pthread_mutex_destroy(&app.ready_lock);
    pthread_mutex_destroy(&app.kv_lock);
    return rc;
}
