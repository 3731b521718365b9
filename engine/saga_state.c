/* saga_state.c - a saga's state: its invariants and its stored forms.
 *
 * The orchestrator keeps each saga as one row whose body is a packed
 * layby.v1.SagaState, and logs every input as a packed layby.v1.SagaInput so
 * the decider can re-run a saga's history. Packing round-trips exactly (every
 * field of saga_state, byte for byte in its strings), and unpacking refuses
 * anything out of range, so a damaged row is an error, never a wrong decision.
 */
#include "saga.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layby/v1/saga.pb-c.h"
#include "saga_internal.h"

/* --- invariants ------------------------------------------------------------------- */

typedef struct check {
    const saga_type *t;
    const saga_state *s;
    lb_err *err;
} check;

static bool
timer_is(const saga_state *s, saga_timer_kind kind, uint32_t step, uint32_t attempt)
{
    return s->has_timer && s->timer.kind == kind && s->timer.step == step &&
           s->timer.attempt == attempt;
}

static bool
done_or_skipped(const saga_step_state *ss)
{
    return ss->status == SAGA_STEP_DONE || ss->status == SAGA_STEP_SKIPPED;
}

/* Steps before the current one are DONE or SKIPPED (invariants 1 and 2); but
 * while an EARLY step is undone, the step that failed below it waits its
 * turn (R10). */
static lb_status
done_before(const check *k)
{
    const saga_state *s = k->s;
    bool early = s->status != SAGA_RUNNING &&
                 (s->steps[s->step].flags & (SAGA_STEP_F_EARLY | SAGA_STEP_F_AHEAD));
    for (uint32_t i = 0; i < s->step; i++)
        if (!done_or_skipped(&s->steps[i]) && !(early && s->steps[i].status == SAGA_STEP_FAILED &&
                                                !(s->steps[i].flags & SAGA_STEP_F_RETRY_WAIT)))
            return lb_err_set(k->err, LB_ERR_INVALID, "(1/2) step %u before current is %s", i,
                              saga_step_status_name(k->s->steps[i].status));
    return LB_OK;
}

/* Steps after the current one in a rolling-back saga (invariant 2). */
static lb_status
rolled_after(const check *k)
{
    for (uint32_t i = k->s->step + 1; i < k->t->n_steps; i++) {
        const saga_step_state *ss = &k->s->steps[i];
        if (ss->status == SAGA_STEP_SENT || ss->status == SAGA_STEP_COMPENSATING ||
            (ss->flags & SAGA_STEP_F_RETRY_WAIT) || saga__owes_compensation(k->t, k->s, i))
            return lb_err_set(k->err, LB_ERR_INVALID, "(2) step %u after current is %s", i,
                              saga_step_status_name(ss->status));
    }
    return LB_OK;
}

static lb_status
check_none(const check *k)
{
    (void)k;
    return LB_OK;
}

static lb_status
check_running(const check *k)
{
    const saga_state *s = k->s;
    const saga_step_state *cur = &s->steps[s->step];
    lb_status rc = done_before(k);
    if (rc != LB_OK)
        return rc;
    for (uint32_t i = s->step + 1; i < k->t->n_steps; i++) {
        const saga_step_state *ss = &s->steps[i];
        /* R12: only the next step, sent ahead with the current one's first attempt */
        bool ahead = i == s->step + 1 && k->t->steps[i].ahead && (ss->flags & SAGA_STEP_F_AHEAD) &&
                     ss->attempt == 1 && ss->tries == 1;
        if (ss->status != SAGA_STEP_PENDING || (ss->attempt != 0 && !ahead))
            return lb_err_set(k->err, LB_ERR_INVALID, "(1) step %u after current was started", i);
    }
    saga_timer_kind want =
        k->t->steps[s->step].kind == SAGA_STEP_DELAY ? SAGA_TIMER_DELAY : SAGA_TIMER_STEP_TIMEOUT;
    bool sent = cur->status == SAGA_STEP_SENT && !(cur->flags & SAGA_STEP_F_RETRY_WAIT) &&
                timer_is(s, want, s->step, cur->attempt);
    bool waiting = cur->status == SAGA_STEP_FAILED && (cur->flags & SAGA_STEP_F_RETRY_WAIT) &&
                   timer_is(s, SAGA_TIMER_STEP_RETRY, s->step, cur->attempt);
    if (!sent && !waiting)
        return lb_err_set(k->err, LB_ERR_INVALID, "(1) current step %u is %s without its timer",
                          s->step, saga_step_status_name(cur->status));
    return LB_OK;
}

