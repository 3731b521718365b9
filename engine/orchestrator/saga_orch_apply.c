/* saga_orch_apply.c - one batch of saga inputs: lock, decide, persist.
 *
 * Invariants:
 * (1) A saga's row is locked (FOR UPDATE) from before its state is read until
 *     its new state commits, so two orchestrators never advance one saga at once.
 *     Rows are locked in saga id order in one statement: batches that share
 *     sagas wait for each other instead of deadlocking.
 * (2) The new state, its timer (a column of the same row), a log row for every
 *     input, the commands and events (outbox) and the inbox ids of the messages
 *     commit in one transaction; replies leave only after it committed.
 * (3) Inputs for one saga are decided in arrival order; the decider makes
 *     duplicated and reordered inputs converge (saga_decide.c R1-R7).
 * (4) A saga exists once. (1) cannot lock a row that does not exist yet, so
 *     two orchestrators may both decide the START of one new id (two messages,
 *     two ids); the new row is a plain INSERT (saga_write), so the second waits
 *     for the first and fails on the key: its batch rolls back, and the svc
 *     runtime retries its messages (alone), which now lock the row and decide
 *     a repeated START: IGNORED, answered with the first saga's outcome.
 *
 * CRASH POINT svc.after_commit (engine/fault.h): the decision is stored but
 * the inputs are not acked. Redelivery hits the inbox and is skipped; the
 * outbox relay publishes the commands, which participants take once per
 * (saga, step). */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "engine/codec.h"
#include "engine/log.h"
#include "engine/metrics.h"
#include "saga_orch.h"

typedef struct slot {
    char id[ID_STR_LEN];
    bool exists;  /* a row exists, or a START created the saga in this batch */
    bool stored;  /* the row existed when locked: UPDATE it, else INSERT it */
    bool changed; /* state must be written */
    saga_state state;
    const saga_type *t;
    /* the start command: raw bytes and type for the row, decoded for builders */
    const char *start_type;
    uint8_t *start_buf;
    size_t start_len;
    ProtobufCMessage *start; /* owned unless start_borrowed */
    bool start_borrowed;
} slot;

/* Everything this batch writes, as array parameters. */
typedef struct batch_out {
    store_array s_id, s_type, s_ver, s_status, s_state, s_stt, s_start, s_due, s_cr, s_up, s_fresh,
        s_corr;
    store_array l_id, l_at, l_msg, l_kind, l_in, l_verdict, l_from, l_to, l_line;
    store_array s_fin; /* the saga row's status is a finished one */
    size_t n_sagas, n_logs;
} batch_out;

#define SAGA_ARRAYS(o)                                                                 \
    &(o)->s_id, &(o)->s_type, &(o)->s_ver, &(o)->s_status, &(o)->s_state, &(o)->s_stt, \
        &(o)->s_start, &(o)->s_due, &(o)->s_cr, &(o)->s_up, &(o)->s_fresh, &(o)->s_corr
#define LOG_ARRAYS(o)                                                                             \
    &(o)->l_id, &(o)->l_at, &(o)->l_msg, &(o)->l_kind, &(o)->l_in, &(o)->l_verdict, &(o)->l_from, \
        &(o)->l_to, &(o)->l_line
/* saga_write's parameters in order: $1-$12, $13-$21, $22. */
#define WRITE_ARRAYS(o) SAGA_ARRAYS(o), LOG_ARRAYS(o), &(o)->s_fin

static int
slot_cmp(const void *a, const void *b)
{
    return strcmp(((const slot *)a)->id, ((const slot *)b)->id);
}

static slot *
slot_find(slot *slots, size_t n, const char *id)
{
    slot key;
    memcpy(key.id, id, ID_STR_LEN);
    return bsearch(&key, slots, n, sizeof *slots, slot_cmp);
}

static const char *const verdict_names[] = {
    [SAGA_APPLIED] = "APPLIED",
    [SAGA_IGNORED] = "IGNORED",
    [SAGA_REFUSED] = "REFUSED",
};

/* Locks the rows of sagas ids[0..n) (sorted: batches sharing sagas wait for
 * each other instead of deadlocking). With ticket, the statement is only sent
 * and *out stays NULL; otherwise *out is the result. */
