/* chaos_test.c - the chaos run of issue 22 (the randomized run of issue 20
 * grown into it): mixed order flows (place, pay, decline, cancel, deadline,
 * return, from the wishlist, out of stock, restocks) through the edge from
 * many clients at once, with short durations, for LAYBY_CHAOS_SECONDS
 * (default 120: the CI version; bench/chaos.sh runs 600 on a Release build).
 * After a fault-free warm-up whose rate is taken as the peak, flows start
 * paced at half of it while faults come every 20-40 s (scaled down for
 * short runs; tests/support/tchaos.c plans and causes them):
 *   - a random daemon SIGKILLed and restarted (catalog, order, payment,
 *     delivery, edge, either orchestrator);
 *   - the orchestrator runs twice; one instance is killed and the other
 *     carries on alone for a while;
 *   - nats-server SIGKILLed and restarted, twice;
 *   - PostgreSQL stopped with `pg_ctl stop -m immediate` and restarted once;
 *   - a service's database sessions cut (pg_terminate_backend), three times.
 * Then every saga is terminal within 60 s of the load's end, and:
 *   - `layby-ctl audit --settle 0` passes (stock and money across services);
 *   - no order has two captures (payment's own table);
 *   - every accepted POST /api/v1/orders (201 or 202) has its order;
 *   - per product, initial + restocked = available + reserved + sold -
 *     returned from the catalog's own table, and nothing is left reserved;
 *   - no order is left PENDING or PAYMENT_PENDING;
 *   - nothing is dead-lettered (nothing is planted).
 * The throughput per second and the faults are written for
 * bench/chaos_plot.py (picture and recovery times).
 *
 * Reproduction: the seed is printed; LAYBY_CHAOS_SEED=<n> replays the same
 * flow plans and fault plan (timing still differs: it is a live system).
 * LAYBY_CHAOS_CLIENTS (default 24), LAYBY_CHAOS_LOAD (per cent of the
 * warm-up's rate, default 50) and LAYBY_CHAOS_FLOWS (a cap, default 200000)
 * change the size. ctest label `chaos` (tests/CMakeLists.txt).
 *
 * Clients are threads with their own curl handle; they never assert (Criterion
 * asserts belong to the test's thread): each flow records what it saw, the
 * test's thread judges at the end. Every POST carries an Idempotency-Key, so
 * a client that lost its answer to a fault repeats it safely until it hears
 * one. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "id.h"
#include "lb.h"
#include "tchaos.h"
#include "tsupport.h"

#define AUTH_MAX       2048
#define CLIENTS_MAX    64
#define PRODUCTS       16
#define STOCK_MINUTE   300   /* units of each product per minute of load */
#define STOCK_SCARCE   20    /* product 0: sells out, then 409s (and restocks) */
#define CALL_RETRY_MS  60000 /* a call is repeated until it has an answer this long */
#define TERMINAL_MS    60000 /* every saga terminal within this after the load (issue 22) */
/* The members' tokens outlive the run by this: its flows go on after the
 * load's time (a flow started before it ends) and the checks come after. At
 * 10 min (the first Release pass) the harness's usual 10-min token expired
 * under the last flows: 8 places answered 401. */
#define TOKEN_SLACK_S  900
/* A daemon (re)start is given this long to be healthy. The harness's usual
 * 30 s is not a property of layby: at load 35 on the 2-core machine an ASan
 * daemon's restart printed nothing for 30 s (twice: a catalog, a delivery)
 * while the warm-up ran at 2.4 flows/s, a quarter of its rate at load 20.
 * A start slower than SLOW_START_MS is reported (stderr, slow_starts and
 * start_max_s in the summary; its time is in faults.csv's away_ms), one
 * that never comes up still fails the run. */
#define START_READY_MS 120000
#define SLOW_START_MS  30000

/* --- the daemons and their kills ------------------------------------------------ */

/* clang-format off */
/* Short durations (DESIGN §6 LAYBY_FAST and each rule's own variable). */
static const char *const orchestrator_env[] = {
    "LAYBY_FAST=1",
    "LAYBY_PAYMENT_DEADLINE=4s",
    "LAYBY_SHIP_DELAY=600ms",
    "LAYBY_DELIVER_DELAY=600ms",
    "LAYBY_RETURN_WINDOW=4s",
    "LAYBY_RETURN_DELAY=600ms",
    /* The default step timeout (5 s): since order_place v4 the steps after
     * the payment are forward steps (retried until the participant is
     * back), so a restart slower than the retry budget no longer ends a
     * saga STUCK; the run checks that with the shop's own setting. */
    NULL,
};
/* Some approved cards declined at random too (DESIGN §6's load-test knob). */
static const char *const payment_env[] = { "LAYBY_PAYMENT_DECLINE_PER_MILLE=50", NULL };

static const struct {
    const char *name;
    const char *const *env;
} daemons[] = {
    { "layby-catalog",      NULL },
    { "layby-order",        NULL },
    { "layby-payment",      payment_env },
    { "layby-delivery",     NULL },
    { "layby-orchestrator", orchestrator_env },
    { "layby-edge",         NULL },
};
/* clang-format on */
#define DAEMONS LB_COUNTOF(daemons)
#define EDGE    (DAEMONS - 1)
#define ORCH    4       /* the service that runs twice */
#define TWIN    DAEMONS /* procs[TWIN]: its second instance */
#define PROCS   (DAEMONS + 1)

