/* outbox_relay.c - publishes committed outbox rows to JetStream.
 *
 * Two paths, two threads (lanes), each with its own PostgreSQL connection and
 * JetStream context, so a slow sweep never holds back a hand-off:
 *  - hand-off (the fast path): right after a worker's commit the svc runtime
 *    hands the rows it wrote (already packed, in memory) to the relay, which
 *    publishes them at once. Their ids are deleted later, many per statement:
 *    at most RELAY_DELETE_EVERY_MS after publishing, so a delete never sits
 *    between a commit and its publish, and a busy relay makes one delete per
 *    period instead of one per hand-off. No scan of the outbox.
 *  - sweep (its own lane): every sweep period the relay claims rows older than
 *    RELAY_SWEEP_GRACE_MS (so it does not race live hand-offs) with DELETE ...
 *    RETURNING and publishes them. This picks up what a crashed instance left,
 *    rows whose hand-off failed (NATS down) or overflowed the queue.
 * Why not only the sweep: an outbox is a queue table; its id index fills with
 * dead entries faster than autovacuum removes them, and `ORDER BY id LIMIT n`
 * then walks them all: measured 2-3.5 ms per claim at 50 sagas/s, seven claims
 * on a saga's path; and 5-10 ms per sweep of the saga outbox at 500 sagas/s,
 * which is why the sweep has its own thread (docs/BENCHMARKS.md).
 * Why no LISTEN/NOTIFY: every writer has its own relay, so a NOTIFY only told
 * relays what they knew; and PostgreSQL serializes the commits of notifying
 * transactions on one lock and signals every listening backend.
 *
 * CRASH POINTS:
 *  - published, not deleted (relay.after_publish, or a crash within the
 *    delete period): the rows stay and the sweep publishes them again with the
 *    same Nats-Msg-Id; JetStream's duplicate window (2 min) drops them, and
 *    readers' inboxes drop anything older.
 *  - handed off, not published: the rows are in the table; the sweep takes them.
 *  - NATS down: the async publishes wait in nats.c's reconnect buffer; we do not
 *    delete until every ack arrived, and do not publish more until they have. */
#include "outbox.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "metrics.h"

/* clang-format off */
/* Claim and delete in one statement: the rows stay locked (and invisible as
 * deleted) until our COMMIT, which comes only after JetStream acked them all; a
 * failed publish rolls the delete back and the rows are claimed again. The
 * ids are deleted by primary key from an array, as the prunes below: with
 * `id IN (SELECT ...)` a never-analyzed outbox was hash-joined whole at
 * every claim, so a backlog of n rows cost n^2 / batch row reads to drain
 * (svc_runtime_test). Planned once (STORE_GENERIC): a custom plan knows the
 * LIMIT, and below ~1/10 of the rows the table seems to hold it chose a
 * sequential scan and a sort to find them, at every claim again. The
 * generic plan walks the primary key (UUIDv7: the oldest rows first). */
static const char RELAY_SQL_CLAIM[] =
    STORE_GENERIC "DELETE FROM outbox WHERE id = ANY(ARRAY(SELECT id FROM outbox "
    "WHERE created_at < now() - make_interval(secs => $2::bigint / 1000.0) "
    "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)) "
    "RETURNING id::text, subject, msg_type, correlation, causation, actor, reply, traceparent, body";
static const char RELAY_SQL_DELETE[] =
    "DELETE FROM outbox WHERE id = ANY($1::uuid[])";
/* A plan that needs no statistics (the inbox is analyzed rarely, sql/shared):
 * the oldest ids first, in the received_at index's order (without ORDER BY a
 * table with none was read whole for ids not old enough: 150 ms a prune),
 * then deleted by primary key from an array. `msg_id IN (SELECT ...)` was
 * planned as a hash join over the whole table below some size (a 31,500-id
 * inbox read whole at each prune, svc_runtime_test). */
