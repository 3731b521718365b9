/* saga_drv.c - a driver for the pure saga decider in unit tests: feeds
 * inputs, checks every decision against the state it produced, records the
 * log and replays it (saga_drv.h). */
#include "saga_drv.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool
step_state_eq(const saga_step_state *a, const saga_step_state *b)
{
    return a->status == b->status && a->flags == b->flags && a->attempt == b->attempt &&
           a->tries == b->tries && a->comp_attempt == b->comp_attempt &&
           a->comp_tries == b->comp_tries;
}

bool
timer_eq(const saga_timer *a, const saga_timer *b)
{
    return a->kind == b->kind && a->step == b->step && a->attempt == b->attempt &&
           a->due_ms == b->due_ms;
}

bool
state_eq(const saga_state *a, const saga_state *b)
{
    for (size_t i = 0; i < SAGA_STEPS_MAX; i++)
        if (!step_state_eq(&a->steps[i], &b->steps[i]))
            return false;
    return strcmp(a->id, b->id) == 0 && strcmp(a->type, b->type) == 0 && a->version == b->version &&
           strcmp(a->reply_to, b->reply_to) == 0 && strcmp(a->actor, b->actor) == 0 &&
           strcmp(a->traceparent, b->traceparent) == 0 && a->created_ms == b->created_ms &&
           a->updated_ms == b->updated_ms && a->status == b->status && a->step == b->step &&
           a->flags == b->flags && a->has_timer == b->has_timer &&
           (!a->has_timer || timer_eq(&a->timer, &b->timer)) && a->fail_code == b->fail_code &&
           strcmp(a->fail_reason, b->fail_reason) == 0 &&
           strcmp(a->last_error, b->last_error) == 0 &&
           strcmp(a->resolved_by, b->resolved_by) == 0 &&
           strcmp(a->resolve_reason, b->resolve_reason) == 0 && strcmp(a->signal, b->signal) == 0 &&
           memcmp(a->durations_ms, b->durations_ms, sizeof a->durations_ms) == 0 &&
           a->record_len == b->record_len && memcmp(a->record, b->record, a->record_len) == 0;
}

bool
decision_eq(const saga_decision *a, const saga_decision *b)
{
    if (a->verdict != b->verdict || a->from != b->from || a->to != b->to ||
        a->n_cmds != b->n_cmds || a->timer_op != b->timer_op || a->reply.send != b->reply.send ||
        a->reply.to_sender != b->reply.to_sender || a->reply.status != b->reply.status ||
        strcmp(a->reply.reason, b->reply.reason) != 0 || strcmp(a->log, b->log) != 0 ||
        a->forward_retry != b->forward_retry)
        return false;
    if (a->timer_op == SAGA_TIMER_SET && !timer_eq(&a->timer, &b->timer))
        return false;
    for (size_t i = 0; i < a->n_cmds; i++) {
        const saga_cmd *x = &a->cmds[i], *y = &b->cmds[i];
        if (strcmp(x->subject, y->subject) != 0 || x->desc != y->desc || x->step != y->step ||
            x->attempt != y->attempt || x->compensate != y->compensate)
            return false;
    }
    return true;
}

/* "DDF" etc.: one letter per step; U = FAILED and uncertain. */
void
steps_string(char *out, const saga_type *t, const saga_state *s)
{
    static const char letters[] = {
        [SAGA_STEP_PENDING] = 'P', [SAGA_STEP_SENT] = 'S',         [SAGA_STEP_DONE] = 'D',
        [SAGA_STEP_FAILED] = 'F',  [SAGA_STEP_COMPENSATING] = 'C', [SAGA_STEP_COMPENSATED] = 'X',
        [SAGA_STEP_SKIPPED] = 'K',
    };
    size_t i;
    for (i = 0; i < t->n_steps; i++) {
        const saga_step_state *ss = &s->steps[i];
        out[i] = ss->status == SAGA_STEP_FAILED && (ss->flags & SAGA_STEP_F_UNCERTAIN)
                     ? 'U'
                     : letters[ss->status];
    }
    out[i] = '\0';
}

/* --- the driver ------------------------------------------------------------- */

drv *
drv_new(const saga_type *t)
{
    drv *v = calloc(1, sizeof *v);
    cr_assert_not_null(v);
    v->t = t;
    v->now = 1700000000000;
    v->seed = 42;
    return v;
}

