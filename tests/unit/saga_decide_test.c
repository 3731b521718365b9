/* saga_decide_test.c - the saga decider, driven through the three-step test
 * saga "sagatest" (steps a, b, c; 3 tries per step and per compensation).
 *
 * Scenarios are scripts of inputs in a small language (see act()); every row
 * states the saga status and step states it must end in and every command it
 * must have sent, in order. Each run is also replayed from its recorded log
 * (packed layby.v1.SagaInput) and must give identical decisions, and every
 * state it passes through must survive saga_state_pack/unpack unchanged.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layby/v1/saga.pb-c.h"
#include "saga_drv.h"
#include "sagas_test.h"

#define T (&saga_sagatest_v1)

static uint32_t
step_index(const drv *v, char letter)
{
    for (uint32_t i = 0; i < v->t->n_steps; i++)
        if (v->t->steps[i].name[0] == letter)
            return i;
    cr_assert_fail("no step %c", letter);
    return 0;
}

typedef struct verb_row {
    const char *verb;
    saga_input_kind kind;
    const ProtobufCMessageDescriptor *event; /* EVENT */
    bool final;
    bool comp;             /* default attempt: compensation's */
    saga_timer_kind timer; /* TIMER with explicit step */
} verb_row;

/* clang-format off */
static const verb_row verb_rows[] = {
    { "ok",        SAGA_IN_EVENT, &layby__v1__test_step_done__descriptor,        false, false, 0 },
    { "fail",      SAGA_IN_EVENT, &layby__v1__test_step_failed__descriptor,      false, false, 0 },
    { "final",     SAGA_IN_EVENT, &layby__v1__test_step_failed__descriptor,      true,  false, 0 },
    { "undone",    SAGA_IN_EVENT, &layby__v1__test_step_undone__descriptor,      false, true,  0 },
    { "undofail",  SAGA_IN_EVENT, &layby__v1__test_step_undo_failed__descriptor, false, true,  0 },
    { "undofinal", SAGA_IN_EVENT, &layby__v1__test_step_undo_failed__descriptor, true,  true,  0 },
    { "alien",     SAGA_IN_EVENT, &layby__v1__retry_saga__descriptor,            false, false, 0 },
    { "to",        SAGA_IN_TIMER, NULL, false, false, SAGA_TIMER_STEP_TIMEOUT },
    { "rt",        SAGA_IN_TIMER, NULL, false, false, SAGA_TIMER_STEP_RETRY },
    { "cto",       SAGA_IN_TIMER, NULL, false, true,  SAGA_TIMER_COMP_TIMEOUT },
    { "crt",       SAGA_IN_TIMER, NULL, false, true,  SAGA_TIMER_COMP_RETRY },
};
/* clang-format on */

/* One token of a script:
 *   start | fire | refire | dup | retry | resolve
 *   VERB:S[@N]   VERB from verb_rows, S a step letter, N the attempt
 *                (default: the step's current forward or compensation attempt)
 * followed by "!" when the input must be IGNORED or "?" when REFUSED.
 * fire delivers the saga's pending timer; refire the last fired one again;
 * dup the previous input again. */
static void
act(drv *v, const char *tok)
{
    char word[32];
    snprintf(word, sizeof word, "%s", tok);
    saga_verdict want = SAGA_APPLIED;
    size_t n = strlen(word);
    if (n > 0 && (word[n - 1] == '!' || word[n - 1] == '?')) {
        want = word[n - 1] == '!' ? SAGA_IGNORED : SAGA_REFUSED;
        word[--n] = '\0';
    }
    saga_input in = { .now_ms = v->now, .seed = v->seed, .msg_id = "m" };
    if (strcmp(word, "start") == 0) {
        in.kind = SAGA_IN_START;
        in.saga_id = SAGA_ID;
        in.reply_to = "_INBOX.req";
        in.actor = "member-1 USER";
        in.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        in.skip_mask = v->skip_mask;
    } else if (strcmp(word, "fire") == 0) {
        cr_assert(v->s.has_timer, "fire: no timer pending");
        in.kind = SAGA_IN_TIMER;
        in.timer = v->s.timer.kind;
        in.step = v->s.timer.step;
        in.attempt = v->s.timer.attempt;
        if (v->s.timer.due_ms > v->now)
            in.now_ms = v->now = v->s.timer.due_ms;
        v->fired = true;
        v->last_fired = v->s.timer;
    } else if (strcmp(word, "refire") == 0) {
        cr_assert(v->fired);
        in.kind = SAGA_IN_TIMER;
        in.timer = v->last_fired.kind;
        in.step = v->last_fired.step;
        in.attempt = v->last_fired.attempt;
    } else if (strcmp(word, "dup") == 0) {
        in = v->last_in;
    } else if (strcmp(word, "retry") == 0 || strcmp(word, "resolve") == 0) {
        in.kind = word[2] == 't' ? SAGA_IN_RETRY : SAGA_IN_RESOLVE;
        in.actor = "ops-kim";
        in.reason = "participant repaired";
    } else {
        char *colon = strchr(word, ':');
        cr_assert_not_null(colon, "bad token %s", tok);
        *colon = '\0';
        const verb_row *row = NULL;
        for (size_t i = 0; i < LB_COUNTOF(verb_rows); i++)
            if (strcmp(verb_rows[i].verb, word) == 0)
                row = &verb_rows[i];
        cr_assert_not_null(row, "unknown verb %s", word);
        in.kind = row->kind;
        in.step = step_index(v, colon[1]);
        const saga_step_state *ss = &v->s.steps[in.step];
        in.attempt = colon[2] == '@' ? (uint32_t)atoi(colon + 3)
                                     : (row->comp ? ss->comp_attempt : ss->attempt);
        in.event = row->event;
        in.final = row->final;
        in.timer = row->timer;
        if (row->event == &layby__v1__test_step_failed__descriptor ||
            row->event == &layby__v1__test_step_undo_failed__descriptor) {
            in.code = row->final ? LB_ERR_STOCK : LB_ERR_UNAVAILABLE;
            in.reason = row->final ? "no stock" : "participant down";
        }
    }
    feed(v, &in, want);
}

static void
run_script(drv *v, const char *script)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", script);
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save))
        act(v, tok);
}

/* --- every transition of the three-step saga ----------------------------------- */

/* Criterion hands parameters to a fresh process: no pointers inside. */
typedef struct scenario {
    char name[64];
    char script[192];
    saga_status want;
    char steps[8]; /* per step: P S D F U(failed, uncertain) C X(compensated) */
    char cmds[64]; /* every command sent, in order; ~ = compensation */
} scenario;

#define STUCK_AT_B       "start ok:a ok:b final:c undofail:b fire undofail:b fire undofail:b"
#define FINAL_STUCK_AT_B "start ok:a ok:b final:c undofinal:b"