static const char RELAY_SQL_INBOX_PRUNE[] =
    "DELETE FROM inbox WHERE msg_id = ANY(ARRAY(SELECT msg_id FROM inbox "
    "WHERE received_at < now() - make_interval(secs => $1::bigint / 1000.0) "
    "ORDER BY received_at LIMIT 1000))";

static const store_stmt relay_stmts[] = {
    { "relay_claim",       RELAY_SQL_CLAIM },
    { "relay_delete",      RELAY_SQL_DELETE },
    { "relay_inbox_prune", RELAY_SQL_INBOX_PRUNE },
};
/* clang-format on */

#define RELAY_PRUNE_EVERY_MS  10000
#define RELAY_PRUNE_ROUNDS    50    /* x 1000 ids per prune: keeps up with 5,000 msg/s */
#define RELAY_SWEEP_GRACE_MS  2000  /* rows younger than this belong to a hand-off */
#define RELAY_QUEUE_MAX       65536 /* handed-off rows kept in memory; beyond, the sweep */
/* Published ids wait at most RELAY_DELETE_EVERY_MS for their delete. Each
 * delete is a round trip that the next hand-off waits behind: at 20 ms a
 * relay below its peak made one every 20 ms, and 200 ms gave 5 % more
 * checkouts a second at the peak and 10 % lower p50s below it
 * (docs/BENCHMARKS.md, nineteenth sitting). It stays well under the sweep's
 * grace, so the sweep never takes a row a hand-off already published. */
#define RELAY_DELETE_EVERY_MS 200
#define RELAY_DELETE_BATCH    4096 /* ... or less, once this many ids wait */
_Static_assert(RELAY_DELETE_EVERY_MS * 4 <= RELAY_SWEEP_GRACE_MS,
               "a published row's delete comes long before a sweep may take it");

/* One thread's tools: its connection, its JetStream context (publish errors
 * are counted per context) and its wake-up pipe. */
typedef struct relay_lane {
    struct outbox_relay *r;
    store *db;
    PGconn *configured_on; /* connection set up by lane_conn(); changes after a reconnect */
    outbox_pub *pub;
    outbox_buf work; /* rows being published */
    int wake[2];     /* self-pipe: any thread writes a byte */
    pthread_t thread;
    bool started;
} relay_lane;

struct outbox_relay {
    /* config */
    outbox_relay_opts opts;
    char service[64];
    /* lanes: hand-offs and deletes; sweeps and inbox pruning */
    relay_lane pub, sweeper;
    /* publisher lane only (or the drain caller) */
    char (*done)[ID_STR_LEN]; /* ids published and not yet deleted */
    size_t n_done, cap_done;
    int64_t done_since_ms; /* when the oldest of them was published */
    /* sweeper lane only */
    int64_t last_prune_ms;
    /* shared */
    pthread_mutex_t lock; /* guards queue */
    outbox_buf queue;     /* handed-off rows waiting for the publisher lane */
    atomic_bool stop;
    bool stopped; /* outbox_relay_stop() ran (creator's thread only) */
    metrics_metric *m_published, *m_backlog, *m_errors, *m_latency, *m_swept;
};

static lb_status
lane_init(relay_lane *l, outbox_relay *r, lb_err *err)
{
    l->r = r;
    l->wake[0] = l->wake[1] = -1;
    outbox_buf_init(&l->work);
    if (pipe(l->wake) != 0)
        return lb_err_set(err, LB_ERR_NOMEM, "relay wake-up pipe");
    fcntl(l->wake[0], F_SETFL, O_NONBLOCK);
    fcntl(l->wake[1], F_SETFL, O_NONBLOCK);
    lb_status st = outbox_pub_new(&l->pub, r->opts.bus, r->m_errors, err);
    if (st != LB_OK)
        return st;
    return store_open(&l->db, r->opts.db_url, relay_stmts, LB_COUNTOF(relay_stmts), err);
}

static void
lane_wake(relay_lane *l)
{
    char c = 1;
    ssize_t w = write(l->wake[1], &c, 1); /* a full pipe already means "wake up" */
    (void)w;
}

