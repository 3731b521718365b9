/* saga_record.c - a saga's typed record and its durations: the two things a
 * saga keeps besides its progress.
 *
 * The record is one protobuf message per saga type (saga_type.record) that
 * steps' events fill through their merge hooks and later command builders
 * read: the reserved lines and prices, the charge id. It lives packed inside
 * saga_state (no pointers there), so it is stored, locked and replayed with
 * the saga's state; merging runs inside the pure decider from the event body
 * logged with the input, so a replay rebuilds the same record.
 *
 * Durations are read from settings once, when the saga starts, and travel in
 * the START input: a saga keeps the deadline it started with however the
 * settings change, and a replay decides with the same numbers. The steps a
 * saga skips are decided the same way, once, from its start command.
 */
#include <stdlib.h>
#include <string.h>

#include "saga_internal.h"

void
saga_durations_read(int64_t *out, const saga_type *t)
{
    for (size_t i = 0; i < t->n_steps; i++) {
        const saga_step *step = &t->steps[i];
        int64_t d = step->duration != NULL ? step->duration() : 0;
        out[i] = d > 0 ? d : step->timeout_ms;
    }
}

uint32_t
saga_skips_read(const saga_type *t, const ProtobufCMessage *start)
{
    uint32_t mask = 0;
    for (size_t i = 0; start != NULL && i < t->n_steps; i++)
        if (t->steps[i].skip != NULL && t->steps[i].skip(start))
            mask |= 1u << i;
    return mask;
}

bool
saga_step_merges(const saga_type *t, uint32_t step)
{
    return t != NULL && t->record != NULL && step < t->n_steps && t->steps[step].merge != NULL;
}

lb_status
saga_record_get(ProtobufCMessage **out, const saga_type *t, const saga_state *s, lb_err *err)
{
    *out = NULL;
    if (t->record == NULL)
        return LB_OK;
    ProtobufCMessage *m;
    if (s->record_len == 0) {
        m = malloc(t->record->sizeof_message);
        if (m != NULL)
            protobuf_c_message_init(t->record, m);
    } else {
        m = protobuf_c_message_unpack(t->record, NULL, s->record_len, s->record);
        if (m == NULL)
            return lb_err_set(err, LB_ERR_DECODE, "saga %s: record is not a %s", s->id,
                              t->record->name);
    }
    if (m == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "saga record");
    *out = m;
    return LB_OK;
}

lb_status
saga__record_merge(saga_state *s, const saga_type *t, uint32_t step, const saga_input *in,
                   lb_err *err)
{
    const saga_step *def = &t->steps[step];
    if (def->merge == NULL)
        return LB_OK;
    if (in->body == NULL && in->body_len > 0)
        return lb_err_set(err, LB_ERR_INVALID, "event of %s: no body", def->name);
    ProtobufCMessage *ev =
        protobuf_c_message_unpack(in->event, NULL, in->body_len, in->body ? in->body : (void *)"");
    if (ev == NULL)
        return lb_err_set(err, LB_ERR_DECODE, "event of %s: not a %s", def->name, in->event->name);
    ProtobufCMessage *rec = NULL;
    lb_status rc = saga_record_get(&rec, t, s, err);
    if (rc == LB_OK)
        rc = def->merge(rec, ev, err);
    if (rc == LB_OK) {
        size_t len = protobuf_c_message_get_packed_size(rec);
        if (len > SAGA_RECORD_MAX)
            rc = lb_err_set(err, LB_ERR_INVALID, "saga %s: record of %zu bytes exceeds %d", s->id,
                            len, SAGA_RECORD_MAX);
        else
            s->record_len = (uint32_t)protobuf_c_message_pack(rec, s->record);
    }
    if (rec != NULL)
        protobuf_c_message_free_unpacked(rec, NULL);
    protobuf_c_message_free_unpacked(ev, NULL);
    return rc;
}
