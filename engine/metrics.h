/* metrics.h - a Prometheus registry and the small HTTP server that exposes it.
 *
 * Metrics are created once (find-or-create by name + labels) and live for the
 * process; updates are lock-free atomics so hot paths can count freely.
 * Names follow layby_<module>_<what>_<unit>.
 *
 * Ownership: metric handles are owned by the registry, valid until exit.
 * Threads:   every function is thread-safe.
 */
#ifndef LAYBY_ENGINE_METRICS_H
#define LAYBY_ENGINE_METRICS_H

#include "lb.h"

typedef struct metrics_metric metrics_metric;
typedef struct metrics_server metrics_server;

/* labels: Prometheus label text without braces, e.g. "service=\"catalog\"" or "" */
metrics_metric *metrics_counter(const char *name, const char *labels, const char *help);
metrics_metric *metrics_gauge(const char *name, const char *labels, const char *help);
/* Latency histogram with fixed buckets from 100 us to 10 s, observed in microseconds. */
metrics_metric *metrics_histogram(const char *name, const char *labels, const char *help);

void metrics_add(metrics_metric *m, int64_t v); /* counter or gauge */
void metrics_set(metrics_metric *m, int64_t v); /* gauge */
void metrics_observe_us(metrics_metric *m, int64_t us);
int64_t metrics_value(const metrics_metric *m);

/* Renders the text exposition format; *out is malloc'd. */
lb_status metrics_render(char **out, lb_err *err);

/* Serves GET /metrics (and GET /healthz) on 127.0.0.1:port; port 0 = disabled (*out NULL). */
lb_status metrics_server_start(metrics_server **out, int port, lb_err *err);
void metrics_server_stop(metrics_server *srv); /* NULL is a no-op */

#endif
