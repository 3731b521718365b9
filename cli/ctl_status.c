/* ctl_status.c - `layby-ctl status`: the whole shop in one look, and a
 * non-zero exit when something needs an operator.
 *
 * It gathers one JSON document (what --json prints) and renders the text form
 * from it, so both always say the same:
 *   - NATS and PostgreSQL reachable;
 *   - each stream of engine/bus_topology.c: messages and bytes;
 *   - each durable: pending, ack-pending, redelivered;
 *   - each instance of each daemon of the service table (LAYBY_INSTANCES,
 *     instance i's port in <port variable>_<i> as scripts/dev writes it:
 *     engine/metrics_scrape.c): reachable, and its outbox backlog
 *     (the layby_outbox_backlog_rows gauge of its /metrics: each service's
 *     outbox lives in its own schema, which the ctl's role cannot read);
 *   - sagas by type and state (schema saga);
 *   - dead letters (LAYBY_DLQ's messages).
 * Unhealthy (exit 1): a server unreachable, a stream or durable missing, a
 * daemon not answering (--daemons=false skips them), a STUCK saga, a dead
 * letter. Each reason is listed under "problems". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "bus_status.h"
#include "bus_topology.h"
#include "ctl.h"
#include "metrics_scrape.h"

typedef struct status_conf {
    ctl_conn conn;
    bool daemons;
    const char *metrics_host;
} status_conf;

/* clang-format off */
static const cfg_opt status_opts[] = {
    { "daemons",      "LAYBY_CTL_DAEMONS",      CFG_BOOL, "true",      offsetof(status_conf, daemons),      0, 0, "ask each daemon's /metrics (false: servers, streams and sagas only)" },
    { "metrics-host", "LAYBY_CTL_METRICS_HOST", CFG_STR,  "127.0.0.1", offsetof(status_conf, metrics_host), 0, 0, "host of the daemons' metrics ports (LAYBY_<SERVICE>_METRICS_PORT)" },
};
/* clang-format on */
const ctl_flags ctl_status_flags = CTL_FLAGS(status_opts);

static void
problem(json_t *doc, const char *fmt, const char *a, const char *b)
{
    char text[1024];
    snprintf(text, sizeof text, fmt, a, b ? b : "");
    json_array_append_new(json_object_get(doc, "problems"), json_string(text));
}

/* The streams and durables as engine/bus_status.c reads them (the console's
 * Overview shows the same), with a problem for each one missing. */
static void
bus_get(json_t *doc, jsCtx *js)
{
    uint64_t dlq = 0;
    size_t i;
    json_t *o;
    json_t *streams = bus_status_streams(js, &dlq), *durables = bus_status_durables(js);
    json_array_foreach(streams, i, o)
    {
        if (!json_is_true(json_object_get(o, "ok")))
            problem(doc, "stream %s is missing (layby-ctl bus setup)%s",
                    json_string_value(json_object_get(o, "name")), NULL);
    }
    json_array_foreach(durables, i, o)
    {
        if (!json_is_true(json_object_get(o, "ok")))
            problem(doc, "durable %s/%s is missing (layby-ctl bus setup)",
                    json_string_value(json_object_get(o, "stream")),
                    json_string_value(json_object_get(o, "name")));
    }
    json_object_set_new(doc, "streams", streams);
    json_object_set_new(doc, "durables", durables);
    json_object_set_new(doc, "deadLetters", json_integer((json_int_t)dlq));
    if (dlq > 0) {
        char n[24];
        snprintf(n, sizeof n, "%" PRIu64, dlq);
        problem(doc, "%s dead letter(s) in " BUS_STREAM_DLQ " (layby-ctl dlq list)%s", n, NULL);
    }
}

/* Each daemon's outbox backlog from its /metrics (engine/metrics_scrape.c,
 * which the console's Overview runs too), a problem for each one down. */
static void
daemons_get(json_t *doc, const status_conf *c)
{
    size_t i;
    json_t *o;
    json_t *daemons = metrics_scrape_daemons(c->metrics_host, c->conn.timeout_ms);
    json_array_foreach(daemons, i, o)
    {
        if (!json_is_true(json_object_get(o, "ok"))) {
            char url[320];
            snprintf(url, sizeof url, "http://%s:%" JSON_INTEGER_FORMAT "/metrics", c->metrics_host,
                     json_integer_value(json_object_get(o, "port")));
            problem(doc, "daemon %s does not answer on %s",
                    json_string_value(json_object_get(o, "name")), url);
        }
    }
    json_object_set_new(doc, "daemons", daemons);
}

static void
sagas_get(json_t *doc, PGconn *pg)
{
    PGresult *r = PQexec(pg, "SELECT saga_type, status, count(*) FROM saga.sagas"
                             " GROUP BY 1, 2 ORDER BY 1, 2");
    json_t *pgo = json_object_get(doc, "postgres");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *m = PQresultErrorMessage(r);
        json_object_set_new(pgo, "error", json_stringn(m, strcspn(m, "\n")));
        problem(doc, "sagas cannot be read: %.200s%s", m, NULL);
        PQclear(r);
        return;
    }
    json_t *arr = json_object_get(doc, "sagas");
    for (int i = 0; i < PQntuples(r); i++) {
        json_int_t n = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:I}", "type", PQgetvalue(r, i, 0), "state",
                                             PQgetvalue(r, i, 1), "count", n));
        if (strcmp(PQgetvalue(r, i, 1), "STUCK") == 0)
            problem(doc, "%s saga(s) of type %s are STUCK (layby-ctl saga list --state STUCK)",
                    PQgetvalue(r, i, 2), PQgetvalue(r, i, 0));
    }
    PQclear(r);
}

