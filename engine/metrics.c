/* metrics.c - a fixed-size Prometheus registry with atomic values, rendered on
 * demand, and a civetweb listener serving it for daemons without an HTTP edge. */
#include "metrics.h"

#include <civetweb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX       512
#define METRICS_NAME_MAX  96
#define METRICS_LABEL_MAX 160
#define METRICS_HELP_MAX  160

typedef enum metrics_kind {
    METRICS_COUNTER,
    METRICS_GAUGE,
    METRICS_HISTOGRAM
} metrics_kind;

/* Upper bounds in microseconds; rendered in seconds. */
static const int64_t bucket_us[] = { 100,     250,     500,     1000,    2500,   5000,
                                     10000,   25000,   50000,   100000,  250000, 500000,
                                     1000000, 2500000, 5000000, 10000000 };
#define METRICS_BUCKETS (LB_COUNTOF(bucket_us))

struct metrics_metric {
    /* config, fixed at creation */
    metrics_kind kind;
    char name[METRICS_NAME_MAX];
    char labels[METRICS_LABEL_MAX];
    char help[METRICS_HELP_MAX];
    /* state: lock-free */
    _Atomic int64_t value;                    /* counter/gauge; histogram: count */
    _Atomic int64_t sum_us;                   /* histogram */
    _Atomic int64_t buckets[METRICS_BUCKETS]; /* histogram, non-cumulative */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static metrics_metric registry[METRICS_MAX]; /* append-only, guarded by registry_lock */
static _Atomic size_t registry_len;

static metrics_metric *
find_or_create(metrics_kind kind, const char *name, const char *labels, const char *help)
{
    labels = labels ? labels : "";
    pthread_mutex_lock(&registry_lock);
    size_t n = atomic_load(&registry_len);
    metrics_metric *m = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(registry[i].name, name) == 0 && strcmp(registry[i].labels, labels) == 0) {
            m = &registry[i];
            break;
        }
    }
    if (m == NULL && n < METRICS_MAX) {
        m = &registry[n];
        m->kind = kind;
        snprintf(m->name, sizeof m->name, "%s", name);
        snprintf(m->labels, sizeof m->labels, "%s", labels);
        snprintf(m->help, sizeof m->help, "%s", help ? help : "");
        atomic_store(&registry_len, n + 1);
    }
    pthread_mutex_unlock(&registry_lock);
    /* A full registry is our bug: hand out a shared sink rather than crash. */
    static metrics_metric sink;
    return m ? m : &sink;
}

metrics_metric *
metrics_counter(const char *name, const char *labels, const char *help)
{
    return find_or_create(METRICS_COUNTER, name, labels, help);
}

metrics_metric *
metrics_gauge(const char *name, const char *labels, const char *help)
{
    return find_or_create(METRICS_GAUGE, name, labels, help);
}

metrics_metric *
metrics_histogram(const char *name, const char *labels, const char *help)
{
    return find_or_create(METRICS_HISTOGRAM, name, labels, help);
}

void
metrics_add(metrics_metric *m, int64_t v)
{
    atomic_fetch_add_explicit(&m->value, v, memory_order_relaxed);
}

void
metrics_set(metrics_metric *m, int64_t v)
{
    atomic_store_explicit(&m->value, v, memory_order_relaxed);
}

int64_t
metrics_value(const metrics_metric *m)
{
    return atomic_load_explicit(&((metrics_metric *)m)->value, memory_order_relaxed);
}