/* Waits for a wake-up or until timeout_ms passed. */
static void
lane_wait(relay_lane *l, int64_t timeout_ms)
{
    struct pollfd fd = { .fd = l->wake[0], .events = POLLIN };
    poll(&fd, 1, (int)(timeout_ms > 0 ? timeout_ms : 0));
    char drainbuf[64];
    while (read(l->wake[0], drainbuf, sizeof drainbuf) > 0)
        ;
}

static void
lane_free(relay_lane *l)
{
    outbox_pub_free(l->pub);
    store_close(l->db);
    for (int i = 0; i < 2; i++)
        if (l->wake[i] >= 0)
            close(l->wake[i]);
    outbox_buf_destroy(&l->work);
}

lb_status
outbox_relay_new(outbox_relay **out, const outbox_relay_opts *opts, lb_err *err)
{
    outbox_relay *r = calloc(1, sizeof *r);
    if (r == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "relay");
    r->opts = *opts;
    r->pub.wake[0] = r->pub.wake[1] = r->sweeper.wake[0] = r->sweeper.wake[1] = -1;
    pthread_mutex_init(&r->lock, NULL);
    outbox_buf_init(&r->queue);
    snprintf(r->service, sizeof r->service, "%s", opts->service ? opts->service : "");
    if (r->opts.batch <= 0)
        r->opts.batch = 1024;
    if (r->opts.sweep_ms <= 0)
        r->opts.sweep_ms = 1000;
    if (r->opts.inbox_keep_ms <= 0)
        r->opts.inbox_keep_ms = 7LL * 24 * 3600 * 1000;
    lb_status st;
    if ((r->opts.db_url = strdup(opts->db_url)) == NULL) {
        st = lb_err_set(err, LB_ERR_NOMEM, "relay setup");
        goto out_free;
    }
    char labels[96];
    snprintf(labels, sizeof labels, "service=\"%s\"", r->service);
    r->m_published = metrics_counter("layby_outbox_published_total", labels,
                                     "outbox rows published and deleted");
    r->m_swept = metrics_counter("layby_outbox_swept_total", labels,
                                 "outbox rows published by the sweep, not by hand-off");
    r->m_backlog = metrics_gauge("layby_outbox_backlog_rows", labels,
                                 "committed rows handed to the relay and not yet published");
    r->m_errors = metrics_counter("layby_outbox_publish_errors_total", labels,
                                  "async publishes JetStream refused");
    r->m_latency =
        metrics_histogram("layby_outbox_drain_seconds", labels, "time to publish one batch");
    if ((st = lane_init(&r->pub, r, err)) != LB_OK ||
        (st = lane_init(&r->sweeper, r, err)) != LB_OK)
        goto out_free;
    *out = r;
    return LB_OK;
out_free:
    outbox_relay_free(r);
    return st;
}

/* Connects (again) if needed; a new connection commits asynchronously:
 * losing a relay commit in a crash only republishes rows under their ids,
 * which dedup drops, so the relay need not wait for the WAL flush. */
static lb_status
lane_conn(relay_lane *l, lb_err *err)
{
    lb_status st = store_ensure(l->db, err);
    if (st != LB_OK)
        return st;
    if (l->configured_on == store_pg(l->db))
        return LB_OK;
    if ((st = store_exec_sql(l->db, "SET synchronous_commit = off", err)) != LB_OK)
        return st;
    l->configured_on = store_pg(l->db);
    return LB_OK;
}

/* Publishes b's rows and waits for every ack. */
static lb_status
publish_rows(relay_lane *l, const outbox_buf *b, lb_err *err)
{
    lb_status st = outbox_pub_rows(l->pub, b, err);
    if (st == LB_OK && b->n > 0)
        fault_point("relay.after_publish");
    return st;
}

/* --- publisher lane: hand-offs, then their deletes ----------------------- */

/* Deletes the rows published so far (one statement, asynchronous commit). On
 * failure the ids are kept for the next try; the rows are still in the table,
 * so nothing is lost either way. */
