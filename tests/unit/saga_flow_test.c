/* saga_flow_test.c - the decider's step kinds, signals and record, driven
 * through the test saga type "sagaflow" (tests/sagas/sagaflow.c):
 *
 *   0 a (command) 1 pay (wait) 2 prepare (command) 3 ship_delay (delay)
 *   4 ship (command, pivot) 5 window (delay, ends) 6 ret_delay (delay)
 *   7 refund (command); cancel allowed at 0..3, return at 5 (GOTO 6).
 *
 * Every scenario is replayed from its recorded log to the same decisions and
 * state (saga_drv.h), so durations, signals and record merges are checked to
 * replay as well.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layby/v1/saga.pb-c.h"
#include "saga_drv.h"
#include "sagas_test.h"

#define F (&saga_sagaflow_v1)

/* --- a small script language ---------------------------------------------------- */

typedef struct flow {
    drv *v;
    uint8_t body[256]; /* the packed event of the input being fed */
} flow;

/* One token: start | fire | ok:N | fail:N | final:N | undone:N | undofinal:N |
 * sig:NAME, followed by "!" when it must be IGNORED or "?" when REFUSED.
 * ok:N carries TestStepDone{note "nN"} as its body, as the orchestrator logs
 * it for a step that merges into the record. */
static void
flow_act(flow *f, const char *tok)
{
    drv *v = f->v;
    char word[48];
    snprintf(word, sizeof word, "%s", tok);
    saga_verdict want = SAGA_APPLIED;
    size_t n = strlen(word);
    if (n > 0 && (word[n - 1] == '!' || word[n - 1] == '?')) {
        want = word[n - 1] == '!' ? SAGA_IGNORED : SAGA_REFUSED;
        word[--n] = '\0';
    }
    saga_input in = { .now_ms = v->now, .seed = v->seed, .msg_id = "m" };
    char *colon = strchr(word, ':');
    const char *arg = colon != NULL ? colon + 1 : "";
    if (colon != NULL)
        *colon = '\0';
    uint32_t step = (uint32_t)atoi(arg);
    if (strcmp(word, "start") == 0) {
        in.kind = SAGA_IN_START;
        in.saga_id = SAGA_ID;
        in.reply_to = "_INBOX.req";
        in.actor = "member-1 USER";
    } else if (strcmp(word, "fire") == 0) {
        cr_assert(v->s.has_timer, "fire: no timer pending");
        in.kind = SAGA_IN_TIMER;
        in.timer = v->s.timer.kind;
        in.step = v->s.timer.step;
        in.attempt = v->s.timer.attempt;
        if (v->s.timer.due_ms > v->now)
            in.now_ms = v->now = v->s.timer.due_ms;
    } else if (strcmp(word, "sig") == 0) {
        in.kind = SAGA_IN_SIGNAL;
        in.signal = arg;
        in.actor = "member-1 USER";
        in.reason = "changed my mind";
    } else {
        in.kind = SAGA_IN_EVENT;
        in.step = step;
        const saga_step_state *ss = &v->s.steps[step];
        bool comp = strncmp(word, "undo", 4) == 0;
        in.attempt = comp ? ss->comp_attempt : ss->attempt;
        if (strcmp(word, "ok") == 0) {
            Layby__V1__TestStepDone ev = LAYBY__V1__TEST_STEP_DONE__INIT;
            char note[16];
            snprintf(note, sizeof note, "n%u", step);
            ev.saga_id = SAGA_ID, ev.step = step, ev.attempt = in.attempt, ev.note = note;
            in.event = ev.base.descriptor;
            in.body_len = protobuf_c_message_pack(&ev.base, f->body);
            in.body = f->body;
        } else if (strcmp(word, "fail") == 0 || strcmp(word, "final") == 0) {
            in.event = &layby__v1__test_step_failed__descriptor;
            in.final = word[1] == 'i';
            in.code = in.final ? LB_ERR_STOCK : LB_ERR_UNAVAILABLE;
            in.reason = in.final ? "no stock" : "participant down";
        } else if (strcmp(word, "undone") == 0) {
            in.event = &layby__v1__test_step_undone__descriptor;
        } else if (strcmp(word, "undofinal") == 0) {
            in.event = &layby__v1__test_step_undo_failed__descriptor;
            in.final = true;
            in.reason = "cannot undo";
        } else {
            cr_assert_fail("bad token %s", tok);
        }
    }
    feed(v, &in, want);
}

static void
flow_run(flow *f, const char *script)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", script);
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save))
        flow_act(f, tok);
}

static flow *
flow_new(void)
{
    flow *f = calloc(1, sizeof *f);
    cr_assert_not_null(f);
    f->v = drv_new(F);
    return f;
}

static void
flow_free(flow *f)
{
    drv_free(f->v);
    free(f);
}

/* --- every signal in every state -------------------------------------------------- */