static tsupport_proc procs[PROCS];
/* The twin's environment: the orchestrator's, its own port and name. */
static char twin_port_env[64];
static const char *twin_env[LB_COUNTOF(orchestrator_env) + 2];

/* The database roles whose sessions are cut (etc/services.tsv schemas). */
static const char *const cut_roles[] = { "catalog", "orders", "payment", "delivery", "saga" };

/* --- run-wide state ------------------------------------------------------------- */

typedef struct member {
    char id[ID_STR_LEN];
    char auth[AUTH_MAX];
    char address[ID_STR_LEN];
} member;

typedef enum place_result {
    PLACE_NONE,     /* never got an answer */
    PLACE_ACCEPTED, /* 201 or 202: the order must exist */
    PLACE_OUT_OF_STOCK,
    PLACE_OTHER,
} place_result;

typedef struct client {
    CURL *curl;
    const member *m;
    char body[65536]; /* the last answer's */
} client;

typedef struct flow {
    place_result placed;
    long place_status;
    char order[ID_STR_LEN];
    long pay_status, signal_status;
    int calls_repeated;  /* calls repeated after no answer or a 5xx */
    int64_t placed_ms;   /* when the place was answered, from the start of the load */
    bool wishlist;       /* placed from the wishlist */
    bool place_repeated; /* the place itself was repeated (same key) */
} flow;

static struct {
    uint64_t seed;
    int n_flows, n_clients;
    int port;
    member members[CLIENTS_MAX];
    char products[PRODUCTS][ID_STR_LEN];
    char admin_auth[AUTH_MAX];
    int stock_each;
    int token_s;          /* how long the members' tokens are valid */
    int slow_starts;      /* (re)starts slower than SLOW_START_MS */
    int64_t start_max_ms; /* the slowest (re)start */
    flow *flows;
    atomic_int next_flow;
    atomic_int done_flows;
    int64_t deadline_ms;       /* no flow starts after this */
    atomic_llong next_slot_us; /* pacing: when the next flow may start */
    atomic_llong interval_us;  /* 0 = closed loop (the warm-up) */
    tchaos_rate rate;
    /* The clients, so the suite's teardown can stop and join them when a
     * check fails while they run (a failed assert leaves the test at once;
     * freeing the flows under running clients was a use-after-free). */
    atomic_bool stop;
    pthread_t threads[CLIENTS_MAX];
    client *clients;
    int n_running;
} run;

static void
pause_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* --- HTTP from the client threads (no asserts here) ------------------------------- */

/* One request; 0 when no answer came (connection refused or reset: a
 * daemon was killed), else the HTTP status. */
static long
call_once(client *c, const char *method, const char *path, const char *auth, const char *body,
          const char *idem)
{
    long status = tsupport_http_try(c->curl, run.port, method, path, auth, idem, body, c->body,
                                    sizeof c->body);
    if (status != 0 && status < 500)
        tchaos_rate_answered(&run.rate);
    return status;
}

/* A request repeated (same Idempotency-Key) while it gets no answer or a
 * 5xx other than 503 unavailable from the gateway: a daemon behind the edge
 * may be down for a moment. Returns the last status (0 = never answered). */
static long
call(client *c, flow *f, const char *method, const char *path, const char *auth, const char *body,
     const char *idem)
{
    int64_t until = lb_now_ms() + CALL_RETRY_MS;
    int backoff = 50;
    for (;;) {
        long st = call_once(c, method, path, auth, body, idem);
        bool again = st == 0 || st == 500 || st == 502 || st == 504 ||
                     (st == 503 && strstr(c->body, "gateway") == NULL);
        if (!again || lb_now_ms() > until || atomic_load(&run.stop))
            return st;
        f->calls_repeated++;
        pause_ms(backoff);
        backoff = backoff < 800 ? backoff * 2 : 800;
    }
}

/* The string field k of the JSON body into out, or "" */
static void
body_str(const client *c, const char *k, char *out, size_t n)
{
    json_t *j = json_loads(c->body, 0, NULL);
    const char *v = json_string_value(json_object_get(j, k));
    snprintf(out, n, "%s", v ? v : "");
    json_decref(j);
}

/* Polls the order until its status (or the delivery's, when delivery) is
 * one of want ("A|B"), at most ms. */
static bool
order_wait(client *c, flow *f, const char *want, bool delivery, int ms)
{
    char path[128], st[32];
    snprintf(path, sizeof path, "/api/v1/orders/%s", f->order);
    int64_t until = lb_now_ms() + ms;
    while (lb_now_ms() < until && !atomic_load(&run.stop)) {
        if (call(c, f, "GET", path, c->m->auth, NULL, NULL) == 200) {
            json_t *j = json_loads(c->body, 0, NULL);
            json_t *o = delivery ? json_object_get(j, "delivery") : j;
            const char *s = json_string_value(json_object_get(o, "status"));
            snprintf(st, sizeof st, "|%s|", s ? s : "");
            json_decref(j);
            char w[128];
            snprintf(w, sizeof w, "|%s|", want);
            if (s != NULL && strstr(w, st) != NULL)
                return true;
        }
        pause_ms(100);
    }
    return false;
}

