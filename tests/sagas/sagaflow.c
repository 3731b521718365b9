/* sagaflow.c - the test saga type "sagaflow" v1: every step kind, both signal
 * actions, a pivot, an early end and a record, in the shape of the shop's
 * order flow (issue 20) without its business:
 *
 *   a (command, undo) -> pay (wait, deadline; undo) -> prepare (command, undo)
 *   -> ship_delay (delay) -> ship (command, pivot) -> window (delay, ends)
 *   [return] -> ret_delay (delay) -> refund (command)
 *
 * cancel is allowed from a to ship_delay and undoes what was done in
 * reverse; return is allowed during the window and runs ret_delay, refund.
 * TestStepDone.note of a and pay is kept in the record (TestSagaRecord) and
 * every TestStepDo carries the record's notes in `seen`, so a test sees that
 * builders read what events merged. Durations come from the environment
 * when a saga starts (LAYBY_SAGAFLOW_DELAY_MS, _PAY_MS, _WINDOW_MS), as the
 * shop's come from its settings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layby/v1/saga.pb-c.h"
#include "sagas_test.h"

static const saga_retry sagaflow_retry = {
    .attempts = 3,
    .base_ms = 100,
    .multiplier = 2,
    .cap_ms = 1000,
    .jitter_pct = 20,
};

static int64_t
env_ms(const char *name, int64_t fallback)
{
    const char *v = getenv(name);
    long long n = v != NULL ? atoll(v) : 0;
    return n > 0 ? (int64_t)n : fallback;
}

static int64_t
sagaflow_delay_ms(void)
{
    return env_ms("LAYBY_SAGAFLOW_DELAY_MS", 300);
}

static int64_t
sagaflow_pay_ms(void)
{
    return env_ms("LAYBY_SAGAFLOW_PAY_MS", 5000);
}

static int64_t
sagaflow_window_ms(void)
{
    return env_ms("LAYBY_SAGAFLOW_WINDOW_MS", 30000);
}

static lb_status
sagaflow_merge(ProtobufCMessage *record, const ProtobufCMessage *event, lb_err *err)
{
    Layby__V1__TestSagaRecord *r = (Layby__V1__TestSagaRecord *)record;
    const Layby__V1__TestStepDone *ev = (const Layby__V1__TestStepDone *)event;
    if (event->descriptor != &layby__v1__test_step_done__descriptor)
        return LB_OK; /* a failure adds nothing */
    char **notes = realloc(r->notes, (r->n_notes + 1) * sizeof *notes);
    if (notes == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "sagaflow record");
    r->notes = notes;
    char buf[160];
    snprintf(buf, sizeof buf, "%u=%s", ev->step, ev->note);
    if ((r->notes[r->n_notes] = strdup(buf)) == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "sagaflow record");
    r->n_notes++;
    return LB_OK;
}

static char *
notes_joined(const ProtobufCMessage *record)
{
    const Layby__V1__TestSagaRecord *r = (const Layby__V1__TestSagaRecord *)record;
    size_t len = 1;
    for (size_t i = 0; r != NULL && i < r->n_notes; i++)
        len += strlen(r->notes[i]) + 1;
    char *out = calloc(1, len);
    for (size_t i = 0; out != NULL && r != NULL && i < r->n_notes; i++) {
        if (i > 0)
            strcat(out, " ");
        strcat(out, r->notes[i]);
    }
    return out;
}

/* TestStepDo (with the record's notes) or TestStepUndo. */
static lb_status
sagaflow_build(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    const Layby__V1__StartTestSaga *start = (const Layby__V1__StartTestSaga *)in->start;
    const char *key = start != NULL ? start->key : "";
    const char *script = start != NULL ? start->script : "";
    if (in->cmd->desc == &layby__v1__test_step_do__descriptor) {
        Layby__V1__TestStepDo *m = malloc(sizeof *m);
        if (m == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "sagaflow: out of memory");
        layby__v1__test_step_do__init(m);
        m->step = in->cmd->step;
        m->attempt = in->cmd->attempt;
        m->saga_id = strdup(in->s->id);
        m->key = strdup(key);
        m->script = strdup(script);
        m->seen = notes_joined(in->record);
        *out = &m->base;
        if (m->saga_id == NULL || m->key == NULL || m->script == NULL || m->seen == NULL) {
            protobuf_c_message_free_unpacked(*out, NULL);
            return lb_err_set(err, LB_ERR_NOMEM, "sagaflow: out of memory");
        }
        return LB_OK;
    }
    Layby__V1__TestStepUndo *m = malloc(sizeof *m);
    if (m == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "sagaflow: out of memory");
    layby__v1__test_step_undo__init(m);
    m->step = in->cmd->step;
    m->attempt = in->cmd->attempt;
    m->saga_id = strdup(in->s->id);
    m->key = strdup(key);
    m->script = strdup(script);
    *out = &m->base;
    if (m->saga_id == NULL || m->key == NULL || m->script == NULL) {
        protobuf_c_message_free_unpacked(*out, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "sagaflow: out of memory");
    }
    return LB_OK;
}

