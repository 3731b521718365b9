/* cluster_faults_test.c - checkouts and sagas on a three-node NATS cluster
 * and two PostgreSQL clusters through their faults (issue 23): every stream
 * and bucket at 3 replicas (layby-ctl bus setup --replicas 3), two instances
 * of every shop daemon (catalog, order, payment, delivery, orchestrator,
 * edge) and of the test participant (layby-sagatest), all given the three
 * nodes as their LAYBY_NATS_URL list; the catalog on a second PostgreSQL
 * cluster (scripts/lib's lb_pg_up 2, LB_PG_SECOND=catalog, as scripts/dev up
 * --cluster places it).
 *
 * The load: checkouts (tests/support/tcheckout.h: place + pay, each POST
 * with its Idempotency-Key, half the clients on each edge, a repeat after no
 * answer sent to the other edge) at half the peak a closed-loop warm-up
 * measured, and beside them "sagabench" test sagas (three steps on the test
 * participants, orchestrated on the first PostgreSQL cluster) at a steady
 * rate. Faults, back to back:
 *   1. one NATS node (not LAYBY_CMD's leader) SIGKILLed, restarted 3 s later;
 *   2. the node leading LAYBY_CMD (stream info, cluster.leader) SIGKILLed,
 *      restarted 3 s later;
 *   3. one instance of each daemon SIGKILLed; the twins carry on alone for a
 *      phase, then the killed ones start again;
 *   4. the second PostgreSQL cluster (the catalog's) stopped for
 *      LAYBY_CLUSTER_PG_DOWN_S (the 30 s in the long run, 10 s in
 *      CI): checkouts pause (the catalog reserves their stock), the test
 *      sagas on the first cluster go on, everything resumes.
 * Afterwards: every accepted checkout's order exists once and no other, one
 * captured charge per paid order and none twice, `layby-ctl audit` passes,
 * every test saga completed once with one effect per step, every start
 * stored once in LAYBY_CMD, nothing dead-lettered, no pause without
 * completions near a step's timeout. The completions per second of each
 * phase and the longest pause are printed (`cluster_faults:` lines, the
 * figures docs/BENCHMARKS.md takes). Then layby-ctl on the clustered set-up:
 * `status` asks both instances of each daemon, `db status|migrate` checks and
 * applies the catalog's migrations on its own cluster.
 *
 * Length: LAYBY_CLUSTER_LONG=1 is the long version the docs quote (30 s
 * phases, the catalog's database away 30 s: ~7 min under ASan); the default
 * is CI's (4 s phases, 10 s away: under 3 min). LAYBY_CLUSTER_PHASE_S,
 * LAYBY_CLUSTER_PG_DOWN_S, LAYBY_CLUSTER_LOAD (per cent of the peak, 50) and
 * LAYBY_CLUSTER_SAGA_RATE (test sagas a second, 10) override either.
 * The NATS cluster is the suite's own (tests/support/tcluster.h) with the
 * harness's users; the first PostgreSQL is the harness's. */
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
#include "engine/svc_table.h"
#include "layby/v1/saga.pb-c.h"
#include "sagas_test.h"
#include "tcheckout.h"
#include "tcluster.h"
#include "tsupport.h"

#define SAGAS_MAX   20000
#define FLOWS_MAX   20000
#define CLIENTS     8      /* checkout clients, closed loop in the warm-up */
#define TERMINAL_MS 120000 /* every saga finished within this after the load */
#define NODE_DOWN_S 3      /* a killed node stays down this long */

/* --- the daemons ------------------------------------------------------------------ */

/* clang-format off */
/* Short durations (DESIGN §6): an order's saga ends seconds after it is paid,
 * so every saga is finished soon after the load. A payment deadline far
 * beyond a fault: a checkout paid late is still paid. */