/* clang-format off */
static scenario scenarios[] = {
    /* the happy path */
    { "completes", "start ok:a ok:b ok:c", SAGA_COMPLETED, "DDD", "a1 b1 c1" },
    /* each step failing for good: completed steps undone in reverse order */
    { "a_fails_final", "start final:a", SAGA_FAILED, "FPP", "a1" },
    { "b_fails_final", "start ok:a final:b undone:a", SAGA_FAILED, "XFP", "a1 b1 ~a1" },
    { "c_fails_final", "start ok:a ok:b final:c undone:b undone:a", SAGA_FAILED, "XXF",
      "a1 b1 c1 ~b1 ~a1" },
    /* each step failing, retried, then succeeding */
    { "a_fails_then_succeeds", "start fail:a fire ok:a ok:b ok:c", SAGA_COMPLETED, "DDD",
      "a1 a2 b1 c1" },
    { "b_fails_then_succeeds", "start ok:a fail:b fire ok:b ok:c", SAGA_COMPLETED, "DDD",
      "a1 b1 b2 c1" },
    { "c_fails_then_succeeds", "start ok:a ok:b fail:c fire ok:c", SAGA_COMPLETED, "DDD",
      "a1 b1 c1 c2" },
    { "b_fails_twice_then_succeeds", "start ok:a fail:b fire fail:b fire ok:b ok:c",
      SAGA_COMPLETED, "DDD", "a1 b1 b2 b3 c1" },
    /* each step timing out, retried, then succeeding */
    { "a_times_out_then_succeeds", "start fire fire ok:a ok:b ok:c", SAGA_COMPLETED, "DDD",
      "a1 a2 b1 c1" },
    { "b_times_out_then_succeeds", "start ok:a fire fire ok:b ok:c", SAGA_COMPLETED, "DDD",
      "a1 b1 b2 c1" },
    { "c_times_out_then_succeeds", "start ok:a ok:b fire fire ok:c", SAGA_COMPLETED, "DDD",
      "a1 b1 c1 c2" },
    /* retries spent: the failing step may have acted, so it is undone too */
    { "a_retries_spent", "start fail:a fire fail:a fire fail:a undone:a", SAGA_FAILED, "XPP",
      "a1 a2 a3 ~a1" },
    { "b_retries_spent", "start ok:a fail:b fire fail:b fire fail:b undone:b undone:a",
      SAGA_FAILED, "XXP", "a1 b1 b2 b3 ~b1 ~a1" },
    { "c_timeouts_spent", "start ok:a ok:b fire fire fire fire fire undone:c undone:b undone:a",
      SAGA_FAILED, "XXX", "a1 b1 c1 c2 c3 ~c1 ~b1 ~a1" },
    { "c_timeouts_spent_waiting", "start ok:a ok:b fire fire fire fire fire",
      SAGA_COMPENSATING, "DDC", "a1 b1 c1 c2 c3 ~c1" },
    { "final_after_transient_is_not_undone", "start ok:a fail:b fire final:b undone:a",
      SAGA_FAILED, "XFP", "a1 b1 b2 ~a1" },
    /* each compensation failing, retried, then succeeding */
    { "undo_b_fails_then_succeeds", "start ok:a ok:b final:c undofail:b fire undone:b undone:a",
      SAGA_FAILED, "XXF", "a1 b1 c1 ~b1 ~b2 ~a1" },
    { "undo_a_fails_then_succeeds", "start ok:a ok:b final:c undone:b undofail:a fire undone:a",
      SAGA_FAILED, "XXF", "a1 b1 c1 ~b1 ~a1 ~a2" },
    { "undo_c_times_out_then_succeeds",
      "start ok:a ok:b fail:c fire fail:c fire fail:c fire fire undone:c undone:b undone:a",
      SAGA_FAILED, "XXX", "a1 b1 c1 c2 c3 ~c1 ~c2 ~b1 ~a1" },
    /* each compensation always failing: STUCK, never dropped */
    { "undo_a_stuck", "start ok:a final:b undofail:a fire undofail:a fire undofail:a",
      SAGA_STUCK, "CFP", "a1 b1 ~a1 ~a2 ~a3" },
    { "undo_b_stuck", STUCK_AT_B, SAGA_STUCK, "DCF", "a1 b1 c1 ~b1 ~b2 ~b3" },
    { "undo_c_stuck_by_timeouts",
      "start ok:a ok:b fail:c fire fail:c fire fail:c fire fire fire fire fire",
      SAGA_STUCK, "DDC", "a1 b1 c1 c2 c3 ~c1 ~c2 ~c3" },
    { "undo_final_failure_sticks_at_once", FINAL_STUCK_AT_B, SAGA_STUCK, "DCF", "a1 b1 c1 ~b1" },
    /* operators */
    { "retry_from_stuck_finishes_rollback", STUCK_AT_B " retry undone:b undone:a", SAGA_FAILED,
      "XXF", "a1 b1 c1 ~b1 ~b2 ~b3 ~b4 ~a1" },
    { "retry_gets_a_fresh_budget",
      FINAL_STUCK_AT_B " retry undofail:b fire undofail:b fire undone:b undone:a", SAGA_FAILED,
      "XXF", "a1 b1 c1 ~b1 ~b2 ~b3 ~b4 ~a1" },
    { "retry_then_stuck_again",
      FINAL_STUCK_AT_B " retry undofail:b fire undofail:b fire undofail:b", SAGA_STUCK, "DCF",
      "a1 b1 c1 ~b1 ~b2 ~b3 ~b4" },
    { "resolve_from_stuck", STUCK_AT_B " resolve", SAGA_RESOLVED, "DCF",
      "a1 b1 c1 ~b1 ~b2 ~b3" },
    { "resolved_saga_ignores_everything",
      STUCK_AT_B " resolve undone:b! undofail:b! retry? resolve? cto:b@3!", SAGA_RESOLVED, "DCF",
      "a1 b1 c1 ~b1 ~b2 ~b3" },
    { "operator_refused_unless_stuck", "start retry? resolve? ok:a ok:b ok:c retry? resolve?",
      SAGA_COMPLETED, "DDD", "a1 b1 c1" },
    { "operator_refused_while_compensating", "start ok:a final:b retry? resolve? undone:a",
      SAGA_FAILED, "XFP", "a1 b1 ~a1" },
    { "late_undo_success_unsticks", STUCK_AT_B " undone:b@1 undone:a", SAGA_FAILED, "XXF",
      "a1 b1 c1 ~b1 ~b2 ~b3 ~a1" },
    { "late_undo_failure_while_stuck_ignored", STUCK_AT_B " undofail:b@2! undofinal:b!",
      SAGA_STUCK, "DCF", "a1 b1 c1 ~b1 ~b2 ~b3" },
    /* stale timers */
    { "stale_timeout_after_success", "start ok:a to:a@1! ok:b ok:c", SAGA_COMPLETED, "DDD",
      "a1 b1 c1" },
    { "stale_retry_timer_refired", "start fire fire refire! ok:a ok:b ok:c", SAGA_COMPLETED,
      "DDD", "a1 a2 b1 c1" },
    { "timeout_of_old_attempt_ignored", "start fire fire to:a@1! ok:a ok:b ok:c",
      SAGA_COMPLETED, "DDD", "a1 a2 b1 c1" },
    { "timeout_refired_after_failure", "start fail:a to:a@1! fire ok:a ok:b ok:c",
      SAGA_COMPLETED, "DDD", "a1 a2 b1 c1" },
    { "stale_compensation_timers", "start ok:a final:b cto:a@2! crt:a@1! to:b@1! undone:a",
      SAGA_FAILED, "XFP", "a1 b1 ~a1" },
    { "timer_of_other_step", "start ok:a to:c@1! rt:b@1! ok:b ok:c", SAGA_COMPLETED, "DDD",
      "a1 b1 c1" },
    { "timers_after_completion", "start ok:a ok:b ok:c to:c@1! rt:c@1!", SAGA_COMPLETED, "DDD",
      "a1 b1 c1" },
    /* late and reordered events */
    { "late_success_of_superseded_attempt_counts", "start fire fire ok:a@1 ok:b ok:c",
      SAGA_COMPLETED, "DDD", "a1 a2 b1 c1" },
    { "success_during_backoff_counts", "start fail:a ok:a@1 ok:b ok:c", SAGA_COMPLETED, "DDD",
      "a1 b1 c1" },
    { "failure_of_superseded_attempt_ignored", "start fire fire fail:a@1! ok:a ok:b ok:c",
      SAGA_COMPLETED, "DDD", "a1 a2 b1 c1" },
    { "final_failure_of_older_attempt_counts", "start fire fire final:a@1", SAGA_FAILED, "FPP",
      "a1 a2" },
    { "event_for_future_step_ignored", "start ok:b! final:c! ok:a ok:b ok:c", SAGA_COMPLETED,
      "DDD", "a1 b1 c1" },
    { "attempt_never_sent_ignored", "start ok:a@2! fail:a@5! ok:a ok:b ok:c", SAGA_COMPLETED,
      "DDD", "a1 b1 c1" },
    { "undo_events_while_running_ignored", "start undone:a! undofail:a! ok:a ok:b ok:c",
      SAGA_COMPLETED, "DDD", "a1 b1 c1" },
    { "forward_events_while_compensating_ignored",
      "start ok:a ok:b final:c ok:c! ok:b! fail:a! undone:b undone:a", SAGA_FAILED, "XXF",
      "a1 b1 c1 ~b1 ~a1" },
    { "undo_for_other_step_ignored", "start ok:a ok:b final:c undone:a! undone:b undone:a",
      SAGA_FAILED, "XXF", "a1 b1 c1 ~b1 ~a1" },
    { "undo_attempt_never_sent_ignored", "start ok:a final:b undone:a@2! undone:a", SAGA_FAILED,
      "XFP", "a1 b1 ~a1" },
    { "undo_failure_of_superseded_attempt_ignored",
      "start ok:a final:b undofail:a fire undofail:a@1! undone:a", SAGA_FAILED, "XFP",
      "a1 b1 ~a1 ~a2" },
    { "event_of_another_type_ignored", "start alien:a! ok:a ok:b ok:c", SAGA_COMPLETED, "DDD",
      "a1 b1 c1" },
    { "events_after_completion_ignored", "start ok:a ok:b ok:c ok:c! final:c! undone:a!",
      SAGA_COMPLETED, "DDD", "a1 b1 c1" },
    { "events_after_rollback_ignored", "start final:a ok:a! undone:a! final:a!", SAGA_FAILED,
      "FPP", "a1" },
    /* duplicates */
    { "duplicates_change_nothing",
      "start dup! ok:a dup! fail:b dup! fire fail:b dup! fire ok:b dup! ok:c dup!",
      SAGA_COMPLETED, "DDD", "a1 b1 b2 b3 c1" },
    { "duplicate_compensation_events",
      "start ok:a ok:b final:c dup! undofail:b dup! fire undone:b dup! undone:a dup!",
      SAGA_FAILED, "XXF", "a1 b1 c1 ~b1 ~b2 ~a1" },
    { "duplicate_operator_retry_refused", STUCK_AT_B " retry retry? undone:b undone:a",
      SAGA_FAILED, "XXF", "a1 b1 c1 ~b1 ~b2 ~b3 ~b4 ~a1" },
    /* no saga yet */
    { "unknown_saga", "ok:a! fire_none retry?", SAGA_NONE, "PPP", "" },
};
/* clang-format on */

