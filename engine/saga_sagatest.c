/* saga_sagatest.c - the three-step test saga, "sagatest" v1.
 *
 * It exists so the saga engine can be tested end to end without any shop
 * logic: steps a, b and c each send TestStepDo to the test participants and
 * are undone with TestStepUndo. The participants (test daemons) behave as the
 * StartTestSaga's `script` tells them; the saga itself treats it as opaque
 * data copied into every command. Unit tests drive the decider with it and
 * integration tests run it through a real orchestrator.
 */
#include "saga.h"

#include <stdlib.h>
#include <string.h>

#include "layby/v1/saga.pb-c.h"

/* Timeouts are short so a test that exercises them runs in about a second. */
static const saga_retry sagatest_retry = {
    .attempts = 3,
    .base_ms = 100,
    .multiplier = 2,
    .cap_ms = 1000,
    .jitter_pct = 20,
};

static const saga_retry sagatest_compensate_retry = {
    .attempts = 3,
    .base_ms = 100,
    .multiplier = 2,
    .cap_ms = 1000,
    .jitter_pct = 20,
};

static char *
dup_str(const char *s)
{
    return strdup(s != NULL ? s : "");
}

/* Fills the fields TestStepDo and TestStepUndo share; false when out of memory
 * (what was set is freed with the message). */
static bool
fill_common(char **saga_id, char **key, char **script, const saga_state *s,
            const ProtobufCMessage *start)
{
    const Layby__V1__StartTestSaga *st = (const Layby__V1__StartTestSaga *)start;
    *saga_id = dup_str(s->id);
    *key = dup_str(st != NULL ? st->key : NULL);
    *script = dup_str(st != NULL ? st->script : NULL);
    return *saga_id != NULL && *key != NULL && *script != NULL;
}

static lb_status
sagatest_build_do(ProtobufCMessage **out, const saga_type *t, const saga_state *s,
                  const saga_cmd *cmd, const ProtobufCMessage *start, lb_err *err)
{
    (void)t;
    Layby__V1__TestStepDo *m = malloc(sizeof *m);
    if (m == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "sagatest: out of memory");
    layby__v1__test_step_do__init(m);
    m->step = cmd->step;
    m->attempt = cmd->attempt;
    if (!fill_common(&m->saga_id, &m->key, &m->script, s, start)) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "sagatest: out of memory");
    }
    *out = &m->base;
    return LB_OK;
}

static lb_status
sagatest_build_undo(ProtobufCMessage **out, const saga_type *t, const saga_state *s,
                    const saga_cmd *cmd, const ProtobufCMessage *start, lb_err *err)
{
    (void)t;
    Layby__V1__TestStepUndo *m = malloc(sizeof *m);
    if (m == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "sagatest: out of memory");
    layby__v1__test_step_undo__init(m);
    m->step = cmd->step;
    m->attempt = cmd->attempt;
    if (!fill_common(&m->saga_id, &m->key, &m->script, s, start)) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "sagatest: out of memory");
    }
    *out = &m->base;
    return LB_OK;
}

#define SAGATEST_STEP(step_name)                                                            \
    {                                                                                       \
        .name = step_name, .command = &layby__v1__test_step_do__descriptor,                 \
        .subject = SAGA_SUBJ_TEST_DO, .build = sagatest_build_do,                           \
        .on_ok = &layby__v1__test_step_done__descriptor,                                    \
        .on_fail = &layby__v1__test_step_failed__descriptor, .timeout_ms = 1000,            \
        .retry = &sagatest_retry, .compensate = &layby__v1__test_step_undo__descriptor,     \
        .compensate_subject = SAGA_SUBJ_TEST_UNDO, .build_compensate = sagatest_build_undo, \
        .on_compensated = &layby__v1__test_step_undone__descriptor,                         \
        .on_compensate_fail = &layby__v1__test_step_undo_failed__descriptor,                \
        .compensate_retry = &sagatest_compensate_retry,                                     \
    }

static const saga_step sagatest_v1_steps[] = {
    SAGATEST_STEP("a"),
    SAGATEST_STEP("b"),
    SAGATEST_STEP("c"),
};

const saga_type saga_sagatest_v1 = {
    .name = "sagatest",
    .version = 1,
    .start = &layby__v1__start_test_saga__descriptor,
    .steps = sagatest_v1_steps,
    .n_steps = LB_COUNTOF(sagatest_v1_steps),
};
