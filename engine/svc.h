/* svc.h - the service runtime: a daemon declares its handlers as a table and
 * this module runs them exactly once per message.
 *
 * For each batch fetched from the service's durable pull consumer(s):
 *   BEGIN; inbox insert of every Nats-Msg-Id (duplicates are dropped here);
 *   each handler group runs its SQL on the fresh items; every message the
 *   handlers emitted is written to the outbox; COMMIT; ack; send replies.
 * The outbox relay (outbox.h) then publishes what was committed.
 *
 * Invariants:
 * (1) Business rows, inbox ids and outbox rows of a message commit together.
 * (2) A message is acked only after its transaction committed; a crash before
 *     the ack redelivers it, the inbox recognises the id and it is skipped.
 * (3) A handler returning an error rolls the whole batch back; the items are
 *     then retried one per transaction so one bad message cannot block others;
 *     one that still fails is nak'd with a delay and, after max_deliver
 *     attempts or at once if it cannot be decoded, moved to LAYBY_DLQ.
 * (4) Business refusals (validation, not found, out of stock) are outcomes,
 *     not errors: the handler sets item->outcome, the transaction commits and
 *     the requester gets a layby.v1.Failure reply.
 * (5) A transient database failure (LB_ERR_DB: connection lost, shutdown,
 *     serialization failure, deadlock) is not the messages' fault and spends
 *     none of their deliveries: the worker holds the batch (reporting it in
 *     progress so AckWait does not redeliver it), waits with backoff,
 *     reconnects and runs it again, for as long as the outage lasts.
 *
 * Ownership: svc_new() returns a svc freed by svc_free(); the svc_def tables
 *            are borrowed and must outlive it (they are static const).
 * Threads:   svc_run() starts one consumer thread per consumer, the outbox
 *            relay, the query responders and the tick thread (which also
 *            runs housekeeping), each with its own PostgreSQL connection;
 *            handlers run on those threads. A stateless service
 *            (svc_def.stateless) starts only the consumers, without
 *            connections.
 */
#ifndef LAYBY_ENGINE_SVC_H
#define LAYBY_ENGINE_SVC_H

#include <protobuf-c/protobuf-c.h>

#include "bus.h"
#include "cfg.h"
#include "lb.h"
#include "store.h"

typedef struct svc svc;
typedef struct svc_batch svc_batch; /* one transaction in progress */
typedef struct svc_query svc_query; /* one query being answered */

/* One fresh (not duplicate) message given to a handler. */
typedef struct svc_item {
    const char *subject;     /* borrowed, valid during the handler */
    const bus_envelope *env; /* headers of the incoming message */
    ProtobufCMessage *msg;   /* decoded body, owned by the engine */
    int64_t now_ms;          /* wall time the batch started: handlers use this, not a clock */
    /* Set by the handler: */
    lb_status outcome;       /* LB_OK, or a business refusal (4xx-class status) */
    lb_err why;              /* text and field of a refusal, sent in the Failure reply */
    ProtobufCMessage *reply; /* optional success reply to Layby-Reply; engine frees it */
} svc_item;

/* Handles n fresh items, in arrival order, inside the batch's transaction: the
 * items of every handler row that names this function (so one function may
 * take several message types at once and check item->msg->descriptor).
 * Returns LB_OK, or an error that rolls the batch back. */
typedef lb_status (*svc_handler_fn)(svc_batch *b, svc_item *items, size_t n, lb_err *err);

/* Optional, per service: sees every message of a batch (duplicates too, since
 * the inbox was not read yet) at the start of its transaction, and may send
 * reads with store_send() whose results the handler needs. They share the inbox
 * claim's round trip; the handler finds the ticket with svc_batch_prefetched().
 * items[].outcome is ignored here. */
typedef lb_status (*svc_prefetch_fn)(svc_batch *b, const svc_item *items, size_t n, lb_err *err);

/* Optional, per service (the orchestrator): whether the handlers can decide
 * every message of a batch from what the service remembers, without reading
 * first. Then the batch is one round trip instead of two: BEGIN, an inbox
 * claim that fails on a duplicate instead of skipping it, the handlers' writes,
 * the outbox rows and COMMIT leave together, and the handlers (which see
 * svc_batch_speculative()) must send, before their writes, a check that fails
 * the transaction when what they remembered is no longer so. On any failure
 * the batch is rolled back and runs again at once the ordinary way
 * (layby_svc_speculations_total{result}); a worker whose speculations keep
 * failing (another instance moves the same rows) asks less often. Called
 * before the transaction, on the worker's thread; items[].outcome is ignored. */