static lb_status
lock_rows(store *db, const char (*ids)[ID_STR_LEN], size_t n, int *ticket, PGresult **out,
          lb_err *err)
{
    store_array a = { 0 };
    store_array_begin(&a);
    for (size_t i = 0; i < n; i++)
        store_array_text(&a, ids[i]);
    store_array_end(&a);
    if (a.oom) {
        store_array_free(&a);
        return lb_err_set(err, LB_ERR_NOMEM, "saga ids");
    }
    const char *p[] = { a.p };
    lb_status s = ticket != NULL ? store_send(db, ticket, "saga_lock", 1, p, 1, err)
                                 : store_exec_bin(db, out, "saga_lock", 1, p, NULL, NULL, 1, err);
    store_array_free(&a);
    return s;
}

lb_status
saga_orch_lock_send(svc_batch *b, const char (*ids)[ID_STR_LEN], size_t n, lb_err *err)
{
    int ticket = -1;
    lb_status s = lock_rows(svc_batch_store(b), ids, n, &ticket, NULL, err);
    if (s == LB_OK)
        svc_batch_prefetch_set(b, ticket);
    return s;
}

/* Fills sl from a stored row: its state, and its start command (type name,
 * and the raw bytes in start, which sl takes whatever happens: the memory
 * keeps them once the row is written). */
static lb_status
slot_fill(slot *sl, const uint8_t *state, size_t state_len, const char *start_type, uint8_t *start,
          size_t start_len, lb_err *err)
{
    sl->start_buf = start;
    lb_status s = saga_state_unpack(&sl->state, state, state_len, err);
    if (s != LB_OK)
        return s;
    if ((s = saga_registry_for(&sl->t, saga_orch_registry(), &sl->state, err)) != LB_OK)
        return s;
    const ProtobufCMessageDescriptor *d = codec_type_find(start_type);
    if (d == NULL)
        return lb_err_set(err, LB_ERR_DECODE, "saga %s: unknown start type %s", sl->id, start_type);
    if ((s = codec_unpack(&sl->start, d, start, start_len, err)) != LB_OK)
        return s;
    sl->start_len = start_len;
    sl->start_type = d->name;
    sl->exists = true;
    sl->stored = true;
    return LB_OK;
}

/* Loads and locks the rows of every saga named; unknown ones stay !exists.
 * The rows come from the batch's prefetch when it ran (saga_orch_prefetch():
 * same lock, one round trip fewer), else from a lock statement now. */
static lb_status
load(svc_batch *b, slot *slots, size_t n, lb_err *err)
{
    store *db = svc_batch_store(b);
    int ticket = svc_batch_prefetched(b);
    PGresult *r = ticket >= 0 ? store_take(db, ticket) : NULL;
    lb_status s = LB_OK;
    if (r == NULL) {
        char(*ids)[ID_STR_LEN] = malloc((n ? n : 1) * ID_STR_LEN);
        if (ids == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "saga ids");
        for (size_t i = 0; i < n; i++)
            memcpy(ids[i], slots[i].id, ID_STR_LEN);
        s = lock_rows(db, (const char(*)[ID_STR_LEN])ids, n, NULL, &r, err);
        free(ids);
        if (s != LB_OK)
            return s;
    }
    for (int row = 0; row < PQntuples(r) && s == LB_OK; row++) {
        slot *sl = slot_find(slots, n, PQgetvalue(r, row, 0));
        if (sl == NULL)
            continue;
        size_t len = (size_t)PQgetlength(r, row, 3);
        uint8_t *start = malloc(len ? len : 1);
        if (start == NULL) {
            s = lb_err_set(err, LB_ERR_NOMEM, "start copy");
            break;
        }
        memcpy(start, PQgetvalue(r, row, 3), len);
        s = slot_fill(sl, (const uint8_t *)PQgetvalue(r, row, 1), (size_t)PQgetlength(r, row, 1),
                      PQgetvalue(r, row, 2), start, len, err);
    }
    PQclear(r);
    return s;
}

/* A speculative batch (svc.h svc_speculate_fn): the rows as this orchestrator
 * last wrote them (saga_orch_mem.c) instead of a read, and saga_unchanged sent
 * ahead of the batch's writes, which locks them as load() would and fails the
 * transaction if any of them moved since. A saga not remembered stays
 * !exists: a START then inserts it (and fails on the key if it was there
 * after all); any other input for it fails the speculation (check_remembered()). */
