/* svc_batch.c - one fetched batch -> one transaction (svc.h invariants 1-4).
 *
 * CRASH POINTS:
 *  - before COMMIT: nothing happened; the messages are redelivered after AckWait.
 *  - after COMMIT, before the acks: redelivery finds every id in the inbox and
 *    skips it (no second effect, and no second reply: the requester times out
 *    and asks again with its Idempotency-Key).
 *  - after the acks, before the relay published: the outbox rows stay and the
 *    relay's sweep (this or another instance) publishes them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "fault.h"
#include "id.h"
#include "layby/v1/common.pb-c.h"
#include "log.h"
#include "svc_internal.h"

/* --- svc_batch ----------------------------------------------------------- */

void
svc__batch_init(svc_batch *b, svc *s, store *db)
{
    memset(b, 0, sizeof *b);
    b->s = s;
    b->db = db;
    b->prefetch_ticket = -1;
    outbox_buf_init(&b->out);
}

/* Ends the hooks from the n-th on: told whether their part committed. */
static void
hooks_end(svc_batch *b, size_t n, bool committed)
{
    for (size_t i = n; i < b->n_hooks; i++)
        b->hooks[i].fn(b->hooks[i].arg, committed);
    if (n < b->n_hooks)
        b->n_hooks = n;
}

void
svc__batch_reset(svc_batch *b)
{
    outbox_buf_reset(&b->out);
    for (size_t i = 0; i < b->n_replies; i++)
        natsMsg_Destroy(b->replies[i].msg);
    b->n_replies = 0;
    hooks_end(b, 0, false);
    b->prefetch_ticket = -1;
    b->speculative = false;
}

void
svc__batch_destroy(svc_batch *b)
{
    svc__batch_reset(b);
    outbox_buf_destroy(&b->out);
    free(b->replies);
    free(b->hooks);
}

void
svc__batch_after_commit(svc_batch *b)
{
    for (size_t i = 0; i < b->n_replies; i++) {
        /* Nobody may be waiting any more: a failed reply is not an error. */
        natsConnection_PublishMsg(bus_conn(b->s->bus), b->replies[i].msg);
        natsMsg_Destroy(b->replies[i].msg);
    }
    b->n_replies = 0;
    hooks_end(b, 0, true);
    if (b->s->relay != NULL)
        outbox_relay_hand(b->s->relay, &b->out);
    outbox_buf_reset(&b->out);
}

store *
svc_batch_store(svc_batch *b)
{
    return b->db;
}

lb_status
svc_batch_mark(svc_batch *b, svc_mark *m, lb_err *err)
{
    m->n_out = b->out.n;
    m->n_replies = b->n_replies;
    m->n_hooks = b->n_hooks;
    return store_exec_sql(b->db, "SAVEPOINT svc_mark", err);
}

lb_status
svc_batch_check(svc_batch *b, lb_err *err)
{
    return store_flush(b->db, err);
}

lb_status
svc_batch_undo(svc_batch *b, const svc_mark *m, lb_err *err)
{
    outbox_buf_truncate(&b->out, m->n_out);
    for (size_t i = m->n_replies; i < b->n_replies; i++)
        natsMsg_Destroy(b->replies[i].msg);
    if (m->n_replies < b->n_replies)
        b->n_replies = m->n_replies;
    hooks_end(b, m->n_hooks, false);
    /* Ends the aborted pipeline run first (store_flush reads up to its sync). */
    lb_err ignored;
    store_flush(b->db, &ignored);
    return store_exec_sql(b->db, "ROLLBACK TO SAVEPOINT svc_mark", err);
}

bool
svc_batch_speculative(const svc_batch *b)
{
    return b->speculative;
}

lb_status
svc_batch_on_commit(svc_batch *b, svc_commit_fn fn, void *arg, lb_err *err)
{
    if (b->n_hooks == b->cap_hooks) {
        size_t cap = b->cap_hooks ? b->cap_hooks * 2 : 4;
        svc__commit_hook *h = realloc(b->hooks, cap * sizeof *h);
        if (h == NULL) {
            fn(arg, false);
            return lb_err_set(err, LB_ERR_NOMEM, "commit hook");
        }
        b->hooks = h;
        b->cap_hooks = cap;
    }
    b->hooks[b->n_hooks++] = (svc__commit_hook){ fn, arg };
    return LB_OK;
}

