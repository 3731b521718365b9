/* chaos_test.c - the randomized run of issue 20: at least 1,000 mixed order
 * flows (place, pay, decline, cancel, deadline, return, from the wishlist,
 * out of stock, restocks) through the edge, many clients at once, with short
 * durations; meanwhile each daemon (orchestrator, order, catalog, payment,
 * delivery, edge) is killed with SIGKILL once, at a random moment, and
 * started again. Then, within a bound, every saga is terminal, and:
 *   - `layby-ctl audit --settle 0` passes (stock and money across services);
 *   - no order has two captures (payment's own table);
 *   - every accepted POST /api/v1/orders (201 or 202) has its order;
 *   - per product, initial + restocked = available + reserved + sold -
 *     returned from the catalog's own table, and nothing is left reserved;
 *   - no order is left PENDING or PAYMENT_PENDING.
 *
 * Reproduction: the seed is printed; LAYBY_CHAOS_SEED=<n> replays the same
 * flow plans and kill points (timing still differs: it is a live system).
 * LAYBY_CHAOS_FLOWS (default 1000) and LAYBY_CHAOS_CLIENTS (default 24)
 * change the size. ctest label `chaos` (tests/CMakeLists.txt).
 *
 * Clients are threads with their own curl handle; they never assert (Criterion
 * asserts belong to the test's thread): each flow records what it saw, the
 * test's thread judges at the end. Every POST carries an Idempotency-Key, so
 * a client that lost its answer to a kill repeats it safely until it hears
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
#include "tsupport.h"

#define AUTH_MAX      2048
#define CLIENTS_MAX   64
#define PRODUCTS      16
#define STOCK_EACH    300
#define STOCK_SCARCE  20     /* product 0: sells out, then 409s (and restocks) */
#define CALL_RETRY_MS 60000  /* a call is repeated until it has an answer this long */
#define TERMINAL_MS   180000 /* every saga terminal within this after the last flow */

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
    "LAYBY_ORDER_STEP_TIMEOUT=3s",
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

static tsupport_proc procs[DAEMONS];

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

typedef struct flow {
    place_result placed;
    long place_status;
    char order[ID_STR_LEN];
    long pay_status, signal_status;
    int calls_repeated;  /* calls repeated after no answer or a 5xx */
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
    flow *flows;
    atomic_int next_flow;
    atomic_int done_flows;
} run;

/* --- randomness: splitmix64, one stream per flow, so a seed replays the plans ---- */

static uint64_t
mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int
pick(uint64_t *s, int n)
{
    return (int)(mix64(s) % (uint64_t)n);
}

static void
pause_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* --- HTTP from the client threads (no asserts here) ------------------------------- */

typedef struct client {
    CURL *curl;
    const member *m;
    char body[65536];
    size_t body_len;
} client;

static size_t
on_body(char *p, size_t sz, size_t n, void *ud)
{
    client *c = ud;
    size_t got = sz * n, take = got;
    if (take > sizeof c->body - 1 - c->body_len)
        take = sizeof c->body - 1 - c->body_len;
    memcpy(c->body + c->body_len, p, take);
    c->body_len += take;
    c->body[c->body_len] = '\0';
    return got;
}

/* One request; 0 when no answer came (connection refused or reset: a
 * daemon was killed), else the HTTP status. */
