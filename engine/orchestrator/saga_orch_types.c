/* saga_orch_types.c - which saga types this orchestrator runs, and what it
 * reads because of them.
 *
 * The types are sagas/'s list (sagas_all), plus in a test build
 * (LAYBY_TEST_HOOKS) the test and bench types of tests/sagas/ (and sagabench
 * v2 with LAYBY_TEST_SAGA_V2=1). Everything the
 * orchestrator reads is derived from their tables (STYLE §13), so a new saga
 * type is its file plus one line in sagas/sagas.c:
 *   - a start handler on layby.cmd.saga.start.<type name> (decoded as the
 *     type's start message), read through the LAYBY_CMD durable `orchestrator`;
 *   - a handler for every event subject a step names, read through one
 *     LAYBY_EVT durable per aggregate, orchestrator-<aggregate>;
 *   - the engine's own commands: retry, resolve, signal.
 * svc_new() refuses a handler no durable delivers, and a durable missing from
 * engine/bus_topology.c, so a type waiting for a new aggregate fails at start
 * until that durable and its NATS permissions exist (docs/SAGAS.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layby/v1/saga.pb-c.h"
#include "saga_orch.h"
#include "sagas/sagas.h"

#ifdef LAYBY_TEST_HOOKS
#include "tests/sagas/sagas_test.h"
#endif

#define TYPES_MAX     64
#define HANDLERS_MAX  128
#define CONSUMERS_MAX 16
#define DURABLE_MAX   (SAGA_NAME_MAX + 16)

/* Filled once by saga_orch_init() before any thread starts; read-only after. */
static struct {
    const saga_type *types[TYPES_MAX];
    size_t n_types;
    saga_registry reg;
    svc_handler handlers[HANDLERS_MAX];
    size_t n_handlers;
    char start_subjects[TYPES_MAX][SAGA_SUBJECT_MAX];
    const char *start_names[TYPES_MAX]; /* type name started by start_subjects[i] */
    size_t n_starts;
    svc_consumer consumers[CONSUMERS_MAX];
    char durables[CONSUMERS_MAX][DURABLE_MAX];
    size_t n_consumers;
} orch;

static lb_status
add_types(const saga_type *const *types, size_t n, lb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (orch.n_types == TYPES_MAX)
            return lb_err_set(err, LB_ERR_CONFIG, "more than %d saga types", TYPES_MAX);
        orch.types[orch.n_types++] = types[i];
    }
    return LB_OK;
}

static lb_status
add_handler(const char *subject, const ProtobufCMessageDescriptor *desc, lb_err *err)
{
    for (size_t i = 0; i < orch.n_handlers; i++) {
        if (strcmp(orch.handlers[i].subject, subject) != 0)
            continue;
        if (orch.handlers[i].desc != desc)
            return lb_err_set(err, LB_ERR_CONFIG, "%s carries %s and %s in two saga types", subject,
                              orch.handlers[i].desc->name, desc->name);
        return LB_OK;
    }
    if (orch.n_handlers == HANDLERS_MAX)
        return lb_err_set(err, LB_ERR_CONFIG, "more than %d saga handler rows", HANDLERS_MAX);
    orch.handlers[orch.n_handlers++] = (svc_handler){ subject, desc, saga_orch_on_input, NULL };
    return LB_OK;
}

static lb_status
add_consumer(const char *stream, const char *durable, lb_err *err)
{
    for (size_t i = 0; i < orch.n_consumers; i++)
        if (strcmp(orch.consumers[i].stream, stream) == 0 &&
            strcmp(orch.consumers[i].durable, durable) == 0)
            return LB_OK;
    if (orch.n_consumers == CONSUMERS_MAX)
        return lb_err_set(err, LB_ERR_CONFIG, "more than %d orchestrator durables", CONSUMERS_MAX);
    char *d = orch.durables[orch.n_consumers];
    snprintf(d, DURABLE_MAX, "%s", durable);
    orch.consumers[orch.n_consumers++] = (svc_consumer){ stream, d };
    return LB_OK;
}

/* layby.evt.<aggregate>.<name> -> durable orchestrator-<aggregate> (the type
 * check made sure of the shape). */