void
svc_batch_prefetch_set(svc_batch *b, int ticket)
{
    b->prefetch_ticket = ticket;
}

int
svc_batch_prefetched(svc_batch *b)
{
    int t = b->prefetch_ticket;
    b->prefetch_ticket = -1;
    return t;
}

bool
svc_batch_has_prefetched(const svc_batch *b)
{
    return b->prefetch_ticket >= 0;
}

lb_status
svc_batch_read_first(svc_batch *b, PGresult **out, const char *name, int nparams,
                     const char *const *values, lb_err *err)
{
    int t = -1;
    lb_status st;
    if (out == NULL) {
        if ((st = store_send(b->db, &t, name, nparams, values, 0, err)) == LB_OK)
            svc_batch_prefetch_set(b, t);
        return st;
    }
    if ((t = svc_batch_prefetched(b)) < 0)
        return store_exec(b->db, out, name, nparams, values, err);
    if ((st = store_flush(b->db, err)) != LB_OK)
        return st;
    *out = store_take(b->db, t);
    return *out != NULL ? LB_OK
                        : lb_err_set(err, LB_ERR_DB, "%s: the prefetched result is gone", name);
}

lb_status
svc_emit(svc_batch *b, const char *subject, const bus_envelope *env, const ProtobufCMessage *msg,
         lb_err *err)
{
    return outbox_buf_add(&b->out, subject, env, msg, err);
}

lb_status
svc_reply(svc_batch *b, const char *inbox, const bus_envelope *env, const ProtobufCMessage *msg,
          lb_err *err)
{
    if (inbox == NULL || inbox[0] == '\0')
        return LB_OK;
    if (b->n_replies == b->cap_replies) {
        size_t cap = b->cap_replies ? b->cap_replies * 2 : 32;
        svc__pending_reply *nr = realloc(b->replies, cap * sizeof *nr);
        if (nr == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "reply queue");
        b->replies = nr;
        b->cap_replies = cap;
    }
    natsMsg *m = NULL;
    lb_status st = bus_msg_new(&m, inbox, env, msg, err);
    if (st != LB_OK)
        return st;
    b->replies[b->n_replies++].msg = m;
    return LB_OK;
}

/* --- the worker ---------------------------------------------------------- */

typedef enum entry_fate {
    ENTRY_READY,  /* decoded, goes into the transaction */
    ENTRY_IGNORE, /* no handler: acked and dropped */
    ENTRY_DEAD    /* cannot be handled: dead-lettered at once */
} entry_fate;

typedef struct entry {
    natsMsg *m;
    bus_envelope env;
    const svc_handler *h;
    ProtobufCMessage *msg;
    uint64_t delivered;
    uint64_t stream_seq;
    entry_fate fate;
    lb_err err;
} entry;

void
svc__worker_init(svc__worker *w, svc *s, store *db, const svc_consumer *c, svc__durable *d,
                 svc__inflight *inflight)
{
    memset(w, 0, sizeof *w);
    w->s = s;
    w->d = d;
    w->inflight = inflight;
    w->db = db;
    w->c = c;
    svc__batch_init(&w->b, s, db);
    snprintf(w->dlq_subject, sizeof w->dlq_subject, "layby.dlq.%s", s->def->name);
    snprintf(w->consumer_name, sizeof w->consumer_name, "%s/%s", c->stream, c->durable);
}

bool
svc__worker_held_take(svc__worker *w, natsMsgList *out)
{
    if (w->n_held == 0)
        return false;
    *out = w->held[0];
    memmove(&w->held[0], &w->held[1], (size_t)(w->n_held - 1) * sizeof w->held[0]);
    w->n_held--;
    return true;
}

void
svc__worker_destroy(svc__worker *w)
{
    natsMsgList l;
    while (svc__worker_held_take(w, &l)) {
        for (int i = 0; i < l.Count; i++)
            natsMsg_Nak(l.Msgs[i], NULL); /* stopping: hand them back at once */
        natsMsgList_Destroy(&l);
    }
    outbox_pub_free(w->pub);
    w->pub = NULL;
    svc__batch_destroy(&w->b);
}

