/* bus_topology.h - the JetStream objects layby needs: streams, durable pull
 * consumers and key-value buckets, as one static table.
 *
 * `layby-ctl bus setup` applies the table (create, or update what differs);
 * the test support resets state through it; the services name the same
 * stream/durable pairs in their svc_consumer rows, and svc_new() refuses a
 * durable the table lacks. Streams and buckets are rows in bus_topology.c;
 * the durables are `durable` rows of the service table etc/services.tsv
 * (generated into gen/svc_table.c, with their NATS permissions derived from
 * the same rows; test builds add tests/support/services-test.tsv).
 *
 * Consumers carry no BackOff array: in nats.c a BackOff replaces AckWait by
 * BackOff[0] (PLATFORM.md), and the services choose their own redelivery
 * delay with natsMsg_NakWithDelay, so AckWait stays the one crash timeout.
 *
 * Ownership: the tables are static; callers keep the jsCtx they pass.
 * Threads:   the tables are read-only; apply functions are as thread-safe as
 *            the jsCtx (nats.c: safe).
 */
#ifndef LAYBY_ENGINE_BUS_TOPOLOGY_H
#define LAYBY_ENGINE_BUS_TOPOLOGY_H

#include <nats/nats.h>

#include "lb.h"

typedef struct bus_topology_stream {
    const char *name;    /* LAYBY_CMD */
    const char *subject; /* the one subject filter it stores: layby.cmd.> */
    const char *about;   /* stream description */
} bus_topology_stream;

typedef struct bus_topology_consumer {
    const char *stream;  /* LAYBY_CMD */
    const char *durable; /* catalog (one durable name may exist on several streams) */
    const char *filter;  /* layby.cmd.catalog.> */
    const char *reader;  /* daemon that reads it, for humans */
} bus_topology_consumer;

typedef struct bus_topology_bucket {
    const char *name; /* LAYBY_IDEMPOTENCY (stream KV_LAYBY_IDEMPOTENCY) */
    int64_t ttl_ms;   /* how long a key lives */
    int history;      /* values kept per key */
    const char *about;
} bus_topology_bucket;

extern const bus_topology_stream bus_topology_streams[];
extern const size_t bus_topology_n_streams;
/* Generated from etc/services.tsv (gen/svc_table.c); reader is layby-<service>. */
extern const bus_topology_consumer bus_topology_consumers[];
extern const size_t bus_topology_n_consumers;
extern const bus_topology_bucket bus_topology_buckets[];
extern const size_t bus_topology_n_buckets;
/* Durables no daemon reads any more (their `reader` says what replaced them);
 * bus_topology_apply() deletes them. */
extern const bus_topology_consumer bus_topology_retired[];
extern const size_t bus_topology_n_retired;

/* The row of durable on stream, or NULL when the table has none. */
const bus_topology_consumer *bus_topology_consumer_find(const char *stream, const char *durable);

/* True when NATS subject filter (tokens, `*` for one, a last `>` for one or
 * more) matches the literal subject: the server's own rule, so the services
 * can check at start that their durables deliver what they handle. */
bool bus_topology_filter_matches(const char *filter, const char *subject);

/* Settings shared by every stream and consumer (DESIGN §2 defaults). */
typedef struct bus_topology_opts {
    int64_t max_age_ms;      /* stream retention (limits) */
    int64_t duplicates_ms;   /* Nats-Msg-Id de-duplication window */
    int64_t ack_wait_ms;     /* redelivery after a consumer died mid-message */
    int64_t max_deliver;     /* deliveries before the server gives up */
    int64_t max_ack_pending; /* unacked messages per durable */
    /* Copies of every stream and bucket: 1 on a single server, 3 on a
     * cluster (docs/OPERATIONS.md). Durables inherit their stream's. */
    int64_t replicas;
} bus_topology_opts;
#define BUS_TOPOLOGY_OPTS_INIT                                                            \
    {                                                                                     \
        .max_age_ms = 7LL * 24 * 3600 * 1000, .duplicates_ms = 2 * 60 * 1000,             \
        .ack_wait_ms = 3 * 1000, .max_deliver = 5, .max_ack_pending = 4096, .replicas = 1 \
    }

typedef enum bus_topology_change {
    BUS_TOPOLOGY_CREATED,
    BUS_TOPOLOGY_UPDATED,
    BUS_TOPOLOGY_UNCHANGED,
    BUS_TOPOLOGY_DELETED /* a retired durable, by bus_topology_apply() */
} bus_topology_change;

const char *bus_topology_change_name(bus_topology_change c); /* "created" ... */

/* Creates the stream, or updates it when its settings differ. */
lb_status bus_topology_stream_apply(bus_topology_change *out, jsCtx *js,
                                    const bus_topology_stream *stream,
                                    const bus_topology_opts *opts, lb_err *err);
/* Creates the durable, or updates it when its settings differ. A changed
 * filter cannot be updated on nats-server 2.9: that is an error naming it. */
lb_status bus_topology_consumer_apply(bus_topology_change *out, jsCtx *js,
                                      const bus_topology_consumer *c, const bus_topology_opts *opts,
                                      lb_err *err);
/* Creates the bucket, or updates its TTL/history/replicas when they differ. */
lb_status bus_topology_bucket_apply(bus_topology_change *out, jsCtx *js,
                                    const bus_topology_bucket *b, const bus_topology_opts *opts,
                                    lb_err *err);

/* Called once per object by bus_topology_apply(); kind is "stream",
 * "consumer" or "bucket", name e.g. "LAYBY_CMD/catalog". */
typedef void (*bus_topology_report_fn)(void *arg, const char *kind, const char *name,
                                       bus_topology_change change);

/* Applies every row: streams first, then consumers (and deletes the retired
 * ones that still exist), then buckets. Stops at the
 * first error (err names the object). report may be NULL. */
lb_status bus_topology_apply(jsCtx *js, const bus_topology_opts *opts,
                             bus_topology_report_fn report, void *arg, lb_err *err);

#endif
