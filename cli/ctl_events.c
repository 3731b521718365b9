/* ctl_events.c - `layby-ctl events replay|tail` (and `replay <stream>`, its
 * older form): a stream's messages, each decoded through its Layby-Type.
 *
 *   layby-ctl events replay --stream LAYBY_EVT --since 2025-01-31T09:00:00Z --correlation ID
 *   layby-ctl events tail --subject 'layby.evt.order.>' --json
 *
 * Text: one line per message (sequence, time, subject, type, correlation and
 * the body as compact JSON). --json: one object per line, bus_json_tree():
 * seq, time, subject, headers, type and the body in the proto3 JSON mapping,
 * or bodyBase64 and error for a message that cannot be decoded (an unknown
 * type, corrupt bytes): it is shown as such and the replay goes on.
 *
 * Reading goes through an ordered push consumer (PLATFORM.md): ephemeral, no
 * acks, nothing durable is created, and nats.c recreates it on a gap, so
 * messages arrive in stream order exactly once. replay stops at the stream's
 * last sequence when it started (or --until), so it ends while services keep
 * publishing; tail starts at the next new message and runs until --count or
 * --for. --check (ctl_check.c) re-decides recorded sagas instead of printing. */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "bus_json.h"
#include "bus_topology.h"
#include "codec.h"
#include "ctl_events.h"

typedef struct events_conf {
    ctl_conn conn;
    const char *stream;
    const char *subject;
    const char *since;
    int64_t from_seq;
    const char *until;
    const char *correlation;
    const char *type;
    int64_t limit;
    bool check;
    const char *saga_type;
    int64_t count;
    int64_t for_ms;
} events_conf;

#define OFF(f) offsetof(events_conf, f)
/* clang-format off */
static const cfg_opt replay_opts[] = {
    { "stream",      NULL, CFG_STR,  "LAYBY_EVT", OFF(stream),      0, 0,         "the stream to read (LAYBY_EVT, LAYBY_CMD, LAYBY_DLQ)" },
    { "subject",     NULL, CFG_STR,  "",          OFF(subject),     0, 0,         "only subjects matching this filter (layby.evt.saga.>)" },
    { "since",       NULL, CFG_STR,  "",          OFF(since),       0, 0,         "start at this time (RFC 3339)" },
    { "from-seq",    NULL, CFG_INT,  "0",         OFF(from_seq),    0, INT64_MAX, "start at this stream sequence (0 = the oldest)" },
    { "until",       NULL, CFG_STR,  "",          OFF(until),       0, 0,         "stop after this time (RFC 3339) or stream sequence" },
    { "correlation", NULL, CFG_STR,  "",          OFF(correlation), 0, 0,         "only messages of this flow (Layby-Correlation)" },
    { "type",        NULL, CFG_STR,  "",          OFF(type),        0, 0,         "only this Layby-Type (layby.v1.SagaChanged or SagaChanged)" },
    { "limit",       NULL, CFG_INT,  "0",         OFF(limit),       0, INT64_MAX, "print at most N messages (0 = no limit); --check: at most N sagas" },
    { "check",       NULL, CFG_BOOL, "false",     OFF(check),       0, 0,         "re-decide each recorded saga with this build and report those whose commands differ from those sent" },
    { "saga-type",   NULL, CFG_STR,  "",          OFF(saga_type),   0, 0,         "--check: only sagas of this type" },
};
static const cfg_opt tail_opts[] = {
    { "stream",      NULL, CFG_STR,  "LAYBY_EVT", OFF(stream),      0, 0,         "the stream to follow" },
    { "subject",     NULL, CFG_STR,  "",          OFF(subject),     0, 0,         "only subjects matching this filter" },
    { "correlation", NULL, CFG_STR,  "",          OFF(correlation), 0, 0,         "only messages of this flow (Layby-Correlation)" },
    { "type",        NULL, CFG_STR,  "",          OFF(type),        0, 0,         "only this Layby-Type" },
    { "count",       NULL, CFG_INT,  "0",         OFF(count),       0, INT64_MAX, "stop after N messages (0 = never)" },
    { "for",         NULL, CFG_MS,   "0",         OFF(for_ms),      0, INT64_MAX, "stop after this long (0 = never)" },
};
/* The older `replay <stream>`: the stream is its positional argument. */
static const cfg_opt legacy_opts[] = {
    { "subject",     NULL, CFG_STR,  "",          OFF(subject),     0, 0,         "only subjects matching this filter (layby.evt.saga.>)" },
    { "since",       NULL, CFG_STR,  "",          OFF(since),       0, 0,         "start at this time (RFC 3339)" },
    { "seq",         NULL, CFG_INT,  "0",         OFF(from_seq),    0, INT64_MAX, "start at this stream sequence (0 = the oldest)" },
    { "limit",       NULL, CFG_INT,  "0",         OFF(limit),       0, INT64_MAX, "print at most N messages (0 = no limit)" },
};
/* clang-format on */
const ctl_flags ctl_events_replay_flags = CTL_FLAGS(replay_opts);
const ctl_flags ctl_events_tail_flags = CTL_FLAGS(tail_opts);
const ctl_flags ctl_replay_flags = CTL_FLAGS(legacy_opts);

