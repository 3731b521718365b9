/* saga_types.c - saga types as data: their checks, the registry keyed by
 * (name, version), the name tables of states, and the two places where a
 * type's table meets real messages (reading an event, building a command).
 *
 * A type is checked once when registered, so the decider can trust its table
 * (every retry policy present, every step able to time out) and a typo in a
 * table fails at start-up, not in the middle of someone's order.
 */
#include "saga.h"

#include <stdio.h>
#include <string.h>

#include "saga_internal.h"

/* --- name tables -------------------------------------------------------------- */

typedef struct status_row {
    const char *name;
    bool terminal;
    const char *subject;
} status_row;

static const status_row status_rows[] = {
#define SAGA__ROW(name, terminal, subject) [SAGA_##name] = { #name, terminal, subject },
    SAGA_STATUS_MAP(SAGA__ROW)
#undef SAGA__ROW
};
_Static_assert(LB_COUNTOF(status_rows) == SAGA__STATUS_COUNT, "saga status table");

/* clang-format off */
static const char *const step_status_names[] = {
    [SAGA_STEP_PENDING]      = "PENDING",
    [SAGA_STEP_SENT]         = "SENT",
    [SAGA_STEP_DONE]         = "DONE",
    [SAGA_STEP_FAILED]       = "FAILED",
    [SAGA_STEP_COMPENSATING] = "COMPENSATING",
    [SAGA_STEP_COMPENSATED]  = "COMPENSATED",
    [SAGA_STEP_SKIPPED]      = "SKIPPED",
};
static const char *const timer_kind_names[] = {
    [SAGA_TIMER_STEP_TIMEOUT] = "STEP_TIMEOUT",
    [SAGA_TIMER_STEP_RETRY]   = "STEP_RETRY",
    [SAGA_TIMER_COMP_TIMEOUT] = "COMP_TIMEOUT",
    [SAGA_TIMER_COMP_RETRY]   = "COMP_RETRY",
    [SAGA_TIMER_DELAY]        = "DELAY",
};
static const char *const input_kind_names[] = {
    [SAGA_IN_START]   = "START",
    [SAGA_IN_EVENT]   = "EVENT",
    [SAGA_IN_TIMER]   = "TIMER",
    [SAGA_IN_RETRY]   = "RETRY",
    [SAGA_IN_RESOLVE] = "RESOLVE",
    [SAGA_IN_SIGNAL]  = "SIGNAL",
};
static const char *const step_kind_names[] = {
    [SAGA_STEP_COMMAND] = "COMMAND",
    [SAGA_STEP_WAIT]    = "WAIT",
    [SAGA_STEP_DELAY]   = "DELAY",
};
/* clang-format on */
_Static_assert(LB_COUNTOF(step_status_names) == SAGA__STEP_STATUS_COUNT, "step status table");
_Static_assert(LB_COUNTOF(timer_kind_names) == SAGA__TIMER_KIND_COUNT, "timer kind table");
_Static_assert(LB_COUNTOF(input_kind_names) == SAGA__INPUT_KIND_COUNT, "input kind table");
_Static_assert(LB_COUNTOF(step_kind_names) == SAGA_STEP_DELAY + 1, "step kind table");

const char *
saga_status_name(saga_status s)
{
    return (unsigned)s < SAGA__STATUS_COUNT ? status_rows[s].name : "?";
}

const char *
saga_status_subject(saga_status s)
{
    return (unsigned)s < SAGA__STATUS_COUNT ? status_rows[s].subject : "";
}

bool
saga_status_terminal(saga_status s)
{
    return (unsigned)s < SAGA__STATUS_COUNT ? status_rows[s].terminal : true;
}

saga_status
saga_status_from_name(const char *name)
{
    if (name == NULL)
        return SAGA_NONE;
    for (size_t i = 0; i < LB_COUNTOF(status_rows); i++)
        if (strcmp(status_rows[i].name, name) == 0)
            return (saga_status)i;
    return SAGA_NONE;
}