typedef bool (*svc_speculate_fn)(const svc_item *items, size_t n);

typedef struct svc_handler {
    const char *subject;                    /* exact subject the message arrives on */
    const ProtobufCMessageDescriptor *desc; /* body type; NULL = decode by Layby-Type */
    svc_handler_fn fn;
    /* Optional: when a batch is this row's one message (and the service has
     * no svc_def.prefetch), sends the handler's first read with the inbox
     * claim, as svc_def.prefetch does with n = 1: one round trip fewer a
     * message at low rates, where every batch is one message. The message is
     * not validated yet: send nothing that bad input could make fail. Both
     * sides read through svc_batch_read_first(), which in a larger batch
     * reads in the handler. */
    svc_prefetch_fn prefetch;
} svc_handler;

/* Answers one query from the service's queue group. *reply (owned by the
 * engine afterwards) or a refusal in err (-> layby.v1.Failure). */
typedef lb_status (*svc_query_fn)(svc_query *q, const ProtobufCMessage *req,
                                  ProtobufCMessage **reply, lb_err *err);

/* What a query does to the database, which decides whether the engine may
 * run it a second time. A session already dead when a query starts
 * (PostgreSQL restarted, pg_terminate_backend) is seen by store_ensure()
 * before anything is sent, so reads and writes alike run once, on a new
 * session. A read whose session dies after that check is run once more on a
 * new session before it answers: nothing happened the first time. A write is
 * never run twice by the engine (a COMMIT lost with its connection has an
 * unknown outcome, and a write may have effects outside the database, such
 * as the login throttle's counts); its caller repeats it. WRITES is 0, so a
 * row that forgets the column is never run twice. */
typedef enum svc_query_kind {
    SVC_QUERY_WRITES = 0,
    SVC_QUERY_READS,
} svc_query_kind;

typedef struct svc_query_route {
    const char *subject; /* layby.qry.<service>.<name> */
    const ProtobufCMessageDescriptor *desc;
    svc_query_fn fn;
    svc_query_kind kind;
} svc_query_route;

/* Periodic work in its own transaction with the outbox (timers, pruning).
 * Sets *more when it should run again at once (a full batch was claimed). */
typedef lb_status (*svc_tick_fn)(svc_batch *b, int64_t now_ms, bool *more, lb_err *err);

/* Housekeeping (pruning, gauges) on the tick thread after each tick that has
 * nothing more to do, outside any transaction: each statement commits on its
 * own, so a failure here is the hook's to log and never undoes the tick's
 * work. Reports nothing: it runs again after the next tick. */
typedef void (*svc_housekeep_fn)(store *db, int64_t now_ms);

/* A durable pull consumer the service reads (created by `layby-ctl bus setup`). */
typedef struct svc_consumer {
    const char *stream;  /* LAYBY_CMD */
    const char *durable; /* "catalog" */
} svc_consumer;

typedef struct svc_def {
    const char *name; /* "catalog": log service, metrics label, DLQ subject layby.dlq.<name> */
    const svc_consumer *consumers;
    size_t n_consumers;
    const svc_handler *handlers; /* matched by subject; unmatched messages are acked and ignored */
    size_t n_handlers;
    const svc_query_route *queries;
    size_t n_queries;
    const store_stmt *stmts; /* prepared on every connection of the service */
    size_t n_stmts;
    svc_prefetch_fn prefetch;   /* NULL = none */
    svc_speculate_fn speculate; /* NULL = never */
    svc_tick_fn tick;           /* NULL = none */
    int64_t tick_interval_ms;
    svc_housekeep_fn housekeep; /* NULL = none; runs only where a tick runs */
    cfg_group opts; /* the daemon's own settings besides svc_cfg ({NULL, NULL, 0} = none) */
    /* Handlers with no effects at all (the benchmark's no-op participant): no
     * database, no inbox, no outbox. What they emit is published before the
     * input is acked, with Nats-Msg-Id derived from the input's id and the
     * row's place among that input's messages, so a redelivered input
     * publishes the same ids and JetStream's duplicate window drops them
     * (emit with the input as cause; without one a row keeps a fresh id).
     * svc_batch_store() is NULL; queries and ticks are not run. */
    bool stateless;
} svc_def;