static const char *const orchestrator_env[] = {
    "LAYBY_FAST=1",
    "LAYBY_PAYMENT_DEADLINE=60s",
    "LAYBY_SHIP_DELAY=600ms",
    "LAYBY_DELIVER_DELAY=600ms",
    "LAYBY_RETURN_WINDOW=2s",
    "LAYBY_RETURN_DELAY=600ms",
    "LAYBY_ORDER_STEP_TIMEOUT=10s",
    NULL,
};
static const char *const shop[] = {
    "layby-order", "layby-payment", "layby-delivery", "layby-orchestrator", "layby-edge",
    "layby-catalog", /* last: its database (cluster 2) is made meanwhile */
};
/* clang-format on */
enum {
    SHOP = LB_COUNTOF(shop),
    SAGATEST = SHOP, /* the test participant: daemon row SHOP */
    ORCH = 3,
    EDGE = 4,
    CATALOG = 5,
    INSTANCES = 2,
    PROCS = (SHOP + 1) * INSTANCES,
};
#define PROC(d, i) ((d)*INSTANCES + (i)) /* instance i (0, 1) of daemon row d */

static tsupport_proc procs[PROCS];
static int ports[PROCS]; /* instance 2's own port; 0 = the harness's */
static char env_buf[PROCS][4][600];
static const char *envs[PROCS][16];
static char catalog_url[600]; /* LAYBY_CATALOG_DATABASE_URL=<cluster 2> */

static const char *
port_var(const char *binary)
{
    for (size_t i = 0; i < svc_table_n_daemons; i++)
        if (strcmp(svc_table_daemons[i].binary, binary) == 0)
            return svc_table_daemons[i].port_env;
    return "LAYBY_SAGATEST_METRICS_PORT";
}

/* The environment of procs[k]: its daemon's, and for instance 2 its port and name. */
static void
env_init(int d, int i)
{
    int k = PROC(d, i), n = 0;
    for (size_t e = 0; d == ORCH && orchestrator_env[e] != NULL; e++)
        envs[k][n++] = orchestrator_env[e];
    if (d == CATALOG)
        envs[k][n++] = catalog_url;
    if (i == 1) {
        ports[k] = tsupport_port_free();
        snprintf(env_buf[k][0], sizeof env_buf[k][0], "%s=%d",
                 d == SAGATEST ? "LAYBY_SAGATEST_METRICS_PORT" : port_var(shop[d]), ports[k]);
        envs[k][n++] = env_buf[k][0];
        envs[k][n++] = "LAYBY_INSTANCE=2";
    }
    envs[k][n] = NULL;
}

/* Forks procs[PROC(d, i)]; procs_ready() waits for it. Started together,
 * the daemons' starts overlap (sequential, 14 ASan daemons took 60-100 s at
 * load 25-40). */
static void
proc_spawn(int d, int i)
{
    int k = PROC(d, i);
    if (d == SAGATEST)
        tsupport_sagatest_spawn(&procs[k], envs[k]);
    else
        tsupport_daemon_spawn(&procs[k], shop[d], ports[k], NULL, envs[k]);
}

#define READY_MS 120000 /* for all at once, on a loaded machine */

/* Waits until every spawned instance i (-1: both) of the daemons answers. */
static void
procs_ready(int i)
{
    for (int d = 0; d <= SHOP; d++)
        for (int k = 0; k < INSTANCES; k++)
            if ((i < 0 || k == i) && procs[PROC(d, k)].pid > 0)
                tsupport_daemon_wait_ready(&procs[PROC(d, k)], READY_MS);
}

/* --- the test sagas and what watches them ------------------------------------------ */

