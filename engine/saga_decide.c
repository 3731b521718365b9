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
 * (R8) Step kinds differ only in what starts and ends them: a wait step's
 *      timeout is a final failure, a delay step's timer is its success. Every
 *      duration comes from the state (fixed at START), never from a clock.
 * (R9) Nothing at or below a DONE pivot step is compensated: past it the
 *      saga only goes forward (a failure there undoes only later steps).
 * (R10) A wait step's success that arrives while the saga is RUNNING at an
 *      earlier step is kept, not dropped (R4's one exception): the step is
 *      marked EARLY and is DONE the moment the saga reaches it. What it
 *      waited for happened in the world (an order paid by a buyer who saw it
 *      payable before this saga heard so), so dropping it would let the
 *      deadline undo a paid order; and it is undone like a DONE step when
 *      the saga rolls back before reaching it.
 * (R11) A forward step (saga_step.forward) never fails for a timeout or a
 *      transient failure: past its policy's attempts it is retried at the
 *      capped backoff for as long as it takes (attempt numbers are 16 bits:
 *      at the last one it fails like any step). Only a final answer fails
 *      it. Giving up could not undo it: the attempts given up on are still
 *      queued at the participant and run when it returns, after (or instead
 *      of) the compensation (docs/SAGAS.md §5.1).
 * (R12) A step sent ahead (saga_step.ahead) has its first attempt sent with
 *      the first attempt of the step before it. Its outcome, arriving while
 *      the saga is still at that step, is kept (R4's second exception): a
 *      success makes it DONE, a final failure makes it fail, the moment the
 *      saga gets there, as if the outcome had come then. A transient failure
 *      is left to its timeout, which starts when the saga gets there. Until
 *      it answers it may take effect, so a rollback that starts below it
 *      undoes it first (R5), and nothing ever resends it before the saga
 *      gets there.
 * Start, operator and signal inputs are in saga_decide_ops.c.
 */
#include "saga.h"

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "saga_internal.h"

typedef saga__ctx ctx;

/* --- small helpers ---------------------------------------------------------- */

void
saga__note(ctx *c, const char *fmt, ...)
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

bool
saga__copy_str(char *dst, size_t n, const char *src)
{
    if (src == NULL)
        src = "";
    size_t len = strlen(src);
    if (len >= n)
        return false;
    memcpy(dst, src, len + 1);
    return true;
}

void
saga__copy_text(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src != NULL ? src : "");
}

void
saga__ignore(ctx *c, const char *why)
{
    c->d->verdict = SAGA_IGNORED;
    saga__note(c, "ignored: %s", why);
}

void
saga__applied(ctx *c)
{
    c->d->verdict = SAGA_APPLIED;
}

static const char *
step_name(const ctx *c, uint32_t i)
{
    return c->t->steps[i].name;
}

static const saga_retry *
comp_policy(const saga_step *step)
{
    return step->compensate_retry != NULL ? step->compensate_retry : step->retry;
}

/* Step i's timeout, deadline or delay: fixed at START (R8). */
static int64_t
duration_ms(const ctx *c, uint32_t i)
{
    int64_t d = c->s->durations_ms[i];
    return d > 0 ? d : c->t->steps[i].timeout_ms;
}

static int64_t
comp_timeout_ms(const ctx *c, uint32_t i)
{
    int64_t d = c->t->steps[i].compensate_timeout_ms;
    return d > 0 ? d : duration_ms(c, i);
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

void
saga__clear_timer(ctx *c)
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
    if (code == LB_OK)
        c->s->flags |= SAGA_F_REPLIED_OK;
    if (c->s->reply_to[0] == '\0')
        return;
    c->d->reply.send = true;
    c->d->reply.to_sender = false;
    c->d->reply.status = code;
    saga__copy_text(c->d->reply.reason, sizeof c->d->reply.reason, reason);
}

void
saga__reply_sender(ctx *c, lb_status code, const char *reason)
{
    c->d->reply.send = true;
    c->d->reply.to_sender = true;
    c->d->reply.status = code;
    saga__copy_text(c->d->reply.reason, sizeof c->d->reply.reason, reason);
}

void
saga__refuse(ctx *c, lb_status code, const char *why)
{
    saga__refuse_as(c, code, why, why);
}

void
saga__refuse_as(ctx *c, lb_status code, const char *why, const char *answer)
{
    c->d->verdict = SAGA_REFUSED;
    saga__note(c, "refused: %s", why);
    saga__reply_sender(c, code, answer);
}

/* --- moving forward and backward -------------------------------------------- */

static void step_done(ctx *c, uint32_t i);

static void step_failed(ctx *c, uint32_t i, bool final, bool uncertain, lb_status code,
                        const char *reason);

/* R12: the saga gets to step i, whose first attempt went ahead: its outcome
 * counts now if it came, else its timeout starts now. */
static void
reach_ahead(ctx *c, uint32_t i, int64_t dur)
{
    const saga_step *step = &c->t->steps[i];
    saga_step_state *ss = &c->s->steps[i];
    uint8_t had = ss->flags;
    ss->status = SAGA_STEP_SENT;
    ss->flags &= (uint8_t) ~(SAGA_STEP_F_AHEAD | SAGA_STEP_F_EARLY | SAGA_STEP_F_REFUSED);
    if (had & SAGA_STEP_F_EARLY) {
        saga__note(c, "%s: done already (sent ahead)", step->name);
        step_done(c, i);
    } else if (had & SAGA_STEP_F_REFUSED) {
        /* a copy: step_failed() writes fail_reason from it */
        char reason[SAGA_REASON_MAX];
        saga__copy_text(reason, sizeof reason, c->s->fail_reason);
        saga__note(c, "%s: refused already (sent ahead)", step->name);
        step_failed(c, i, true, false, (lb_status)ss->early_code, reason);
    } else {
        saga__note(c, "wait for %s (attempt %u, sent ahead)", step->name, ss->attempt);
        set_timer(c, SAGA_TIMER_STEP_TIMEOUT, i, ss->attempt, dur);
    }
}

/* R12: the first time step i is sent, the first attempt of the step after
 * it goes too, when that one is sent ahead (and this saga runs it). Never
 * again: its attempt counts from 1 then. */
static void
send_ahead(ctx *c, uint32_t i)
{
    uint32_t n = i + 1;
    if (n >= c->t->n_steps || !c->t->steps[n].ahead || (c->s->skip_mask & (1u << n)) ||
        c->s->steps[n].attempt != 0)
        return;
    saga_step_state *ns = &c->s->steps[n];
    ns->flags |= SAGA_STEP_F_AHEAD;
    ns->attempt = 1;
    ns->tries = 1;
    add_cmd(c, c->t->steps[n].subject, c->t->steps[n].command, n, 1, false);
    saga__note(c, "send %s attempt 1 ahead", c->t->steps[n].name);
}

/* Starts the next attempt of step i: sends its command (command step), or
 * only arms its deadline (wait step) or its delay (delay step). A wait step
 * whose event came early (R10) is done at once; a step sent ahead (R12)
 * counts what it has heard. */
static void
send_step(ctx *c, uint32_t i)
{
    const saga_step *step = &c->t->steps[i];
    saga_step_state *ss = &c->s->steps[i];
    int64_t dur = duration_ms(c, i);
    if (ss->flags & SAGA_STEP_F_AHEAD) {
        reach_ahead(c, i, dur);
        return;
    }
    ss->status = SAGA_STEP_SENT;
    ss->flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    ss->attempt++;
    ss->tries++;
    if (step->kind == SAGA_STEP_DELAY) {
        saga__note(c, "delay %s for %lld ms", step->name, (long long)dur);
        set_timer(c, SAGA_TIMER_DELAY, i, ss->attempt, dur);
        return;
    }
    if (step->command != NULL) {
        add_cmd(c, step->subject, step->command, i, ss->attempt, false);
        saga__note(c, "send %s attempt %u", step->name, ss->attempt);
        send_ahead(c, i);
    } else if (step->kind == SAGA_STEP_WAIT && (ss->flags & SAGA_STEP_F_EARLY)) {
        ss->flags &= (uint8_t)~SAGA_STEP_F_EARLY;
        saga__note(c, "%s: what it waits for came already", step->name);
        step_done(c, i);
        return;
    } else if (step->kind == SAGA_STEP_WAIT) {
        saga__note(c, "wait for %s up to %lld ms", step->name, (long long)dur);
    } else {
        saga__note(c, "wait for %s (attempt %u)", step->name, ss->attempt);
    }
    set_timer(c, SAGA_TIMER_STEP_TIMEOUT, i, ss->attempt, dur);
}

/* The saga is done; steps after `last` (only reachable by a signal) were
 * never run. */
static void
complete(ctx *c, uint32_t last)
{
    for (uint32_t j = last + 1; j < c->t->n_steps; j++)
        c->s->steps[j].status = SAGA_STEP_SKIPPED;
    c->s->status = SAGA_COMPLETED;
    saga__clear_timer(c);
    saga__note(c, "completed");
    reply_requester(c, LB_OK, "");
}

void
saga__advance(ctx *c, uint32_t i)
{
    /* Steps this saga skips (fixed at START from its start command) are
     * passed as never run: nothing sent, nothing to undo. */
    for (; i < c->t->n_steps && (c->s->skip_mask & (1u << i)); i++) {
        c->s->steps[i].status = SAGA_STEP_SKIPPED;
        saga__note(c, "skip %s", step_name(c, i));
    }
    if (i == c->t->n_steps) {
        complete(c, i - 1);
        return;
    }
    c->s->step = i;
    send_step(c, i);
}

/* Step i succeeded (its event, or its delay fired): go on. */
static void
step_done(ctx *c, uint32_t i)
{
    const saga_step *step = &c->t->steps[i];
    saga_step_state *ss = &c->s->steps[i];
    ss->status = SAGA_STEP_DONE;
    ss->flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    if (step->reply)
        reply_requester(c, LB_OK, "");
    if (step->ends)
        complete(c, i);
    else
        saga__advance(c, i + 1);
}

void
saga__send_comp(ctx *c, uint32_t i)
{
    const saga_step *step = &c->t->steps[i];
    saga_step_state *ss = &c->s->steps[i];
    ss->status = SAGA_STEP_COMPENSATING;
    ss->flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    ss->comp_attempt++;
    ss->comp_tries++;
    add_cmd(c, step->compensate_subject, step->compensate, i, ss->comp_attempt, true);
    saga__note(c, "compensate %s attempt %u", step->name, ss->comp_attempt);
    set_timer(c, SAGA_TIMER_COMP_TIMEOUT, i, ss->comp_attempt, comp_timeout_ms(c, i));
}

uint32_t
saga__floor(const saga_type *t, const saga_state *s)
{
    for (uint32_t j = (uint32_t)t->n_steps; j > 0; j--)
        if (t->steps[j - 1].pivot && s->steps[j - 1].status == SAGA_STEP_DONE)
            return j;
    return 0;
}

/* Step ss took or may have taken effect: DONE, failed without a final
 * answer (R5), not reached yet while its event came early (R10), or sent
 * ahead and not refused (R12). */
static bool
took_effect(const saga_step_state *ss)
{
    return ss->status == SAGA_STEP_DONE ||
           (ss->status == SAGA_STEP_FAILED && (ss->flags & SAGA_STEP_F_UNCERTAIN)) ||
           (ss->status == SAGA_STEP_PENDING && (ss->flags & SAGA_STEP_F_EARLY)) ||
           (ss->status == SAGA_STEP_PENDING && (ss->flags & SAGA_STEP_F_AHEAD) &&
            !(ss->flags & SAGA_STEP_F_REFUSED));
}

bool
saga__owes_compensation(const saga_type *t, const saga_state *s, uint32_t i)
{
    if (t->steps[i].compensate == NULL || i < saga__floor(t, s))
        return false;
    return took_effect(&s->steps[i]);
}

void
saga__compensate_from(ctx *c, int64_t from)
{
    int64_t floor = (int64_t)saga__floor(c->t, c->s);
    c->s->status = SAGA_COMPENSATING;
    /* R10, R12: a step above `from` whose event came early, or that was sent
     * ahead, took or may have taken effect: undo it first */
    for (int64_t j = (int64_t)c->t->n_steps - 1; j > from; j--)
        if (c->s->steps[j].status == SAGA_STEP_PENDING && took_effect(&c->s->steps[j])) {
            from = j;
            break;
        }
    for (int64_t j = from; j >= floor; j--) {
        uint32_t i = (uint32_t)j;
        if (!took_effect(&c->s->steps[i]))
            continue;
        if (c->t->steps[i].compensate == NULL) {
            saga__note(c, "%s has nothing to undo", step_name(c, i));
            continue;
        }
        c->s->step = i;
        saga__send_comp(c, i);
        return;
    }
    if (floor > 0)
        saga__note(c, "%s and earlier steps stay done (pivot)", step_name(c, (uint32_t)floor - 1));
    bool cancelled = (c->s->flags & SAGA_F_CANCELLED) != 0;
    c->s->status = cancelled ? SAGA_CANCELLED : SAGA_FAILED;
    saga__clear_timer(c);
    saga__note(c, cancelled ? "cancelled" : "rolled back");
}

/* Attempt `attempt` of step i failed (event or timeout): retry by the policy
 * unless final, or give up and compensate. uncertain: it may have taken
 * effect all the same (R5). */
static void
step_failed(ctx *c, uint32_t i, bool final, bool uncertain, lb_status code, const char *reason)
{
    const saga_step *step = &c->t->steps[i];
    saga_step_state *ss = &c->s->steps[i];
    saga__copy_text(c->s->last_error, sizeof c->s->last_error, reason);
    ss->status = SAGA_STEP_FAILED;
    bool spent = step->retry == NULL || ss->tries >= step->retry->attempts; /* wait: none */
    bool forward = step->forward && ss->attempt < UINT16_MAX;               /* R11 */
    if (!final && (!spent || forward)) {
        ss->flags |= SAGA_STEP_F_RETRY_WAIT;
        int64_t delay = saga_backoff_ms(step->retry, ss->tries, step_seed(c, i));
        set_timer(c, SAGA_TIMER_STEP_RETRY, i, ss->attempt, delay);
        saga__note(c, "%s attempt %u failed (%s), retry in %lld ms%s", step->name, ss->attempt,
                   reason, (long long)delay,
                   spent ? " (forward step: retried until it is done, never undone for this)" : "");
        c->d->forward_retry = spent;
        return;
    }
    ss->flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    if (uncertain)
        ss->flags |= SAGA_STEP_F_UNCERTAIN; /* R5 */
    c->s->fail_code = code != LB_OK ? code : LB_ERR_UNPROCESSABLE;
    saga__copy_text(c->s->fail_reason, sizeof c->s->fail_reason, reason);
    saga__note(c, "%s failed%s after %u attempt(s): %s", step->name, final ? " finally" : "",
               ss->tries, reason);
    reply_requester(c, c->s->fail_code, c->s->fail_reason);
    saga__compensate_from(c, i);
}

/* The compensation of step i failed: retry with backoff, or park as STUCK. */
static void
comp_failed(ctx *c, uint32_t i, bool final, const char *reason)
{
    const saga_step *step = &c->t->steps[i];
    const saga_retry *policy = comp_policy(step);
    saga_step_state *ss = &c->s->steps[i];
    saga__copy_text(c->s->last_error, sizeof c->s->last_error, reason);
    if (!final && ss->comp_tries < policy->attempts) {
        ss->flags |= SAGA_STEP_F_RETRY_WAIT;
        int64_t delay = saga_backoff_ms(policy, ss->comp_tries, step_seed(c, i));
        set_timer(c, SAGA_TIMER_COMP_RETRY, i, ss->comp_attempt, delay);
        saga__note(c, "compensation of %s attempt %u failed (%s), retry in %lld ms", step->name,
                   ss->comp_attempt, reason, (long long)delay);
        return;
    }
    ss->flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    c->s->status = SAGA_STUCK;
    saga__clear_timer(c);
    saga__note(c, "compensation of %s failed%s after %u attempt(s): %s; STUCK for an operator",
               step->name, final ? " finally" : "", ss->comp_tries, reason);
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
    saga__ignore(c, why);
    return false;
}

/* The step's merge hook copies what the event says into the record. */
static bool
merge(ctx *c, uint32_t i)
{
    if (c->t->steps[i].merge == NULL)
        return true;
    c->rc = saga__record_merge(c->s, c->t, i, c->in, c->err);
    return c->rc == LB_OK;
}

/* R10: the success of a wait step the RUNNING saga has not reached yet is
 * kept. True when the event was such a one (decided here). */
static bool
early_wait_event(ctx *c, uint32_t i)
{
    const saga_step *step = &c->t->steps[i];
    saga_step_state *ss = &c->s->steps[i];
    if (step->kind != SAGA_STEP_WAIT || c->s->status != SAGA_RUNNING || i <= c->s->step ||
        ss->status != SAGA_STEP_PENDING)
        return false;
    if (ss->flags & SAGA_STEP_F_EARLY) {
        saga__ignore(c, "an early event of this step is kept already");
        return true;
    }
    if (!merge(c, i))
        return true;
    saga__applied(c);
    ss->flags |= SAGA_STEP_F_EARLY;
    saga__note(c, "%s: its event came before the saga reached it; kept", step->name);
    return true;
}

/* R12: an outcome of a step sent ahead that the RUNNING saga has not
 * reached yet is kept. True when the event was such a one (decided here). */
static bool
ahead_event(ctx *c, uint32_t i, bool ok)
{
    saga_step_state *ss = &c->s->steps[i];
    if (!(ss->flags & SAGA_STEP_F_AHEAD) || c->s->status != SAGA_RUNNING || i <= c->s->step ||
        ss->status != SAGA_STEP_PENDING)
        return false;
    if (ss->flags & (SAGA_STEP_F_EARLY | SAGA_STEP_F_REFUSED)) {
        saga__ignore(c, "an outcome of this step sent ahead is kept already");
        return true;
    }
    if (event_attempt(c, 1) != 1) {
        saga__ignore(c, "only attempt 1 of a step sent ahead was sent");
        return true;
    }
    if (!ok && !c->in->final) {
        saga__ignore(c, "a transient failure of a step sent ahead: its timeout runs once the "
                        "saga gets there");
        return true;
    }
    if (!merge(c, i))
        return true;
    saga__applied(c);
    if (ok) {
        ss->flags |= SAGA_STEP_F_EARLY;
        saga__note(c, "%s (sent ahead) done; kept", step_name(c, i));
    } else {
        ss->flags |= SAGA_STEP_F_REFUSED;
        ss->early_code = (uint16_t)(c->in->code != LB_OK ? c->in->code : LB_ERR_UNPROCESSABLE);
        saga__copy_text(c->s->fail_reason, sizeof c->s->fail_reason, event_reason(c));
        saga__copy_text(c->s->last_error, sizeof c->s->last_error, event_reason(c));
        saga__note(c, "%s (sent ahead) refused: %s; kept", step_name(c, i), event_reason(c));
    }
    return true;
}

static void
ev_ok(ctx *c, uint32_t i)
{
    if (early_wait_event(c, i) || ahead_event(c, i, true))
        return;
    if (!forward_event_ok(c, i) || !merge(c, i))
        return;
    saga__applied(c);
    saga__note(c, "%s done (attempt %u)", step_name(c, i),
               event_attempt(c, c->s->steps[i].attempt));
    step_done(c, i);
}

static void
ev_fail(ctx *c, uint32_t i)
{
    if (ahead_event(c, i, false) || !forward_event_ok(c, i))
        return;
    saga_step_state *ss = &c->s->steps[i];
    /* A wait step has no retries: what it waited for said no (R8). */
    bool final = c->in->final || c->t->steps[i].kind == SAGA_STEP_WAIT;
    if (!final) { /* R3 */
        if (event_attempt(c, ss->attempt) != ss->attempt) {
            saga__ignore(c, "failure of a superseded attempt");
            return;
        }
        if (ss->status != SAGA_STEP_SENT) {
            saga__ignore(c, "failure already counted");
            return;
        }
    }
    if (!merge(c, i))
        return;
    saga__applied(c);
    step_failed(c, i, final, !final, c->in->code, event_reason(c));
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
    saga__ignore(c, why);
    return false;
}

static void
ev_compensated(ctx *c, uint32_t i)
{
    if (!comp_event_ok(c, i, true)) /* R6 */
        return;
    saga_step_state *ss = &c->s->steps[i];
    saga__applied(c);
    if (c->s->status == SAGA_STUCK)
        saga__note(c, "late confirmation un-sticks the saga");
    ss->status = SAGA_STEP_COMPENSATED;
    ss->flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    saga__note(c, "%s compensated (attempt %u)", step_name(c, i),
               event_attempt(c, ss->comp_attempt));
    saga__compensate_from(c, (int64_t)i - 1);
}

static void
ev_compensate_fail(ctx *c, uint32_t i)
{
    if (!comp_event_ok(c, i, false))
        return;
    saga_step_state *ss = &c->s->steps[i];
    if (!c->in->final) { /* R3, for compensations */
        if (event_attempt(c, ss->comp_attempt) != ss->comp_attempt) {
            saga__ignore(c, "compensation failure of a superseded attempt");
            return;
        }
        if (ss->flags & SAGA_STEP_F_RETRY_WAIT) {
            saga__ignore(c, "compensation failure already counted");
            return;
        }
    }
    saga__applied(c);
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
        saga__ignore(c, "no such saga");
        return;
    }
    if (in->event == NULL || in->step >= c->t->n_steps) {
        snprintf(why, sizeof why, "step %u is not in %s v%u", in->step, c->t->name, c->t->version);
        saga__ignore(c, why);
        return;
    }
    const saga_step *step = &c->t->steps[in->step];
    for (size_t k = 0; k < LB_COUNTOF(event_rows); k++) {
        const ProtobufCMessageDescriptor *want =
            *(const ProtobufCMessageDescriptor *const *)((const char *)step +
                                                         event_rows[k].desc_offset);
        if (want == in->event) {
            event_rows[k].fn(c, in->step);
            return;
        }
    }
    snprintf(why, sizeof why, "%s is not an event of step %s", in->event->name, step->name);
    saga__ignore(c, why);
}

