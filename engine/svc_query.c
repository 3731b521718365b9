/* svc_query.c - query responders and the periodic tick.
 *
 * Queries are core request/reply in a queue group (DESIGN §2): nothing is
 * persisted, a lost query is simply asked again. A query that writes (the
 * member service's) commits through svc_query_commit(), which hands its
 * outbox rows to the relay like a batch's commit. Each responder thread owns a
 * connection and a synchronous subscription on layby.qry.<service>.>.
 * The tick runs svc_def.tick in its own transaction with the outbox, for timers
 * and other work that no message starts, then svc_def.housekeep outside it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fault.h"
#include "id.h"
#include "layby/v1/common.pb-c.h"
#include "log.h"
#include "svc_internal.h"

struct svc_query {
    svc *s;
    store *db;
    bus_envelope env;
    outbox_buf *out; /* the responder thread's, emptied after each query */
};

store *
svc_query_store(svc_query *q)
{
    return q->db;
}

lb_status
svc_audit_page(char lim[16], const char *after, int32_t limit, lb_err *err)
{
    if (after[0] != '\0' && !id_valid(after))
        return lb_err_field(err, LB_ERR_INVALID, "afterOrderId",
                            "afterOrderId must be an order id");
    if (limit < 0 || limit > SVC_AUDIT_PAGE_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "limit", "limit must be between 0 and %d",
                            SVC_AUDIT_PAGE_MAX);
    snprintf(lim, 16, "%d", limit == 0 ? SVC_AUDIT_PAGE_DEFAULT : (int)limit);
    return LB_OK;
}

void
svc_audit_ints(int64_t *const *cols, size_t n, const PGresult *res, int r, int first)
{
    for (size_t c = 0; c < n; c++)
        *cols[c] = atoll(PQgetvalue(res, r, first + (int)c));
}

/* The field of m named name, of the given type (a bug in a service's def
 * otherwise). */
static lb_status
audit_field(const ProtobufCFieldDescriptor **out, const ProtobufCMessage *m, const char *name,
            ProtobufCType type, lb_err *err)
{
    *out = protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (*out == NULL || (*out)->type != type)
        return lb_err_set(err, LB_ERR_INTERNAL, "audit reply %s has no field %s of that type",
                          m->descriptor->name, name);
    return LB_OK;
}

/* Fills field `name` of m from res: a repeated field one message per row, a
 * single one from row 0 (none when res is empty). On an error m holds what
 * was made so far, for protobuf_c_message_free_unpacked(). */
static lb_status
audit_rows(ProtobufCMessage *m, const char *name, const PGresult *res, svc_audit_fill *fill,
           lb_err *err)
{
    const ProtobufCFieldDescriptor *f;
    lb_status st = audit_field(&f, m, name, PROTOBUF_C_TYPE_MESSAGE, err);
    if (st != LB_OK)
        return st;
    char *base = (char *)m;
    int rows = PQntuples(res);
    ProtobufCMessage **slots = (ProtobufCMessage **)(base + f->offset);
    size_t *n = NULL;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        /* +1: calloc(0) may answer NULL */
        if ((slots = calloc((size_t)rows + 1, sizeof *slots)) == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "audit %s", name);
        *(ProtobufCMessage ***)(base + f->offset) = slots;
        n = (size_t *)(base + f->quantifier_offset);
    } else if (rows > 1) {
        rows = 1;
    }
    const ProtobufCMessageDescriptor *rd = f->descriptor;
    for (int r = 0; r < rows; r++) {
        ProtobufCMessage *row = malloc(rd->sizeof_message);
        if (row == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "audit %s", name);
        protobuf_c_message_init(rd, row);
        slots[r] = row;
        if (n != NULL)
            (*n)++;
        if (!fill(row, res, r))
            return lb_err_set(err, LB_ERR_NOMEM, "audit %s", name);
    }
    return LB_OK;
}

/* next_order_id of m: the last order of a full page of res (the caller asks
 * until a page is short), else "". */
static lb_status
audit_next(ProtobufCMessage *m, const PGresult *res, const char *lim, lb_err *err)
{
    const ProtobufCFieldDescriptor *f;
    lb_status st = audit_field(&f, m, "next_order_id", PROTOBUF_C_TYPE_STRING, err);
    if (st != LB_OK)
        return st;
    int rows = PQntuples(res);
    char *next = strdup(rows > 0 && rows == atoi(lim) ? PQgetvalue(res, rows - 1, 0) : "");
    if (next == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "audit next id");
    *(char **)((char *)m + f->offset) = next;
    return LB_OK;
}