static struct {
    bus *b;
    atomic_bool stop;
    atomic_llong interval_us;
    atomic_int started, failed;
    atomic_int completed; /* test sagas: the monitor's last count */
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

/* Starts test sagas at load.interval_us until told to stop; never asserts. */
static void *
publisher(void *arg)
{
    (void)arg;
    int64_t next = lb_mono_us();
    while (!atomic_load(&load.stop) && atomic_load(&load.started) < SAGAS_MAX) {
        next += atomic_load(&load.interval_us);
        int64_t now = lb_mono_us();
        /* Behind after a publish that waited out a fault: go on at the rate
         * from now rather than in a burst. */
        if (next < now - 1000000)
            next = now;
        sleep_us(next - now);
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

#define BENCH_DONE \
    "SELECT count(*) FROM saga.sagas WHERE saga_type = 'sagabench' AND status = 'COMPLETED'"

/* Counts completed test sagas every 50 ms on a session of its own. */
static void *
monitor(void *arg)
{
    (void)arg;
    PGconn *pg = PQconnectdb(tsupport_env("LAYBY_TEST_PG_ADMIN_URL"));
    while (!atomic_load(&load.stop)) {
        PGresult *r = PQexec(pg, BENCH_DONE);
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
    int64_t at_ms[MARKS_MAX];    /* wall clock: finished_at and done_ms are too */
    const char *name[MARKS_MAX]; /* of the phase that starts here */
} marks;

static tcheckout_run co;

static void
mark(const char *phase)
{
    cr_assert_lt(marks.n, MARKS_MAX);
    marks.at_ms[marks.n] = lb_now_ms();
    marks.name[marks.n++] = phase;
    fprintf(stderr, "cluster_faults: %s at +%.1f s (checkouts %d started, %d paid; sagas %d, %d)\n",
            phase, (double)(marks.at_ms[marks.n - 1] - marks.at_ms[0]) / 1000.0,
            tcheckout_started(&co), atomic_load(&co.paid_flows), atomic_load(&load.started),
            atomic_load(&load.completed));
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Prints the completions per second of each phase of t (n sorted wall-clock
 * ms) and the longest pause without one (the warm-up, phase 0, is no phase
 * under load); returns that pause in ms, of the phases up to last (a name,
 * NULL = all). */
static int64_t
phases_report(const char *what, const int64_t *t, int n, const char *last)
{
    int64_t worst = 0;
    const char *worst_in = "";
    int k = 0;
    bool judged = true;
    for (int p = 0; p + 1 < marks.n; p++) {
        int64_t from = marks.at_ms[p], to = marks.at_ms[p + 1], prev = from, gap = 0;
        while (k < n && t[k] < from)
            k++;
        int count = 0;
        for (; k < n && t[k] < to; k++, count++) {
            if (t[k] - prev > gap)
                gap = t[k] - prev;
            prev = t[k];
        }
        if (to - prev > gap)
            gap = to - prev;
        double secs = (double)(to - from) / 1000.0;
        fprintf(stderr,
                "cluster_faults: %-9s phase %-15s %5.1f s %5d completed %6.1f/s  longest pause "
                "%5.2f s\n",
                what, marks.name[p], secs, count, secs > 0 ? count / secs : 0.0,
                (double)gap / 1000.0);
        if (p > 0 && judged && gap > worst) {
            worst = gap;
            worst_in = marks.name[p];
        }
        if (last != NULL && strcmp(marks.name[p], last) == 0)
            judged = false;
    }
    fprintf(stderr, "cluster_faults: %s: longest pause without completions %.2f s (%s)\n", what,
            (double)worst / 1000.0, worst_in);
    return worst;
}

/* --- the second PostgreSQL cluster ---------------------------------------------------- */

/* Runs snippet in bash with scripts/lib's functions in the harness's layout
 * (its secrets: the roles' passwords are the first cluster's), the second
 * cluster's folder in LB_PG_ROOT (LAYBY_TEST_TMP/pg-2) and its port in PORT.
 * Returns system()'s status; asserts nothing (a thread may call it). */
static int
pg2_system(int port, const char *snippet)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "bash -c 'set -e; for l in \"%s\"/scripts/lib/*.sh; do . \"$l\"; done; "
             "lb_layout \"$LAYBY_TEST_TMP\"; LB_PG_SECOND=catalog; lb_pg_locate 2; PORT=%d; %s' "
             ">>\"$LAYBY_TEST_TMP/pg2.log\" 2>&1",
             LAYBY_SOURCE_DIR, port, snippet);
    return system(cmd);
}

static void
pg2_run(int port, const char *snippet)
{
    int rc = pg2_system(port, snippet);
    cr_assert(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s failed (%d); see %s/pg2.log",
              snippet, rc, tsupport_env_req("LAYBY_TEST_TMP"));
}

static int pg2_port; /* the second PostgreSQL's while it may run */
static int pg2_up_rc;

/* Makes cluster 2 (initdb, the catalog's role, schema and migrations) while
 * the daemons of cluster 1 start. */
static void *
pg2_up(void *arg)
{
    (void)arg;
    pg2_up_rc = pg2_system(pg2_port, "lb_pg_up 2 $PORT LAYBY_TEST_PG2_PORT");
    return NULL;
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

/* --- set-up -------------------------------------------------------------------------- */

static tcluster cl;
static bus *admin;
static char saved_url[512];

static void
setup(void)
{
    tsupport_reset(); /* the harness's stack: empty tables */
    snprintf(saved_url, sizeof saved_url, "%s", tsupport_env_req("LAYBY_NATS_URL"));
    pg2_port = tsupport_port_free();
    pthread_t pg2;
    pthread_create(&pg2, NULL, pg2_up, NULL);
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

    char url[512];
    url_port(url, sizeof url, tsupport_env_req("LAYBY_CATALOG_DATABASE_URL"), pg2_port);
    snprintf(catalog_url, sizeof catalog_url, "LAYBY_CATALOG_DATABASE_URL=%s", url);
    for (int d = 0; d <= SHOP; d++)
        for (int i = 0; i < INSTANCES; i++)
            env_init(d, i);
    for (int d = 0; d <= SHOP; d++) {
        if (d == CATALOG) {
            pthread_join(pg2, NULL);
            cr_assert(pg2_up_rc != -1 && WIFEXITED(pg2_up_rc) && WEXITSTATUS(pg2_up_rc) == 0,
                      "lb_pg_up 2 failed (%d); see %s/pg2.log", pg2_up_rc,
                      tsupport_env_req("LAYBY_TEST_TMP"));
        }
        for (int i = 0; i < INSTANCES; i++)
            proc_spawn(d, i);
    }
    procs_ready(-1);
}

static void
teardown(void)
{
    atomic_store(&load.stop, true);
    tcheckout_free(&co); /* its clients first: they use the flows */
    tsupport_daemons_finish(procs, PROCS);
    bus_close(admin);
    admin = NULL;
    tcluster_stop(&cl);
    if (pg2_port != 0) { /* never leave it running */
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

TestSuite(cluster_faults, .init = setup, .fini = teardown, .timeout = 1200);

static int
env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v != NULL && atoi(v) > 0 ? atoi(v) : def;
}

static bool
sagas_finished(void *arg)
{
    (void)arg;
    return tsupport_sql_int("SELECT count(*) FROM saga.sagas WHERE finished_at IS NULL") == 0;
}

/* Messages stored on subject in LAYBY_CMD (limits retention keeps them), -1
 * when the stream info does not answer. */
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

static void
phase_wait(int secs)
{
    sleep_us((int64_t)secs * 1000000);
}

/* The faults, back to back; each phase_s long but the nodes' 3 s. */
static void
faults_run(int phase_s, int pg_down_s)
{
    int leader = tcluster_leader(&cl, bus_js(admin), "LAYBY_CMD");
    int first = leader == 0 ? 1 : 0;
    mark("node killed");
    tcluster_node_kill(&cl, first);
    phase_wait(NODE_DOWN_S);
    tcluster_node_start(&cl, first);
    mark("node back");
    phase_wait(phase_s);

    leader = tcluster_leader(&cl, bus_js(admin), "LAYBY_CMD");
    cr_assert_geq(leader, 0, "LAYBY_CMD has no leader");
    fprintf(stderr, "cluster_faults: LAYBY_CMD led by %s\n", cl.nodes[leader].name);
    mark("leader killed");
    tcluster_node_kill(&cl, leader);
    phase_wait(NODE_DOWN_S);
    tcluster_node_start(&cl, leader);
    mark("leader back");
    phase_wait(phase_s);

    mark("daemons killed"); /* instance 1 of each; the twins carry on */
    for (int d = 0; d <= SHOP; d++)
        tsupport_daemon_kill(&procs[PROC(d, 0)]);
    phase_wait(phase_s);
    for (int d = 0; d <= SHOP; d++)
        proc_spawn(d, 0);
    procs_ready(0);
    mark("daemons back");
    phase_wait(phase_s);

    mark("pg2 stopped");
    pg2_run(pg2_port, "lb_pg_stop");
    phase_wait(pg_down_s);
    pg2_run(pg2_port, "lb_pg_start $PORT LAYBY_TEST_PG2_PORT");
    mark("pg2 back");
    phase_wait(phase_s);
    mark("end");
}

/* The done times of the paid checkouts, sorted; *n their count. */
static int64_t *
checkout_times(int *n)
{
    int started = tcheckout_started(&co);
    int64_t *t = calloc((size_t)started + 1, sizeof *t);
    cr_assert_not_null(t);
    *n = 0;
    for (int i = 0; i < started; i++)
        if (co.flows[i].done_ms > 0)
            t[(*n)++] = co.flows[i].done_ms;
    qsort(t, (size_t)*n, sizeof *t, cmp_i64);
    return t;
}

static int64_t *
saga_times(int *n)
{
    PGresult *r = PQexec(tsupport_pg(),
                         "SELECT (extract(epoch FROM finished_at) * 1000)::bigint FROM saga.sagas "
                         "WHERE saga_type = 'sagabench' AND status = 'COMPLETED' ORDER BY 1");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(tsupport_pg()));
    *n = PQntuples(r);
    int64_t *t = calloc((size_t)*n + 1, sizeof *t);
    cr_assert_not_null(t);
    for (int i = 0; i < *n; i++)
        t[i] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    PQclear(r);
    return t;
}

/* --- the checks after the load ------------------------------------------------------ */

/* Every accepted checkout's order exists once, nothing else ordered, one
 * captured charge for each paid order and no order charged twice. */
static void
checkouts_check(int *accepted_out, int *paid_out)
{
    int started = tcheckout_started(&co), accepted = 0, paid = 0, unanswered = 0, other = 0;
    int repeats = 0, moves = 0;
    size_t cap = (size_t)started * (ID_STR_LEN + 3) + 128, len = 0;
    char *ids = malloc(cap), *paid_ids = malloc(cap);
    cr_assert(ids != NULL && paid_ids != NULL);
    ids[0] = paid_ids[0] = '\0';
    size_t plen = 0;
    for (int i = 0; i < started; i++) {
        const tcheckout_flow *f = &co.flows[i];
        repeats += f->repeats;
        moves += f->edge_moves;
        if (f->place_status == 201 || f->place_status == 202) {
            cr_assert(id_valid(f->order), "checkout %d: accepted without an order id", i);
            len += (size_t)snprintf(ids + len, cap - len, "%s%s", accepted++ ? "," : "", f->order);
            if (f->pay_status == 200)
                plen += (size_t)snprintf(paid_ids + plen, cap - plen, "%s%s", paid++ ? "," : "",
                                         f->order);
        } else if (f->place_status == 0) {
            unanswered++;
        } else if (other++ == 0) {
            fprintf(stderr, "cluster_faults: checkout %d: place answered %ld\n", i,
                    f->place_status);
        }
    }
    cr_expect_eq(unanswered, 0, "%d places never answered", unanswered);
    cr_expect_eq(other, 0, "%d places answered neither 201 nor 202", other);
    char *q = malloc(cap + 256);
    cr_assert_not_null(q);
    snprintf(q, cap + 256,
             "SELECT count(*) FROM orders.orders WHERE order_id = ANY('{%s}'::uuid[])", ids);
    cr_expect_eq(tsupport_sql_int(q), accepted, "orders of %d accepted checkouts", accepted);
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM orders.orders"), accepted,
                 "orders besides the accepted checkouts' (a repeat made a second one?)");
    snprintf(q, cap + 256,
             "SELECT count(*) FROM payment.charges WHERE status = 'CAPTURED' AND "
             "order_id = ANY('{%s}'::uuid[])",
             paid_ids);
    cr_expect_eq(tsupport_sql_int(q), paid, "captured charges of %d paid checkouts", paid);
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM (SELECT order_id FROM payment.charges "
                                  "WHERE status = 'CAPTURED' GROUP BY order_id "
                                  "HAVING count(*) > 1) t"),
                 0, "orders charged twice");
    fprintf(stderr,
            "cluster_faults: checkouts: %d started, %d accepted, %d paid; %d calls repeated, %d of "
            "them on the other edge\n",
            started, accepted, paid, repeats, moves);
    free(q);
    free(ids);
    free(paid_ids);
    *accepted_out = accepted;
    *paid_out = paid;
}

/* Every test saga completed once, one effect per step, every start stored once. */
static void
sagas_check(int started)
{
    cr_expect_eq(atomic_load(&load.failed), 0, "%d starts failed to publish; first: %s",
                 atomic_load(&load.failed), load.first_error);
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM saga.sagas WHERE saga_type = 'sagabench'"),
                 started, "test sagas stored for %d started", started);
    cr_expect_eq(tsupport_sql_int(BENCH_DONE), started, "test sagas completed of %d", started);
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.effects WHERE kind = 'do'"),
                 3LL * started, "effects of %d sagas' 3 steps", started);
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM (SELECT 1 FROM sagatest.effects "
                                  "GROUP BY saga_id, step, kind HAVING count(*) > 1) d"),
                 0, "a step had a second effect");
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM sagatest.effects WHERE kind = 'undo'"), 0,
                 "a step was undone");
    /* Publishes sent again kept their Nats-Msg-Id, so the stream dropped the copies. */
    int64_t stored = subject_msgs(SAGA_SUBJ_START_BENCH);
    cr_expect_eq(stored, started, "LAYBY_CMD holds %lld test saga starts for %d published",
                 (long long)stored, started);
    fprintf(stderr, "cluster_faults: LAYBY_CMD holds %lld test saga starts, %lld step commands\n",
            (long long)stored, (long long)subject_msgs(SAGA_SUBJ_TEST_DO));
}

