/* ctl_bus.c - `layby-ctl bus setup|info`. setup makes the server's streams,
 * durable consumers and buckets match engine/bus_topology.c. Safe to run any
 * time: what exists is updated in place, nothing is deleted or purged. info
 * prints each stream's and durable's configuration and state (exit 1 when one
 * of the topology is missing). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "bus_topology.h"
#include "ctl.h"

typedef struct bus_setup_conf {
    ctl_conn conn; /* first: the shared rows point into it */
    int64_t max_age_ms;
    int64_t duplicates_ms;
    int64_t ack_wait_ms;
    int64_t max_deliver;
    int64_t max_ack_pending;
    int64_t replicas;
} bus_setup_conf;
_Static_assert(offsetof(bus_setup_conf, conn) == 0, "ctl_conn first");

#define DAY_MS (24LL * 3600 * 1000)

/* clang-format off */
static const cfg_opt bus_setup_opts[] = {
    { "max-age",         "LAYBY_BUS_MAX_AGE",         CFG_MS,  "7d",   offsetof(bus_setup_conf, max_age_ms),      60000, 3650 * DAY_MS, "how long streams keep messages" },
    { "duplicates",      "LAYBY_BUS_DUPLICATES",      CFG_MS,  "2m",   offsetof(bus_setup_conf, duplicates_ms),   120000, DAY_MS,       "Nats-Msg-Id de-duplication window (>= 2m)" },
    { "ack-wait",        "LAYBY_BUS_ACK_WAIT",        CFG_MS,  "3s",   offsetof(bus_setup_conf, ack_wait_ms),     1000, 3600000,        "redelivery after an unacked message" },
    { "max-deliver",     "LAYBY_BUS_MAX_DELIVER",     CFG_INT, "5",    offsetof(bus_setup_conf, max_deliver),     1, 1000,              "deliveries per message before the server stops" },
    { "max-ack-pending", "LAYBY_BUS_MAX_ACK_PENDING", CFG_INT, "4096", offsetof(bus_setup_conf, max_ack_pending), 1, 1000000,           "unacked messages per durable" },
    { "replicas",        "LAYBY_BUS_REPLICAS",        CFG_INT, "1",    offsetof(bus_setup_conf, replicas),        1, 5,                 "copies of every stream and bucket (3 on a cluster)" },
};
/* clang-format on */
const ctl_flags ctl_bus_setup_flags = CTL_FLAGS(bus_setup_opts);

static void
report(void *arg, const char *kind, const char *name, bus_topology_change change)
{
    (void)arg;
    if (ctl_out.json)
        ctl_json_line(json_pack("{s:s,s:s,s:s}", "kind", kind, "name", name, "change",
                                bus_topology_change_name(change)));
    else
        printf("%-9s %-28s %s\n", kind, name, bus_topology_change_name(change));
}

int
ctl_bus_setup(const ctl_cmd *cmd, int argc, char **argv)
{
    bus_setup_conf conf = { 0 };
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    lb_err err;
    int rc = ctl_args(&conf, cmd, bus_setup_opts, LB_COUNTOF(bus_setup_opts), argc, argv);
    if (rc >= 0)
        return rc;

    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    o.max_age_ms = conf.max_age_ms;
    o.duplicates_ms = conf.duplicates_ms;
    o.ack_wait_ms = conf.ack_wait_ms;
    o.max_deliver = conf.max_deliver;
    o.max_ack_pending = conf.max_ack_pending;
    o.replicas = conf.replicas;
    if (ctl_nats_open(&nc, &js, &conf.conn, &err) != LB_OK ||
        bus_topology_apply(js, &o, report, NULL, &err) != LB_OK)
        rc = ctl_fail(cmd, &err);
    else
        rc = CTL_EXIT_OK;
    ctl_nats_close(nc, js);
    return rc;
}

/* --- bus info ---------------------------------------------------------------- */

static json_t *
stream_json(jsCtx *js, const char *name)
{
    jsStreamInfo *si = NULL;
    natsStatus s = js_GetStreamInfo(&si, js, name, NULL, NULL);
    if (s != NATS_OK)
        return json_pack("{s:s,s:s}", "name", name, "error", natsStatus_GetText(s));
    json_t *subjects = json_array();
    for (int i = 0; i < si->Config->SubjectsLen; i++)
        json_array_append_new(subjects, json_string(si->Config->Subjects[i]));
    json_t *o =
        json_pack("{s:s,s:o,s:s,s:I,s:I,s:i,s:I,s:I,s:I,s:I,s:i}", "name", name, "subjects",
                  subjects, "storage", si->Config->Storage == js_FileStorage ? "file" : "memory",
                  "maxAgeMs", (json_int_t)(si->Config->MaxAge / 1000000), "duplicatesMs",
                  (json_int_t)(si->Config->Duplicates / 1000000), "replicas",
                  (int)si->Config->Replicas, "messages", (json_int_t)si->State.Msgs, "bytes",
                  (json_int_t)si->State.Bytes, "firstSeq", (json_int_t)si->State.FirstSeq,
                  "lastSeq", (json_int_t)si->State.LastSeq, "consumers", (int)si->State.Consumers);
    jsStreamInfo_Destroy(si);
    return o;
}

