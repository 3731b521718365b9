/* bench_checkout.c - checkouts through the edge over HTTP (libcurl multi),
 * and the flash sale over HTTP (issue 20, bench/run.sh section e).
 *
 * Checkout mode (default):
 *   1. signs --members members in for real: sign-up, verification code from
 *      the dev mailbox (LAYBY_MAILBOX), confirm, login (Argon2id: ~50 ms a
 *      hash, so the member service's hashing pool of 2 sets the pace), and
 *      one address each; then --products products with plenty of stock
 *      (ADMIN token signed here like `layby-ctl token mint`);
 *   2. peak: closed loops of N clients, N = --clients / 4, / 2 and --clients,
 *      --seconds each: every client places an order (one unit of a random
 *      product, as a random signed-in member) and pays it (tok_visa); a 202
 *      is followed by polling GET /api/v1/orders/{id} until PAYMENT_PENDING
 *      or PAID. Checkouts/s = paid checkouts finished inside the window;
 *   3. half: the same paced at half the best rate, for p50/p99 of each call,
 *      once the stack is idle again (stack_settle: settle_ms=);
 *   4. quarter: paced at a quarter of the best rate for --quarter-seconds
 *      (issue 25: each call's p99 there against the disk's 4-commit floor,
 *      which bench/run.sh measures with bench_fsync beside this program).
 *   Tokens are reused across clients (members are few, checkouts many).
 *
 * Flash mode (--flash B): B members each place one order for one unit of a
 * product that has --units units, all at once (queued on --clients
 * connections, the edge's workers being a bounded pool). Their tokens are
 * minted here with the stack's key (no Argon2id: 2,000 logins would take
 * minutes), and each gets an address first. Counts PAYMENT_PENDING, 409
 * out_of_stock, 5xx, timeouts; soldout_s is when the last unit was sold.
 *
 * Lines (one per figure, "name key=value ..."): checkout_signin,
 * checkout_peak (one per level), checkout_cpu (per level: cores used by each
 * process from /proc/<pid>/stat, PostgreSQL commits and WAL syncs per
 * checkout from pg_stat_database / pg_stat_wal when LAYBY_PG_ADMIN_URL is
 * set), checkout_half, checkout_quarter, checkout_flash.
 *
 * --levels 1 runs only the --clients window, --half 0 skips the paced runs
 * (bench/checkout_profile.sh profiles one load that way); --quarter-seconds 0
 * skips only the quarter.
 *
 * Environment: LAYBY_BENCH_EDGE_URL (else http://127.0.0.1:$LAYBY_EDGE_PORT,
 * else :8080), LAYBY_MAILBOX, LAYBY_JWT_PRIVATE_KEY_FILE, LAYBY_JWT_ISSUER,
 * LAYBY_PG_ADMIN_URL (optional), LAYBY_BENCH_MARK (optional: mark_run()). */
#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "bench_http.h"
#include "engine/id.h"

#define POLL_US 100000 /* between two GETs of a pending order */

static unsigned char jwt_key[16384]; /* the stack's token key, to mint tokens */
static size_t jwt_key_len;

/* --- members ---------------------------------------------------------------------- */

typedef struct member {
    char name[40], email[80];
    char code[8];
    char token[BENCH_AUTH_MAX];
    char address[ID_STR_LEN];
} member;

typedef struct members {
    member *v;
    size_t n;
    char tag[12];
} members;

static const char PASSWORD[] = "checkout bench password";

static void
build_signup(bench_call *c, size_t i, void *arg)
{
    member *mb = &((members *)arg)->v[i];
    char body[BENCH_BODY_MAX];
    snprintf(
        body, sizeof body,
        "{\"username\":\"%s\",\"password\":\"%s\",\"email\":\"%s\",\"phone\":\"010-5555-%04zu\"}",
        mb->name, PASSWORD, mb->email, i % 10000);
    bench_call_set(c, "POST", "/api/v1/members", NULL, body, NULL);
}

/* 429 (the hashing pool is full, or a throttle) and a lost connection are
 * tried again; anything else but `want` is a failure. */
static int
expect(const bench_call *c, long want, const char *what)
{
    if (c->status == want)
        return 0;
    if (c->status == 429 || c->status == 0)
        return 1;
    fprintf(stderr, "bench: %s: HTTP %ld %.200s\n", what, c->status, c->resp ? c->resp : "");
    return -1;
}

static int
check_signup(bench_call *c, size_t i, void *arg)
{
    (void)i, (void)arg;
    return expect(c, 201, "sign-up");
}