/* `layby-ctl audit` and `dlq list`: the books balance, nothing dead-lettered. */
static void
books_check(void)
{
    char *out = NULL;
    const char *audit[] = { "audit", "--settle", "0", NULL };
    cr_expect_eq(tsupport_ctl_run(&out, true, NULL, audit), 0, "layby-ctl audit: %s", out);
    fprintf(stderr, "%s", out != NULL ? out : "");
    free(out);
    const char *dlq[] = { "dlq", "list", "--json", "--limit", "1000", NULL };
    cr_expect_eq(tsupport_ctl_run(&out, false, NULL, dlq), 0, "layby-ctl dlq list: %s", out);
    cr_expect(out != NULL && strchr(out, '{') == NULL, "dead letters after the run:\n%s", out);
    free(out);
    /* The orchestrator that ran all along published through every fault: its
     * outbox lanes did not stay stuck on acks a dead leader never sent (each
     * of its two publishers may start over once a node's death). */
    int stuck = tsupport_log_count(&procs[PROC(ORCH, 1)], "still unacknowledged");
    fprintf(stderr, "cluster_faults: the twin orchestrator's outbox waited out %d times\n", stuck);
    cr_expect_leq(stuck, 4, "the twin's outbox stayed stuck (%d waits timed out; log %s)", stuck,
                  procs[PROC(ORCH, 1)].log);
}