static const svc_handler *
handler_find(const svc_def *def, const char *subject)
{
    for (size_t i = 0; i < def->n_handlers; i++)
        if (strcmp(def->handlers[i].subject, subject) == 0)
            return &def->handlers[i];
    return NULL;
}

static void
entry_prepare(svc__worker *w, entry *e)
{
    jsMsgMetaData *meta = NULL;
    e->fate = ENTRY_READY;
    e->delivered = 1;
    if (natsMsg_GetMetaData(&meta, e->m) == NATS_OK) {
        e->delivered = meta->NumDelivered;
        e->stream_seq = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
    }
    if (e->delivered > 1)
        metrics_add(w->s->m_redelivered, 1);
    if (bus_envelope_read(&e->env, e->m, &e->err) != LB_OK) {
        e->fate = ENTRY_DEAD;
        return;
    }
    e->h = handler_find(w->s->def, natsMsg_GetSubject(e->m));
    if (e->h == NULL) {
        e->fate = ENTRY_IGNORE;
        return;
    }
    const ProtobufCMessageDescriptor *d = e->h->desc ? e->h->desc : codec_type_find(e->env.type);
    if (d == NULL) {
        lb_err_set(&e->err, LB_ERR_DECODE, "unknown Layby-Type %s", e->env.type);
        e->fate = ENTRY_DEAD;
        return;
    }
    if (strcmp(d->name, e->env.type) != 0) {
        lb_err_set(&e->err, LB_ERR_DECODE, "Layby-Type %s does not match %s expected on %s",
                   e->env.type, d->name, natsMsg_GetSubject(e->m));
        e->fate = ENTRY_DEAD;
        return;
    }
    if (codec_unpack(&e->msg, d, (const uint8_t *)natsMsg_GetData(e->m),
                     (size_t)natsMsg_GetDataLength(e->m), &e->err) != LB_OK)
        e->fate = ENTRY_DEAD;
}

/* Copies the message with its headers to layby.dlq.<service>, adding why.
 * A dead letter has its own Nats-Msg-Id, derived from what identifies this
 * delivery of this message to this consumer (consumer, stream sequence,
 * original id; the original id goes to Layby-Dlq-Original-Id):
 * - two services refusing one event write two dead letters (with the original
 *   id kept, LAYBY_DLQ's duplicate window dropped the second one, which was
 *   then Term'ed: the dead letter vanished);
 * - a crash between this publish and the Term redelivers the message, which
 *   derives the same id: JetStream drops the repeat and its ack says
 *   Duplicate. Only this consumer's earlier copy of this very message can
 *   carry that id, so a duplicate ack means "already stored" here. */