/* --- one flow ---------------------------------------------------------------------- */

/* Polls the member's wishlist until it holds every product of put: a PUT
 * answered 202 (the catalog down or its database away) is applied later,
 * and a place from the wishlist before that finds it empty and rightly
 * answers 400, which is not what the run checks. */
static void
wishlist_wait(client *c, flow *f, const char *const *put, int n)
{
    int64_t until = lb_now_ms() + CALL_RETRY_MS;
    while (lb_now_ms() < until && !atomic_load(&run.stop)) {
        if (call(c, f, "GET", "/api/v1/me/wishlist", c->m->auth, NULL, NULL) == 200) {
            json_t *j = json_loads(c->body, 0, NULL), *it;
            int found = 0;
            for (int i = 0; i < n; i++) {
                size_t k;
                json_array_foreach(json_object_get(j, "items"), k, it)
                {
                    const char *id = json_string_value(json_object_get(it, "productId"));
                    if (id != NULL && strcmp(id, put[i]) == 0) {
                        found++;
                        break;
                    }
                }
            }
            json_decref(j);
            if (found == n)
                return;
        }
        pause_ms(200);
    }
}

static void
flow_place(client *c, flow *f, uint64_t *rng, int idx)
{
    char body[512], idem[64];
    snprintf(idem, sizeof idem, "chaos-%llu-%d-place", (unsigned long long)run.seed, idx);
    if (tchaos_pick(rng, 100) < 10) {
        /* from the wishlist: this client's own member, so no other flow touches it */
        f->wishlist = true;
        int n = 1 + tchaos_pick(rng, 2);
        const char *put[2];
        for (int i = 0; i < n; i++) {
            char path[128];
            put[i] = run.products[tchaos_pick(rng, PRODUCTS)];
            snprintf(path, sizeof path, "/api/v1/me/wishlist/items/%s", put[i]);
            snprintf(body, sizeof body, "{\"quantity\":%d}", 1 + tchaos_pick(rng, 2));
            call(c, f, "PUT", path, c->m->auth, body, NULL);
        }
        wishlist_wait(c, f, put, n);
        snprintf(body, sizeof body, "{\"fromWishlist\":true,\"addressId\":\"%s\"}", c->m->address);
    } else {
        int a = tchaos_pick(rng, PRODUCTS), b = (a + 1 + tchaos_pick(rng, PRODUCTS - 1)) % PRODUCTS;
        /* now and then a big order; product 0 is scarce: out of stock */
        int qa = tchaos_pick(rng, 100) < 5 ? 40 : 1 + tchaos_pick(rng, 3);
        if (tchaos_pick(rng, 2) == 0)
            snprintf(body, sizeof body,
                     "{\"items\":[{\"productId\":\"%s\",\"quantity\":%d}],\"addressId\":\"%s\"}",
                     run.products[a], qa, c->m->address);
        else
            snprintf(body, sizeof body,
                     "{\"items\":[{\"productId\":\"%s\",\"quantity\":%d},{\"productId\":\"%s\","
                     "\"quantity\":%d}],\"addressId\":\"%s\"}",
                     run.products[a], qa, run.products[b], 1 + tchaos_pick(rng, 2), c->m->address);
    }
    int before = f->calls_repeated;
    long st = call(c, f, "POST", "/api/v1/orders", c->m->auth, body, idem);
    f->place_status = st;
    f->place_repeated = f->calls_repeated > before;
    f->placed_ms = lb_now_ms() - run.rate.t0_ms;
    if (st == 201 || st == 202) {
        body_str(c, "orderId", f->order, sizeof f->order);
        f->placed = PLACE_ACCEPTED;
        tchaos_rate_accepted(&run.rate);
    } else if (st == 409) {
        f->placed = PLACE_OUT_OF_STOCK;
    } else {
        f->placed = st == 0 ? PLACE_NONE : PLACE_OTHER;
    }
}

static long
flow_pay(client *c, flow *f, const char *token, int idx, int n)
{
    char path[128], body[128], idem[64];
    snprintf(path, sizeof path, "/api/v1/orders/%s/payment", f->order);
    snprintf(body, sizeof body, "{\"method\":\"card\",\"cardToken\":\"%s\"}", token);
    snprintf(idem, sizeof idem, "chaos-%llu-%d-pay-%d", (unsigned long long)run.seed, idx, n);
    long st = call(c, f, "POST", path, c->m->auth, body, idem);
    f->pay_status = st;
    if (st == 202) /* still deciding: wait until it has */
        order_wait(c, f, "PAID|CANCELLED", false, 15000);
    return st;
}

static void
flow_signal(client *c, flow *f, const char *what)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/orders/%s/%s", f->order, what);
    f->signal_status = call(c, f, "POST", path, c->m->auth, NULL, NULL);
}

