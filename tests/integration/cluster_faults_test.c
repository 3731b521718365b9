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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/bus.h"
#include "engine/id.h"
#include "engine/subjects.h"
#include "layby/v1/catalog.pb-c.h"
#include "layby/v1/saga.pb-c.h"
#include "sagas_test.h"
#include "tcluster.h"
#include "tsupport.h"

#define SAGAS_MAX   20000
#define INFLIGHT    32     /* the warm-up's sagas in flight */
#define TERMINAL_MS 120000 /* every saga completed within this after the load */
#define NODE_DOWN_S 3      /* a killed node stays down this long */

/* --- the daemons ------------------------------------------------------------------ */

/* The catalog runs only in the outage test, on the second PostgreSQL. */
enum {
    ORCH_A,
    ORCH_B,
    PART_A,
    PART_B,
    CATALOG,
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

/* What a publisher starts: sagas, or products (the catalog's commands). */
enum {
    LOAD_SAGA,
    LOAD_PRODUCT,
    LOADS
};

static struct {
    bus *b;
    atomic_bool stop;
    atomic_llong interval_us[LOADS]; /* 0 = closed loop, INFLIGHT at a time (the warm-up) */
    atomic_int started[LOADS], failed[LOADS];
    atomic_int completed; /* sagas: the monitor's last count */
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

static lb_status
publish_one(int kind, lb_err *err)
{
    char id[ID_STR_LEN];
    id_new(id);
    bus_envelope env;
    if (kind == LOAD_SAGA) {
        Layby__V1__StartBenchSaga m = LAYBY__V1__START_BENCH_SAGA__INIT;
        m.saga_id = id;
        m.key = "cluster";
        m.script = "";
        bus_envelope_init(&env, &layby__v1__start_bench_saga__descriptor, NULL);
        return bus_publish(load.b, SAGA_SUBJ_START_BENCH, &env, &m.base, err);
    }
    Layby__V1__CreateProduct c;
    Layby__V1__ProductDraft d;
    tsupport_create_product(&c, &d, id, "cluster laptop");
    bus_envelope_init(&env, &layby__v1__create_product__descriptor, NULL);
    return bus_publish(load.b, SUBJ_CATALOG_CREATE_PRODUCT, &env, &c.base, err);
}

/* Publishes one kind until told to stop; never asserts (not the test's thread). */
static void *
publisher(void *arg)
{
    int kind = (int)(intptr_t)arg;
    int64_t next = lb_mono_us();
    while (!atomic_load(&load.stop) && atomic_load(&load.started[kind]) < SAGAS_MAX) {
        int64_t interval = atomic_load(&load.interval_us[kind]);
        if (interval == 0) {
            if (atomic_load(&load.started[kind]) - atomic_load(&load.completed) >= INFLIGHT) {
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
        lb_err err = { 0 };
        if (publish_one(kind, &err) == LB_OK)
            atomic_fetch_add(&load.started[kind], 1);
        else if (atomic_fetch_add(&load.failed[kind], 1) == 0)
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
            atomic_load(&load.started[LOAD_SAGA]), atomic_load(&load.completed));
}

static void
phase_wait(int secs)
{
    sleep_us((int64_t)secs * 1000000);
}

/* Prints completions per second of each phase and the longest pause
 * without a completion; returns that pause in ms. */
static int64_t
phases_report(bool warm_up)
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
        if ((p > 0 || !warm_up) && gap > worst) { /* the warm-up is no phase under load */
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
static int pg2_port; /* the second PostgreSQL's while it may run */
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
    for (int i = ORCH_A; i <= PART_B; i++)
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
    if (pg2_port != 0) { /* a test that failed half-way: never leave it running */
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "cd / && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "
                 "'%s/pg-2/data' -m immediate -w stop >/dev/null 2>&1",
                 tsupport_env("LAYBY_TEST_TMP"));
        if (system(cmd) != 0)
            fprintf(stderr, "cluster_faults: the second PostgreSQL was not running\n");
        pg2_port = 0;
    }
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

/* Messages stored on subject in LAYBY_CMD (the stream keeps them: limits
 * retention), -1 when the stream info does not answer. */
static int64_t
subject_msgs(const char *subject)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Info.SubjectsFilter = subject;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    int64_t n = -1;
    for (int t = 0; t < 50 && si == NULL; t++)
        if (js_GetStreamInfo(&si, bus_js(admin), "LAYBY_CMD", &o, &jerr) != NATS_OK)
            sleep_us(100000);
    if (si != NULL) {
        n = 0;
        for (int i = 0; si->State.Subjects != NULL && i < si->State.Subjects->Count; i++)
            n += (int64_t)si->State.Subjects->List[i].Msgs;
    }
    jsStreamInfo_Destroy(si);
    return n;
}

Test(cluster_faults, sagas_complete_once_through_node_leader_and_daemon_kills)
{
    int phase_s = env_int("LAYBY_CLUSTER_PHASE_S", 6), pct = env_int("LAYBY_CLUSTER_LOAD", 50);
    load.b = tsupport_admin_bus("cluster-load");

    pthread_t pub, mon;
    pthread_create(&mon, NULL, monitor, NULL);
    mark("warm-up");
    pthread_create(&pub, NULL, publisher, (void *)(intptr_t)LOAD_SAGA);
    /* The peak: completions of the warm-up's second half, INFLIGHT at a time. */
    phase_wait(phase_s / 2);
    int c0 = atomic_load(&load.completed);
    int64_t t0 = lb_mono_us();
    phase_wait(phase_s - phase_s / 2);
    double peak = (atomic_load(&load.completed) - c0) * 1e6 / (double)(lb_mono_us() - t0);
    cr_assert_gt(peak, 1.0, "the warm-up completed %.1f sagas/s", peak);
    double rate = peak * pct / 100.0;
    atomic_store(&load.interval_us[LOAD_SAGA], (long long)(1e6 / rate));
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
    int started = atomic_load(&load.started[LOAD_SAGA]);
    cr_expect_eq(atomic_load(&load.failed[LOAD_SAGA]), 0, "%d starts failed to publish; first: %s",
                 atomic_load(&load.failed[LOAD_SAGA]), load.first_error);
    cr_assert(
        tsupport_poll_until(all_completed, &started, TERMINAL_MS),
        "%lld of %d sagas completed within %d s of the load's end",
        (long long)tsupport_sql_int("SELECT count(*) FROM saga.sagas WHERE status = 'COMPLETED'"),
        started, TERMINAL_MS / 1000);
    int64_t pause_ms = phases_report(true);

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
    /* Every start stored once in LAYBY_CMD (publishes sent again kept their
     * Nats-Msg-Id, so the stream dropped the copies); and the commands to the
     * participants: three a saga, more only where a step timed out. */
    int64_t stored = subject_msgs(SAGA_SUBJ_START_BENCH);
    cr_expect_eq(stored, started, "LAYBY_CMD holds %lld starts for %d published", (long long)stored,
                 started);
    fprintf(stderr, "cluster_faults: LAYBY_CMD holds %lld starts, %lld step commands\n",
            (long long)stored, (long long)subject_msgs(SAGA_SUBJ_TEST_DO));
    /* The orchestrator that ran all along published through every fault:
     * its outbox lanes did not stay stuck on acks a dead leader never sent
     * (each of its two publishers may start over once a node's death). */
    int stuck = tsupport_log_count(&procs[ORCH_B], "still unacknowledged");
    fprintf(stderr, "cluster_faults: the twin orchestrator's outbox waited out %d times\n", stuck);
    cr_expect_leq(stuck, 4, "the twin's outbox stayed stuck (%d waits timed out; log %s)", stuck,
                  procs[ORCH_B].log);
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
            atomic_load(&load.failed[LOAD_SAGA]));
    bus_close(load.b);
    load.b = NULL;
}

/* --- the second PostgreSQL cluster ---------------------------------------------------- */

/* Runs snippet in bash with scripts/lib's functions in the harness's layout
 * (its secrets: the roles' passwords are the first cluster's), the second
 * cluster's folder in LB_PG_ROOT (LAYBY_TEST_TMP/pg-2) and its port in PORT. */
static void
pg2_run(int port, const char *snippet)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "bash -c 'set -e; for l in \"%s\"/scripts/lib/*.sh; do . \"$l\"; done; "
             "lb_layout \"$LAYBY_TEST_TMP\"; LB_PG_SECOND=catalog; lb_pg_locate 2; PORT=%d; %s' "
             ">>\"$LAYBY_TEST_TMP/pg2.log\" 2>&1",
             LAYBY_SOURCE_DIR, port, snippet);
    int rc = system(cmd);
    cr_assert(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s failed (%d); see %s/pg2.log",
              snippet, rc, tsupport_env_req("LAYBY_TEST_TMP"));
}