const char *
saga_step_status_name(saga_step_status s)
{
    return (unsigned)s < SAGA__STEP_STATUS_COUNT ? step_status_names[s] : "?";
}

const char *
saga_timer_kind_name(saga_timer_kind k)
{
    return (unsigned)k < SAGA__TIMER_KIND_COUNT ? timer_kind_names[k] : "?";
}

const char *
saga_input_kind_name(saga_input_kind k)
{
    return (unsigned)k < SAGA__INPUT_KIND_COUNT ? input_kind_names[k] : "?";
}

const char *
saga_step_kind_name(saga_step_kind k)
{
    return (unsigned)k < LB_COUNTOF(step_kind_names) ? step_kind_names[k] : "?";
}

/* --- type checks ---------------------------------------------------------------- */

static lb_status
retry_check(const saga_retry *r, const char *what, lb_err *err)
{
    if (r == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "%s: no retry policy", what);
    if (r->attempts < 1 || r->attempts > UINT16_MAX)
        return lb_err_set(err, LB_ERR_CONFIG, "%s: attempts must be 1..%u", what, UINT16_MAX);
    if (r->base_ms < 0 || r->cap_ms < r->base_ms || r->multiplier < 1 || r->jitter_pct > 100)
        return lb_err_set(err, LB_ERR_CONFIG,
                          "%s: need 0 <= base_ms <= cap_ms, multiplier >= 1, jitter_pct <= 100",
                          what);
    return LB_OK;
}

static const saga_retry *
comp_retry(const saga_step *step)
{
    return step->compensate_retry != NULL ? step->compensate_retry : step->retry;
}

/* The four events of a step must differ, or an event could not tell the
 * decider what it means. */
static bool
events_distinct(const saga_step *step)
{
    const ProtobufCMessageDescriptor *ev[] = { step->on_ok, step->on_fail, step->on_compensated,
                                               step->on_compensate_fail };
    for (size_t a = 0; a < LB_COUNTOF(ev); a++)
        for (size_t b = a + 1; b < LB_COUNTOF(ev); b++)
            if (ev[a] != NULL && ev[a] == ev[b])
                return false;
    return true;
}

/* An event arrives on layby.evt.<aggregate>.<name>: the orchestrator reads
 * it through its durable orchestrator-<aggregate> (saga_orch_handlers.c). */
static lb_status
event_subject_check(const ProtobufCMessageDescriptor *ev, const char *subject, const char *what,
                    lb_err *err)
{
    static const char prefix[] = "layby.evt.";
    if (ev == NULL) {
        if (subject != NULL)
            return lb_err_set(err, LB_ERR_CONFIG, "%s: a subject without its event", what);
        return LB_OK;
    }
    const char *agg = subject != NULL ? subject + sizeof prefix - 1 : NULL;
    if (subject == NULL || strncmp(subject, prefix, sizeof prefix - 1) != 0 ||
        strchr(agg, '.') == NULL || agg[0] == '.' || strchr(subject, '*') != NULL ||
        strchr(subject, '>') != NULL || strlen(subject) >= SAGA_SUBJECT_MAX)
        return lb_err_set(err, LB_ERR_CONFIG, "%s: event %s needs a subject layby.evt.<agg>.<name>",
                          what, ev->name);
    return LB_OK;
}

static lb_status
events_check(const saga_step *step, const char *what, lb_err *err)
{
    const struct {
        const ProtobufCMessageDescriptor *ev;
        const char *subject;
    } evs[] = {
        { step->on_ok, step->on_ok_subject },
        { step->on_fail, step->on_fail_subject },
        { step->on_compensated, step->on_compensated_subject },
        { step->on_compensate_fail, step->on_compensate_fail_subject },
    };
    for (size_t k = 0; k < LB_COUNTOF(evs); k++) {
        lb_status rc = event_subject_check(evs[k].ev, evs[k].subject, what, err);
        if (rc != LB_OK)
            return rc;
    }
    return LB_OK;
}