static void
flow_run(client *c, int idx)
{
    flow *f = &run.flows[idx];
    uint64_t rng = run.seed ^ ((uint64_t)idx * 0x2545f4914f6cdd1dULL);
    tchaos_mix64(&rng);
    if (tchaos_pick(&rng, 100) < 2) { /* an admin restocks a product */
        char path[128];
        snprintf(path, sizeof path, "/api/v1/products/%s/stock",
                 run.products[tchaos_pick(&rng, PRODUCTS)]);
        call(c, f, "PATCH", path, run.admin_auth, "{\"delta\":10}", NULL);
    }
    flow_place(c, f, &rng, idx);
    if (f->placed != PLACE_ACCEPTED || f->order[0] == '\0')
        return;
    if (f->place_status == 202 &&
        !order_wait(c, f, "PAYMENT_PENDING|REJECTED|CANCELLED", false, 15000))
        return;
    int a = tchaos_pick(&rng, 100);
    long paid = 0;
    if (a < 15) {
        return; /* the payment deadline cancels it */
    } else if (a < 25) {
        flow_signal(c, f, "cancel");
        return;
    } else if (a < 35) {
        flow_pay(c, f, "tok_decline", idx, 1);
        if (tchaos_pick(&rng, 2) == 0)
            paid = flow_pay(c, f, "tok_visa", idx, 2);
    } else if (a < 40) {
        paid = flow_pay(c, f, "tok_flaky", idx, 1);
    } else {
        paid = flow_pay(c, f, "tok_visa", idx, 1);
    }
    if (paid != 200 && paid != 202)
        return;
    int b = tchaos_pick(&rng, 100);
    if (b < 20) {
        flow_signal(c, f, "cancel"); /* PREPARING: refunded; shipped already: 409 */
    } else if (b < 35) {
        if (order_wait(c, f, "DELIVERED", true, 15000))
            flow_signal(c, f, "return");
    }
}

static void *
client_main(void *arg)
{
    client *c = arg;
    c->curl = curl_easy_init();
    if (c->curl == NULL)
        return NULL;
    for (;;) {
        int64_t iv = atomic_load(&run.interval_us);
        if (iv > 0) { /* paced: take the next start slot, wait for it */
            int64_t slot = atomic_fetch_add(&run.next_slot_us, iv), now = lb_now_ms() * 1000;
            if (slot > now)
                pause_ms((int)((slot - now) / 1000));
        }
        if (lb_now_ms() >= run.deadline_ms || atomic_load(&run.stop))
            break;
        int idx = atomic_fetch_add(&run.next_flow, 1);
        if (idx >= run.n_flows)
            break;
        flow_run(c, idx);
        atomic_fetch_add(&run.done_flows, 1);
    }
    curl_easy_cleanup(c->curl);
    return NULL;
}

/* --- set-up from the test's thread ------------------------------------------------ */

static void
setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tsupport_reset();
}

/* Stops the clients and waits for them: at the load's end (stop false:
 * each finishes its flow) or from the teardown after a failed check (stop
 * true: the daemons are gone, so every call returns at once). */
static void
clients_join(bool stop)
{
    if (stop)
        atomic_store(&run.stop, true);
    for (int i = 0; i < run.n_running; i++)
        pthread_join(run.threads[i], NULL);
    run.n_running = 0;
    free(run.clients);
    run.clients = NULL;
}

static void
teardown(void)
{
    /* the daemons first: a client blocked on one gets its answer (refused) */
    tsupport_daemons_kill(procs, PROCS);
    clients_join(true);
    free(run.flows);
    run.flows = NULL;
    tchaos_rate_free(&run.rate);
}

TestSuite(chaos, .init = setup, .fini = teardown, .timeout = 1800);

static int
env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}

/* procs[i]: daemons[i], or the orchestrator's twin on its own port */
static void
daemon_start(size_t i)
{
    const char *name = daemons[i == TWIN ? ORCH : i].name;
    int64_t ms = i == TWIN ? tsupport_daemon_start_within(&procs[i], name,
                                                          atoi(strchr(twin_port_env, '=') + 1),
                                                          NULL, twin_env, START_READY_MS)
                           : tsupport_daemon_start_within(&procs[i], name, 0, NULL, daemons[i].env,
                                                          START_READY_MS);
    run.start_max_ms = ms > run.start_max_ms ? ms : run.start_max_ms;
    if (ms > SLOW_START_MS) {
        run.slow_starts++;
        fprintf(stderr, "chaos: slow start: %s%s healthy after %.1f s\n", name,
                i == TWIN ? "(twin)" : "", (double)ms / 1000.0);
    }
}

static void
twin_env_init(void)
{
    size_t n = 0;
    for (; orchestrator_env[n] != NULL; n++)
        twin_env[n] = orchestrator_env[n];
    snprintf(twin_port_env, sizeof twin_port_env, "LAYBY_ORCHESTRATOR_METRICS_PORT=%d",
             tsupport_port_free());
    twin_env[n++] = twin_port_env;
    twin_env[n++] = "LAYBY_INSTANCE=twin";
    twin_env[n] = NULL;
}

/* A call from the test's thread that must answer `want`; the JSON body's
 * string field k (if any) into out. */