/* The parts of svc_audit_reply(): the head on the first page, then the orders. */
static lb_status
audit_fill(ProtobufCMessage *a, store *db, const svc_audit_def *def, const char *after,
           const char *lim, lb_err *err)
{
    PGresult *res = NULL;
    lb_status st = LB_OK;
    if (after[0] == '\0' && def->head_field != NULL) {
        if ((st = store_exec(db, &res, def->head_stmt, 0, NULL, err)) != LB_OK)
            return st;
        st = audit_rows(a, def->head_field, res, def->head_fill, err);
        PQclear(res);
        if (st != LB_OK)
            return st;
    }
    const char *p[] = { after, lim };
    if ((st = store_exec(db, &res, def->orders_stmt, 2, p, err)) != LB_OK)
        return st;
    st = audit_rows(a, "orders", res, def->orders_fill, err);
    if (st == LB_OK)
        st = audit_next(a, res, lim, err);
    PQclear(res);
    return st;
}

lb_status
svc_audit_reply(svc_query *q, const svc_audit_def *def, const char *after, int32_t limit,
                ProtobufCMessage **reply, lb_err *err)
{
    char lim[16];
    lb_status st = svc_audit_page(lim, after, limit, err);
    if (st != LB_OK)
        return st;
    ProtobufCMessage *a = malloc(def->reply->sizeof_message);
    if (a == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "audit");
    protobuf_c_message_init(def->reply, a);
    if ((st = audit_fill(a, q->db, def, after, lim, err)) != LB_OK) {
        protobuf_c_message_free_unpacked(a, NULL);
        return st;
    }
    *reply = a;
    return LB_OK;
}

const bus_envelope *
svc_query_env(svc_query *q)
{
    return &q->env;
}

lb_status
svc_query_emit(svc_query *q, const char *subject, const bus_envelope *env,
               const ProtobufCMessage *msg, lb_err *err)
{
    return outbox_buf_add(q->out, subject, env, msg, err);
}

lb_status
svc_query_commit(svc_query *q, lb_err *err)
{
    lb_status st = outbox_buf_write(q->db, q->out, err);
    if (st == LB_OK)
        st = store_commit(q->db, err);
    if (st != LB_OK)
        return st;
    /* Like svc__batch_after_commit(): the relay publishes them now; the
     * sweep only backs this up (a crash, NATS down). */
    if (q->s->relay != NULL)
        outbox_relay_hand(q->s->relay, q->out);
    outbox_buf_reset(q->out);
    return LB_OK;
}

void
svc_query_rollback(svc_query *q)
{
    store_rollback(q->db);
    outbox_buf_reset(q->out);
}

typedef struct query_thread {
    svc *s;
    store *db;
    outbox_buf out;        /* rows of the query in progress (svc_query_emit) */
    natsSubscription *sub; /* the pool's, shared */
    pthread_t thread;
    bool started;
} query_thread;

/* One subscription for all the responder threads of a process, each taking
 * the next message when it is free (nats.c lets several threads wait in
 * natsSubscription_NextMsg on one subscription). A subscription per thread
 * let NATS hand a query to a thread that was busy (a member login hashing a
 * password for 50-500 ms) while others idled: GET /me's p99 under a login
 * storm was 60x its idle p99 (docs/BENCHMARKS.md, Members). The queue group
 * still spreads queries over the service's processes. */
struct svc__query_pool {
    query_thread *t;
    size_t n;
    natsSubscription *sub;
};

static const svc_query_route *
route_find(const svc_def *def, const char *subject)
{
    for (size_t i = 0; i < def->n_queries; i++)
        if (strcmp(def->queries[i].subject, subject) == 0)
            return &def->queries[i];
    return NULL;
}

/* Runs route r. An idle session may have died without libpq knowing (the
 * backend terminated, PostgreSQL restarted): its first statement fails and
 * only then is PQstatus bad. A read met that way runs once more on a new
 * session, so the client gets its answer rather than a 503 once per
 * responder thread after every database fault (seen in the chaos run).
 * A write answers the failure (svc_query_kind). */
static lb_status
query_run(query_thread *qt, svc_query *q, const svc_query_route *r, const ProtobufCMessage *req,
          ProtobufCMessage **reply, lb_err *err)
{
    lb_status st = store_ensure(qt->db, err);
    if (st == LB_OK)
        st = r->fn(q, req, reply, err);
    if (st == LB_OK || r->kind != SVC_QUERY_READS || PQstatus(store_pg(qt->db)) == CONNECTION_OK)
        return st;
    log_info(&(log_ctx){ .correlation = q->env.correlation }, "svc.query_session_dead",
             "a read met a dead database session; once more on a new one",
             LOG_STR("subject", r->subject), LOG_ERR(err));
    if (*reply != NULL) {
        protobuf_c_message_free_unpacked(*reply, NULL);
        *reply = NULL;
    }
    store_rollback(qt->db);
    lb_err_clear(err);
    if ((st = store_ensure(qt->db, err)) == LB_OK)
        st = r->fn(q, req, reply, err);
    return st;
}

