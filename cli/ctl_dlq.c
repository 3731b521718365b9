/* ctl_dlq.c - `layby-ctl dlq list`: what the services gave up on. Reads
 * LAYBY_DLQ by sequence (direct gets; no consumer is created, so listing
 * changes nothing) and prints each message's subject, time and the
 * Layby-Dlq-* headers the engine adds (bus.h BUS_H_DLQ_*). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "ctl.h"

typedef struct dlq_conf {
    ctl_conn conn;
    int64_t limit;
    int64_t from_seq;
} dlq_conf;

/* clang-format off */
static const cfg_opt dlq_opts[] = {
    { "limit",    NULL, CFG_INT, "100", offsetof(dlq_conf, limit),    1, 1000000,   "print at most N messages" },
    { "from-seq", NULL, CFG_INT, "0",   offsetof(dlq_conf, from_seq), 0, INT64_MAX, "start at this stream sequence (0 = the oldest)" },
};

/* Headers worth showing besides the Layby-Dlq-* ones. */
static const char *const dlq_extra_headers[] = { BUS_H_TYPE, BUS_H_MSG_ID, BUS_H_CORRELATION };
/* clang-format on */

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
dlq_walk(jsCtx *js, const dlq_conf *c, int64_t *shown, lb_err *err)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, js, BUS_STREAM_DLQ, NULL, &jerr);
    if (s != NATS_OK)
        return ctl_nats_err(err, s, "stream " BUS_STREAM_DLQ);
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq, msgs = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    if ((uint64_t)c->from_seq > first)
        first = (uint64_t)c->from_seq;
    printf("%s: %" PRIu64 " messages\n", BUS_STREAM_DLQ, msgs);
    for (uint64_t seq = first; msgs > 0 && seq <= last && *shown < c->limit; seq++) {
        natsMsg *m = NULL;
        s = js_GetMsg(&m, js, BUS_STREAM_DLQ, seq, NULL, &jerr);
        if (s == NATS_NOT_FOUND)
            continue; /* deleted, or aged out while we walk */
        if (s != NATS_OK)
            return ctl_nats_err(err, s, "read " BUS_STREAM_DLQ);
        print_msg(m, seq);
        natsMsg_Destroy(m);
        (*shown)++;
    }
    return LB_OK;
}

int
ctl_dlq_list(const ctl_cmd *cmd, int argc, char **argv)
{
    dlq_conf conf = { 0 };
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    int64_t shown = 0;
    lb_err err;
    int rc = ctl_args(&conf, cmd, dlq_opts, LB_COUNTOF(dlq_opts), argc, argv);
    if (rc >= 0)
        return rc;
    if (ctl_nats_open(&nc, &js, &conf.conn, &err) != LB_OK ||
        dlq_walk(js, &conf, &shown, &err) != LB_OK)
        rc = ctl_fail(cmd, &err);
    else
        rc = CTL_EXIT_OK;
    ctl_nats_close(nc, js);
    return rc;
}
