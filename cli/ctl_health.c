/* ctl_health.c - `layby-ctl health`: is NATS reachable, do the streams,
 * durables and buckets of engine/bus_topology.c exist (with their counts),
 * is PostgreSQL reachable. One line per item; exit 1 if any is not ok. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>

#include "bus_topology.h"
#include "ctl.h"

typedef struct health_conf {
    ctl_conn conn;
} health_conf;

static bool
check_streams(jsCtx *js)
{
    bool ok = true;
    for (size_t i = 0; i < bus_topology_n_streams; i++) {
        const char *name = bus_topology_streams[i].name;
        jsStreamInfo *si = NULL;
        natsStatus s = js_GetStreamInfo(&si, js, name, NULL, NULL);
        if (s != NATS_OK) {
            printf("%-9s %-28s MISSING (%s; run layby-ctl bus setup)\n", "stream", name,
                   natsStatus_GetText(s));
            ok = false;
            continue;
        }
        printf("%-9s %-28s ok  messages %" PRIu64 "  bytes %" PRIu64 "  last-seq %" PRIu64
               "  consumers %" PRId64 "\n",
               "stream", name, si->State.Msgs, si->State.Bytes, si->State.LastSeq,
               si->State.Consumers);
        jsStreamInfo_Destroy(si);
    }
    return ok;
}

static bool
check_consumers(jsCtx *js)
{
    bool ok = true;
    for (size_t i = 0; i < bus_topology_n_consumers; i++) {
        const bus_topology_consumer *c = &bus_topology_consumers[i];
        char name[128];
        jsConsumerInfo *ci = NULL;
        snprintf(name, sizeof name, "%s/%s", c->stream, c->durable);
        natsStatus s = js_GetConsumerInfo(&ci, js, c->stream, c->durable, NULL, NULL);
        if (s != NATS_OK) {
            printf("%-9s %-28s MISSING (%s; run layby-ctl bus setup)\n", "consumer", name,
                   natsStatus_GetText(s));
            ok = false;
            continue;
        }
        printf("%-9s %-28s ok  pending %" PRIu64 "  ack-pending %" PRId64 "  redelivered %" PRId64
               "  waiting-pulls %" PRId64 "\n",
               "consumer", name, ci->NumPending, ci->NumAckPending, ci->NumRedelivered,
               ci->NumWaiting);
        jsConsumerInfo_Destroy(ci);
    }
    return ok;
}

static bool
check_buckets(jsCtx *js)
{
    bool ok = true;
    for (size_t i = 0; i < bus_topology_n_buckets; i++) {
        const char *name = bus_topology_buckets[i].name;
        char stream[128];
        jsStreamInfo *si = NULL;
        snprintf(stream, sizeof stream, "KV_%s", name);
        natsStatus s = js_GetStreamInfo(&si, js, stream, NULL, NULL);
        if (s != NATS_OK) {
            printf("%-9s %-28s MISSING (%s; run layby-ctl bus setup)\n", "bucket", name,
                   natsStatus_GetText(s));
            ok = false;
            continue;
        }
        printf("%-9s %-28s ok  values %" PRIu64 "\n", "bucket", name, si->State.Msgs);
        jsStreamInfo_Destroy(si);
    }
    return ok;
}

static bool
check_pg(const ctl_conn *conn)
{
    PGconn *pg = NULL;
    lb_err err;
    if (ctl_pg_open(&pg, conn, &err) != LB_OK) {
        printf("%-9s %-28s FAIL %s\n", "postgres", "", err.msg);
        return false;
    }
    PGresult *r = PQexec(pg, "SELECT current_user, current_database()");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok)
        printf("%-9s %-28s ok  server %d  user %s  database %s\n", "postgres",
               PQhost(pg) ? PQhost(pg) : "", PQserverVersion(pg), PQgetvalue(r, 0, 0),
               PQgetvalue(r, 0, 1));
    else
        printf("%-9s %-28s FAIL %s", "postgres", "", PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
    return ok;
}

int
ctl_health(const ctl_cmd *cmd, int argc, char **argv)
{
    health_conf conf = { 0 };
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    lb_err err;
    bool ok = true;
    int rc = ctl_args(&conf, cmd, NULL, 0, argc, argv);
    if (rc >= 0)
        return rc;

    if (ctl_nats_open(&nc, &js, &conf.conn, &err) != LB_OK) {
        printf("%-9s %-28s FAIL %s\n", "nats", conf.conn.nats_url, err.msg);
        ok = false;
    } else {
        printf("%-9s %-28s ok\n", "nats", conf.conn.nats_url);
        ok &= check_streams(js);
        ok &= check_consumers(js);
        ok &= check_buckets(js);
    }
    ctl_nats_close(nc, js);
    ok &= check_pg(&conf.conn);
    return ok ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