/* Settings every daemon shares; filled by cfg_load() from svc_cfg_opts. */
typedef struct svc_cfg {
    const char *nats_url;
    const char *nats_user;
    const char *nats_password;
    const char *db_url;
    const char *instance;
    const char *log_level;
    int64_t metrics_port;
    int64_t batch;          /* messages fetched (and handled) per transaction */
    int64_t fetch_wait_ms;  /* how long a fetch waits for the first message */
    int64_t max_deliver;    /* deliveries before a failing message is dead-lettered */
    int64_t nak_delay_ms;   /* redelivery delay after a transient failure */
    int64_t relay_sweep_ms; /* outbox sweep period (rows no relay was handed) */
    int64_t query_threads;  /* query responders (each with its own connection) */
    int64_t workers;        /* consumer threads per durable (each with its own connection) */
    int64_t inbox_keep_ms;  /* prune inbox ids older than this (>= the streams' max age) */
} svc_cfg;

/* Fills rows for the common settings of service `name` (env LAYBY_<NAME>_...)
 * into opts (capacity cap) and returns how many; offsets relative to a svc_cfg
 * placed at base_offset inside the caller's config struct. */
size_t svc_cfg_opts(cfg_opt *opts, size_t cap, const char *name, size_t base_offset);

lb_status svc_new(svc **out, const svc_def *def, const svc_cfg *cfg, lb_err *err);
/* Runs until svc_stop(); returns LB_OK on a clean stop. */
lb_status svc_run(svc *s, lb_err *err);
/* Asks svc_run() to return; async-signal-safe. */
void svc_stop(svc *s);
void svc_free(svc *s); /* NULL is a no-op */

/* The whole main() of a service daemon: settings (flags + LAYBY_<NAME>_*),
 * --help, logs, fault points, then svc_run() until SIGTERM. Returns the exit
 * code: 0 clean stop, 1 runtime failure, 2 bad settings. */
int svc_main(int argc, char **argv, const svc_def *def, const char *about);

/* Installs SIGINT/SIGTERM handlers that make svc_run(s) stop (a signal
 * after svc_free(s) does nothing). */
void svc_signals_install(svc *s);

/* --- inside a handler or tick ------------------------------------------- */

store *svc_batch_store(svc_batch *b);
/* A point in the batch to come back to: a SAVEPOINT in its transaction and
 * how many outbox rows and replies were queued. A tick uses it to isolate the
 * part of its work that failed (the orchestrator: one saga at a time). Every
 * mark of a transaction is a subtransaction, so set one per unit of work
 * only on a path that needs it, not in the hot path. */
typedef struct svc_mark {
    size_t n_out, n_replies, n_hooks;
} svc_mark;
/* Sets the savepoint; waits for the statements in flight and reports their
 * failure, as svc_batch_check() does. */
lb_status svc_batch_mark(svc_batch *b, svc_mark *m, lb_err *err);
/* Waits for every statement sent so far: LB_OK means they all succeeded. */
lb_status svc_batch_check(svc_batch *b, lb_err *err);
/* Rolls the transaction back to mark m (which stays set) and drops the rows
 * and replies queued since. An error means the transaction is lost: return it. */
lb_status svc_batch_undo(svc_batch *b, const svc_mark *m, lb_err *err);
/* In svc_def.prefetch: leaves the ticket of a store_send() for the handler.
 * In the handler: that ticket (once; -1 when there is none, as in a tick). */
void svc_batch_prefetch_set(svc_batch *b, int ticket);
int svc_batch_prefetched(svc_batch *b);
/* A handler's first read, statement name with values (text parameters and
 * results). In its row's prefetch (out NULL): sent with the inbox claim, its
 * ticket left for the handler. In the handler: that result when it was sent
 * (*out, the caller's to PQclear()), else the statement run now. */
lb_status svc_batch_read_first(svc_batch *b, PGresult **out, const char *name, int nparams,
                               const char *const *values, lb_err *err);
/* Whether a prefetched read waits for the handler (svc_batch_prefetched()
 * would give its ticket). */
bool svc_batch_has_prefetched(const svc_batch *b);
/* Whether this batch runs from what the service remembers (svc_speculate_fn). */
bool svc_batch_speculative(const svc_batch *b);
/* Calls fn(arg, true) once the batch's transaction committed, or fn(arg,
 * false) when it rolls back or svc_batch_undo() drops the part it was set in
 * (also when this call fails): once either way, so arg may be freed there. */
