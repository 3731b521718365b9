/* svc.c - the service runtime: lifecycle, common settings, and the consumer
 * loop that turns each fetched batch into one transaction (see svc.h for the
 * invariants). Queries live in svc_query.c; the batch transaction in svc_batch.c. */
#include "svc.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_topology.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "svc_internal.h"

/* --- settings ------------------------------------------------------------ */

/* Env names depend on the service name; one daemon runs one service, so the
 * generated names live in static storage that outlives cfg_load(). */
static char svc_env_names[8][96];

size_t
svc_cfg_opts(cfg_opt *opts, size_t cap, const char *name, size_t base)
{
    char up[32];
    size_t k = 0;
    for (; name[k] && k < sizeof up - 1; k++)
        up[k] = (char)((name[k] >= 'a' && name[k] <= 'z') ? name[k] - 32 : name[k]);
    up[k] = '\0';
    snprintf(svc_env_names[0], 96, "LAYBY_%s_NATS_USER", up);
    snprintf(svc_env_names[1], 96, "LAYBY_%s_NATS_PASSWORD", up);
    snprintf(svc_env_names[2], 96, "LAYBY_%s_DATABASE_URL|LAYBY_DATABASE_URL", up);
    snprintf(svc_env_names[3], 96, "LAYBY_%s_METRICS_PORT", up);
    snprintf(svc_env_names[4], 96, "LAYBY_%s_BATCH", up);
    snprintf(svc_env_names[5], 96, "LAYBY_%s_QUERY_THREADS", up);
    snprintf(svc_env_names[6], 96, "LAYBY_%s_WORKERS", up);
#define OFF(f) (base + offsetof(svc_cfg, f))
    /* clang-format off */
    const cfg_opt rows[] = {
        { "nats-url",      "LAYBY_NATS_URL",    CFG_STR,  "nats://127.0.0.1:14222", OFF(nats_url), 0, 0, "NATS server URL, or a comma-separated list of a cluster's nodes" },
        { "nats-user",     svc_env_names[0],    CFG_STR,  "",       OFF(nats_user), 0, 0, "NATS user of this service" },
        { "nats-password", svc_env_names[1],    CFG_STR,  "",       OFF(nats_password), 0, 0, "NATS password" },
        { "database-url",  svc_env_names[2],    CFG_STR,  NULL,     OFF(db_url), 0, 0, "PostgreSQL connection URL (service role)" },
        { "instance",      "LAYBY_INSTANCE",    CFG_STR,  "0",      OFF(instance), 0, 0, "instance name in logs" },
        { "log-level",     "LAYBY_LOG_LEVEL",   CFG_STR,  "info",   OFF(log_level), 0, 0, "debug|info|warn|error" },
        { "metrics-port",  svc_env_names[3],    CFG_INT,  "0",      OFF(metrics_port), 0, 65535, "serve /metrics on 127.0.0.1:PORT (0 = off)" },
        { "batch",         svc_env_names[4],    CFG_INT,  "128",    OFF(batch), 1, 4096, "messages per fetch and transaction" },
        { "fetch-wait",    "LAYBY_FETCH_WAIT",  CFG_MS,   "500ms",  OFF(fetch_wait_ms), 1, 60000, "longest wait of one fetch" },
        { "max-deliver",   "LAYBY_MAX_DELIVER", CFG_INT,  "5",      OFF(max_deliver), 1, 1000, "deliveries before dead-lettering (capped at the durable's MaxDeliver)" },
        { "nak-delay",     "LAYBY_NAK_DELAY",   CFG_MS,   "1s",     OFF(nak_delay_ms), 0, 3600000, "first redelivery delay after a failure (doubles, at most 1 min)" },
        { "relay-sweep",   "LAYBY_RELAY_SWEEP", CFG_MS,   "1s",     OFF(relay_sweep_ms), 10, 600000, "outbox sweep period" },
        { "query-threads", svc_env_names[5],    CFG_INT,  "2",      OFF(query_threads), 0, 64, "query responders" },
        { "workers",       svc_env_names[6],    CFG_INT,  "1",      OFF(workers), 1, 64, "concurrent batches per durable consumer" },
        { "inbox-keep",    "LAYBY_INBOX_KEEP",  CFG_MS,   "7d",     OFF(inbox_keep_ms), 60000, INT64_MAX, "how long inbox ids are kept (>= stream max age)" },
    };
    /* clang-format on */
#undef OFF
    size_t n = LB_COUNTOF(rows) < cap ? LB_COUNTOF(rows) : cap;
    memcpy(opts, rows, n * sizeof rows[0]);
    return n;
}

