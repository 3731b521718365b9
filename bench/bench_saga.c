/* bench_saga.c - completed three-step sagas per second, and start-to-finish
 * latency: StartTestSaga -> orchestrator -> 3 x (TestStepDo -> no-op
 * participant -> TestStepDone) -> SagaChanged COMPLETED, which we receive.
 *
 * Needs a test build's layby-orchestrator (LAYBY_TEST_HOOKS: the test saga
 * types) and a no-op participant (LAYBY_SAGATEST_NOOP=1 layby-sagatest);
 * --setup 1 creates their durables and the participant's schema first
 * (bench/run.sh does all of it). --rate 0 starts sagas as
 * fast as JetStream takes them; --rate R paces the starts. The saga type is
 * "sagabench": the test saga's steps with production-like 30 s timeouts. */
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "engine/bus_topology.h"
#include "engine/id.h"
#include "layby/v1/saga.pb-c.h"
#include "sagas_test.h"

typedef struct run {
    int64_t count;
    char (*ids)[ID_STR_LEN]; /* sorted: UUIDv7 made in order */
    int64_t *sent_us;
    int64_t *done_us;
    atomic_long seen;
} run;

static int
cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void
on_completed(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc;
    (void)sub;
    run *r = closure;
    Layby__V1__SagaChanged *ev = layby__v1__saga_changed__unpack(
        NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
    if (ev != NULL) {
        char(*hit)[ID_STR_LEN] = bsearch(ev->saga_id, r->ids, (size_t)r->count, ID_STR_LEN, cmp_id);
        if (hit != NULL) {
            size_t i = (size_t)(hit - r->ids);
            if (r->done_us[i] == 0) {
                r->done_us[i] = lb_mono_us();
                atomic_fetch_add(&r->seen, 1);
            }
        }
        layby__v1__saga_changed__free_unpacked(ev, NULL);
    }
    natsMsg_Destroy(m);
}

static int
setup(bus *b)
{
    /* The test-only rows of the service table (tests/support/services-test.tsv):
     * the participant's durable and the test build's orchestrator durable for
     * the participant's events; the production stack has neither. */
    static const bus_topology_consumer cs[] = {
        { "LAYBY_CMD", "sagatest", "layby.cmd.sagatest.>", "layby-sagatest" },
        { "LAYBY_EVT", "orchestrator-sagatest", "layby.evt.sagatest.>", "layby-orchestrator" },
    };
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    bus_topology_change ch;
    lb_err err;
    for (size_t i = 0; i < LB_COUNTOF(cs); i++) {
        if (bus_topology_consumer_apply(&ch, bus_js(b), &cs[i], &o, &err) != LB_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return -1;
        }
    }
    FILE *f = fopen(LAYBY_SOURCE_DIR "/tests/participant/schema.sql", "r");
    static char sql[8192];
    size_t n = f ? fread(sql, 1, sizeof sql - 1, f) : 0;
    if (f)
        fclose(f);
    sql[n] = '\0';
    PGconn *pg = PQconnectdb(getenv("LAYBY_PG_ADMIN_URL") ? getenv("LAYBY_PG_ADMIN_URL") : "");
    PGresult *r = PQexec(pg, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "bench: participant schema: %s\n", PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
    return ok ? 0 : -1;
}

int
main(int argc, char **argv)
{
    int64_t count = 10000, rate = 0, timeout_s = 120, do_setup = 0;
    const bench_flag flags[] = {
        { "count", &count, "sagas to start" },
        { "rate", &rate, "starts per second (0 = as fast as possible)" },
        { "timeout", &timeout_s, "seconds to wait for completion" },
        { "setup", &do_setup, "1 = create the participant's durable and schema first" },
    };
    if (bench_flags(argc, argv, flags, LB_COUNTOF(flags)) != 0)
        return 2;
    lb_err err;
    bus *b = NULL;
    if (bench_open(&b, &err) != LB_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    if (do_setup) {
        int rc = setup(b);
        bus_close(b);
        return rc == 0 ? 0 : 1;
    }
    run r = { .count = count };
    r.ids = calloc((size_t)count, ID_STR_LEN);
    r.sent_us = calloc((size_t)count, sizeof *r.sent_us);
    r.done_us = calloc((size_t)count, sizeof *r.done_us);
    for (int64_t i = 0; i < count; i++)
        id_new(r.ids[i]);
    natsSubscription *sub = NULL;
    natsConnection_Subscribe(&sub, bus_conn(b), "layby.evt.saga.completed", on_completed, &r);
    natsSubscription_SetPendingLimits(sub, -1, -1);
    natsConnection_Flush(bus_conn(b));
    int64_t t0 = lb_mono_us();
    for (int64_t i = 0; i < count; i++) {
        bench_pace(t0, i, rate);
        Layby__V1__StartBenchSaga m = LAYBY__V1__START_BENCH_SAGA__INIT;
        m.saga_id = r.ids[i];
        m.key = "bench";
        m.script = "";
        bus_envelope env;
        bus_envelope_init(&env, &layby__v1__start_bench_saga__descriptor, NULL);
        natsMsg *msg = NULL;
        if (bus_msg_new(&msg, SAGA_SUBJ_START_BENCH, &env, &m.base, &err) != LB_OK)
            return 1;
        r.sent_us[i] = lb_mono_us();
        if (js_PublishMsgAsync(bus_js(b), &msg, NULL) != NATS_OK) {
            natsMsg_Destroy(msg);
            fprintf(stderr, "bench: publish failed\n");
            return 1;
        }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    js_PublishAsyncComplete(bus_js(b), &po);
    long seen =
        bench_finish("saga", count, rate, t0, r.sent_us, r.done_us, &r.seen, timeout_s, NULL);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    free(r.ids);
    free(r.sent_us);
    free(r.done_us);
    bus_close(b);
    return seen == count ? 0 : 1;
}
