/* bench_replay.c - `layby-ctl events replay --json` beside the raw ordered
 * read of the same messages, in one run (issue 21: at least 0.5x).
 *
 * Records --count SagaChanged events (the shop's most common event, every
 * field set) on layby.evt.bench.replay in LAYBY_EVT (a subject no daemon
 * reads) by async publish, then reads them twice from their first sequence:
 *   raw   an ordered push consumer counting messages, nothing decoded (what
 *         a replay cannot beat);
 *   json  the real tool, LAYBY_BENCH_CTL (default build/release/layby-ctl)
 *         `events replay --json --subject layby.evt.bench.replay --from-seq N`,
 *         stdout to /dev/null: every message decoded through its Layby-Type
 *         and written as a JSON line.
 * Prints one line: replay count=... raw_per_s=... json_per_s=... ratio=...
 * and purges the subject afterwards. */
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "layby/v1/saga.pb-c.h"

#define SUBJ "layby.evt.bench.replay"

extern char **environ;

static lb_status
record(bus *b, int64_t count, uint64_t *first, lb_err *err)
{
    Layby__V1__SagaChanged ev = LAYBY__V1__SAGA_CHANGED__INIT;
    char id[ID_STR_LEN], msgid[ID_STR_LEN];
    uint8_t buf[512];
    ev.saga_id = id;
    ev.type = "order_place";
    ev.version = 1;
    ev.status = "RUNNING";
    ev.previous = "RUNNING";
    ev.step_name = "reserve";
    ev.code = "out_of_stock";
    ev.reason = "catalog: not enough units of 0190f0c2-7a1e-7b3c-9d4e-5f6a7b8c9d0e";
    ev.actor = "0190f0c2-0000-7000-8000-000000000001 USER";
    jsPubAck *ack = NULL;
    for (int64_t i = 0; i < count; i++) {
        id_new(id);
        id_new(msgid);
        ev.step = (uint32_t)(i % 19);
        size_t n = protobuf_c_message_pack(&ev.base, buf);
        natsMsg *m = NULL;
        natsStatus s = natsMsg_Create(&m, SUBJ, NULL, (const char *)buf, (int)n);
        if (s == NATS_OK) {
            natsMsgHeader_Set(m, BUS_H_MSG_ID, msgid);
            natsMsgHeader_Set(m, BUS_H_TYPE, layby__v1__saga_changed__descriptor.name);
            natsMsgHeader_Set(m, BUS_H_CORRELATION, id);
            /* the first one synchronously: its sequence is where reading starts */
            s = i == 0 ? js_PublishMsg(&ack, bus_js(b), m, NULL, NULL)
                       : js_PublishMsgAsync(bus_js(b), &m, NULL);
        }
        natsMsg_Destroy(m);
        if (s != NATS_OK)
            return lb_err_set(err, LB_ERR_BUS, "publish: %s", natsStatus_GetText(s));
        if (i == 0) {
            *first = ack->Sequence;
            jsPubAck_Destroy(ack);
        }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 120000;
    natsStatus s = js_PublishAsyncComplete(bus_js(b), &po);
    return s == NATS_OK ? LB_OK : lb_err_set(err, LB_ERR_BUS, "acks: %s", natsStatus_GetText(s));
}

/* Reads count messages from first through an ordered consumer; seconds. */
static double
read_raw(bus *b, uint64_t first, int64_t count)
{
    jsSubOptions so;
    natsSubscription *sub = NULL;
    jsSubOptions_Init(&so);
    so.Stream = "LAYBY_EVT";
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = first;
    int64_t t0 = lb_mono_us(), got = 0;
    if (js_SubscribeSync(&sub, bus_js(b), SUBJ, NULL, &so, NULL) != NATS_OK)
        return -1;
    natsSubscription_SetPendingLimits(sub, 1 << 20, 256 << 20);
    while (got < count) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, 10000) != NATS_OK)
            break;
        natsMsg_Destroy(m);
        got++;
    }
    double secs = (double)(lb_mono_us() - t0) / 1e6;
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return got == count ? secs : -1;
}

/* Runs the tool over the same messages, stdout to /dev/null; seconds. */
static double
read_json(uint64_t first)
{
    const char *ctl = getenv("LAYBY_BENCH_CTL");
    char seq[24];
    snprintf(seq, sizeof seq, "%" PRIu64, first);
    if (ctl == NULL || ctl[0] == '\0')
        ctl = "build/release/layby-ctl";
    const char *argv[] = { ctl,  "events",     "replay", "--json", "--subject",
                           SUBJ, "--from-seq", seq,      NULL };
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int64_t t0 = lb_mono_us();
    int rc = posix_spawn(&pid, ctl, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    if (rc != 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return -1;
    return (double)(lb_mono_us() - t0) / 1e6;
}

int
main(int argc, char **argv)
{
    int64_t count = 200000;
    const bench_flag flags[] = {
        { "count", &count, "events recorded and replayed" },
    };
    if (bench_flags(argc, argv, flags, LB_COUNTOF(flags)) != 0)
        return 2;
    lb_err err;
    bus *b = NULL;
    uint64_t first = 0;
    if (bench_open(&b, &err) != LB_OK || record(b, count, &first, &err) != LB_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    double raw = read_raw(b, first, count);
    double json = read_json(first);
    int ok = raw > 0 && json > 0;
    if (ok)
        printf("replay count=%lld raw_per_s=%.0f json_per_s=%.0f ratio=%.2f\n", (long long)count,
               (double)count / raw, (double)count / json, raw / json);
    else
        fprintf(stderr, "bench: replay failed (raw %.3f s, json %.3f s)\n", raw, json);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Stream.Purge.Subject = SUBJ;
    js_PurgeStream(bus_js(b), "LAYBY_EVT", &jo, NULL);
    bus_close(b);
    return ok ? 0 : 1;
}
