/* saga_decide_ops.c - the decider's inputs that do not come from a step:
 * START, the operator's RETRY and RESOLVE, and signals (cancel, return).
 *
 * A signal is an input like an event (DESIGN §4): logged, replayed, decided
 * once. What it does depends on where the saga is, as its type's signal
 * table says (saga.h saga_signal):
 * (S1) Only a RUNNING saga takes a signal; at a step no rule covers, or in
 *      any other status, it is refused with the rule's `refused` code (the
 *      edge turns not_cancellable into 409). Nothing changes.
 * (S2) CANCEL: the current step stops. Whatever was in flight may still take
 *      effect (a command sent, a payment being captured during a wait), so
 *      the step counts as failed without a final answer (R5) and is
 *      compensated too when it has a compensation; a delay step has nothing
 *      in flight. Then everything done is undone in reverse and the saga
 *      ends CANCELLED.
 * (S3) GOTO: allowed only at wait and delay steps (nothing in flight): the
 *      current step and the steps up to `to` are SKIPPED and the saga runs
 *      from `to` (the return branch after the return window opened).
 * (S4) The sender is answered when the signal is decided, not when a
 *      compensation finished: SagaOutcome with the saga's status then
 *      (COMPENSATING, CANCELLED or RUNNING). A signal of the same name once
 *      accepted is answered OK again and changes nothing, so a repeated
 *      cancel is harmless.
 * (S5) A requester still waiting for the saga's first outcome is not told
 *      about a signal (the decision has one reply, the signal sender's): it
 *      is marked replied, and learns the outcome by reading the state.
 */
#include <stdio.h>
#include <string.h>

#include "saga_internal.h"

typedef saga__ctx ctx;

/* What a repeated START learns: the outcome, once it is known. */
static void
reply_known_outcome(ctx *c)
{
    const saga_state *s = c->s;
    /* A repeat gets the first answer (DESIGN 5: "a repeat with the same key
     * returns the first outcome"): a requester told OK at a .reply step,
     * whose answer was lost, must hear OK again after the saga failed or was
     * cancelled later (its order exists; the edge reads it back as it does
     * for the first answer), not the later failure's reason. */
    if (s->status == SAGA_COMPLETED || (s->flags & SAGA_F_REPLIED_OK) ||
        (s->status == SAGA_RUNNING && (s->flags & SAGA_F_REPLIED)))
        saga__reply_sender(c, LB_OK, "");
    else if (s->status != SAGA_RUNNING)
        saga__reply_sender(c, s->fail_code != LB_OK ? s->fail_code : LB_ERR_UNPROCESSABLE,
                           s->fail_reason);
}

/* Each step's duration from the START input, else the step's constant. */
static bool
take_durations(ctx *c)
{
    const saga_input *in = c->in;
    for (uint32_t i = 0; i < c->t->n_steps; i++) {
        int64_t d = (in->durations_ms != NULL && i < in->n_durations) ? in->durations_ms[i] : 0;
        if (d <= 0)
            d = c->t->steps[i].timeout_ms;
        if (d <= 0)
            return false;
        c->s->durations_ms[i] = d;
    }
    return true;
}

void
saga__on_start(ctx *c)
{
    const saga_input *in = c->in;
    saga_state *s = c->s;
    if (s->status != SAGA_NONE) {
        saga__ignore(c, "already started");
        reply_known_outcome(c);
        return;
    }
    if (in->saga_id == NULL || strlen(in->saga_id) != ID_STR_LEN - 1) {
        saga__refuse(c, LB_ERR_INVALID, "saga id is not a UUID");
        return;
    }
    if (!saga__copy_str(s->reply_to, sizeof s->reply_to, in->reply_to) ||
        !saga__copy_str(s->actor, sizeof s->actor, in->actor) ||
        !saga__copy_str(s->traceparent, sizeof s->traceparent, in->traceparent)) {
        memset(s, 0, sizeof *s);
        saga__refuse(c, LB_ERR_INVALID, "reply inbox, actor or traceparent too long");
        return;
    }
    if (!take_durations(c)) {
        memset(s, 0, sizeof *s);
        saga__refuse(c, LB_ERR_INVALID, "a step has no duration (saga_durations_read)");
        return;
    }
    saga__applied(c);
    memcpy(s->id, in->saga_id, ID_STR_LEN);
    saga__copy_text(s->type, sizeof s->type, c->t->name);
    s->version = c->t->version;
    s->created_ms = in->now_ms;
    s->skip_mask = in->skip_mask & (uint32_t)((1ull << c->t->n_steps) - 1);
    s->status = SAGA_RUNNING;
    saga__note(c, "started on %s v%u", c->t->name, c->t->version);
    saga__advance(c, 0);
}

/* Operators must say who and why: both go to the saga's log for good. */
static bool
operator_ok(ctx *c, const char *what)
{
    const saga_input *in = c->in;
    char why[160];
    if (c->s->status == SAGA_NONE) {
        saga__refuse(c, LB_ERR_NOT_FOUND, "no such saga");
    } else if (in->actor == NULL || in->actor[0] == '\0' || in->reason == NULL ||
               in->reason[0] == '\0') {
        saga__refuse(c, LB_ERR_INVALID, "an operator command needs an actor and a reason");
    } else if (c->s->status != SAGA_STUCK) {
        snprintf(why, sizeof why, "saga is %s; only a STUCK saga can be %s",
                 saga_status_name(c->s->status), what);
        saga__refuse(c, LB_ERR_STATE, why);
    } else {
        return true;
    }
    return false;
}