static void
dead_letter(svc__worker *w, entry *e)
{
    natsMsg *d = NULL;
    const char *data = natsMsg_GetData(e->m);
    int len = natsMsg_GetDataLength(e->m);
    if (natsMsg_Create(&d, w->dlq_subject, NULL, data, len) != NATS_OK)
        goto out_nak;
    const char **keys = NULL;
    int nkeys = 0;
    if (natsMsgHeader_Keys(e->m, &keys, &nkeys) == NATS_OK) {
        for (int i = 0; i < nkeys; i++) {
            const char **vals = NULL;
            int nvals = 0;
            if (natsMsgHeader_Values(e->m, keys[i], &vals, &nvals) == NATS_OK) {
                for (int k = 0; k < nvals; k++)
                    natsMsgHeader_Add(d, keys[i], vals[k]);
                free((void *)vals);
            }
        }
        free((void *)keys);
    }
    char seq[32], deliveries[32], msgid[64];
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)e->stream_seq);
    snprintf(deliveries, sizeof deliveries, "%llu", (unsigned long long)e->delivered);
    natsMsgHeader_Set(d, BUS_H_DLQ_SUBJECT, natsMsg_GetSubject(e->m));
    natsMsgHeader_Set(d, BUS_H_DLQ_CONSUMER, w->consumer_name);
    natsMsgHeader_Set(d, BUS_H_DLQ_ERROR, e->err.msg);
    natsMsgHeader_Set(d, BUS_H_DLQ_STREAM_SEQ, seq);
    natsMsgHeader_Set(d, BUS_H_DLQ_DELIVERIES, deliveries);
    const char *orig_id = NULL;
    if (natsMsgHeader_Get(e->m, BUS_H_MSG_ID, &orig_id) != NATS_OK || orig_id == NULL)
        orig_id = "";
    else
        natsMsgHeader_Set(d, BUS_H_DLQ_ORIGINAL_ID, orig_id);
    char key[512];
    snprintf(key, sizeof key, "%s/%s/%s", w->consumer_name, seq, orig_id);
    id_from_key(msgid, "svc.dead_letter", key);
    natsMsgHeader_Set(d, BUS_H_MSG_ID, msgid);
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_PublishMsg(&ack, bus_js(w->s->bus), d, NULL, &jerr);
    bool repeat = ns == NATS_OK && ack != NULL && ack->Duplicate;
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(d);
    if (ns != NATS_OK)
        goto out_nak;
    log_warn(&(log_ctx){ .correlation = e->env.correlation }, "svc.dead_letter",
             repeat ? "message was already in LAYBY_DLQ (dead-lettered before a crash)"
                    : "message moved to LAYBY_DLQ",
             LOG_STR("subject", natsMsg_GetSubject(e->m)), LOG_STR("dead_letter_id", msgid),
             LOG_INT("deliveries", e->delivered), LOG_ERR(&e->err));
    metrics_add(w->s->m_dead, 1);
    natsMsg_Term(e->m, NULL);
    return;
out_nak:
    log_warn(NULL, "svc.dead_letter_failed", "cannot reach LAYBY_DLQ; will retry",
             LOG_STR("subject", natsMsg_GetSubject(e->m)));
    natsMsg_NakWithDelay(e->m, w->s->cfg.nak_delay_ms, NULL);
}

static void
reply_outcome(svc__worker *w, const svc_item *it)
{
    if (it->env->reply[0] == '\0')
        return;
    bus_envelope env;
    if (it->outcome == LB_OK) {
        if (it->reply == NULL)
            return; /* the handler answers later (a saga) or not at all */
        bus_envelope_init(&env, it->reply->descriptor, it->env);
        bus_publish_core(w->s->bus, it->env->reply, &env, it->reply, NULL);
        return;
    }
    Layby__V1__Failure f = LAYBY__V1__FAILURE__INIT;
    f.code = (char *)lb_status_code(it->outcome);
    f.message = (char *)(it->why.msg[0] ? it->why.msg : lb_status_text(it->outcome));
    f.field = (char *)it->why.field;
    bus_envelope_init(&env, &layby__v1__failure__descriptor, it->env);
    bus_publish_core(w->s->bus, it->env->reply, &env, &f.base, NULL);
}

/* The batch's effects are durable (committed, or published and acked by
 * JetStream): ack its k messages, answer the n fresh items' requesters, send
 * the queued replies and hand the outbox rows on. */
static void
batch_settled(svc__worker *w, entry **es, size_t k, const svc_item *items, size_t n)
{
    for (size_t i = 0; i < k; i++)
        natsMsg_Ack(es[i]->m, NULL);
    for (size_t i = 0; i < n; i++)
        reply_outcome(w, &items[i]);
    svc__batch_after_commit(&w->b);
    metrics_add(w->s->m_handled, (int64_t)n);
    metrics_add(w->s->m_duplicates, (int64_t)(k - n));
}

/* Runs the handlers on the fresh entries of es[0..k), filling items (room for
 * k) and *n_items: entries sharing one handler function form one group, in
 * arrival order inside the group. */