ParameterizedTestParameters(saga_decide, transitions)
{
    return cr_make_param_array(scenario, scenarios, LB_COUNTOF(scenarios));
}

ParameterizedTest(scenario *sc, saga_decide, transitions)
{
    drv *v = drv_new(T);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", sc->script);
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
        if (strcmp(tok, "fire_none") == 0) { /* a timer for a saga that does not exist */
            saga_input in = { .kind = SAGA_IN_TIMER, .now_ms = v->now, .attempt = 1 };
            feed(v, &in, SAGA_IGNORED);
            continue;
        }
        act(v, tok);
    }
    char steps[SAGA_STEPS_MAX + 1];
    steps_string(steps, T, &v->s);
    cr_expect_eq(v->s.status, sc->want, "%s: status %s, want %s", sc->name,
                 saga_status_name(v->s.status), saga_status_name(sc->want));
    cr_expect_str_eq(steps, sc->steps, "%s: steps", sc->name);
    cr_expect_str_eq(v->cmds, sc->cmds, "%s: commands", sc->name);
    replay_check(v);
    drv_free(v);
}

/* --- replies, operators' records ------------------------------------------------- */

Test(saga_decide, requester_gets_one_reply_on_completion)
{
    drv *v = drv_new(T);
    run_script(v, "start ok:a ok:b");
    for (size_t i = 0; i < v->n_log; i++)
        cr_assert_not(v->decisions[i].reply.send, "no reply before the outcome");
    act(v, "ok:c");
    cr_assert(v->d.reply.send);
    cr_assert_not(v->d.reply.to_sender);
    cr_assert_eq(v->d.reply.status, LB_OK);
    cr_assert_str_eq(v->s.reply_to, "_INBOX.req");
    cr_assert_str_eq(v->s.actor, "member-1 USER");
    /* a repeated START learns the outcome, addressed to its own sender */
    act(v, "start!");
    cr_assert(v->d.reply.send && v->d.reply.to_sender);
    cr_assert_eq(v->d.reply.status, LB_OK);
    drv_free(v);
}

Test(saga_decide, requester_hears_failure_when_compensation_starts)
{
    drv *v = drv_new(T);
    run_script(v, "start ok:a ok:b final:c");
    cr_assert(v->d.reply.send);
    cr_assert_eq(v->d.reply.status, LB_ERR_STOCK);
    cr_assert_str_eq(v->d.reply.reason, "no stock");
    cr_assert_eq(v->s.fail_code, LB_ERR_STOCK);
    run_script(v, "undone:b undone:a");
    cr_assert_not(v->d.reply.send, "only one reply");
    act(v, "start!");
    cr_assert(v->d.reply.send && v->d.reply.to_sender);
    cr_assert_eq(v->d.reply.status, LB_ERR_STOCK);
    drv_free(v);
}

Test(saga_decide, timeouts_spent_reply_timeout)
{
    drv *v = drv_new(T);
    run_script(v, "start fire fire fire fire fire");
    cr_assert(v->d.reply.send);
    cr_assert_eq(v->d.reply.status, LB_ERR_TIMEOUT);
    cr_assert_eq(v->s.steps[0].flags & SAGA_STEP_F_UNCERTAIN, SAGA_STEP_F_UNCERTAIN);
    drv_free(v);
}

Test(saga_decide, running_saga_repeated_start_gets_no_reply_yet)
{
    drv *v = drv_new(T);
    run_script(v, "start ok:a start!");
    cr_assert_not(v->d.reply.send);
    drv_free(v);
}

Test(saga_decide, resolve_records_who_and_why)
{
    drv *v = drv_new(T);
    run_script(v, STUCK_AT_B " resolve");
    cr_assert_str_eq(v->s.resolved_by, "ops-kim");
    cr_assert_str_eq(v->s.resolve_reason, "participant repaired");
    cr_assert(strstr(v->d.log, "ops-kim") && strstr(v->d.log, "participant repaired"), "log: %s",
              v->d.log);
    cr_assert(v->d.reply.send && v->d.reply.to_sender);
    cr_assert_eq(v->d.reply.status, LB_OK);
    drv_free(v);
}

Test(saga_decide, retry_is_logged_with_who_and_why)
{
    drv *v = drv_new(T);
    run_script(v, STUCK_AT_B " retry");
    cr_assert(strstr(v->d.log, "operator ops-kim retries: participant repaired"), "log: %s",
              v->d.log);
    cr_assert_eq(v->s.status, SAGA_COMPENSATING);
    cr_assert(v->d.reply.send && v->d.reply.to_sender && v->d.reply.status == LB_OK);
    drv_free(v);
}

Test(saga_decide, operator_needs_actor_and_reason)
{
    drv *v = drv_new(T);
    run_script(v, STUCK_AT_B);
    saga_input in = { .kind = SAGA_IN_RESOLVE, .now_ms = v->now, .actor = "ops-kim" };
    feed(v, &in, SAGA_REFUSED);
    cr_assert_eq(v->d.reply.status, LB_ERR_INVALID);
    in = (saga_input){ .kind = SAGA_IN_RETRY, .now_ms = v->now, .reason = "why" };
    feed(v, &in, SAGA_REFUSED);
    cr_assert_eq(v->s.status, SAGA_STUCK);
    drv_free(v);
}