static lb_status
add_event(const ProtobufCMessageDescriptor *ev, const char *subject, lb_err *err)
{
    if (ev == NULL)
        return LB_OK;
    const char *agg = subject + strlen("layby.evt.");
    char durable[DURABLE_MAX];
    int n = snprintf(durable, sizeof durable, "orchestrator-%.*s", (int)strcspn(agg, "."), agg);
    if (n < 0 || (size_t)n >= sizeof durable)
        return lb_err_set(err, LB_ERR_CONFIG, "%s: aggregate name too long", subject);
    lb_status s = add_consumer("LAYBY_EVT", durable, err);
    return s == LB_OK ? add_handler(subject, ev, err) : s;
}

static lb_status
add_start(const saga_type *t, lb_err *err)
{
    for (size_t i = 0; i < orch.n_starts; i++)
        if (strcmp(orch.start_names[i], t->name) == 0)
            return add_handler(orch.start_subjects[i], t->start, err); /* same message? */
    if (orch.n_starts == TYPES_MAX)
        return lb_err_set(err, LB_ERR_CONFIG, "more than %d start subjects", TYPES_MAX);
    char *subj = orch.start_subjects[orch.n_starts];
    snprintf(subj, SAGA_SUBJECT_MAX, "%s%s", SAGA_SUBJ_START_PREFIX, t->name);
    orch.start_names[orch.n_starts++] = t->name;
    return add_handler(subj, t->start, err);
}

static lb_status
derive(const saga_type *t, lb_err *err)
{
    lb_status s = add_start(t, err);
    for (size_t i = 0; i < t->n_steps && s == LB_OK; i++) {
        const saga_step *step = &t->steps[i];
        if ((s = add_event(step->on_ok, step->on_ok_subject, err)) == LB_OK &&
            (s = add_event(step->on_fail, step->on_fail_subject, err)) == LB_OK &&
            (s = add_event(step->on_compensated, step->on_compensated_subject, err)) == LB_OK)
            s = add_event(step->on_compensate_fail, step->on_compensate_fail_subject, err);
    }
    return s;
}

lb_status
saga_orch_init(lb_err *err)
{
    if (orch.n_types > 0 || orch.n_handlers > 0)
        return LB_OK; /* done already (the ctl calls it lazily) */
    lb_status s = add_types(sagas_all, sagas_n_all, err);
#ifdef LAYBY_TEST_HOOKS
    if (s == LB_OK)
        s = add_types(sagas_test, sagas_n_test, err);
    /* A second version of a test type, for the version-pinning test only: a
     * saga in flight keeps the version it started on (saga.h). */
    const char *v2 = getenv("LAYBY_TEST_SAGA_V2");
    if (s == LB_OK && v2 != NULL && strcmp(v2, "1") == 0)
        s = add_types(sagas_test_v2, sagas_n_test_v2, err);
#endif
    if (s == LB_OK)
        s = saga_registry_init(&orch.reg, orch.types, orch.n_types, err);
    /* The engine's own commands, on LAYBY_CMD/orchestrator (layby.cmd.saga.>). */
    if (s == LB_OK && (s = add_consumer("LAYBY_CMD", "orchestrator", err)) == LB_OK &&
        (s = add_handler(SAGA_SUBJ_RETRY, &layby__v1__retry_saga__descriptor, err)) == LB_OK &&
        (s = add_handler(SAGA_SUBJ_RESOLVE, &layby__v1__resolve_saga__descriptor, err)) == LB_OK)
        s = add_handler(SAGA_SUBJ_SIGNAL, &layby__v1__signal_saga__descriptor, err);
    for (size_t i = 0; i < orch.n_types && s == LB_OK; i++)
        s = derive(orch.types[i], err);
    if (s != LB_OK) {
        memset(&orch, 0, sizeof orch);
        return s;
    }
    saga_orch_def.handlers = orch.handlers;
    saga_orch_def.n_handlers = orch.n_handlers;
    saga_orch_def.consumers = orch.consumers;
    saga_orch_def.n_consumers = orch.n_consumers;
    return LB_OK;
}

const saga_registry *
saga_orch_registry(void)
{
    return &orch.reg;
}

const saga_type *
saga_orch_start_type(const char *subject)
{
    for (size_t i = 0; i < orch.n_starts; i++)
        if (strcmp(orch.start_subjects[i], subject) == 0)
            return saga_registry_latest(&orch.reg, orch.start_names[i]);
    return NULL;
}