static lb_status
load_remembered(svc_batch *b, slot *slots, size_t n, lb_err *err)
{
    store_array ids = { 0 }, states = { 0 }, statuses = { 0 };
    store_array *arrays[] = { &ids, &states, &statuses };
    for (size_t i = 0; i < LB_COUNTOF(arrays); i++)
        store_array_begin(arrays[i]);
    size_t held = 0;
    lb_status s = LB_OK;
    for (size_t i = 0; i < n && s == LB_OK; i++) {
        saga_mem_row r;
        bool found = false;
        if ((s = saga_orch_mem_get(slots[i].id, &r, &found, err)) != LB_OK || !found)
            continue;
        s = slot_fill(&slots[i], r.state, r.state_len, r.start_type, r.start, r.start_len, err);
        r.start = NULL; /* the slot's now */
        store_array_text(&ids, slots[i].id);
        store_array_bytea(&states, r.state, r.state_len);
        store_array_text(&statuses, saga_status_name(r.status));
        held++;
        saga_orch_mem_row_free(&r);
    }
    const char *p[LB_COUNTOF(arrays)];
    if (!store_arrays_end(arrays, LB_COUNTOF(arrays), p) && s == LB_OK)
        s = lb_err_set(err, LB_ERR_NOMEM, "remembered rows");
    if (s == LB_OK && held > 0)
        s = store_exec(svc_batch_store(b), NULL, "saga_unchanged", (int)LB_COUNTOF(arrays), p, err);
    for (size_t i = 0; i < LB_COUNTOF(arrays); i++)
        store_array_free(arrays[i]);
    return s;
}

/* A speculative batch decides only inputs whose saga was remembered, or that
 * start one: anything else needs the row read. */
static lb_status
check_remembered(const saga_orch_input *ins, size_t n, slot *slots, size_t ns, lb_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (ins[i].in.kind != SAGA_IN_START && !slot_find(slots, ns, ins[i].saga_id)->exists)
            return lb_err_set(err, LB_ERR_STATE, "saga %s is not remembered", ins[i].saga_id);
    return LB_OK;
}

/* Envelope of something the saga sends: correlation = the saga's flow
 * (saga_correlation(): the order id for both order sagas), and the actor and
 * trace of the flow that started it. */
static void
saga_envelope(bus_envelope *env, const ProtobufCMessageDescriptor *d, const slot *sl,
              const svc_item *cause)
{
    const saga_state *s = &sl->state;
    bus_envelope_init(env, d, cause != NULL ? cause->env : NULL);
    snprintf(env->correlation, sizeof env->correlation, "%s",
             saga_correlation(sl->t, s->id, sl->start));
    snprintf(env->actor, sizeof env->actor, "%s", s->actor);
    snprintf(env->traceparent, sizeof env->traceparent, "%s", s->traceparent);
    env->reply[0] = '\0';
}

static lb_status
send_reply(svc_batch *b, const saga_orch_input *oi, const slot *sl, const saga_reply *rep,
           lb_err *err)
{
    const char *to = rep->to_sender ? (oi->item ? oi->item->env->reply : "") : sl->state.reply_to;
    if (to == NULL || to[0] == '\0')
        return LB_OK; /* nobody waits (any more): nothing to do, nothing breaks */
    ProtobufCMessage *m = NULL;
    lb_status s = rep->status == LB_OK ? saga_orch_msg_outcome(&m, sl->t, &sl->state, err)
                                       : saga_orch_msg_failure(&m, rep->status, rep->reason, err);
    if (s != LB_OK)
        return s;
    bus_envelope env;
    saga_envelope(&env, m->descriptor, sl, oi->item);
    s = svc_reply(b, to, &env, m, err);
    protobuf_c_message_free_unpacked(m, NULL);
    return s;
}