void
drv_free(drv *v)
{
    for (size_t i = 0; i < v->n_log; i++)
        free(v->log[i]);
    free(v);
}

static void
record_cmds(drv *v)
{
    for (size_t i = 0; i < v->d.n_cmds; i++) {
        const saga_cmd *c = &v->d.cmds[i];
        size_t used = strlen(v->cmds);
        snprintf(v->cmds + used, sizeof v->cmds - used, "%s%s%s%u", used ? " " : "",
                 c->compensate ? "~" : "", v->t->steps[c->step].name, c->attempt);
    }
}

/* Decides one input, checks the decision against the new state and against
 * the expected verdict, round-trips the state and records the input. */
void
feed(drv *v, const saga_input *in, saga_verdict want)
{
    lb_err err = { 0 };
    saga_state before = v->s;
    cr_assert_lt(v->n_log, LOG_MAX);
    cr_assert_eq(saga_input_pack(&v->log[v->n_log], &v->log_len[v->n_log], in, &err), LB_OK, "%s",
                 err.msg);
    lb_status rc = saga_decide(&v->s, &v->d, v->t, before.status ? &before : NULL, in, &err);
    cr_assert_eq(rc, LB_OK, "decide: %s", err.msg);
    v->decisions[v->n_log++] = v->d;
    cr_assert_eq(v->d.verdict, want, "input %s step %u attempt %u: verdict %d, want %d (%s)",
                 saga_input_kind_name(in->kind), in->step, in->attempt, v->d.verdict, want,
                 v->d.log);
    cr_assert_eq(saga_state_check(v->t, &v->s, &err), LB_OK, "%s", err.msg);
    if (v->d.verdict != SAGA_APPLIED) {
        cr_assert(state_eq(&v->s, &before) || before.status == SAGA_NONE,
                  "an ignored input changed the state");
        cr_assert_eq(v->d.n_cmds, 0);
        cr_assert_eq(v->d.timer_op, SAGA_TIMER_KEEP);
    }
    if (v->d.timer_op == SAGA_TIMER_SET)
        cr_assert(v->s.has_timer && timer_eq(&v->s.timer, &v->d.timer));
    if (v->d.timer_op == SAGA_TIMER_CLEAR)
        cr_assert(!v->s.has_timer);
    cr_assert_eq(v->d.from, before.status);
    cr_assert_eq(v->d.to, v->s.status);
    cr_assert(v->d.log[0] != '\0', "every decision explains itself");
    /* stored form round-trips exactly */
    uint8_t *buf = NULL;
    size_t len = 0;
    saga_state back;
    cr_assert_eq(saga_state_pack(&buf, &len, &v->s, &err), LB_OK);
    cr_assert_eq(saga_state_unpack(&back, buf, len, &err), LB_OK, "%s", err.msg);
    free(buf);
    cr_assert(state_eq(&back, &v->s), "state does not round-trip");
    record_cmds(v);
    v->last_in = *in;
    v->now += 7;
    v->seed = v->seed * 6364136223846793005ull + 1442695040888963407ull;
}

/* Re-runs the recorded log from nothing: same decisions, same final state. */
void
replay_check(const drv *v)
{
    lb_err err = { 0 };
    saga_state s;
    memset(&s, 0, sizeof s);
    for (size_t i = 0; i < v->n_log; i++) {
        saga_input_rec rec;
        saga_decision d;
        if (saga_input_unpack(&rec, v->t, v->log[i], v->log_len[i], &err) != LB_OK) {
            /* only an event of a type the saga does not know fails to read
             * back, and the decider must have ignored it */
            cr_assert_eq(err.code, LB_ERR_DECODE);
            cr_assert_eq(v->decisions[i].verdict, SAGA_IGNORED, "%s", err.msg);
            continue;
        }
        cr_assert_eq(saga_decide(&s, &d, v->t, s.status ? &s : NULL, &rec.in, &err), LB_OK);
        cr_assert(decision_eq(&d, &v->decisions[i]), "replayed decision %zu differs: %s / %s", i,
                  d.log, v->decisions[i].log);
    }
    cr_assert(state_eq(&s, &v->s), "replay ends in another state");
}