static lb_status
handlers_run(svc__worker *w, entry **es, size_t k, const bool *fresh, int64_t now, svc_item *items,
             size_t *n_items, lb_err *err)
{
    for (size_t hi = 0; hi < w->s->def->n_handlers; hi++) {
        const svc_handler *h = &w->s->def->handlers[hi];
        bool seen_fn = false;
        for (size_t hj = 0; hj < hi && !seen_fn; hj++)
            seen_fn = w->s->def->handlers[hj].fn == h->fn;
        if (seen_fn)
            continue;
        size_t first = *n_items;
        for (size_t i = 0; i < k; i++) {
            if ((fresh != NULL && !fresh[i]) || es[i]->h->fn != h->fn)
                continue;
            svc_item *it = &items[(*n_items)++];
            memset(it, 0, sizeof *it);
            it->subject = natsMsg_GetSubject(es[i]->m);
            it->env = &es[i]->env;
            it->msg = es[i]->msg;
            it->now_ms = now;
        }
        if (*n_items == first)
            continue;
        lb_status st = h->fn(&w->b, items + first, *n_items - first, err);
        if (st != LB_OK)
            return st;
    }
    return LB_OK;
}

/* Ends phase p of the batch begun at *t (layby_svc_phase_seconds); the next
 * phase begins now. */
static void
phase_end(svc__worker *w, svc__phase p, int64_t *t)
{
    int64_t now = lb_mono_us();
    metrics_observe_us(w->s->m_phase[p], now - *t);
    *t = now;
}

/* The items of es[0..k) as a prefetch or speculate hook sees them. */
static void
items_of(svc_item *items, entry **es, size_t k, int64_t now)
{
    for (size_t i = 0; i < k; i++)
        items[i] = (svc_item){ .subject = natsMsg_GetSubject(es[i]->m),
                               .env = &es[i]->env,
                               .msg = es[i]->msg,
                               .now_ms = now };
}

/* Runs es[0..k) in one transaction, items having room for k. On LB_OK
 * everything committed, replies went out and the messages were acked.
 *
 * The ordinary way is two round trips: BEGIN, the inbox claim and the
 * prefetched reads; then the handlers' writes, the outbox rows and COMMIT.
 * Speculative (svc_speculate_fn), the first one's wait is skipped: the strict
 * claim and the handlers' check travel with the writes, so a duplicate or a
 * stale memory fails the COMMIT, and nothing of the batch is kept. */
static lb_status
run_tx_once(svc__worker *w, entry **es, size_t k, svc_item *items, bool speculative, int64_t now,
            lb_err *err)
{
    svc_batch *b = &w->b;
    const char *ids_stack[256];
    bool fresh_stack[256];
    const char **ids = k <= 256 ? ids_stack : malloc(k * sizeof *ids);
    bool *fresh = k <= 256 ? fresh_stack : malloc(k * sizeof *fresh);
    size_t n_items = 0;
    lb_status st = LB_OK;
    if (ids == NULL || fresh == NULL) {
        st = lb_err_set(err, LB_ERR_NOMEM, "batch arrays");
        goto out_free;
    }
    for (size_t i = 0; i < k; i++)
        ids[i] = es[i]->env.msg_id;
    int64_t t = lb_mono_us();
    svc__batch_reset(b);
    int claim = -1;
    if ((st = store_begin(w->db, err)) != LB_OK)
        goto out_free;
    if (speculative) {
        b->speculative = true;
        if ((st = inbox_claim_all_send(w->db, ids, k, err)) != LB_OK)
            goto out_rollback;
        for (size_t i = 0; i < k; i++)
            fresh[i] = true;
    } else {
        if ((st = inbox_claim_send(w->db, ids, k, &claim, err)) != LB_OK)
            goto out_rollback;
        svc_prefetch_fn prefetch = w->s->def->prefetch;
        if (prefetch == NULL && k == 1)
            prefetch = es[0]->h->prefetch;
        if (prefetch != NULL) {
            items_of(items, es, k, now);
            if ((st = prefetch(b, items, k, err)) != LB_OK)
                goto out_rollback;
        }
        /* One round trip: BEGIN, the inbox claim and the prefetched reads. */
        if ((st = store_flush(w->db, err)) != LB_OK ||
            (st = inbox_claim_fresh(w->db, claim, ids, k, fresh, err)) != LB_OK)
            goto out_rollback;
    }
    phase_end(w, SVC__PHASE_READ, &t);
    if ((st = handlers_run(w, es, k, fresh, now, items, &n_items, err)) != LB_OK)
        goto out_rollback;
    phase_end(w, SVC__PHASE_HANDLE, &t);
    if ((st = outbox_buf_write(w->db, &b->out, err)) != LB_OK)
        goto out_rollback;
    phase_end(w, SVC__PHASE_WRITE, &t);
    if ((st = store_commit(w->db, err)) != LB_OK)
        goto out_rollback;
    phase_end(w, SVC__PHASE_COMMIT, &t);
    fault_point("svc.after_commit");
    /* Committed: ack (a lost ack only causes a redelivery the inbox skips). */
    batch_settled(w, es, k, items, n_items);
    phase_end(w, SVC__PHASE_SETTLE, &t);
    goto out_free;
out_rollback:
    store_rollback(w->db);
    svc__batch_reset(b);
out_free:
    for (size_t i = 0; i < n_items; i++)
        if (items[i].reply != NULL)
            protobuf_c_message_free_unpacked(items[i].reply, NULL);
    if (ids != ids_stack)
        free(ids);
    if (fresh != fresh_stack)
        free(fresh);
    return st;
}