/* Scripts that bring the saga to each state. */
#define AT_A          "start"
#define AT_A_RETRY    "start fail:0"
#define AT_PAY        "start ok:0"
#define AT_PREPARE    AT_PAY " ok:1"
#define AT_SHIP_DELAY AT_PREPARE " ok:2"
#define AT_SHIP       AT_SHIP_DELAY " fire"
#define AT_WINDOW     AT_SHIP " ok:4"
#define AT_RET_DELAY  AT_WINDOW " sig:return"
#define AT_REFUND     AT_RET_DELAY " fire"
#define COMPENSATING  AT_PREPARE " final:2"
#define STUCK         COMPENSATING " undofinal:1"
#define COMPLETED     AT_WINDOW " fire"
#define FAILED        COMPENSATING " undone:1 undone:0"

/* Criterion hands parameters to a fresh process: no pointers inside. */
typedef struct sig_case {
    char name[48];
    char script[320]; /* the last token is the signal under test */
    lb_status code;   /* what its sender is answered */
    saga_status want; /* status after the whole script */
    char steps[12];   /* P S D F U C X K(skipped) */
    char cmds[96];
} sig_case;

/* clang-format off */
static sig_case sig_cases[] = {
    /* cancel: undo what is done (an in-flight step too), then CANCELLED */
    { "cancel_at_a",          AT_A " sig:cancel",                    LB_OK, SAGA_COMPENSATING, "CPPPPPPP", "a1 ~a1" },
    { "cancel_at_a_retrying", AT_A_RETRY " sig:cancel",              LB_OK, SAGA_COMPENSATING, "CPPPPPPP", "a1 ~a1" },
    { "cancel_at_pay",        AT_PAY " sig:cancel",                  LB_OK, SAGA_COMPENSATING, "DCPPPPPP", "a1 ~pay1" },
    { "cancel_at_prepare",    AT_PREPARE " sig:cancel",              LB_OK, SAGA_COMPENSATING, "DDCPPPPP", "a1 prepare1 ~prepare1" },
    { "cancel_at_ship_delay", AT_SHIP_DELAY " sig:cancel",           LB_OK, SAGA_COMPENSATING, "DDCFPPPP", "a1 prepare1 ~prepare1" },
    { "cancel_at_ship",       AT_SHIP " sig:cancel?",                LB_ERR_STATE, SAGA_RUNNING, "DDDDSPPP", "a1 prepare1 ship1" },
    { "cancel_at_window",     AT_WINDOW " sig:cancel?",              LB_ERR_STATE, SAGA_RUNNING, "DDDDDSPP", "a1 prepare1 ship1" },
    { "cancel_at_ret_delay",  AT_RET_DELAY " sig:cancel?",           LB_ERR_STATE, SAGA_RUNNING, "DDDDDKSP", "a1 prepare1 ship1" },
    { "cancel_at_refund",     AT_REFUND " sig:cancel?",              LB_ERR_STATE, SAGA_RUNNING, "DDDDDKDS", "a1 prepare1 ship1 refund1" },
    { "cancel_compensating",  COMPENSATING " sig:cancel?",           LB_ERR_STATE, SAGA_COMPENSATING, "DCFPPPPP", "a1 prepare1 ~pay1" },
    { "cancel_stuck",         STUCK " sig:cancel?",                  LB_ERR_STATE, SAGA_STUCK, "DCFPPPPP", "a1 prepare1 ~pay1" },
    { "cancel_completed",     COMPLETED " sig:cancel?",              LB_ERR_STATE, SAGA_COMPLETED, "DDDDDDKK", "a1 prepare1 ship1" },
    { "cancel_failed",        FAILED " sig:cancel?",                 LB_ERR_STATE, SAGA_FAILED, "XXFPPPPP", "a1 prepare1 ~pay1 ~a1" },
    { "cancel_twice",         AT_PAY " sig:cancel sig:cancel!",      LB_OK, SAGA_COMPENSATING, "DCPPPPPP", "a1 ~pay1" },
    { "cancel_cancelled",     AT_PAY " sig:cancel undone:1 undone:0 sig:cancel!", LB_OK, SAGA_CANCELLED, "XXPPPPPP", "a1 ~pay1 ~a1" },
    /* return: only in the window; runs the return branch */
    { "return_at_a",          AT_A " sig:return?",                   LB_ERR_CONFLICT, SAGA_RUNNING, "SPPPPPPP", "a1" },
    { "return_at_pay",        AT_PAY " sig:return?",                 LB_ERR_CONFLICT, SAGA_RUNNING, "DSPPPPPP", "a1" },
    { "return_at_prepare",    AT_PREPARE " sig:return?",             LB_ERR_CONFLICT, SAGA_RUNNING, "DDSPPPPP", "a1 prepare1" },
    { "return_at_ship_delay", AT_SHIP_DELAY " sig:return?",          LB_ERR_CONFLICT, SAGA_RUNNING, "DDDSPPPP", "a1 prepare1" },
    { "return_at_ship",       AT_SHIP " sig:return?",                LB_ERR_CONFLICT, SAGA_RUNNING, "DDDDSPPP", "a1 prepare1 ship1" },
    { "return_at_window",     AT_WINDOW " sig:return",               LB_OK, SAGA_RUNNING, "DDDDDKSP", "a1 prepare1 ship1" },
    { "return_at_ret_delay",  AT_RET_DELAY " sig:return!",           LB_OK, SAGA_RUNNING, "DDDDDKSP", "a1 prepare1 ship1" },
    { "return_at_refund",     AT_REFUND " sig:return!",              LB_OK, SAGA_RUNNING, "DDDDDKDS", "a1 prepare1 ship1 refund1" },
    { "return_compensating",  COMPENSATING " sig:return?",           LB_ERR_CONFLICT, SAGA_COMPENSATING, "DCFPPPPP", "a1 prepare1 ~pay1" },
    { "return_stuck",         STUCK " sig:return?",                  LB_ERR_CONFLICT, SAGA_STUCK, "DCFPPPPP", "a1 prepare1 ~pay1" },
    { "return_after_window",  COMPLETED " sig:return?",              LB_ERR_CONFLICT, SAGA_COMPLETED, "DDDDDDKK", "a1 prepare1 ship1" },
    { "return_failed",        FAILED " sig:return?",                 LB_ERR_CONFLICT, SAGA_FAILED, "XXFPPPPP", "a1 prepare1 ~pay1 ~a1" },
    { "return_cancelled",     AT_PAY " sig:cancel undone:1 undone:0 sig:return?", LB_ERR_CONFLICT, SAGA_CANCELLED, "XXPPPPPP", "a1 ~pay1 ~a1" },
    /* a signal the type does not know */
    { "unknown_signal",       AT_PAY " sig:explode?",                LB_ERR_INVALID, SAGA_RUNNING, "DSPPPPPP", "a1" },
};
/* clang-format on */