/* --- timers ------------------------------------------------------------------ */

static void
tm_step_timeout(ctx *c, uint32_t i)
{
    char why[160];
    if (c->t->steps[i].kind == SAGA_STEP_WAIT) {
        /* R8: the deadline passed, for good; what it waited for may be on
         * its way all the same (a payment being captured), so it is undone
         * too when it has a compensation (R5). */
        snprintf(why, sizeof why, "%s: nothing came before the deadline", step_name(c, i));
        step_failed(c, i, true, true, LB_ERR_TIMEOUT, why);
        return;
    }
    snprintf(why, sizeof why, "%s attempt %u timed out", step_name(c, i), c->in->attempt);
    step_failed(c, i, false, true, LB_ERR_TIMEOUT, why);
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
    saga__send_comp(c, i);
}

static void
tm_delay(ctx *c, uint32_t i)
{
    saga__note(c, "%s: delay over", step_name(c, i));
    step_done(c, i);
}

static void (*const timer_fns[])(ctx *c, uint32_t step) = {
    [SAGA_TIMER_STEP_TIMEOUT] = tm_step_timeout,
    [SAGA_TIMER_STEP_RETRY] = tm_step_retry,
    [SAGA_TIMER_COMP_TIMEOUT] = tm_comp_timeout,
    [SAGA_TIMER_COMP_RETRY] = tm_comp_retry,
    [SAGA_TIMER_DELAY] = tm_delay,
};
_Static_assert(LB_COUNTOF(timer_fns) == SAGA__TIMER_KIND_COUNT, "timer handler table");