const bus_topology_stream *
ctl_stream_find(const char *name)
{
    for (size_t i = 0; i < bus_topology_n_streams; i++)
        if (strcmp(bus_topology_streams[i].name, name) == 0)
            return &bus_topology_streams[i];
    return NULL;
}

/* --- reading a range --------------------------------------------------------- */

static lb_status
start_point(jsSubOptions *so, const ctl_range *rg, lb_err *err)
{
    if (rg->from_seq > 0) {
        so->Config.DeliverPolicy = js_DeliverByStartSequence;
        so->Config.OptStartSeq = rg->from_seq;
    } else if (rg->since_ms > 0) {
        if (rg->since_ms > INT64_MAX / 1000000) /* the server takes ns in an int64 */
            return lb_err_set(err, LB_ERR_CONFIG, "the start time is out of range");
        so->Config.DeliverPolicy = js_DeliverByStartTime;
        so->Config.OptStartTime = rg->since_ms * 1000000;
    } else {
        so->Config.DeliverPolicy = js_DeliverAll;
    }
    return LB_OK;
}

/* True when the consumer has nothing to deliver at all (an empty range). */
static bool
nothing_pending(natsSubscription *sub)
{
    jsConsumerInfo *ci = NULL;
    if (natsSubscription_GetConsumerInfo(&ci, sub, NULL, NULL) != NATS_OK)
        return false; /* then the messages (or the timeout) tell */
    bool none = ci->NumPending == 0 && ci->Delivered.Consumer == 0;
    jsConsumerInfo_Destroy(ci);
    return none;
}

/* What a replay needs of a message's JetStream metadata. */
typedef struct msg_meta {
    uint64_t seq, pending;
    int64_t time_ns;
} msg_meta;

/* Reads the metadata from the reply subject, `$JS.ACK.<stream>.<consumer>.
 * <delivered>.<stream seq>.<consumer seq>.<time ns>.<pending>` (the form
 * nats-server 2.9 sends), in place: natsMsg_GetMetaData() allocates the
 * metadata and copies the stream and consumer names for every message, which
 * a replay of millions pays for nothing. Any other form (the longer one with
 * a domain and account hash) goes through nats.c. */
static bool
msg_meta_get(msg_meta *out, natsMsg *m)
{
    const char *r = natsMsg_GetReply(m), *tok[10];
    int n = 0;
    for (const char *p = r; p != NULL && n < 10; n++) {
        tok[n] = p;
        p = strchr(p, '.');
        p = p != NULL ? p + 1 : NULL;
    }
    if (n == 9 && strncmp(r, "$JS.ACK.", 8) == 0) {
        char *end;
        out->seq = strtoull(tok[5], &end, 10);
        bool ok = end > tok[5] && *end == '.';
        out->time_ns = strtoll(tok[7], &end, 10);
        ok = ok && end > tok[7] && *end == '.';
        out->pending = strtoull(tok[8], &end, 10);
        if (ok && end > tok[8] && *end == '\0')
            return true;
    }
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, m) != NATS_OK)
        return false;
    out->seq = meta->Sequence.Stream;
    out->pending = meta->NumPending;
    out->time_ns = meta->Timestamp;
    jsMsgMetaData_Destroy(meta);
    return true;
}