ParameterizedTestParameters(saga_signals, every_signal_in_every_state)
{
    return cr_make_param_array(sig_case, sig_cases, LB_COUNTOF(sig_cases));
}

ParameterizedTest(sig_case *c, saga_signals, every_signal_in_every_state)
{
    flow *f = flow_new();
    drv *v = f->v;
    flow_run(f, c->script);
    cr_assert(v->d.reply.send && v->d.reply.to_sender, "%s: the sender is answered", c->name);
    cr_assert_eq(v->d.reply.status, c->code, "%s: answered %s, want %s", c->name,
                 lb_status_code(v->d.reply.status), lb_status_code(c->code));
    cr_assert_eq(v->s.status, c->want, "%s: %s, want %s", c->name, saga_status_name(v->s.status),
                 saga_status_name(c->want));
    char steps[SAGA_STEPS_MAX + 1];
    steps_string(steps, F, &v->s);
    cr_assert_str_eq(steps, c->steps, "%s: %s, want %s", c->name, steps, c->steps);
    cr_assert_str_eq(v->cmds, c->cmds, "%s: %s, want %s", c->name, v->cmds, c->cmds);
    replay_check(v);
    flow_free(f);
}

/* --- how a cancelled saga ends --------------------------------------------------- */

Test(saga_signals, cancel_undoes_in_reverse_and_ends_cancelled)
{
    flow *f = flow_new();
    drv *v = f->v;
    flow_run(f, AT_SHIP_DELAY " sig:cancel");
    cr_assert_eq(v->d.reply.status, LB_OK);
    cr_assert_eq(v->s.fail_code, LB_ERR_STATE, "the type's cancel code");
    cr_assert(strstr(v->s.fail_reason, "member-1 USER"), "%s", v->s.fail_reason);
    cr_assert_str_eq(v->s.signal, "cancel");
    cr_assert(v->s.flags & SAGA_F_REPLIED, "the requester is not told of a signal (S5)");
    flow_run(f, "undone:2 undone:1 undone:0");
    cr_assert_eq(v->s.status, SAGA_CANCELLED);
    cr_assert_str_eq(v->cmds, "a1 prepare1 ~prepare1 ~pay1 ~a1");
    cr_assert_not(v->s.has_timer);
    replay_check(v);
    flow_free(f);
}

/* Two delay steps ("wait", "after") and the given signal rules: a type with
 * nothing to undo. */
static const saga_step tiny_steps[] = {
    { .name = "wait", .kind = SAGA_STEP_DELAY, .timeout_ms = 1000 },
    { .name = "after", .kind = SAGA_STEP_DELAY, .timeout_ms = 1000 },
};

static saga_type
tiny_type(const saga_signal *sigs, size_t n)
{
    saga_type t = { .name = "tiny",
                    .version = 1,
                    .start = &layby__v1__start_test_saga__descriptor,
                    .steps = tiny_steps,
                    .n_steps = LB_COUNTOF(tiny_steps),
                    .signals = sigs,
                    .n_signals = n };
    lb_err err = { 0 };
    cr_assert_eq(saga_type_check(&t, &err), LB_OK, "%s", err.msg);
    return t;
}

Test(saga_signals, cancel_with_nothing_to_undo_ends_at_once)
{
    /* a rule covering a delay step only, reached with nothing done that has an undo */
    static const saga_signal sigs[] = { { .name = "cancel", .first = 0, .last = 0 } };
    saga_type t = tiny_type(sigs, LB_COUNTOF(sigs));
    flow f = { .v = drv_new(&t) };
    flow_run(&f, "start sig:cancel");
    cr_assert_eq(f.v->s.status, SAGA_CANCELLED);
    cr_assert_eq(f.v->d.reply.status, LB_OK);
    replay_check(f.v);
    drv_free(f.v);
}