static lb_status
check_compensating(const check *k)
{
    const saga_state *s = k->s;
    const saga_step_state *cur = &s->steps[s->step];
    lb_status rc = done_before(k);
    if (rc == LB_OK)
        rc = rolled_after(k);
    if (rc != LB_OK)
        return rc;
    bool sent = !(cur->flags & SAGA_STEP_F_RETRY_WAIT) &&
                timer_is(s, SAGA_TIMER_COMP_TIMEOUT, s->step, cur->comp_attempt);
    bool waiting = (cur->flags & SAGA_STEP_F_RETRY_WAIT) &&
                   timer_is(s, SAGA_TIMER_COMP_RETRY, s->step, cur->comp_attempt);
    if (cur->status != SAGA_STEP_COMPENSATING || k->t->steps[s->step].compensate == NULL ||
        (!sent && !waiting))
        return lb_err_set(k->err, LB_ERR_INVALID,
                          "(2) step %u being compensated is %s without its timer", s->step,
                          saga_step_status_name(cur->status));
    return LB_OK;
}

static lb_status
check_stuck(const check *k)
{
    const saga_state *s = k->s;
    const saga_step_state *cur = &s->steps[s->step];
    lb_status rc = done_before(k);
    if (rc == LB_OK)
        rc = rolled_after(k);
    if (rc != LB_OK)
        return rc;
    if (cur->status != SAGA_STEP_COMPENSATING || (cur->flags & SAGA_STEP_F_RETRY_WAIT) ||
        s->has_timer)
        return lb_err_set(k->err, LB_ERR_INVALID, "(3) STUCK at step %u which is %s", s->step,
                          saga_step_status_name(cur->status));
    return LB_OK;
}

static lb_status
check_completed(const check *k)
{
    for (uint32_t i = 0; i < k->t->n_steps; i++)
        if (!done_or_skipped(&k->s->steps[i]))
            return lb_err_set(k->err, LB_ERR_INVALID, "(4) COMPLETED with step %u %s", i,
                              saga_step_status_name(k->s->steps[i].status));
    return LB_OK;
}

static lb_status
check_failed(const check *k)
{
    for (uint32_t i = 0; i < k->t->n_steps; i++) {
        const saga_step_state *ss = &k->s->steps[i];
        if (ss->status == SAGA_STEP_SENT || ss->status == SAGA_STEP_COMPENSATING ||
            (ss->flags & SAGA_STEP_F_RETRY_WAIT) || saga__owes_compensation(k->t, k->s, i))
            return lb_err_set(k->err, LB_ERR_INVALID, "(4) %s with step %u %s",
                              saga_status_name(k->s->status), i, saga_step_status_name(ss->status));
    }
    return LB_OK;
}

static lb_status (*const status_checks[])(const check *k) = {
    [SAGA_NONE] = check_none,
    [SAGA_RUNNING] = check_running,
    [SAGA_COMPENSATING] = check_compensating,
    [SAGA_COMPLETED] = check_completed,
    [SAGA_FAILED] = check_failed,
    [SAGA_STUCK] = check_stuck,
    [SAGA_RESOLVED] = check_none,
    [SAGA_CANCELLED] = check_failed,
};
_Static_assert(LB_COUNTOF(status_checks) == SAGA__STATUS_COUNT, "status check table");

static bool
terminated(const char *buf, size_t n)
{
    return memchr(buf, '\0', n) != NULL;
}