static json_t *
status_gather(const status_conf *c)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    PGconn *pg = NULL;
    lb_err err;
    json_t *doc = json_pack("{s:b,s:[],s:{s:s},s:[],s:[],s:[],s:{},s:[],s:I}", "healthy", 1,
                            "problems", "nats", "url", c->conn.nats_url, "streams", "durables",
                            "daemons", "postgres", "sagas", "deadLetters", (json_int_t)0);
    json_t *nats = json_object_get(doc, "nats");
    if (ctl_nats_open(&nc, &js, &c->conn, &err) != LB_OK) {
        json_object_set_new(nats, "ok", json_false());
        json_object_set_new(nats, "error", json_string(err.msg));
        problem(doc, "NATS unreachable: %s%s", err.msg, NULL);
    } else {
        json_object_set_new(nats, "ok", json_true());
        bus_get(doc, js);
    }
    ctl_nats_close(nc, js);
    if (c->daemons)
        daemons_get(doc, c);
    json_t *pgo = json_object_get(doc, "postgres");
    if (ctl_pg_open(&pg, &c->conn, &err) != LB_OK) {
        json_object_set_new(pgo, "ok", json_false());
        json_object_set_new(pgo, "error", json_string(err.msg));
        problem(doc, "PostgreSQL unreachable: %s%s", err.msg, NULL);
    } else {
        json_object_set_new(pgo, "ok", json_true());
        sagas_get(doc, pg);
    }
    PQfinish(pg);
    json_object_set_new(doc, "healthy",
                        json_boolean(json_array_size(json_object_get(doc, "problems")) == 0));
    return doc;
}

static const char *
okword(json_t *o)
{
    return json_is_true(json_object_get(o, "ok")) ? "ok" : "MISSING";
}

static void
status_text(json_t *doc)
{
    size_t i;
    json_t *o;
    json_t *nats = json_object_get(doc, "nats"), *pgo = json_object_get(doc, "postgres");
    const char *nw = json_is_true(json_object_get(nats, "ok")) ? "ok" : "DOWN";
    printf("%-9s %-32s %s%s%s\n", "nats", json_string_value(json_object_get(nats, "url")),
           ctl_color(nw), nw, ctl_color_end());
    json_array_foreach(json_object_get(doc, "streams"), i, o)
    {
        printf("%-9s %-32s %s%s%s  messages %" JSON_INTEGER_FORMAT "  bytes %" JSON_INTEGER_FORMAT
               "\n",
               "stream", json_string_value(json_object_get(o, "name")), ctl_color(okword(o)),
               okword(o), ctl_color_end(), json_integer_value(json_object_get(o, "messages")),
               json_integer_value(json_object_get(o, "bytes")));
    }
    json_array_foreach(json_object_get(doc, "durables"), i, o)
    {
        char name[128];
        snprintf(name, sizeof name, "%s/%s", json_string_value(json_object_get(o, "stream")),
                 json_string_value(json_object_get(o, "name")));
        printf("%-9s %-32s %s%s%s  pending %" JSON_INTEGER_FORMAT
               "  ack-pending %" JSON_INTEGER_FORMAT "  redelivered %" JSON_INTEGER_FORMAT "\n",
               "durable", name, ctl_color(okword(o)), okword(o), ctl_color_end(),
               json_integer_value(json_object_get(o, "pending")),
               json_integer_value(json_object_get(o, "ackPending")),
               json_integer_value(json_object_get(o, "redelivered")));
    }
    json_array_foreach(json_object_get(doc, "daemons"), i, o)
    {
        const char *w = json_is_true(json_object_get(o, "ok")) ? "ok" : "DOWN";
        json_t *bl = json_object_get(o, "outboxBacklog");
        printf("%-9s %-32s %s%s%s", "daemon", json_string_value(json_object_get(o, "name")),
               ctl_color(w), w, ctl_color_end());
        if (json_is_integer(bl))
            printf("  outbox-backlog %" JSON_INTEGER_FORMAT, json_integer_value(bl));
        printf("\n");
    }
    const char *pw = json_is_true(json_object_get(pgo, "ok")) ? "ok" : "DOWN";
    printf("%-9s %-32s %s%s%s\n", "postgres", "", ctl_color(pw), pw, ctl_color_end());
    json_array_foreach(json_object_get(doc, "sagas"), i, o)
    {
        const char *st = json_string_value(json_object_get(o, "state"));
        printf("%-9s %-32s %s%-12s%s %" JSON_INTEGER_FORMAT "\n", "sagas",
               json_string_value(json_object_get(o, "type")), ctl_color(st), st, ctl_color_end(),
               json_integer_value(json_object_get(o, "count")));
    }
    printf("%-9s %-32s %" JSON_INTEGER_FORMAT "\n", "dlq", BUS_STREAM_DLQ,
           json_integer_value(json_object_get(doc, "deadLetters")));
    json_array_foreach(json_object_get(doc, "problems"), i, o)
    {
        printf("%sproblem%s   %s\n", ctl_color("FAIL"), ctl_color_end(), json_string_value(o));
    }
    const char *w = json_is_true(json_object_get(doc, "healthy")) ? "ok" : "UNHEALTHY";
    printf("status    %s%s%s\n", ctl_color(w), w, ctl_color_end());
}

int
ctl_status(const ctl_cmd *cmd, int argc, char **argv)
{
    status_conf conf = { 0 };
    int rc = ctl_parse(&conf, cmd, argc, argv);
    if (rc >= 0)
        return rc;
    json_t *doc = status_gather(&conf);
    bool healthy = json_is_true(json_object_get(doc, "healthy"));
    if (ctl_out.json)
        ctl_json_doc(doc);
    else {
        status_text(doc);
        json_decref(doc);
    }
    return healthy ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