Test(saga_signals, a_refused_signal_answers_the_types_text_and_logs_the_step)
{
    static const saga_signal sigs[] = {
        { .name = "cancel",
          .first = 0,
          .last = 0,
          .refused = LB_ERR_NOT_CANCELLABLE,
          .refused_text = "too late to cancel" },
        { .name = "return", .first = 0, .last = 0, .refused = LB_ERR_NOT_RETURNABLE },
    };
    saga_type t = tiny_type(sigs, LB_COUNTOF(sigs));
    flow f = { .v = drv_new(&t) };
    flow_run(&f, "start fire sig:cancel?");
    cr_assert_eq(f.v->d.reply.status, LB_ERR_NOT_CANCELLABLE);
    cr_assert_str_eq(f.v->d.reply.reason, "too late to cancel");
    cr_assert(strstr(f.v->d.log, "RUNNING at after") != NULL, "the log names the step: %s",
              f.v->d.log);
    /* without a text of its own, the sender reads the engine's */
    flow_run(&f, "sig:return?");
    cr_assert_eq(f.v->d.reply.status, LB_ERR_NOT_RETURNABLE);
    cr_assert_str_eq(f.v->d.reply.reason,
                     "return is not allowed while the saga is RUNNING at after");
    cr_assert_eq(f.v->s.status, SAGA_RUNNING, "a refusal changes nothing");
    replay_check(f.v);
    drv_free(f.v);
}

Test(saga_signals, a_signal_for_no_saga_is_not_found)
{
    flow *f = flow_new();
    flow_run(f, "sig:cancel?");
    cr_assert_eq(f->v->d.reply.status, LB_ERR_NOT_FOUND);
    flow_free(f);
}

/* --- wait and delay steps ------------------------------------------------------- */

Test(saga_steps, delay_steps_succeed_when_they_fire_and_ends_completes_early)
{
    flow *f = flow_new();
    drv *v = f->v;
    flow_run(f, AT_SHIP_DELAY);
    cr_assert_eq(v->s.timer.kind, SAGA_TIMER_DELAY);
    cr_assert_eq(v->s.timer.due_ms, v->now - 7 + 300, "the step's default delay");
    cr_assert_eq(v->d.n_cmds, 0, "a delay sends nothing");
    flow_run(f, "fire");
    cr_assert_str_eq(v->cmds, "a1 prepare1 ship1");
    flow_run(f, "ok:4");
    cr_assert_eq(v->s.timer.kind, SAGA_TIMER_DELAY, "the window");
    cr_assert_eq(v->s.timer.due_ms, v->now - 7 + 30000);
    flow_run(f, "fire");
    cr_assert_eq(v->s.status, SAGA_COMPLETED, "window ends the saga");
    char steps[SAGA_STEPS_MAX + 1];
    steps_string(steps, F, &v->s);
    cr_assert_str_eq(steps, "DDDDDDKK", "the return branch never ran");
    replay_check(v);
    flow_free(f);
}

/* --- a step sent ahead (R12) -------------------------------------------------------- */

/* sagatest v1 (a, b, c, each undone) with b sent ahead, in the test's own memory. */
typedef struct ahead_type {
    saga_step steps[3];
    saga_type t;
} ahead_type;

static void
ahead_type_init(ahead_type *a)
{
    memcpy(a->steps, saga_sagatest_v1.steps, sizeof a->steps);
    a->steps[1].ahead = true;
    a->t = saga_sagatest_v1;
    a->t.steps = a->steps;
    lb_err err = { 0 };
    cr_assert_eq(saga_type_check(&a->t, &err), LB_OK, "%s", err.msg);
}

Test(saga_steps, a_step_sent_ahead_goes_with_the_one_before_and_counts_when_reached)
{
    ahead_type a;
    ahead_type_init(&a);
    flow f = { .v = drv_new(&a.t) };
    flow_run(&f, "start");
    cr_assert_str_eq(f.v->cmds, "a1 b1", "b's first attempt goes with a's");
    cr_assert_eq(f.v->s.timer.step, 0, "the timer is a's");
    flow_run(&f, "ok:1 ok:1!");
    cr_assert_eq(f.v->s.step, 0, "b's outcome is kept while the saga is at a");
    flow_run(&f, "fail:0 fire");
    cr_assert_str_eq(f.v->cmds, "a1 b1 a2", "a's retry does not send b again");
    flow_run(&f, "ok:0");
    cr_assert_str_eq(f.v->cmds, "a1 b1 a2 c1", "b was done already: on to c");
    flow_run(&f, "ok:2");
    cr_assert_eq(f.v->s.status, SAGA_COMPLETED);
    replay_check(f.v);
    drv_free(f.v);

    /* b's refusal while a runs counts once a is done: a is undone, b is not */
    f.v = drv_new(&a.t);
    flow_run(&f, "start final:1");
    cr_assert_eq(f.v->s.status, SAGA_RUNNING);
    cr_assert_str_eq(f.v->s.fail_reason, "no stock", "kept for the reply");
    flow_run(&f, "ok:0");
    cr_assert_eq(f.v->s.status, SAGA_COMPENSATING);
    cr_assert_eq(f.v->s.fail_code, LB_ERR_STOCK, "b's code");
    flow_run(&f, "undone:0");
    cr_assert_eq(f.v->s.status, SAGA_FAILED);
    cr_assert_str_eq(f.v->cmds, "a1 b1 ~a1");
    replay_check(f.v);
    drv_free(f.v);

    /* a transient failure of b while a runs is left to b's own timeout */
    f.v = drv_new(&a.t);
    flow_run(&f, "start fail:1! ok:0");
    cr_assert_eq(f.v->s.step, 1);
    cr_assert_eq(f.v->s.timer.kind, SAGA_TIMER_STEP_TIMEOUT);
    cr_assert_eq(f.v->s.timer.attempt, 1, "b's timeout runs from here");
    flow_run(&f, "fire fire ok:1");
    cr_assert_str_eq(f.v->cmds, "a1 b1 b2 c1", "b's second attempt after its timeout: %s",
                     f.v->cmds);
    replay_check(f.v);
    drv_free(f.v);
}