/* Field ranges that hold whatever the status is. */
static lb_status
check_fields(const check *k)
{
    const saga_state *s = k->s;
    if ((unsigned)s->status >= SAGA__STATUS_COUNT)
        return lb_err_set(k->err, LB_ERR_INVALID, "status %d out of range", (int)s->status);
    if (!terminated(s->id, sizeof s->id) || !terminated(s->type, sizeof s->type) ||
        !terminated(s->reply_to, sizeof s->reply_to) || !terminated(s->actor, sizeof s->actor) ||
        !terminated(s->traceparent, sizeof s->traceparent) ||
        !terminated(s->fail_reason, sizeof s->fail_reason) ||
        !terminated(s->last_error, sizeof s->last_error) ||
        !terminated(s->resolved_by, sizeof s->resolved_by) ||
        !terminated(s->resolve_reason, sizeof s->resolve_reason) ||
        !terminated(s->signal, sizeof s->signal))
        return lb_err_set(k->err, LB_ERR_INVALID, "unterminated string");
    if ((unsigned)s->fail_code >= LB__STATUS_COUNT)
        return lb_err_set(k->err, LB_ERR_INVALID, "fail_code out of range");
    if (s->has_timer &&
        ((unsigned)s->timer.kind >= SAGA__TIMER_KIND_COUNT || s->timer.step != s->step))
        return lb_err_set(k->err, LB_ERR_INVALID, "(6) timer does not belong to the current step");
    if (s->status != SAGA_NONE && s->step >= k->t->n_steps)
        return lb_err_set(k->err, LB_ERR_INVALID, "step %u out of range", s->step);
    for (uint32_t i = 0; i < SAGA_STEPS_MAX; i++) {
        const saga_step_state *ss = &s->steps[i];
        if (ss->status >= SAGA__STEP_STATUS_COUNT ||
            (ss->flags & ~(SAGA_STEP_F_RETRY_WAIT | SAGA_STEP_F_UNCERTAIN | SAGA_STEP_F_EARLY |
                           SAGA_STEP_F_AHEAD | SAGA_STEP_F_REFUSED)) ||
            ss->early_code >= LB__STATUS_COUNT ||
            ((ss->flags & SAGA_STEP_F_REFUSED) && !(ss->flags & SAGA_STEP_F_AHEAD)))
            return lb_err_set(k->err, LB_ERR_INVALID, "step %u status or flags out of range", i);
        if (ss->tries > ss->attempt || ss->comp_tries > ss->comp_attempt ||
            (ss->status != SAGA_STEP_PENDING && ss->status != SAGA_STEP_SKIPPED &&
             ss->attempt == 0 && !(ss->flags & SAGA_STEP_F_EARLY) && s->status != SAGA_NONE))
            return lb_err_set(k->err, LB_ERR_INVALID, "(5) step %u attempt counters", i);
        if (i >= k->t->n_steps && (ss->status != SAGA_STEP_PENDING || ss->attempt != 0))
            return lb_err_set(k->err, LB_ERR_INVALID, "step %u is past the type's last step", i);
    }
    if (saga_status_terminal(s->status) && s->has_timer)
        return lb_err_set(k->err, LB_ERR_INVALID, "(4) a finished saga has a timer");
    if (s->record_len > SAGA_RECORD_MAX)
        return lb_err_set(k->err, LB_ERR_INVALID, "record length out of range");
    return LB_OK;
}

lb_status
saga_state_check(const saga_type *t, const saga_state *s, lb_err *err)
{
    if (t == NULL || s == NULL)
        return lb_err_set(err, LB_ERR_INVALID, "saga_state_check: missing argument");
    check k = { .t = t, .s = s, .err = err };
    lb_status rc = check_fields(&k);
    if (rc != LB_OK)
        return rc;
    return status_checks[s->status](&k);
}

/* --- SagaState ----------------------------------------------------------------------- */