/* Turns a decision into messages: step commands, a SagaChanged, a reply. */
static lb_status
effects(svc_batch *b, const saga_orch_input *oi, slot *sl, const saga_decision *d, lb_err *err)
{
    lb_status s = LB_OK;
    for (size_t i = 0; i < d->n_cmds && s == LB_OK; i++) {
        ProtobufCMessage *cmd = NULL;
        if ((s = saga_cmd_build(&cmd, sl->t, &sl->state, &d->cmds[i], sl->start, err)) != LB_OK)
            break;
        bus_envelope env;
        saga_envelope(&env, cmd->descriptor, sl, oi->item);
        /* An answering step (saga.h): its participant answers the requester
         * directly, one hop before this saga's reply would. */
        if (!d->cmds[i].compensate && sl->t->steps[d->cmds[i].step].answers &&
            !(sl->state.flags & SAGA_F_REPLIED))
            snprintf(env.reply, sizeof env.reply, "%s", sl->state.reply_to);
        s = svc_emit(b, d->cmds[i].subject, &env, cmd, err);
        protobuf_c_message_free_unpacked(cmd, NULL);
    }
    if (s == LB_OK && d->verdict == SAGA_APPLIED && d->from != d->to) {
        ProtobufCMessage *ev = NULL;
        bool by_someone = oi->in.kind == SAGA_IN_RETRY || oi->in.kind == SAGA_IN_RESOLVE ||
                          oi->in.kind == SAGA_IN_SIGNAL;
        const char *actor = by_someone && oi->in.actor != NULL ? oi->in.actor : "";
        if ((s = saga_orch_msg_changed(&ev, sl->t, &sl->state, d->from, actor, err)) == LB_OK) {
            bus_envelope env;
            saga_envelope(&env, ev->descriptor, sl, oi->item);
            s = svc_emit(b, saga_status_subject(d->to), &env, ev, err);
            protobuf_c_message_free_unpacked(ev, NULL);
        }
    }
    if (s == LB_OK && d->reply.send)
        s = send_reply(b, oi, sl, &d->reply, err);
    if (s == LB_OK && d->forward_retry) {
        /* R11: a step past its retry budget is retried, not undone; somebody
         * should know a participant has been away that long. Counted when
         * decided, so a batch that rolls back and runs again counts twice. */
        log_warn(&(log_ctx){ .correlation = sl->id }, "saga.forward_retry",
                 "a forward step is retried past its retry budget", LOG_STR("type", sl->t->name),
                 LOG_STR("step", sl->t->steps[sl->state.step].name),
                 LOG_INT("attempt", (int64_t)sl->state.steps[sl->state.step].attempt));
        metrics_add(metrics_counter("layby_saga_forward_retries_total", "",
                                    "retries of forward saga steps past their retry budget"),
                    1);
    }
    return s;
}

static lb_status
log_row(batch_out *o, const saga_orch_input *oi, const slot *sl, const saga_decision *d,
        lb_err *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    lb_status s = saga_input_pack(&buf, &len, &oi->in, err);
    if (s != LB_OK)
        return s;
    store_array_text(&o->l_id, sl->id);
    store_array_int(&o->l_at, oi->in.now_ms);
    store_array_text(&o->l_msg, oi->in.msg_id ? oi->in.msg_id : "");
    store_array_text(&o->l_kind, saga_input_kind_name(oi->in.kind));
    store_array_bytea(&o->l_in, buf, len);
    store_array_text(&o->l_verdict, verdict_names[d->verdict]);
    store_array_text(&o->l_from, saga_status_name(d->from));
    store_array_text(&o->l_to, saga_status_name(d->to));
    store_array_text(&o->l_line, d->log);
    free(buf);
    o->n_logs++;
    return LB_OK;
}

/* The slot's new row into o's arrays, and into *mb to be remembered once the
 * transaction commits (its packed state, and the start's bytes, taken). */
static lb_status
saga_row(batch_out *o, slot *sl, saga_mem_batch **mb, lb_err *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    lb_status s = saga_state_pack(&buf, &len, &sl->state, err);
    if (s != LB_OK)
        return s;
    store_array_text(&o->s_id, sl->id);
    store_array_text(&o->s_type, sl->state.type);
    store_array_int(&o->s_ver, sl->state.version);
    store_array_text(&o->s_status, saga_status_name(sl->state.status));
    store_array_bytea(&o->s_state, buf, len);
    store_array_text(&o->s_stt, sl->start_type);
    /* Only an INSERT writes the start (it never changes). */
    store_array_bytea(&o->s_start, sl->stored ? (const uint8_t *)"" : sl->start_buf,
                      sl->stored ? 0 : sl->start_len);
    if (sl->state.has_timer)
        store_array_int(&o->s_due, sl->state.timer.due_ms);
    else
        store_array_null(&o->s_due);
    store_array_int(&o->s_cr, sl->state.created_ms);
    store_array_int(&o->s_up, sl->state.updated_ms);
    store_array_text(&o->s_fresh, sl->stored ? "f" : "t");
    store_array_text(&o->s_fin, saga_status_terminal(sl->state.status) ? "t" : "f");
    /* NULL when it is the saga's own id: only sagas of another's flow (a pay
     * saga: the order's) are in the column's partial index. */
    const char *corr = saga_correlation(sl->t, sl->id, sl->start);
    if (corr == sl->id)
        store_array_null(&o->s_corr);
    else
        store_array_text(&o->s_corr, corr);
    o->n_sagas++;
    saga_mem_row r = { .status = sl->state.status,
                       .start_type = sl->start_type,
                       .state = buf,
                       .state_len = len,
                       .start = sl->start_buf,
                       .start_len = sl->start_len };
    sl->start_buf = NULL;
    return saga_orch_mem_batch_add(mb, sl->id, &r, err);
}