/* What each step kind needs: the rules of saga.h saga_step_kind. */
static lb_status
kind_check(const saga_type *t, const saga_step *step, const char *what, lb_err *err)
{
    switch (step->kind) {
    case SAGA_STEP_COMMAND:
        if (step->command != NULL && (step->subject == NULL || step->build == NULL))
            return lb_err_set(err, LB_ERR_CONFIG, "%s: a command needs a subject and a builder",
                              what);
        if (step->on_ok == NULL)
            return lb_err_set(err, LB_ERR_CONFIG, "%s: no success event", what);
        return retry_check(step->retry, what, err);
    case SAGA_STEP_WAIT:
        if (step->command != NULL || step->on_ok == NULL)
            return lb_err_set(err, LB_ERR_CONFIG,
                              "%s: a wait step sends nothing and needs an event", what);
        if (step->compensate != NULL &&
            (comp_retry(step) == NULL || step->compensate_timeout_ms <= 0))
            return lb_err_set(err, LB_ERR_CONFIG,
                              "%s: a wait step's compensation needs compensate_retry and "
                              "compensate_timeout_ms",
                              what);
        return LB_OK;
    case SAGA_STEP_DELAY:
        if (step->command != NULL || step->on_ok != NULL || step->on_fail != NULL ||
            step->compensate != NULL || step->merge != NULL || step->retry != NULL)
            return lb_err_set(err, LB_ERR_CONFIG,
                              "%s: a delay step has no command, events, retry or compensation",
                              what);
        return LB_OK;
    }
    (void)t;
    return lb_err_set(err, LB_ERR_CONFIG, "%s: unknown step kind %d", what, (int)step->kind);
}

static lb_status
step_check(const saga_type *t, size_t i, lb_err *err)
{
    const saga_step *step = &t->steps[i];
    char what[SAGA_NAME_MAX + 96];
    snprintf(what, sizeof what, "saga %s v%u step %zu (%s)", t->name, t->version, i,
             step->name != NULL ? step->name : "?");
    if (step->name == NULL || step->name[0] == '\0')
        return lb_err_set(err, LB_ERR_CONFIG, "%s: no name", what);
    if (step->timeout_ms <= 0 && step->duration == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "%s: needs timeout_ms > 0 or a duration", what);
    if (step->timeout_ms < 0 || step->compensate_timeout_ms < 0)
        return lb_err_set(err, LB_ERR_CONFIG, "%s: negative duration", what);
    if (step->merge != NULL && t->record == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "%s: a merge hook needs the type's record", what);
    lb_status rc = kind_check(t, step, what, err);
    if (rc != LB_OK)
        return rc;
    if (step->forward && step->kind != SAGA_STEP_COMMAND)
        return lb_err_set(err, LB_ERR_CONFIG, "%s: only a command step is retried forward", what);
    /* R12: both commands go in one decision; the step before must have a
     * command to go with, and must not be one a requester's answer or the
     * saga's end depends on, since this one may still be out then. */
    if (step->ahead &&
        (i == 0 || step->kind != SAGA_STEP_COMMAND || step->command == NULL || step->pivot ||
         step->answers || t->steps[i - 1].kind != SAGA_STEP_COMMAND ||
         t->steps[i - 1].command == NULL || t->steps[i - 1].reply || t->steps[i - 1].ends ||
         t->steps[i - 1].pivot || t->steps[i - 1].skip != NULL || t->steps[i - 1].ahead))
        return lb_err_set(err, LB_ERR_CONFIG,
                          "%s: only a command step that does not answer the requester, after a "
                          "plain command step (no reply, ends, pivot, skip or ahead), may be "
                          "sent ahead",
                          what);
    if (step->compensate != NULL) {
        if (step->compensate_subject == NULL || step->build_compensate == NULL ||
            step->on_compensated == NULL)
            return lb_err_set(err, LB_ERR_CONFIG,
                              "%s: a compensation needs a subject, a builder and an event", what);
        if (comp_retry(step) == NULL)
            return lb_err_set(err, LB_ERR_CONFIG, "%s: a compensation needs a retry policy", what);
        if ((rc = retry_check(comp_retry(step), what, err)) != LB_OK)
            return rc;
        if (step->timeout_ms <= 0 && step->compensate_timeout_ms <= 0)
            return lb_err_set(err, LB_ERR_CONFIG,
                              "%s: a compensation needs compensate_timeout_ms or timeout_ms", what);
    } else if (step->on_compensated != NULL || step->on_compensate_fail != NULL) {
        return lb_err_set(err, LB_ERR_CONFIG, "%s: compensation events without a compensation",
                          what);
    }
    if (!events_distinct(step))
        return lb_err_set(err, LB_ERR_CONFIG, "%s: one event type has two meanings", what);
    if (step->skip != NULL && (step->kind != SAGA_STEP_COMMAND || step->compensate != NULL ||
                               step->reply || step->ends || step->pivot))
        return lb_err_set(err, LB_ERR_CONFIG,
                          "%s: only a command step without compensation, reply, ends or pivot "
                          "may be skipped",
                          what);
    /* An answering step's command carries the requester's inbox: only where
     * its outcome is the saga's one reply (R7), or a requester would hear a
     * step's answer while the saga goes on to decide something else. */
    if (step->answers && (step->kind != SAGA_STEP_COMMAND || step->command == NULL ||
                          !(step->reply || step->ends || i + 1 == t->n_steps)))
        return lb_err_set(err, LB_ERR_CONFIG,
                          "%s: only a command step whose success is the saga's reply (reply, "
                          "ends or the last step) may answer the requester",
                          what);
    return events_check(step, what, err);
}