static long
call_once(client *c, const char *method, const char *path, const char *auth, const char *body,
          const char *idem)
{
    char url[256], key[160];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", run.port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (auth != NULL)
        h = curl_slist_append(h, auth);
    if (idem != NULL) {
        snprintf(key, sizeof key, "Idempotency-Key: %s", idem);
        h = curl_slist_append(h, key);
    }
    c->body_len = 0;
    c->body[0] = '\0';
    curl_easy_reset(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    if (body != NULL) {
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    long status = 0;
    if (curl_easy_perform(c->curl) == CURLE_OK)
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
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
        if (!again || lb_now_ms() > until)
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
    while (lb_now_ms() < until) {
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

static void
flow_place(client *c, flow *f, uint64_t *rng, int idx)
{
    char body[512], idem[64];
    snprintf(idem, sizeof idem, "chaos-%llu-%d-place", (unsigned long long)run.seed, idx);
    if (pick(rng, 100) < 10) {
        /* from the wishlist: this client's own member, so no other flow touches it */
        f->wishlist = true;
        int n = 1 + pick(rng, 2);
        for (int i = 0; i < n; i++) {
            char path[128];
            snprintf(path, sizeof path, "/api/v1/me/wishlist/items/%s",
                     run.products[pick(rng, PRODUCTS)]);
            snprintf(body, sizeof body, "{\"quantity\":%d}", 1 + pick(rng, 2));
            call(c, f, "PUT", path, c->m->auth, body, NULL);
        }
        snprintf(body, sizeof body, "{\"fromWishlist\":true,\"addressId\":\"%s\"}", c->m->address);
    } else {
        int a = pick(rng, PRODUCTS), b = (a + 1 + pick(rng, PRODUCTS - 1)) % PRODUCTS;
        /* now and then a big order; product 0 is scarce: out of stock */
        int qa = pick(rng, 100) < 5 ? 40 : 1 + pick(rng, 3);
        if (pick(rng, 2) == 0)
            snprintf(body, sizeof body,
                     "{\"items\":[{\"productId\":\"%s\",\"quantity\":%d}],\"addressId\":\"%s\"}",
                     run.products[a], qa, c->m->address);
        else
            snprintf(body, sizeof body,
                     "{\"items\":[{\"productId\":\"%s\",\"quantity\":%d},{\"productId\":\"%s\","
                     "\"quantity\":%d}],\"addressId\":\"%s\"}",
                     run.products[a], qa, run.products[b], 1 + pick(rng, 2), c->m->address);
    }
    int before = f->calls_repeated;
    long st = call(c, f, "POST", "/api/v1/orders", c->m->auth, body, idem);
    f->place_status = st;
    f->place_repeated = f->calls_repeated > before;
    if (st == 201 || st == 202) {
        body_str(c, "orderId", f->order, sizeof f->order);
        f->placed = PLACE_ACCEPTED;
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
    mix64(&rng);
    if (pick(&rng, 100) < 2) { /* an admin restocks a product */
        char path[128];
        snprintf(path, sizeof path, "/api/v1/products/%s/stock",
                 run.products[pick(&rng, PRODUCTS)]);
        call(c, f, "PATCH", path, run.admin_auth, "{\"delta\":10}", NULL);
    }
    flow_place(c, f, &rng, idx);
    if (f->placed != PLACE_ACCEPTED || f->order[0] == '\0')
        return;
    if (f->place_status == 202 &&
        !order_wait(c, f, "PAYMENT_PENDING|REJECTED|CANCELLED", false, 15000))
        return;
    int a = pick(&rng, 100);
    long paid = 0;
    if (a < 15) {
        return; /* the payment deadline cancels it */
    } else if (a < 25) {
        flow_signal(c, f, "cancel");
        return;
    } else if (a < 35) {
        flow_pay(c, f, "tok_decline", idx, 1);
        if (pick(&rng, 2) == 0)
            paid = flow_pay(c, f, "tok_visa", idx, 2);
    } else if (a < 40) {
        paid = flow_pay(c, f, "tok_flaky", idx, 1);
    } else {
        paid = flow_pay(c, f, "tok_visa", idx, 1);
    }
    if (paid != 200 && paid != 202)
        return;
    int b = pick(&rng, 100);
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

static void
teardown(void)
{
    tsupport_daemons_kill(procs, DAEMONS);
    free(run.flows);
    run.flows = NULL;
}

TestSuite(chaos, .init = setup, .fini = teardown, .timeout = 900);

static int
env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}

static void
daemon_start(size_t i)
{
    tsupport_daemon_start(&procs[i], daemons[i].name, 0, NULL, daemons[i].env);
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
    tsupport_jwt_member(run.admin_auth, sizeof run.admin_auth, admin, "ADMIN");
    for (int p = 0; p < PRODUCTS; p++) {
        snprintf(body, sizeof body,
                 "{\"name\":\"Chaos %d\",\"price\":%d,\"details\":\"\",\"category\":\"chaos\","
                 "\"stock\":%d}",
                 p, 1000 * (p + 1), p == 0 ? STOCK_SCARCE : STOCK_EACH);
        setup_call("POST", "/api/v1/products", run.admin_auth, body, 201, "productId",
                   run.products[p]);
    }
    for (int i = 0; i < run.n_clients; i++) {
        member *m = &run.members[i];
        id_new(m->id);
        tsupport_jwt_member(m->auth, sizeof m->auth, m->id, "USER");
        setup_call("POST", "/api/v1/me/addresses", m->auth,
                   "{\"recipient\":\"Kim Minji\",\"phone\":\"010-1234-5678\",\"zipcode\":"
                   "\"06236\",\"city\":\"Seoul\",\"street\":\"12 Teheran-ro\"}",
                   201, "addressId", m->address);
    }
}

typedef struct done_at {
    int n;
} done_at;

static bool
flows_done(void *arg)
{
    return atomic_load(&run.done_flows) >= ((done_at *)arg)->n;
}

static bool
sagas_terminal(void *arg)
{
    (void)arg;
    return tsupport_sql_int("SELECT count(*) FROM saga.sagas WHERE status NOT IN "
                            "('COMPLETED', 'FAILED', 'CANCELLED', 'RESOLVED')") == 0;
}

/* `layby-ctl audit <args>`: exit code, output into out. */
static int
audit_run(char *out, size_t n, const char *args)
{
    char cmdline[512];
    snprintf(cmdline, sizeof cmdline, "%s/layby-ctl audit %s 2>&1",
             tsupport_env_req("LAYBY_BUILD_DIR"), args);
    FILE *p = popen(cmdline, "r");
    cr_assert_not_null(p);
    size_t len = fread(out, 1, n - 1, p);
    out[len] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

Test(chaos, a_thousand_flows_with_every_daemon_killed_once_keep_the_books)
{
    const char *seed_env = getenv("LAYBY_CHAOS_SEED");
    run.seed = seed_env && *seed_env ? strtoull(seed_env, NULL, 10)
                                     : (uint64_t)lb_now_ms() ^ ((uint64_t)getpid() << 20);
    run.n_flows = env_int("LAYBY_CHAOS_FLOWS", 1000);
    run.n_clients = env_int("LAYBY_CHAOS_CLIENTS", 24);
    cr_assert(run.n_clients >= 1 && run.n_clients <= CLIENTS_MAX);
    fprintf(stderr, "chaos: seed %llu (LAYBY_CHAOS_SEED=%llu replays it), %d flows, %d clients\n",
            (unsigned long long)run.seed, (unsigned long long)run.seed, run.n_flows, run.n_clients);
    run.flows = calloc((size_t)run.n_flows, sizeof *run.flows);
    cr_assert_not_null(run.flows);
    atomic_store(&run.next_flow, 0);
    atomic_store(&run.done_flows, 0);

    for (size_t i = 0; i < DAEMONS; i++)
        daemon_start(i);
    run.port = procs[EDGE].port;
    shop_setup();

    /* Kill points: each daemon once, in a random order, when a random share
     * (10-85 %) of the flows is done; each restarted after 0-500 ms. */
    uint64_t krng = run.seed ^ 0x6b696c6cULL;
    int at[DAEMONS];
    size_t order[DAEMONS];
    for (size_t i = 0; i < DAEMONS; i++) {
        at[i] = run.n_flows * (10 + pick(&krng, 76)) / 100;
        order[i] = i;
    }
    for (size_t i = DAEMONS - 1; i > 0; i--) { /* by kill point */
        for (size_t j = 0; j < i; j++)
            if (at[order[j]] > at[order[j + 1]]) {
                size_t t = order[j];
                order[j] = order[j + 1];
                order[j + 1] = t;
            }
    }

    int64_t t0 = lb_now_ms();
    pthread_t th[CLIENTS_MAX];
    client *clients = calloc((size_t)run.n_clients, sizeof *clients);
    cr_assert_not_null(clients);
    for (int i = 0; i < run.n_clients; i++) {
        clients[i].m = &run.members[i];
        cr_assert_eq(pthread_create(&th[i], NULL, client_main, &clients[i]), 0);
    }
    int kills = 0;
    for (size_t k = 0; k < DAEMONS; k++) {
        size_t d = order[k];
        done_at w = { at[d] };
        cr_assert(tsupport_poll_until(flows_done, &w, 600000), "flows stalled at %d",
                  atomic_load(&run.done_flows));
        pause_ms(pick(&krng, 300));
        fprintf(stderr, "chaos: SIGKILL %s at %d flows done (%.1f s)\n", daemons[d].name,
                atomic_load(&run.done_flows), (double)(lb_now_ms() - t0) / 1000.0);
        tsupport_daemon_kill(&procs[d]);
        kills++;
        pause_ms(pick(&krng, 500));
        daemon_start(d);
    }
    for (int i = 0; i < run.n_clients; i++)
        pthread_join(th[i], NULL);
    free(clients);
    int64_t t_flows = lb_now_ms();

    cr_assert(
        tsupport_poll_until(sagas_terminal, NULL, TERMINAL_MS),
        "sagas not terminal %d s after the last flow: %lld (STUCK %lld)", TERMINAL_MS / 1000,
        (long long)tsupport_sql_int("SELECT count(*) FROM saga.sagas WHERE status NOT IN "
                                    "('COMPLETED', 'FAILED', 'CANCELLED', 'RESOLVED')"),
        (long long)tsupport_sql_int("SELECT count(*) FROM saga.sagas WHERE status = 'STUCK'"));
    int64_t t_terminal = lb_now_ms();

    /* what the clients saw */
    int accepted = 0, oos = 0, unanswered = 0, other = 0, repeated = 0, paid = 0, declined = 0;
    int wish_repeat_400 = 0;
    size_t ids_cap = (size_t)run.n_flows * (ID_STR_LEN + 3) + 64, ids_len = 0;
    char *ids = malloc(ids_cap);
    cr_assert_not_null(ids);
    ids_len += (size_t)snprintf(ids, ids_cap,
                                "SELECT count(*) FROM orders.orders WHERE "
                                "order_id = ANY('{");
    for (int i = 0; i < run.n_flows; i++) {
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
            if (other++ == 0)
                fprintf(stderr, "chaos: flow %d: place answered %ld\n", i, f->place_status);
        }
    }
    snprintf(ids + ids_len, ids_cap - ids_len, "}'::uuid[])");
    cr_expect_eq(unanswered, 0, "%d places never answered", unanswered);
    cr_expect_eq(other, 0, "%d places answered neither 201/202 nor 409", other);
    cr_expect_eq(wish_repeat_400, 0, "%d repeated wishlist places answered 400", wish_repeat_400);

    /* every accepted POST has its order (one order per accepted key) */
    cr_expect_eq(tsupport_sql_int(ids), accepted, "accepted orders missing");
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
    int rc = audit_run(out, sizeof out, "--settle 0");
    cr_expect_eq(rc, 0, "layby-ctl audit: %s", out);
    fprintf(stderr, "%s", out);

    int64_t t_end = lb_now_ms();
    long long captured =
        tsupport_sql_int("SELECT count(*) FROM payment.charges WHERE status = 'CAPTURED'");
    long long returned =
        tsupport_sql_int("SELECT count(*) FROM orders.orders WHERE status = 'RETURNED'");
    long long cancelled =
        tsupport_sql_int("SELECT count(*) FROM orders.orders WHERE status = 'CANCELLED'");
    fprintf(stderr,
            "chaos: seed=%llu flows=%d clients=%d kills=%d accepted=%d out_of_stock=%d "
            "paid_200=%d declined_402=%d captured=%lld cancelled=%lld returned=%lld "
            "calls_repeated=%d wishlist_repeat_400=%d flows_s=%.1f terminal_s=%.1f "
            "total_s=%.1f\n",
            (unsigned long long)run.seed, run.n_flows, run.n_clients, kills, accepted, oos, paid,
            declined, captured, cancelled, returned, repeated, wish_repeat_400,
            (double)(t_flows - t0) / 1000.0, (double)(t_terminal - t_flows) / 1000.0,
            (double)(t_end - t0) / 1000.0);
    cr_expect_eq(kills, (int)DAEMONS);
    cr_expect_geq(accepted, run.n_flows / 2, "most flows place an order");
    tsupport_daemons_stop_checked(procs, DAEMONS);
}