/* clang-format off */
#define FLOW_DO                                                          \
    .command = &layby__v1__test_step_do__descriptor,                     \
    .subject = SAGA_SUBJ_TEST_DO,                                        \
    .build = sagaflow_build,                                             \
    .on_ok = &layby__v1__test_step_done__descriptor,                     \
    .on_ok_subject = SAGA_SUBJ_TEST_DONE,                                \
    .on_fail = &layby__v1__test_step_failed__descriptor,                 \
    .on_fail_subject = SAGA_SUBJ_TEST_FAILED,                            \
    .timeout_ms = 1000,                                                  \
    .retry = &sagaflow_retry
#define FLOW_UNDO                                                        \
    .compensate = &layby__v1__test_step_undo__descriptor,                \
    .compensate_subject = SAGA_SUBJ_TEST_UNDO,                           \
    .build_compensate = sagaflow_build,                                  \
    .on_compensated = &layby__v1__test_step_undone__descriptor,          \
    .on_compensated_subject = SAGA_SUBJ_TEST_UNDONE,                     \
    .on_compensate_fail = &layby__v1__test_step_undo_failed__descriptor, \
    .on_compensate_fail_subject = SAGA_SUBJ_TEST_UNDO_FAILED,            \
    .compensate_retry = &sagaflow_retry,                                 \
    .compensate_timeout_ms = 1000

static const saga_step sagaflow_v1_steps[] = {
    [SAGAFLOW_A]          = { .name = "a", FLOW_DO, FLOW_UNDO, .merge = sagaflow_merge },
    [SAGAFLOW_PAY]        = { .name = "pay", .kind = SAGA_STEP_WAIT,
                              .on_ok = &layby__v1__test_step_done__descriptor,
                              .on_ok_subject = SAGA_SUBJ_TEST_DONE,
                              .timeout_ms = 5000, .duration = sagaflow_pay_ms,
                              .reply = true, .merge = sagaflow_merge, FLOW_UNDO },
    [SAGAFLOW_PREPARE]    = { .name = "prepare", FLOW_DO, FLOW_UNDO },
    [SAGAFLOW_SHIP_DELAY] = { .name = "ship_delay", .kind = SAGA_STEP_DELAY,
                              .timeout_ms = 300, .duration = sagaflow_delay_ms },
    [SAGAFLOW_SHIP]       = { .name = "ship", FLOW_DO, .pivot = true },
    [SAGAFLOW_WINDOW]     = { .name = "window", .kind = SAGA_STEP_DELAY,
                              .timeout_ms = 30000, .duration = sagaflow_window_ms, .ends = true },
    [SAGAFLOW_RET_DELAY]  = { .name = "ret_delay", .kind = SAGA_STEP_DELAY,
                              .timeout_ms = 300, .duration = sagaflow_delay_ms },
    [SAGAFLOW_REFUND]     = { .name = "refund", FLOW_DO },
};
_Static_assert(LB_COUNTOF(sagaflow_v1_steps) == SAGAFLOW__STEPS, "sagaflow steps");

static const saga_signal sagaflow_v1_signals[] = {
    /* name      first           last                 action              to                  code           refused          text */
    { "cancel", SAGAFLOW_A,      SAGAFLOW_SHIP_DELAY, SAGA_SIGNAL_CANCEL, 0,                  LB_ERR_STATE,  LB_ERR_STATE,    NULL },
    { "return", SAGAFLOW_WINDOW, SAGAFLOW_WINDOW,     SAGA_SIGNAL_GOTO,   SAGAFLOW_RET_DELAY, LB_OK,         LB_ERR_CONFLICT, NULL },
};
/* clang-format on */

const saga_type saga_sagaflow_v1 = {
    .name = "sagaflow",
    .version = 1,
    .start = &layby__v1__start_test_saga__descriptor,
    .steps = sagaflow_v1_steps,
    .n_steps = LB_COUNTOF(sagaflow_v1_steps),
    .signals = sagaflow_v1_signals,
    .n_signals = LB_COUNTOF(sagaflow_v1_signals),
    .record = &layby__v1__test_saga_record__descriptor,
};