static lb_status
range_loop(natsSubscription *sub, uint64_t last_seq, const ctl_range *rg, ctl_msg_fn fn, void *arg,
           int64_t timeout_ms, lb_err *err)
{
    if (nothing_pending(sub))
        return LB_OK;
    for (;;) {
        natsMsg *m = NULL;
        msg_meta meta;
        natsStatus s = natsSubscription_NextMsg(&m, sub, timeout_ms);
        if (s != NATS_OK)
            return ctl_nats_err(err, s, "waiting for the next message");
        if (!msg_meta_get(&meta, m)) {
            natsMsg_Destroy(m);
            return lb_err_set(err, LB_ERR_BUS, "a message without JetStream metadata");
        }
        uint64_t seq = meta.seq, pending = meta.pending;
        int64_t t = meta.time_ns;
        bool past = (rg->until_seq > 0 && seq > rg->until_seq) ||
                    (rg->until_ms > 0 && t / 1000000 > rg->until_ms);
        bool more = !past && fn(arg, m, seq, t);
        natsMsg_Destroy(m);
        if (!more || seq >= last_seq || pending == 0)
            return LB_OK;
    }
}

lb_status
ctl_range_read(jsCtx *js, const ctl_range *rg, ctl_msg_fn fn, void *arg, int64_t timeout_ms,
               lb_err *err)
{
    jsStreamInfo *si = NULL;
    jsSubOptions so;
    natsSubscription *sub = NULL;
    natsStatus s = js_GetStreamInfo(&si, js, rg->stream, NULL, NULL);
    if (s != NATS_OK)
        return ctl_nats_err(err, s, rg->stream);
    uint64_t last_seq = si->State.Msgs > 0 ? si->State.LastSeq : 0;
    jsStreamInfo_Destroy(si);
    jsSubOptions_Init(&so);
    so.Stream = rg->stream;
    so.Ordered = true;
    lb_status st = start_point(&so, rg, err);
    if (st != LB_OK || last_seq == 0 || rg->from_seq > last_seq)
        return st;
    if ((s = js_SubscribeSync(&sub, js, rg->subject, NULL, &so, NULL)) != NATS_OK)
        return ctl_nats_err(err, s, "ordered consumer");
    /* A big pending limit: replay reads as fast as the server sends. The
     * queue then grows and drains by tens of megabytes, and glibc would hand
     * each drained top of the heap back to the kernel and fault it in again
     * (sysmalloc and page faults were 15 % of a replay's CPU): keep it. */
    natsSubscription_SetPendingLimits(sub, 1 << 20, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_TOP_PAD, 64 << 20);
    st = range_loop(sub, last_seq, rg, fn, arg, timeout_ms, err);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return st;
}

/* --- printing ---------------------------------------------------------------- */

/* Output goes out in large writes: a replay line is built in `out` and
 * written when OUT_FLUSH_AT bytes wait (tail: after every message). */
#define OUT_FLUSH_AT (256 * 1024)

typedef struct printer {
    const events_conf *c;
    bool json;     /* the legacy command always prints JSON */
    bool live;     /* tail: each message out at once */
    codec_buf out; /* lines not yet written */
    lb_status st;  /* LB_OK, or why printing stopped (err) */
    lb_err err;
    int64_t printed, read;
} printer;