static void
answer(query_thread *qt, natsMsg *m)
{
    svc *s = qt->s;
    const char *to = natsMsg_GetReply(m);
    if (to == NULL || to[0] == '\0')
        return;
    int64_t t0 = lb_mono_us();
    svc_query q = { .s = s, .db = qt->db, .out = &qt->out };
    lb_err err;
    lb_err_clear(&err);
    ProtobufCMessage *req = NULL, *reply = NULL;
    const svc_query_route *r = route_find(s->def, natsMsg_GetSubject(m));
    lb_status st;
    if (bus_envelope_read(&q.env, m, &err) != LB_OK) {
        st = LB_ERR_INVALID;
    } else if (r == NULL) {
        st = lb_err_set(&err, LB_ERR_NOT_FOUND, "no query %s", natsMsg_GetSubject(m));
    } else if ((st = codec_unpack(&req, r->desc, (const uint8_t *)natsMsg_GetData(m),
                                  (size_t)natsMsg_GetDataLength(m), &err)) == LB_OK) {
        st = query_run(qt, &q, r, req, &reply, &err);
    }
    bus_envelope env;
    if (st == LB_OK && reply != NULL) {
        bus_envelope_init(&env, reply->descriptor, &q.env);
        bus_publish_core(s->bus, to, &env, reply, NULL);
    } else {
        if (st == LB_OK)
            st = lb_err_set(&err, LB_ERR_INTERNAL, "query produced no answer");
        if (lb_status_http(st) >= 500)
            log_warn(&(log_ctx){ .correlation = q.env.correlation }, "svc.query_failed",
                     "query failed", LOG_STR("subject", natsMsg_GetSubject(m)), LOG_ERR(&err));
        Layby__V1__Failure f = LAYBY__V1__FAILURE__INIT;
        f.code = (char *)lb_status_code(st);
        f.message = (char *)(err.msg[0] ? err.msg : lb_status_text(st));
        f.field = err.field;
        bus_envelope_init(&env, &layby__v1__failure__descriptor, &q.env);
        bus_publish_core(s->bus, to, &env, &f.base, NULL);
    }
    if (req != NULL)
        protobuf_c_message_free_unpacked(req, NULL);
    if (reply != NULL)
        protobuf_c_message_free_unpacked(reply, NULL);
    outbox_buf_reset(&qt->out); /* what no svc_query_commit() took never happened */
    metrics_add(s->m_queries, 1);
    metrics_observe_us(s->m_query_lat, lb_mono_us() - t0);
}

static void *
query_main(void *arg)
{
    query_thread *qt = arg;
    while (!atomic_load(&qt->s->stop)) {
        natsMsg *m = NULL;
        natsStatus ns = natsSubscription_NextMsg(&m, qt->sub, 200);
        if (ns == NATS_TIMEOUT)
            continue;
        if (ns != NATS_OK) {
            struct timespec ts = { 0, 100 * 1000 * 1000 };
            nanosleep(&ts, NULL);
            continue;
        }
        answer(qt, m);
        natsMsg_Destroy(m);
    }
    return NULL;
}

void
svc__query_join(svc__query_pool *qp)
{
    if (qp == NULL)
        return;
    for (size_t i = 0; i < qp->n; i++) {
        query_thread *qt = &qp->t[i];
        if (qt->started)
            pthread_join(qt->thread, NULL);
        qt->started = false;
    }
}

void
svc__query_stop(svc__query_pool *qp)
{
    if (qp == NULL)
        return;
    svc__query_join(qp);
    for (size_t i = 0; i < qp->n; i++) {
        query_thread *qt = &qp->t[i];
        store_close(qt->db);
        outbox_buf_destroy(&qt->out);
    }
    if (qp->sub != NULL) {
        natsSubscription_Unsubscribe(qp->sub);
        natsSubscription_Destroy(qp->sub);
    }
    free(qp->t);
    free(qp);
}

