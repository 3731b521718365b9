/* cluster_bus_test.c - the bus on a three-node NATS cluster (issue 23): a
 * client given the nodes as a LAYBY_NATS_URL list publishes through the
 * SIGKILL of the node leading its stream (a leader election) and the node's
 * restart, and every message is stored exactly once: bus_publish() sends an
 * unanswered message again with its Nats-Msg-Id, and the replicated stream's
 * duplicate window drops the copy that had been stored after all.
 *
 * The cluster is the suite's own (three nats-server processes with JetStream,
 * routes on free loopback ports, a store folder each under LAYBY_TEST_TMP,
 * no users): the harness's single server stays as it is for the other suites. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/bus.h"
#include "layby/v1/common.pb-c.h"
#include "tsupport.h"

#define NODES   3
#define STREAM  "CLUSTERTEST"
#define SUBJECT "clustertest.x"
#define TOTAL   1500

typedef struct node {
    pid_t pid;
    int port, route;
    char name[16];
} node;

static node nodes[NODES];
static char urls[256];

static void
node_start(node *n)
{
    const char *tmp = getenv("LAYBY_TEST_TMP");
    cr_assert(tmp != NULL, "run through tests/support/harness.sh");
    char store[512], log[512], listen[64], cluster[64], routes[256] = "";
    snprintf(store, sizeof store, "%s/cluster-%s", tmp, n->name);
    snprintf(log, sizeof log, "%s/cluster-%s.log", tmp, n->name);
    snprintf(listen, sizeof listen, "%d", n->port);
    snprintf(cluster, sizeof cluster, "nats://127.0.0.1:%d", n->route);
    for (int i = 0; i < NODES; i++)
        if (&nodes[i] != n)
            snprintf(routes + strlen(routes), sizeof routes - strlen(routes),
                     "%snats://127.0.0.1:%d", routes[0] ? "," : "", nodes[i].route);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        /* One Go processor each, as scripts/lib/nats.sh gives the single node. */
        setenv("GOMAXPROCS", "1", 1);
        execlp("nats-server", "nats-server", "-js", "-a", "127.0.0.1", "-p", listen, "-sd", store,
               "-n", n->name, "--cluster_name", "laybytest", "--cluster", cluster, "--routes",
               routes, (char *)NULL);
        _exit(127);
    }
    n->pid = pid;
}

static bool
port_open(void *arg)
{
    const node *n = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)n->port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void
node_kill(node *n)
{
    if (n->pid <= 0)
        return;
    kill(n->pid, SIGKILL);
    waitpid(n->pid, NULL, 0);
    n->pid = 0;
}

static bus *client;

static void
setup(void)
{
    int taken[2 * NODES], k = 0;
    for (int i = 0; i < NODES; i++) {
        node *n = &nodes[i];
        snprintf(n->name, sizeof n->name, "n%d", i + 1);
        /* tsupport_port_free() answers a port free now: ask until all differ. */
        for (int *want = &n->port; want != NULL; want = (want == &n->port) ? &n->route : NULL) {
            int p;
            bool dup;
            do {
                p = tsupport_port_free();
                dup = false;
                for (int j = 0; j < k; j++)
                    dup = dup || taken[j] == p;
            } while (dup);
            taken[k++] = *want = p;
        }
    }
    urls[0] = '\0';
    for (int i = 0; i < NODES; i++) {
        snprintf(urls + strlen(urls), sizeof urls - strlen(urls), "%snats://127.0.0.1:%d",
                 i ? ", " : "", nodes[i].port);
        node_start(&nodes[i]);
    }
    for (int i = 0; i < NODES; i++)
        cr_assert(tsupport_poll_until(port_open, &nodes[i], 15000), "node %s did not start",
                  nodes[i].name);
    bus_opts o = BUS_OPTS_INIT;
    o.url = urls;
    o.name = "cluster-test";
    o.publish_wait_ms = 2000;
    o.publish_retry_ms = 30000;
    lb_err err = { 0 };
    cr_assert_eq(bus_open(&client, &o, &err), LB_OK, "%s", err.msg);
}