/* Runs es[0..k) in one transaction: speculative first when the service says
 * it can (svc_speculate_fn), and on any failure of that at once the ordinary
 * way, so a speculation costs a failing batch one round trip and never a
 * delivery. */
static lb_status
run_tx(svc__worker *w, entry **es, size_t k, lb_err *err)
{
    svc_item items_stack[64];
    svc_item *items = k <= 64 ? items_stack : malloc(k * sizeof *items);
    if (items == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "batch items");
    int64_t now = lb_now_ms();
    svc_speculate_fn speculate = w->s->def->speculate;
    bool spec = false;
    if (speculate != NULL && w->spec_credit < 0) {
        w->spec_credit++;
    } else if (speculate != NULL) {
        items_of(items, es, k, now);
        spec = speculate(items, k);
    }
    lb_status st = LB_ERR_INTERNAL;
    if (spec) {
        st = run_tx_once(w, es, k, items, true, now, err);
        metrics_add(st == LB_OK ? w->s->m_spec_ok : w->s->m_spec_failed, 1);
        if (st != LB_OK)
            w->spec_credit -= SVC__SPEC_PENALTY;
        else if (w->spec_credit < SVC__SPEC_CREDIT_MAX)
            w->spec_credit++;
    }
    if (st != LB_OK)
        st = run_tx_once(w, es, k, items, false, now, err);
    if (items != items_stack)
        free(items);
    return st;
}

/* Stateless handlers (svc_def.stateless): no transaction. Each emitted row
 * gets the id derived from its cause (the input's id) and its place among that
 * cause's rows, so handling the same input again gives the same ids.
 * CRASH POINTS: until JetStream acked every row, the inputs are not acked: a
 * crash redelivers them, they publish the same ids again and the stream's
 * duplicate window (2 min, longer than AckWait) drops the copies. */
static lb_status
run_stateless(svc__worker *w, entry **es, size_t k, lb_err *err)
{
    svc_batch *b = &w->b;
    svc_item items_stack[64];
    svc_item *items = k <= 64 ? items_stack : malloc(k * sizeof *items);
    size_t n_items = 0;
    if (items == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "batch items");
    svc__batch_reset(b);
    lb_status st = LB_OK;
    if (w->pub == NULL)
        st = outbox_pub_new(&w->pub, w->s->bus, NULL, err);
    if (st == LB_OK)
        st = handlers_run(w, es, k, NULL, lb_now_ms(), items, &n_items, err);
    for (size_t i = 0; st == LB_OK && i < b->out.n; i++) {
        outbox_row *row = &b->out.rows[i];
        /* Without a cause there is nothing to derive from: a fixed id would
         * make the duplicate window drop the next such message. */
        if (row->env.causation[0] == '\0')
            continue;
        unsigned nth = 0;
        for (size_t j = 0; j < i; j++)
            nth += strcmp(b->out.rows[j].env.causation, row->env.causation) == 0;
        char key[ID_STR_LEN + 16];
        snprintf(key, sizeof key, "%s/%u", row->env.causation, nth);
        id_from_key(row->env.msg_id, "svc.stateless", key);
    }
    if (st == LB_OK)
        st = outbox_pub_rows(w->pub, &b->out, err);
    if (st == LB_OK) {
        fault_point("svc.after_publish");
        batch_settled(w, es, k, items, n_items);
    } else {
        svc__batch_reset(b);
    }
    for (size_t i = 0; i < n_items; i++)
        if (items[i].reply != NULL)
            protobuf_c_message_free_unpacked(items[i].reply, NULL);
    if (items != items_stack)
        free(items);
    return st;
}