static lb_status
delete_done(outbox_relay *r, lb_err *err)
{
    if (r->n_done == 0)
        return LB_OK;
    store_array ids = { 0 };
    store_array_begin(&ids);
    for (size_t i = 0; i < r->n_done; i++)
        store_array_text(&ids, r->done[i]);
    store_array_end(&ids);
    lb_status st = ids.oom ? lb_err_set(err, LB_ERR_NOMEM, "relay ids") : lane_conn(&r->pub, err);
    if (st == LB_OK) {
        const char *p[] = { ids.p };
        st = store_exec(r->pub.db, NULL, "relay_delete", 1, p, err);
    }
    store_array_free(&ids);
    if (st == LB_OK)
        r->n_done = 0;
    return st;
}

static bool
delete_due(const outbox_relay *r, int64_t now)
{
    return r->n_done > 0 &&
           (r->n_done >= RELAY_DELETE_BATCH || now - r->done_since_ms >= RELAY_DELETE_EVERY_MS);
}

/* Remembers the ids of work's rows, now published, for delete_done(). */
static lb_status
done_add(outbox_relay *r, const outbox_buf *work, lb_err *err)
{
    if (r->n_done + work->n > r->cap_done) {
        size_t cap = r->cap_done ? r->cap_done : 1024;
        while (cap < r->n_done + work->n)
            cap *= 2;
        void *nd = realloc(r->done, cap * sizeof *r->done);
        if (nd == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "relay ids"); /* the sweep republishes */
        r->done = nd;
        r->cap_done = cap;
    }
    if (r->n_done == 0)
        r->done_since_ms = lb_now_ms();
    for (size_t i = 0; i < work->n; i++)
        memcpy(r->done[r->n_done++], work->rows[i].env.msg_id, ID_STR_LEN);
    return LB_OK;
}

/* The fast path: publish what workers handed over; their ids wait in done. */
static lb_status
publish_handed(outbox_relay *r, size_t *n, lb_err *err)
{
    relay_lane *l = &r->pub;
    *n = 0;
    pthread_mutex_lock(&r->lock);
    outbox_buf tmp = r->queue;
    r->queue = l->work;
    l->work = tmp;
    pthread_mutex_unlock(&r->lock);
    metrics_set(r->m_backlog, (int64_t)l->work.n);
    if (l->work.n == 0)
        return LB_OK;
    int64_t t0 = lb_mono_us();
    lb_status st = outbox_pub_settle(l->pub, err);
    if (st == LB_OK)
        st = publish_rows(l, &l->work, err);
    if (st == LB_OK)
        st = done_add(r, &l->work, err);
    if (st == LB_OK) {
        *n = l->work.n;
        metrics_add(r->m_published, (int64_t)l->work.n);
        metrics_observe_us(r->m_latency, lb_mono_us() - t0);
    }
    /* On failure the rows are still in the table: the sweep publishes them. */
    outbox_buf_reset(&l->work);
    return st;
}

static void *
publisher_main(void *arg)
{
    outbox_relay *r = arg;
    int64_t backoff_ms = 0;
    while (!atomic_load(&r->stop)) {
        if (fault_held("relay.hold")) { /* test builds: only the final drain publishes */
            lane_wait(&r->pub, r->opts.sweep_ms);
            continue;
        }
        lb_err err;
        size_t n = 0;
        lb_status st = publish_handed(r, &n, &err);
        int64_t now = lb_now_ms();
        if (st == LB_OK && delete_due(r, now))
            st = delete_done(r, &err);
        if (st != LB_OK) {
            backoff_ms = backoff_ms ? (backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2) : 50;
            log_warn(NULL, "outbox.drain_failed", "outbox relay will retry", LOG_ERR(&err),
                     LOG_INT("retry_ms", backoff_ms));
            lane_wait(&r->pub, backoff_ms);
            continue;
        }
        backoff_ms = 0;
        /* Sleep until the next hand-off, or until the pending deletes are due. */
        int64_t wait = r->n_done > 0 ? r->done_since_ms + RELAY_DELETE_EVERY_MS - lb_now_ms()
                                     : r->opts.sweep_ms;
        lane_wait(&r->pub, wait);
    }
    return NULL;
}

