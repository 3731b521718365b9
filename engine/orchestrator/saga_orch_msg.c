/* saga_orch_msg.c - builds what the orchestrator says about sagas: SagaChanged
 * events, SagaOutcome replies and Failure replies (STYLE §7: one builder per
 * message). Step commands are built by the saga type's own builders. */
#include <stdlib.h>
#include <string.h>

#include "layby/v1/common.pb-c.h"
#include "layby/v1/saga.pb-c.h"
#include "saga_orch.h"

static char *
dup(const char *s, bool *oom)
{
    char *d = strdup(s != NULL ? s : "");
    if (d == NULL)
        *oom = true;
    return d;
}

static const char *
step_name(const saga_type *t, const saga_state *s)
{
    return s->step < t->n_steps ? t->steps[s->step].name : "";
}

lb_status
saga_orch_msg_changed(ProtobufCMessage **out, const saga_type *t, const saga_state *s,
                      saga_status from, const char *actor, lb_err *err)
{
    Layby__V1__SagaChanged *m = malloc(sizeof *m);
    if (m == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "SagaChanged");
    layby__v1__saga_changed__init(m);
    bool oom = false;
    m->saga_id = dup(s->id, &oom);
    m->type = dup(t->name, &oom);
    m->version = t->version;
    m->status = dup(saga_status_name(s->status), &oom);
    m->previous = dup(from == SAGA_NONE ? "" : saga_status_name(from), &oom);
    m->step = s->step;
    m->step_name = dup(step_name(t, s), &oom);
    m->code = dup(s->fail_code == LB_OK ? "" : lb_status_code(s->fail_code), &oom);
    m->reason = dup(s->fail_reason, &oom);
    m->actor = dup(actor, &oom);
    if (oom) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "SagaChanged fields");
    }
    *out = &m->base;
    return LB_OK;
}

lb_status
saga_orch_msg_parked(ProtobufCMessage **out, const char *saga_id, const char *type,
                     uint32_t version, const char *previous, const lb_err *why, lb_err *err)
{
    Layby__V1__SagaChanged *m = malloc(sizeof *m);
    if (m == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "SagaChanged");
    layby__v1__saga_changed__init(m);
    bool oom = false;
    m->saga_id = dup(saga_id, &oom);
    m->type = dup(type, &oom);
    m->version = version;
    m->status = dup(saga_status_name(SAGA_STUCK), &oom);
    m->previous = dup(previous, &oom);
    m->step_name = dup("", &oom);
    m->code = dup(lb_status_code(why->code), &oom);
    m->reason = dup(why->msg, &oom);
    m->actor = dup("", &oom);
    if (oom) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "SagaChanged fields");
    }
    *out = &m->base;
    return LB_OK;
}

lb_status
saga_orch_msg_outcome(ProtobufCMessage **out, const saga_type *t, const saga_state *s, lb_err *err)
{
    Layby__V1__SagaOutcome *m = malloc(sizeof *m);
    if (m == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "SagaOutcome");
    layby__v1__saga_outcome__init(m);
    bool oom = false;
    m->saga_id = dup(s->id, &oom);
    m->type = dup(t->name, &oom);
    m->version = t->version;
    m->status = dup(saga_status_name(s->status), &oom);
    m->step = s->step;
    m->step_name = dup(step_name(t, s), &oom);
    if (s->record_len > 0 && !oom) { /* the requester may answer from it (order_pay v3) */
        m->record.data = malloc(s->record_len);
        oom = m->record.data == NULL;
        if (!oom) {
            memcpy(m->record.data, s->record, s->record_len);
            m->record.len = s->record_len;
        }
    }
    if (oom) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "SagaOutcome fields");
    }
    *out = &m->base;
    return LB_OK;
}

lb_status
saga_orch_msg_failure(ProtobufCMessage **out, lb_status code, const char *reason, lb_err *err)
{
    Layby__V1__Failure *m = malloc(sizeof *m);
    if (m == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "Failure");
    layby__v1__failure__init(m);
    bool oom = false;
    m->code = dup(lb_status_code(code), &oom);
    m->message = dup(reason != NULL && reason[0] ? reason : lb_status_text(code), &oom);
    m->field = dup("", &oom);
    if (oom) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "Failure fields");
    }
    *out = &m->base;
    return LB_OK;
}
