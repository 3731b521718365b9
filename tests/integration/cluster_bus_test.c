/* cluster_bus_test.c - the bus on a three-node NATS cluster (issue 23): a
 * client given the nodes as a LAYBY_NATS_URL list publishes through the
 * SIGKILL of the node leading its stream (a leader election) and the node's
 * restart, and every message is stored exactly once: bus_publish() sends an
 * unanswered message again with its Nats-Msg-Id, and the replicated stream's
 * duplicate window drops the copy that had been stored after all.
 *
 * What the test does not assert is how long the stream goes without a leader:
 * that is nats-server's election (with two of three nodes up, usually 2-8 s;
 * once, in CI at load, over 30 s). A publish that outlives the bus's retry
 * budget is sent again with the same envelope by its caller, as the edge's
 * client does with its Idempotency-Key, and that repeat must not double it.
 *
 * The cluster is the suite's own (tests/support/tcluster.h, no users): the
 * harness's single server stays as it is for the other suites. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/bus.h"
#include "layby/v1/common.pb-c.h"
#include "tcluster.h"
#include "tsupport.h"

#define STREAM      "CLUSTERTEST"
#define SUBJECT     "clustertest.x"
#define TOTAL       1500
#define NODES_OTHER (TCLUSTER_NODES - 1) /* replicas besides the leader */

static tcluster cl;
static bus *client;

/* A client of the three nodes that waits wait_ms for a publish's ack and
 * sends it again for 30 s. */
static bus *
client_open(const char *name, int64_t wait_ms)
{
    bus *b = NULL;
    bus_opts o = BUS_OPTS_INIT;
    o.url = cl.urls;
    o.name = name;
    o.publish_wait_ms = wait_ms;
    o.publish_retry_ms = 30000;
    lb_err err = { 0 };
    cr_assert_eq(bus_open(&b, &o, &err), LB_OK, "%s", err.msg);
    return b;
}

static void
setup(void)
{
    tcluster_start(&cl, "laybytest", NULL);
    client = client_open("cluster-test", 2000);
}

static void
teardown(void)
{
    bus_close(client);
    client = NULL;
    tcluster_stop(&cl);
}

TestSuite(cluster_bus, .init = setup, .fini = teardown, .timeout = 240);

/* The cluster elects its meta leader a few seconds after the routes form:
 * until then adding a stream answers "JetStream system temporarily unavailable". */
static bool
stream_added(void *arg)
{
    (void)arg;
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[] = { "clustertest.>" };
    cfg.Name = STREAM;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = 3;
    cfg.Duplicates = 120LL * 1000 * 1000 * 1000;
    jsErrCode jerr = 0;
    return js_AddStream(NULL, bus_js(client), &cfg, NULL, &jerr) == NATS_OK;
}

/* Every replica of the stream is current (the leader reports its peers). */
static bool
replicas_current(void *arg)
{
    (void)arg;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    bool ok = js_GetStreamInfo(&si, bus_js(client), STREAM, NULL, &jerr) == NATS_OK &&
              si->Cluster != NULL && si->Cluster->Leader != NULL &&
              si->Cluster->ReplicasLen == NODES_OTHER;
    for (int i = 0; ok && i < si->Cluster->ReplicasLen; i++)
        ok = si->Cluster->Replicas[i]->Current && !si->Cluster->Replicas[i]->Offline;
    jsStreamInfo_Destroy(si);
    return ok;
}

/* A publish given up this many times (each after the bus's 30 s of retries)
 * fails the test: past the stream's 2-minute duplicate window a repeat could
 * be stored twice, and the cluster would have been without a leader for it. */
#define GIVE_UPS_MAX 3

typedef struct pub_run {
    atomic_int done;    /* publishes answered LB_OK */
    atomic_int gave_up; /* bus_publish() calls that ran out of retries */
    atomic_int failed;  /* publishes abandoned: gave up GIVE_UPS_MAX times */
    char first_error[LB_ERR_MSG_MAX];
    char ids[TOTAL][ID_STR_LEN];
} pub_run;

static void
pub_failed(pub_run *r, const lb_err *err)
{
    if (atomic_fetch_add(&r->failed, 1) == 0)
        snprintf(r->first_error, sizeof r->first_error, "%s", err->msg);
}

static void *
publisher(void *arg)
{
    pub_run *r = arg;
    for (int i = 0; i < TOTAL; i++) {
        bus_envelope env;
        bus_envelope_init(&env, &layby__v1__failure__descriptor, NULL);
        memcpy(r->ids[i], env.msg_id, ID_STR_LEN);
        Layby__V1__Failure body = LAYBY__V1__FAILURE__INIT;
        body.message = (char *)"payload";
        for (int tries = 1;; tries++) {
            lb_err err = { 0 };
            if (bus_publish(client, SUBJECT, &env, &body.base, &err) == LB_OK) {
                atomic_fetch_add(&r->done, 1);
                break;
            }
            /* The same envelope again, as the edge's client repeats a 503
             * with its key (bus.h: safe within the duplicate window). */
            atomic_fetch_add(&r->gave_up, 1);
            if (tries == GIVE_UPS_MAX) {
                pub_failed(r, &err);
                break;
            }
        }
    }
    return NULL;
}

static bool
passed_count(void *arg)
{
    void **a = arg;
    pub_run *r = a[0];
    return atomic_load(&r->done) + atomic_load(&r->failed) >= *(int *)a[1];
}