static void
build_verify(bench_call *c, size_t i, void *arg)
{
    member *mb = &((members *)arg)->v[i];
    char body[BENCH_BODY_MAX];
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"email\":\"%s\"}", mb->name, mb->email);
    bench_call_set(c, "POST", "/api/v1/members/verification", NULL, body, NULL);
}

static int
check_verify(bench_call *c, size_t i, void *arg)
{
    (void)i, (void)arg;
    return expect(c, 202, "verification");
}

/* Reads every mail of the mailbox once; fills the codes of our members.
 * Returns how many of them have a code. */
static size_t
codes_read(members *ms, const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    char prefix[40];
    snprintf(prefix, sizeof prefix, "To: ck%s-", ms->tag);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".eml") != 0)
            continue;
        char path[1024], text[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        const char *to = strstr(text, prefix);
        const char *code = strstr(text, "code is ");
        if (to == NULL || code == NULL)
            continue;
        size_t idx = (size_t)strtoul(to + strlen(prefix), NULL, 10);
        if (idx < ms->n)
            snprintf(ms->v[idx].code, sizeof ms->v[idx].code, "%.6s", code + 8);
    }
    closedir(d);
    size_t have = 0;
    for (size_t i = 0; i < ms->n; i++)
        have += ms->v[i].code[0] != '\0';
    return have;
}

static void
build_confirm(bench_call *c, size_t i, void *arg)
{
    member *mb = &((members *)arg)->v[i];
    char body[BENCH_BODY_MAX];
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"code\":\"%s\"}", mb->name, mb->code);
    bench_call_set(c, "POST", "/api/v1/members/verification/confirm", NULL, body, NULL);
}

static int
check_confirm(bench_call *c, size_t i, void *arg)
{
    (void)i, (void)arg;
    return expect(c, 200, "confirm");
}

static void
build_login(bench_call *c, size_t i, void *arg)
{
    member *mb = &((members *)arg)->v[i];
    char body[BENCH_BODY_MAX];
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"}", mb->name, PASSWORD);
    bench_call_set(c, "POST", "/api/v1/auth/login", NULL, body, NULL);
}

static int
check_login(bench_call *c, size_t i, void *arg)
{
    int rc = expect(c, 200, "login");
    if (rc == 0 && !bench_resp_str(c, "accessToken", ((members *)arg)->v[i].token, BENCH_AUTH_MAX))
        rc = -1;
    return rc;
}

static const char ADDRESS[] =
    "{\"recipient\":\"Kim Minji\",\"phone\":\"010-1234-5678\",\"zipcode\":\"06236\","
    "\"city\":\"Seoul\",\"street\":\"12 Teheran-ro\"}";

static void
build_address(bench_call *c, size_t i, void *arg)
{
    bench_call_set(c, "POST", "/api/v1/me/addresses", ((members *)arg)->v[i].token, ADDRESS, NULL);
}

static int
check_address(bench_call *c, size_t i, void *arg)
{
    int rc = expect(c, 201, "address");
    if (rc == 0 &&
        !bench_resp_str(c, "addressId", ((members *)arg)->v[i].address, sizeof(char[ID_STR_LEN])))
        rc = -1;
    return rc;
}

/* Signs n members in for real; 0 when all are in, with an address each. */
static int
members_sign_in(members *ms, size_t n)
{
    const char *mailbox = getenv("LAYBY_MAILBOX");
    if (mailbox == NULL) {
        fprintf(stderr, "bench: LAYBY_MAILBOX is not set (eval \"$(scripts/dev env)\")\n");
        return -1;
    }
    ms->v = calloc(n, sizeof *ms->v);
    ms->n = n;
    if (ms->v == NULL)
        return -1;
    char id[ID_STR_LEN];
    id_new(id);
    snprintf(ms->tag, sizeof ms->tag, "%.4s%.4s", id + 9, id + 24); /* random digits of a v7 */
    for (size_t i = 0; i < n; i++) {
        snprintf(ms->v[i].name, sizeof ms->v[i].name, "ck%s-%zu", ms->tag, i);
        snprintf(ms->v[i].email, sizeof ms->v[i].email, "ck%s-%zu@bench.example.com", ms->tag, i);
    }
    int64_t t0 = lb_mono_us();
    /* The hashing pool admits 2 at once (hash-threads + hash-queue): more only earns 429s. */
    bench_batch b1 = { .n = n, .conc = 2, .build = build_signup, .check = check_signup, .arg = ms };
    bench_batch b2 = {
        .n = n, .conc = 16, .build = build_verify, .check = check_verify, .arg = ms
    };
    if (bench_batch_run(&b1, "sign-up", 300) != 0 || bench_batch_run(&b2, "verification", 120) != 0)
        return -1;
    int64_t deadline = lb_mono_us() + 60 * 1000000;
    while (codes_read(ms, mailbox) < n && lb_mono_us() < deadline)
        nats_Sleep(200);
    if (codes_read(ms, mailbox) < n) {
        fprintf(stderr, "bench: verification codes missing in %s\n", mailbox);
        return -1;
    }
    bench_batch b3 = {
        .n = n, .conc = 16, .build = build_confirm, .check = check_confirm, .arg = ms
    };
    bench_batch b4 = { .n = n, .conc = 2, .build = build_login, .check = check_login, .arg = ms };
    bench_batch b5 = {
        .n = n, .conc = 16, .build = build_address, .check = check_address, .arg = ms
    };
    if (bench_batch_run(&b3, "confirm", 120) != 0 || bench_batch_run(&b4, "login", 300) != 0 ||
        bench_batch_run(&b5, "address", 120) != 0)
        return -1;
    double s = (double)(lb_mono_us() - t0) / 1e6;
    printf("checkout_signin members=%zu seconds=%.1f per_s=%.1f\n", n, s, (double)n / s);
    fflush(stdout);
    return 0;
}