/* Signal rules (saga.h saga_signal): a range of steps, and a GOTO only from
 * steps with nothing in flight, forward. */
static lb_status
signals_check(const saga_type *t, lb_err *err)
{
    if (t->n_signals > 0 && t->signals == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "saga %s: n_signals without signals", t->name);
    for (size_t k = 0; k < t->n_signals; k++) {
        const saga_signal *r = &t->signals[k];
        const char *name = r->name != NULL ? r->name : "";
        if (name[0] == '\0' || strlen(name) >= SAGA_NAME_MAX || r->first > r->last ||
            r->last >= t->n_steps)
            return lb_err_set(err, LB_ERR_CONFIG,
                              "saga %s v%u signal %zu (%s): needs a name and steps first <= last",
                              t->name, t->version, k, name);
        if (r->action == SAGA_SIGNAL_CANCEL)
            continue;
        if (r->action != SAGA_SIGNAL_GOTO || r->to <= r->last || r->to >= t->n_steps)
            return lb_err_set(err, LB_ERR_CONFIG,
                              "saga %s v%u signal %s: GOTO needs last < to < steps", t->name,
                              t->version, name);
        for (uint32_t i = r->first; i <= r->last; i++)
            if (t->steps[i].kind == SAGA_STEP_COMMAND)
                return lb_err_set(err, LB_ERR_CONFIG,
                                  "saga %s v%u signal %s: GOTO from command step %s (a command "
                                  "may be in flight)",
                                  t->name, t->version, name, t->steps[i].name);
    }
    return LB_OK;
}

