/* ctl_dlq.c - `layby-ctl dlq list|show|redrive|purge`: what the services gave
 * up on. list and show read LAYBY_DLQ by sequence (direct gets; no consumer
 * is created, so reading changes nothing): list prints each message's
 * subject, time and the Layby-Dlq-* headers the engine adds (bus.h
 * BUS_H_DLQ_*), or with --json one object a line (bus_json_tree()); show one
 * message as JSON with its decoded body. redrive republishes dead letters to
 * their original subjects with their original headers and then deletes them;
 * purge deletes them. Both take one <seq> or a filter (--subject, matched
 * against the original subject, --consumer, --type, --correlation), and a
 * filter-less bulk operation must say --all. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "bus_dlq.h"
#include "bus_json.h"
#include "bus_topology.h"
#include "ctl.h"

typedef struct dlq_conf {
    ctl_conn conn;
    int64_t limit;
    int64_t from_seq;
    const char *subject;
    const char *consumer;
    const char *type;
    const char *correlation;
    bool all;
} dlq_conf;

/* clang-format off */
#define DLQ_FILTER_ROWS \
    { "subject",     NULL, CFG_STR, "", offsetof(dlq_conf, subject),     0, 0, "only dead letters whose original subject matches this filter" }, \
    { "consumer",    NULL, CFG_STR, "", offsetof(dlq_conf, consumer),    0, 0, "only those this durable gave up on (Layby-Dlq-Consumer: LAYBY_CMD/catalog)" },        \
    { "type",        NULL, CFG_STR, "", offsetof(dlq_conf, type),        0, 0, "only this Layby-Type" },                                         \
    { "correlation", NULL, CFG_STR, "", offsetof(dlq_conf, correlation), 0, 0, "only this flow (Layby-Correlation)" }
static const cfg_opt dlq_opts[] = {
    { "limit",    NULL, CFG_INT, "100", offsetof(dlq_conf, limit),    1, 1000000,   "print at most N messages" },
    { "from-seq", NULL, CFG_INT, "0",   offsetof(dlq_conf, from_seq), 0, INT64_MAX, "start at this stream sequence (0 = the oldest)" },
    DLQ_FILTER_ROWS,
};
static const cfg_opt dlq_bulk_opts[] = {
    DLQ_FILTER_ROWS,
    { "all",      NULL, CFG_BOOL, "false", offsetof(dlq_conf, all), 0, 0, "every dead letter (required without <seq> or a filter)" },
};

/* Headers worth showing besides the Layby-Dlq-* ones. */
static const char *const dlq_extra_headers[] = { BUS_H_TYPE, BUS_H_MSG_ID, BUS_H_CORRELATION };
/* clang-format on */
const ctl_flags ctl_dlq_list_flags = CTL_FLAGS(dlq_opts);
const ctl_flags ctl_dlq_filter_flags = CTL_FLAGS(dlq_bulk_opts);

static bus_dlq_filter
dlq_filter(const dlq_conf *c)
{
    return (bus_dlq_filter){ c->subject, c->consumer, c->type, c->correlation };
}

static void
print_header(natsMsg *m, const char *key)
{
    const char *v = NULL;
    if (natsMsgHeader_Get(m, key, &v) == NATS_OK && v != NULL)
        printf("    %-22s %s\n", key, v);
}

static void
print_msg(natsMsg *m, uint64_t seq)
{
    char when[32];
    const char **keys = NULL;
    int n = 0;

    lb_time_format(when, sizeof when, natsMsg_GetTime(m) / 1000000);
    printf("seq %" PRIu64 "  %s  %s  %d bytes\n", seq, when, natsMsg_GetSubject(m),
           natsMsg_GetDataLength(m));
    if (natsMsgHeader_Keys(m, &keys, &n) == NATS_OK) {
        for (int i = 0; i < n; i++)
            if (strncmp(keys[i], "Layby-Dlq-", 10) == 0)
                print_header(m, keys[i]);
        free((void *)keys);
    }
    for (size_t i = 0; i < LB_COUNTOF(dlq_extra_headers); i++)
        print_header(m, dlq_extra_headers[i]);
}

static lb_status
list_one(jsCtx *js, natsMsg *m, uint64_t seq, void *arg, lb_err *err)
{
    (void)js;
    (void)arg;
    (void)err;
    if (ctl_out.json)
        ctl_json_line(bus_json_tree(m, seq, natsMsg_GetTime(m)));
    else
        print_msg(m, seq);
    return LB_OK;
}

/* Calls fn for each dead letter from c->from_seq that passes the filter, at
 * most c->limit of them. */