/* --- products --------------------------------------------------------------------- */

typedef struct products {
    char (*id)[ID_STR_LEN];
    size_t n;
    int64_t stock;
    char admin[BENCH_AUTH_MAX];
} products;

static void
build_product(bench_call *c, size_t i, void *arg)
{
    products *ps = arg;
    char body[BENCH_BODY_MAX];
    snprintf(body, sizeof body,
             "{\"name\":\"Bench laptop %zu\",\"price\":1290000,\"details\":\"\","
             "\"category\":\"bench\",\"stock\":%lld}",
             i, (long long)ps->stock);
    bench_call_set(c, "POST", "/api/v1/products", ps->admin, body, NULL);
}

static int
check_product(bench_call *c, size_t i, void *arg)
{
    int rc = expect(c, 201, "product");
    if (rc == 0 && !bench_resp_str(c, "productId", ((products *)arg)->id[i], ID_STR_LEN))
        rc = -1;
    return rc;
}

static int
products_create(products *ps, size_t n, int64_t stock)
{
    ps->n = n;
    ps->stock = stock;
    ps->id = calloc(n, sizeof *ps->id);
    char sub[ID_STR_LEN];
    id_new(sub);
    if (ps->id == NULL ||
        bench_token_mint(ps->admin, sizeof ps->admin, sub, "ADMIN", jwt_key, jwt_key_len) != 0)
        return -1;
    bench_batch b = {
        .n = n, .conc = 16, .build = build_product, .check = check_product, .arg = ps
    };
    return bench_batch_run(&b, "products", 120) == 0 ? 0 : -1;
}

/* --- checkouts -------------------------------------------------------------------- */

typedef enum step {
    STEP_PLACE,
    STEP_POLL_PLACED,
    STEP_PAY,
    STEP_POLL_PAID,
    STEP_IDLE,
} step;

typedef struct client {
    bench_call c;
    step at;
    int64_t wake_us; /* when to send the next call; 0 = in flight */
    int64_t started_us;
    char order[ID_STR_LEN];
    unsigned seq;
} client;

typedef struct run {
    const members *ms;
    const products *ps;
    client *cl;
    size_t n_cl;
    int64_t t0_us, end_us;
    int64_t rate;   /* 0 = closed loop */
    int64_t issued; /* paced: checkouts started */
    long done;      /* paid inside the window */
    long done_all;  /* paid, the drain after the window included */
    long errors, http202, late;
    bench_lat place, pay, checkout;
    unsigned seed;
    char run_tag[12];
    /* LAYBY_BENCH_SERIES=<file>: the paced runs' calls, one line each,
     * "<run> place|pay <ms since the run began> <latency ms>": a tail made
     * of stalls shows as slow calls clustered in time. */
    FILE *series;
    const char *series_run;
} run;