lb_status
saga_state_pack(uint8_t **out, size_t *out_len, const saga_state *s, lb_err *err)
{
    if (out == NULL || out_len == NULL || s == NULL)
        return lb_err_set(err, LB_ERR_INVALID, "saga_state_pack: missing argument");
    Layby__V1__SagaState m = LAYBY__V1__SAGA_STATE__INIT;
    Layby__V1__SagaStepState steps[SAGA_STEPS_MAX];
    Layby__V1__SagaStepState *step_ptrs[SAGA_STEPS_MAX];
    Layby__V1__SagaTimer timer = LAYBY__V1__SAGA_TIMER__INIT;

    /* The strings are only read by pack; protobuf-c's struct is not const. */
    m.saga_id = (char *)s->id;
    m.type = (char *)s->type;
    m.version = s->version;
    m.reply_to = (char *)s->reply_to;
    m.actor = (char *)s->actor;
    m.traceparent = (char *)s->traceparent;
    m.created_ms = s->created_ms;
    m.updated_ms = s->updated_ms;
    m.status = (uint32_t)s->status;
    m.step = s->step;
    m.flags = s->flags;
    m.fail_code = (uint32_t)s->fail_code;
    m.fail_reason = (char *)s->fail_reason;
    m.last_error = (char *)s->last_error;
    m.resolved_by = (char *)s->resolved_by;
    m.resolve_reason = (char *)s->resolve_reason;
    m.signal = (char *)s->signal;
    size_t nd = SAGA_STEPS_MAX;
    while (nd > 0 && s->durations_ms[nd - 1] == 0)
        nd--;
    m.n_durations_ms = nd;
    m.durations_ms = (int64_t *)s->durations_ms;
    m.skip_mask = s->skip_mask;
    m.record.len = s->record_len;
    m.record.data = (uint8_t *)s->record;
    /* Trailing untouched steps are left out; unpack zero-fills them back. */
    size_t n = SAGA_STEPS_MAX;
    static const saga_step_state zero;
    while (n > 0 && memcmp(&s->steps[n - 1], &zero, sizeof zero) == 0)
        n--;
    for (size_t i = 0; i < n; i++) {
        layby__v1__saga_step_state__init(&steps[i]);
        steps[i].status = s->steps[i].status;
        steps[i].flags = s->steps[i].flags;
        steps[i].attempt = s->steps[i].attempt;
        steps[i].tries = s->steps[i].tries;
        steps[i].comp_attempt = s->steps[i].comp_attempt;
        steps[i].comp_tries = s->steps[i].comp_tries;
        steps[i].early_code = s->steps[i].early_code;
        step_ptrs[i] = &steps[i];
    }
    m.n_steps = n;
    m.steps = step_ptrs;
    if (s->has_timer) {
        timer.kind = (uint32_t)s->timer.kind;
        timer.step = s->timer.step;
        timer.attempt = s->timer.attempt;
        timer.due_ms = s->timer.due_ms;
        m.timer_present_case = LAYBY__V1__SAGA_STATE__TIMER_PRESENT_TIMER;
        m.timer = &timer;
    }
    size_t len = protobuf_c_message_get_packed_size(&m.base);
    uint8_t *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "saga_state_pack: out of memory");
    protobuf_c_message_pack(&m.base, buf);
    *out = buf;
    *out_len = len;
    return LB_OK;
}

/* Copies a decoded string into a fixed buffer; false when it does not fit. */
static bool
take_str(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    if (len >= n)
        return false;
    memcpy(dst, src, len + 1);
    return true;
}