Test(saga_decide, operator_refusals_name_the_state)
{
    drv *v = drv_new(T);
    run_script(v, "retry?");
    cr_assert_eq(v->d.reply.status, LB_ERR_NOT_FOUND);
    run_script(v, "start ok:a retry?");
    cr_assert_eq(v->d.reply.status, LB_ERR_STATE);
    cr_assert(strstr(v->d.reply.reason, "RUNNING"), "%s", v->d.reply.reason);
    drv_free(v);
}

Test(saga_decide, start_refuses_a_bad_id)
{
    saga_state s;
    saga_decision d;
    lb_err err = { 0 };
    saga_input in = { .kind = SAGA_IN_START, .saga_id = "not-a-uuid" };
    cr_assert_eq(saga_decide(&s, &d, T, NULL, &in, &err), LB_OK);
    cr_assert_eq(d.verdict, SAGA_REFUSED);
    cr_assert_eq(d.reply.status, LB_ERR_INVALID);
    cr_assert_eq(s.status, SAGA_NONE);
}

Test(saga_decide, timers_carry_timeout_and_backoff)
{
    drv *v = drv_new(T);
    act(v, "start");
    cr_assert_eq(v->d.timer_op, SAGA_TIMER_SET);
    cr_assert_eq(v->d.timer.kind, SAGA_TIMER_STEP_TIMEOUT);
    cr_assert_eq(v->d.timer.due_ms, v->s.created_ms + 1000);
    cr_assert_eq(v->d.n_cmds, 1);
    cr_assert_str_eq(v->d.cmds[0].subject, SAGA_SUBJ_TEST_DO);
    cr_assert_eq(v->d.cmds[0].desc, &layby__v1__test_step_do__descriptor);
    int64_t t0 = v->now;
    act(v, "fail:a");
    cr_assert_eq(v->d.timer.kind, SAGA_TIMER_STEP_RETRY);
    int64_t delay = v->d.timer.due_ms - t0;
    cr_assert(delay >= 80 && delay <= 100, "first backoff %lld", (long long)delay);
    run_script(v, "fire ok:a ok:b ok:c");
    cr_assert_eq(v->d.timer_op, SAGA_TIMER_CLEAR);
    cr_assert_not(v->s.has_timer);
    drv_free(v);
}

Test(saga_decide, wrong_version_or_broken_state_is_an_error)
{
    drv *v = drv_new(T);
    run_script(v, "start ok:a");
    saga_state bad = v->s;
    bad.version = 2;
    saga_state out;
    saga_decision d;
    lb_err err = { 0 };
    saga_input in = { .kind = SAGA_IN_EVENT,
                      .event = &layby__v1__test_step_done__descriptor,
                      .step = 1,
                      .attempt = 1 };
    cr_assert_eq(saga_decide(&out, &d, T, &bad, &in, &err), LB_ERR_INVALID);
    bad = v->s;
    bad.steps[0].status = SAGA_STEP_PENDING; /* breaks invariant (1) */
    cr_assert_eq(saga_decide(&out, &d, T, &bad, &in, &err), LB_ERR_INVALID);
    bad = v->s;
    bad.has_timer = false; /* the current step has no timer: (1) */
    cr_assert_eq(saga_decide(&out, &d, T, &bad, &in, &err), LB_ERR_INVALID);
    drv_free(v);
}

Test(saga_decide, out_may_alias_in)
{
    drv *v = drv_new(T);
    run_script(v, "start");
    saga_state s = v->s;
    saga_decision d;
    lb_err err = { 0 };
    saga_input in = { .kind = SAGA_IN_EVENT,
                      .event = &layby__v1__test_step_done__descriptor,
                      .step = 0,
                      .attempt = 1,
                      .now_ms = v->now };
    cr_assert_eq(saga_decide(&s, &d, T, &s, &in, &err), LB_OK);
    cr_assert_eq(d.verdict, SAGA_APPLIED);
    cr_assert_eq(s.steps[0].status, SAGA_STEP_DONE);
    cr_assert_eq(s.step, 1);
    drv_free(v);
}

/* --- backoff ------------------------------------------------------------------- */

Test(saga_backoff, doubles_up_to_the_cap_without_jitter)
{
    saga_retry r = { .attempts = 10, .base_ms = 100, .multiplier = 2, .cap_ms = 1000 };
    int64_t want[] = { 100, 200, 400, 800, 1000, 1000, 1000 };
    for (size_t i = 0; i < LB_COUNTOF(want); i++)
        cr_assert_eq(saga_backoff_ms(&r, (uint32_t)i + 1, 12345), want[i], "attempt %zu", i + 1);
}

Test(saga_backoff, jitter_stays_in_bounds_and_is_deterministic)
{
    saga_retry r = {
        .attempts = 10, .base_ms = 100, .multiplier = 3, .cap_ms = 5000, .jitter_pct = 25
    };
    bool varied = false;
    for (uint64_t seed = 0; seed < 500; seed++) {
        for (uint32_t a = 1; a <= 6; a++) {
            int64_t full = 100;
            for (uint32_t k = 1; k < a; k++)
                full = full * 3 > 5000 ? 5000 : full * 3;
            int64_t d = saga_backoff_ms(&r, a, seed);
            cr_assert(d <= full && d >= full - full / 4, "attempt %u: %lld not in [%lld, %lld]", a,
                      (long long)d, (long long)(full - full / 4), (long long)full);
            cr_assert_eq(d, saga_backoff_ms(&r, a, seed), "same inputs, same delay");
            if (d != full)
                varied = true;
        }
    }
    cr_assert(varied, "jitter never moved a delay");
}

Test(saga_backoff, constant_huge_and_degenerate_policies)
{
    saga_retry constant = { .attempts = 5, .base_ms = 250, .multiplier = 1, .cap_ms = 250 };
    cr_assert_eq(saga_backoff_ms(&constant, 4, 9), 250);
    saga_retry huge = { .attempts = 100,
                        .base_ms = INT64_MAX / 4,
                        .multiplier = 10,
                        .cap_ms = INT64_MAX / 2,
                        .jitter_pct = 100 };
    for (uint32_t a = 1; a < 100; a += 7) {
        int64_t d = saga_backoff_ms(&huge, a, a);
        cr_assert(d >= 0 && d <= INT64_MAX / 2, "no overflow at attempt %u", a);
    }
    saga_retry zero = { .attempts = 1 };
    cr_assert_eq(saga_backoff_ms(&zero, 1, 1), 0);
    cr_assert_eq(saga_backoff_ms(NULL, 1, 1), 0);
}

/* --- versions -------------------------------------------------------------------- */

static lb_status
test_build(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    (void)in, (void)err;
    *out = NULL;
    return LB_OK;
}

static const saga_retry v2_retry = { .attempts = 2, .base_ms = 50, .multiplier = 2, .cap_ms = 500 };

#define V2_STEP(n, ...)                                                                            \
    {                                                                                              \
        .name = n, .command = &layby__v1__test_step_do__descriptor, .subject = SAGA_SUBJ_TEST_DO,  \
        .build = test_build, .on_ok = &layby__v1__test_step_done__descriptor,                      \
        .on_ok_subject = SAGA_SUBJ_TEST_DONE, .on_fail = &layby__v1__test_step_failed__descriptor, \
        .on_fail_subject = SAGA_SUBJ_TEST_FAILED, .timeout_ms = 2000, .retry = &v2_retry,          \
        .compensate = &layby__v1__test_step_undo__descriptor,                                      \
        .compensate_subject = SAGA_SUBJ_TEST_UNDO, .build_compensate = test_build,                 \
        .on_compensated = &layby__v1__test_step_undone__descriptor,                                \
        .on_compensated_subject = SAGA_SUBJ_TEST_UNDONE,                                           \
        .on_compensate_fail = &layby__v1__test_step_undo_failed__descriptor,                       \
        .on_compensate_fail_subject = SAGA_SUBJ_TEST_UNDO_FAILED, __VA_ARGS__                      \
    }

