/* metrics_scrape.h - reading another daemon's Prometheus /metrics, for
 * `layby-ctl status` and the console's Overview (the outbox backlog of each
 * daemon: each service's outbox lives in its own schema, which neither the
 * ctl's role nor the edge can read, and every daemon exports the gauge
 * layby_outbox_backlog_rows).
 *
 * Threads: any, after curl_global_init() (each call has its own handle).
 */
#ifndef LAYBY_ENGINE_METRICS_SCRAPE_H
#define LAYBY_ENGINE_METRICS_SCRAPE_H

#include <jansson.h>
#include <stdint.h>

#include "lb.h"

#define METRICS_SCRAPE_MAX (1024 * 1024) /* a /metrics page longer than this is refused */

/* GET url into *text (malloc'd, NUL-terminated, the caller's); LB_ERR_UNAVAILABLE
 * naming why when it does not answer 200 within timeout_ms. */
lb_status metrics_scrape(char **text, const char *url, int64_t timeout_ms, lb_err *err);
/* A series summed over its labels; -1 when the page lacks it. */
double metrics_series_sum(const char *text, const char *series);
/* {name, port, ok, outboxBacklog (null when it has no outbox) | error}, one
 * per instance of each daemon of the service table, asked at host:<its
 * metrics port> (instance 1: LAYBY_<SERVICE>_METRICS_PORT, else its default;
 * LAYBY_INSTANCES of each, instance i on <that variable>_<i>, named
 * layby-<service>-<i>, as scripts/dev's clustered stack runs them). */
json_t *metrics_scrape_daemons(const char *host, int64_t timeout_ms);

#endif
