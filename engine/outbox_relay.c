/* outbox_relay.c - publishes committed outbox rows to JetStream.
 *
 * Woken three ways: a wake-up from a worker thread of this process right after
 * its commit (cheapest), a NOTIFY on channel "outbox_<schema>" from any process
 * writing the same schema (the table's statement trigger), and a periodic sweep that
 * also picks up rows a crashed instance left behind.
 *
 * CRASH POINTS:
 *  - published, not deleted: the rows come back in the next claim and are
 *    published again with the same Nats-Msg-Id; JetStream's duplicate window
 *    (2 min) drops them, and readers' inboxes drop anything older.
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
 * failed publish rolls the delete back and the rows are claimed again. */
static const char RELAY_SQL_CLAIM[] =
    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT $1 "
    "FOR UPDATE SKIP LOCKED) "
    "RETURNING id::text, subject, msg_type, correlation, causation, actor, reply, traceparent, body";
static const char RELAY_SQL_BACKLOG[] =
    "SELECT count(*) FROM outbox";
static const char RELAY_SQL_INBOX_PRUNE[] =
    "DELETE FROM inbox WHERE msg_id IN (SELECT msg_id FROM inbox "
    "WHERE received_at < now() - make_interval(secs => $1::bigint / 1000.0) LIMIT 1000)";

static const store_stmt relay_stmts[] = {
    { "relay_claim",       RELAY_SQL_CLAIM },
    { "relay_backlog",     RELAY_SQL_BACKLOG },
    { "relay_inbox_prune", RELAY_SQL_INBOX_PRUNE },
    { "relay_schema",      "SELECT current_schema()" },
};
/* clang-format on */

#define RELAY_PRUNE_EVERY_MS 10000
#define RELAY_PRUNE_ROUNDS   50 /* x 1000 ids per prune: keeps up with 5,000 msg/s */

struct outbox_relay {
    /* config */
    outbox_relay_opts opts;
    char service[64];
    char *db_url;
    /* state, owned by the relay thread (or the drain caller before start) */
    store *st;
    PGconn *listening_on; /* connection that ran LISTEN; changes after a reconnect */
    jsCtx *js;            /* own context, so publish errors reach this relay */
    int64_t last_prune_ms;
    int64_t last_backlog_ms;
    /* shared */
    int wake[2]; /* self-pipe: any thread writes a byte */
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_int pub_errors; /* async publish failures since the last claim */
    metrics_metric *m_published, *m_backlog, *m_errors, *m_latency;
};

static void
on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    outbox_relay *r = closure;
    atomic_fetch_add(&r->pub_errors, 1);
    metrics_add(r->m_errors, 1);
    log_warn(NULL, "outbox.publish_failed", "JetStream refused an outbox row; it will be retried",
             LOG_STR("detail", pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err)));
}