/* --- sweeper lane: rows nobody handed over, inbox pruning ----------------- */

/* Claims (and deletes) rows at least grace_ms old, publishes them, commits. */
static lb_status
sweep_batch(relay_lane *l, int64_t grace_ms, size_t *n, lb_err *err)
{
    outbox_relay *r = l->r;
    *n = 0;
    lb_status st = outbox_pub_settle(l->pub, err);
    if (st != LB_OK || (st = store_begin(l->db, err)) != LB_OK)
        return st;
    char limit[24], grace[24];
    snprintf(limit, sizeof limit, "%lld", (long long)r->opts.batch);
    snprintf(grace, sizeof grace, "%lld", (long long)grace_ms);
    const char *lp[] = { limit, grace };
    int64_t t0 = lb_mono_us();
    PGresult *res = NULL;
    if ((st = store_exec_bin(l->db, &res, "relay_claim", 2, lp, NULL, NULL, 1, err)) != LB_OK)
        goto out_rollback;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return store_commit(l->db, err);
    }
    outbox_buf_reset(&l->work);
    for (int i = 0; i < PQntuples(res) && st == LB_OK; i++)
        st = outbox_buf_add_row(&l->work, res, i, err);
    /* DELETE ... RETURNING has no order: publish in id (UUIDv7: creation) order. */
    outbox_buf_sort(&l->work);
    if (st != LB_OK || (st = publish_rows(l, &l->work, err)) != LB_OK)
        goto out_rollback;
    PQclear(res);
    if ((st = store_commit(l->db, err)) != LB_OK)
        return st;
    *n = l->work.n;
    metrics_add(r->m_published, (int64_t)l->work.n);
    metrics_add(r->m_swept, (int64_t)l->work.n);
    metrics_observe_us(r->m_latency, lb_mono_us() - t0);
    outbox_buf_reset(&l->work);
    return LB_OK;
out_rollback:
    PQclear(res);
    outbox_buf_reset(&l->work);
    store_rollback(l->db);
    return st;
}

static lb_status
sweep(relay_lane *l, int64_t grace_ms, size_t *total, lb_err *err)
{
    size_t n = 0;
    lb_status st;
    *total = 0;
    do {
        if ((st = lane_conn(l, err)) != LB_OK)
            break;
        st = sweep_batch(l, grace_ms, &n, err);
        *total += n;
    } while (st == LB_OK && n == (size_t)l->r->opts.batch && !atomic_load(&l->r->stop));
    return st;
}

static void
prune_inbox(relay_lane *l, int64_t now)
{
    outbox_relay *r = l->r;
    if (now - r->last_prune_ms < RELAY_PRUNE_EVERY_MS)
        return;
    r->last_prune_ms = now;
    char keep[24];
    snprintf(keep, sizeof keep, "%lld", (long long)r->opts.inbox_keep_ms);
    const char *p[] = { keep };
    /* Small deletes, one short transaction each, until a round finds fewer than
     * a full batch: never a long lock, and the table cannot outgrow the pruning. */
    for (int round = 0; round < RELAY_PRUNE_ROUNDS; round++) {
        PGresult *res = NULL;
        lb_err err;
        if (store_exec(l->db, &res, "relay_inbox_prune", 1, p, &err) != LB_OK) {
            log_warn(NULL, "outbox.prune_failed", "inbox pruning failed", LOG_ERR(&err));
            break;
        }
        int deleted = atoi(PQcmdTuples(res));
        PQclear(res);
        if (deleted < 1000)
            break;
    }
}