static lb_status
state_from_pb(saga_state *s, const Layby__V1__SagaState *m, lb_err *err)
{
    memset(s, 0, sizeof *s);
    if (!take_str(s->id, sizeof s->id, m->saga_id) || !take_str(s->type, sizeof s->type, m->type) ||
        !take_str(s->reply_to, sizeof s->reply_to, m->reply_to) ||
        !take_str(s->actor, sizeof s->actor, m->actor) ||
        !take_str(s->traceparent, sizeof s->traceparent, m->traceparent) ||
        !take_str(s->fail_reason, sizeof s->fail_reason, m->fail_reason) ||
        !take_str(s->last_error, sizeof s->last_error, m->last_error) ||
        !take_str(s->resolved_by, sizeof s->resolved_by, m->resolved_by) ||
        !take_str(s->resolve_reason, sizeof s->resolve_reason, m->resolve_reason) ||
        !take_str(s->signal, sizeof s->signal, m->signal))
        return lb_err_set(err, LB_ERR_DECODE, "saga state: string too long");
    if (m->status >= SAGA__STATUS_COUNT || m->fail_code >= LB__STATUS_COUNT ||
        m->step >= SAGA_STEPS_MAX || m->n_steps > SAGA_STEPS_MAX ||
        m->n_durations_ms > SAGA_STEPS_MAX || m->record.len > SAGA_RECORD_MAX ||
        (uint64_t)m->skip_mask >> SAGA_STEPS_MAX != 0)
        return lb_err_set(err, LB_ERR_DECODE, "saga state: value out of range");
    for (size_t i = 0; i < m->n_durations_ms; i++)
        s->durations_ms[i] = m->durations_ms[i];
    s->skip_mask = m->skip_mask;
    s->record_len = (uint32_t)m->record.len;
    if (m->record.len > 0)
        memcpy(s->record, m->record.data, m->record.len);
    s->version = m->version;
    s->created_ms = m->created_ms;
    s->updated_ms = m->updated_ms;
    s->status = (saga_status)m->status;
    s->step = m->step;
    s->flags = m->flags;
    s->fail_code = (lb_status)m->fail_code;
    for (size_t i = 0; i < m->n_steps; i++) {
        const Layby__V1__SagaStepState *p = m->steps[i];
        if (p->status >= SAGA__STEP_STATUS_COUNT || p->flags > UINT8_MAX ||
            p->attempt > UINT16_MAX || p->tries > UINT16_MAX || p->comp_attempt > UINT16_MAX ||
            p->comp_tries > UINT16_MAX || p->early_code >= LB__STATUS_COUNT)
            return lb_err_set(err, LB_ERR_DECODE, "saga state: step %zu out of range", i);
        s->steps[i].status = (uint8_t)p->status;
        s->steps[i].flags = (uint8_t)p->flags;
        s->steps[i].attempt = (uint16_t)p->attempt;
        s->steps[i].tries = (uint16_t)p->tries;
        s->steps[i].comp_attempt = (uint16_t)p->comp_attempt;
        s->steps[i].comp_tries = (uint16_t)p->comp_tries;
        s->steps[i].early_code = (uint16_t)p->early_code;
    }
    if (m->timer_present_case == LAYBY__V1__SAGA_STATE__TIMER_PRESENT_TIMER) {
        if (m->timer->kind >= SAGA__TIMER_KIND_COUNT)
            return lb_err_set(err, LB_ERR_DECODE, "saga state: timer kind out of range");
        s->has_timer = true;
        s->timer.kind = (saga_timer_kind)m->timer->kind;
        s->timer.step = m->timer->step;
        s->timer.attempt = m->timer->attempt;
        s->timer.due_ms = m->timer->due_ms;
    }
    return LB_OK;
}

lb_status
saga_state_unpack(saga_state *out, const uint8_t *buf, size_t len, lb_err *err)
{
    if (out == NULL || (buf == NULL && len > 0))
        return lb_err_set(err, LB_ERR_INVALID, "saga_state_unpack: missing argument");
    Layby__V1__SagaState *m = layby__v1__saga_state__unpack(NULL, len, buf);
    if (m == NULL)
        return lb_err_set(err, LB_ERR_DECODE, "saga state: not a layby.v1.SagaState");
    saga_state s;
    lb_status rc = state_from_pb(&s, m, err);
    layby__v1__saga_state__free_unpacked(m, NULL);
    if (rc == LB_OK)
        memcpy(out, &s, sizeof s);
    return rc;
}

/* --- SagaInput ------------------------------------------------------------------------ */

static char *
str_or_empty(const char *s)
{
    return (char *)(s != NULL ? s : "");
}

lb_status
saga_input_pack(uint8_t **out, size_t *out_len, const saga_input *in, lb_err *err)
{
    if (out == NULL || out_len == NULL || in == NULL)
        return lb_err_set(err, LB_ERR_INVALID, "saga_input_pack: missing argument");
    Layby__V1__SagaInput m = LAYBY__V1__SAGA_INPUT__INIT;
    m.kind = (uint32_t)in->kind;
    m.now_ms = in->now_ms;
    m.seed = in->seed;
    m.msg_id = str_or_empty(in->msg_id);
    m.saga_id = str_or_empty(in->saga_id);
    m.reply_to = str_or_empty(in->reply_to);
    m.actor = str_or_empty(in->actor);
    m.traceparent = str_or_empty(in->traceparent);
    m.event_type = str_or_empty(in->event != NULL ? in->event->name : NULL);
    m.step = in->step;
    m.attempt = in->attempt;
    m.final = in->final;
    m.code = (uint32_t)in->code;
    m.reason = str_or_empty(in->reason);
    m.timer = (uint32_t)in->timer;
    m.signal = str_or_empty(in->signal);
    if (in->durations_ms != NULL) {
        if (in->n_durations > SAGA_STEPS_MAX)
            return lb_err_set(err, LB_ERR_INVALID, "saga_input_pack: too many durations");
        m.n_durations_ms = in->n_durations;
        m.durations_ms = (int64_t *)in->durations_ms;
    }
    m.skip_mask = in->skip_mask;
    if (in->body_len > SAGA_BODY_MAX)
        return lb_err_set(err, LB_ERR_INVALID, "saga_input_pack: event body of %zu bytes",
                          in->body_len);
    m.body.len = in->body_len;
    m.body.data = (uint8_t *)in->body;
    size_t len = protobuf_c_message_get_packed_size(&m.base);
    uint8_t *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "saga_input_pack: out of memory");
    protobuf_c_message_pack(&m.base, buf);
    *out = buf;
    *out_len = len;
    return LB_OK;
}