/* layby-ctl on the clustered set-up: status asks both instances of each
 * daemon (their ports as scripts/dev's env file names them). */
static void
ctl_status_check(void)
{
    static char env_s[SHOP + 2][128];
    const char *env[SHOP + 3];
    int n = 0;
    snprintf(env_s[n], sizeof env_s[n], "LAYBY_INSTANCES=2");
    env[n] = env_s[n];
    n++;
    for (int d = 0; d < SHOP; d++, n++) {
        snprintf(env_s[n], sizeof env_s[n], "%s_2=%d", port_var(shop[d]), ports[PROC(d, 1)]);
        env[n] = env_s[n];
    }
    env[n] = NULL;
    char *out = NULL;
    const char *args[] = { "status", "--json", NULL };
    tsupport_ctl_run(&out, false, env, args); /* member and mailer do not run here: 1 */
    json_t *doc = json_loads(out != NULL ? out : "", 0, NULL);
    cr_assert_not_null(doc, "layby-ctl status --json: %s", out);
    int ok = 0;
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(doc, "daemons"), i, o)
    {
        const char *name = json_string_value(json_object_get(o, "name"));
        for (int d = 0; d < SHOP; d++)
            for (int k = 0; k < INSTANCES; k++) {
                char want[64];
                snprintf(want, sizeof want, k == 0 ? "%s" : "%s-2", shop[d]);
                ok += strcmp(name, want) == 0 && json_is_true(json_object_get(o, "ok"));
            }
    }
    cr_expect_eq(ok, SHOP * INSTANCES, "instances answering in layby-ctl status: %s", out);
    json_decref(doc);
    free(out);
}