lb_status
outbox_relay_new(outbox_relay **out, const outbox_relay_opts *opts, lb_err *err)
{
    outbox_relay *r = calloc(1, sizeof *r);
    if (r == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "relay");
    r->opts = *opts;
    r->wake[0] = r->wake[1] = -1;
    snprintf(r->service, sizeof r->service, "%s", opts->service ? opts->service : "");
    if (r->opts.batch <= 0)
        r->opts.batch = 1024;
    if (r->opts.sweep_ms <= 0)
        r->opts.sweep_ms = 1000;
    if (r->opts.inbox_keep_ms <= 0)
        r->opts.inbox_keep_ms = 7LL * 24 * 3600 * 1000;
    lb_status st = LB_OK;
    r->db_url = strdup(opts->db_url);
    if (r->db_url == NULL || pipe(r->wake) != 0) {
        st = lb_err_set(err, LB_ERR_NOMEM, "relay setup");
        goto out_free;
    }
    fcntl(r->wake[0], F_SETFL, O_NONBLOCK);
    fcntl(r->wake[1], F_SETFL, O_NONBLOCK);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.ErrHandler = on_pub_error;
    jo.PublishAsync.ErrHandlerClosure = r;
    jo.PublishAsync.MaxPending = 8192;
    jo.Wait = 5000;
    natsStatus ns = natsConnection_JetStream(&r->js, bus_conn(opts->bus), &jo);
    if (ns != NATS_OK) {
        st = bus__nats_err(err, ns, "relay jetstream context");
        goto out_free;
    }
    if ((st = store_open(&r->st, r->db_url, relay_stmts, LB_COUNTOF(relay_stmts), err)) != LB_OK)
        goto out_free;
    char labels[96];
    snprintf(labels, sizeof labels, "service=\"%s\"", r->service);
    r->m_published = metrics_counter("layby_outbox_published_total", labels,
                                     "outbox rows published and deleted");
    r->m_backlog = metrics_gauge("layby_outbox_backlog_rows", labels,
                                 "outbox rows waiting to be published (sampled each sweep)");
    r->m_errors = metrics_counter("layby_outbox_publish_errors_total", labels,
                                  "async publishes JetStream refused");
    r->m_latency = metrics_histogram("layby_outbox_drain_seconds", labels,
                                     "time to claim, publish and delete one batch");
    *out = r;
    return LB_OK;
out_free:
    outbox_relay_free(r);
    return st;
}

static lb_status
ensure_listening(outbox_relay *r, lb_err *err)
{
    lb_status st = store_ensure(r->st, err);
    if (st != LB_OK)
        return st;
    if (r->listening_on == store_pg(r->st))
        return LB_OK;
    /* The channel is per schema (the trigger notifies outbox_<schema>), so
     * services sharing one database do not wake each other. */
    PGresult *res = NULL;
    if ((st = store_exec(r->st, &res, "relay_schema", 0, NULL, err)) != LB_OK)
        return st;
    char sql[128];
    const char *schema = PQgetvalue(res, 0, 0);
    bool safe = schema[0] != '\0' &&
                strspn(schema, "abcdefghijklmnopqrstuvwxyz_0123456789") == strlen(schema);
    snprintf(sql, sizeof sql, "LISTEN outbox_%s", safe ? schema : "unknown");
    PQclear(res);
    if ((st = store_exec_sql(r->st, sql, err)) != LB_OK)
        return st;
    r->listening_on = store_pg(r->st);
    return LB_OK;
}

/* qsort has no context argument; the relay thread is the only caller. */
static _Thread_local const PGresult *relay_sort_res;

static int
by_id(const void *a, const void *b)
{
    return strcmp(PQgetvalue(relay_sort_res, *(const int *)a, 0),
                  PQgetvalue(relay_sort_res, *(const int *)b, 0));
}