/* Fills the kind-specific part of an input once its saga is known. */
static lb_status
input_complete(saga_orch_input *oi, const slot *sl, lb_err *err)
{
    if (oi->in.kind == SAGA_IN_EVENT) {
        int64_t now = oi->in.now_ms;
        uint64_t seed = oi->in.seed;
        const char *msg_id = oi->in.msg_id;
        lb_status s = saga_event_read(&oi->in, sl->t, oi->event, err);
        oi->in.now_ms = now;
        oi->in.seed = seed;
        oi->in.msg_id = msg_id;
        return s;
    }
    if (oi->in.kind == SAGA_IN_TIMER && oi->item == NULL) {
        /* A tick fires whatever timer the locked row holds now. */
        if (!sl->state.has_timer)
            return lb_err_set(err, LB_ERR_STATE, "no timer pending");
        oi->in.timer = sl->state.timer.kind;
        oi->in.step = sl->state.timer.step;
        oi->in.attempt = sl->state.timer.attempt;
    }
    return LB_OK;
}

static lb_status
decide_one(svc_batch *b, batch_out *o, saga_orch_input *oi, slot *sl, lb_err *err)
{
    const saga_type *t = sl->exists ? sl->t : oi->start_type;
    if (t == NULL) {
        /* An event or operator command for a saga that does not exist (pruned,
         * or never started): refuse it to a waiting operator, drop it otherwise. */
        if (oi->item != NULL && oi->item->env->reply[0] != '\0') {
            ProtobufCMessage *m = NULL;
            lb_status s = saga_orch_msg_failure(&m, LB_ERR_NOT_FOUND, "no such saga", err);
            if (s != LB_OK)
                return s;
            bus_envelope env;
            bus_envelope_init(&env, m->descriptor, oi->item->env);
            s = svc_reply(b, oi->item->env->reply, &env, m, err);
            protobuf_c_message_free_unpacked(m, NULL);
            return s;
        }
        log_info(&(log_ctx){ .correlation = oi->saga_id }, "saga.unknown",
                 "input for a saga that does not exist",
                 LOG_STR("input", saga_input_kind_name(oi->in.kind)));
        return LB_OK;
    }
    if (!sl->exists) {
        sl->t = t;
        sl->start = (ProtobufCMessage *)oi->item->msg;
        sl->start_borrowed = true;
        sl->start_type = oi->item->msg->descriptor->name;
        sl->start_len = protobuf_c_message_get_packed_size(sl->start);
        if ((sl->start_buf = malloc(sl->start_len ? sl->start_len : 1)) == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "start copy");
        protobuf_c_message_pack(sl->start, sl->start_buf);
    }
    lb_err why;
    if (input_complete(oi, sl, &why) != LB_OK) {
        log_warn(&(log_ctx){ .correlation = sl->id }, "saga.input_ignored",
                 "input does not fit the saga", LOG_ERR(&why));
        return LB_OK;
    }
    /* What the decider needs besides the message: the durations a new saga
     * keeps (read from settings now) and the steps it skips, the body of an event a step merges
     * into the record. Both are logged with the input, so replay needs
     * neither settings nor the stream. */
    int64_t durations[SAGA_STEPS_MAX];
    uint8_t *body = NULL;
    lb_status s = LB_OK;
    if (oi->in.kind == SAGA_IN_START && !sl->exists) {
        saga_durations_read(durations, sl->t);
        oi->in.durations_ms = durations;
        oi->in.n_durations = sl->t->n_steps;
        oi->in.skip_mask = saga_skips_read(sl->t, sl->start);
    }
    if (oi->in.kind == SAGA_IN_EVENT && saga_step_merges(sl->t, oi->in.step)) {
        size_t len = protobuf_c_message_get_packed_size(oi->event);
        if (len > SAGA_BODY_MAX)
            return lb_err_set(err, LB_ERR_INVALID, "saga %s: %s of %zu bytes is too large to merge",
                              sl->id, oi->event->descriptor->name, len);
        if ((body = malloc(len ? len : 1)) == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "event body");
        oi->in.body_len = protobuf_c_message_pack(oi->event, body);
        oi->in.body = body;
    }
    saga_decision d;
    s = saga_decide(&sl->state, &d, sl->t, sl->exists ? &sl->state : NULL, &oi->in, err);
    if (s != LB_OK)
        goto out;
    if (d.verdict == SAGA_APPLIED) {
        sl->changed = true;
        sl->exists = true;
    }
    if (!sl->exists)
        goto out; /* a START refused before the saga existed: nothing to log against */
    if ((s = effects(b, oi, sl, &d, err)) == LB_OK)
        s = log_row(o, oi, sl, &d, err);
out:
    oi->in.durations_ms = NULL;
    oi->in.n_durations = 0;
    oi->in.skip_mask = 0;
    oi->in.body = NULL;
    oi->in.body_len = 0;
    free(body);
    return s;
}

