/* sagatest.c - the three-step test saga, "sagatest" v1, and "sagabench".
 *
 * It exists so the saga engine can be tested end to end without any shop
 * logic: steps a, b and c each send TestStepDo to the test participants and
 * are undone with TestStepUndo. The participants (test daemons) behave as the
 * StartTestSaga's `script` tells them; the saga itself treats it as opaque
 * data copied into every command. Unit tests drive the decider with it and
 * integration tests run it through a real orchestrator.
 */
#include "sagas_test.h"

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

/* The list a test build of the orchestrator registers besides sagas/. */
const saga_type *const sagas_test[] = {
    &saga_sagatest_v1,
    &saga_sagabench_v1,
    &saga_sagaflow_v1,
};
const size_t sagas_n_test = LB_COUNTOF(sagas_test);

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

/* Sets string field `name` of m to a copy of v; false when out of memory. */
static bool
set_str(ProtobufCMessage *m, const char *name, const char *v)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    char *copy = dup_str(v);
    if (copy == NULL)
        return false;
    memcpy((char *)m + f->offset, &copy, sizeof copy);
    return true;
}

static void
set_u32(ProtobufCMessage *m, const char *name, uint32_t v)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    memcpy((char *)m + f->offset, &v, sizeof v);
}

/* Builds TestStepDo or TestStepUndo (cmd->desc): both carry saga_id, step,
 * attempt, and the start command's key and script, so one builder serves both. */
static lb_status
sagatest_build(ProtobufCMessage **out, const saga_build_in *in, lb_err *err)
{
    const saga_cmd *cmd = in->cmd;
    const saga_state *s = in->s;
    const ProtobufCMessage *start = in->start;
    ProtobufCMessage *m = malloc(cmd->desc->sizeof_message);
    if (m == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "sagatest: out of memory");
    protobuf_c_message_init(cmd->desc, m);
    set_u32(m, "step", cmd->step);
    set_u32(m, "attempt", cmd->attempt);
    if (!set_str(m, "saga_id", s->id) || !set_str(m, "key", start_str(start, "key")) ||
        !set_str(m, "script", start_str(start, "script"))) {
        protobuf_c_message_free_unpacked(m, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "sagatest: out of memory");
    }
    *out = m;
    return LB_OK;
}

/* clang-format off */
#define SAGATEST_STEP_T(step_name, timeout)                                      \
    {                                                                            \
        .name = step_name,                                                       \
        .command = &layby__v1__test_step_do__descriptor,                         \
        .subject = SAGA_SUBJ_TEST_DO,                                            \
        .build = sagatest_build,                                              \
        .on_ok = &layby__v1__test_step_done__descriptor,                         \
        .on_ok_subject = SAGA_SUBJ_TEST_DONE,                                    \
        .on_fail = &layby__v1__test_step_failed__descriptor,                     \
        .on_fail_subject = SAGA_SUBJ_TEST_FAILED,                                \
        .timeout_ms = (timeout),                                                 \
        .retry = &sagatest_retry,                                                \
        .compensate = &layby__v1__test_step_undo__descriptor,                    \
        .compensate_subject = SAGA_SUBJ_TEST_UNDO,                               \
        .build_compensate = sagatest_build,                                 \
        .on_compensated = &layby__v1__test_step_undone__descriptor,              \
        .on_compensated_subject = SAGA_SUBJ_TEST_UNDONE,                         \
        .on_compensate_fail = &layby__v1__test_step_undo_failed__descriptor,     \
        .on_compensate_fail_subject = SAGA_SUBJ_TEST_UNDO_FAILED,                \
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

/* sagatest v1 as a changed build would have it: step b sends its command to
 * another subject. Never registered: `layby-ctl events replay --check` swaps
 * it in (LAYBY_CTL_TEST_CHANGED_STEPS=1) to show a divergence is reported. */
static const saga_step sagatest_v1_changed_steps[] = {
    SAGATEST_STEP("a"),
    {
        .name = "b",
        .command = &layby__v1__test_step_do__descriptor,
        .subject = "layby.cmd.sagatest.changed",
        .build = sagatest_build,
        .on_ok = &layby__v1__test_step_done__descriptor,
        .on_ok_subject = SAGA_SUBJ_TEST_DONE,
        .on_fail = &layby__v1__test_step_failed__descriptor,
        .on_fail_subject = SAGA_SUBJ_TEST_FAILED,
        .timeout_ms = 1000,
        .retry = &sagatest_retry,
        .compensate = &layby__v1__test_step_undo__descriptor,
        .compensate_subject = SAGA_SUBJ_TEST_UNDO,
        .build_compensate = sagatest_build,
        .on_compensated = &layby__v1__test_step_undone__descriptor,
        .on_compensated_subject = SAGA_SUBJ_TEST_UNDONE,
        .on_compensate_fail = &layby__v1__test_step_undo_failed__descriptor,
        .on_compensate_fail_subject = SAGA_SUBJ_TEST_UNDO_FAILED,
        .compensate_retry = &sagatest_compensate_retry,
    },
    SAGATEST_STEP("c"),
};

const saga_type saga_sagatest_v1_changed = {
    .name = "sagatest",
    .version = 1,
    .start = &layby__v1__start_test_saga__descriptor,
    .steps = sagatest_v1_changed_steps,
    .n_steps = LB_COUNTOF(sagatest_v1_changed_steps),
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

/* v2 adds a fourth step d, so a saga's effects show which version ran it. */
static const saga_step sagabench_v2_steps[] = {
    SAGATEST_STEP_T("a", 30000),
    SAGATEST_STEP_T("b", 30000),
    SAGATEST_STEP_T("c", 30000),
    SAGATEST_STEP_T("d", 30000),
};

const saga_type saga_sagabench_v2 = {
    .name = "sagabench",
    .version = 2,
    .start = &layby__v1__start_bench_saga__descriptor,
    .steps = sagabench_v2_steps,
    .n_steps = LB_COUNTOF(sagabench_v2_steps),
};

const saga_type *const sagas_test_v2[] = {
    &saga_sagabench_v2,
};
const size_t sagas_n_test_v2 = LB_COUNTOF(sagas_test_v2);