/* layby-ctl db: the catalog's migrations live on cluster 2 (its service's
 * LAYBY_CATALOG_DATABASE_URL): status finds them applied there, not pending
 * on cluster 1; a new catalog migration is applied there and only there. */
static void
ctl_db_check(void)
{
    char url[512], admin2[512];
    url_port(url, sizeof url, tsupport_env_req("LAYBY_CATALOG_DATABASE_URL"), pg2_port);
    url_port(admin2, sizeof admin2, tsupport_env_req("LAYBY_TEST_PG_ADMIN_URL"), pg2_port);
    char *out = NULL, sql[600], where2[32], dir[] = "/tmp/ctl-db-placed-XXXXXX";
    snprintf(sql, sizeof sql, "%s/sql", LAYBY_SOURCE_DIR);
    snprintf(where2, sizeof where2, "127.0.0.1:%d", pg2_port);
    const char *env[] = { catalog_url, NULL };
    const char *st[] = { "db",
                         "status",
                         "--json",
                         "--sql-dir",
                         sql,
                         "--admin-url",
                         tsupport_env_req("LAYBY_TEST_PG_ADMIN_URL"),
                         NULL };
    cr_expect_eq(tsupport_ctl_run(&out, false, env, st), 0, "db status: %s", out);
    json_t *doc = json_loads(out != NULL ? out : "", 0, NULL);
    cr_assert_not_null(doc, "db status --json: %s", out);
    int catalog_there = 0, catalog_elsewhere = 0;
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(doc, "migrations"), i, o)
    {
        const char *schema = json_string_value(json_object_get(o, "schema"));
        const char *name = json_string_value(json_object_get(o, "name"));
        bool cat = strcmp(schema, "catalog") == 0 || strstr(name, "_public_catalog_") != NULL;
        bool there = strcmp(json_string_value(json_object_get(o, "server")), where2) == 0;
        catalog_there += cat && there;
        catalog_elsewhere += cat && !there;
    }
    cr_expect_gt(catalog_there, 0, "no catalog migration checked on %s: %s", where2, out);
    cr_expect_eq(catalog_elsewhere, 0, "catalog migrations checked off its cluster: %s", out);
    /* The shared inbox and outbox: each schema checked once, where it lives. */
    size_t shared_ok = 0, shared_misplaced = 0;
    json_array_foreach(json_object_get(doc, "shared"), i, o)
    {
        bool cat = strcmp(json_string_value(json_object_get(o, "schema")), "catalog") == 0;
        bool there = strcmp(json_string_value(json_object_get(o, "server")), where2) == 0;
        shared_ok += strcmp(json_string_value(json_object_get(o, "state")), "applied") == 0;
        shared_misplaced += cat != there;
    }
    cr_expect_eq(shared_ok, svc_table_n_schemas, "shared tables: %s", out);
    cr_expect_eq(shared_misplaced, 0, "shared tables checked off their cluster: %s", out);
    json_decref(doc);
    free(out);

    /* A new catalog migration: applied on cluster 2 as the catalog's role. */
    cr_assert_not_null(mkdtemp(dir));
    char path[600];
    snprintf(path, sizeof path, "%s/1019_catalog_ctl_placed.sql", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("CREATE TABLE ctl_placed (x int);\n", f);
    fclose(f);
    const char *mig[] = { "db", "migrate",     "--sql-dir",
                          dir,  "--admin-url", tsupport_env_req("LAYBY_TEST_PG_ADMIN_URL"),
                          NULL };
    cr_expect_eq(tsupport_ctl_run(&out, true, env, mig), 0, "db migrate: %s", out);
    free(out);
    PGconn *pg2 = PQconnectdb(admin2);
    PGresult *r = PQexec(pg2, "SELECT count(*) FROM pg_tables WHERE schemaname = 'catalog' AND "
                              "tablename = 'ctl_placed' AND tableowner = 'catalog'");
    cr_expect(PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) == 1,
              "catalog.ctl_placed not made on cluster 2: %s", PQerrorMessage(pg2));
    PQclear(r);
    PQfinish(pg2);
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM pg_tables WHERE tablename = 'ctl_placed'"),
                 0, "made on cluster 1");
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM public.schema_migrations "
                                  "WHERE version = 1019"),
                 0, "recorded on cluster 1");
    snprintf(path, sizeof path, "rm -rf %s", dir);
    cr_expect_eq(system(path), 0);
}

