/* svc_internal.h - what svc.c, svc_batch.c and svc_query.c share.
 *
 * Ownership: everything here is owned by the struct svc it hangs off.
 * Threads:   struct svc is read-only after svc_run() starts its threads, except
 *            `stop` (atomic); each worker, query thread and the tick thread own
 *            their store and svc_batch.
 */
#ifndef LAYBY_ENGINE_SVC_INTERNAL_H
#define LAYBY_ENGINE_SVC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "metrics.h"
#include "outbox.h"
#include "svc.h"

/* What the server's settings of one durable allow. Every worker thread bound
 * to the durable reads the same copy, and each (re)bind writes it, so a
 * rebind by one worker (after an operator recreated the durable) is seen by
 * all of them at their next message. */
typedef struct svc__durable {
    atomic_llong max_deliver; /* dead-letter at this delivery: min(--max-deliver, MaxDeliver) */
    atomic_llong ack_wait_ms; /* the durable's AckWait: a held batch reports progress within it */
} svc__durable;

/* The phases of one batch, each timed into layby_svc_phase_seconds (issue
 * 25: find where an orchestrator hop's time goes before tuning it). FETCH is
 * the pull that returned the batch; READ is BEGIN, the inbox claim and the
 * prefetched reads (one round trip); HANDLE the handlers (their own reads and
 * decisions; their writes are queued, pipelined); WRITE the outbox rows;
 * COMMIT the round trip that sends the queued writes and COMMIT; SETTLE the
 * acks, replies and the hand-off to the relay. The relay's publish and its
 * acks are layby_outbox_drain_seconds. A clock read and three relaxed atomic
 * adds per phase: no I/O on the batch's path. */
typedef enum svc__phase {
    SVC__PHASE_FETCH,
    SVC__PHASE_READ,
    SVC__PHASE_HANDLE,
    SVC__PHASE_WRITE,
    SVC__PHASE_COMMIT,
    SVC__PHASE_SETTLE,
    SVC__PHASES
} svc__phase;

struct svc {
    /* config */
    const svc_def *def;
    svc_cfg cfg;
    store_stmt *stmts; /* engine rows + def->stmts, prepared on every connection */
    size_t n_stmts;
    /* state */
    bus *bus;
    outbox_relay *relay;
    atomic_bool stop;
    svc__durable *durables; /* one per def->consumers[], same order */
    metrics_metric *m_handled, *m_duplicates, *m_redelivered, *m_dead, *m_retries, *m_batch;
    metrics_metric *m_db_waits, *m_queries, *m_query_lat, *m_progress;
    metrics_metric *m_spec_ok, *m_spec_failed; /* layby_svc_speculations_total{result} */
    metrics_metric *m_phase[SVC__PHASES];      /* layby_svc_phase_seconds{phase=...} */
};

/* Batch connections: a consumer thread's connection plans every statement
 * once (store_generic_plans). Its statements are the batch's: lookups by key
 * (= ANY of an id array) and array writes, whose generic plan is the plan a
 * custom one finds. PostgreSQL still planned some of them anew on every call
 * (the orchestrator's saga_lock, the catalog's stock batch), because the
 * generic plan's estimate for an array of unknown length looks dearer: about
 * 1 ms of a checkout's 13 ms of statement time (docs/BENCHMARKS.md). Not for
 * the query threads: their list statements have optional filters (`$1 = ''
 * OR ...`), where only a custom plan picks the index that fits; a key lookup
 * they share with the batches starts with STORE_GENERIC (store.h) instead. */

/* A core-NATS message held until the transaction commits. */
typedef struct svc__pending_reply {
    natsMsg *msg;
} svc__pending_reply;

/* An svc_batch_on_commit() call waiting for the transaction's end. */
typedef struct svc__commit_hook {
    svc_commit_fn fn;
    void *arg;
} svc__commit_hook;

