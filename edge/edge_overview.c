/* edge_overview.c - the console's Overview (edge_overview.h). */
#include "edge_overview.h"

#include <stdlib.h>
#include <string.h>

#include "bus_status.h"
#include "edge_app.h"
#include "edge_http.h"
#include "engine/subjects.h"
#include "layby/v1/admin.pb-c.h"
#include "metrics_scrape.h"

/* Per server probe and per daemon scrape: a dead one costs the page this
 * much, a live one on loopback a millisecond or two. */
#define OVERVIEW_PROBE_MS 300

/* The stream's durables under it, as the page shows them. */
static void
durables_nest(json_t *streams, json_t *durables)
{
    size_t i, j;
    json_t *s, *d;
    json_array_foreach(streams, i, s)
    {
        json_t *mine = json_array();
        const char *name = json_string_value(json_object_get(s, "name"));
        json_array_foreach(durables, j, d)
        {
            if (strcmp(json_string_value(json_object_get(d, "stream")), name) == 0)
                json_array_append(mine, d);
        }
        json_object_set_new(s, "consumers", mine);
    }
}

/* The orchestrator's part (saga_overview.c) merged into doc. */
static void
sagas_add(json_t *doc, edge_req *r)
{
    Layby__V1__AdminOverview q = LAYBY__V1__ADMIN_OVERVIEW__INIT;
    bus_envelope env;
    edge_envelope_init(r, &env, q.base.descriptor);
    natsMsg *reply = NULL;
    ProtobufCMessage *m = NULL;
    lb_err err;
    lb_status s = bus_request(&reply, r->app->bus, SUBJ_SAGA_ADMIN_OVERVIEW, &env, &q.base,
                              r->app->cfg.query_timeout_ms, &err);
    if (s == LB_OK)
        s = bus_reply_decode(&m, reply, &layby__v1__admin_document__descriptor, &err);
    natsMsg_Destroy(reply);
    json_t *part = s == LB_OK ? json_loads(((Layby__V1__AdminDocument *)m)->json, 0, NULL) : NULL;
    if (m != NULL)
        protobuf_c_message_free_unpacked(m, NULL);
    if (part == NULL) {
        json_object_set_new(doc, "sagas", json_null());
        json_object_set_new(
            doc, "sagasError",
            json_string(s != LB_OK ? err.msg : "the orchestrator's answer is not JSON"));
        return;
    }
    json_object_update(doc, part);
    json_decref(part);
}

/* What layby-ctl audit kept, or null when no audit ran since the bucket was made. */
static json_t *
audit_last(jsCtx *js)
{
    kvStore *kv = NULL;
    kvEntry *e = NULL;
    json_t *v = NULL;
    if (js_KeyValue(&kv, js, KV_OPS) == NATS_OK && kvStore_Get(&e, kv, KV_OPS_AUDIT) == NATS_OK)
        v = json_loadb(kvEntry_ValueString(e), (size_t)kvEntry_ValueLen(e), 0, NULL);
    kvEntry_Destroy(e);
    kvStore_Destroy(kv);
    return v != NULL ? v : json_null();
}

static lb_status
overview(char **body, const ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    (void)req;
    jsCtx *js = bus_js(r->app->bus);
    uint64_t dlq = 0;
    char at[40];
    lb_time_format(at, sizeof at, lb_now_ms());
    json_t *streams = bus_status_streams(js, &dlq), *durables = bus_status_durables(js);
    durables_nest(streams, durables);
    json_decref(durables);
    json_t *doc = json_pack("{s:s,s:o,s:o,s:I,s:o,s:o}", "at", at, "servers",
                            bus_status_servers(bus_conn(r->app->bus), OVERVIEW_PROBE_MS), "streams",
                            streams, "deadLetters", (json_int_t)dlq, "daemons",
                            metrics_scrape_daemons(r->app->cfg.metrics_host, OVERVIEW_PROBE_MS),
                            "lastAudit", audit_last(js));
    if (doc == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "overview");
    sagas_add(doc, r);
    *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return *body != NULL ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "overview");
}

const edge_hooks edge_overview_hooks = { .local = overview };
