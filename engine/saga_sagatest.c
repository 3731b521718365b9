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

/* A string field of the start command (StartTestSaga or StartBenchSaga, which
 * share their field names), read through its descriptor. */
static const char *
start_str(const ProtobufCMessage *start, const char *name)
{
    if (start == NULL)
        return NULL;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(start->descriptor, name);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING)
        return NULL;
    return *(char *const *)((const char *)start + f->offset);
}

/* Fills the fields TestStepDo and TestStepUndo share; false when out of memory
 * (what was set is freed with the message). */
static bool
fill_common(char **saga_id, char **key, char **script, const saga_state *s,
            const ProtobufCMessage *start)
{
    *saga_id = dup_str(s->id);
    *key = dup_str(start_str(start, "key"));
    *script = dup_str(start_str(start, "script"));
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

/* clang-format off */
#define SAGATEST_STEP_T(step_name, timeout)                                      \
    {                                                                            \
        .name = step_name,                                                       \
        .command = &layby__v1__test_step_do__descriptor,                         \
        .subject = SAGA_SUBJ_TEST_DO,                                            \
        .build = sagatest_build_do,                                              \
        .on_ok = &layby__v1__test_step_done__descriptor,                         \
        .on_fail = &layby__v1__test_step_failed__descriptor,                     \
        .timeout_ms = (timeout),                                                 \
        .retry = &sagatest_retry,                                                \
        .compensate = &layby__v1__test_step_undo__descriptor,                    \
        .compensate_subject = SAGA_SUBJ_TEST_UNDO,                               \
        .build_compensate = sagatest_build_undo,                                 \
        .on_compensated = &layby__v1__test_step_undone__descriptor,              \
        .on_compensate_fail = &layby__v1__test_step_undo_failed__descriptor,     \
        .compensate_retry = &sagatest_compensate_retry,                          \
    }
/* clang-format on */

#define SAGATEST_STEP(step_name) SAGATEST_STEP_T(step_name, 1000)

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

static const saga_step sagabench_v1_steps[] = {
    SAGATEST_STEP_T("a", 30000),
    SAGATEST_STEP_T("b", 30000),
    SAGATEST_STEP_T("c", 30000),
};

const saga_type saga_sagabench_v1 = {
    .name = "sagabench",
    .version = 1,
    .start = &layby__v1__start_bench_saga__descriptor,
    .steps = sagabench_v1_steps,
    .n_steps = LB_COUNTOF(sagabench_v1_steps),
};