static void
entry_fail(svc__worker *w, entry *e, const lb_err *why)
{
    e->err = *why;
    if (e->delivered >= (uint64_t)atomic_load(&w->d->max_deliver)) {
        dead_letter(w, e);
        return;
    }
    /* Exponential backoff: nak-delay, then twice that, ... at most a minute. */
    int shift = e->delivered > 7 ? 6 : (int)e->delivered - 1;
    int64_t delay = w->s->cfg.nak_delay_ms << shift;
    if (delay > 60000)
        delay = 60000;
    log_warn(&(log_ctx){ .correlation = e->env.correlation }, "svc.nak",
             "handling failed; redelivering later", LOG_STR("subject", natsMsg_GetSubject(e->m)),
             LOG_INT("delivered", e->delivered), LOG_INT("retry_ms", delay), LOG_ERR(why));
    natsMsg_NakWithDelay(e->m, delay, NULL);
}

typedef lb_status (*run_fn)(svc__worker *, entry **, size_t, lb_err *);

/* A failure that says nothing about the messages: the database is away or
 * asked for a retry (store.h: connection lost, admin shutdown, 08xxx, 57P0x,
 * serialization failure, deadlock, lock not available; all LB_ERR_DB). */
static bool
failure_transient(lb_status st)
{
    return st == LB_ERR_DB;
}

/* Messages that answered an earlier pull request wait unseen in the client's
 * buffer (nats.c 3.4): AckWait would run out on them during a long hold and
 * spend a delivery. Take them into the hold; they are the next batches. */
static void
hold_take_buffered(svc__worker *w)
{
    int waiting = 0, bytes = 0;
    if (w->sub == NULL || w->n_held == (int)LB_COUNTOF(w->held) ||
        natsSubscription_GetPending(w->sub, &waiting, &bytes) != NATS_OK || waiting <= 0)
        return;
    natsMsgList list = { 0 };
    lb_err ignored;
    if (bus_fetch(&list, w->s->bus, w->sub, waiting, 1, &ignored) != LB_OK || list.Count == 0) {
        natsMsgList_Destroy(&list);
        return;
    }
    w->held[w->n_held++] = list;
}

/* Sleeps ms in short slices, telling JetStream the held messages are still
 * being worked on often enough that AckWait never hands them to another
 * instance (and never spends one of their deliveries). False once stopping. */
