/* outbox.h - the transactional inbox and outbox every service uses.
 *
 * A state change and the messages it causes must commit together and we have
 * no two-phase commit with JetStream, so the messages are outbox rows in the
 * caller's transaction; a relay publishes them after commit.
 *
 * Invariants:
 * (1) An outbox row commits in the same transaction as the change it announces
 *     and as the inbox id of the message that caused it.
 * (2) The relay publishes a row with Nats-Msg-Id = row id and deletes it only
 *     after JetStream acked it. A crash between the ack and the delete
 *     republishes the same id: the stream's duplicate window or the reader's
 *     inbox drops it.
 * (3) Rows are claimed with FOR UPDATE SKIP LOCKED inside the relay's
 *     transaction, so several instances never publish the same row at once.
 *
 * Tables (each service schema, sql/): inbox(msg_id, received_at),
 * outbox(id, subject, msg_type, correlation, causation, actor, reply,
 * traceparent, body, created_at).
 *
 * Ownership: outbox_buf is caller memory (_init/_destroy); a relay is owned by
 *            its creator and freed with outbox_relay_free().
 * Threads:   an outbox_buf belongs to one thread; outbox_relay_wake() and
 *            outbox_relay_hand() may be called from any thread; the relay runs
 *            two threads of its own (hand-offs; sweeps), each with its own
 *            PostgreSQL connection.
 */
#ifndef LAYBY_ENGINE_OUTBOX_H
#define LAYBY_ENGINE_OUTBOX_H

#include <protobuf-c/protobuf-c.h>

#include "bus.h"
#include "metrics.h"
#include "store.h"

/* Statements the inbox/outbox need, prepared on every service connection. */
extern const store_stmt outbox_stmts[];
extern const size_t outbox_stmts_len;

/* The inbox claim of a batch, in two halves so other reads can share its round
 * trip: inbox_claim_send() sends it inside the caller's transaction without
 * waiting (store_send); after the next wait (store_flush), inbox_claim_fresh()
 * marks which of the n ids are new: fresh[i] is true for the first occurrence
 * of an id not seen before. */
lb_status inbox_claim_send(store *s, const char *const *ids, size_t n, int *ticket, lb_err *err);
/* The claim of a speculative batch: every id new, or the transaction fails. */
lb_status inbox_claim_all_send(store *s, const char *const *ids, size_t n, lb_err *err);
lb_status inbox_claim_fresh(store *s, int ticket, const char *const *ids, size_t n, bool *fresh,
                            lb_err *err);

/* One message to publish: its envelope, subject and packed body (owned). */
typedef struct outbox_row {
    bus_envelope env;
    char subject[BUS_SUBJECT_MAX];
    uint8_t *body;
    size_t len;
} outbox_row;

/* Messages queued during one transaction, written with one statement. */
typedef struct outbox_buf {
    size_t n; /* rows queued */
    size_t cap;
    outbox_row *rows;
} outbox_buf;

void outbox_buf_init(outbox_buf *b);
void outbox_buf_destroy(outbox_buf *b);
void outbox_buf_reset(outbox_buf *b);
/* Drops the rows queued after the first n (n <= b->n). */
void outbox_buf_truncate(outbox_buf *b, size_t n);
/* Copies subject, env and the packed msg into the buffer. */
lb_status outbox_buf_add(outbox_buf *b, const char *subject, const bus_envelope *env,
                         const ProtobufCMessage *msg, lb_err *err);
/* Appends row i of a relay claim result (id, subject, msg_type, correlation,
 * causation, actor, reply, traceparent, body; binary format). */
lb_status outbox_buf_add_row(outbox_buf *b, const PGresult *res, int i, lb_err *err);
/* Moves every row of src to the end of dst (bodies change owner); src is left empty. */
void outbox_buf_move(outbox_buf *dst, outbox_buf *src);
/* Sorts rows by id: UUIDv7 ids sort in creation order. */
void outbox_buf_sort(outbox_buf *b);
/* Inserts every queued row in the caller's transaction (no-op when empty). */
lb_status outbox_buf_write(store *s, const outbox_buf *b, lb_err *err);

/* A JetStream publisher of outbox rows (its own JetStream context on the
 * bus's connection). Owned by its creator; one thread at a time. */
typedef struct outbox_pub outbox_pub;

/* m_errors (may be NULL) counts rows JetStream refused. */
lb_status outbox_pub_new(outbox_pub **out, bus *b, metrics_metric *m_errors, lb_err *err);
void outbox_pub_free(outbox_pub *p); /* waits up to 2 s for pending acks; NULL is a no-op */
/* Publishes every row of b (Nats-Msg-Id = row id) asynchronously and returns
 * LB_OK only once JetStream acked them all. */
lb_status outbox_pub_rows(outbox_pub *p, const outbox_buf *b, lb_err *err);
/* Waits for acks of earlier publishes still pending (NATS was down), so an
 * outage does not pile copies of the same rows into the reconnect buffer. */
lb_status outbox_pub_settle(outbox_pub *p, lb_err *err);

typedef struct outbox_relay outbox_relay;

typedef struct outbox_relay_opts {
    const char *service;   /* for logs and metrics labels */
    const char *db_url;    /* the relay opens two connections of its own */
    bus *bus;              /* borrowed; publishes through its connection */
    int64_t batch;         /* rows per claim (default 1024) */
    int64_t sweep_ms;      /* poll period when no wake-up comes (default 1000) */
    int64_t inbox_keep_ms; /* prune inbox ids older than this (default 7 d) */
} outbox_relay_opts;

lb_status outbox_relay_new(outbox_relay **out, const outbox_relay_opts *opts, lb_err *err);
/* Starts the relay thread. */
lb_status outbox_relay_start(outbox_relay *r, lb_err *err);
/* Tells the relay rows were committed; cheap, async-safe, any thread. */
void outbox_relay_wake(outbox_relay *r);
/* Hands the rows of a committed transaction to the relay (moved out of
 * committed, which is left empty), so it publishes them without reading them
 * back from the table; any thread. */
void outbox_relay_hand(outbox_relay *r, outbox_buf *committed);
/* Publishes everything committed so far on the caller's thread (tests, shutdown). */
lb_status outbox_relay_drain(outbox_relay *r, size_t *published, lb_err *err);
/* Stops the threads and publishes what is still committed; the relay keeps its
 * JetStream contexts until outbox_relay_free(), so a caller can close the
 * connection in between (svc.c: nothing is destroyed while nats.c's reader
 * thread may still deliver to it). Once; NULL is a no-op. */
void outbox_relay_stop(outbox_relay *r);
/* outbox_relay_stop() if not done yet, then frees. NULL is a no-op. */
void outbox_relay_free(outbox_relay *r);

#endif