/* Runs script on a fresh saga of t: it must end as want, having sent cmds. */
static void
ahead_case(const saga_type *t, const char *script, saga_status want, const char *cmds)
{
    flow f = { .v = drv_new(t) };
    flow_run(&f, script);
    cr_assert_eq(f.v->s.status, want, "%s: %s", script, saga_status_name(f.v->s.status));
    cr_assert_str_eq(f.v->cmds, cmds, "%s", script);
    replay_check(f.v);
    drv_free(f.v);
}

Test(saga_steps, a_rollback_before_the_saga_reaches_a_step_sent_ahead_undoes_it_too)
{
    ahead_type a;
    ahead_type_init(&a);
    /* a refused while b has not answered: b may have taken effect, and is
     * undone (its late success changes nothing); a, refused, is not */
    ahead_case(&a.t, "start final:0", SAGA_COMPENSATING, "a1 b1 ~b1");
    ahead_case(&a.t, "start final:0 ok:1! undone:1", SAGA_FAILED, "a1 b1 ~b1");
    /* a refused after b said no: nothing to undo */
    ahead_case(&a.t, "start final:1 final:0", SAGA_FAILED, "a1 b1");
    /* b done before a is refused: b is undone */
    ahead_case(&a.t, "start ok:1 final:0 undone:1", SAGA_FAILED, "a1 b1 ~b1");
}

Test(saga_steps, a_stale_or_early_delay_firing_changes_nothing)
{
    flow *f = flow_new();
    drv *v = f->v;
    flow_run(f, AT_SHIP_DELAY);
    saga_input in = { .kind = SAGA_IN_TIMER,
                      .now_ms = v->now,
                      .timer = SAGA_TIMER_STEP_TIMEOUT,
                      .step = SAGAFLOW_SHIP_DELAY,
                      .attempt = 1 };
    feed(v, &in, SAGA_IGNORED); /* wrong kind */
    in.timer = SAGA_TIMER_DELAY;
    in.attempt = 2;
    feed(v, &in, SAGA_IGNORED); /* an attempt never armed */
    flow_run(f, "fire");
    in.attempt = 1;
    feed(v, &in, SAGA_IGNORED); /* fired twice */
    cr_assert_str_eq(v->cmds, "a1 prepare1 ship1");
    replay_check(v);
    flow_free(f);
}

Test(saga_steps, the_wait_deadline_is_a_failure_that_undoes_everything)
{
    flow *f = flow_new();
    drv *v = f->v;
    flow_run(f, AT_PAY);
    cr_assert_eq(v->s.timer.kind, SAGA_TIMER_STEP_TIMEOUT);
    cr_assert_eq(v->d.n_cmds, 0, "a wait sends nothing");
    flow_run(f, "fire");
    cr_assert_eq(v->s.status, SAGA_COMPENSATING);
    cr_assert_eq(v->s.fail_code, LB_ERR_TIMEOUT);
    cr_assert(v->d.reply.send && !v->d.reply.to_sender, "the requester learns the outcome");
    cr_assert_eq(v->d.reply.status, LB_ERR_TIMEOUT);
    /* a payment may be on its way at the deadline: pay is undone too (R5) */
    flow_run(f, "undone:1 undone:0");
    cr_assert_eq(v->s.status, SAGA_FAILED);
    cr_assert_str_eq(v->cmds, "a1 ~pay1 ~a1");
    /* what comes after the deadline is too late */
    flow_run(f, "ok:1!");
    replay_check(v);
    flow_free(f);
}

Test(saga_steps, a_wait_step_answers_its_requester_when_what_it_waited_for_came)
{
    flow *f = flow_new();
    drv *v = f->v;
    flow_run(f, AT_PAY);
    cr_assert_not(v->d.reply.send, "nothing to say while waiting");
    flow_run(f, "ok:1");
    cr_assert(v->d.reply.send && !v->d.reply.to_sender);
    cr_assert_eq(v->d.reply.status, LB_OK);
    cr_assert_str_eq(v->cmds, "a1 prepare1");
    flow_run(f, "fail:1!"); /* pay has no failure event: nothing to retry */
    replay_check(v);
    flow_free(f);
}

/* R10: the payment of an order whose saga has not yet heard that the order is
 * payable (a buyer polling after a 202, or events handled out of order). */