static void
setup_call(const char *method, const char *path, const char *auth, const char *body, long want,
           const char *k, char out[ID_STR_LEN])
{
    tsupport_resp r;
    const char *h[] = { "Content-Type: application/json", auth, NULL };
    tsupport_http_call(&r, run.port, method, path, h, body, false);
    cr_assert_eq(r.status, want, "%s %s: %ld %s", method, path, r.status, r.body);
    if (k != NULL) {
        json_t *j = tsupport_http_json(&r);
        const char *v = json_string_value(json_object_get(j, k));
        cr_assert_not_null(v, "%s", r.body);
        snprintf(out, ID_STR_LEN, "%s", v);
        json_decref(j);
    }
}

static void
shop_setup(void)
{
    char admin[ID_STR_LEN], body[256];
    id_new(admin);
    tsupport_jwt_member_for(run.admin_auth, sizeof run.admin_auth, admin, "ADMIN", run.token_s);
    for (int p = 0; p < PRODUCTS; p++) {
        snprintf(body, sizeof body,
                 "{\"name\":\"Chaos %d\",\"price\":%d,\"details\":\"\",\"category\":\"chaos\","
                 "\"stock\":%d}",
                 p, 1000 * (p + 1), p == 0 ? STOCK_SCARCE : run.stock_each);
        setup_call("POST", "/api/v1/products", run.admin_auth, body, 201, "productId",
                   run.products[p]);
    }
    for (int i = 0; i < run.n_clients; i++) {
        member *m = &run.members[i];
        id_new(m->id);
        tsupport_jwt_member_for(m->auth, sizeof m->auth, m->id, "USER", run.token_s);
        setup_call("POST", "/api/v1/me/addresses", m->auth,
                   "{\"recipient\":\"Kim Minji\",\"phone\":\"010-1234-5678\",\"zipcode\":"
                   "\"06236\",\"city\":\"Seoul\",\"street\":\"12 Teheran-ro\"}",
                   201, "addressId", m->address);
    }
}

static bool
sagas_terminal(void *arg)
{
    (void)arg;
    return tsupport_sql_int("SELECT count(*) FROM saga.sagas WHERE status NOT IN "
                            "('COMPLETED', 'FAILED', 'CANCELLED', 'RESOLVED')") == 0;
}