static unsigned
rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void
client_send(run *r, client *k)
{
    char path[160], body[BENCH_BODY_MAX], idem[64];
    const member *mb = NULL;
    switch (k->at) {
    case STEP_PLACE: {
        size_t mi = rnd(&r->seed) % r->ms->n, pi = rnd(&r->seed) % r->ps->n;
        mb = &r->ms->v[mi];
        k->order[0] = '\0';
        k->seq = (unsigned)mi;
        snprintf(body, sizeof body,
                 "{\"items\":[{\"productId\":\"%s\",\"quantity\":1}],\"addressId\":\"%s\"}",
                 r->ps->id[pi], mb->address);
        snprintf(idem, sizeof idem, "ck-%s-%zu-%lld", r->run_tag, (size_t)(k - r->cl),
                 (long long)lb_mono_us());
        bench_call_set(&k->c, "POST", "/api/v1/orders", mb->token, body, idem);
        k->started_us = lb_mono_us();
        break;
    }
    case STEP_PAY:
        mb = &r->ms->v[k->seq];
        snprintf(path, sizeof path, "/api/v1/orders/%s/payment", k->order);
        snprintf(idem, sizeof idem, "pay-%s", k->order);
        bench_call_set(&k->c, "POST", path, mb->token,
                       "{\"method\":\"card\",\"cardToken\":\"tok_visa\"}", idem);
        break;
    case STEP_POLL_PLACED:
    case STEP_POLL_PAID:
        mb = &r->ms->v[k->seq];
        snprintf(path, sizeof path, "/api/v1/orders/%s", k->order);
        bench_call_set(&k->c, "GET", path, mb->token, NULL, NULL);
        break;
    case STEP_IDLE:
        return;
    }
    k->wake_us = 0;
}

/* The next checkout of k: at once (closed loop), at its due time (paced), or
 * none after the window. */
static void
client_next(run *r, client *k)
{
    int64_t now = lb_mono_us();
    k->at = STEP_PLACE;
    if (now >= r->end_us) {
        k->at = STEP_IDLE;
        k->wake_us = INT64_MAX;
        return;
    }
    if (r->rate <= 0) {
        k->wake_us = now;
        return;
    }
    int64_t due = r->t0_us + r->issued++ * 1000000 / r->rate;
    if (due >= r->end_us) {
        k->at = STEP_IDLE;
        k->wake_us = INT64_MAX;
        return;
    }
    if (now > due + 100000)
        r->late++;
    k->wake_us = due > now ? due : now;
}

static void
checkout_failed(run *r, client *k, const char *what)
{
    if (r->errors++ < 5)
        fprintf(stderr, "bench: %s: HTTP %ld %.200s\n", what, k->c.status,
                k->c.resp ? k->c.resp : "");
    client_next(r, k);
}

static void
series_add(run *r, const char *call, int64_t sent_us, int64_t rtt_us)
{
    if (r->series != NULL && r->series_run != NULL)
        fprintf(r->series, "%s %s %.3f %.3f\n", r->series_run, call,
                (double)(sent_us - r->t0_us) / 1e3, (double)rtt_us / 1e3);
}

static void
checkout_paid(run *r, client *k)
{
    int64_t now = lb_mono_us();
    r->done_all++;
    if (now <= r->end_us) {
        r->done++;
        bench_lat_add(&r->checkout, now - k->started_us);
    }
    client_next(r, k);
}

static void
client_done(bench_call *c, void *arg)
{
    run *r = arg;
    client *k = (client *)((char *)c - offsetof(client, c));
    int64_t rtt = c->done_us - c->sent_us, now = lb_mono_us();
    char status[32] = "";
    switch (k->at) {
    case STEP_PLACE:
        if ((c->status == 201 || c->status == 202) &&
            bench_resp_str(c, "orderId", k->order, ID_STR_LEN)) {
            if (k->started_us >= r->t0_us && now <= r->end_us) {
                bench_lat_add(&r->place, rtt);
                series_add(r, "place", c->sent_us, rtt);
            }
            r->http202 += c->status == 202;
            k->at = c->status == 201 ? STEP_PAY : STEP_POLL_PLACED;
            k->wake_us = c->status == 201 ? now : now + POLL_US;
        } else {
            checkout_failed(r, k, "place");
        }
        break;
    case STEP_PAY:
        if (c->status == 200 || c->status == 202) {
            if (now <= r->end_us) {
                bench_lat_add(&r->pay, rtt);
                series_add(r, "pay", c->sent_us, rtt);
            }
            r->http202 += c->status == 202;
            if (c->status == 200) {
                checkout_paid(r, k);
            } else {
                k->at = STEP_POLL_PAID;
                k->wake_us = now + POLL_US;
            }
        } else {
            checkout_failed(r, k, "pay");
        }
        break;
    case STEP_POLL_PLACED:
    case STEP_POLL_PAID:
        if (c->status == 404 ||
            (c->status == 200 && bench_resp_str(c, "status", status, sizeof status) &&
             strcmp(status, "PENDING") == 0)) {
            k->wake_us = now + POLL_US; /* not there yet */
        } else if (c->status == 200 && k->at == STEP_POLL_PLACED &&
                   strcmp(status, "PAYMENT_PENDING") == 0) {
            k->at = STEP_PAY;
            k->wake_us = now;
        } else if (c->status == 200 && k->at == STEP_POLL_PAID && strcmp(status, "PAID") == 0) {
            checkout_paid(r, k);
        } else if (c->status == 200 && k->at == STEP_POLL_PAID &&
                   strcmp(status, "PAYMENT_PENDING") == 0) {
            k->wake_us = now + POLL_US;
        } else {
            checkout_failed(r, k, "poll");
        }
        break;
    case STEP_IDLE:
        break;
    }
}