/* --- lifecycle ----------------------------------------------------------- */

/* A durable must be a row of the service table (etc/services.tsv, read by
 * this service): its filter is then known, and so is who may read it. A
 * handler none of the service's durables delivers would never run, and
 * nothing would say so. Refuse to start in both cases. */
static lb_status
handlers_check(const svc_def *def, lb_err *err)
{
    char reader[96];
    snprintf(reader, sizeof reader, "layby-%s", def->name);
    for (size_t c = 0; c < def->n_consumers; c++) {
        const svc_consumer *sc = &def->consumers[c];
        const bus_topology_consumer *row = bus_topology_consumer_find(sc->stream, sc->durable);
        if (row == NULL)
            return lb_err_set(err, LB_ERR_CONFIG,
                              "durable %s/%s of %s is not in the service table "
                              "(etc/services.tsv; test-only: tests/support/services-test.tsv)",
                              sc->stream, sc->durable, def->name);
        if (strcmp(row->reader, reader) != 0)
            return lb_err_set(err, LB_ERR_CONFIG, "durable %s/%s is %s's, not %s's", sc->stream,
                              sc->durable, row->reader, reader);
    }
    for (size_t h = 0; h < def->n_handlers; h++) {
        bool covered = false;
        for (size_t c = 0; c < def->n_consumers && !covered; c++) {
            const bus_topology_consumer *row =
                bus_topology_consumer_find(def->consumers[c].stream, def->consumers[c].durable);
            covered = bus_topology_filter_matches(row->filter, def->handlers[h].subject);
        }
        if (!covered)
            return lb_err_set(err, LB_ERR_CONFIG,
                              "handler %s: no durable of %s delivers it (add one to "
                              "etc/services.tsv)",
                              def->handlers[h].subject, def->name);
    }
    return LB_OK;
}