static void
teardown(void)
{
    bus_close(client);
    client = NULL;
    for (int i = 0; i < NODES; i++)
        node_kill(&nodes[i]);
}

TestSuite(cluster_bus, .init = setup, .fini = teardown, .timeout = 120);

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

static node *
stream_leader(void)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    node *found = NULL;
    if (js_GetStreamInfo(&si, bus_js(client), STREAM, NULL, &jerr) == NATS_OK && si->Cluster &&
        si->Cluster->Leader)
        for (int i = 0; i < NODES; i++)
            if (strcmp(si->Cluster->Leader, nodes[i].name) == 0)
                found = &nodes[i];
    jsStreamInfo_Destroy(si);
    return found;
}

typedef struct pub_run {
    atomic_int done;   /* publishes answered LB_OK */
    atomic_int failed; /* publishes that returned an error */
    char first_error[LB_ERR_MSG_MAX];
    char ids[TOTAL][ID_STR_LEN];
} pub_run;

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
        lb_err err = { 0 };
        if (bus_publish(client, SUBJECT, &env, &body.base, &err) == LB_OK) {
            atomic_fetch_add(&r->done, 1);
        } else if (atomic_fetch_add(&r->failed, 1) == 0) {
            snprintf(r->first_error, sizeof r->first_error, "%s", err.msg);
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
              "publisher stuck at %d of %d (failed %d)", atomic_load(&r->done), n,
              atomic_load(&r->failed));
}

static int
cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

Test(cluster_bus, a_publisher_rides_through_the_stream_leaders_death_exactly_once)
{
    cr_assert(tsupport_poll_until(stream_added, NULL, 30000), "no R3 stream within 30 s");
    node *leader = NULL;
    for (int t = 0; t < 100 && (leader = stream_leader()) == NULL; t++)
        usleep(100 * 1000);
    cr_assert(leader != NULL, "the stream has no leader");

    pub_run *r = calloc(1, sizeof *r);
    pthread_t th;
    pthread_create(&th, NULL, publisher, r);
    wait_progress(r, TOTAL / 4, 30000);
    node_kill(leader); /* a node's death and a stream leader election at once */
    node *dead = leader;
    wait_progress(r, TOTAL / 2, 60000);
    node_start(dead);
    cr_assert(tsupport_poll_until(port_open, dead, 15000));
    wait_progress(r, 3 * TOTAL / 4, 60000);
    /* And the node leading now, while the restarted one catches up. */
    node *second = stream_leader();
    if (second != NULL && second != dead)
        node_kill(second);
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&r->failed), 0, "%d publishes failed; first: %s",
                 atomic_load(&r->failed), r->first_error);
    cr_assert_eq(atomic_load(&r->done), TOTAL);

    /* Every id stored once: read the stream back (from whichever node leads). */
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
    cr_assert_eq(msgs, (uint64_t)TOTAL, "stored %llu messages for %d publishes",
                 (unsigned long long)msgs, TOTAL);
    char(*seen)[ID_STR_LEN] = calloc(TOTAL, ID_STR_LEN);
    for (uint64_t i = 0; i < msgs; i++) {
        natsMsg *m = NULL;
        cr_assert_eq(js_GetMsg(&m, bus_js(client), STREAM, first + i, NULL, &jerr), NATS_OK,
                     "get %llu: %d", (unsigned long long)(first + i), (int)jerr);
        const char *id = NULL;
        cr_assert_eq(natsMsgHeader_Get(m, BUS_H_MSG_ID, &id), NATS_OK);
        snprintf(seen[i], ID_STR_LEN, "%s", id);
        natsMsg_Destroy(m);
    }
    qsort(seen, TOTAL, ID_STR_LEN, cmp_id);
    qsort(r->ids, TOTAL, ID_STR_LEN, cmp_id);
    for (int i = 0; i < TOTAL; i++)
        cr_assert_str_eq(seen[i], r->ids[i], "stored ids differ from published ones at %d", i);
    free(seen);
    free(r);
}
