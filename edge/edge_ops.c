/* edge_ops.c - liveness, readiness and metrics for operators and load balancers.
 *
 * /healthz says only that the process answers. /readyz says whether requests
 * can succeed: NATS connected and JetStream answering a stream lookup. The
 * lookup is a round trip, so its result is reused for a second; a flood of
 * probes costs at most one lookup a second.
 */
#include "edge_ops.h"

#include <stdlib.h>
#include <string.h>

#include "edge_app.h"
#include "edge_openapi.h"
#include "log.h"
#include "metrics.h"

void
edge_ops_healthz(edge_req *r)
{
    edge_reply_json(r, 200, "{\"status\":\"ok\"}", NULL);
}

/* Asks NATS and JetStream; fills why when not ready. */
static bool
probe(edge_app *app, lb_err *why)
{
    if (!bus_connected(app->bus)) {
        lb_err_set(why, LB_ERR_UNAVAILABLE, "not connected to NATS");
        return false;
    }
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = app->cfg.ready_timeout_ms;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, bus_js(app->bus), BUS_STREAM_CMD, &o, &jerr);
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        bus__nats_err(why, s, "JetStream stream " BUS_STREAM_CMD);
        why->code = LB_ERR_UNAVAILABLE;
        return false;
    }
    return true;
}

void
edge_ops_readyz(edge_req *r)
{
    edge_app *app = r->app;
    lb_err why;
    lb_err_clear(&why);
    pthread_mutex_lock(&app->ready_lock);
    int64_t now = lb_mono_us();
    if (app->ready_at_us == 0 || now - app->ready_at_us >= EDGE_READY_CACHE_US) {
        bool first = app->ready_at_us == 0, was = app->ready_ok;
        lb_err_clear(&app->ready_why);
        app->ready_ok = probe(app, &app->ready_why);
        app->ready_at_us = lb_mono_us();
        if ((first || was != app->ready_ok) && app->ready_ok)
            log_info(NULL, "edge.readiness", "ready");
        else if (first || was != app->ready_ok)
            log_warn(NULL, "edge.readiness", "not ready", LOG_ERR(&app->ready_why));
    }
    bool ok = app->ready_ok;
    why = app->ready_why;
    pthread_mutex_unlock(&app->ready_lock);

    if (ok)
        edge_reply_json(r, 200, "{\"status\":\"ready\"}", NULL);
    else
        edge_reply_status(r, LB_ERR_UNAVAILABLE, NULL, NULL, NULL);
}

void
edge_ops_metrics(edge_req *r)
{
    char *text = NULL;
    lb_err err;
    if (metrics_render(&text, &err) != LB_OK) {
        log_warn(NULL, "edge.metrics_failed", "metrics render failed", LOG_ERR(&err));
        edge_reply_error(r, &err, NULL);
        return;
    }
    edge_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text), NULL);
    free(text);
}

void
edge_ops_openapi(edge_req *r)
{
    const char *doc = edge_openapi_text();
    if (doc == NULL)
        edge_reply_status(r, LB_ERR_NOMEM, NULL, NULL, NULL);
    else
        edge_reply_json(r, 200, doc, NULL);
}