/* One window of checkouts with n clients, closed loop (rate 0) or paced. */
static void
checkouts_run(run *r, size_t n, int64_t seconds, int64_t rate)
{
    CURLM *m = curl_multi_init();
    r->cl = calloc(n, sizeof *r->cl);
    r->n_cl = n;
    r->rate = rate;
    r->issued = 0;
    r->done = r->done_all = r->errors = r->http202 = r->late = 0;
    memset(&r->place, 0, sizeof r->place);
    memset(&r->pay, 0, sizeof r->pay);
    memset(&r->checkout, 0, sizeof r->checkout);
    r->t0_us = lb_mono_us();
    r->end_us = r->t0_us + seconds * 1000000;
    for (size_t i = 0; i < n; i++) {
        bench_call_init(&r->cl[i].c);
        client_next(r, &r->cl[i]);
    }
    /* after the window, in-flight checkouts finish (not counted) so the next
     * window starts on an idle stack */
    int64_t drain = r->end_us + BENCH_CALL_MS * 1000LL;
    for (;;) {
        int64_t now = lb_mono_us();
        size_t busy = 0;
        for (size_t i = 0; i < n; i++) {
            client *k = &r->cl[i];
            if (k->at != STEP_IDLE)
                busy++;
            if (k->wake_us != 0 && k->wake_us <= now && k->at != STEP_IDLE) {
                client_send(r, k);
                bench_call_start(m, &k->c);
            }
        }
        if (busy == 0 || now > drain)
            break;
        bench_multi_step(m, 5, client_done, r);
    }
    for (size_t i = 0; i < n; i++) {
        curl_multi_remove_handle(m, r->cl[i].c.h);
        bench_call_free(&r->cl[i].c);
    }
    curl_multi_cleanup(m);
    free(r->cl);
    r->cl = NULL;
}

/* LAYBY_BENCH_MARK=<command>: run as `<command> begin|end <clients>` around each
 * closed-loop window (and its drain), so a profiler snapshots exactly the
 * checkouts and not the sign-in before them (bench/checkout_profile.sh). */
static void
mark_run(const char *what, int64_t clients)
{
    const char *cmd = getenv("LAYBY_BENCH_MARK");
    if (cmd == NULL || cmd[0] == '\0')
        return;
    char line[1024];
    snprintf(line, sizeof line, "%s %s %lld", cmd, what, (long long)clients);
    fflush(stdout);
    if (system(line) != 0)
        fprintf(stderr, "bench: %s failed\n", line);
}

/* The stack's CPU, in cores, below which it counts as idle: its own idle
 * work (timer ticks, sweeps, fetches) takes ~0.07 here, a quarter of the
 * peak ~1.4. */
#define SETTLE_IDLE_CORES 0.15
#define SETTLE_WINDOW_MS  500
#define SETTLE_MAX_MS     20000

/* Waits until the stack is idle (at most SETTLE_MAX_MS) and returns how long
 * that took. A checkout's saga goes on after its pay is answered (the sale
 * confirmed, the delivery prepared), and a run ends with its last answer: what
 * it leaves in flight, and the queues of a run above the stack's rate, were
 * measured as the next run's first seconds. Paced at a quarter right after
 * the half, the slowest 1 % of places all started in its first 0.7 s
 * (docs/BENCHMARKS.md, twenty-fifth sitting): a paced run's percentiles are
 * the stack's at that rate, not its way down from the run before. */
static int64_t
stack_settle(void)
{
    int64_t t0 = lb_now_ms();
    for (;;) {
        bench_usage a, b;
        bench_usage_read(&a);
        struct timespec ts = { 0, SETTLE_WINDOW_MS * 1000 * 1000 };
        nanosleep(&ts, NULL);
        bench_usage_read(&b);
        double cores = bench_usage_stack_ms(&a, &b, 1) / SETTLE_WINDOW_MS;
        if (cores < SETTLE_IDLE_CORES || lb_now_ms() - t0 >= SETTLE_MAX_MS)
            return lb_now_ms() - t0;
    }
}

