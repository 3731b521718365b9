/* tcheckout.c - checkouts through the shop's edges (tcheckout.h). */
#include "tcheckout.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lb.h"
#include "tsupport.h"

#define CALL_RETRY_MS 90000 /* a call is repeated this long (the long run's 30 s outage) */
#define WAIT_MS       60000 /* an order reaches its state within this */

static void
nap_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* --- one client's HTTP (no asserts) ------------------------------------------------ */

typedef struct client {
    tcheckout_run *run;
    const tcheckout_member *m;
    CURL *curl;
    int edge;         /* the edge it talks to now */
    char body[16384]; /* the last answer's */
} client;

/* One request to the client's edge; 0 when no answer came. */
static long
call_once(client *c, const char *method, const char *path, const char *body, const char *idem)
{
    return tsupport_http_try(c->curl, c->run->ports[c->edge], method, path, c->m->auth, idem, body,
                             c->body, sizeof c->body);
}

/* A request repeated with the same Idempotency-Key while it gets no answer or
 * a 5xx, each repeat on the next edge: a load balancer's failover. */
static long
call(client *c, tcheckout_flow *f, const char *method, const char *path, const char *body,
     const char *idem)
{
    int64_t until = lb_now_ms() + CALL_RETRY_MS;
    int backoff = 50;
    for (;;) {
        if (atomic_load(&c->run->abandon))
            return 0;
        long st = call_once(c, method, path, body, idem);
        if ((st != 0 && st < 500) || lb_now_ms() > until)
            return st;
        f->repeats++;
        if (c->run->n_ports > 1) {
            c->edge = (c->edge + 1) % c->run->n_ports;
            f->edge_moves++;
        }
        nap_ms(backoff);
        backoff = backoff < 800 ? backoff * 2 : 800;
    }
}

/* Polls the order until its status is one of want ("|A|B|"). */
static bool
order_wait(client *c, tcheckout_flow *f, const char *want)
{
    char path[128], st[40];
    snprintf(path, sizeof path, "/api/v1/orders/%s", f->order);
    int64_t until = lb_now_ms() + WAIT_MS;
    while (lb_now_ms() < until && !atomic_load(&c->run->abandon)) {
        if (call(c, f, "GET", path, NULL, NULL) == 200) {
            json_t *j = json_loads(c->body, 0, NULL);
            const char *s = json_string_value(json_object_get(j, "status"));
            snprintf(st, sizeof st, "|%s|", s != NULL ? s : "");
            json_decref(j);
            if (s != NULL && strstr(want, st) != NULL)
                return true;
        }
        nap_ms(100);
    }
    return false;
}

static void
flow_run(client *c, int idx)
{
    tcheckout_run *r = c->run;
    tcheckout_flow *f = &r->flows[idx];
    char body[512], idem[96], path[128];
    const char *a = r->products[idx % TCHECKOUT_PRODUCTS];
    /* a second product, never the first (a repeated product is a 400) */
    const char *b = r->products[(idx % TCHECKOUT_PRODUCTS + 1 +
                                 (idx / TCHECKOUT_PRODUCTS) % (TCHECKOUT_PRODUCTS - 1)) %
                                TCHECKOUT_PRODUCTS];
    snprintf(body, sizeof body,
             "{\"items\":[{\"productId\":\"%s\",\"quantity\":1},{\"productId\":\"%s\","
             "\"quantity\":%d}],\"addressId\":\"%s\"}",
             a, b, 1 + idx % 2, c->m->address);
    snprintf(idem, sizeof idem, "%s-%d-place", r->tag, idx);
    f->place_status = call(c, f, "POST", "/api/v1/orders", body, idem);
    if (f->place_status != 201 && f->place_status != 202)
        return;
    json_t *j = json_loads(c->body, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "orderId"));
    snprintf(f->order, sizeof f->order, "%s", id != NULL ? id : "");
    json_decref(j);
    if (f->order[0] == '\0' ||
        (f->place_status == 202 && !order_wait(c, f, "|PAYMENT_PENDING|REJECTED|CANCELLED|")))
        return;
    snprintf(path, sizeof path, "/api/v1/orders/%s/payment", f->order);
    snprintf(idem, sizeof idem, "%s-%d-pay", r->tag, idx);
    long st = call(c, f, "POST", path, "{\"method\":\"card\",\"cardToken\":\"tok_visa\"}", idem);
    if (st == 202 && order_wait(c, f, "|PAID|CANCELLED|"))
        st = strstr(c->body, "\"CANCELLED\"") != NULL ? 409 : 200;
    f->pay_status = st;
    if (st == 200) {
        f->done_ms = lb_now_ms();
        atomic_fetch_add(&r->paid_flows, 1);
    }
}