lb_status
svc_new(svc **out, const svc_def *def, const svc_cfg *cfg, lb_err *err)
{
    lb_status st = handlers_check(def, err);
    if (st != LB_OK)
        return st;
    svc *s = calloc(1, sizeof *s);
    if (s == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "svc");
    s->def = def;
    s->cfg = *cfg;
    /* Every connection of the service prepares the engine's statements and the service's. */
    s->n_stmts = outbox_stmts_len + def->n_stmts;
    s->stmts = calloc(s->n_stmts, sizeof *s->stmts);
    if (s->stmts == NULL) {
        free(s);
        return lb_err_set(err, LB_ERR_NOMEM, "svc statements");
    }
    s->durables = calloc(def->n_consumers ? def->n_consumers : 1, sizeof *s->durables);
    if (s->durables == NULL) {
        free(s->stmts);
        free(s);
        return lb_err_set(err, LB_ERR_NOMEM, "svc durables");
    }
    for (size_t i = 0; i < def->n_consumers; i++) {
        atomic_init(&s->durables[i].max_deliver, cfg->max_deliver);
        atomic_init(&s->durables[i].ack_wait_ms, 3000); /* until bind reads the durable */
    }
    memcpy(s->stmts, outbox_stmts, outbox_stmts_len * sizeof *s->stmts);
    if (def->n_stmts)
        memcpy(s->stmts + outbox_stmts_len, def->stmts, def->n_stmts * sizeof *s->stmts);
    char labels[96];
    snprintf(labels, sizeof labels, "service=\"%s\"", def->name);
    s->m_handled = metrics_counter("layby_svc_messages_handled_total", labels,
                                   "messages handled (committed and acked)");
    s->m_duplicates = metrics_counter("layby_svc_messages_duplicate_total", labels,
                                      "messages skipped by the inbox");
    s->m_redelivered = metrics_counter("layby_svc_redeliveries_total", labels,
                                       "messages delivered more than once");
    s->m_dead =
        metrics_counter("layby_svc_dead_letters_total", labels, "messages moved to LAYBY_DLQ");
    s->m_retries = metrics_counter("layby_svc_batch_retries_total", labels,
                                   "batches rolled back and retried one by one");
    s->m_db_waits = metrics_counter("layby_svc_db_waits_total", labels,
                                    "batches held while the database was unavailable");
    s->m_batch = metrics_histogram("layby_svc_batch_seconds", labels,
                                   "one batch: transaction, ack and replies");
    s->m_progress = metrics_counter("layby_svc_in_progress_total", labels,
                                    "in-progress reports for messages held past AckWait/3");
    s->m_queries = metrics_counter("layby_svc_queries_total", labels, "queries answered");
    s->m_query_lat = metrics_histogram("layby_svc_query_seconds", labels, "query latency");
    static const char *const phase_names[SVC__PHASES] = {
        [SVC__PHASE_FETCH] = "fetch",   [SVC__PHASE_READ] = "read",
        [SVC__PHASE_HANDLE] = "handle", [SVC__PHASE_WRITE] = "write",
        [SVC__PHASE_COMMIT] = "commit", [SVC__PHASE_SETTLE] = "settle",
    };
    char sl[160];
    snprintf(sl, sizeof sl, "%s,result=\"committed\"", labels);
    s->m_spec_ok = metrics_counter("layby_svc_speculations_total", sl,
                                   "batches run from what the service remembers (svc.h)");
    snprintf(sl, sizeof sl, "%s,result=\"failed\"", labels);
    s->m_spec_failed = metrics_counter("layby_svc_speculations_total", sl,
                                       "batches run from what the service remembers (svc.h)");
    for (size_t i = 0; i < SVC__PHASES; i++) {
        char pl[160];
        snprintf(pl, sizeof pl, "%s,phase=\"%s\"", labels, phase_names[i]);
        s->m_phase[i] = metrics_histogram("layby_svc_phase_seconds", pl,
                                          "one phase of a batch (svc_internal.h svc__phase)");
    }
    *out = s;
    return LB_OK;
}

void
svc_free(svc *s)
{
    if (s == NULL)
        return;
    free(s->durables);
    free(s->stmts);
    free(s);
}

void
svc_stop(svc *s)
{
    atomic_store(&s->stop, true);
}

/* Set by SIGINT/SIGTERM; svc_run() sees it and stops. The handler touches
 * nothing else: a second SIGTERM may come while the process exits, after
 * svc_free(), and a handler that reached into the freed svc (it used to call
 * svc_stop() on it) hung an ASan build's exit. */
static atomic_bool svc_signalled;

static void
on_signal(int sig)
{
    (void)sig;
    atomic_store(&svc_signalled, true);
}