static int
checkout_mode(int64_t n_members, int64_t n_products, int64_t clients, int64_t seconds,
              int64_t n_levels, int64_t with_half, int64_t quarter_seconds, int64_t peak)
{
    members ms = { 0 };
    products ps = { 0 };
    if (members_sign_in(&ms, (size_t)n_members) != 0 ||
        products_create(&ps, (size_t)n_products, 10000000) != 0)
        return 1;
    run r = { .ms = &ms, .ps = &ps, .seed = (unsigned)lb_now_ms() };
    snprintf(r.run_tag, sizeof r.run_tag, "%s", ms.tag);
    double best = (double)peak;
    double best_ms = 0; /* the stack's CPU a checkout at the best level */
    int64_t levels[] = { clients / 4 > 0 ? clients / 4 : 1, clients / 2 > 0 ? clients / 2 : 1,
                         clients };
    /* --levels 1 runs only --clients (a profile of one load, no half) */
    size_t first = n_levels >= 3 ? 0 : LB_COUNTOF(levels) - (size_t)n_levels;
    if (peak > 0) /* --peak: the paced runs only, at rates of a peak given (A/B at equal rates) */
        first = LB_COUNTOF(levels);
    for (size_t l = first; l < LB_COUNTOF(levels); l++) {
        bench_usage a, b;
        int64_t ta = lb_mono_us();
        mark_run("begin", levels[l]);
        bench_usage_read(&a);
        checkouts_run(&r, (size_t)levels[l], seconds, 0);
        bench_usage_read(&b);
        mark_run("end", levels[l]);
        int64_t tb = lb_mono_us();
        double per_s = (double)r.done / (double)seconds;
        printf("checkout_peak clients=%lld seconds=%lld checkouts=%ld per_s=%.1f http202=%ld "
               "errors=%ld place_p50_ms=%.1f pay_p50_ms=%.1f checkout_p99_ms=%.1f finished=%ld\n",
               (long long)levels[l], (long long)seconds, r.done, per_s, r.http202, r.errors,
               bench_lat_pct_ms(&r.place, 50), bench_lat_pct_ms(&r.pay, 50),
               bench_lat_pct_ms(&r.checkout, 99), r.done_all);
        char label[32];
        snprintf(label, sizeof label, "clients=%lld", (long long)levels[l]);
        /* the window and its drain: the time and the checkouts between the reads */
        bench_usage_print(label, &a, &b, (double)(tb - ta) / 1e6, r.done_all);
        bench_lat_free(&r.place);
        bench_lat_free(&r.pay);
        bench_lat_free(&r.checkout);
        if (per_s > best) {
            best = per_s;
            best_ms = bench_usage_stack_ms(&a, &b, r.done_all);
        }
    }
    if (!with_half) {
        free(ms.v);
        free(ps.id);
        return r.errors == 0 ? 0 : 1;
    }
    /* Paced runs: half the peak (issue 20's figure), then a quarter (issue 25's). */
    const struct {
        const char *name, *label; /* the run's line, and its checkout_cpu label */
        int64_t div, seconds;
    } paced[] = { { "checkout_half", "half", 2, seconds },
                  { "checkout_quarter", "quarter", 4, quarter_seconds } };
    long errors = 0;
    double paced_ms[LB_COUNTOF(paced)] = { 0 }; /* the stack's CPU a checkout, half then quarter */
    const char *series = getenv("LAYBY_BENCH_SERIES");
    if (series != NULL && (r.series = fopen(series, "w")) == NULL)
        fprintf(stderr, "bench: cannot write %s\n", series);
    for (size_t p = 0; p < LB_COUNTOF(paced); p++) {
        if (paced[p].seconds < 1)
            continue;
        r.series_run = paced[p].name;
        int64_t rate = (int64_t)(best / (double)paced[p].div);
        if (rate < 1)
            rate = 1;
        /* from_ms/to_ms (wall clock) let run.sh read this run's hops from the
         * streams afterwards (bench/flow_hops.py --from-ms --to-ms). */
        int64_t settle_ms = stack_settle();
        bench_usage ua, ub;
        int64_t from_ms = lb_now_ms();
        bench_usage_read(&ua);
        checkouts_run(&r, (size_t)clients, paced[p].seconds, rate);
        bench_usage_read(&ub);
        int64_t to_ms = lb_now_ms();
        printf("%s rate=%lld seconds=%lld checkouts=%ld per_s=%.1f late=%ld http202=%ld "
               "errors=%ld place_p50_ms=%.1f place_p99_ms=%.1f pay_p50_ms=%.1f pay_p99_ms=%.1f "
               "checkout_p50_ms=%.1f checkout_p99_ms=%.1f peak_per_s=%.1f from_ms=%lld "
               "to_ms=%lld settle_ms=%lld\n",
               paced[p].name, (long long)rate, (long long)paced[p].seconds, r.done,
               (double)r.done / (double)paced[p].seconds, r.late, r.http202, r.errors,
               bench_lat_pct_ms(&r.place, 50), bench_lat_pct_ms(&r.place, 99),
               bench_lat_pct_ms(&r.pay, 50), bench_lat_pct_ms(&r.pay, 99),
               bench_lat_pct_ms(&r.checkout, 50), bench_lat_pct_ms(&r.checkout, 99), best,
               (long long)from_ms, (long long)to_ms, (long long)settle_ms);
        bench_usage_print(paced[p].label, &ua, &ub, (double)(to_ms - from_ms) / 1e3, r.done_all);
        paced_ms[p] = bench_usage_stack_ms(&ua, &ub, r.done_all);
        bench_lat_free(&r.place);
        bench_lat_free(&r.pay);
        bench_lat_free(&r.checkout);
        errors += r.errors;
    }
    if (r.series != NULL)
        fclose(r.series);
    /* Issue 25: what a checkout costs below the peak, where a batch holds
     * one message and nothing shares a transaction, a commit or a wake-up. */
    if (best_ms > 0 && paced_ms[1] > 0)
        printf("checkout_cost peak_ms=%.2f half_ms=%.2f quarter_ms=%.2f quarter_x=%.2f\n", best_ms,
               paced_ms[0], paced_ms[1], paced_ms[1] / best_ms);
    free(ms.v);
    free(ps.id);
    return errors == 0 ? 0 : 1;
}