static lb_status
write_all(svc_batch *b, batch_out *o, slot *slots, size_t n, lb_err *err)
{
    lb_status s = LB_OK;
    saga_mem_batch *mb = NULL;
    for (size_t i = 0; i < n && s == LB_OK; i++)
        if (slots[i].changed)
            s = saga_row(o, &slots[i], &mb, err);
    if (mb != NULL) {
        lb_err e2;
        lb_status s2 = svc_batch_on_commit(b, saga_orch_mem_batch_commit, mb, &e2);
        if (s == LB_OK && s2 != LB_OK) {
            *err = e2;
            s = s2;
        }
    }
    if (s != LB_OK)
        return s;
    store_array *arrays[] = { WRITE_ARRAYS(o) };
    const char *p[LB_COUNTOF(arrays)];
    if (!store_arrays_end(arrays, LB_COUNTOF(arrays), p))
        return lb_err_set(err, LB_ERR_NOMEM, "saga arrays");
    if (o->n_sagas > 0 || o->n_logs > 0)
        s = store_exec(svc_batch_store(b), NULL, "saga_write", (int)LB_COUNTOF(arrays), p, err);
    return s;
}

lb_status
saga_orch_apply(svc_batch *b, saga_orch_input *ins, size_t n, lb_err *err)
{
    if (n == 0)
        return LB_OK;
    slot *slots = calloc(n, sizeof *slots);
    batch_out *o = calloc(1, sizeof *o);
    lb_status s = LB_OK;
    size_t ns = 0;
    if (slots == NULL || o == NULL) {
        s = lb_err_set(err, LB_ERR_NOMEM, "saga slots");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(slots[i].id, ins[i].saga_id, ID_STR_LEN);
    qsort(slots, n, sizeof *slots, slot_cmp);
    for (size_t i = 0; i < n; i++)
        if (ns == 0 || strcmp(slots[ns - 1].id, slots[i].id) != 0)
            slots[ns++] = slots[i];
    {
        store_array *arrays[] = { WRITE_ARRAYS(o) };
        for (size_t i = 0; i < LB_COUNTOF(arrays); i++)
            store_array_begin(arrays[i]);
    }
    if (svc_batch_speculative(b))
        s = load_remembered(b, slots, ns, err);
    else
        s = load(b, slots, ns, err);
    if (s == LB_OK && svc_batch_speculative(b))
        s = check_remembered(ins, n, slots, ns, err);
    if (s != LB_OK)
        goto out;
    for (size_t i = 0; i < n && s == LB_OK; i++) {
        slot *sl = slot_find(slots, ns, ins[i].saga_id);
        uint64_t seed;
        randombytes_buf(&seed, sizeof seed);
        ins[i].in.seed = seed;
        s = decide_one(b, o, &ins[i], sl, err);
    }
    if (s == LB_OK)
        s = write_all(b, o, slots, ns, err);
out:
    if (o != NULL) {
        store_array *arrays[] = { WRITE_ARRAYS(o) };
        for (size_t i = 0; i < LB_COUNTOF(arrays); i++)
            store_array_free(arrays[i]);
        free(o);
    }
    for (size_t i = 0; slots != NULL && i < ns; i++) {
        if (slots[i].start != NULL && !slots[i].start_borrowed)
            protobuf_c_message_free_unpacked(slots[i].start, NULL);
        free(slots[i].start_buf);
    }
    free(slots);
    return s;
}
