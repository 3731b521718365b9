/* cluster_faults_test.c - saga load on a three-node NATS cluster through its
 * faults (issue 23): every stream and bucket at 3 replicas (layby-ctl bus
 * setup --replicas 3), two orchestrators and two test participants
 * (layby-sagatest, which records every effect), all given the three nodes as
 * their LAYBY_NATS_URL list. After a closed-loop warm-up whose completion
 * rate is taken as the peak, "sagabench" sagas (the three-step test saga with
 * 30 s step timeouts) start at half of it while:
 *   1. one NATS node (not LAYBY_CMD's leader) is SIGKILLed, then restarted;
 *   2. the node leading LAYBY_CMD (JetStream's stream info, cluster.leader)
 *      is SIGKILLed, then restarted;
 *   3. one orchestrator and one participant are SIGKILLed; the others carry
 *      on alone, then the two are started again.
 * Afterwards every saga started completed exactly once, every step had
 * exactly one effect (sagatest.effects), no start failed to publish, nothing
 * was dead-lettered. The completions per second before, during and after
 * each fault and the longest pause without a completion are printed (from
 * saga.sagas.finished_at), the figures docs/BENCHMARKS.md takes.
 *
 * The cluster is the suite's own (tests/support/tcluster.h) with the
 * harness's users and permissions; PostgreSQL is the harness's.
 * LAYBY_CLUSTER_PHASE_S (default 6: the CI version, about 2 min under ASan)
 * is the length of each phase; LAYBY_CLUSTER_LOAD the per cent of the peak
 * (default 50). */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/bus.h"
#include "engine/id.h"
#include "layby/v1/saga.pb-c.h"
#include "sagas_test.h"
#include "tcluster.h"
#include "tsupport.h"

#define SAGAS_MAX   20000
#define INFLIGHT    32     /* the warm-up's sagas in flight */
#define TERMINAL_MS 120000 /* every saga completed within this after the load */
#define NODE_DOWN_S 3      /* a killed node stays down this long */

/* --- the daemons ------------------------------------------------------------------ */

enum {
    ORCH_A,
    ORCH_B,
    PART_A,
    PART_B,
    PROCS
};
static tsupport_proc procs[PROCS];
static char orch_b_port[64];
static const char *const orch_b_env[] = { orch_b_port, "LAYBY_INSTANCE=twin", NULL };

static void
daemon_start(int i)
{
    switch (i) {
    case ORCH_A:
        tsupport_daemon_start(&procs[i], "layby-orchestrator", 0, NULL, NULL);
        break;
    case ORCH_B:
        tsupport_daemon_start(&procs[i], "layby-orchestrator", atoi(strchr(orch_b_port, '=') + 1),
                              NULL, orch_b_env);
        break;
    default:
        tsupport_sagatest_start(&procs[i], NULL);
    }
}

/* --- the load and what watches it --------------------------------------------------- */

static struct {
    bus *b;
    atomic_bool stop;
    atomic_llong interval_us; /* 0 = closed loop, INFLIGHT at a time (the warm-up) */
    atomic_int started, failed;
    atomic_int completed; /* the monitor's last count */
    char first_error[LB_ERR_MSG_MAX];
} load;

static void
sleep_us(int64_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000L };
    nanosleep(&ts, NULL);
}

/* Starts sagas until told to stop; never asserts (not the test's thread). */
static void *
publisher(void *arg)
{
    (void)arg;
    int64_t next = lb_mono_us();
    while (!atomic_load(&load.stop) && atomic_load(&load.started) < SAGAS_MAX) {
        int64_t interval = atomic_load(&load.interval_us);
        if (interval == 0) {
            if (atomic_load(&load.started) - atomic_load(&load.completed) >= INFLIGHT) {
                sleep_us(2000);
                continue;
            }
            next = lb_mono_us();
        } else {
            next += interval;
            int64_t now = lb_mono_us();
            /* Behind after a publish that waited out a fault: go on at the
             * rate from now rather than in a burst. */
            if (next < now - 1000000)
                next = now;
            sleep_us(next - now);
        }
        char id[ID_STR_LEN];
        id_new(id);
        Layby__V1__StartBenchSaga m = LAYBY__V1__START_BENCH_SAGA__INIT;
        m.saga_id = id;
        m.key = "cluster";
        m.script = "";
        bus_envelope env;
        bus_envelope_init(&env, &layby__v1__start_bench_saga__descriptor, NULL);
        lb_err err = { 0 };
        if (bus_publish(load.b, SAGA_SUBJ_START_BENCH, &env, &m.base, &err) == LB_OK)
            atomic_fetch_add(&load.started, 1);
        else if (atomic_fetch_add(&load.failed, 1) == 0)
            snprintf(load.first_error, sizeof load.first_error, "%s", err.msg);
    }
    return NULL;
}

