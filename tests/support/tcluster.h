/* tcluster.h - a suite's own three-node NATS cluster (issue 23): nats-server
 * processes with JetStream, routes on free loopback ports, a store folder
 * and a log each under LAYBY_TEST_TMP. The harness's single server stays as
 * it is for the other suites; the one copy of the start code that
 * cluster_bus_test and cluster_faults_test share.
 *
 * A node may be SIGKILLed and started again with its store (a node's death,
 * a stream leader election); tcluster_leader() names the node leading a
 * stream from JetStream's stream info (cluster.leader).
 *
 * Ownership: the caller's tcluster; tcluster_stop() kills what runs.
 * Threads:   the test's thread (failures assert).
 */
#ifndef LAYBY_TESTS_SUPPORT_TCLUSTER_H
#define LAYBY_TESTS_SUPPORT_TCLUSTER_H

#include <nats/nats.h>
#include <stdbool.h>
#include <sys/types.h>

#define TCLUSTER_NODES 3

typedef struct tcluster_node {
    pid_t pid; /* 0 when not running */
    int port, route;
    char name[16];      /* n1, n2, n3: JetStream's server names */
    char pid_file[600]; /* LAYBY_TEST_TMP/run/<files>-<name>.pid: the harness stops leftovers */
} tcluster_node;

typedef struct tcluster {
    char name[32];  /* the cluster's name */
    char files[48]; /* <name>-<pid>: its files' prefix, new for each test (Criterion forks one) */
    char conf[512]; /* a config for users and permissions (the harness's), "" = none */
    char urls[256]; /* "nats://127.0.0.1:P1, nats://127.0.0.1:P2, ..." for LAYBY_NATS_URL */
    tcluster_node nodes[TCLUSTER_NODES];
} tcluster;

/* Starts TCLUSTER_NODES nodes on free ports and waits until each accepts
 * connections, each with a store of its own under LAYBY_TEST_TMP that no
 * earlier test used (a second test's cluster must not find the first's
 * streams). conf NULL: no users (anyone may connect); else a nats-server
 * config file whose authorization block the nodes take (its listen address,
 * server name, store, pid and log files are overridden per node). JetStream
 * is ready a few seconds later (the meta leader's election): adding a stream
 * answers "temporarily unavailable" until then. */
void tcluster_start(tcluster *c, const char *name, const char *conf);
/* SIGKILL every running node and reap it. */
void tcluster_stop(tcluster *c);
/* SIGKILL node i (no goodbye to its routes) and reap it. */
void tcluster_node_kill(tcluster *c, int i);
/* Starts node i again with its store; waits until it accepts connections. */
void tcluster_node_start(tcluster *c, int i);
/* The index of the node leading stream (JetStream stream info through js),
 * -1 when none answers or no node has its name. */
int tcluster_leader(const tcluster *c, jsCtx *js, const char *stream);

#endif