static lb_status
dlq_walk(jsCtx *js, const dlq_conf *c, bus_dlq_fn fn, int64_t *shown, lb_err *err)
{
    uint64_t msgs = 0, first = 0, last = 0, next = 0;
    if (fn == list_one && !ctl_out.json) {
        lb_status s = bus_dlq_state(&msgs, &first, &last, js, err);
        if (s != LB_OK)
            return s;
        printf("%s: %" PRIu64 " messages\n", BUS_STREAM_DLQ, msgs);
    }
    bus_dlq_filter f = dlq_filter(c);
    bus_dlq_span span = { .from_seq = (uint64_t)c->from_seq, .items = c->limit };
    return bus_dlq_walk(js, &f, span, fn, NULL, shown, &next, err);
}

int
ctl_dlq_list(const ctl_cmd *cmd, int argc, char **argv)
{
    dlq_conf conf = { 0 };
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    int64_t shown = 0;
    lb_err err;
    int rc = ctl_parse(&conf, cmd, argc, argv);
    if (rc >= 0)
        return rc;
    if (ctl_nats_open(&nc, &js, &conf.conn, &err) != LB_OK ||
        dlq_walk(js, &conf, list_one, &shown, &err) != LB_OK)
        rc = ctl_fail(cmd, &err);
    else
        rc = CTL_EXIT_OK;
    ctl_nats_close(nc, js);
    return rc;
}

/* --- dlq show | redrive | purge ------------------------------------------ */

int
ctl_dlq_show(const ctl_cmd *cmd, int argc, char **argv)
{
    struct {
        ctl_conn conn;
    } conf = { 0 };
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsMsg *m = NULL;
    uint64_t seq = 0;
    const char *text = NULL;
    lb_err err;
    int rc = ctl_positional(&text, cmd, "seq", &argc, argv);
    if (rc < 0)
        rc = ctl_parse(&conf, cmd, argc, argv);
    if (rc < 0)
        rc = ctl_u64_arg(&seq, cmd, "seq", text);
    if (rc < 0 && ctl_nats_open(&nc, &js, &conf.conn, &err) != LB_OK)
        rc = ctl_fail(cmd, &err);
    if (rc >= 0)
        return rc;
    if (bus_dlq_get(&m, js, seq, &err) != LB_OK) {
        rc = ctl_fail(cmd, &err);
    } else {
        ctl_msg_print(m, seq, natsMsg_GetTime(m), JSON_INDENT(2));
        rc = CTL_EXIT_OK;
    }
    natsMsg_Destroy(m);
    ctl_nats_close(nc, js);
    return rc;
}

/* The original message again: its subject, body and headers without the
 * Layby-Dlq-* ones, under its own Nats-Msg-Id (Layby-Dlq-Original-Id: a dead
 * letter has an id of its own), so the services still see the message they
 * refused. One that came without an id keeps the dead letter's. */
static lb_status
dlq_original(natsMsg **out, natsMsg *dead, lb_err *err)
{
    const char *subject = NULL, **keys = NULL;
    int n = 0;
    natsStatus s = natsMsgHeader_Get(dead, BUS_H_DLQ_SUBJECT, &subject);
    if (s != NATS_OK || subject == NULL || subject[0] == '\0')
        return lb_err_set(err, LB_ERR_INVALID, "no %s header: not a dead letter",
                          BUS_H_DLQ_SUBJECT);
    if ((s = natsMsg_Create(out, subject, NULL, natsMsg_GetData(dead),
                            natsMsg_GetDataLength(dead))) != NATS_OK)
        return ctl_nats_err(err, s, "message");
    if (natsMsgHeader_Keys(dead, &keys, &n) != NATS_OK)
        return LB_OK;
    for (int i = 0; i < n; i++) {
        const char **vals = NULL;
        int nv = 0;
        if (strncmp(keys[i], "Layby-Dlq-", 10) == 0 ||
            natsMsgHeader_Values(dead, keys[i], &vals, &nv) != NATS_OK)
            continue;
        for (int k = 0; k < nv; k++)
            natsMsgHeader_Add(*out, keys[i], vals[k]);
        free((void *)vals);
    }
    free((void *)keys);
    const char *orig = NULL;
    if (natsMsgHeader_Get(dead, BUS_H_DLQ_ORIGINAL_ID, &orig) == NATS_OK && orig != NULL &&
        orig[0] != '\0')
        natsMsgHeader_Set(*out, BUS_H_MSG_ID, orig);
    return LB_OK;
}

/* Publishes the original; a duplicate ack means JetStream dropped it (its
 * Nats-Msg-Id is still in the stream's window), so the dead letter stays. */