Test(saga_steps, a_wait_steps_event_that_comes_early_is_kept_and_done_on_arrival)
{
    flow *f = flow_new();
    drv *v = f->v;
    flow_run(f, "start ok:1");
    cr_assert_eq(v->s.step, SAGAFLOW_A, "still at a");
    cr_assert(v->s.steps[SAGAFLOW_PAY].flags & SAGA_STEP_F_EARLY);
    cr_assert_not(v->d.reply.send, "nobody is answered before a is done");
    flow_run(f, "ok:1!"); /* the same event again changes nothing */
    flow_run(f, "ok:0");
    cr_assert_eq(v->s.step, SAGAFLOW_PREPARE, "pay was done the moment it started");
    cr_assert(v->d.reply.send && !v->d.reply.to_sender, "pay's reply goes out");
    cr_assert_eq(v->d.reply.status, LB_OK);
    cr_assert_str_eq(v->cmds, "a1 prepare1");
    cr_assert_eq(v->s.steps[SAGAFLOW_PAY].flags & SAGA_STEP_F_EARLY, 0);
    flow_run(f, "ok:2 fire ok:4 fire");
    cr_assert_eq(v->s.status, SAGA_COMPLETED);
    replay_check(v);
    flow_free(f);
}

Test(saga_steps, an_early_wait_event_is_undone_first_when_the_saga_rolls_back)
{
    /* a fails for good after pay's event came: pay took effect, so it is undone */
    flow *f = flow_new();
    drv *v = f->v;
    flow_run(f, "start ok:1 final:0");
    cr_assert_eq(v->s.status, SAGA_COMPENSATING);
    cr_assert_eq(v->s.step, SAGAFLOW_PAY);
    flow_run(f, "undone:1");
    cr_assert_eq(v->s.status, SAGA_FAILED, "a failed with a final answer: nothing else to undo");
    cr_assert_str_eq(v->cmds, "a1 ~pay1");
    replay_check(v);
    flow_free(f);

    /* a cancel before pay was reached: pay first, then a */
    f = flow_new();
    v = f->v;
    flow_run(f, "start ok:1 sig:cancel undone:1 undone:0");
    cr_assert_eq(v->s.status, SAGA_CANCELLED);
    cr_assert_str_eq(v->cmds, "a1 ~pay1 ~a1");
    replay_check(v);
    flow_free(f);
}

Test(saga_steps, nothing_at_or_below_a_done_pivot_is_undone)
{
    flow *f = flow_new();
    drv *v = f->v;
    flow_run(f, AT_REFUND " final:7");
    cr_assert_eq(v->s.status, SAGA_FAILED);
    cr_assert_str_eq(v->cmds, "a1 prepare1 ship1 refund1", "no undo past ship");
    cr_assert(strstr(v->d.log, "pivot"), "%s", v->d.log);
    replay_check(v);
    flow_free(f);
}

Test(saga_steps, before_the_pivot_is_done_a_failure_undoes_everything)
{
    flow *f = flow_new();
    drv *v = f->v;
    flow_run(f, AT_SHIP " final:4 undone:2 undone:1 undone:0");
    cr_assert_eq(v->s.status, SAGA_FAILED);
    cr_assert_str_eq(v->cmds, "a1 prepare1 ship1 ~prepare1 ~pay1 ~a1");
    replay_check(v);
    flow_free(f);
}

/* --- forward steps (R11) ----------------------------------------------------------- */

/* sagaflow with ship (step 4, the pivot) as a forward step, the way
 * order_place v4 marks its steps after the payment. */
static saga_step fwd_steps[SAGA_STEPS_MAX];
static saga_type fwd_type;

static flow *
flow_new_forward(void)
{
    memcpy(fwd_steps, F->steps, F->n_steps * sizeof *fwd_steps);
    fwd_steps[4].forward = true;
    fwd_type = *F;
    fwd_type.steps = fwd_steps;
    lb_err err;
    cr_assert_eq(saga_type_check(&fwd_type, &err), LB_OK, "%s", err.msg);
    flow *f = calloc(1, sizeof *f);
    cr_assert_not_null(f);
    f->v = drv_new(&fwd_type);
    return f;
}

Test(saga_steps, a_forward_step_is_retried_past_its_budget_and_never_undone_for_it)
{
    flow *f = flow_new_forward();
    drv *v = f->v;
    uint32_t budget = F->steps[4].retry->attempts;
    flow_run(f, AT_SHIP);
    bool reported = false;
    for (uint32_t k = 0; k < budget + 3; k++) {
        flow_run(f, "fire"); /* the attempt times out */
        cr_assert_eq(v->s.status, SAGA_RUNNING, "after %u timeouts: %s", k + 1,
                     saga_status_name(v->s.status));
        cr_assert_eq(v->d.forward_retry, k + 1 >= budget, "timeout %u: %s", k + 1, v->d.log);
        reported |= strstr(v->d.log, "forward step") != NULL;
        flow_run(f, "fire"); /* its backoff: the next attempt */
    }
    cr_assert(reported, "the log says the step goes on past its budget");
    cr_assert_eq(v->s.steps[4].attempt, budget + 4);
    flow_run(f, "ok:4 fire");
    cr_assert_eq(v->s.status, SAGA_COMPLETED);
    cr_assert_str_eq(v->cmds, "a1 prepare1 ship1 ship2 ship3 ship4 ship5 ship6 ship7");
    replay_check(v);
    flow_free(f);
}

