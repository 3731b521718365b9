/* ctl_replay.c - `layby-ctl replay <stream>`: prints a stream's messages from
 * a start point, one JSON object per line, bodies decoded by their Layby-Type
 * (ctl_msg_json()). This is how an operator follows a flow after the fact:
 *   layby-ctl replay LAYBY_EVT --subject 'layby.evt.saga.>' --since 2025-01-31T09:00:00Z
 *
 * It reads through an ordered push consumer (PLATFORM.md): ephemeral, no acks,
 * nothing durable is created, and nats.c recreates it on a gap, so messages
 * arrive in stream order exactly once. It stops at the stream's last
 * sequence when it started (or when the consumer has nothing pending), so
 * it ends even while services keep publishing. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "bus_topology.h"
#include "ctl.h"

typedef struct replay_conf {
    ctl_conn conn;
    const char *subject;
    const char *since;
    int64_t seq;
    int64_t limit;
} replay_conf;

/* clang-format off */
static const cfg_opt replay_opts[] = {
    { "subject", NULL, CFG_STR, "",  offsetof(replay_conf, subject), 0, 0,         "only subjects matching this filter (layby.evt.saga.>)" },
    { "since",   NULL, CFG_STR, "",  offsetof(replay_conf, since),   0, 0,         "start at this time (RFC 3339)" },
    { "seq",     NULL, CFG_INT, "0", offsetof(replay_conf, seq),     0, INT64_MAX, "start at this stream sequence (0 = the oldest)" },
    { "limit",   NULL, CFG_INT, "0", offsetof(replay_conf, limit),   0, INT64_MAX, "print at most N messages (0 = no limit)" },
};
/* clang-format on */

/* Where the stream is now, and how far to read. */
typedef struct replay_run {
    const char *stream;
    uint64_t last_seq; /* the stream's last sequence when we started */
    int64_t printed;
} replay_run;

static const bus_topology_stream *
stream_find(const char *name)
{
    for (size_t i = 0; i < bus_topology_n_streams; i++)
        if (strcmp(bus_topology_streams[i].name, name) == 0)
            return &bus_topology_streams[i];
    return NULL;
}

/* Fills the consumer's start point from --seq / --since. */
static lb_status
start_point(jsSubOptions *so, const replay_conf *c, lb_err *err)
{
    if (c->since[0] != '\0' && c->seq > 0)
        return lb_err_set(err, LB_ERR_CONFIG, "--since and --seq exclude each other");
    if (c->seq > 0) {
        so->Config.DeliverPolicy = js_DeliverByStartSequence;
        so->Config.OptStartSeq = (uint64_t)c->seq;
    } else if (c->since[0] != '\0') {
        int64_t ms = 0;
        lb_status s = ctl_time_parse(&ms, c->since, err);
        if (s != LB_OK)
            return s;
        if (ms <= 0 || ms > INT64_MAX / 1000000) /* the server takes ns in an int64 */
            return lb_err_set(err, LB_ERR_CONFIG, "--since %s is out of range", c->since);
        so->Config.DeliverPolicy = js_DeliverByStartTime;
        so->Config.OptStartTime = ms * 1000000;
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
    jsErrCode jerr = 0;
    if (natsSubscription_GetConsumerInfo(&ci, sub, NULL, &jerr) != NATS_OK)
        return false; /* then the messages (or the timeout) tell */
    bool none = ci->NumPending == 0 && ci->Delivered.Consumer == 0;
    jsConsumerInfo_Destroy(ci);
    return none;
}

/* Prints messages until the end seen at start, the limit, or a timeout. */
static lb_status
replay_loop(natsSubscription *sub, replay_run *run, const replay_conf *c, lb_err *err)
{
    if (nothing_pending(sub))
        return LB_OK;
    for (;;) {
        natsMsg *m = NULL;
        jsMsgMetaData *meta = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, sub, c->conn.timeout_ms);
        if (s != NATS_OK)
            return ctl_nats_err(err, s, "waiting for the next message");
        if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
            natsMsg_Destroy(m);
            return lb_err_set(err, LB_ERR_BUS, "a message without JetStream metadata");
        }
        uint64_t seq = meta->Sequence.Stream, pending = meta->NumPending;
        ctl_msg_print(m, seq, meta->Timestamp, JSON_COMPACT);
        jsMsgMetaData_Destroy(meta);
        natsMsg_Destroy(m);
        run->printed++;
        if (seq >= run->last_seq || pending == 0 || (c->limit > 0 && run->printed >= c->limit))
            return LB_OK;
    }
}

static lb_status
replay_stream(jsCtx *js, replay_run *run, const replay_conf *c, const char *filter, lb_err *err)
{
    jsStreamInfo *si = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    natsSubscription *sub = NULL;
    natsStatus s = js_GetStreamInfo(&si, js, run->stream, NULL, &jerr);
    if (s != NATS_OK)
        return ctl_nats_err(err, s, run->stream);
    run->last_seq = si->State.Msgs > 0 ? si->State.LastSeq : 0;
    jsStreamInfo_Destroy(si);
    jsSubOptions_Init(&so);
    so.Stream = run->stream;
    so.Ordered = true;
    lb_status st = start_point(&so, c, err);
    if (st != LB_OK || run->last_seq == 0 || (c->seq > 0 && (uint64_t)c->seq > run->last_seq))
        return st;
    if ((s = js_SubscribeSync(&sub, js, filter, NULL, &so, &jerr)) != NATS_OK)
        return ctl_nats_err(err, s, "ordered consumer");
    st = replay_loop(sub, run, c, err);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return st;
}

int
ctl_replay(const ctl_cmd *cmd, int argc, char **argv)
{
    replay_conf conf = { 0 };
    const char *name = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    lb_err err;
    int rc = ctl_positional(&name, cmd, "stream", &argc, argv);
    if (rc < 0)
        rc = ctl_args(&conf, cmd, replay_opts, LB_COUNTOF(replay_opts), argc, argv);
    if (rc >= 0)
        return rc;
    const bus_topology_stream *st = stream_find(name);
    if (st == NULL) {
        fprintf(stderr, "layby-ctl %s: unknown stream '%s'; one of:", cmd->name, name);
        for (size_t i = 0; i < bus_topology_n_streams; i++)
            fprintf(stderr, " %s", bus_topology_streams[i].name);
        fprintf(stderr, "\n");
        return CTL_EXIT_USAGE;
    }
    replay_run run = { .stream = st->name };
    const char *filter = conf.subject[0] != '\0' ? conf.subject : st->subject;
    if (ctl_nats_open(&nc, &js, &conf.conn, &err) != LB_OK ||
        replay_stream(js, &run, &conf, filter, &err) != LB_OK)
        rc = ctl_fail(cmd, &err);
    else
        rc = CTL_EXIT_OK;
    ctl_nats_close(nc, js);
    fprintf(stderr, "layby-ctl %s: %" PRId64 " message%s\n", cmd->name, run.printed,
            run.printed == 1 ? "" : "s");
    return rc;
}