static json_t *
durable_json(jsCtx *js, const char *stream, const char *name)
{
    jsConsumerInfo *ci = NULL;
    natsStatus s = js_GetConsumerInfo(&ci, js, stream, name, NULL, NULL);
    if (s != NATS_OK)
        return json_pack("{s:s,s:s,s:s}", "stream", stream, "name", name, "error",
                         natsStatus_GetText(s));
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "stream", stream, "name", name, "filter",
        ci->Config->FilterSubject ? ci->Config->FilterSubject : "", "ackWaitMs",
        (json_int_t)(ci->Config->AckWait / 1000000), "maxDeliver",
        (json_int_t)ci->Config->MaxDeliver, "maxAckPending", (json_int_t)ci->Config->MaxAckPending,
        "pending", (json_int_t)ci->NumPending, "ackPending", (json_int_t)ci->NumAckPending,
        "redelivered", (json_int_t)ci->NumRedelivered, "waitingPulls", (json_int_t)ci->NumWaiting);
    jsConsumerInfo_Destroy(ci);
    return o;
}

static void
info_text(json_t *doc)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(doc, "streams"), i, o)
    {
        if (json_object_get(o, "error") != NULL) {
            printf("stream    %-28s %sMISSING%s %s\n",
                   json_string_value(json_object_get(o, "name")), ctl_color("MISSING"),
                   ctl_color_end(), json_string_value(json_object_get(o, "error")));
            continue;
        }
        char *subj = json_dumps(json_object_get(o, "subjects"), JSON_COMPACT);
        printf("stream    %-28s subjects %s  storage %s  max-age %llds  duplicates %llds  replicas "
               "%d  messages %lld  bytes %lld  seq %lld..%lld  consumers %d\n",
               json_string_value(json_object_get(o, "name")), subj ? subj : "",
               json_string_value(json_object_get(o, "storage")),
               (long long)json_integer_value(json_object_get(o, "maxAgeMs")) / 1000,
               (long long)json_integer_value(json_object_get(o, "duplicatesMs")) / 1000,
               (int)json_integer_value(json_object_get(o, "replicas")),
               (long long)json_integer_value(json_object_get(o, "messages")),
               (long long)json_integer_value(json_object_get(o, "bytes")),
               (long long)json_integer_value(json_object_get(o, "firstSeq")),
               (long long)json_integer_value(json_object_get(o, "lastSeq")),
               (int)json_integer_value(json_object_get(o, "consumers")));
        free(subj);
    }
    json_array_foreach(json_object_get(doc, "durables"), i, o)
    {
        char name[128];
        snprintf(name, sizeof name, "%s/%s", json_string_value(json_object_get(o, "stream")),
                 json_string_value(json_object_get(o, "name")));
        if (json_object_get(o, "error") != NULL) {
            printf("durable   %-28s %sMISSING%s %s\n", name, ctl_color("MISSING"), ctl_color_end(),
                   json_string_value(json_object_get(o, "error")));
            continue;
        }
        printf("durable   %-28s filter %s  ack-wait %lldms  max-deliver %lld  max-ack-pending %lld"
               "  pending %lld  ack-pending %lld  redelivered %lld\n",
               name, json_string_value(json_object_get(o, "filter")),
               (long long)json_integer_value(json_object_get(o, "ackWaitMs")),
               (long long)json_integer_value(json_object_get(o, "maxDeliver")),
               (long long)json_integer_value(json_object_get(o, "maxAckPending")),
               (long long)json_integer_value(json_object_get(o, "pending")),
               (long long)json_integer_value(json_object_get(o, "ackPending")),
               (long long)json_integer_value(json_object_get(o, "redelivered")));
    }
}

int
ctl_bus_info(const ctl_cmd *cmd, int argc, char **argv)
{
    struct {
        ctl_conn conn;
    } conf = { 0 };
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    lb_err err;
    int rc = ctl_parse(&conf, cmd, argc, argv);
    if (rc >= 0)
        return rc;
    if (ctl_nats_open(&nc, &js, &conf.conn, &err) != LB_OK)
        return ctl_fail(cmd, &err);
    json_t *doc = json_pack("{s:[],s:[]}", "streams", "durables");
    bool ok = true;
    for (size_t i = 0; i < bus_topology_n_streams; i++) {
        json_t *o = stream_json(js, bus_topology_streams[i].name);
        ok &= json_object_get(o, "error") == NULL;
        json_array_append_new(json_object_get(doc, "streams"), o);
    }
    for (size_t i = 0; i < bus_topology_n_consumers; i++) {
        json_t *o =
            durable_json(js, bus_topology_consumers[i].stream, bus_topology_consumers[i].durable);
        ok &= json_object_get(o, "error") == NULL;
        json_array_append_new(json_object_get(doc, "durables"), o);
    }
    ctl_nats_close(nc, js);
    if (ctl_out.json) {
        ctl_json_doc(doc);
    } else {
        info_text(doc);
        json_decref(doc);
    }
    return ok ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
