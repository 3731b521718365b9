/* saga_decide.c - the pure saga decider: (type, state, input) -> (state, decision).
 *
 * Everything that makes a saga hard to get right lives here, away from I/O:
 * retries, timeouts, compensation in reverse order, STUCK, operator repairs,
 * and what to do with inputs that arrive twice, late or out of order. The
 * orchestrator only persists what this file decides, so the rules can be
 * tested exhaustively and a saga's log can be replayed to the same decisions.
 *
 * DESIGN. Each input kind has one handler, each event kind one handler (found
 * by comparing the event's descriptor with the step row's), each timer kind
 * one handler. Rules that make duplicated and reordered inputs converge:
 * (R1) A saga has at most one pending timer; a timer input is acted on only if
 *      it equals it (kind, step, attempt). Any other firing is stale.
 * (R2) A success for the current step counts whatever attempt it answers
 *      (participants are idempotent per saga and step: every attempt has the
 *      same outcome), unless that attempt was never sent.
 * (R3) A transient failure counts only for the attempt in flight; one for an
 *      older attempt was already counted when its timeout superseded it. A
 *      final failure counts for any attempt sent (same outcome for all).
 * (R4) Events for steps other than the current one, of the wrong direction
 *      (forward while compensating, or the reverse), or for a finished saga
 *      change nothing.
 * (R5) A step that failed without a final answer (timeouts, transient
 *      failures) may have taken effect, so it is compensated too; a
 *      compensation of something never done must be a no-op (docs/SAGAS.md).
 * (R6) A late compensation success for the step a STUCK saga stopped at
 *      counts: the saga goes on compensating by itself.
 * (R7) The requester gets one reply: when a step marked `reply` is done, when
 *      the saga completes, or when compensation starts (the business outcome
 *      is known then; the rollback continues in the background).
 */
#include "saga.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One decision in progress. */
typedef struct ctx {
    const saga_type *t;
    saga_state *s; /* the new state, a copy of the old one being edited */
    saga_decision *d;
    const saga_input *in;
} ctx;

/* --- small helpers ---------------------------------------------------------- */

/* Appends to the decision's log line, "; "-separated; text beyond
 * SAGA_LOG_MAX is cut (a log line, not data). */
static void note(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
note(ctx *c, const char *fmt, ...)
{
    char *log = c->d->log;
    size_t used = strlen(log);
    if (used + 3 >= SAGA_LOG_MAX)
        return;
    if (used > 0) {
        memcpy(log + used, "; ", 3);
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log + used, SAGA_LOG_MAX - used, fmt, ap);
    va_end(ap);
}

/* Copies src (NULL = "") into dst of size n; false when it does not fit. */
static bool
copy_str(char *dst, size_t n, const char *src)
{
    if (src == NULL)
        src = "";
    size_t len = strlen(src);
    if (len >= n)
        return false;
    memcpy(dst, src, len + 1);
    return true;
}

/* Copies text that is only shown to people, cutting what does not fit. */
static void
copy_text(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src != NULL ? src : "");
}

static void
ignore(ctx *c, const char *why)
{
    c->d->verdict = SAGA_IGNORED;
    note(c, "ignored: %s", why);
}

static void
applied(ctx *c)
{
    c->d->verdict = SAGA_APPLIED;
}

static const char *
step_name(const ctx *c, uint32_t i)
{
    return c->t->steps[i].name;
}

static const saga_retry *
comp_policy(const saga_step *st)
{
    return st->compensate_retry != NULL ? st->compensate_retry : st->retry;
}

/* Jitter must differ between steps of one input, and be the same on replay. */
static uint64_t
step_seed(const ctx *c, uint32_t i)
{
    return c->in->seed ^ ((uint64_t)(i + 1) << 40);
}

static void
add_cmd(ctx *c, const char *subject, const ProtobufCMessageDescriptor *desc, uint32_t step,
        uint32_t attempt, bool compensate)
{
    saga_decision *d = c->d;
    assert(d->n_cmds < SAGA_CMDS_MAX);
    d->cmds[d->n_cmds++] = (saga_cmd){
        .subject = subject,
        .desc = desc,
        .step = step,
        .attempt = attempt,
        .compensate = compensate,
    };
}