Test(saga_steps, a_forward_step_that_is_refused_finally_still_fails)
{
    flow *f = flow_new_forward();
    drv *v = f->v;
    flow_run(f, AT_SHIP " fire fire final:4 undone:2 undone:1 undone:0");
    cr_assert_eq(v->s.status, SAGA_FAILED);
    cr_assert_str_eq(v->cmds, "a1 prepare1 ship1 ship2 ~prepare1 ~pay1 ~a1");
    replay_check(v);
    flow_free(f);
}

Test(saga_types, only_a_command_step_may_be_forward)
{
    memcpy(fwd_steps, F->steps, F->n_steps * sizeof *fwd_steps);
    fwd_steps[3].forward = true; /* ship_delay */
    fwd_type = *F;
    fwd_type.steps = fwd_steps;
    lb_err err;
    cr_assert_eq(saga_type_check(&fwd_type, &err), LB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "forward") != NULL, "%s", err.msg);
}

/* --- durations -------------------------------------------------------------------- */

Test(saga_steps, durations_come_with_start_and_replay_the_same)
{
    flow *f = flow_new();
    drv *v = f->v;
    int64_t durations[SAGAFLOW__STEPS];
    saga_durations_read(durations, F);
    durations[SAGAFLOW_PAY] = 777;
    durations[SAGAFLOW_SHIP_DELAY] = 1234;
    saga_input in = { .kind = SAGA_IN_START,
                      .now_ms = v->now,
                      .msg_id = "m",
                      .saga_id = SAGA_ID,
                      .durations_ms = durations,
                      .n_durations = SAGAFLOW__STEPS };
    feed(v, &in, SAGA_APPLIED);
    flow_run(f, "ok:0");
    cr_assert_eq(v->s.timer.due_ms, v->now - 7 + 777, "the pay deadline from the start");
    flow_run(f, "ok:1 ok:2");
    cr_assert_eq(v->s.timer.due_ms, v->now - 7 + 1234, "the delay from the start");
    replay_check(v);
    flow_free(f);
}

Test(saga_steps, durations_are_read_from_settings_when_a_saga_starts)
{
    int64_t d[SAGAFLOW__STEPS];
    setenv("LAYBY_SAGAFLOW_DELAY_MS", "4321", 1);
    saga_durations_read(d, F);
    cr_assert_eq(d[SAGAFLOW_SHIP_DELAY], 4321);
    cr_assert_eq(d[SAGAFLOW_RET_DELAY], 4321);
    cr_assert_eq(d[SAGAFLOW_A], 1000, "a constant timeout");
    unsetenv("LAYBY_SAGAFLOW_DELAY_MS");
    saga_durations_read(d, F);
    cr_assert_eq(d[SAGAFLOW_SHIP_DELAY], 300, "the function's default");
}

/* --- the record ------------------------------------------------------------------- */

Test(saga_record, events_fill_it_builders_read_it_replay_rebuilds_it)
{
    flow *f = flow_new();
    drv *v = f->v;
    flow_run(f, AT_PREPARE);
    lb_err err = { 0 };
    ProtobufCMessage *rec = NULL;
    cr_assert_eq(saga_record_get(&rec, F, &v->s, &err), LB_OK, "%s", err.msg);
    Layby__V1__TestSagaRecord *r = (Layby__V1__TestSagaRecord *)rec;
    cr_assert_eq(r->n_notes, 2);
    cr_assert_str_eq(r->notes[0], "0=n0");
    cr_assert_str_eq(r->notes[1], "1=n1");
    protobuf_c_message_free_unpacked(rec, NULL);

    /* the command the last decision sent (prepare) is built from the record */
    Layby__V1__StartTestSaga start = LAYBY__V1__START_TEST_SAGA__INIT;
    start.saga_id = SAGA_ID;
    start.key = "order-9";
    ProtobufCMessage *m = NULL;
    cr_assert_eq(v->d.n_cmds, 1);
    cr_assert_eq(saga_cmd_build(&m, F, &v->s, &v->d.cmds[0], &start.base, &err), LB_OK, "%s",
                 err.msg);
    Layby__V1__TestStepDo *doit = (Layby__V1__TestStepDo *)m;
    cr_assert_eq(doit->step, SAGAFLOW_PREPARE);
    cr_assert_str_eq(doit->seen, "0=n0 1=n1");
    cr_assert_str_eq(doit->key, "order-9");
    protobuf_c_message_free_unpacked(m, NULL);
    replay_check(v); /* state_eq compares the record bytes */
    flow_free(f);
}

Test(saga_record, an_empty_record_before_any_event_and_none_without_a_type)
{
    flow *f = flow_new();
    flow_run(f, "start");
    lb_err err = { 0 };
    ProtobufCMessage *rec = NULL;
    cr_assert_eq(saga_record_get(&rec, F, &f->v->s, &err), LB_OK);
    cr_assert_eq(((Layby__V1__TestSagaRecord *)rec)->n_notes, 0);
    protobuf_c_message_free_unpacked(rec, NULL);
    cr_assert_eq(saga_record_get(&rec, &saga_sagatest_v1, &f->v->s, &err), LB_OK);
    cr_assert_null(rec);
    flow_free(f);
}