/* Claims, publishes and deletes one batch. *n = rows published. */
static lb_status
drain_batch(outbox_relay *r, size_t *n, lb_err *err)
{
    *n = 0;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 5000;
    /* Earlier publishes still unacknowledged (NATS was down): wait for them first,
     * so an outage does not pile copies of the same rows into the reconnect buffer. */
    if (js_PublishAsyncComplete(r->js, &po) != NATS_OK)
        return lb_err_set(err, LB_ERR_BUS, "earlier outbox publishes are still unacknowledged");
    lb_status st = store_begin(r->st, err);
    if (st != LB_OK)
        return st;
    char limit[24];
    snprintf(limit, sizeof limit, "%lld", (long long)r->opts.batch);
    const char *lp[] = { limit };
    int64_t t0 = lb_mono_us();
    PGresult *res = PQexecPrepared(store_pg(r->st), "relay_claim", 1, lp, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        st = store__result_err(res, store_pg(r->st), err, "relay claim");
        PQclear(res);
        store_rollback(r->st);
        return st;
    }
    int rows = PQntuples(res);
    if (rows == 0) {
        PQclear(res);
        return store_commit(r->st, err);
    }
    atomic_store(&r->pub_errors, 0);
    /* DELETE ... RETURNING has no order: publish in id (UUIDv7: commit-time) order. */
    int order_stack[1024];
    int *order = rows <= 1024 ? order_stack : malloc((size_t)rows * sizeof *order);
    if (order == NULL) {
        st = lb_err_set(err, LB_ERR_NOMEM, "relay order");
        goto out_rollback;
    }
    for (int i = 0; i < rows; i++)
        order[i] = i;
    relay_sort_res = res;
    qsort(order, (size_t)rows, sizeof *order, by_id);
    for (int k = 0; k < rows; k++) {
        int i = order[k];
        bus_envelope env;
        memset(&env, 0, sizeof env);
        static const size_t cols[] = {
            offsetof(bus_envelope, msg_id),      offsetof(bus_envelope, type),
            offsetof(bus_envelope, correlation), offsetof(bus_envelope, causation),
            offsetof(bus_envelope, actor),       offsetof(bus_envelope, reply),
            offsetof(bus_envelope, traceparent),
        };
        static const size_t caps[] = { ID_STR_LEN,    BUS_TYPE_MAX,    ID_STR_LEN,   ID_STR_LEN,
                                       BUS_ACTOR_MAX, BUS_SUBJECT_MAX, BUS_TRACE_MAX };
        static const int col_of[] = { 0, 2, 3, 4, 5, 6, 7 };
        for (size_t c = 0; c < LB_COUNTOF(cols); c++)
            snprintf((char *)&env + cols[c], caps[c], "%s", PQgetvalue(res, i, col_of[c]));
        natsMsg *m = NULL;
        st = bus_msg_new_raw(&m, PQgetvalue(res, i, 1), &env, PQgetvalue(res, i, 8),
                             (size_t)PQgetlength(res, i, 8), err);
        natsStatus ns = st == LB_OK ? js_PublishMsgAsync(r->js, &m, NULL) : NATS_OK;
        if (st == LB_OK && ns != NATS_OK) {
            natsMsg_Destroy(m);
            st = bus__nats_err(err, ns, "relay publish");
        }
        if (st != LB_OK)
            break;
    }
    if (order != order_stack)
        free(order);
    if (st != LB_OK)
        goto out_rollback;
    natsStatus ns = js_PublishAsyncComplete(r->js, &po);
    if (ns != NATS_OK || atomic_load(&r->pub_errors) != 0) {
        st = lb_err_set(err, LB_ERR_BUS, "outbox publish not acknowledged (%s)",
                        natsStatus_GetText(ns));
        goto out_rollback;
    }
    fault_point("relay.after_publish");
    PQclear(res);
    /* CRASH POINT: published and acked, delete not committed: the rows are
     * published again under the same ids and dropped as duplicates. */
    if ((st = store_commit(r->st, err)) != LB_OK)
        return st;
    *n = (size_t)rows;
    metrics_add(r->m_published, rows);
    metrics_observe_us(r->m_latency, lb_mono_us() - t0);
    return LB_OK;
out_rollback:
    PQclear(res);
    store_rollback(r->st);
    return st;
}

lb_status
outbox_relay_drain(outbox_relay *r, size_t *published, lb_err *err)
{
    size_t total = 0, n = 0;
    lb_status st;
    do {
        if ((st = ensure_listening(r, err)) != LB_OK)
            break;
        st = drain_batch(r, &n, err);
        total += n;
    } while (st == LB_OK && n == (size_t)r->opts.batch && !atomic_load(&r->stop));
    if (published != NULL)
        *published = total;
    return st;
}