static void
set_timer(ctx *c, saga_timer_kind kind, uint32_t step, uint32_t attempt, int64_t delay_ms)
{
    saga_timer tm = { .kind = kind, .step = step, .attempt = attempt };
    tm.due_ms = c->in->now_ms + delay_ms;
    c->s->has_timer = true;
    c->s->timer = tm;
    c->d->timer_op = SAGA_TIMER_SET;
    c->d->timer = tm;
}

static void
clear_timer(ctx *c)
{
    c->s->has_timer = false;
    memset(&c->s->timer, 0, sizeof c->s->timer);
    c->d->timer_op = SAGA_TIMER_CLEAR;
}

/* The requester's one reply (R7). A saga nobody waits for is marked replied
 * too, so a later repeated START knows the outcome is final. */
static void
reply_requester(ctx *c, lb_status code, const char *reason)
{
    if (c->s->flags & SAGA_F_REPLIED)
        return;
    c->s->flags |= SAGA_F_REPLIED;
    if (c->s->reply_to[0] == '\0')
        return;
    c->d->reply.send = true;
    c->d->reply.to_sender = false;
    c->d->reply.status = code;
    copy_text(c->d->reply.reason, sizeof c->d->reply.reason, reason);
}

static void
reply_sender(ctx *c, lb_status code, const char *reason)
{
    c->d->reply.send = true;
    c->d->reply.to_sender = true;
    c->d->reply.status = code;
    copy_text(c->d->reply.reason, sizeof c->d->reply.reason, reason);
}

static void
refuse(ctx *c, lb_status code, const char *why)
{
    c->d->verdict = SAGA_REFUSED;
    note(c, "refused: %s", why);
    reply_sender(c, code, why);
}

/* --- moving forward and backward -------------------------------------------- */

static void compensate_from(ctx *c, int64_t from);

/* Sends the next attempt of step i (or, for a wait step, only arms its timer). */
static void
send_step(ctx *c, uint32_t i)
{
    const saga_step *st = &c->t->steps[i];
    saga_step_state *ss = &c->s->steps[i];
    ss->status = SAGA_STEP_SENT;
    ss->flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    ss->attempt++;
    ss->tries++;
    if (st->command != NULL) {
        add_cmd(c, st->subject, st->command, i, ss->attempt, false);
        note(c, "send %s attempt %u", st->name, ss->attempt);
    } else {
        note(c, "wait for %s (attempt %u)", st->name, ss->attempt);
    }
    set_timer(c, SAGA_TIMER_STEP_TIMEOUT, i, ss->attempt, st->timeout_ms);
}

/* Runs step i, or completes the saga after its last step. */
static void
advance(ctx *c, uint32_t i)
{
    if (i == c->t->n_steps) {
        c->s->status = SAGA_COMPLETED;
        clear_timer(c);
        note(c, "completed");
        reply_requester(c, LB_OK, "");
        return;
    }
    c->s->step = i;
    send_step(c, i);
}

static void
send_comp(ctx *c, uint32_t i)
{
    const saga_step *st = &c->t->steps[i];
    saga_step_state *ss = &c->s->steps[i];
    ss->status = SAGA_STEP_COMPENSATING;
    ss->flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    ss->comp_attempt++;
    ss->comp_tries++;
    add_cmd(c, st->compensate_subject, st->compensate, i, ss->comp_attempt, true);
    note(c, "compensate %s attempt %u", st->name, ss->comp_attempt);
    set_timer(c, SAGA_TIMER_COMP_TIMEOUT, i, ss->comp_attempt, st->timeout_ms);
}

static bool
needs_compensation(const saga_step_state *ss)
{
    return ss->status == SAGA_STEP_DONE ||
           (ss->status == SAGA_STEP_FAILED && (ss->flags & SAGA_STEP_F_UNCERTAIN));
}

/* Compensates the highest step at or below `from` that took (or may have
 * taken) effect; with none left the saga has rolled back: FAILED. */
static void
compensate_from(ctx *c, int64_t from)
{
    c->s->status = SAGA_COMPENSATING;
    for (int64_t j = from; j >= 0; j--) {
        uint32_t i = (uint32_t)j;
        if (!needs_compensation(&c->s->steps[i]))
            continue;
        if (c->t->steps[i].compensate == NULL) {
            note(c, "%s has nothing to undo", step_name(c, i));
            continue;
        }
        c->s->step = i;
        send_comp(c, i);
        return;
    }
    c->s->status = SAGA_FAILED;
    clear_timer(c);
    note(c, "rolled back");
}

/* Attempt `attempt` of step i failed (event or timeout): retry by the policy,
 * or give up and compensate. */
