/* svc_answer.c - an emitted event that also answers its requester
 * (svc_emit_answer(), svc.h). Kept apart from svc.c: it is a convenience on
 * top of svc_emit(), not part of the batch machinery. */
#include <stdlib.h>

#include "svc.h"

lb_status
svc_emit_answer(svc_batch *b, svc_item *it, const char *subject, const bus_envelope *env,
                const ProtobufCMessage *msg, lb_err *err)
{
    lb_status st = svc_emit(b, subject, env, msg, err);
    if (st != LB_OK || it->env->reply[0] == '\0' || it->reply != NULL)
        return st;
    /* A deep copy: msg usually borrows the command's strings. */
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "answer");
    protobuf_c_message_pack(msg, buf);
    it->reply = protobuf_c_message_unpack(msg->descriptor, NULL, n, buf);
    free(buf);
    return it->reply != NULL ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "answer");
}