Test(cluster_faults, checkouts_and_sagas_through_node_leader_daemon_and_database_faults)
{
    bool longer = env_int("LAYBY_CLUSTER_LONG", 0) > 0;
    int phase_s = env_int("LAYBY_CLUSTER_PHASE_S", longer ? 30 : 4);
    int pg_down_s = env_int("LAYBY_CLUSTER_PG_DOWN_S", longer ? 30 : 10);
    int pct = env_int("LAYBY_CLUSTER_LOAD", 50), saga_rate = env_int("LAYBY_CLUSTER_SAGA_RATE", 10);
    fprintf(stderr,
            "cluster_faults: %s version: phases %d s, the catalog's database away %d s, "
            "checkouts at %d %% of the peak, test sagas %d/s\n",
            longer ? "long" : "CI", phase_s, pg_down_s, pct, saga_rate);
    int edges[INSTANCES];
    for (int i = 0; i < INSTANCES; i++)
        edges[i] = procs[PROC(EDGE, i)].port;
    tcheckout_setup(&co, edges, INSTANCES, CLIENTS, FLOWS_MAX);

    load.b = tsupport_admin_bus("cluster-load");
    atomic_store(&load.interval_us, 1000000 / saga_rate);
    pthread_t pub, mon;
    pthread_create(&mon, NULL, monitor, NULL);
    mark("warm-up");
    tcheckout_start(&co);
    pthread_create(&pub, NULL, publisher, NULL);
    /* The peak: checkouts paid CLIENTS at a time, once each client has paid
     * one (a first checkout warms every daemon's sessions and caches: at load
     * 40 that took longer than a CI phase), over at least a phase. */
    int64_t warm_until = lb_mono_us() + 120 * 1000000LL;
    while (atomic_load(&co.paid_flows) < CLIENTS && lb_mono_us() < warm_until)
        sleep_us(100000);
    int c0 = atomic_load(&co.paid_flows);
    int64_t t0 = lb_mono_us();
    phase_wait(phase_s);
    while (atomic_load(&co.paid_flows) - c0 < CLIENTS && lb_mono_us() < warm_until)
        sleep_us(100000);
    double peak = (atomic_load(&co.paid_flows) - c0) * 1e6 / (double)(lb_mono_us() - t0);
    cr_assert_gt(peak, 0.1, "the warm-up paid %.2f checkouts/s", peak);
    tcheckout_pace(&co, peak * pct / 100.0);
    fprintf(stderr, "cluster_faults: peak %.1f checkouts/s, load %.1f/s (%d %%)\n", peak,
            peak * pct / 100.0, pct);
    mark("before");
    phase_wait(phase_s);

    faults_run(phase_s, pg_down_s);

    tcheckout_stop(&co);
    atomic_store(&load.stop, true);
    pthread_join(pub, NULL);
    pthread_join(mon, NULL);
    cr_assert(
        tsupport_poll_until(sagas_finished, NULL, TERMINAL_MS),
        "%lld sagas unfinished %d s after the load",
        (long long)tsupport_sql_int("SELECT count(*) FROM saga.sagas WHERE finished_at IS NULL"),
        TERMINAL_MS / 1000);

    int n = 0, accepted = 0, paid = 0;
    int64_t *t = checkout_times(&n);
    /* The checkouts' pause is judged up to the catalog's outage: they wait
     * for its database by design. */
    int64_t co_pause = phases_report("checkouts", t, n, "daemons back");
    free(t);
    t = saga_times(&n);
    int64_t saga_pause = phases_report("sagas", t, n, NULL);
    /* The others went on while the catalog's database was away. */
    int during = 0;
    for (int k = 0; k + 1 < marks.n; k++)
        if (strcmp(marks.name[k], "pg2 stopped") == 0)
            for (int j = 0; j < n; j++)
                during += t[j] >= marks.at_ms[k] && t[j] < marks.at_ms[k + 1];
    free(t);
    cr_expect_gt(during, saga_rate * pg_down_s / 4,
                 "only %d test sagas completed while the catalog's database was away", during);

    checkouts_check(&accepted, &paid);
    cr_expect_gt(paid, 0, "no checkout was paid");
    sagas_check(atomic_load(&load.started));
    books_check();
    /* A bound that holds on a loaded machine: the faults pause the flow for
     * seconds (AckWait, leader elections, restarts), not for a step's timeout. */
    cr_expect_lt(co_pause, 30000, "checkouts stopped for %.1f s", (double)co_pause / 1000.0);
    cr_expect_lt(saga_pause, 30000, "test sagas stopped for %.1f s", (double)saga_pause / 1000.0);

    ctl_status_check();
    ctl_db_check();
    bus_close(load.b);
    load.b = NULL;
    tsupport_daemons_stop_checked(procs, PROCS);
}