static void
on_timer(ctx *c)
{
    const saga_input *in = c->in;
    const saga_timer *tm = &c->s->timer;
    if (c->s->status == SAGA_NONE) {
        saga__ignore(c, "no such saga");
        return;
    }
    if ((unsigned)in->timer >= SAGA__TIMER_KIND_COUNT || !c->s->has_timer ||
        tm->kind != in->timer || tm->step != in->step || tm->attempt != in->attempt) {
        saga__ignore(c, "stale timer"); /* R1 */
        return;
    }
    saga__applied(c);
    saga__note(c, "timer %s of %s attempt %u", saga_timer_kind_name(in->timer),
               step_name(c, in->step), in->attempt);
    timer_fns[in->timer](c, in->step);
}

static void (*const input_fns[])(ctx *c) = {
    [SAGA_IN_START] = saga__on_start,     [SAGA_IN_EVENT] = on_event,
    [SAGA_IN_TIMER] = on_timer,           [SAGA_IN_RETRY] = saga__on_retry,
    [SAGA_IN_RESOLVE] = saga__on_resolve, [SAGA_IN_SIGNAL] = saga__on_signal,
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

    ctx c = { .t = t, .s = &s, .d = d, .in = input, .rc = LB_OK, .err = err };
    input_fns[input->kind](&c);
    if (c.rc != LB_OK)
        return lb_err_wrap(err, "saga_decide");

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