void
metrics_observe_us(metrics_metric *m, int64_t us)
{
    size_t b = 0;
    while (b < METRICS_BUCKETS && us > bucket_us[b])
        b++;
    if (b < METRICS_BUCKETS)
        atomic_fetch_add_explicit(&m->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->value, 1, memory_order_relaxed);
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void
sbuf_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = true;
            return;
        }
        if (b->p != NULL && b->len + (size_t)w < b->cap) {
            b->len += (size_t)w;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->len + (size_t)w + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

static const char *const kind_names[] = {
    [METRICS_COUNTER] = "counter", [METRICS_GAUGE] = "gauge", [METRICS_HISTOGRAM] = "histogram"
};

lb_status
metrics_render(char **out, lb_err *err)
{
    sbuf b = { 0 };
    size_t n = atomic_load(&registry_len);
    for (size_t i = 0; i < n && !b.oom; i++) {
        metrics_metric *m = &registry[i];
        /* HELP/TYPE once per name: rows of one name are created next to each other or not;
         * look back for an earlier row with the same name. */
        bool first = true;
        for (size_t j = 0; j < i; j++)
            if (strcmp(registry[j].name, m->name) == 0)
                first = false;
        if (first)
            sbuf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                        kind_names[m->kind]);
        const char *sep = m->labels[0] ? "," : "";
        if (m->kind != METRICS_HISTOGRAM) {
            sbuf_printf(&b, "%s%s%s%s %lld\n", m->name, m->labels[0] ? "{" : "", m->labels,
                        m->labels[0] ? "}" : "", (long long)atomic_load(&m->value));
            continue;
        }
        int64_t cum = 0;
        for (size_t k = 0; k < METRICS_BUCKETS; k++) {
            cum += atomic_load(&m->buckets[k]);
            sbuf_printf(&b, "%s_bucket{%s%sle=\"%g\"} %lld\n", m->name, m->labels, sep,
                        (double)bucket_us[k] / 1e6, (long long)cum);
        }
        int64_t count = atomic_load(&m->value);
        sbuf_printf(&b, "%s_bucket{%s%sle=\"+Inf\"} %lld\n", m->name, m->labels, sep,
                    (long long)count);
        sbuf_printf(&b, "%s_sum%s%s%s %.6f\n", m->name, m->labels[0] ? "{" : "", m->labels,
                    m->labels[0] ? "}" : "", (double)atomic_load(&m->sum_us) / 1e6);
        sbuf_printf(&b, "%s_count%s%s%s %lld\n", m->name, m->labels[0] ? "{" : "", m->labels,
                    m->labels[0] ? "}" : "", (long long)count);
    }
    if (b.p == NULL && !b.oom)
        sbuf_printf(&b, "%s", "");
    if (b.oom) {
        free(b.p);
        return lb_err_set(err, LB_ERR_NOMEM, "render metrics");
    }
    *out = b.p;
    return LB_OK;
}

struct metrics_server {
    struct mg_context *ctx;
};

static int
serve_metrics(struct mg_connection *c, void *arg)
{
    (void)arg;
    char *text = NULL;
    if (metrics_render(&text, NULL) != LB_OK) {
        mg_send_http_error(c, 500, "%s", "metrics unavailable");
        return 500;
    }
    size_t len = strlen(text);
    mg_printf(c,
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
              "Content-Length: %zu\r\nConnection: close\r\n\r\n",
              len);
    mg_write(c, text, len);
    free(text);
    return 200;
}

static int
serve_healthz(struct mg_connection *c, void *arg)
{
    (void)arg;
    static const char body[] = "{\"status\":\"ok\"}";
    mg_printf(c,
              "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
              "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
              sizeof body - 1, body);
    return 200;
}

lb_status
metrics_server_start(metrics_server **out, int port, lb_err *err)
{
    if (port == 0) {
        *out = NULL;
        return LB_OK;
    }
    metrics_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "metrics server");
    char ports[32];
    snprintf(ports, sizeof ports, "127.0.0.1:%d", port);
    const char *options[] = { "listening_ports", ports, "num_threads", "2", NULL };
    mg_init_library(0);
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    srv->ctx = mg_start(&cb, NULL, options);
    if (srv->ctx == NULL) {
        free(srv);
        return lb_err_set(err, LB_ERR_CONFIG, "metrics: cannot listen on %s (port in use?)", ports);
    }
    mg_set_request_handler(srv->ctx, "/metrics$", serve_metrics, NULL);
    mg_set_request_handler(srv->ctx, "/healthz$", serve_healthz, NULL);
    *out = srv;
    return LB_OK;
}

void
metrics_server_stop(metrics_server *srv)
{
    if (srv == NULL)
        return;
    mg_stop(srv->ctx);
    free(srv);
}