static void
step_failed(ctx *c, uint32_t i, bool final, lb_status code, const char *reason)
{
    const saga_step *st = &c->t->steps[i];
    saga_step_state *ss = &c->s->steps[i];
    copy_text(c->s->last_error, sizeof c->s->last_error, reason);
    ss->status = SAGA_STEP_FAILED;
    if (!final && ss->tries < st->retry->attempts) {
        ss->flags |= SAGA_STEP_F_RETRY_WAIT;
        int64_t delay = saga_backoff_ms(st->retry, ss->tries, step_seed(c, i));
        set_timer(c, SAGA_TIMER_STEP_RETRY, i, ss->attempt, delay);
        note(c, "%s attempt %u failed (%s), retry in %lld ms", st->name, ss->attempt, reason,
             (long long)delay);
        return;
    }
    ss->flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    if (!final)
        ss->flags |= SAGA_STEP_F_UNCERTAIN; /* R5 */
    c->s->fail_code = code != LB_OK ? code : LB_ERR_UNPROCESSABLE;
    copy_text(c->s->fail_reason, sizeof c->s->fail_reason, reason);
    note(c, "%s failed%s after %u attempt(s): %s", st->name, final ? " finally" : "", ss->tries,
         reason);
    reply_requester(c, c->s->fail_code, c->s->fail_reason);
    compensate_from(c, i);
}

/* The compensation of step i failed: retry with backoff, or park as STUCK. */
static void
comp_failed(ctx *c, uint32_t i, bool final, const char *reason)
{
    const saga_step *st = &c->t->steps[i];
    const saga_retry *policy = comp_policy(st);
    saga_step_state *ss = &c->s->steps[i];
    copy_text(c->s->last_error, sizeof c->s->last_error, reason);
    if (!final && ss->comp_tries < policy->attempts) {
        ss->flags |= SAGA_STEP_F_RETRY_WAIT;
        int64_t delay = saga_backoff_ms(policy, ss->comp_tries, step_seed(c, i));
        set_timer(c, SAGA_TIMER_COMP_RETRY, i, ss->comp_attempt, delay);
        note(c, "compensation of %s attempt %u failed (%s), retry in %lld ms", st->name,
             ss->comp_attempt, reason, (long long)delay);
        return;
    }
    ss->flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    c->s->status = SAGA_STUCK;
    clear_timer(c);
    note(c, "compensation of %s failed%s after %u attempt(s): %s; STUCK for an operator", st->name,
         final ? " finally" : "", ss->comp_tries, reason);
}

/* --- events ------------------------------------------------------------------ */

/* The attempt an event answers: what it says, or the one in flight. */
static uint32_t
event_attempt(const ctx *c, uint32_t current)
{
    return c->in->attempt != 0 ? c->in->attempt : current;
}

static const char *
event_reason(const ctx *c)
{
    const char *r = c->in->reason;
    return r != NULL && r[0] != '\0' ? r : lb_status_text(c->in->code);
}

/* Common guard of forward events: saga RUNNING, step i current, attempt sent. */
static bool
forward_event_ok(ctx *c, uint32_t i)
{
    const saga_step_state *ss = &c->s->steps[i];
    char why[160];
    if (c->s->status != SAGA_RUNNING) {
        snprintf(why, sizeof why, "saga is %s", saga_status_name(c->s->status));
    } else if (i != c->s->step) {
        snprintf(why, sizeof why, "%s is %s, not the current step", step_name(c, i),
                 saga_step_status_name(ss->status));
    } else if (event_attempt(c, ss->attempt) > ss->attempt) {
        snprintf(why, sizeof why, "%s attempt %u was never sent", step_name(c, i), c->in->attempt);
    } else {
        return true;
    }
    ignore(c, why);
    return false;
}

static void
ev_ok(ctx *c, uint32_t i)
{
    if (!forward_event_ok(c, i))
        return;
    saga_step_state *ss = &c->s->steps[i];
    applied(c);
    ss->status = SAGA_STEP_DONE;
    ss->flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    note(c, "%s done (attempt %u)", step_name(c, i), event_attempt(c, ss->attempt));
    if (c->t->steps[i].reply)
        reply_requester(c, LB_OK, "");
    advance(c, i + 1);
}