/* --- the flash sale --------------------------------------------------------------- */

typedef struct buyer {
    int64_t done_us;        /* when its outcome was known */
    long status;            /* of the place call */
    char order[ID_STR_LEN]; /* after a 202: the order to poll */
    char outcome[32];       /* PAYMENT_PENDING, out_of_stock, REJECTED, ... */
} buyer;

typedef struct flash_sale {
    members ms; /* tokens minted, addresses added */
    products ps;
    buyer *b;
    size_t n;
    int64_t t0_us;
} flash_sale;

static void
build_flash_place(bench_call *c, size_t i, void *arg)
{
    flash_sale *f = arg;
    char body[BENCH_BODY_MAX], idem[64];
    if (f->b[i].status == 202) { /* polling what a 202 left to decide */
        char path[160];
        snprintf(path, sizeof path, "/api/v1/orders/%s", f->b[i].order);
        bench_call_set(c, "GET", path, f->ms.v[i].token, NULL, NULL);
        return;
    }
    snprintf(body, sizeof body,
             "{\"items\":[{\"productId\":\"%s\",\"quantity\":1}],\"addressId\":\"%s\"}",
             f->ps.id[0], f->ms.v[i].address);
    snprintf(idem, sizeof idem, "flash-%s-%zu", f->ms.tag, i);
    bench_call_set(c, "POST", "/api/v1/orders", f->ms.v[i].token, body, idem);
}

/* After a 202 the buyer's order is polled (1) until it is decided. */
static int
check_flash_place(bench_call *c, size_t i, void *arg)
{
    flash_sale *f = arg;
    buyer *b = &f->b[i];
    char st[32] = "";
    if (b->status == 202) {
        if (c->status == 404 || (c->status == 200 && bench_resp_str(c, "status", st, sizeof st) &&
                                 strcmp(st, "PENDING") == 0))
            return 1;
        snprintf(b->outcome, sizeof b->outcome, "%s", c->status == 200 ? st : "poll_failed");
        b->done_us = c->done_us;
        return 0;
    }
    b->status = c->status;
    b->done_us = c->done_us;
    if (c->status == 201) {
        bench_resp_str(c, "status", b->outcome, sizeof b->outcome);
    } else if (c->status == 202) {
        if (!bench_resp_str(c, "orderId", b->order, sizeof b->order))
            return -1;
        return 1;
    } else if (c->status >= 400) {
        bench_resp_error_code(c, b->outcome, sizeof b->outcome);
    } else {
        snprintf(b->outcome, sizeof b->outcome, "timeout");
    }
    return 0;
}