static lb_status
dlq_republish(jsCtx *js, natsMsg *dead, uint64_t seq, lb_err *err)
{
    natsMsg *m = NULL;
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    lb_status st = dlq_original(&m, dead, err);
    if (st != LB_OK)
        return st;
    natsStatus s = js_PublishMsg(&ack, js, m, NULL, &jerr);
    if (s != NATS_OK)
        st = ctl_nats_err(err, s, natsMsg_GetSubject(m));
    else if (ack->Duplicate)
        st = lb_err_set(err, LB_ERR_CONFLICT,
                        "JetStream dropped the republish as a duplicate of %s seq %" PRIu64
                        " (its Nats-Msg-Id is still inside the duplicate window): message %" PRIu64
                        " kept in %s, retry after the window",
                        ack->Stream, ack->Sequence, seq, BUS_STREAM_DLQ);
    else if (!ctl_out.json)
        printf("republished %s message %" PRIu64 " to %s as %s seq %" PRIu64 "\n", BUS_STREAM_DLQ,
               seq, natsMsg_GetSubject(m), ack->Stream, ack->Sequence);
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(m);
    return st;
}

static lb_status
dlq_delete(jsCtx *js, uint64_t seq, const char *what, lb_err *err)
{
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteMsg(js, BUS_STREAM_DLQ, seq, NULL, &jerr);
    if (s != NATS_OK)
        return ctl_nats_err(err, s, what);
    if (!ctl_out.json)
        printf("deleted message %" PRIu64 " from %s\n", seq, BUS_STREAM_DLQ);
    return LB_OK;
}

static lb_status
redrive_one(jsCtx *js, natsMsg *dead, uint64_t seq, void *arg, lb_err *err)
{
    (void)arg;
    lb_status st = dlq_republish(js, dead, seq, err);
    if (st == LB_OK)
        st = dlq_delete(js, seq, "republished, but deleting it from " BUS_STREAM_DLQ, err);
    if (st == LB_OK && ctl_out.json)
        ctl_json_line(json_pack("{s:s,s:I}", "redriven", BUS_STREAM_DLQ, (json_int_t)seq));
    return st;
}

static lb_status
purge_one(jsCtx *js, natsMsg *dead, uint64_t seq, void *arg, lb_err *err)
{
    (void)arg;
    (void)dead;
    lb_status st = dlq_delete(js, seq, "delete from " BUS_STREAM_DLQ, err);
    if (st == LB_OK && ctl_out.json)
        ctl_json_line(json_pack("{s:s,s:I}", "purged", BUS_STREAM_DLQ, (json_int_t)seq));
    return st;
}

/* `dlq redrive|purge [<seq>] [filter flags | --all]`: fn on one message or
 * on every one that passes the filter. */
static int
dlq_bulk(const ctl_cmd *cmd, int argc, char **argv, bus_dlq_fn fn)
{
    dlq_conf conf = { 0 };
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsMsg *m = NULL;
    uint64_t seq = 0;
    int64_t done = 0;
    lb_err err;
    const char *text = NULL;
    bool has_seq = argc > 1 && strncmp(argv[1], "--", 2) != 0;
    int rc = has_seq ? ctl_positional(&text, cmd, "seq", &argc, argv) : -1;
    if (rc < 0)
        rc = ctl_parse(&conf, cmd, argc, argv);
    if (rc < 0 && text != NULL)
        rc = ctl_u64_arg(&seq, cmd, "seq", text);
    if (rc >= 0)
        return rc;
    bool filtered = conf.subject[0] || conf.consumer[0] || conf.type[0] || conf.correlation[0];
    if (seq == 0 && !filtered && !conf.all)
        return ctl_usage_error(cmd, "say which: <seq>, a filter (--subject --consumer --type "
                                    "--correlation) or --all");
    if (seq != 0 && (filtered || conf.all))
        return ctl_usage_error(cmd, "<seq> and a filter exclude each other");
    conf.limit = INT64_MAX;
    lb_status st = ctl_nats_open(&nc, &js, &conf.conn, &err);
    if (st == LB_OK && seq != 0) {
        if ((st = bus_dlq_get(&m, js, seq, &err)) == LB_OK)
            st = fn(js, m, seq, NULL, &err);
        natsMsg_Destroy(m);
        done = st == LB_OK;
    } else if (st == LB_OK) {
        st = dlq_walk(js, &conf, fn, &done, &err);
    }
    ctl_nats_close(nc, js);
    ctl_progress("layby-ctl %s: %" PRId64 " dead letter%s\n", cmd->name, done,
                 done == 1 ? "" : "s");
    return st == LB_OK ? CTL_EXIT_OK : ctl_fail(cmd, &err);
}

int
ctl_dlq_redrive(const ctl_cmd *cmd, int argc, char **argv)
{
    return dlq_bulk(cmd, argc, argv, redrive_one);
}

int
ctl_dlq_purge(const ctl_cmd *cmd, int argc, char **argv)
{
    return dlq_bulk(cmd, argc, argv, purge_one);
}