lb_status
saga_type_check(const saga_type *t, lb_err *err)
{
    if (t == NULL || t->name == NULL || t->name[0] == '\0' || strlen(t->name) >= SAGA_NAME_MAX ||
        strpbrk(t->name, ".*> ") != NULL)
        return lb_err_set(err, LB_ERR_CONFIG,
                          "saga type: name must be 1..%d characters, none of '.*> '",
                          SAGA_NAME_MAX - 1);
    if (t->version < 1)
        return lb_err_set(err, LB_ERR_CONFIG, "saga %s: version must be >= 1", t->name);
    if (t->start == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "saga %s v%u: no start message", t->name, t->version);
    if (t->steps == NULL || t->n_steps < 1 || t->n_steps > SAGA_STEPS_MAX)
        return lb_err_set(err, LB_ERR_CONFIG, "saga %s v%u: needs 1..%d steps", t->name, t->version,
                          SAGA_STEPS_MAX);
    for (size_t i = 0; i < t->n_steps; i++) {
        lb_status rc = step_check(t, i, err);
        if (rc != LB_OK)
            return rc;
    }
    return signals_check(t, err);
}

/* --- registry -------------------------------------------------------------------- */

lb_status
saga_registry_init(saga_registry *r, const saga_type *const *types, size_t n, lb_err *err)
{
    if (r == NULL || (types == NULL && n > 0))
        return lb_err_set(err, LB_ERR_INVALID, "saga_registry_init: missing argument");
    for (size_t i = 0; i < n; i++) {
        lb_status rc = saga_type_check(types[i], err);
        if (rc != LB_OK)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(types[i]->name, types[j]->name) == 0 &&
                types[i]->version == types[j]->version)
                return lb_err_set(err, LB_ERR_CONFIG, "saga %s v%u registered twice",
                                  types[i]->name, types[i]->version);
    }
    r->types = types;
    r->n_types = n;
    return LB_OK;
}

const saga_type *
saga_registry_find(const saga_registry *r, const char *name, uint32_t version)
{
    if (r == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < r->n_types; i++)
        if (r->types[i]->version == version && strcmp(r->types[i]->name, name) == 0)
            return r->types[i];
    return NULL;
}

const char *
saga_correlation(const saga_type *t, const char *id, const ProtobufCMessage *start)
{
    const char *c =
        t != NULL && t->correlation != NULL && start != NULL ? t->correlation(start) : NULL;
    return c != NULL && id_valid(c) ? c : id;
}

const saga_type *
saga_registry_latest(const saga_registry *r, const char *name)
{
    const saga_type *best = NULL;
    if (r == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < r->n_types; i++)
        if (strcmp(r->types[i]->name, name) == 0 &&
            (best == NULL || r->types[i]->version > best->version))
            best = r->types[i];
    return best;
}

lb_status
saga_registry_for(const saga_type **out, const saga_registry *r, const saga_state *s, lb_err *err)
{
    const saga_type *t = saga_registry_find(r, s->type, s->version);
    if (t == NULL)
        return lb_err_set(err, LB_ERR_NOT_FOUND,
                          "saga %s runs on %s v%u, which this build does not have", s->id, s->type,
                          s->version);
    *out = t;
    return LB_OK;
}

/* --- messages -------------------------------------------------------------------- */