Test(saga_record, a_body_that_does_not_decode_is_an_error_not_a_decision)
{
    flow *f = flow_new();
    drv *v = f->v;
    flow_run(f, "start");
    saga_input in = { .kind = SAGA_IN_EVENT,
                      .now_ms = v->now,
                      .event = &layby__v1__test_step_done__descriptor,
                      .step = 0,
                      .attempt = 1,
                      .body = (const uint8_t *)"\xff\xff\xff",
                      .body_len = 3 };
    saga_state out;
    saga_decision d;
    lb_err err = { 0 };
    cr_assert_eq(saga_decide(&out, &d, F, &v->s, &in, &err), LB_ERR_DECODE, "%s", err.msg);
    flow_free(f);
}

/* --- type checks ------------------------------------------------------------------ */

static lb_status
nop_build(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    (void)in, (void)err;
    *out = NULL;
    return LB_OK;
}

static const saga_retry one_try = { .attempts = 1, .multiplier = 1 };

#define CMD_STEP(n)                                                                              \
    {                                                                                            \
        .name = n, .command = &layby__v1__test_step_do__descriptor, .subject = "layby.cmd.x.do", \
        .build = nop_build, .on_ok = &layby__v1__test_step_done__descriptor,                     \
        .on_ok_subject = "layby.evt.x.done", .timeout_ms = 10, .retry = &one_try                 \
    }

static lb_status
check_steps(const saga_step *steps, size_t n, const saga_signal *sigs, size_t n_sigs,
            const ProtobufCMessageDescriptor *record, lb_err *err)
{
    saga_type t = { .name = "chk",
                    .version = 1,
                    .start = &layby__v1__start_test_saga__descriptor,
                    .steps = steps,
                    .n_steps = n,
                    .signals = sigs,
                    .n_signals = n_sigs,
                    .record = record };
    return saga_type_check(&t, err);
}

Test(saga_types, tables_are_checked_when_registered)
{
    lb_err err = { 0 };
    cr_assert_eq(saga_type_check(F, &err), LB_OK, "%s", err.msg);
    saga_step ok[] = { CMD_STEP("a"), CMD_STEP("b") };
    cr_assert_eq(check_steps(ok, 2, NULL, 0, NULL, &err), LB_OK, "%s", err.msg);

    saga_step no_subject[] = { CMD_STEP("a") };
    no_subject[0].on_ok_subject = NULL;
    cr_assert_eq(check_steps(no_subject, 1, NULL, 0, NULL, &err), LB_ERR_CONFIG);
    no_subject[0].on_ok_subject = "layby.cmd.x.done";
    cr_assert_eq(check_steps(no_subject, 1, NULL, 0, NULL, &err), LB_ERR_CONFIG, "not an event");

    saga_step delay_undo[] = { { .name = "d", .kind = SAGA_STEP_DELAY, .timeout_ms = 5 } };
    cr_assert_eq(check_steps(delay_undo, 1, NULL, 0, NULL, &err), LB_OK, "%s", err.msg);
    delay_undo[0].compensate = &layby__v1__test_step_undo__descriptor;
    cr_assert_eq(check_steps(delay_undo, 1, NULL, 0, NULL, &err), LB_ERR_CONFIG);

    saga_step wait_cmd[] = { { .name = "w",
                               .kind = SAGA_STEP_WAIT,
                               .command = &layby__v1__test_step_do__descriptor,
                               .on_ok = &layby__v1__test_step_done__descriptor,
                               .on_ok_subject = "layby.evt.x.done",
                               .timeout_ms = 5 } };
    cr_assert_eq(check_steps(wait_cmd, 1, NULL, 0, NULL, &err), LB_ERR_CONFIG,
                 "waits send nothing");
    wait_cmd[0].command = NULL;
    cr_assert_eq(check_steps(wait_cmd, 1, NULL, 0, NULL, &err), LB_OK, "%s", err.msg);
    wait_cmd[0].timeout_ms = 0;
    cr_assert_eq(check_steps(wait_cmd, 1, NULL, 0, NULL, &err), LB_ERR_CONFIG, "no duration");

    saga_step merging[] = { CMD_STEP("a") };
    merging[0].merge = (saga_merge_fn)nop_build; /* never called */
    cr_assert_eq(check_steps(merging, 1, NULL, 0, NULL, &err), LB_ERR_CONFIG, "no record type");

    saga_step two[] = { CMD_STEP("a"), CMD_STEP("b") };
    saga_signal goto_cmd[] = {
        { .name = "r", .first = 0, .last = 0, .action = SAGA_SIGNAL_GOTO, .to = 1 }
    };
    cr_assert_eq(check_steps(two, 2, goto_cmd, 1, NULL, &err), LB_ERR_CONFIG,
                 "GOTO from a command");
    saga_signal out_of_range[] = { { .name = "c", .first = 0, .last = 2 } };
    cr_assert_eq(check_steps(two, 2, out_of_range, 1, NULL, &err), LB_ERR_CONFIG);
    saga_signal cancel[] = { { .name = "c", .first = 0, .last = 1 } };
    cr_assert_eq(check_steps(two, 2, cancel, 1, NULL, &err), LB_OK, "%s", err.msg);
}