static lb_status
out_flush(printer *p)
{
    size_t done = 0;
    while (p->st == LB_OK && done < p->out.len) {
        ssize_t w = write(STDOUT_FILENO, p->out.data + done, p->out.len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            p->st = lb_err_set(&p->err, LB_ERR_INTERNAL, "writing the output: %s",
                               w < 0 ? strerror(errno) : "nothing written");
        else
            done += (size_t)w;
    }
    p->out.len = 0;
    return p->st;
}

/* --type matches the full name or the part after the last dot. */
static bool
type_matches(const char *want, const char *type)
{
    if (want[0] == '\0')
        return true;
    if (type == NULL)
        return false;
    const char *dot = strrchr(type, '.');
    return strcmp(want, type) == 0 || (dot != NULL && strcmp(want, dot + 1) == 0);
}

static bool
header_is(natsMsg *m, const char *key, const char *want)
{
    const char *v = NULL;
    if (want[0] == '\0')
        return true;
    return natsMsgHeader_Get(m, key, &v) == NATS_OK && v != NULL && strcmp(v, want) == 0;
}

/* One line for people: sequence, time, subject, type, correlation, then the
 * body as compact JSON or why it cannot be decoded. */
static lb_status
msg_text(codec_buf *b, natsMsg *m, uint64_t seq, int64_t time_ns)
{
    json_t *o = bus_json_tree(m, seq, time_ns);
    json_t *body = json_object_get(o, "body");
    const char *corr =
        json_string_value(json_object_get(json_object_get(o, "headers"), BUS_H_CORRELATION));
    const char *type = json_string_value(json_object_get(o, "type"));
    const char *time = json_string_value(json_object_get(o, "time"));
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    char *line = NULL;
    int n;
    if (body != NULL)
        n = asprintf(&line, "%" PRIu64 "  %s  %s  %s  %s  %s\n", seq, time ? time : "",
                     natsMsg_GetSubject(m), type ? type : "(no type)", corr && corr[0] ? corr : "-",
                     text ? text : "");
    else
        n = asprintf(&line, "%" PRIu64 "  %s  %s  %s  %s  %sUNDECODABLE%s %s (%d bytes)\n", seq,
                     time ? time : "", natsMsg_GetSubject(m), type ? type : "(no type)",
                     corr && corr[0] ? corr : "-", ctl_color("FAIL"), ctl_color_end(),
                     json_string_value(json_object_get(o, "error")), natsMsg_GetDataLength(m));
    lb_status s = n >= 0 ? codec_buf_add(b, line, (size_t)n) : LB_ERR_NOMEM;
    free(line);
    free(text);
    json_decref(o);
    return s;
}

static bool
print_one(void *arg, natsMsg *m, uint64_t seq, int64_t time_ns)
{
    printer *p = arg;
    const char *type = NULL;
    p->read++;
    natsMsgHeader_Get(m, BUS_H_TYPE, &type);
    if (!type_matches(p->c->type, type) || !header_is(m, BUS_H_CORRELATION, p->c->correlation))
        return true;
    lb_status s =
        p->json ? bus_json_write(&p->out, m, seq, time_ns) : msg_text(&p->out, m, seq, time_ns);
    if (s == LB_OK && p->json)
        s = codec_buf_add(&p->out, "\n", 1);
    if (s != LB_OK) {
        p->st = lb_err_set(&p->err, s, "writing message %" PRIu64 ": out of memory", seq);
        return false;
    }
    p->printed++;
    if ((p->live || p->out.len >= OUT_FLUSH_AT) && out_flush(p) != LB_OK)
        return false;
    if (p->read % 100000 == 0)
        ctl_progress("layby-ctl events: %" PRId64 " read\n", p->read);
    return p->c->limit == 0 || p->printed < p->c->limit;
}

/* --since / --from-seq / --until into a range; -1 to go on, else the exit code. */
static int
range_from_conf(ctl_range *rg, const ctl_cmd *cmd, const events_conf *c)
{
    lb_err err;
    const bus_topology_stream *stream = ctl_stream_find(c->stream);
    if (stream == NULL) {
        char names[256] = "";
        for (size_t i = 0; i < bus_topology_n_streams; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), " %s",
                     bus_topology_streams[i].name);
        return ctl_usage_error(cmd, "unknown stream '%s'; one of:%s", c->stream, names);
    }
    memset(rg, 0, sizeof *rg);
    rg->stream = stream->name;
    rg->subject = c->subject[0] != '\0' ? c->subject : stream->subject;
    rg->from_seq = (uint64_t)c->from_seq;
    if (c->since[0] != '\0' && c->from_seq > 0)
        return ctl_usage_error(cmd, "--since and --from-seq exclude each other");
    if (c->since[0] != '\0') {
        if (lb_time_parse(&rg->since_ms, c->since, &err) != LB_OK)
            return ctl_usage_error(cmd, "--since: %s", err.msg);
        if (rg->since_ms <= 0)
            return ctl_usage_error(cmd, "--since %s is out of range", c->since);
    }
    if (c->until[0] != '\0') {
        char *end = NULL;
        unsigned long long v = strtoull(c->until, &end, 10);
        if (end != NULL && *end == '\0' && v > 0)
            rg->until_seq = v;
        else if (lb_time_parse(&rg->until_ms, c->until, &err) != LB_OK)
            return ctl_usage_error(cmd, "--until: a time (RFC 3339) or a sequence: %s", err.msg);
    }
    return -1;
}