typedef void (*svc_commit_fn)(void *arg, bool committed);
lb_status svc_batch_on_commit(svc_batch *b, svc_commit_fn fn, void *arg, lb_err *err);
/* Queues msg for the outbox of this transaction; published after commit.
 * env comes from bus_envelope_init(), usually with the item's envelope as cause. */
lb_status svc_emit(svc_batch *b, const char *subject, const bus_envelope *env,
                   const ProtobufCMessage *msg, lb_err *err);
/* svc_emit() of an event that also answers item `it`: when the item's sender
 * waits (Layby-Reply), a copy of msg becomes its reply, so a participant's
 * outcome event reaches a direct requester (tests, operators) as well as the
 * saga that reads it from LAYBY_EVT. (svc_answer.c) */
lb_status svc_emit_answer(svc_batch *b, svc_item *it, const char *subject, const bus_envelope *env,
                          const ProtobufCMessage *msg, lb_err *err);
/* Queues a core-NATS message to `inbox`, sent after commit (never before:
 * a reply must not announce what might still roll back). */
lb_status svc_reply(svc_batch *b, const char *inbox, const bus_envelope *env,
                    const ProtobufCMessage *msg, lb_err *err);

store *svc_query_store(svc_query *q);
const bus_envelope *svc_query_env(svc_query *q);
/* A query that writes (store_begin on svc_query_store) queues the messages
 * its transaction causes here; svc_query_commit() writes them to the outbox,
 * commits and hands them to the relay at once, as a batch's commit does, so
 * they are published without waiting for the relay's sweep. Rows queued by a
 * transaction that does not commit through svc_query_commit() are dropped
 * (svc_query_rollback(), or when the query ends). */
lb_status svc_query_emit(svc_query *q, const char *subject, const bus_envelope *env,
                         const ProtobufCMessage *msg, lb_err *err);
/* Writes the queued rows in the open transaction, commits, hands them off.
 * On an error the transaction is still open: call svc_query_rollback(). */
lb_status svc_query_commit(svc_query *q, lb_err *err);
/* Rolls the open transaction back and drops the queued rows. */
void svc_query_rollback(svc_query *q);

/* Audit queries (layby.qry.<service>.audit, DESIGN §7) answer orders a page
 * at a time in id order. Checks a request's cursor (after: "" or an order id)
 * and page size (0 = SVC_AUDIT_PAGE_DEFAULT, at most SVC_AUDIT_PAGE_MAX) and
 * writes the size as text into lim, the SQL parameter. (svc_query.c) */
#define SVC_AUDIT_PAGE_DEFAULT 1000
#define SVC_AUDIT_PAGE_MAX     5000
lb_status svc_audit_page(char lim[16], const char *after, int32_t limit, lb_err *err);

/* Fills message m (a row of an audit reply, initialised) from row r of res:
 * strings strdup()ed, numbers parsed. False when a strdup() failed. */
typedef bool svc_audit_fill(ProtobufCMessage *m, const PGresult *res, int r);

/* What an audit reply is made of. `reply` has a repeated message field
 * `orders` and a string `next_order_id`. On the first page (no cursor) the
 * statement head_stmt fills the message field head_field: one message per row
 * when it is repeated, from the first row when it is single (head_field NULL:
 * no such part). Then orders_stmt ($1 the cursor, $2 the page size; the
 * order id in column 0) gives one `orders` row per row. */
typedef struct svc_audit_def {
    const ProtobufCMessageDescriptor *reply;
    const char *head_field, *head_stmt;
    svc_audit_fill *head_fill;
    const char *orders_stmt;
    svc_audit_fill *orders_fill;
} svc_audit_def;

/* An audit query's handler body: checks the cursor and page size
 * (svc_audit_page), builds the reply def describes and sets next_order_id to
 * the last order of a full page ("" after a short one: the last page). */
lb_status svc_audit_reply(svc_query *q, const svc_audit_def *def, const char *after, int32_t limit,
                          ProtobufCMessage **reply, lb_err *err);
/* Parses columns first.. of row r of res as integers into cols[0..n). */
void svc_audit_ints(int64_t *const *cols, size_t n, const PGresult *res, int r, int first);

#endif