static void
ev_fail(ctx *c, uint32_t i)
{
    if (!forward_event_ok(c, i))
        return;
    saga_step_state *ss = &c->s->steps[i];
    if (!c->in->final) { /* R3 */
        if (event_attempt(c, ss->attempt) != ss->attempt) {
            ignore(c, "failure of a superseded attempt");
            return;
        }
        if (ss->status != SAGA_STEP_SENT) {
            ignore(c, "failure already counted");
            return;
        }
    }
    applied(c);
    step_failed(c, i, c->in->final, c->in->code, event_reason(c));
}

/* Common guard of compensation events. */
static bool
comp_event_ok(ctx *c, uint32_t i, bool stuck_too)
{
    const saga_step_state *ss = &c->s->steps[i];
    char why[160];
    if (c->s->status != SAGA_COMPENSATING && !(stuck_too && c->s->status == SAGA_STUCK)) {
        snprintf(why, sizeof why, "saga is %s", saga_status_name(c->s->status));
    } else if (i != c->s->step || ss->status != SAGA_STEP_COMPENSATING) {
        snprintf(why, sizeof why, "%s is %s, not being compensated", step_name(c, i),
                 saga_step_status_name(ss->status));
    } else if (event_attempt(c, ss->comp_attempt) > ss->comp_attempt) {
        snprintf(why, sizeof why, "compensation of %s attempt %u was never sent", step_name(c, i),
                 c->in->attempt);
    } else {
        return true;
    }
    ignore(c, why);
    return false;
}

static void
ev_compensated(ctx *c, uint32_t i)
{
    if (!comp_event_ok(c, i, true)) /* R6 */
        return;
    saga_step_state *ss = &c->s->steps[i];
    applied(c);
    if (c->s->status == SAGA_STUCK)
        note(c, "late confirmation un-sticks the saga");
    ss->status = SAGA_STEP_COMPENSATED;
    ss->flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    note(c, "%s compensated (attempt %u)", step_name(c, i), event_attempt(c, ss->comp_attempt));
    compensate_from(c, (int64_t)i - 1);
}

static void
ev_compensate_fail(ctx *c, uint32_t i)
{
    if (!comp_event_ok(c, i, false))
        return;
    saga_step_state *ss = &c->s->steps[i];
    if (!c->in->final) { /* R3, for compensations */
        if (event_attempt(c, ss->comp_attempt) != ss->comp_attempt) {
            ignore(c, "compensation failure of a superseded attempt");
            return;
        }
        if (ss->flags & SAGA_STEP_F_RETRY_WAIT) {
            ignore(c, "compensation failure already counted");
            return;
        }
    }
    applied(c);
    comp_failed(c, i, c->in->final, event_reason(c));
}

typedef struct event_row {
    size_t desc_offset; /* which descriptor of saga_step names this event kind */
    void (*fn)(ctx *c, uint32_t step);
} event_row;

/* clang-format off */
static const event_row event_rows[] = {
    { offsetof(saga_step, on_ok),              ev_ok },
    { offsetof(saga_step, on_fail),            ev_fail },
    { offsetof(saga_step, on_compensated),     ev_compensated },
    { offsetof(saga_step, on_compensate_fail), ev_compensate_fail },
};
/* clang-format on */

static void
on_event(ctx *c)
{
    const saga_input *in = c->in;
    char why[160];
    if (c->s->status == SAGA_NONE) {
        ignore(c, "no such saga");
        return;
    }
    if (in->event == NULL || in->step >= c->t->n_steps) {
        snprintf(why, sizeof why, "step %u is not in %s v%u", in->step, c->t->name, c->t->version);
        ignore(c, why);
        return;
    }
    const saga_step *st = &c->t->steps[in->step];
    for (size_t k = 0; k < LB_COUNTOF(event_rows); k++) {
        const ProtobufCMessageDescriptor *want =
            *(const ProtobufCMessageDescriptor *const *)((const char *)st +
                                                         event_rows[k].desc_offset);
        if (want == in->event) {
            event_rows[k].fn(c, in->step);
            return;
        }
    }
    snprintf(why, sizeof why, "%s is not an event of step %s", in->event->name, st->name);
    ignore(c, why);
}

/* --- timers ------------------------------------------------------------------ */

static void
tm_step_timeout(ctx *c, uint32_t i)
{
    char why[160];
    snprintf(why, sizeof why, "%s attempt %u timed out", step_name(c, i), c->in->attempt);
    step_failed(c, i, false, LB_ERR_TIMEOUT, why);
}