struct svc_batch {
    svc *s;
    store *db;
    outbox_buf out;
    svc__pending_reply *replies;
    size_t n_replies, cap_replies;
    svc__commit_hook *hooks;
    size_t n_hooks, cap_hooks;
    int prefetch_ticket; /* -1 = none */
    bool speculative;    /* svc_speculate_fn said yes for this transaction */
};

void svc__batch_init(svc_batch *b, svc *s, store *db);
void svc__batch_reset(svc_batch *b); /* drops queued rows, replies and hooks (rollback) */
void svc__batch_destroy(svc_batch *b);
/* After commit: sends the queued replies, runs the commit hooks, wakes the relay. */
void svc__batch_after_commit(svc_batch *b);

/* The batch a consumer thread has in hand, seen by the progress thread
 * (svc.c): a handler may run longer than the durable's AckWait (a gateway
 * call, an SMTP conversation, a slow commit under load), and AckWait is short
 * (3 s) so that a killed daemon's messages come back within seconds. While a
 * batch is in hand longer than AckWait/3, the progress thread tells JetStream
 * it is still being worked on ("+WPI" to each message's ack subject), so it
 * is neither redelivered elsewhere nor charged a delivery. */
typedef struct svc__inflight {
    pthread_mutex_t lock;
    natsMsg **msgs;   /* the worker's, borrowed; guarded by lock; NULL = none */
    size_t n;         /* guarded by lock */
    int64_t since_us; /* taken, or last reported in progress; guarded by lock */
} svc__inflight;

/* One consumer thread's reusable state. */
typedef struct svc__worker {
    svc *s;
    store *db;
    const svc_consumer *c;
    svc_batch b;
    outbox_pub *pub; /* stateless services only (svc_def.stateless) */
    char dlq_subject[BUS_SUBJECT_MAX];
    char consumer_name[128];
    svc__durable *d;         /* the durable's shared limits (struct svc owns them) */
    svc__inflight *inflight; /* the consumer thread's, seen by the progress thread */
    natsSubscription *sub;   /* the consumer thread's, borrowed: see held */
    /* Messages a hold took from the client's buffer (answers to an earlier
     * pull request, which nats.c keeps for the next Fetch): held too, then
     * handled as the next batches, oldest first. */
    natsMsgList held[4];
    int n_held;
    /* Speculation's credit (svc_speculate_fn): +1 a batch that committed so,
     * -SVC__SPEC_PENALTY one that failed; below 0 the worker does not ask, and
     * each batch it runs the ordinary way earns 1 back. */
    int spec_credit;
} svc__worker;
#define SVC__SPEC_PENALTY    8
#define SVC__SPEC_CREDIT_MAX 32

void svc__worker_init(svc__worker *w, svc *s, store *db, const svc_consumer *c, svc__durable *d,
                      svc__inflight *inflight);
void svc__worker_destroy(svc__worker *w);
/* Handles one fetched batch to the end: commit + ack, nak, or dead letter.
 * While the database is unavailable it holds the batch and retries (svc.h
 * invariant 5), so it may take as long as the outage or until svc_stop(). */
void svc__worker_batch(svc__worker *w, natsMsg **msgs, size_t n);
/* Moves the oldest list of messages a hold took into *out (the caller handles
 * them with svc__worker_batch() and destroys the list); false when none. */
bool svc__worker_held_take(svc__worker *w, natsMsgList *out);

typedef struct svc__query_pool svc__query_pool;
lb_status svc__query_start(svc__query_pool **out, svc *s, lb_err *err);
/* Joins the query threads once svc_stop() told them (each ends within its
 * 200 ms wait); svc__query_stop() joins if not done, then frees. */
void svc__query_join(svc__query_pool *qp);
void svc__query_stop(svc__query_pool *qp); /* NULL is a no-op */

typedef struct svc__tick svc__tick;
lb_status svc__tick_start(svc__tick **out, svc *s, lb_err *err);
void svc__tick_stop(svc__tick *t); /* NULL is a no-op */

#endif