/* Counts completed sagas every 50 ms on a session of its own. */
static void *
monitor(void *arg)
{
    (void)arg;
    PGconn *pg = PQconnectdb(tsupport_env("LAYBY_TEST_PG_ADMIN_URL"));
    while (!atomic_load(&load.stop)) {
        PGresult *r = PQexec(pg, "SELECT count(*) FROM saga.sagas WHERE status = 'COMPLETED'");
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            atomic_store(&load.completed, atoi(PQgetvalue(r, 0, 0)));
        else
            PQreset(pg);
        PQclear(r);
        sleep_us(50000);
    }
    PQfinish(pg);
    return NULL;
}

/* --- phases and what they measured ----------------------------------------------- */

#define MARKS_MAX 16
static struct {
    int n;
    int64_t at_ms[MARKS_MAX];    /* wall clock: finished_at is one too */
    const char *name[MARKS_MAX]; /* of the phase that starts here */
} marks;

static void
mark(const char *phase)
{
    cr_assert_lt(marks.n, MARKS_MAX);
    marks.at_ms[marks.n] = lb_now_ms();
    marks.name[marks.n++] = phase;
    fprintf(stderr, "cluster_faults: %s at +%.1f s (%d started, %d completed)\n", phase,
            (double)(marks.at_ms[marks.n - 1] - marks.at_ms[0]) / 1000.0,
            atomic_load(&load.started), atomic_load(&load.completed));
}

static void
phase_wait(int secs)
{
    sleep_us((int64_t)secs * 1000000);
}

/* Prints completions per second of each phase and the longest pause
 * without a completion; returns that pause in ms. */
static int64_t
phases_report(void)
{
    PGresult *r = PQexec(tsupport_pg(),
                         "SELECT (extract(epoch FROM finished_at) * 1000)::bigint FROM saga.sagas "
                         "WHERE status = 'COMPLETED' ORDER BY 1");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(tsupport_pg()));
    int n = PQntuples(r);
    int64_t *t = calloc((size_t)n + 1, sizeof *t);
    for (int i = 0; i < n; i++)
        t[i] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    PQclear(r);
    int64_t worst = 0;
    const char *worst_in = "";
    int k = 0;
    for (int p = 0; p + 1 < marks.n; p++) {
        int64_t from = marks.at_ms[p], to = marks.at_ms[p + 1], last = from, gap = 0;
        while (k < n && t[k] < from)
            k++;
        int count = 0;
        for (; k < n && t[k] < to; k++, count++) {
            if (t[k] - last > gap)
                gap = t[k] - last;
            last = t[k];
        }
        if (to - last > gap)
            gap = to - last;
        double secs = (double)(to - from) / 1000.0;
        fprintf(stderr,
                "cluster_faults: phase %-16s %5.1f s  %5d completed  %6.1f/s  longest pause "
                "%5.2f s\n",
                marks.name[p], secs, count, secs > 0 ? count / secs : 0.0, (double)gap / 1000.0);
        if (p > 0 && gap > worst) { /* the warm-up is no phase under load */
            worst = gap;
            worst_in = marks.name[p];
        }
    }
    fprintf(stderr, "cluster_faults: longest pause without completions %.2f s (%s)\n",
            (double)worst / 1000.0, worst_in);
    free(t);
    return worst;
}

/* --- set-up -------------------------------------------------------------------------- */

static tcluster cl;
static bus *admin;
static char saved_url[512];

static void
setup(void)
{
    tsupport_reset(); /* the harness's stack: empty tables */
    snprintf(saved_url, sizeof saved_url, "%s", tsupport_env_req("LAYBY_NATS_URL"));
    tcluster_start(&cl, "laybyfaults", tsupport_env_req("LAYBY_TEST_NATS_CONF"));
    /* Every daemon, layby-ctl and the admin bus below take the cluster. */
    setenv("LAYBY_NATS_URL", cl.urls, 1);
    /* Until the meta leader is elected, bus setup answers "temporarily unavailable". */
    const char *env[] = { "LAYBY_BUS_REPLICAS=3", NULL };
    const char *args[] = { "bus", "setup", NULL };
    int rc = -1;
    char *out = NULL;
    for (int i = 0; i < 30 && rc != 0; i++) {
        free(out);
        out = NULL;
        if ((rc = tsupport_ctl_run(&out, true, env, args)) != 0)
            sleep_us(1000000);
    }
    cr_assert_eq(rc, 0, "layby-ctl bus setup --replicas 3: %s", out);
    free(out);
    admin = tsupport_admin_bus("cluster-faults");
    tsupport_sagatest_setup(admin);
    snprintf(orch_b_port, sizeof orch_b_port, "LAYBY_ORCHESTRATOR_METRICS_PORT=%d",
             tsupport_port_free());
    for (int i = 0; i < PROCS; i++)
        daemon_start(i);
}

static void
teardown(void)
{
    atomic_store(&load.stop, true);
    tsupport_daemons_finish(procs, PROCS);
    bus_close(admin);
    admin = NULL;
    tcluster_stop(&cl);
    setenv("LAYBY_NATS_URL", saved_url, 1);
}

TestSuite(cluster_faults, .init = setup, .fini = teardown, .timeout = 600);