static void
housekeeping(outbox_relay *r)
{
    int64_t now = lb_now_ms();
    lb_err err;
    if (now - r->last_backlog_ms >= r->opts.sweep_ms) {
        r->last_backlog_ms = now;
        PGresult *res = NULL;
        if (store_exec(r->st, &res, "relay_backlog", 0, NULL, &err) == LB_OK) {
            metrics_set(r->m_backlog, atoll(PQgetvalue(res, 0, 0)));
            PQclear(res);
        }
    }
    if (now - r->last_prune_ms >= RELAY_PRUNE_EVERY_MS) {
        r->last_prune_ms = now;
        char keep[24];
        snprintf(keep, sizeof keep, "%lld", (long long)r->opts.inbox_keep_ms);
        const char *p[] = { keep };
        /* Small deletes, one short transaction each, until a round finds fewer than
         * a full batch: never a long lock, and the table cannot outgrow the pruning. */
        for (int round = 0; round < RELAY_PRUNE_ROUNDS; round++) {
            PGresult *res = NULL;
            if (store_exec(r->st, &res, "relay_inbox_prune", 1, p, &err) != LB_OK) {
                log_warn(NULL, "outbox.prune_failed", "inbox pruning failed", LOG_ERR(&err));
                break;
            }
            int deleted = atoi(PQcmdTuples(res));
            PQclear(res);
            if (deleted < 1000)
                break;
        }
    }
}

static void *
relay_main(void *arg)
{
    outbox_relay *r = arg;
    int64_t backoff_ms = 0;
    while (!atomic_load(&r->stop)) {
        lb_err err;
        size_t n = 0;
        lb_status st = outbox_relay_drain(r, &n, &err);
        if (st != LB_OK) {
            backoff_ms = backoff_ms ? (backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2) : 50;
            log_warn(NULL, "outbox.drain_failed", "outbox relay will retry", LOG_ERR(&err),
                     LOG_INT("retry_ms", backoff_ms));
        } else {
            backoff_ms = 0;
            housekeeping(r);
        }
        struct pollfd fds[2] = { { .fd = r->wake[0], .events = POLLIN }, { .fd = -1 } };
        if (st == LB_OK && store_pg(r->st) != NULL && PQstatus(store_pg(r->st)) == CONNECTION_OK)
            fds[1] = (struct pollfd){ .fd = PQsocket(store_pg(r->st)), .events = POLLIN };
        poll(fds, 2, (int)(backoff_ms ? backoff_ms : r->opts.sweep_ms));
        char drainbuf[64];
        while (read(r->wake[0], drainbuf, sizeof drainbuf) > 0)
            ;
        if (fds[1].fd >= 0 && PQconsumeInput(store_pg(r->st))) {
            PGnotify *nt;
            while ((nt = PQnotifies(store_pg(r->st))) != NULL)
                PQfreemem(nt);
        }
    }
    return NULL;
}

lb_status
outbox_relay_start(outbox_relay *r, lb_err *err)
{
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0)
        return lb_err_set(err, LB_ERR_INTERNAL, "start relay thread");
    r->started = true;
    return LB_OK;
}

void
outbox_relay_wake(outbox_relay *r)
{
    char c = 1;
    ssize_t w = write(r->wake[1], &c, 1); /* a full pipe already means "wake up" */
    (void)w;
}

void
outbox_relay_free(outbox_relay *r)
{
    if (r == NULL)
        return;
    atomic_store(&r->stop, true);
    if (r->started) {
        outbox_relay_wake(r);
        pthread_join(r->thread, NULL);
        /* Last rows committed by workers that stopped just before us. */
        lb_err err;
        size_t n = 0;
        atomic_store(&r->stop, false);
        if (r->st != NULL && outbox_relay_drain(r, &n, &err) != LB_OK)
            log_warn(NULL, "outbox.final_drain_failed", "rows left for the next start",
                     LOG_ERR(&err));
    }
    if (r->js != NULL) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 2000;
        js_PublishAsyncComplete(r->js, &po);
        jsCtx_Destroy(r->js);
    }
    store_close(r->st);
    if (r->wake[0] >= 0)
        close(r->wake[0]);
    if (r->wake[1] >= 0)
        close(r->wake[1]);
    free(r->db_url);
    free(r);
}