/* `layby-ctl <args>`: exit code, output into out. */
static int
ctl_run(char *out, size_t n, const char *args)
{
    char cmdline[512];
    snprintf(cmdline, sizeof cmdline, "%s/layby-ctl %s 2>&1", tsupport_env_req("LAYBY_BUILD_DIR"),
             args);
    FILE *p = popen(cmdline, "r");
    cr_assert_not_null(p);
    size_t len = fread(out, 1, n - 1, p);
    out[len] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* --- the faults -------------------------------------------------------------------- */

/* LAYBY_CHAOS_OUT/<name>, or in the harness's temp folder */
static const char *
out_path(const char *name)
{
    static char path[1024];
    const char *dir = getenv("LAYBY_CHAOS_OUT");
    if (dir == NULL || *dir == '\0')
        dir = tsupport_env_req("LAYBY_TEST_TMP");
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static FILE *
out_open(const char *name)
{
    const char *path = out_path(name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: cannot write", path);
    return f;
}

/* Causes one fault of the plan (next_ms: when the next one is due, from the
 * start of the load). Returns how long the faulty part was away, in ms. */
static int64_t
fault_run(const tchaos_event *e, uint64_t *krng, int64_t next_ms, int64_t t0)
{
    int64_t t = lb_now_ms();
    switch (e->kind) {
    case TCHAOS_KILL:
        tsupport_daemon_kill(&procs[e->target]);
        pause_ms(tchaos_pick(krng, 500));
        daemon_start((size_t)e->target);
        break;
    case TCHAOS_TWIN_KILL: {
        /* the other instance carries on alone: half the time to the next
         * fault, 2-10 s */
        size_t d = e->target ? TWIN : ORCH;
        int64_t alone = (next_ms - (t - t0)) / 2;
        alone = alone < 2000 ? 2000 : alone > 10000 ? 10000 : alone;
        tsupport_daemon_kill(&procs[d]);
        pause_ms((int)alone);
        daemon_start(d);
        break;
    }
    case TCHAOS_NATS_KILL:
        tchaos_nats_kill();
        pause_ms(1000 + tchaos_pick(krng, 2000));
        tsupport_nats_start();
        break;
    case TCHAOS_PG_CRASH:
        tchaos_pg_crash();
        pause_ms(1000 + tchaos_pick(krng, 2000));
        tsupport_pg_start();
        break;
    case TCHAOS_PG_CUT:
        for (int i = 0; i < 3; i++) { /* and again while it reconnects */
            tchaos_pg_cut(cut_roles[e->target]);
            pause_ms(1000);
        }
        break;
    }
    return lb_now_ms() - t;
}

static const char *
fault_target(const tchaos_event *e)
{
    switch (e->kind) {
    case TCHAOS_KILL:
        return e->target == TWIN ? "layby-orchestrator(twin)" : daemons[e->target].name;
    case TCHAOS_TWIN_KILL:
        return e->target ? "layby-orchestrator(twin)" : "layby-orchestrator";
    case TCHAOS_NATS_KILL:
        return "nats-server";
    case TCHAOS_PG_CRASH:
        return "postgresql";
    case TCHAOS_PG_CUT:
        return cut_roles[e->target];
    }
    return "?";
}

/* The run: LAYBY_CHAOS_SECONDS of load (default 120, the CI version;
 * bench/chaos.sh runs 600). The first tenth (10-30 s) is a closed loop of the
 * clients without faults: its rate of flows is the peak; then flows start
 * paced at LAYBY_CHAOS_LOAD per cent of it (default 50) while the faults of
 * the plan (tchaos_plan(): one every 20-40 s, scaled down for short runs)
 * happen. Per-second counts and the faults go to LAYBY_CHAOS_OUT (default
 * the harness's temp folder): rate.csv, faults.csv, summary.txt, which
 * bench/chaos_plot.py draws. */
Test(chaos, a_timed_load_through_every_kind_of_fault_keeps_the_books)
{
    const char *seed_env = getenv("LAYBY_CHAOS_SEED");
    run.seed = seed_env && *seed_env ? strtoull(seed_env, NULL, 10)
                                     : (uint64_t)lb_now_ms() ^ ((uint64_t)getpid() << 20);
    int secs = env_int("LAYBY_CHAOS_SECONDS", 120);
    int load_pct = env_int("LAYBY_CHAOS_LOAD", 50);
    run.n_flows = env_int("LAYBY_CHAOS_FLOWS", 200000);
    run.n_clients = env_int("LAYBY_CHAOS_CLIENTS", 24);
    run.stock_each = STOCK_MINUTE * (secs / 60 + 1);
    run.token_s = secs + TOKEN_SLACK_S;
    cr_assert(run.n_clients >= 1 && run.n_clients <= CLIENTS_MAX);
    cr_assert(secs >= 60, "LAYBY_CHAOS_SECONDS=%d: at least 60", secs);
    fprintf(stderr,
            "chaos: seed %llu (LAYBY_CHAOS_SEED=%llu replays it), %d s, %d clients, "
            "load %d %% of the warm-up's rate\n",
            (unsigned long long)run.seed, (unsigned long long)run.seed, secs, run.n_clients,
            load_pct);
    run.flows = calloc((size_t)run.n_flows, sizeof *run.flows);
    cr_assert_not_null(run.flows);
    atomic_store(&run.next_flow, 0);
    atomic_store(&run.done_flows, 0);
    atomic_store(&run.interval_us, 0);

    twin_env_init();
    for (size_t i = 0; i < PROCS; i++)
        daemon_start(i);
    run.port = procs[EDGE].port;
    shop_setup();

    /* the plan of faults, after the warm-up, the last one a gap before the end */
    int warm_ms = secs * 100 < 10000 ? 10000 : secs * 100 > 30000 ? 30000 : secs * 100;
    int gap_min = 20000 * secs / 600, gap_max = 40000 * secs / 600;
    gap_min = gap_min < 5000 ? 5000 : gap_min;
    gap_max = gap_max < gap_min + 2000 ? gap_min + 2000 : gap_max;
    uint64_t krng = run.seed ^ 0x6b696c6cULL;
    static tchaos_event plan[TCHAOS_EVENTS_MAX];
    size_t n_plan =
        tchaos_plan(plan, TCHAOS_EVENTS_MAX, &krng, warm_ms + 2000, (int64_t)secs * 1000 - gap_min,
                    gap_min, gap_max, (int)PROCS, (int)LB_COUNTOF(cut_roles));
    cr_assert(tchaos_plan_complete(plan, n_plan), "%d s hold too few faults (%zu)", secs, n_plan);

    int64_t t0 = lb_now_ms();
    run.deadline_ms = t0 + (int64_t)secs * 1000;
    tchaos_rate_init(&run.rate, t0, secs + 600);
    atomic_store(&run.stop, false);
    run.clients = calloc((size_t)run.n_clients, sizeof *run.clients);
    cr_assert_not_null(run.clients);
    for (int i = 0; i < run.n_clients; i++) {
        run.clients[i].m = &run.members[i];
        cr_assert_eq(pthread_create(&run.threads[i], NULL, client_main, &run.clients[i]), 0);
        run.n_running++;
    }

    /* warm-up: the clients' closed loop is the peak; then paced */
    pause_ms(warm_ms);
    int started = atomic_load(&run.next_flow);
    double peak = started * 1000.0 / warm_ms, paced = peak * load_pct / 100.0;
    if (load_pct < 100 && paced > 0.1) {
        atomic_store(&run.next_slot_us, lb_now_ms() * 1000);
        atomic_store(&run.interval_us, (long long)(1e6 / paced));
    }
    fprintf(stderr, "chaos: warm-up %.1f flows/s (peak), paced at %.1f flows/s\n", peak, paced);

    FILE *ff = out_open("faults.csv");
    fprintf(ff, "at_ms,kind,target,away_ms\n");
    int faults = 0, crashes = 0, skipped = 0;
    unsigned kinds = 0;
    for (size_t k = 0; k < n_plan; k++) {
        int64_t wait = t0 + plan[k].at_ms - lb_now_ms();
        if (wait > 0)
            pause_ms((int)wait);
        int64_t at = lb_now_ms() - t0;
        /* Restarts are slow on a loaded machine (an ASan daemon may take
         * 15 s to be healthy): a late plain kill is skipped to catch up,
         * and nothing happens after the load. */
        if ((plan[k].kind == TCHAOS_KILL && -wait > gap_min) || at >= (int64_t)secs * 1000) {
            fprintf(stderr, "chaos: %.1f s %s %s skipped (%.1f s late)\n", (double)at / 1000.0,
                    tchaos_kind_name(plan[k].kind), fault_target(&plan[k]), (double)-wait / 1000.0);
            skipped++;
            continue;
        }
        kinds |= 1u << plan[k].kind;
        int64_t next = k + 1 < n_plan ? plan[k + 1].at_ms : (int64_t)secs * 1000;
        int64_t away = fault_run(&plan[k], &krng, next, t0);
        faults++;
        fprintf(stderr, "chaos: %.1f s %s %s (away %.1f s), %d flows done\n", (double)at / 1000.0,
                tchaos_kind_name(plan[k].kind), fault_target(&plan[k]), (double)away / 1000.0,
                atomic_load(&run.done_flows));
        fprintf(ff, "%lld,%s,%s,%lld\n", (long long)at, tchaos_kind_name(plan[k].kind),
                fault_target(&plan[k]), (long long)away);
        fflush(ff);
        /* a daemon that died by itself is a finding: say so, restart it */
        for (size_t i = 0; i < PROCS; i++)
            if (!tsupport_daemon_alive(&procs[i])) {
                cr_expect_fail("%s died by itself with %d (log %s)", procs[i].name, procs[i].status,
                               procs[i].log);
                crashes++;
                daemon_start(i);
            }
    }
    fclose(ff);
    clients_join(false);
    int64_t t_flows = lb_now_ms();
    int n_started = atomic_load(&run.next_flow);
    n_started = n_started < run.n_flows ? n_started : run.n_flows;
    /* written before any check, so a failed run has its picture too */
    cr_expect(tchaos_rate_write(&run.rate, (int)((t_flows - t0) / 1000) + 1, out_path("rate.csv")),
              "%s: cannot write", out_path("rate.csv"));

    cr_assert(
        tsupport_poll_until(sagas_terminal, NULL, TERMINAL_MS),
        "sagas not terminal %d s after the load: %lld (STUCK %lld)", TERMINAL_MS / 1000,
        (long long)tsupport_sql_int("SELECT count(*) FROM saga.sagas WHERE status NOT IN "
                                    "('COMPLETED', 'FAILED', 'CANCELLED', 'RESOLVED')"),
        (long long)tsupport_sql_int("SELECT count(*) FROM saga.sagas WHERE status = 'STUCK'"));
    int64_t t_terminal = lb_now_ms();

    /* what the clients saw */
    int accepted = 0, oos = 0, unanswered = 0, other = 0, repeated = 0, paid = 0, declined = 0;
    int wish_repeat_400 = 0;
    size_t ids_cap = (size_t)n_started * (ID_STR_LEN + 3) + 64, ids_len = 0;
    char *ids = malloc(ids_cap);
    cr_assert_not_null(ids);
    ids_len += (size_t)snprintf(ids, ids_cap,
                                "SELECT count(*) FROM orders.orders WHERE "
                                "order_id = ANY('{");
    for (int i = 0; i < n_started; i++) {
        const flow *f = &run.flows[i];
        repeated += f->calls_repeated;
        paid += f->pay_status == 200;
        declined += f->pay_status == 402;
        switch (f->placed) {
        case PLACE_ACCEPTED:
            cr_assert(id_valid(f->order), "flow %d: accepted without an order id (%ld)", i,
                      f->place_status);
            ids_len += (size_t)snprintf(ids + ids_len, ids_cap - ids_len, "%s%s",
                                        accepted ? "," : "", f->order);
            accepted++;
            break;
        case PLACE_OUT_OF_STOCK:
            oos++;
            break;
        case PLACE_NONE:
            unanswered++;
            break;
        default:
            /* Was a known bug (docs/ORDERS.md §6, fixed): the edge died
             * after the order emptied the wishlist, before it stored the
             * outcome of the key; the repeat found the wishlist empty and
             * answered 400 although the order exists. Counted apart. */
            if (f->wishlist && f->place_repeated && f->place_status == 400) {
                wish_repeat_400++;
                break;
            }
            if (other++ < 10) /* each, with what tells them apart in the edge's log */
                fprintf(stderr, "chaos: flow %d: place answered %ld at %.1f s%s%s (order %s)\n", i,
                        f->place_status, (double)f->placed_ms / 1000.0,
                        f->place_repeated ? ", repeated" : "", f->wishlist ? ", wishlist" : "",
                        f->order[0] ? f->order : "-");
        }
    }
    snprintf(ids + ids_len, ids_cap - ids_len, "}'::uuid[])");
    cr_expect_eq(unanswered, 0, "%d places never answered", unanswered);
    cr_expect_eq(other, 0, "%d places answered neither 201/202 nor 409", other);
    cr_expect_eq(wish_repeat_400, 0, "%d repeated wishlist places answered 400", wish_repeat_400);

    /* every accepted POST has its order (one order per accepted key) */
    long long found = tsupport_sql_int(ids);
    cr_expect_eq(found, accepted, "accepted orders missing: %lld of %d found", found, accepted);
    for (int i = 0, shown = 0; found != accepted && i < n_started && shown < 20; i++) {
        const flow *f = &run.flows[i];
        char q[160];
        if (f->placed != PLACE_ACCEPTED)
            continue;
        snprintf(q, sizeof q, "SELECT count(*) FROM orders.orders WHERE order_id = '%s'", f->order);
        if (tsupport_sql_int(q) == 0 && shown++ >= 0)
            fprintf(stderr, "chaos: missing order %s: flow %d answered %ld at %.1f s%s%s\n",
                    f->order, i, f->place_status, (double)f->placed_ms / 1000.0,
                    f->place_repeated ? ", repeated" : "", f->wishlist ? ", wishlist" : "");
    }
    /* and no order besides them and the rejected ones (409: the order may
     * exist, REJECTED): a place repeated with its key after a lost answer
     * never makes a second one */
    long long all_orders = tsupport_sql_int("SELECT count(*) FROM orders.orders");
    cr_expect_leq(all_orders, (long long)accepted + oos,
                  "%lld orders for %d accepted places and %d answered 409 (a repeat made a "
                  "second order?)",
                  all_orders, accepted, oos);
    free(ids);
    /* no order with two captures */
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM (SELECT order_id FROM payment.charges "
                                  "WHERE status = 'CAPTURED' GROUP BY order_id "
                                  "HAVING count(*) > 1) t"),
                 0, "orders charged twice");
    /* the stock equation and the ledger, from the catalog's own tables */
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM catalog.products WHERE initial_stock + "
                                  "restocked <> stock_available + reserved + sold - returned"),
                 0, "stock equation violated");
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM catalog.products WHERE reserved <> 0"), 0,
                 "units left reserved after every saga ended");
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM catalog.stock_orders "
                                  "WHERE status = 'RESERVED'"),
                 0, "orders left holding reserved stock");
    cr_expect_eq(tsupport_sql_int("SELECT count(*) FROM orders.orders "
                                  "WHERE status IN ('PENDING', 'PAYMENT_PENDING')"),
                 0, "orders left undecided");

    /* the audit, from the services' answers alone */
    static char out[1 << 20];
    /* Once: a read whose session the faults killed runs again on a new one
     * (engine/svc_query.c), so the first audit after them must pass. */
    int rc = ctl_run(out, sizeof out, "audit --settle 0");
    cr_expect_eq(rc, 0, "layby-ctl audit: %s", out);
    fprintf(stderr, "%s", out);
    /* nothing dead-lettered (nothing was planted) */
    rc = ctl_run(out, sizeof out, "dlq list --json --limit 1000");
    cr_expect_eq(rc, 0, "layby-ctl dlq list: %s", out);
    int dead = out[0] == '{';
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
        dead += p[1] == '{'; /* one object a line */
    cr_expect_eq(dead, 0, "dead letters after the run:\n%s", out);

    int64_t t_end = lb_now_ms();
    long long captured =
        tsupport_sql_int("SELECT count(*) FROM payment.charges WHERE status = 'CAPTURED'");
    long long returned =
        tsupport_sql_int("SELECT count(*) FROM orders.orders WHERE status = 'RETURNED'");
    long long cancelled =
        tsupport_sql_int("SELECT count(*) FROM orders.orders WHERE status = 'CANCELLED'");
    char summary[1024];
    snprintf(
        summary, sizeof summary,
        "chaos: seed=%llu seconds=%d clients=%d peak_flows_s=%.1f paced_flows_s=%.1f "
        "flows=%d faults=%d skipped=%d accepted=%d out_of_stock=%d paid_200=%d declined_402=%d "
        "captured=%lld cancelled=%lld returned=%lld calls_repeated=%d "
        "wishlist_repeat_400=%d dead_letters=%d crashes=%d slow_starts=%d start_max_s=%.1f "
        "load_s=%.1f terminal_s=%.1f total_s=%.1f\n",
        (unsigned long long)run.seed, secs, run.n_clients, peak, paced, n_started, faults, skipped,
        accepted, oos, paid, declined, captured, cancelled, returned, repeated, wish_repeat_400,
        dead, crashes, run.slow_starts, (double)run.start_max_ms / 1000.0,
        (double)(t_flows - t0) / 1000.0, (double)(t_terminal - t_flows) / 1000.0,
        (double)(t_end - t0) / 1000.0);
    fputs(summary, stderr);
    FILE *sf = out_open("summary.txt");
    fputs(summary, sf);
    fclose(sf);
    cr_expect_eq(kinds, (1u << (TCHAOS_PG_CUT + 1)) - 1,
                 "not every kind of fault happened (%d of %zu skipped)", skipped, n_plan);
    cr_expect_geq(accepted, n_started / 2, "most flows place an order");
    tsupport_daemons_stop_checked(procs, PROCS);
}