static const ProtobufCFieldDescriptor *
field_of(const ProtobufCMessage *m, const char *name, ProtobufCType type)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (f == NULL || f->type != type || f->label == PROTOBUF_C_LABEL_REPEATED ||
        (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return NULL;
    return f;
}

#define FIELD_AT(m, f, T) (*(const T *)((const char *)(m) + (f)->offset))

const ProtobufCMessageDescriptor *
saga__event_find(const saga_type *t, const char *full_name)
{
    for (size_t i = 0; i < t->n_steps; i++) {
        const saga_step *step = &t->steps[i];
        const ProtobufCMessageDescriptor *ev[] = { step->on_ok, step->on_fail, step->on_compensated,
                                                   step->on_compensate_fail };
        for (size_t k = 0; k < LB_COUNTOF(ev); k++)
            if (ev[k] != NULL && strcmp(ev[k]->name, full_name) == 0)
                return ev[k];
    }
    return NULL;
}

/* The step an event without a `step` field belongs to: the one step that
 * names its type. */
static lb_status
step_by_type(uint32_t *out, const saga_type *t, const ProtobufCMessageDescriptor *desc, lb_err *err)
{
    size_t found = 0;
    for (size_t i = 0; i < t->n_steps; i++) {
        const saga_step *step = &t->steps[i];
        if (step->on_ok == desc || step->on_fail == desc || step->on_compensated == desc ||
            step->on_compensate_fail == desc) {
            *out = (uint32_t)i;
            found++;
        }
    }
    if (found == 1)
        return LB_OK;
    return lb_err_set(err, LB_ERR_INVALID,
                      "%s is an event of %zu steps of saga %s v%u and has no "
                      "step field",
                      desc->name, found, t->name, t->version);
}

lb_status
saga_event_read(saga_input *in, const saga_type *t, const ProtobufCMessage *ev, lb_err *err)
{
    const ProtobufCFieldDescriptor *f;
    if (in == NULL || t == NULL || ev == NULL)
        return lb_err_set(err, LB_ERR_INVALID, "saga_event_read: missing argument");
    if (saga__event_find(t, ev->descriptor->name) == NULL)
        return lb_err_set(err, LB_ERR_INVALID, "%s is no event of saga %s v%u",
                          ev->descriptor->name, t->name, t->version);
    uint32_t step = 0;
    if ((f = field_of(ev, "step", PROTOBUF_C_TYPE_UINT32)) != NULL) {
        step = FIELD_AT(ev, f, uint32_t);
    } else {
        lb_status rc = step_by_type(&step, t, ev->descriptor, err);
        if (rc != LB_OK)
            return rc; /* several steps share this type and it does not say which */
    }
    in->kind = SAGA_IN_EVENT;
    in->event = ev->descriptor;
    in->step = step;
    f = field_of(ev, "attempt", PROTOBUF_C_TYPE_UINT32);
    in->attempt = f != NULL ? FIELD_AT(ev, f, uint32_t) : 0;
    f = field_of(ev, "final", PROTOBUF_C_TYPE_BOOL);
    in->final = f != NULL && FIELD_AT(ev, f, protobuf_c_boolean);
    f = field_of(ev, "code", PROTOBUF_C_TYPE_STRING);
    const char *code = f != NULL ? FIELD_AT(ev, f, char *) : NULL;
    in->code = code != NULL && code[0] != '\0' ? lb_status_from_code(code) : LB_OK;
    f = field_of(ev, "reason", PROTOBUF_C_TYPE_STRING);
    in->reason = f != NULL ? FIELD_AT(ev, f, char *) : NULL;
    return LB_OK;
}

lb_status
saga_cmd_build(ProtobufCMessage **out, const saga_type *t, const saga_state *s, const saga_cmd *cmd,
               const ProtobufCMessage *start, lb_err *err)
{
    if (out == NULL || t == NULL || s == NULL || cmd == NULL || cmd->step >= t->n_steps)
        return lb_err_set(err, LB_ERR_INVALID, "saga_cmd_build: bad argument");
    const saga_step *step = &t->steps[cmd->step];
    saga_build_fn fn = cmd->compensate ? step->build_compensate : step->build;
    if (fn == NULL)
        return lb_err_set(err, LB_ERR_INVALID, "saga %s v%u step %s: no builder", t->name,
                          t->version, step->name);
    if (start != NULL && start->descriptor != t->start)
        return lb_err_set(err, LB_ERR_INVALID, "saga %s: start message is %s, not %s", t->name,
                          start->descriptor->name, t->start->name);
    ProtobufCMessage *record = NULL;
    lb_status rc = saga_record_get(&record, t, s, err);
    if (rc != LB_OK)
        return rc;
    saga_build_in in = { .t = t, .s = s, .cmd = cmd, .start = start, .record = record };
    rc = fn(out, &in, err);
    if (record != NULL)
        protobuf_c_message_free_unpacked(record, NULL);
    return rc;
}