static int
replay_print(const ctl_cmd *cmd, const events_conf *conf, bool json)
{
    ctl_range rg;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    lb_err err;
    printer p = { .c = conf, .json = json };
    int rc = range_from_conf(&rg, cmd, conf);
    if (rc >= 0)
        return rc;
    fflush(stdout); /* nothing yet; the lines go out by write(2) */
    if (ctl_nats_open(&nc, &js, &conf->conn, &err) != LB_OK ||
        ctl_range_read(js, &rg, print_one, &p, conf->conn.timeout_ms, &err) != LB_OK)
        rc = ctl_fail(cmd, &err);
    else
        rc = CTL_EXIT_OK;
    if (out_flush(&p) != LB_OK && rc == CTL_EXIT_OK)
        rc = ctl_fail(cmd, &p.err);
    codec_buf_free(&p.out);
    ctl_nats_close(nc, js);
    ctl_progress("layby-ctl %s: %" PRId64 " message%s (%" PRId64 " read)\n", cmd->name, p.printed,
                 p.printed == 1 ? "" : "s", p.read);
    return rc;
}

int
ctl_events_replay(const ctl_cmd *cmd, int argc, char **argv)
{
    events_conf conf = { 0 };
    int rc = ctl_parse(&conf, cmd, argc, argv);
    if (rc >= 0)
        return rc;
    if (conf.check)
        return ctl_check_run(cmd, &conf.conn, conf.since, conf.correlation, conf.saga_type,
                             conf.limit);
    return replay_print(cmd, &conf, ctl_out.json);
}

int
ctl_replay(const ctl_cmd *cmd, int argc, char **argv)
{
    events_conf conf = { 0 };
    const char *name = NULL;
    int rc = ctl_positional(&name, cmd, "stream", &argc, argv);
    if (rc < 0)
        rc = ctl_parse(&conf, cmd, argc, argv);
    if (rc >= 0)
        return rc;
    conf.stream = name;
    conf.until = conf.correlation = conf.type = "";
    return replay_print(cmd, &conf, true);
}

/* --- tail -------------------------------------------------------------------- */

static lb_status
tail_run(jsCtx *js, const ctl_range *rg, printer *p, lb_err *err)
{
    jsSubOptions so;
    natsSubscription *sub = NULL;
    jsSubOptions_Init(&so);
    so.Stream = rg->stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverNew;
    natsStatus s = js_SubscribeSync(&sub, js, rg->subject, NULL, &so, NULL);
    if (s != NATS_OK)
        return ctl_nats_err(err, s, "ordered consumer");
    /* Tells a waiting caller (a test, a script) that nothing published from
     * now on is missed. */
    ctl_progress("layby-ctl events tail: following %s %s\n", rg->stream, rg->subject);
    int64_t end = p->c->for_ms > 0 ? lb_mono_us() / 1000 + p->c->for_ms : INT64_MAX;
    lb_status st = LB_OK;
    while (st == LB_OK && (p->c->count == 0 || p->printed < p->c->count)) {
        int64_t left = end - lb_mono_us() / 1000;
        if (left <= 0)
            break;
        natsMsg *m = NULL;
        msg_meta meta;
        s = natsSubscription_NextMsg(&m, sub, left < 1000 ? left : 1000);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            st = ctl_nats_err(err, s, "waiting for the next message");
            break;
        }
        bool more = true;
        if (msg_meta_get(&meta, m))
            more = print_one(p, m, meta.seq, meta.time_ns);
        natsMsg_Destroy(m);
        if (!more && p->st != LB_OK) {
            *err = p->err;
            st = p->st;
        }
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return st;
}

int
ctl_events_tail(const ctl_cmd *cmd, int argc, char **argv)
{
    events_conf conf = { 0 };
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    lb_err err;
    ctl_range rg;
    int rc = ctl_parse(&conf, cmd, argc, argv);
    if (rc >= 0)
        return rc;
    conf.since = conf.until = "";
    if ((rc = range_from_conf(&rg, cmd, &conf)) >= 0)
        return rc;
    printer p = { .c = &conf, .json = ctl_out.json, .live = true };
    fflush(stdout);
    if (ctl_nats_open(&nc, &js, &conf.conn, &err) != LB_OK || tail_run(js, &rg, &p, &err) != LB_OK)
        rc = ctl_fail(cmd, &err);
    else
        rc = CTL_EXIT_OK;
    codec_buf_free(&p.out);
    ctl_nats_close(nc, js);
    return rc;
}