static void
wait_progress(pub_run *r, int n, int timeout_ms)
{
    void *a[2] = { r, &n };
    cr_assert(tsupport_poll_until(passed_count, a, timeout_ms),
              "publisher stuck at %d of %d (failed %d, gave up %d times)", atomic_load(&r->done), n,
              atomic_load(&r->failed), atomic_load(&r->gave_up));
}

static int
cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The stream holds exactly the n ids published, each once (read back from
 * whichever node leads). Sorts ids. */
static void
stream_holds_each_once(char (*ids)[ID_STR_LEN], int n)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    for (int t = 0; t < 100; t++) {
        if (js_GetStreamInfo(&si, bus_js(client), STREAM, NULL, &jerr) == NATS_OK)
            break;
        usleep(100 * 1000);
    }
    cr_assert(si != NULL, "stream info: %d", (int)jerr);
    uint64_t first = si->State.FirstSeq, msgs = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    cr_assert_eq(msgs, (uint64_t)n, "stored %llu messages for %d publishes",
                 (unsigned long long)msgs, n);
    char(*seen)[ID_STR_LEN] = calloc(n, ID_STR_LEN);
    for (uint64_t i = 0; i < msgs; i++) {
        natsMsg *m = NULL;
        cr_assert_eq(js_GetMsg(&m, bus_js(client), STREAM, first + i, NULL, &jerr), NATS_OK,
                     "get %llu: %d", (unsigned long long)(first + i), (int)jerr);
        const char *id = NULL;
        cr_assert_eq(natsMsgHeader_Get(m, BUS_H_MSG_ID, &id), NATS_OK);
        snprintf(seen[i], ID_STR_LEN, "%s", id);
        natsMsg_Destroy(m);
    }
    qsort(seen, n, ID_STR_LEN, cmp_id);
    qsort(ids, n, ID_STR_LEN, cmp_id);
    for (int i = 0; i < n; i++)
        cr_assert_str_eq(seen[i], ids[i], "stored ids differ from published ones at %d", i);
    free(seen);
}

Test(cluster_bus, a_publisher_rides_through_the_stream_leaders_death_exactly_once)
{
    cr_assert(tsupport_poll_until(stream_added, NULL, 30000), "no R3 stream within 30 s");
    int leader = -1;
    for (int t = 0; t < 100 && (leader = tcluster_leader(&cl, bus_js(client), STREAM)) < 0; t++)
        usleep(100 * 1000);
    cr_assert(leader >= 0, "the stream has no leader");

    pub_run *r = calloc(1, sizeof *r);
    pthread_t th;
    pthread_create(&th, NULL, publisher, r);
    wait_progress(r, TOTAL / 4, 30000);
    tcluster_node_kill(&cl, leader); /* a node's death and a stream leader election at once */
    int dead = leader;
    wait_progress(r, TOTAL / 2, 100000);
    tcluster_node_start(&cl, dead);
    wait_progress(r, 3 * TOTAL / 4, 100000);
    /* And the node leading now, once the restarted one has caught up: with
     * one node dead and the other still behind there is no quorum, and no
     * client rides through that (at load 35 the stream had no leader for
     * 34 s, longer than the publisher's 30 s). */
    cr_assert(tsupport_poll_until(replicas_current, NULL, 60000),
              "the restarted node did not catch up within 60 s");
    int second = tcluster_leader(&cl, bus_js(client), STREAM);
    if (second >= 0 && second != dead)
        tcluster_node_kill(&cl, second);
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&r->failed), 0, "%d publishes failed; first: %s",
                 atomic_load(&r->failed), r->first_error);
    cr_assert_eq(atomic_load(&r->done), TOTAL);
    /* Told on stderr, not with cr_log_warn(): Criterion 2.4 exits 1 after
     * any warning, so a run that rode through a long election "failed" with
     * every test passing (CI, 2026-12-04). */
    if (atomic_load(&r->gave_up) > 0)
        fprintf(stderr,
                "cluster_bus: %d publishes outlived the bus's 30 s of retries (no stream "
                "leader) and were sent again\n",
                atomic_load(&r->gave_up));

    stream_holds_each_once(r->ids, TOTAL);
    free(r);
}

/* The Nats-Msg-Id rule on its own: a publish whose ack comes too late was
 * stored all the same, and bus_publish()'s repeat must carry the same id so
 * the stream drops it. An ack wait of 1 ms is shorter than a replicated
 * store (the leader waits for a follower's write), so nearly every publish
 * here times out once after it was stored; a repeat under a new id would be
 * a second message. Found missing by last session's break (a new id per
 * attempt went unnoticed: no run lost the ack of a stored publish). */
#define HASTY 50

Test(cluster_bus, an_ack_too_late_is_sent_again_under_the_same_id_and_stored_once)
{
    cr_assert(tsupport_poll_until(stream_added, NULL, 30000), "no R3 stream within 30 s");
    cr_assert(tsupport_poll_until(replicas_current, NULL, 30000), "replicas not current");
    bus *hasty = client_open("cluster-test-hasty", 1);
    lb_err err = { 0 };
    char(*ids)[ID_STR_LEN] = calloc(HASTY, ID_STR_LEN);
    for (int i = 0; i < HASTY; i++) {
        bus_envelope env;
        bus_envelope_init(&env, &layby__v1__failure__descriptor, NULL);
        memcpy(ids[i], env.msg_id, ID_STR_LEN);
        Layby__V1__Failure body = LAYBY__V1__FAILURE__INIT;
        body.message = (char *)"payload";
        cr_assert_eq(bus_publish(hasty, SUBJECT, &env, &body.base, &err), LB_OK, "%d: %s", i,
                     err.msg);
    }
    bus_close(hasty);
    stream_holds_each_once(ids, HASTY);
    free(ids);
}