void
svc_signals_install(svc *s)
{
    (void)s; /* one service a process: svc_run() reads the flag */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* --- consumer loop ------------------------------------------------------- */

typedef struct consumer_thread {
    svc *s;
    const svc_consumer *c;
    pthread_t thread;
    natsSubscription *sub;
    store *db;
    svc__durable *d; /* shared with the other threads of this durable */
    svc__inflight inflight;
} consumer_thread;

static lb_status bind_consumer(consumer_thread *ct, lb_err *err);

static void
rebind_consumer(consumer_thread *ct)
{
    natsSubscription *old = ct->sub;
    lb_err err;
    if (bind_consumer(ct, &err) != LB_OK) {
        ct->sub = old;
        log_warn(NULL, "svc.rebind_failed", "cannot bind the durable again", LOG_ERR(&err));
        return;
    }
    natsSubscription_Destroy(old);
    log_info(NULL, "svc.rebound", "bound the durable consumer again",
             LOG_STR("stream", ct->c->stream), LOG_STR("durable", ct->c->durable));
}

static void *
consumer_main(void *arg)
{
    consumer_thread *ct = arg;
    svc *s = ct->s;
    svc__worker w;
    svc__worker_init(&w, s, ct->db, ct->c, ct->d, &ct->inflight);
    int failures = 0;
    while (!atomic_load(&s->stop)) {
        natsMsgList list = { 0 };
        lb_err err;
        int64_t t_fetch = lb_mono_us();
        lb_status st =
            bus_fetch(&list, s->bus, ct->sub, (int)s->cfg.batch, s->cfg.fetch_wait_ms, &err);
        if (st == LB_OK)
            metrics_observe_us(s->m_phase[SVC__PHASE_FETCH], lb_mono_us() - t_fetch);
        if (st == LB_ERR_TIMEOUT) {
            failures = 0;
            continue;
        }
        if (st != LB_OK) {
            log_warn(NULL, "svc.fetch_failed", "fetch failed; retrying", LOG_ERR(&err),
                     LOG_STR("stream", ct->c->stream));
            natsMsgList_Destroy(&list);
            struct timespec ts = { 0, 200 * 1000 * 1000 };
            nanosleep(&ts, NULL);
            /* A durable deleted and recreated by an operator (or a test) leaves
             * this subscription dead: bind again after a few failures (after
             * the pause, which gives a recreate in progress time to finish). */
            if (++failures % 5 == 0 && bus_connected(s->bus))
                rebind_consumer(ct);
            continue;
        }
        w.sub = ct->sub;
        svc__worker_batch(&w, list.Msgs, (size_t)list.Count);
        natsMsgList_Destroy(&list);
        while (svc__worker_held_take(&w, &list)) {
            svc__worker_batch(&w, list.Msgs, (size_t)list.Count);
            natsMsgList_Destroy(&list);
        }
    }
    svc__worker_destroy(&w);
    return NULL;
}

static lb_status
bind_consumer(consumer_thread *ct, lb_err *err)
{
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = ct->c->stream;
    so.Consumer = ct->c->durable;
    so.ManualAck = true;
    jsErrCode jerr = 0;
    natsStatus ns =
        js_PullSubscribe(&ct->sub, bus_js(ct->s->bus), NULL, ct->c->durable, NULL, &so, &jerr);
    if (ns != NATS_OK) {
        bus__nats_err(err, ns, "bind durable consumer");
        char what[160];
        snprintf(what, sizeof what, "%s on %s (run `layby-ctl bus setup`)", ct->c->durable,
                 ct->c->stream);
        return lb_err_wrap(err, what);
    }
    /* The server stops redelivering at the durable's MaxDeliver: dead-letter no
     * later than that, or a failing message would silently stop coming back.
     * Written to the durable's shared limits, so every worker of it uses the
     * value of the latest bind (issue 16 item 6: a rebind used to update only
     * the binding thread's copy). */
    int64_t max_deliver = ct->s->cfg.max_deliver;
    jsConsumerInfo *ci = NULL;
    /* js_GetConsumerInfo, not natsSubscription_GetConsumerInfo: nats.c 3.4.1
     * answers "Invalid Subscription" for a bound pull subscription, so the cap
     * was never read before (issue 16 item 6 test). */
    natsStatus cis =
        js_GetConsumerInfo(&ci, bus_js(ct->s->bus), ct->c->stream, ct->c->durable, NULL, &jerr);
    if (cis == NATS_OK) {
        int64_t server_max = ci->Config->MaxDeliver;
        if (server_max > 0 && server_max < max_deliver) {
            log_warn(NULL, "svc.max_deliver_lowered", "the durable redelivers fewer times",
                     LOG_STR("durable", ct->c->durable), LOG_INT("max_deliver", server_max));
            max_deliver = server_max;
        }
        if (ci->Config->AckWait > 0)
            atomic_store(&ct->d->ack_wait_ms, ci->Config->AckWait / 1000000);
        jsConsumerInfo_Destroy(ci);
    } else {
        lb_err e;
        bus__nats_err(&e, cis, "consumer info");
        log_warn(NULL, "svc.consumer_info_failed",
                 "cannot read the durable's MaxDeliver; dead-lettering by --max-deliver",
                 LOG_STR("durable", ct->c->durable), LOG_ERR(&e));
    }
    atomic_store(&ct->d->max_deliver, max_deliver);
    return LB_OK;
}

/* --- progress ------------------------------------------------------------ */

/* How often the progress thread looks at the batches in hand. */
#define SVC_PROGRESS_TICK_MS 100

typedef struct progress_thread {
    svc *s;
    consumer_thread *cts;
    size_t n;
    pthread_t thread;
} progress_thread;

/* Reports ct's batch in progress when it has been in hand AckWait/3 since it
 * was taken or last reported. "+WPI" is published to each message's ack
 * subject directly, not with natsMsg_InProgress(): that reads and writes the
 * message's flags, which the worker's own ack may be changing at that very
 * moment. A report that arrives after the ack is ignored by the server (the
 * message is no longer pending). */
static void
progress_report(svc *s, consumer_thread *ct, int64_t now_us)
{
    int64_t every_us = atomic_load(&ct->d->ack_wait_ms) * 1000 / 3;
    pthread_mutex_lock(&ct->inflight.lock);
    if (ct->inflight.n > 0 && now_us - ct->inflight.since_us >= every_us) {
        for (size_t i = 0; i < ct->inflight.n; i++) {
            const char *reply = natsMsg_GetReply(ct->inflight.msgs[i]);
            if (reply != NULL && reply[0] != '\0')
                natsConnection_Publish(bus_conn(s->bus), reply, "+WPI", 4);
        }
        metrics_add(s->m_progress, (int64_t)ct->inflight.n);
        ct->inflight.since_us = now_us;
    }
    pthread_mutex_unlock(&ct->inflight.lock);
}

static void *
progress_main(void *arg)
{
    progress_thread *pt = arg;
    while (!atomic_load(&pt->s->stop)) {
        struct timespec ts = { 0, SVC_PROGRESS_TICK_MS * 1000 * 1000 };
        nanosleep(&ts, NULL);
        int64_t now = lb_mono_us();
        for (size_t i = 0; i < pt->n; i++)
            progress_report(pt->s, &pt->cts[i], now);
    }
    return NULL;
}

static void
wait_until_stopped(svc *s)
{
    while (!atomic_load(&s->stop) && !atomic_load(&svc_signalled)) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

lb_status
svc_run(svc *s, lb_err *err)
{
    lb_status st;
    /* `workers` threads per durable, each with its own connection and pull
     * subscription: batches of one durable run concurrently (row locks taken in
     * key order keep them from deadlocking), so one slow commit does not queue
     * every message behind it. */
    size_t n_threads = s->def->n_consumers * (size_t)s->cfg.workers;
    consumer_thread *cts = calloc(n_threads ? n_threads : 1, sizeof *cts);
    size_t started = 0;
    svc__query_pool *qp = NULL;
    svc__tick *tk = NULL;
    metrics_server *ms = NULL;
    progress_thread pt = { .s = s, .cts = cts, .n = 0 };
    bool progress_started = false;
    if (cts == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "consumer threads");
    for (size_t i = 0; i < n_threads; i++)
        pthread_mutex_init(&cts[i].inflight.lock, NULL);
    bus_opts bo = BUS_OPTS_INIT;
    bo.url = s->cfg.nats_url;
    bo.user = s->cfg.nats_user;
    bo.password = s->cfg.nats_password;
    bo.name = s->def->name;
    if ((st = bus_open(&s->bus, &bo, err)) != LB_OK)
        goto out;
    outbox_relay_opts ro = {
        .service = s->def->name,
        .db_url = s->cfg.db_url,
        .bus = s->bus,
        .sweep_ms = s->cfg.relay_sweep_ms,
        .inbox_keep_ms = s->cfg.inbox_keep_ms,
    };
    if (!s->def->stateless && ((st = outbox_relay_new(&s->relay, &ro, err)) != LB_OK ||
                               (st = outbox_relay_start(s->relay, err)) != LB_OK))
        goto out;
    for (size_t i = 0; i < n_threads; i++) {
        consumer_thread *ct = &cts[i];
        ct->s = s;
        ct->c = &s->def->consumers[i % s->def->n_consumers];
        ct->d = &s->durables[i % s->def->n_consumers];
        if (!s->def->stateless &&
            (st = store_open(&ct->db, s->cfg.db_url, s->stmts, s->n_stmts, err)) != LB_OK)
            goto out;
        if (!s->def->stateless)
            store_generic_plans(ct->db); /* why: svc_internal.h, batch connections */
        if ((st = bind_consumer(ct, err)) != LB_OK)
            goto out;
    }
    if (!s->def->stateless && ((st = svc__query_start(&qp, s, err)) != LB_OK ||
                               (st = svc__tick_start(&tk, s, err)) != LB_OK))
        goto out;
    /* /healthz answers only once consumers and responders are bound, so
     * "healthy" means "ready to take work" to the stack and the tests. */
    if ((st = metrics_server_start(&ms, (int)s->cfg.metrics_port, err)) != LB_OK)
        goto out;
    for (; started < n_threads; started++) {
        if (pthread_create(&cts[started].thread, NULL, consumer_main, &cts[started]) != 0) {
            st = lb_err_set(err, LB_ERR_INTERNAL, "start consumer thread");
            svc_stop(s);
            break;
        }
    }
    pt.n = started;
    if (st == LB_OK) {
        if (pthread_create(&pt.thread, NULL, progress_main, &pt) != 0) {
            st = lb_err_set(err, LB_ERR_INTERNAL, "start progress thread");
            svc_stop(s);
        } else {
            progress_started = true;
        }
    }
    if (st == LB_OK)
        log_info(NULL, "svc.ready", "service is running", LOG_INT("consumers", started),
                 LOG_INT("batch", s->cfg.batch));
    wait_until_stopped(s);
    log_info(NULL, "svc.stopping", "stopping");
out:
    svc_stop(s);
    for (size_t i = 0; i < started; i++)
        pthread_join(cts[i].thread, NULL);
    if (progress_started)
        pthread_join(pt.thread, NULL);
    svc__tick_stop(tk);
    /* outbox_relay_stop() publishes what was committed before it returns, so a
     * clean stop leaves no backlog (a crash leaves it to the next sweep). Then
     * the connection closes, which joins nats.c's reader thread, and only then
     * are subscriptions and contexts destroyed: a late delivery (a fetch's
     * status, an ack) racing their destruction crashed nats.c 3.4.1 in
     * natsConn_processMsg (a cluster_faults daemon at its stop, under ASan).
     * The query threads answer what they hold first. */
    svc__query_join(qp);
    outbox_relay_stop(s->relay);
    bus_disconnect(s->bus);
    svc__query_stop(qp);
    for (size_t i = 0; i < n_threads; i++) {
        if (cts[i].sub != NULL)
            natsSubscription_Destroy(cts[i].sub);
        store_close(cts[i].db);
        pthread_mutex_destroy(&cts[i].inflight.lock);
    }
    free(cts);
    outbox_relay_free(s->relay);
    s->relay = NULL;
    metrics_server_stop(ms);
    bus_close(s->bus);
    s->bus = NULL;
    return st;
}