static bool
hold_wait(svc__worker *w, entry **es, size_t k, int64_t ms, int64_t *progress_us)
{
    int64_t every_us = atomic_load(&w->d->ack_wait_ms) * 1000 / 3;
    if (every_us < 20000)
        every_us = 20000;
    for (int64_t slept = 0; slept < ms; slept += 20) {
        if (atomic_load(&w->s->stop))
            return false;
        if (lb_mono_us() - *progress_us >= every_us) {
            hold_take_buffered(w);
            for (size_t i = 0; i < k; i++)
                natsMsg_InProgress(es[i]->m, NULL);
            for (int l = 0; l < w->n_held; l++)
                for (int i = 0; i < w->held[l].Count; i++)
                    natsMsg_InProgress(w->held[l].Msgs[i], NULL);
            *progress_us = lb_mono_us();
        }
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return !atomic_load(&w->s->stop);
}

/* Runs es[0..k) until it succeeds or fails for a reason of its own (invariant
 * 5): on a transient failure the batch is held (in progress, unacked), the
 * worker waits with backoff (50 ms doubling to 2 s), reconnects and runs it
 * again. Returns LB_OK, a non-transient failure, or the transient one when
 * the service stops while holding. */
static lb_status
run_held(svc__worker *w, run_fn run, entry **es, size_t k, lb_err *err)
{
    lb_status st = run(w, es, k, err);
    if (!failure_transient(st) || w->db == NULL)
        return st;
    metrics_add(w->s->m_db_waits, 1);
    log_warn(NULL, "svc.db_wait", "database unavailable; holding the batch until it is back",
             LOG_INT("size", k), LOG_ERR(err));
    int64_t delay_ms = 50, progress_us = lb_mono_us(), t0 = lb_mono_us();
    for (int attempt = 1; failure_transient(st); attempt++) {
        if (!hold_wait(w, es, k, delay_ms, &progress_us))
            return st;
        delay_ms = delay_ms * 2 > 2000 ? 2000 : delay_ms * 2;
        lb_err e2;
        if (store_ensure(w->db, &e2) != LB_OK) {
            if (attempt % 10 == 0)
                log_warn(NULL, "svc.db_wait", "database still unavailable", LOG_ERR(&e2));
            continue;
        }
        st = run(w, es, k, err);
    }
    log_info(NULL, "svc.db_back", "database available again; batch handled", LOG_INT("size", k),
             LOG_INT("held_ms", (lb_mono_us() - t0) / 1000));
    return st;
}

/* The service stops while holding messages the database could not take: hand
 * them back at once (one delivery spent, as for any stop mid-message). */
static void
entries_release(entry **es, size_t k)
{
    for (size_t i = 0; i < k; i++)
        natsMsg_Nak(es[i]->m, NULL);
}

/* Shows msgs[0..n) to the progress thread (n = 0: none); they stay the
 * worker's, and are cleared here before the caller destroys them. */
static void
inflight_set(svc__worker *w, natsMsg **msgs, size_t n)
{
    if (w->inflight == NULL)
        return;
    pthread_mutex_lock(&w->inflight->lock);
    w->inflight->msgs = n ? msgs : NULL;
    w->inflight->n = n;
    w->inflight->since_us = lb_mono_us();
    pthread_mutex_unlock(&w->inflight->lock);
}

void
svc__worker_batch(svc__worker *w, natsMsg **msgs, size_t n)
{
    int64_t t0 = lb_mono_us();
    inflight_set(w, msgs, n);
    entry stack_entries[128];
    entry *stack_ready[128];
    entry *es = n <= 128 ? stack_entries : calloc(n, sizeof *es);
    entry **ready = n <= 128 ? stack_ready : calloc(n, sizeof *ready);
    if (es == NULL || ready == NULL) {
        for (size_t i = 0; i < n; i++)
            natsMsg_NakWithDelay(msgs[i], w->s->cfg.nak_delay_ms, NULL);
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&es[i], 0, sizeof es[i]);
        es[i].m = msgs[i];
        entry_prepare(w, &es[i]);
        if (es[i].fate == ENTRY_DEAD)
            dead_letter(w, &es[i]);
        else if (es[i].fate == ENTRY_IGNORE)
            natsMsg_Ack(es[i].m, NULL);
        else
            ready[k++] = &es[i];
    }
    if (k > 0) {
        lb_err err;
        run_fn run = w->s->def->stateless ? run_stateless : run_tx;
        lb_status st = run_held(w, run, ready, k, &err);
        if (failure_transient(st) && w->db != NULL) {
            entries_release(ready, k);
        } else if (st != LB_OK) {
            /* One bad message must not hold back the others: retry alone. */
            metrics_add(w->s->m_retries, 1);
            if (k == 1) {
                entry_fail(w, ready[0], &err);
            } else {
                log_warn(NULL, "svc.batch_retry", "batch failed; retrying one by one",
                         LOG_INT("size", k), LOG_ERR(&err));
                for (size_t i = 0; i < k; i++) {
                    lb_err e1;
                    lb_status s1 = run_held(w, run, &ready[i], 1, &e1);
                    if (failure_transient(s1) && w->db != NULL)
                        entries_release(&ready[i], 1);
                    else if (s1 != LB_OK)
                        entry_fail(w, ready[i], &e1);
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (es[i].msg != NULL)
            protobuf_c_message_free_unpacked(es[i].msg, NULL);
    metrics_observe_us(w->s->m_batch, lb_mono_us() - t0);
out:
    inflight_set(w, NULL, 0);
    if (es != stack_entries)
        free(es);
    if (ready != stack_ready)
        free(ready);
}