static int
env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v != NULL && atoi(v) > 0 ? atoi(v) : def;
}

static bool
all_completed(void *arg)
{
    int want = *(int *)arg;
    return tsupport_sql_int("SELECT count(*) FROM saga.sagas WHERE status = 'COMPLETED'") >= want;
}

/* The node to kill first: any but LAYBY_CMD's leader (whose loss is fault 2). */
static int
node_not_leading(void)
{
    int leader = tcluster_leader(&cl, bus_js(admin), "LAYBY_CMD");
    return leader == 0 ? 1 : 0;
}

Test(cluster_faults, sagas_complete_once_through_node_leader_and_daemon_kills)
{
    int phase_s = env_int("LAYBY_CLUSTER_PHASE_S", 6), pct = env_int("LAYBY_CLUSTER_LOAD", 50);
    load.b = tsupport_admin_bus("cluster-load");

    pthread_t pub, mon;
    pthread_create(&mon, NULL, monitor, NULL);
    mark("warm-up");
    pthread_create(&pub, NULL, publisher, NULL);
    /* The peak: completions of the warm-up's second half, INFLIGHT at a time. */
    phase_wait(phase_s / 2);
    int c0 = atomic_load(&load.completed);
    int64_t t0 = lb_mono_us();
    phase_wait(phase_s - phase_s / 2);
    double peak = (atomic_load(&load.completed) - c0) * 1e6 / (double)(lb_mono_us() - t0);
    cr_assert_gt(peak, 1.0, "the warm-up completed %.1f sagas/s", peak);
    double rate = peak * pct / 100.0;
    atomic_store(&load.interval_us, (long long)(1e6 / rate));
    fprintf(stderr, "cluster_faults: peak %.1f sagas/s, load %.1f/s (%d %%)\n", peak, rate, pct);

    mark("before");
    phase_wait(phase_s);

    int first = node_not_leading();
    mark("node killed");
    tcluster_node_kill(&cl, first);
    phase_wait(NODE_DOWN_S);
    tcluster_node_start(&cl, first);
    mark("node back");
    phase_wait(phase_s);

    int leader = tcluster_leader(&cl, bus_js(admin), "LAYBY_CMD");
    cr_assert_geq(leader, 0, "LAYBY_CMD has no leader");
    fprintf(stderr, "cluster_faults: LAYBY_CMD led by %s\n", cl.nodes[leader].name);
    mark("leader killed");
    tcluster_node_kill(&cl, leader);
    phase_wait(NODE_DOWN_S);
    tcluster_node_start(&cl, leader);
    mark("leader back");
    phase_wait(phase_s);

    mark("daemons killed");
    tsupport_daemon_kill(&procs[ORCH_A]);
    tsupport_daemon_kill(&procs[PART_A]);
    phase_wait(phase_s);
    daemon_start(ORCH_A);
    daemon_start(PART_A);
    mark("daemons back");
    phase_wait(phase_s);
    mark("end");

    atomic_store(&load.stop, true);
    pthread_join(pub, NULL);
    pthread_join(mon, NULL);
    int started = atomic_load(&load.started);
    cr_expect_eq(atomic_load(&load.failed), 0, "%d starts failed to publish; first: %s",
                 atomic_load(&load.failed), load.first_error);
    cr_assert(
        tsupport_poll_until(all_completed, &started, TERMINAL_MS),
        "%lld of %d sagas completed within %d s of the load's end",
        (long long)tsupport_sql_int("SELECT count(*) FROM saga.sagas WHERE status = 'COMPLETED'"),
        started, TERMINAL_MS / 1000);
    int64_t pause_ms = phases_report();

    /* Every saga once, every step's effect once. */
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM saga.sagas"), started,
                 "sagas stored for %d started", started);
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.effects WHERE kind = 'do'"),
                 3LL * started, "effects of %d sagas' 3 steps", started);
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM (SELECT 1 FROM sagatest.effects "
                                  "GROUP BY saga_id, step, kind HAVING count(*) > 1) d"),
                 0, "a step had a second effect");
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.effects WHERE kind = 'undo'"), 0,
                 "a step was undone");
    /* Nothing dead-lettered. */
    char *out = NULL;
    const char *args[] = { "dlq", "list", "--json", "--limit", "1000", NULL };
    cr_expect_eq(tsupport_ctl_run(&out, false, NULL, args), 0, "layby-ctl dlq list: %s", out);
    cr_expect(out != NULL && strchr(out, '{') == NULL, "dead letters after the run:\n%s", out);
    free(out);
    /* A bound that holds on a loaded machine: the faults pause the flow for
     * seconds (AckWait 3 s, a leader election), not for a step's timeout. */
    cr_expect_lt(pause_ms, 30000, "completions stopped for %.1f s", (double)pause_ms / 1000.0);
    fprintf(stderr, "cluster_faults: %d sagas, %d publish failures\n", started,
            atomic_load(&load.failed));
    bus_close(load.b);
    load.b = NULL;
}