static int
flash_mode(int64_t buyers, int64_t units, int64_t clients)
{
    flash_sale f = { .n = (size_t)buyers };
    f.ms.n = f.n;
    f.ms.v = calloc(f.n, sizeof *f.ms.v);
    f.b = calloc(f.n, sizeof *f.b);
    if (f.ms.v == NULL || f.b == NULL)
        return 1;
    char id[ID_STR_LEN];
    id_new(id);
    snprintf(f.ms.tag, sizeof f.ms.tag, "%.4s%.4s", id + 9, id + 24);
    /* Minted tokens, as `layby-ctl token mint` would: see the file's head. */
    for (size_t i = 0; i < f.n; i++) {
        char sub[ID_STR_LEN];
        id_new(sub);
        if (bench_token_mint(f.ms.v[i].token, BENCH_AUTH_MAX, sub, "USER", jwt_key, jwt_key_len) !=
            0)
            return 1;
    }
    bench_batch ba = { .n = f.n,
                       .conc = (size_t)clients,
                       .build = build_address,
                       .check = check_address,
                       .arg = &f.ms };
    if (bench_batch_run(&ba, "addresses", 300) != 0 || products_create(&f.ps, 1, units) != 0)
        return 1;

    f.t0_us = lb_mono_us();
    bench_batch bp = { .n = f.n,
                       .conc = (size_t)clients,
                       .build = build_flash_place,
                       .check = check_flash_place,
                       .arg = &f };
    bench_batch_run(&bp, "flash sale", 120);
    long pending = 0, oos = 0, polled = 0, s5xx = 0, timeouts = 0, other = 0;
    int64_t soldout = 0, last = 0;
    for (size_t i = 0; i < f.n; i++) {
        buyer *b = &f.b[i];
        polled += b->status == 202;
        if (b->done_us > last)
            last = b->done_us;
        if (strcmp(b->outcome, "PAYMENT_PENDING") == 0) {
            pending++;
            if (b->done_us > soldout)
                soldout = b->done_us;
        } else if (strcmp(b->outcome, "out_of_stock") == 0 ||
                   (b->status == 202 && strcmp(b->outcome, "REJECTED") == 0)) {
            oos++;
        } else if (b->status >= 500) {
            s5xx++;
        } else if (b->status == 0) {
            timeouts++;
        } else {
            other++;
            if (other <= 5)
                fprintf(stderr, "bench: buyer %zu: HTTP %ld %s\n", i, b->status, b->outcome);
        }
    }
    double all_s = (double)(last - f.t0_us) / 1e6;
    printf("checkout_flash buyers=%zu units=%lld clients=%lld payment_pending=%ld "
           "out_of_stock=%ld http202=%ld http5xx=%ld timeouts=%ld other=%ld soldout_s=%.3f "
           "all_s=%.3f per_s=%.0f\n",
           f.n, (long long)units, (long long)clients, pending, oos, polled, s5xx, timeouts, other,
           (double)(soldout - f.t0_us) / 1e6, all_s, all_s > 0 ? (double)f.n / all_s : 0.0);
    bool ok = pending == units && oos == buyers - units && s5xx == 0 && timeouts == 0 && other == 0;
    free(f.ms.v);
    free(f.b);
    free(f.ps.id);
    return ok ? 0 : 1;
}

/* --- main ------------------------------------------------------------------------- */

int
main(int argc, char **argv)
{
    int64_t n_members = 128, n_products = 200, clients = 48, seconds = 10, flash = 0, units = 100;
    int64_t n_levels = 3, with_half = 1, quarter_seconds = 20, peak = 0;
    const bench_flag flags[] = {
        { "members", &n_members, "members signed in for real (checkout mode)" },
        { "products", &n_products, "products with plenty of stock (checkout mode)" },
        { "clients", &clients, "concurrent clients (connections; at most LAYBY_EDGE_THREADS)" },
        { "seconds", &seconds, "length of each window (checkout mode)" },
        { "flash", &flash, "buyers of a flash sale (flash mode when > 0)" },
        { "units", &units, "units on sale (flash mode)" },
        { "levels", &n_levels, "closed-loop levels: 3 (clients/4, /2, all) or 1 (all)" },
        { "half", &with_half, "1: then the paced runs at half and a quarter of the peak; 0: not" },
        { "quarter-seconds", &quarter_seconds, "length of the run at a quarter (0 = none)" },
        { "peak", &peak, "> 0: no closed loops; pace at half and a quarter of this rate" },
    };
    if (bench_flags(argc, argv, flags, LB_COUNTOF(flags)) != 0)
        return 2;
    const char *url = getenv("LAYBY_BENCH_EDGE_URL");
    const char *port = getenv("LAYBY_EDGE_PORT");
    char base[512];
    if (url != NULL)
        snprintf(base, sizeof base, "%s", url);
    else
        snprintf(base, sizeof base, "http://127.0.0.1:%s", port != NULL ? port : "8080");
    bench_http_base_set(base);
    lb_err err;
    if (id_init(&err) != LB_OK || bench_key_load(jwt_key, sizeof jwt_key, &jwt_key_len) != 0 ||
        clients < 1 || seconds < 1 || n_levels < 1 || n_levels > 3) {
        fprintf(stderr, "bench: cannot start\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = flash > 0 ? flash_mode(flash, units, clients)
                       : checkout_mode(n_members, n_products, clients, seconds, n_levels, with_half,
                                       quarter_seconds, peak);
    curl_global_cleanup();
    return rc;
}