/* Version 2 of the test saga: a fourth step and other timings. */
static const saga_step v2_steps[] = { V2_STEP("a"), V2_STEP("b"), V2_STEP("c"), V2_STEP("d") };
static const saga_type sagatest_v2 = {
    .name = "sagatest",
    .version = 2,
    .start = &layby__v1__start_test_saga__descriptor,
    .steps = v2_steps,
    .n_steps = LB_COUNTOF(v2_steps),
};

Test(saga_versions, started_on_v1_finishes_on_v1_after_v2_is_registered)
{
    /* an old build knows only v1 and starts a saga */
    static const saga_type *const old_build[] = { &saga_sagatest_v1 };
    saga_registry reg;
    lb_err err = { 0 };
    cr_assert_eq(saga_registry_init(&reg, old_build, 1, &err), LB_OK, "%s", err.msg);
    drv *v = drv_new(saga_registry_latest(&reg, "sagatest"));
    cr_assert_eq(v->t->version, 1);
    run_script(v, "start ok:a");
    cr_assert_eq(v->s.version, 1);

    /* a new build registers v2: new sagas start on it, the old one keeps v1 */
    static const saga_type *const new_build[] = { &saga_sagatest_v1, &sagatest_v2 };
    cr_assert_eq(saga_registry_init(&reg, new_build, 2, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(saga_registry_latest(&reg, "sagatest"), &sagatest_v2);
    const saga_type *t = NULL;
    cr_assert_eq(saga_registry_for(&t, &reg, &v->s, &err), LB_OK);
    cr_assert_eq(t, &saga_sagatest_v1);
    v->t = t;
    run_script(v, "fire fire ok:b ok:c");
    cr_assert_eq(v->s.status, SAGA_COMPLETED, "v1 ends after three steps");
    cr_assert_eq(v->s.version, 1);
    cr_assert_str_eq(v->cmds, "a1 b1 b2 c1");
    /* deciding it with v2 is refused, not silently mixed */
    saga_state out;
    saga_decision d;
    saga_input in = { .kind = SAGA_IN_TIMER };
    cr_assert_eq(saga_decide(&out, &d, &sagatest_v2, &v->s, &in, &err), LB_ERR_INVALID);
    drv_free(v);

    /* a new saga runs v2's four steps and its timings */
    drv *w = drv_new(saga_registry_latest(&reg, "sagatest"));
    run_script(w, "start");
    cr_assert_eq(w->s.version, 2);
    cr_assert_eq(w->d.timer.due_ms, w->s.created_ms + 2000);
    run_script(w, "ok:a ok:b ok:c");
    cr_assert_eq(w->s.status, SAGA_RUNNING, "v2 has a fourth step");
    run_script(w, "ok:d");
    cr_assert_eq(w->s.status, SAGA_COMPLETED);
    cr_assert_str_eq(w->cmds, "a1 b1 c1 d1");
    drv_free(w);
}

Test(saga_versions, a_saga_whose_version_is_gone_is_not_found)
{
    static const saga_type *const only_v2[] = { &sagatest_v2 };
    saga_registry reg;
    lb_err err = { 0 };
    cr_assert_eq(saga_registry_init(&reg, only_v2, 1, &err), LB_OK);
    saga_state s = { .version = 1, .status = SAGA_RUNNING };
    snprintf(s.type, sizeof s.type, "sagatest");
    const saga_type *t = NULL;
    cr_assert_eq(saga_registry_for(&t, &reg, &s, &err), LB_ERR_NOT_FOUND);
    cr_assert_null(t);
    cr_assert_null(saga_registry_find(&reg, "sagatest", 1));
    cr_assert_null(saga_registry_latest(&reg, "nosuch"));
}

Test(saga_versions, registry_refuses_duplicates_and_broken_tables)
{
    saga_registry reg;
    lb_err err = { 0 };
    static const saga_type *const twice[] = { &saga_sagatest_v1, &saga_sagatest_v1 };
    cr_assert_eq(saga_registry_init(&reg, twice, 2, &err), LB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "twice"), "%s", err.msg);

    static const saga_retry bad_retry = { .attempts = 0 };
    static const saga_step bad_steps[] = {
        { .name = "x",
          .on_ok = &layby__v1__test_step_done__descriptor,
          .timeout_ms = 10,
          .retry = &bad_retry },
    };
    static const saga_type bad = { .name = "bad",
                                   .version = 1,
                                   .start = &layby__v1__start_test_saga__descriptor,
                                   .steps = bad_steps,
                                   .n_steps = 1 };
    static const saga_type *const broken[] = { &bad };
    cr_assert_eq(saga_registry_init(&reg, broken, 1, &err), LB_ERR_CONFIG);

    static const saga_step same_events[] = {
        { .name = "x",
          .on_ok = &layby__v1__test_step_done__descriptor,
          .on_fail = &layby__v1__test_step_done__descriptor,
          .timeout_ms = 10,
          .retry = &v2_retry },
    };
    static const saga_type ambiguous = { .name = "amb",
                                         .version = 1,
                                         .start = &layby__v1__start_test_saga__descriptor,
                                         .steps = same_events,
                                         .n_steps = 1 };
    cr_assert_eq(saga_type_check(&ambiguous, &err), LB_ERR_CONFIG);
    cr_assert_eq(saga_type_check(&saga_sagatest_v1, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(saga_type_check(&sagatest_v2, &err), LB_OK, "%s", err.msg);
}

/* --- steps a start command rules out (saga_step.skip) ------------------------ */

/* b runs only for a saga whose start key is "wish" (as order_place v3's
 * wishlist step runs only for an order from the wishlist). */
static bool
skip_unless_wish(const ProtobufCMessage *start)
{
    return strcmp(((const Layby__V1__StartTestSaga *)start)->key, "wish") != 0;
}

#define SKIP_STEP(n)                                                                              \
    {                                                                                             \
        .name = n, .command = &layby__v1__test_step_do__descriptor, .subject = SAGA_SUBJ_TEST_DO, \
        .build = test_build, .on_ok = &layby__v1__test_step_done__descriptor,                     \
        .on_ok_subject = SAGA_SUBJ_TEST_DONE, .timeout_ms = 2000, .retry = &v2_retry,             \
        .skip = skip_unless_wish,                                                                 \
    }

static const saga_step skip_steps[] = { V2_STEP("a"), SKIP_STEP("b"), V2_STEP("c") };
static const saga_type sagaskip = {
    .name = "sagaskip",
    .version = 1,
    .start = &layby__v1__start_test_saga__descriptor,
    .steps = skip_steps,
    .n_steps = LB_COUNTOF(skip_steps),
};

Test(saga_skip, a_step_the_start_rules_out_is_never_sent_and_never_undone)
{
    lb_err err = { 0 };
    cr_assert_eq(saga_type_check(&sagaskip, &err), LB_OK, "%s", err.msg);
    Layby__V1__StartTestSaga plain = LAYBY__V1__START_TEST_SAGA__INIT;
    Layby__V1__StartTestSaga wish = LAYBY__V1__START_TEST_SAGA__INIT;
    plain.key = "order-1";
    wish.key = "wish";
    cr_assert_eq(saga_skips_read(&sagaskip, &plain.base), 1u << 1);
    cr_assert_eq(saga_skips_read(&sagaskip, &wish.base), 0u);
    cr_assert_eq(saga_skips_read(&saga_sagatest_v1, &plain.base), 0u, "no step has a skip");

    char steps[16];
    drv *v = drv_new(&sagaskip);
    v->skip_mask = saga_skips_read(&sagaskip, &plain.base);
    run_script(v, "start ok:a");
    cr_assert_eq(v->s.step, 2, "b passed over, c running");
    cr_assert_str_eq(v->cmds, "a1 c1");
    cr_assert_not_null(strstr(v->d.log, "skip b"), "%s", v->d.log);
    run_script(v, "final:c");
    cr_assert_eq(v->s.status, SAGA_COMPENSATING);
    run_script(v, "undone:a");
    cr_assert_eq(v->s.status, SAGA_FAILED);
    steps_string(steps, v->t, &v->s);
    cr_assert_str_eq(steps, "XKF", "a undone, b skipped, c failed");
    cr_assert_str_eq(v->cmds, "a1 c1 ~a1", "the skipped step is not undone");
    replay_check(v);
    drv_free(v);

    drv *w = drv_new(&sagaskip);
    w->skip_mask = saga_skips_read(&sagaskip, &wish.base);
    run_script(w, "start ok:a ok:b ok:c");
    cr_assert_eq(w->s.status, SAGA_COMPLETED);
    cr_assert_str_eq(w->cmds, "a1 b1 c1", "the saga that needs b runs it");
    replay_check(w);
    drv_free(w);

    /* A step that answers the requester (or is undone, ends, is the pivot)
     * cannot be skipped: later steps could notice it never ran. */
    static const saga_step replying[] = {
        { .name = "r",
          .command = &layby__v1__test_step_do__descriptor,
          .subject = SAGA_SUBJ_TEST_DO,
          .build = test_build,
          .on_ok = &layby__v1__test_step_done__descriptor,
          .on_ok_subject = SAGA_SUBJ_TEST_DONE,
          .timeout_ms = 2000,
          .retry = &v2_retry,
          .reply = true,
          .skip = skip_unless_wish },
    };
    static const saga_type bad = { .name = "badskip",
                                   .version = 1,
                                   .start = &layby__v1__start_test_saga__descriptor,
                                   .steps = replying,
                                   .n_steps = 1 };
    cr_assert_eq(saga_type_check(&bad, &err), LB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "may be skipped"), "%s", err.msg);
}

/* --- a step that answers the requester (.answers) ------------------------------ */

/* Its command carries the requester's inbox, so it may only be a step whose
 * success is the saga's one reply: one marked reply, one that ends the saga,
 * or the last. A middle step's participant would answer while the saga still
 * had steps that may fail. */
Test(saga_decide, only_the_step_whose_success_is_the_reply_may_answer_the_requester)
{
    lb_err err = { 0 };
    static const saga_step ok_reply[] = { V2_STEP("a", .reply = true, .answers = true),
                                          V2_STEP("b") };
    static const saga_step ok_last[] = { V2_STEP("a"), V2_STEP("b", .answers = true) };
    static const saga_step middle[] = { V2_STEP("a", .answers = true), V2_STEP("b") };
    static const saga_step waits[] = {
        { .name = "w",
          .kind = SAGA_STEP_WAIT,
          .on_ok = &layby__v1__test_step_done__descriptor,
          .on_ok_subject = SAGA_SUBJ_TEST_DONE,
          .timeout_ms = 2000,
          .retry = &v2_retry,
          .answers = true },
    };
    struct {
        const saga_step *steps;
        size_t n;
        lb_status want;
    } cases[] = {
        { ok_reply, LB_COUNTOF(ok_reply), LB_OK },
        { ok_last, LB_COUNTOF(ok_last), LB_OK },
        { middle, LB_COUNTOF(middle), LB_ERR_CONFIG },
        { waits, LB_COUNTOF(waits), LB_ERR_CONFIG },
    };
    for (size_t i = 0; i < LB_COUNTOF(cases); i++) {
        saga_type t = { .name = "answers",
                        .version = 1,
                        .start = &layby__v1__start_test_saga__descriptor,
                        .steps = cases[i].steps,
                        .n_steps = cases[i].n };
        lb_err_clear(&err);
        cr_assert_eq(saga_type_check(&t, &err), cases[i].want, "case %zu: %s", i, err.msg);
        if (cases[i].want != LB_OK)
            cr_assert(strstr(err.msg, "may answer the requester"), "case %zu: %s", i, err.msg);
    }
}

/* --- a repeated START after an early OK (a step with .reply) ------------------ */

/* a answers the requester (as order_place's payment_pending does); b may
 * still fail, and the saga is rolled back after its requester heard OK. */
static const saga_step reply_steps[] = { V2_STEP("a", .reply = true), V2_STEP("b") };
static const saga_type sagareply = {
    .name = "sagareply",
    .version = 1,
    .start = &layby__v1__start_test_saga__descriptor,
    .steps = reply_steps,
    .n_steps = LB_COUNTOF(reply_steps),
};

Test(saga_decide, repeated_start_after_an_early_ok_hears_ok_though_the_saga_failed_later)
{
    lb_err err = { 0 };
    cr_assert_eq(saga_type_check(&sagareply, &err), LB_OK, "%s", err.msg);
    drv *v = drv_new(&sagareply);
    act(v, "start");
    act(v, "ok:a");
    cr_assert(v->d.reply.send && !v->d.reply.to_sender, "a answers the requester");
    cr_assert_eq(v->d.reply.status, LB_OK);
    run_script(v, "final:b undone:a");
    cr_assert_eq(v->s.status, SAGA_FAILED);
    /* The requester's OK was lost (the chaos run: a 504 read-back while
     * nats-server restarted); its repeat must hear that OK again, not b's
     * failure: the first outcome (DESIGN 5). */
    act(v, "start!");
    cr_assert(v->d.reply.send && v->d.reply.to_sender);
    cr_assert_eq(v->d.reply.status, LB_OK, "got %d %s", v->d.reply.status, v->d.reply.reason);
    replay_check(v);
    drv_free(v);

    /* a saga that failed before any OK still answers its failure */
    drv *w = drv_new(&sagareply);
    run_script(w, "start final:a");
    act(w, "start!");
    cr_assert(w->d.reply.send && w->d.reply.to_sender);
    cr_assert_neq(w->d.reply.status, LB_OK);
    drv_free(w);
}

/* --- messages ------------------------------------------------------------------ */

Test(saga_messages, event_read_takes_step_attempt_final_code_reason)
{
    Layby__V1__TestStepFailed ev = LAYBY__V1__TEST_STEP_FAILED__INIT;
    ev.saga_id = SAGA_ID;
    ev.step = 2;
    ev.attempt = 3;
    ev.code = "out_of_stock";
    ev.reason = "sold out";
    ev.final = 1;
    saga_input in = { 0 };
    lb_err err = { 0 };
    cr_assert_eq(saga_event_read(&in, T, &ev.base, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(in.kind, SAGA_IN_EVENT);
    cr_assert_eq(in.event, &layby__v1__test_step_failed__descriptor);
    cr_assert_eq(in.step, 2);
    cr_assert_eq(in.attempt, 3);
    cr_assert(in.final);
    cr_assert_eq(in.code, LB_ERR_STOCK);
    cr_assert_str_eq(in.reason, "sold out");

    Layby__V1__TestStepDone ok = LAYBY__V1__TEST_STEP_DONE__INIT;
    ok.step = 1;
    cr_assert_eq(saga_event_read(&in, T, &ok.base, &err), LB_OK);
    cr_assert_eq(in.attempt, 0, "not said");
    cr_assert_not(in.final);
    cr_assert_eq(in.code, LB_OK);
    cr_assert_null(in.reason);

    /* without a step field the type must name exactly one step: here it names none */
    Layby__V1__RetrySaga alien = LAYBY__V1__RETRY_SAGA__INIT;
    cr_assert_eq(saga_event_read(&in, T, &alien.base, &err), LB_ERR_INVALID);
}

Test(saga_messages, commands_are_built_from_the_start_message)
{
    drv *v = drv_new(T);
    run_script(v, "start ok:a final:b");
    Layby__V1__StartTestSaga start = LAYBY__V1__START_TEST_SAGA__INIT;
    start.saga_id = SAGA_ID;
    start.key = "order-7";
    start.script = "b:fail";
    ProtobufCMessage *m = NULL;
    lb_err err = { 0 };
    saga_cmd cmd = { .subject = SAGA_SUBJ_TEST_DO,
                     .desc = &layby__v1__test_step_do__descriptor,
                     .step = 1,
                     .attempt = 2 };
    cr_assert_eq(saga_cmd_build(&m, T, &v->s, &cmd, &start.base, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(m->descriptor, &layby__v1__test_step_do__descriptor);
    Layby__V1__TestStepDo *doit = (Layby__V1__TestStepDo *)m;
    cr_assert_str_eq(doit->saga_id, SAGA_ID);
    cr_assert_eq(doit->step, 1);
    cr_assert_eq(doit->attempt, 2);
    cr_assert_str_eq(doit->key, "order-7");
    cr_assert_str_eq(doit->script, "b:fail");
    protobuf_c_message_free_unpacked(m, NULL);

    /* the decision of final:b asked to undo a: build exactly that */
    cr_assert_eq(v->d.n_cmds, 1);
    cr_assert_eq(saga_cmd_build(&m, T, &v->s, &v->d.cmds[0], &start.base, &err), LB_OK);
    cr_assert_eq(m->descriptor, &layby__v1__test_step_undo__descriptor);
    Layby__V1__TestStepUndo *undo = (Layby__V1__TestStepUndo *)m;
    cr_assert_eq(undo->step, 0);
    cr_assert_eq(undo->attempt, 1);
    cr_assert_str_eq(undo->key, "order-7");
    protobuf_c_message_free_unpacked(m, NULL);

    Layby__V1__RetrySaga wrong = LAYBY__V1__RETRY_SAGA__INIT;
    cr_assert_eq(saga_cmd_build(&m, T, &v->s, &cmd, &wrong.base, &err), LB_ERR_INVALID);
    drv_free(v);
}

Test(saga_messages, state_unpack_refuses_garbage_and_out_of_range)
{
    saga_state s;
    lb_err err = { 0 };
    const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f };
    cr_assert_eq(saga_state_unpack(&s, garbage, sizeof garbage, &err), LB_ERR_DECODE);

    Layby__V1__SagaState m = LAYBY__V1__SAGA_STATE__INIT;
    m.status = 99;
    uint8_t buf[256];
    size_t len = protobuf_c_message_pack(&m.base, buf);
    cr_assert_eq(saga_state_unpack(&s, buf, len, &err), LB_ERR_DECODE);

    char longid[100];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    m.status = 1;
    m.saga_id = longid;
    len = protobuf_c_message_pack(&m.base, buf);
    cr_assert_eq(saga_state_unpack(&s, buf, len, &err), LB_ERR_DECODE);
}

Test(saga_messages, names_tables)
{
    cr_assert_str_eq(saga_status_name(SAGA_STUCK), "STUCK");
    cr_assert_eq(saga_status_from_name("COMPENSATING"), SAGA_COMPENSATING);
    cr_assert_eq(saga_status_from_name("nope"), SAGA_NONE);
    cr_assert_str_eq(saga_status_subject(SAGA_COMPLETED), "layby.evt.saga.completed");
    cr_assert(saga_status_terminal(SAGA_FAILED));
    cr_assert_not(saga_status_terminal(SAGA_STUCK));
    cr_assert_str_eq(saga_step_status_name(SAGA_STEP_COMPENSATED), "COMPENSATED");
    cr_assert_str_eq(saga_timer_kind_name(SAGA_TIMER_COMP_RETRY), "COMP_RETRY");
    cr_assert_str_eq(saga_input_kind_name(SAGA_IN_RESOLVE), "RESOLVE");
}

/* --- duplicated and reordered inputs converge ---------------------------------------
 *
 * A simulated world runs one saga: participants answer each command by a
 * script, messages wait in a pool and are delivered in random order, any
 * delivered message may come again later, stale timers are thrown in, and a
 * first attempt's timeout may fire while its answer is still on its way (so a
 * late answer meets the retry). The saga must end exactly as the ordered run
 * (FIFO, nothing repeated, timers only when nothing is on its way) does.
 * Scripts give each attempt's answer: o ok, t transient failure, f final
 * failure, - silence (the last letter repeats). Business outcomes are the same
 * for every attempt, as participants are idempotent per saga and step.
 */

typedef struct world_script {
    const char *fwd[3];
    const char *comp[3];
} world_script;

/* clang-format off */
static const world_script world_scripts[] = {
    { { "o", "o", "o" },    { "o", "o", "o" } },
    { { "to", "-o", "o" },  { "o", "o", "o" } },
    { { "o", "o", "f" },    { "o", "to", "o" } },
    { { "o", "f", "o" },    { "-o", "o", "o" } },
    { { "o", "o", "t" },    { "o", "o", "o" } },
    { { "o", "o", "-" },    { "to", "o", "-o" } },
    { { "o", "o", "f" },    { "o", "t", "o" } },
    { { "o", "o", "f" },    { "o", "f", "o" } },
    { { "o", "-o", "tf" },  { "t", "o", "o" } },
    { { "f", "o", "o" },    { "o", "o", "o" } },
};
/* clang-format on */

#define POOL_MAX 256

typedef struct wmsg {
    saga_input in;
    bool fresh; /* never delivered: the world is not quiet while one waits */
} wmsg;

typedef struct world {
    const saga_type *t; /* NULL = T */
    const world_script *ws;
    uint64_t rng;
    bool chaos;
    wmsg pool[POOL_MAX];
    size_t n_pool;
    saga_timer seen_timers[64];
    size_t n_seen;
    saga_state s;
    int64_t now;
    size_t delivered;
} world;

static uint64_t
rnd(world *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return w->rng;
}

static void
pool_push(world *w, const saga_input *in, bool fresh)
{
    cr_assert_lt(w->n_pool, POOL_MAX);
    w->pool[w->n_pool++] = (wmsg){ .in = *in, .fresh = fresh };
}

static char
answer_of(const char *script, uint32_t attempt)
{
    size_t n = strlen(script);
    return script[attempt - 1 < n ? attempt - 1 : n - 1];
}

/* The participant's answer to one command, into the pool. */
static void
participant(world *w, const saga_cmd *c)
{
    char a = answer_of(c->compensate ? w->ws->comp[c->step] : w->ws->fwd[c->step], c->attempt);
    if (a == '-')
        return;
    saga_input in = { .kind = SAGA_IN_EVENT, .step = c->step, .attempt = c->attempt };
    if (a == 'o')
        in.event = c->compensate ? &layby__v1__test_step_undone__descriptor
                                 : &layby__v1__test_step_done__descriptor;
    else
        in.event = c->compensate ? &layby__v1__test_step_undo_failed__descriptor
                                 : &layby__v1__test_step_failed__descriptor;
    in.final = a == 'f';
    in.code = a == 'f' ? LB_ERR_STOCK : (a == 't' ? LB_ERR_UNAVAILABLE : LB_OK);
    in.reason = a == 'o' ? NULL : (a == 'f' ? "refused" : "down");
    pool_push(w, &in, true);
}

static void
deliver(world *w, saga_input *in)
{
    saga_decision d;
    lb_err err = { 0 };
    in->now_ms = w->now;
    in->seed = rnd(w);
    saga_state prev = w->s;
    cr_assert_eq(saga_decide(&w->s, &d, w->t ? w->t : T, prev.status ? &prev : NULL, in, &err),
                 LB_OK, "%s", err.msg);
    w->delivered++;
    for (size_t i = 0; i < d.n_cmds; i++)
        participant(w, &d.cmds[i]);
    if (d.timer_op == SAGA_TIMER_SET && w->n_seen < LB_COUNTOF(w->seen_timers))
        w->seen_timers[w->n_seen++] = d.timer;
    if (w->chaos && rnd(w) % 3 == 0) /* this message will be delivered again */
        pool_push(w, in, false);
    w->now += 1;
}

static bool
any_fresh(const world *w)
{
    for (size_t i = 0; i < w->n_pool; i++)
        if (w->pool[i].fresh)
            return true;
    return false;
}

static void
fire_timer(world *w)
{
    saga_input in = { .kind = SAGA_IN_TIMER,
                      .timer = w->s.timer.kind,
                      .step = w->s.timer.step,
                      .attempt = w->s.timer.attempt };
    if (w->s.timer.due_ms > w->now)
        w->now = w->s.timer.due_ms;
    deliver(w, &in);
}

/* Runs the world until the saga waits for nothing; returns its final state. */
static void
world_run(world *w)
{
    saga_input start = { .kind = SAGA_IN_START, .saga_id = SAGA_ID };
    deliver(w, &start);
    while (w->delivered < 2000) {
        bool fresh = any_fresh(w);
        if (w->chaos && w->n_seen > 0 && rnd(w) % 7 == 0) { /* a stale or repeated timer */
            saga_timer tm = w->seen_timers[rnd(w) % w->n_seen];
            saga_input in = {
                .kind = SAGA_IN_TIMER, .timer = tm.kind, .step = tm.step, .attempt = tm.attempt
            };
            if (!(w->s.has_timer && timer_eq(&tm, &w->s.timer)))
                deliver(w, &in);
            continue;
        }
        /* a first attempt's timeout may beat its answer */
        bool early = w->chaos && fresh && w->s.has_timer && w->s.timer.attempt == 1 &&
                     (w->s.timer.kind == SAGA_TIMER_STEP_TIMEOUT ||
                      w->s.timer.kind == SAGA_TIMER_COMP_TIMEOUT) &&
                     rnd(w) % 4 == 0;
        if (early || (!fresh && w->s.has_timer && (!w->chaos || w->n_pool == 0 || rnd(w) % 2))) {
            fire_timer(w);
            continue;
        }
        if (w->n_pool == 0)
            break;
        size_t k = w->chaos ? rnd(w) % w->n_pool : 0;
        wmsg m = w->pool[k];
        memmove(&w->pool[k], &w->pool[k + 1], (w->n_pool - k - 1) * sizeof w->pool[0]);
        w->n_pool--;
        deliver(w, &m.in);
    }
    cr_assert_lt(w->delivered, 2000, "the world did not settle");
    cr_assert_not(w->s.has_timer, "settled with a timer pending");
}

/* Every script, ordered and then shuffled with 200 seeds, on type t. */
static void
converge_all(const saga_type *t)
{
    for (size_t k = 0; k < LB_COUNTOF(world_scripts); k++) {
        world *ordered = calloc(1, sizeof *ordered);
        ordered->t = t;
        ordered->ws = &world_scripts[k];
        ordered->rng = 88172645463325252ull;
        world_run(ordered);
        char want[SAGA_STEPS_MAX + 1];
        steps_string(want, T, &ordered->s);
        cr_assert(saga_status_terminal(ordered->s.status) || ordered->s.status == SAGA_STUCK);
        for (uint64_t seed = 1; seed <= 200; seed++) {
            world *w = calloc(1, sizeof *w);
            w->t = t;
            w->ws = &world_scripts[k];
            w->rng = seed * 0x9e3779b97f4a7c15ull;
            w->chaos = true;
            world_run(w);
            char got[SAGA_STEPS_MAX + 1];
            steps_string(got, T, &w->s);
            cr_assert_eq(w->s.status, ordered->s.status, "script %zu seed %llu: %s, want %s", k,
                         (unsigned long long)seed, saga_status_name(w->s.status),
                         saga_status_name(ordered->s.status));
            cr_assert_str_eq(got, want, "script %zu seed %llu: steps", k, (unsigned long long)seed);
            cr_assert_eq(w->s.fail_code, ordered->s.fail_code, "script %zu seed %llu", k,
                         (unsigned long long)seed);
            free(w);
        }
        free(ordered);
    }
}

Test(saga_converge, shuffled_and_duplicated_inputs_end_like_ordered_ones)
{
    converge_all(T);
}

/* R12: the same worlds with step b sent ahead, with a's first attempt: its
 * outcome may come before a's, after it, twice, or not at all, and a may be
 * refused or retried meanwhile. */
Test(saga_converge, a_step_sent_ahead_ends_like_ordered_runs)
{
    static saga_step steps[3];
    memcpy(steps, T->steps, sizeof steps);
    steps[1].ahead = true;
    saga_type t = *T;
    t.steps = steps;
    lb_err err = { 0 };
    cr_assert_eq(saga_type_check(&t, &err), LB_OK, "%s", err.msg);
    converge_all(&t);
}

Test(saga_converge, every_input_twice_ends_the_same)
{
    /* Take recorded runs and deliver every input a second time, later. */
    static const char *const scripts[] = {
        "start ok:a fail:b fire ok:b ok:c",
        "start ok:a ok:b final:c undofail:b fire undone:b undone:a",
        STUCK_AT_B " retry undone:b undone:a",
        "start ok:a ok:b fire fire fire fire fire undone:c undone:b undone:a",
    };
    for (size_t k = 0; k < LB_COUNTOF(scripts); k++) {
        drv *v = drv_new(T);
        run_script(v, scripts[k]);
        for (uint64_t seed = 1; seed <= 50; seed++) {
            /* the recorded inputs in order, each one's repeat inserted at a
             * random place after it */
            size_t n = v->n_log;
            size_t order[2 * LOG_MAX];
            size_t m = 0;
            uint64_t r = seed * 0x2545f4914f6cdd1dull;
            for (size_t i = 0; i < n; i++)
                order[m++] = i;
            for (size_t i = 0; i < n; i++) {
                size_t first = 0;
                while (order[first] != i)
                    first++;
                r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                size_t at = first + 1 + r % (m - first); /* in (first, m] */
                memmove(&order[at + 1], &order[at], (m - at) * sizeof order[0]);
                order[at] = i;
                m++;
            }
            saga_state s;
            memset(&s, 0, sizeof s);
            bool seen[LOG_MAX] = { false };
            lb_err err = { 0 };
            for (size_t i = 0; i < m; i++) {
                saga_input_rec rec;
                saga_decision d;
                size_t idx = order[i];
                cr_assert_eq(saga_input_unpack(&rec, T, v->log[idx], v->log_len[idx], &err), LB_OK);
                cr_assert_eq(saga_decide(&s, &d, T, s.status ? &s : NULL, &rec.in, &err), LB_OK);
                if (seen[idx])
                    cr_assert_neq(d.verdict, SAGA_APPLIED,
                                  "script %zu: a repeat of input %zu "
                                  "was applied: %s",
                                  k, idx, d.log);
                seen[idx] = true;
            }
            char got[SAGA_STEPS_MAX + 1], want[SAGA_STEPS_MAX + 1];
            steps_string(got, T, &s);
            steps_string(want, T, &v->s);
            cr_assert_eq(s.status, v->s.status, "script %zu seed %llu", k,
                         (unsigned long long)seed);
            cr_assert_str_eq(got, want, "script %zu seed %llu", k, (unsigned long long)seed);
        }
        drv_free(v);
    }
}