static void *
sweeper_main(void *arg)
{
    outbox_relay *r = arg;
    relay_lane *l = &r->sweeper;
    int64_t backoff_ms = 0;
    while (!atomic_load(&r->stop)) {
        if (fault_held("relay.hold")) {
            lane_wait(l, r->opts.sweep_ms);
            continue;
        }
        lb_err err;
        size_t n = 0;
        lb_status st = sweep(l, RELAY_SWEEP_GRACE_MS, &n, &err);
        if (st == LB_OK)
            prune_inbox(l, lb_now_ms());
        if (st != LB_OK) {
            backoff_ms = backoff_ms ? (backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2) : 50;
            log_warn(NULL, "outbox.sweep_failed", "outbox sweep will retry", LOG_ERR(&err),
                     LOG_INT("retry_ms", backoff_ms));
        } else {
            backoff_ms = 0;
        }
        lane_wait(l, backoff_ms ? backoff_ms : r->opts.sweep_ms);
    }
    return NULL;
}

/* --- lifecycle ------------------------------------------------------------ */

lb_status
outbox_relay_drain(outbox_relay *r, size_t *published, lb_err *err)
{
    size_t a = 0, b = 0;
    lb_status st = publish_handed(r, &a, err);
    /* Published rows first, so the claim does not take them again. */
    if (st == LB_OK)
        st = delete_done(r, err);
    if (st == LB_OK)
        st = sweep(&r->pub, 0, &b, err);
    if (published != NULL)
        *published = a + b;
    return st;
}

void
outbox_relay_hand(outbox_relay *r, outbox_buf *committed)
{
    if (committed->n == 0)
        return;
    pthread_mutex_lock(&r->lock);
    /* Past the cap the rows stay only in the table: the sweep will take them. */
    if (r->queue.n + committed->n <= RELAY_QUEUE_MAX)
        outbox_buf_move(&r->queue, committed);
    pthread_mutex_unlock(&r->lock);
    outbox_buf_reset(committed);
    outbox_relay_wake(r);
}

lb_status
outbox_relay_start(outbox_relay *r, lb_err *err)
{
    lb_status st = lane_conn(&r->pub, err);
    if (st == LB_OK)
        st = lane_conn(&r->sweeper, err);
    if (st != LB_OK)
        return st;
    if (pthread_create(&r->pub.thread, NULL, publisher_main, r) != 0)
        return lb_err_set(err, LB_ERR_INTERNAL, "start relay thread");
    r->pub.started = true;
    if (pthread_create(&r->sweeper.thread, NULL, sweeper_main, r) != 0)
        return lb_err_set(err, LB_ERR_INTERNAL, "start sweeper thread");
    r->sweeper.started = true;
    return LB_OK;
}

void
outbox_relay_wake(outbox_relay *r)
{
    lane_wake(&r->pub);
}

void
outbox_relay_stop(outbox_relay *r)
{
    if (r == NULL || r->stopped)
        return;
    r->stopped = true;
    atomic_store(&r->stop, true);
    relay_lane *lanes[] = { &r->pub, &r->sweeper };
    bool started = false;
    for (size_t i = 0; i < LB_COUNTOF(lanes); i++) {
        if (!lanes[i]->started)
            continue;
        lane_wake(lanes[i]);
        pthread_join(lanes[i]->thread, NULL);
        started = true;
    }
    if (started) {
        /* Last rows committed by workers that stopped just before us. */
        lb_err err;
        size_t n = 0;
        atomic_store(&r->stop, false);
        if (outbox_relay_drain(r, &n, &err) != LB_OK)
            log_warn(NULL, "outbox.final_drain_failed", "rows left for the next start",
                     LOG_ERR(&err));
    }
}

void
outbox_relay_free(outbox_relay *r)
{
    if (r == NULL)
        return;
    outbox_relay_stop(r);
    lane_free(&r->pub);
    lane_free(&r->sweeper);
    outbox_buf_destroy(&r->queue);
    pthread_mutex_destroy(&r->lock);
    free(r->done);
    free((char *)r->opts.db_url);
    free(r);
}