static void *
client_main(void *arg)
{
    client *c = arg;
    tcheckout_run *r = c->run;
    c->curl = curl_easy_init();
    while (c->curl != NULL && !atomic_load(&r->stop)) {
        int64_t iv = atomic_load(&r->interval_us);
        if (iv > 0) { /* paced: take the next start slot, wait for it */
            int64_t slot = atomic_fetch_add(&r->next_slot_us, iv), now = lb_now_ms() * 1000;
            while (slot > now && !atomic_load(&r->stop)) {
                nap_ms((slot - now) / 1000 < 200 ? (slot - now) / 1000 + 1 : 200);
                now = lb_now_ms() * 1000;
            }
            if (atomic_load(&r->stop))
                break;
        }
        int idx = atomic_fetch_add(&r->next_flow, 1);
        if (idx >= r->max_flows)
            break;
        flow_run(c, idx);
        atomic_fetch_add(&r->done_flows, 1);
    }
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    free(c);
    return NULL;
}

/* --- set-up and control (the test's thread) ----------------------------------------- */

/* A POST on the first edge that must answer want; the body's string k into out. */
static void
setup_post(tcheckout_run *r, const char *path, const char *auth, const char *body, const char *k,
           char out[ID_STR_LEN])
{
    tsupport_resp *resp = calloc(1, sizeof *resp);
    cr_assert_not_null(resp);
    const char *h[] = { "Content-Type: application/json", auth, NULL };
    tsupport_http_call(resp, r->ports[0], "POST", path, h, body, false);
    cr_assert_eq(resp->status, 201, "POST %s: %ld %s", path, resp->status, resp->body);
    json_t *j = tsupport_http_json(resp);
    const char *v = json_string_value(json_object_get(j, k));
    cr_assert_not_null(v, "%s", resp->body);
    snprintf(out, ID_STR_LEN, "%s", v);
    json_decref(j);
    free(resp);
}

void
tcheckout_setup(tcheckout_run *r, const int *ports, int n_ports, int n_clients, int max_flows)
{
    cr_assert(n_ports >= 1 && n_ports <= TCHECKOUT_EDGES_MAX);
    cr_assert(n_clients >= 1 && n_clients <= TCHECKOUT_CLIENTS_MAX);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memcpy(r->ports, ports, (size_t)n_ports * sizeof *ports);
    r->n_ports = n_ports;
    r->n_clients = n_clients;
    r->max_flows = max_flows;
    r->flows = calloc((size_t)max_flows, sizeof *r->flows);
    cr_assert_not_null(r->flows);
    snprintf(r->tag, sizeof r->tag, "tco-%d-%lld", (int)getpid(), (long long)lb_now_ms());
    char admin_id[ID_STR_LEN], admin[TCHECKOUT_AUTH_MAX], body[256];
    id_new(admin_id);
    tsupport_jwt_member(admin, sizeof admin, admin_id, "ADMIN");
    for (int p = 0; p < TCHECKOUT_PRODUCTS; p++) {
        /* every flow takes at most 3 units of two products */
        snprintf(body, sizeof body,
                 "{\"name\":\"Cluster %d\",\"price\":%d,\"details\":\"\",\"category\":"
                 "\"cluster\",\"stock\":%d}",
                 p, 1000 * (p + 1), 3 * max_flows + 100);
        setup_post(r, "/api/v1/products", admin, body, "productId", r->products[p]);
    }
    for (int i = 0; i < n_clients; i++) {
        tcheckout_member *m = &r->members[i];
        id_new(m->id);
        tsupport_jwt_member(m->auth, sizeof m->auth, m->id, "USER");
        setup_post(r, "/api/v1/me/addresses", m->auth,
                   "{\"recipient\":\"Kim Minji\",\"phone\":\"010-1234-5678\",\"zipcode\":"
                   "\"06236\",\"city\":\"Seoul\",\"street\":\"12 Teheran-ro\"}",
                   "addressId", m->address);
    }
}

void
tcheckout_start(tcheckout_run *r)
{
    atomic_store(&r->stop, false);
    atomic_store(&r->abandon, false);
    r->running = true;
    for (int i = 0; i < r->n_clients; i++) {
        client *c = calloc(1, sizeof *c);
        cr_assert_not_null(c);
        c->run = r;
        c->m = &r->members[i];
        c->edge = i % r->n_ports; /* half the clients on each edge */
        cr_assert_eq(pthread_create(&r->threads[i], NULL, client_main, c), 0);
    }
}

void
tcheckout_pace(tcheckout_run *r, double per_s)
{
    atomic_store(&r->next_slot_us, lb_now_ms() * 1000);
    atomic_store(&r->interval_us, (long long)(1e6 / (per_s > 0.1 ? per_s : 0.1)));
}

void
tcheckout_stop(tcheckout_run *r)
{
    atomic_store(&r->stop, true);
    for (int i = 0; r->running && i < r->n_clients; i++)
        pthread_join(r->threads[i], NULL);
    r->running = false;
}

void
tcheckout_abandon(tcheckout_run *r)
{
    atomic_store(&r->abandon, true);
    tcheckout_stop(r);
}

int
tcheckout_started(tcheckout_run *r)
{
    int n = atomic_load(&r->next_flow);
    return n < r->max_flows ? n : r->max_flows;
}

void
tcheckout_free(tcheckout_run *r)
{
    tcheckout_abandon(r);
    free(r->flows);
    r->flows = NULL;
}