static void
tm_step_retry(ctx *c, uint32_t i)
{
    send_step(c, i);
}

static void
tm_comp_timeout(ctx *c, uint32_t i)
{
    char why[160];
    snprintf(why, sizeof why, "compensation of %s attempt %u timed out", step_name(c, i),
             c->in->attempt);
    comp_failed(c, i, false, why);
}

static void
tm_comp_retry(ctx *c, uint32_t i)
{
    send_comp(c, i);
}

static void (*const timer_fns[])(ctx *c, uint32_t step) = {
    [SAGA_TIMER_STEP_TIMEOUT] = tm_step_timeout,
    [SAGA_TIMER_STEP_RETRY] = tm_step_retry,
    [SAGA_TIMER_COMP_TIMEOUT] = tm_comp_timeout,
    [SAGA_TIMER_COMP_RETRY] = tm_comp_retry,
};
_Static_assert(LB_COUNTOF(timer_fns) == SAGA__TIMER_KIND_COUNT, "timer handler table");

static void
on_timer(ctx *c)
{
    const saga_input *in = c->in;
    const saga_timer *tm = &c->s->timer;
    if (c->s->status == SAGA_NONE) {
        ignore(c, "no such saga");
        return;
    }
    if ((unsigned)in->timer >= SAGA__TIMER_KIND_COUNT || !c->s->has_timer ||
        tm->kind != in->timer || tm->step != in->step || tm->attempt != in->attempt) {
        ignore(c, "stale timer"); /* R1 */
        return;
    }
    applied(c);
    note(c, "timer %s of %s attempt %u", saga_timer_kind_name(in->timer), step_name(c, in->step),
         in->attempt);
    timer_fns[in->timer](c, in->step);
}

/* --- start and operators ------------------------------------------------------ */

/* What a repeated START learns: the outcome, once it is known. */
static void
reply_known_outcome(ctx *c)
{
    const saga_state *s = c->s;
    if (s->status == SAGA_COMPLETED || (s->status == SAGA_RUNNING && (s->flags & SAGA_F_REPLIED)))
        reply_sender(c, LB_OK, "");
    else if (s->status != SAGA_RUNNING)
        reply_sender(c, s->fail_code != LB_OK ? s->fail_code : LB_ERR_UNPROCESSABLE,
                     s->fail_reason);
}

static void
on_start(ctx *c)
{
    const saga_input *in = c->in;
    saga_state *s = c->s;
    if (s->status != SAGA_NONE) {
        ignore(c, "already started");
        reply_known_outcome(c);
        return;
    }
    if (in->saga_id == NULL || strlen(in->saga_id) != ID_STR_LEN - 1) {
        refuse(c, LB_ERR_INVALID, "saga id is not a UUID");
        return;
    }
    if (!copy_str(s->reply_to, sizeof s->reply_to, in->reply_to) ||
        !copy_str(s->actor, sizeof s->actor, in->actor) ||
        !copy_str(s->traceparent, sizeof s->traceparent, in->traceparent)) {
        memset(s, 0, sizeof *s);
        refuse(c, LB_ERR_INVALID, "reply inbox, actor or traceparent too long");
        return;
    }
    applied(c);
    memcpy(s->id, in->saga_id, ID_STR_LEN);
    copy_text(s->type, sizeof s->type, c->t->name);
    s->version = c->t->version;
    s->created_ms = in->now_ms;
    s->status = SAGA_RUNNING;
    note(c, "started on %s v%u", c->t->name, c->t->version);
    advance(c, 0);
}

/* Operators must say who and why: both go to the saga's log for good. */
static bool
operator_ok(ctx *c, const char *what)
{
    const saga_input *in = c->in;
    char why[160];
    if (c->s->status == SAGA_NONE) {
        refuse(c, LB_ERR_NOT_FOUND, "no such saga");
    } else if (in->actor == NULL || in->actor[0] == '\0' || in->reason == NULL ||
               in->reason[0] == '\0') {
        refuse(c, LB_ERR_INVALID, "an operator command needs an actor and a reason");
    } else if (c->s->status != SAGA_STUCK) {
        snprintf(why, sizeof why, "saga is %s; only a STUCK saga can be %s",
                 saga_status_name(c->s->status), what);
        refuse(c, LB_ERR_STATE, why);
    } else {
        return true;
    }
    return false;
}