static lb_status
input_from_pb(saga_input_rec *r, const saga_type *t, const Layby__V1__SagaInput *m, lb_err *err)
{
    memset(r, 0, sizeof *r);
    if (!take_str(r->msg_id, sizeof r->msg_id, m->msg_id) ||
        !take_str(r->saga_id, sizeof r->saga_id, m->saga_id) ||
        !take_str(r->reply_to, sizeof r->reply_to, m->reply_to) ||
        !take_str(r->actor, sizeof r->actor, m->actor) ||
        !take_str(r->traceparent, sizeof r->traceparent, m->traceparent) ||
        !take_str(r->reason, sizeof r->reason, m->reason) ||
        !take_str(r->signal, sizeof r->signal, m->signal))
        return lb_err_set(err, LB_ERR_DECODE, "saga input: string too long");
    if (m->kind >= SAGA__INPUT_KIND_COUNT || m->timer >= SAGA__TIMER_KIND_COUNT ||
        m->code >= LB__STATUS_COUNT || m->n_durations_ms > SAGA_STEPS_MAX ||
        m->body.len > SAGA_BODY_MAX || (uint64_t)m->skip_mask >> SAGA_STEPS_MAX != 0)
        return lb_err_set(err, LB_ERR_DECODE, "saga input: value out of range");
    saga_input *in = &r->in;
    if (m->event_type[0] != '\0') {
        in->event = saga__event_find(t, m->event_type);
        if (in->event == NULL)
            return lb_err_set(err, LB_ERR_DECODE, "saga input: %s is no event of %s v%u",
                              m->event_type, t->name, t->version);
    }
    in->kind = (saga_input_kind)m->kind;
    in->now_ms = m->now_ms;
    in->seed = m->seed;
    in->msg_id = r->msg_id;
    in->saga_id = r->saga_id;
    in->reply_to = r->reply_to;
    in->actor = r->actor;
    in->traceparent = r->traceparent;
    in->step = m->step;
    in->attempt = m->attempt;
    in->final = m->final;
    in->code = (lb_status)m->code;
    in->reason = r->reason;
    in->timer = (saga_timer_kind)m->timer;
    in->signal = r->signal;
    if (m->n_durations_ms > 0) {
        memcpy(r->durations_ms, m->durations_ms, m->n_durations_ms * sizeof *m->durations_ms);
        in->durations_ms = r->durations_ms;
        in->n_durations = m->n_durations_ms;
    }
    in->skip_mask = m->skip_mask;
    if (m->body.len > 0) {
        memcpy(r->body, m->body.data, m->body.len);
        in->body = r->body;
        in->body_len = m->body.len;
    }
    return LB_OK;
}

lb_status
saga_input_unpack(saga_input_rec *out, const saga_type *t, const uint8_t *buf, size_t len,
                  lb_err *err)
{
    if (out == NULL || t == NULL || (buf == NULL && len > 0))
        return lb_err_set(err, LB_ERR_INVALID, "saga_input_unpack: missing argument");
    Layby__V1__SagaInput *m = layby__v1__saga_input__unpack(NULL, len, buf);
    if (m == NULL)
        return lb_err_set(err, LB_ERR_DECODE, "saga input: not a layby.v1.SagaInput");
    lb_status rc = input_from_pb(out, t, m, err);
    layby__v1__saga_input__free_unpacked(m, NULL);
    return rc;
}
