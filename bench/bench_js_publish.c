/* bench_js_publish.c - the JetStream baseline: a raw async publish loop of
 * ~200-byte messages to LAYBY_CMD's subject space (a subject no consumer
 * reads), acks awaited at the end, as PLATFORM.md measured it. */
#include <stdio.h>
#include <string.h>

#include "bench_common.h"

int
main(int argc, char **argv)
{
    int64_t count = 200000, size = 200;
    const bench_flag flags[] = {
        { "count", &count, "messages" },
        { "size", &size, "payload bytes" },
    };
    if (bench_flags(argc, argv, flags, LB_COUNTOF(flags)) != 0)
        return 2;
    lb_err err;
    bus *b = NULL;
    if (bench_open(&b, &err) != LB_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    char payload[4096];
    memset(payload, 'x', sizeof payload);
    if (size > (int64_t)sizeof payload)
        size = sizeof payload;
    int64_t t0 = lb_mono_us();
    for (int64_t i = 0; i < count; i++) {
        natsStatus s =
            js_PublishAsync(bus_js(b), "layby.cmd.bench.baseline", payload, (int)size, NULL);
        if (s != NATS_OK) {
            fprintf(stderr, "bench: publish: %s\n", natsStatus_GetText(s));
            return 1;
        }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    natsStatus s = js_PublishAsyncComplete(bus_js(b), &po);
    double secs = (double)(lb_mono_us() - t0) / 1e6;
    printf("js_publish count=%lld size=%lld elapsed_s=%.3f per_s=%.0f status=%s\n",
           (long long)count, (long long)size, secs, (double)count / secs, natsStatus_GetText(s));
    /* Leave the stream as we found it. */
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Stream.Purge.Subject = "layby.cmd.bench.baseline";
    jsErrCode jerr = 0;
    js_PurgeStream(bus_js(b), "LAYBY_CMD", &jo, &jerr);
    bus_close(b);
    return s == NATS_OK ? 0 : 1;
}