static void
on_retry(ctx *c)
{
    if (!operator_ok(c, "retried"))
        return;
    applied(c);
    note(c, "operator %s retries: %s", c->in->actor, c->in->reason);
    c->s->status = SAGA_COMPENSATING;
    c->s->steps[c->s->step].comp_tries = 0; /* a fresh budget */
    send_comp(c, c->s->step);
    reply_sender(c, LB_OK, "");
}

static void
on_resolve(ctx *c)
{
    if (!operator_ok(c, "resolved"))
        return;
    applied(c);
    c->s->status = SAGA_RESOLVED;
    copy_text(c->s->resolved_by, sizeof c->s->resolved_by, c->in->actor);
    copy_text(c->s->resolve_reason, sizeof c->s->resolve_reason, c->in->reason);
    clear_timer(c);
    note(c, "operator %s resolved it: %s", c->in->actor, c->in->reason);
    reply_sender(c, LB_OK, "");
}

static void (*const input_fns[])(ctx *c) = {
    [SAGA_IN_START] = on_start, [SAGA_IN_EVENT] = on_event,     [SAGA_IN_TIMER] = on_timer,
    [SAGA_IN_RETRY] = on_retry, [SAGA_IN_RESOLVE] = on_resolve,
};
_Static_assert(LB_COUNTOF(input_fns) == SAGA__INPUT_KIND_COUNT, "input handler table");

/* --- entry points ------------------------------------------------------------ */

lb_status
saga_decide(saga_state *out, saga_decision *d, const saga_type *t, const saga_state *in,
            const saga_input *input, lb_err *err)
{
    if (out == NULL || d == NULL || t == NULL || input == NULL)
        return lb_err_set(err, LB_ERR_INVALID, "saga_decide: missing argument");
    if ((unsigned)input->kind >= SAGA__INPUT_KIND_COUNT)
        return lb_err_set(err, LB_ERR_INVALID, "saga_decide: unknown input kind %d",
                          (int)input->kind);
    saga_state s;
    memset(&s, 0, sizeof s);
    if (in != NULL && in->status != SAGA_NONE) {
        if (strcmp(in->type, t->name) != 0 || in->version != t->version)
            return lb_err_set(err, LB_ERR_INVALID, "saga %s is %s v%u, decided with %s v%u", in->id,
                              in->type, in->version, t->name, t->version);
        lb_status st = saga_state_check(t, in, err);
        if (st != LB_OK)
            return lb_err_wrap(err, "saga_decide");
        memcpy(&s, in, sizeof s);
    }
    memset(d, 0, sizeof *d);
    d->verdict = SAGA_IGNORED;
    d->timer_op = SAGA_TIMER_KEEP;
    d->from = s.status;

    ctx c = { .t = t, .s = &s, .d = d, .in = input };
    input_fns[input->kind](&c);

    if (d->verdict == SAGA_APPLIED) {
        s.updated_ms = input->now_ms;
        assert(saga_state_check(t, &s, NULL) == LB_OK);
    } else {
        /* An ignored or refused input leaves the state exactly as it was. */
        if (in != NULL && in->status != SAGA_NONE)
            memcpy(&s, in, sizeof s);
        else
            memset(&s, 0, sizeof s);
        d->timer_op = SAGA_TIMER_KEEP;
        d->n_cmds = 0;
    }
    d->to = s.status;
    memcpy(out, &s, sizeof s);
    return LB_OK;
}

/* splitmix64: a good 64-bit mix, so nearby seeds give unrelated jitter. */
static uint64_t
mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int64_t
saga_backoff_ms(const saga_retry *r, uint32_t attempt, uint64_t seed)
{
    if (r == NULL || r->base_ms <= 0)
        return 0;
    int64_t cap = r->cap_ms > 0 ? r->cap_ms : r->base_ms;
    int64_t delay = r->base_ms < cap ? r->base_ms : cap;
    uint32_t mult = r->multiplier > 0 ? r->multiplier : 1;
    for (uint32_t n = 1; n < attempt && delay < cap; n++)
        delay = delay > cap / mult ? cap : delay * mult;
    if (delay > cap)
        delay = cap;
    uint32_t pct = r->jitter_pct <= 100 ? r->jitter_pct : 100;
    /* delay * pct / 100 without overflowing */
    uint64_t jitter = (uint64_t)(delay / 100) * pct + (uint64_t)(delay % 100) * pct / 100;
    if (jitter > 0)
        delay -= (int64_t)(mix64(seed ^ mix64(attempt)) % (jitter + 1));
    return delay;
}
