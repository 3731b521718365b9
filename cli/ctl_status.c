/* ctl_status.c - `layby-ctl status`: the whole shop in one look, and a
 * non-zero exit when something needs an operator.
 *
 * It gathers one JSON document (what --json prints) and renders the text form
 * from it, so both always say the same:
 *   - NATS and PostgreSQL reachable;
 *   - each stream of engine/bus_topology.c: messages and bytes;
 *   - each durable: pending, ack-pending, redelivered;
 *   - each daemon of the service table: reachable, and its outbox backlog
 *     (the layby_outbox_backlog_rows gauge of its /metrics: each service's
 *     outbox lives in its own schema, which the ctl's role cannot read);
 *   - sagas by type and state (schema saga);
 *   - dead letters (LAYBY_DLQ's messages).
 * Unhealthy (exit 1): a server unreachable, a stream or durable missing, a
 * daemon not answering (--daemons=false skips them), a STUCK saga, a dead
 * letter. Each reason is listed under "problems". */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "bus_topology.h"
#include "ctl.h"
#include "svc_table.h"

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

#define METRICS_MAX (1024 * 1024)

static void
problem(json_t *doc, const char *fmt, const char *a, const char *b)
{
    char text[1024];
    snprintf(text, sizeof text, fmt, a, b ? b : "");
    json_array_append_new(json_object_get(doc, "problems"), json_string(text));
}

static json_t *
jint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

static void
streams_get(json_t *doc, jsCtx *js)
{
    json_t *arr = json_object_get(doc, "streams");
    for (size_t i = 0; i < bus_topology_n_streams; i++) {
        const char *name = bus_topology_streams[i].name;
        jsStreamInfo *si = NULL;
        json_t *o = json_pack("{s:s}", "name", name);
        if (js_GetStreamInfo(&si, js, name, NULL, NULL) != NATS_OK) {
            json_object_set_new(o, "ok", json_false());
            problem(doc, "stream %s is missing (layby-ctl bus setup)%s", name, NULL);
        } else {
            json_object_set_new(o, "ok", json_true());
            json_object_set_new(o, "messages", jint(si->State.Msgs));
            json_object_set_new(o, "bytes", jint(si->State.Bytes));
            json_object_set_new(o, "lastSeq", jint(si->State.LastSeq));
            if (strcmp(name, BUS_STREAM_DLQ) == 0) {
                json_object_set_new(doc, "deadLetters", jint(si->State.Msgs));
                char n[24];
                snprintf(n, sizeof n, "%" PRIu64, si->State.Msgs);
                if (si->State.Msgs > 0)
                    problem(doc, "%s dead letter(s) in " BUS_STREAM_DLQ " (layby-ctl dlq list)%s",
                            n, NULL);
            }
            jsStreamInfo_Destroy(si);
        }
        json_array_append_new(arr, o);
    }
}

static void
durables_get(json_t *doc, jsCtx *js)
{
    json_t *arr = json_object_get(doc, "durables");
    for (size_t i = 0; i < bus_topology_n_consumers; i++) {
        const bus_topology_consumer *c = &bus_topology_consumers[i];
        jsConsumerInfo *ci = NULL;
        json_t *o = json_pack("{s:s,s:s}", "stream", c->stream, "name", c->durable);
        if (js_GetConsumerInfo(&ci, js, c->stream, c->durable, NULL, NULL) != NATS_OK) {
            json_object_set_new(o, "ok", json_false());
            problem(doc, "durable %s/%s is missing (layby-ctl bus setup)", c->stream, c->durable);
        } else {
            json_object_set_new(o, "ok", json_true());
            json_object_set_new(o, "pending", jint(ci->NumPending));
            json_object_set_new(o, "ackPending", json_integer(ci->NumAckPending));
            json_object_set_new(o, "redelivered", json_integer(ci->NumRedelivered));
            jsConsumerInfo_Destroy(ci);
        }
        json_array_append_new(arr, o);
    }
}

typedef struct body_buf {
    char *p;
    size_t len;
} body_buf;

static size_t
body_add(char *data, size_t size, size_t n, void *arg)
{
    body_buf *b = arg;
    size_t k = size * n;
    if (b->len + k > METRICS_MAX)
        return 0;
    char *p = realloc(b->p, b->len + k + 1);
    if (p == NULL)
        return 0;
    memcpy(p + b->len, data, k);
    b->p = p;
    b->len += k;
    p[b->len] = '\0';
    return k;
}

/* Sums a Prometheus series over its labels; -1 when absent. */
static double
series_sum(const char *text, const char *series)
{
    double sum = -1;
    size_t n = strlen(series);
    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (strncmp(p, series, n) != 0 || (p[n] != '{' && p[n] != ' '))
            continue;
        const char *v = strchr(p, ' ');
        const char *eol = strchr(p, '\n');
        if (v != NULL && (eol == NULL || v < eol))
            sum = (sum < 0 ? 0 : sum) + strtod(v + 1, NULL);
    }
    return sum;
}

static void
daemon_get(json_t *doc, const status_conf *c, const svc_table_daemon *d, CURL *curl)
{
    const char *port_s = getenv(d->port_env);
    int port = port_s != NULL && port_s[0] != '\0' ? atoi(port_s) : d->port_default;
    char url[256];
    body_buf b = { 0 };
    json_t *o = json_pack("{s:s,s:i}", "name", d->binary, "port", port);
    snprintf(url, sizeof url, "http://%s:%d/metrics", c->metrics_host, port);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, body_add);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)c->conn.timeout_ms);
    long code = 0;
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK || code != 200) {
        json_object_set_new(o, "ok", json_false());
        json_object_set_new(
            o, "error",
            json_string(rc != CURLE_OK ? curl_easy_strerror(rc) : "metrics did not answer 200"));
        problem(doc, "daemon %s does not answer on %s", d->binary, url);
    } else {
        double backlog = series_sum(b.p ? b.p : "", "layby_outbox_backlog_rows");
        json_object_set_new(o, "ok", json_true());
        json_object_set_new(o, "outboxBacklog",
                            backlog < 0 ? json_null() : json_integer((json_int_t)backlog));
    }
    free(b.p);
    json_array_append_new(json_object_get(doc, "daemons"), o);
}

static void
daemons_get(json_t *doc, const status_conf *c)
{
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        problem(doc, "libcurl: %s%s", "cannot start", NULL);
        return;
    }
    for (size_t i = 0; i < svc_table_n_daemons; i++)
        daemon_get(doc, c, &svc_table_daemons[i], curl);
    curl_easy_cleanup(curl);
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
        streams_get(doc, js);
        durables_get(doc, js);
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
