/* bus_dlq.h - reading LAYBY_DLQ, what the services gave up on, for
 * `layby-ctl dlq list|show|redrive|purge` and the console's dead-letter reads
 * (GET /api/v1/admin/dead-letters[/{seq}], answered in the edge: no daemon
 * owns the stream). Reads are direct gets by sequence: no consumer is
 * created, so reading changes nothing.
 *
 * Ownership: natsMsg and json_t returned are the caller's.
 * Threads:   any (over a thread-safe jsCtx).
 */
#ifndef LAYBY_ENGINE_BUS_DLQ_H
#define LAYBY_ENGINE_BUS_DLQ_H

#include <jansson.h>
#include <nats/nats.h>
#include <stdbool.h>
#include <stdint.h>

#include "lb.h"

/* Which dead letters; "" (or NULL) for a filter not asked. */
typedef struct bus_dlq_filter {
    const char *subject;     /* matched against the original subject (a NATS filter) */
    const char *consumer;    /* Layby-Dlq-Consumer: LAYBY_CMD/catalog */
    const char *type;        /* Layby-Type */
    const char *correlation; /* Layby-Correlation */
} bus_dlq_filter;

/* What a walk looks at: from a sequence, at most `items` matching letters,
 * at most `scan` sequences looked at (0 = no bound). */
typedef struct bus_dlq_span {
    uint64_t from_seq; /* 0 = the oldest */
    int64_t items;
    int64_t scan;
} bus_dlq_span;

/* A page of the list: so much work per request, whatever the stream holds. */
#define BUS_DLQ_PAGE_DEFAULT 20
#define BUS_DLQ_PAGE_MAX     100
#define BUS_DLQ_SCAN_MAX     1000

typedef lb_status (*bus_dlq_fn)(jsCtx *js, natsMsg *m, uint64_t seq, void *arg, lb_err *err);

bool bus_dlq_matches(natsMsg *m, const bus_dlq_filter *f);
/* The letter at seq; LB_ERR_NOT_FOUND when the stream has none there. */
lb_status bus_dlq_get(natsMsg **m, jsCtx *js, uint64_t seq, lb_err *err);
/* The stream's message count and sequences. */
lb_status bus_dlq_state(uint64_t *msgs, uint64_t *first, uint64_t *last, jsCtx *js, lb_err *err);
/* Calls fn for each letter of the span that passes f, in sequence order;
 * *next is the first sequence not looked at (0 when the walk reached the
 * stream's end), *shown how many fn took. */
lb_status bus_dlq_walk(jsCtx *js, const bus_dlq_filter *f, bus_dlq_span span, bus_dlq_fn fn,
                       void *arg, int64_t *shown, uint64_t *next, lb_err *err);
/* A letter as the console shows it: bus_json_tree()'s object plus
 * originalSubject, consumer, lastError, deliveries (the Layby-Dlq-* headers)
 * and redrive, the layby-ctl command line that puts it back. */
json_t *bus_dlq_letter_json(natsMsg *m, uint64_t seq);
/* One page: {"total": n, "items": [letters], "nextCursor": "<seq>"}, no
 * nextCursor once the stream's end was looked at. */
lb_status bus_dlq_page(json_t **out, jsCtx *js, const bus_dlq_filter *f, bus_dlq_span span,
                       lb_err *err);

#endif