lb_status
svc__query_start(svc__query_pool **out, svc *s, lb_err *err)
{
    *out = NULL;
    if (s->def->n_queries == 0 || s->cfg.query_threads == 0)
        return LB_OK;
    svc__query_pool *qp = calloc(1, sizeof *qp);
    if (qp == NULL || (qp->t = calloc((size_t)s->cfg.query_threads, sizeof *qp->t)) == NULL) {
        free(qp);
        return lb_err_set(err, LB_ERR_NOMEM, "query pool");
    }
    char subject[BUS_SUBJECT_MAX];
    snprintf(subject, sizeof subject, "layby.qry.%s.>", s->def->name);
    lb_status st = LB_OK;
    natsStatus ns =
        natsConnection_QueueSubscribeSync(&qp->sub, bus_conn(s->bus), subject, s->def->name);
    if (ns != NATS_OK) {
        st = bus__nats_err(err, ns, "subscribe queries");
        goto out_stop;
    }
    natsSubscription_SetPendingLimits(qp->sub, 1 << 16, 64 << 20);
    for (size_t i = 0; i < (size_t)s->cfg.query_threads; i++) {
        query_thread *qt = &qp->t[qp->n++];
        qt->s = s;
        qt->sub = qp->sub;
        outbox_buf_init(&qt->out);
        if ((st = store_open(&qt->db, s->cfg.db_url, s->stmts, s->n_stmts, err)) != LB_OK)
            goto out_stop;
        if (pthread_create(&qt->thread, NULL, query_main, qt) != 0) {
            st = lb_err_set(err, LB_ERR_INTERNAL, "start query thread");
            goto out_stop;
        }
        qt->started = true;
    }
    *out = qp;
    return LB_OK;
out_stop:
    svc_stop(s);
    svc__query_stop(qp);
    return st;
}

/* --- tick ---------------------------------------------------------------- */

struct svc__tick {
    svc *s;
    store *db;
    svc_batch b;
    pthread_t thread;
};

static void *
tick_main(void *arg)
{
    svc__tick *t = arg;
    svc *s = t->s;
    while (!atomic_load(&s->stop)) {
        bool more = false;
        lb_err err;
        lb_status st = store_begin(t->db, &err);
        if (st == LB_OK) {
            svc__batch_reset(&t->b);
            st = s->def->tick(&t->b, lb_now_ms(), &more, &err);
            if (st == LB_OK)
                st = outbox_buf_write(t->db, &t->b.out, &err);
            if (st == LB_OK)
                st = store_commit(t->db, &err);
            if (st == LB_OK) {
                /* CRASH POINT: the tick's decisions committed, the rows it
                 * wrote not handed to the relay (its sweep finds them). Only
                 * a tick that sent something counts, so the empty ticks of a
                 * daemon still starting never fire it. */
                if (t->b.out.n > 0)
                    fault_point("svc.tick_after_commit");
                svc__batch_after_commit(&t->b);
            } else {
                store_rollback(t->db);
                svc__batch_reset(&t->b);
            }
        }
        if (st != LB_OK) {
            more = false;
            log_warn(NULL, "svc.tick_failed", "periodic work failed; will retry", LOG_ERR(&err));
        }
        if (more)
            continue;
        /* After the tick's transaction ended, never inside it: a failed
         * housekeeping statement must not roll the tick's decisions back. */
        if (s->def->housekeep != NULL && store_ensure(t->db, &err) == LB_OK)
            s->def->housekeep(t->db, lb_now_ms());
        /* Sleep in short slices so a stop is seen quickly. */
        for (int64_t slept = 0; slept < s->def->tick_interval_ms && !atomic_load(&s->stop);
             slept += 50) {
            struct timespec ts = { 0, 50 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

lb_status
svc__tick_start(svc__tick **out, svc *s, lb_err *err)
{
    *out = NULL;
    if (s->def->tick == NULL)
        return LB_OK;
    svc__tick *t = calloc(1, sizeof *t);
    if (t == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "tick");
    t->s = s;
    lb_status st = store_open(&t->db, s->cfg.db_url, s->stmts, s->n_stmts, err);
    if (st != LB_OK) {
        free(t);
        return st;
    }
    svc__batch_init(&t->b, s, t->db);
    if (pthread_create(&t->thread, NULL, tick_main, t) != 0) {
        svc__batch_destroy(&t->b);
        store_close(t->db);
        free(t);
        return lb_err_set(err, LB_ERR_INTERNAL, "start tick thread");
    }
    *out = t;
    return LB_OK;
}

void
svc__tick_stop(svc__tick *t)
{
    if (t == NULL)
        return;
    pthread_join(t->thread, NULL);
    svc__batch_destroy(&t->b);
    store_close(t->db);
    free(t);
}