/* url with its port replaced by port (URLs of 127.0.0.1:<port>/). */
static void
url_port(char *out, size_t n, const char *url, int port)
{
    const char *at = strstr(url, "127.0.0.1:");
    cr_assert_not_null(at, "no 127.0.0.1:<port> in %s", url);
    const char *rest = strchr(at + 10, '/');
    cr_assert_not_null(rest);
    snprintf(out, n, "%.*s127.0.0.1:%d%s", (int)(at - url), url, port, rest);
}

static int64_t
pg2_int(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    int64_t v = PQresultStatus(r) == PGRES_TUPLES_OK ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    return v;
}

typedef struct products_want {
    PGconn *pg;
    int64_t n;
} products_want;

static bool
products_reached(void *arg)
{
    products_want *w = arg;
    if (PQstatus(w->pg) != CONNECTION_OK)
        PQreset(w->pg);
    return pg2_int(w->pg, "SELECT count(*) FROM catalog.products") >= w->n;
}

#define PG2_DOWN_S 30

Test(cluster_faults, the_catalogs_database_away_30s_pauses_only_the_catalog)
{
    int phase_s = env_int("LAYBY_CLUSTER_PHASE_S", 6);
    int saga_rate = env_int("LAYBY_CLUSTER_PG_SAGA_RATE", 15);
    int port = pg2_port = tsupport_port_free();
    /* scripts/lib's second cluster: the catalog's role, schema and
     * migrations alone (LB_PG_SECOND), as scripts/dev up --cluster makes it. */
    pg2_run(port, "lb_pg_up 2 $PORT LAYBY_TEST_PG2_PORT");
    static char cat_url[600], admin_url[512];
    char url[512];
    url_port(url, sizeof url, tsupport_env_req("LAYBY_CATALOG_DATABASE_URL"), port);
    snprintf(cat_url, sizeof cat_url, "LAYBY_CATALOG_DATABASE_URL=%s", url);
    url_port(admin_url, sizeof admin_url, tsupport_env_req("LAYBY_TEST_PG_ADMIN_URL"), port);
    PGconn *pg2 = PQconnectdb(admin_url);
    cr_assert_eq(PQstatus(pg2), CONNECTION_OK, "%s", PQerrorMessage(pg2));
    const char *cat_env[] = { cat_url, NULL };
    tsupport_proc *catalog = &procs[CATALOG];
    tsupport_daemon_start(catalog, "layby-catalog", 0, NULL, cat_env);

    load.b = tsupport_admin_bus("cluster-load");
    atomic_store(&load.interval_us[LOAD_SAGA], 1000000 / saga_rate);
    atomic_store(&load.interval_us[LOAD_PRODUCT], 1000000 / 5);
    pthread_t pub[LOADS], mon;
    pthread_create(&mon, NULL, monitor, NULL);
    mark("before");
    for (int k = 0; k < LOADS; k++)
        pthread_create(&pub[k], NULL, publisher, (void *)(intptr_t)k);
    phase_wait(phase_s);

    mark("pg2 stopped");
    pg2_run(port, "lb_pg_stop");
    int64_t before = atomic_load(&load.completed);
    phase_wait(PG2_DOWN_S);
    int64_t during = atomic_load(&load.completed) - before;
    pg2_run(port, "lb_pg_start $PORT LAYBY_TEST_PG2_PORT");
    PQreset(pg2);
    int64_t held = pg2_int(pg2, "SELECT count(*) FROM catalog.products");
    mark("pg2 back");
    /* The catalog's backlog: what was published while its database was away. */
    int64_t t_back = lb_mono_us();
    products_want backlog = { pg2, atomic_load(&load.started[LOAD_PRODUCT]) };
    cr_expect(tsupport_poll_until(products_reached, &backlog, TERMINAL_MS),
              "the catalog did not catch up within %d s", TERMINAL_MS / 1000);
    double catch_up_s = (double)(lb_mono_us() - t_back) / 1e6;
    if (catch_up_s < phase_s)
        phase_wait(phase_s - (int)catch_up_s);
    mark("end");
    atomic_store(&load.stop, true);
    for (int k = 0; k < LOADS; k++)
        pthread_join(pub[k], NULL);
    pthread_join(mon, NULL);

    int sagas = atomic_load(&load.started[LOAD_SAGA]);
    int products = atomic_load(&load.started[LOAD_PRODUCT]);
    cr_expect_eq(atomic_load(&load.failed[LOAD_SAGA]) + atomic_load(&load.failed[LOAD_PRODUCT]), 0,
                 "publishes failed; first: %s", load.first_error);
    /* The others went on: sagas (orchestrators and participants on the first
     * cluster) completed all through the outage. */
    cr_expect_gt(during, (int64_t)saga_rate * PG2_DOWN_S / 4,
                 "only %lld sagas completed while the catalog's database was away",
                 (long long)during);
    /* The catalog paused (it wrote nothing it could not) but lived through it... */
    cr_expect(tsupport_daemon_alive(catalog), "the catalog died with its database (log %s)",
              catalog->log);
    /* ... and resumed: every product published is there, once. */
    products_want w = { pg2, products };
    cr_expect(tsupport_poll_until(products_reached, &w, TERMINAL_MS),
              "%lld of %d products after the outage",
              (long long)pg2_int(pg2, "SELECT count(*) FROM catalog.products"), products);
    fprintf(stderr,
            "cluster_faults: catalog: %lld products when its database came back (none written "
            "while away), its backlog of %lld stored %.1f s later; %d published in all; sagas "
            "completed during the outage: %lld (%.1f/s)\n",
            (long long)held, (long long)(backlog.n - held), catch_up_s, products, (long long)during,
            (double)during / PG2_DOWN_S);
    cr_expect(tsupport_poll_until(all_completed, &sagas, TERMINAL_MS), "sagas left unfinished");
    phases_report(false);
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM saga.sagas"), sagas);
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.effects WHERE kind = 'do'"),
                 3LL * sagas, "effects of %d sagas' 3 steps", sagas);
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM (SELECT 1 FROM sagatest.effects "
                                  "GROUP BY saga_id, step, kind HAVING count(*) > 1) d"),
                 0, "a step had a second effect");
    char *out = NULL;
    const char *args[] = { "dlq", "list", "--json", "--limit", "1000", NULL };
    cr_expect_eq(tsupport_ctl_run(&out, false, NULL, args), 0, "layby-ctl dlq list: %s", out);
    cr_expect(out != NULL && strchr(out, '{') == NULL, "dead letters after the run:\n%s", out);
    free(out);

    tsupport_daemons_stop_checked(catalog, 1);
    PQfinish(pg2);
    pg2_run(port, "lb_pg_stop");
    pg2_port = 0;
    bus_close(load.b);
    load.b = NULL;
}