void
saga__on_retry(ctx *c)
{
    if (!operator_ok(c, "retried"))
        return;
    saga__applied(c);
    saga__note(c, "operator %s retries: %s", c->in->actor, c->in->reason);
    c->s->status = SAGA_COMPENSATING;
    c->s->steps[c->s->step].comp_tries = 0; /* a fresh budget */
    saga__send_comp(c, c->s->step);
    saga__reply_sender(c, LB_OK, "");
}

void
saga__on_resolve(ctx *c)
{
    if (!operator_ok(c, "resolved"))
        return;
    saga__applied(c);
    c->s->status = SAGA_RESOLVED;
    saga__copy_text(c->s->resolved_by, sizeof c->s->resolved_by, c->in->actor);
    saga__copy_text(c->s->resolve_reason, sizeof c->s->resolve_reason, c->in->reason);
    saga__clear_timer(c);
    saga__note(c, "operator %s resolved it: %s", c->in->actor, c->in->reason);
    saga__reply_sender(c, LB_OK, "");
}

/* --- signals ------------------------------------------------------------------ */

const saga_signal *
saga_signal_find(const saga_type *t, const saga_state *s, const char *name)
{
    if (t == NULL || s == NULL || name == NULL || s->status != SAGA_RUNNING)
        return NULL;
    for (size_t k = 0; k < t->n_signals; k++) {
        const saga_signal *r = &t->signals[k];
        if (strcmp(r->name, name) == 0 && s->step >= r->first && s->step <= r->last)
            return r;
    }
    return NULL;
}

static const saga_signal *
signal_known(const saga_type *t, const char *name)
{
    for (size_t k = 0; k < t->n_signals; k++)
        if (strcmp(t->signals[k].name, name) == 0)
            return &t->signals[k];
    return NULL;
}

/* S2 */
static void
sig_cancel(ctx *c, const saga_signal *r)
{
    uint32_t i = c->s->step;
    const saga_step *step = &c->t->steps[i];
    saga_step_state *ss = &c->s->steps[i];
    char why[SAGA_REASON_MAX];
    snprintf(why, sizeof why, "%s by %s: %s", r->name, c->in->actor ? c->in->actor : "",
             c->in->reason ? c->in->reason : "");
    ss->status = SAGA_STEP_FAILED;
    ss->flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    if (step->kind != SAGA_STEP_DELAY)
        ss->flags |= SAGA_STEP_F_UNCERTAIN;
    c->s->flags |= SAGA_F_CANCELLED | SAGA_F_REPLIED; /* S5 */
    c->s->fail_code = r->code != LB_OK ? r->code : LB_ERR_STATE;
    saga__copy_text(c->s->fail_reason, sizeof c->s->fail_reason, why);
    saga__note(c, "%s at %s", why, step->name);
    saga__compensate_from(c, i);
}

/* S3 */
static void
sig_goto(ctx *c, const saga_signal *r)
{
    uint32_t i = c->s->step;
    for (uint32_t j = i; j < r->to; j++)
        c->s->steps[j].status = SAGA_STEP_SKIPPED;
    c->s->steps[i].flags &= (uint8_t)~SAGA_STEP_F_RETRY_WAIT;
    c->s->flags |= SAGA_F_REPLIED; /* S5 */
    saga__note(c, "%s by %s: %s; from %s to %s", r->name, c->in->actor ? c->in->actor : "",
               c->in->reason ? c->in->reason : "", c->t->steps[i].name, c->t->steps[r->to].name);
    saga__advance(c, r->to);
}

void
saga__on_signal(ctx *c)
{
    const char *name = c->in->signal;
    char why[160];
    if (c->s->status == SAGA_NONE) {
        saga__refuse(c, LB_ERR_NOT_FOUND, "no such saga");
        return;
    }
    const saga_signal *known = name != NULL ? signal_known(c->t, name) : NULL;
    if (known == NULL) {
        snprintf(why, sizeof why, "%s v%u takes no signal '%.40s'", c->t->name, c->t->version,
                 name != NULL ? name : "");
        saga__refuse(c, LB_ERR_INVALID, why);
        return;
    }
    if (strcmp(c->s->signal, name) == 0) { /* S4 */
        saga__ignore(c, "signal already accepted");
        saga__reply_sender(c, LB_OK, "");
        return;
    }
    const saga_signal *r = saga_signal_find(c->t, c->s, name);
    if (r == NULL) { /* S1 */
        snprintf(why, sizeof why, "%s is not allowed while the saga is %s at %s", name,
                 saga_status_name(c->s->status), c->t->steps[c->s->step].name);
        saga__refuse_as(c, known->refused != LB_OK ? known->refused : LB_ERR_STATE, why,
                        known->refused_text != NULL ? known->refused_text : why);
        return;
    }
    saga__applied(c);
    saga__copy_text(c->s->signal, sizeof c->s->signal, name);
    if (r->action == SAGA_SIGNAL_CANCEL)
        sig_cancel(c, r);
    else
        sig_goto(c, r);
    saga__reply_sender(c, LB_OK, "");
}
