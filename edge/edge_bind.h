/* edge_bind.h - filling request fields from the path, the query string, the
 * access token and new ids, as a row's binds say (edge_routes.h).
 *
 * Values arrive as text; the field's protobuf type decides how they are read
 * (string, integers with their range, bool, enum name), so a row names a
 * field and nothing else. A value that does not fit is 400 invalid_argument
 * naming the parameter, in the DESIGN error shape.
 *
 * Ownership: values are copied into the message (malloc'd strings, freed by
 *            protobuf_c_message_free_unpacked()).
 * Threads:   reentrant.
 */
#ifndef LAYBY_EDGE_EDGE_BIND_H
#define LAYBY_EDGE_EDGE_BIND_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "edge_routes.h"
#include "lb.h"

#define EDGE_QUERY_VALUE_MAX 512 /* longest query parameter value, decoded */

/* Pure: sets the singular top-level field `field` of m from text. LB_ERR_INVALID
 * when the text does not fit its type (err->field = param), LB_ERR_CONFIG when
 * m has no such settable field (a bad row). */
lb_status edge_field_set(ProtobufCMessage *m, const char *field, const char *text,
                         const char *param, lb_err *err);

/* Pure: the settable top-level field of desc named `field`, or NULL (absent,
 * repeated, or a message). */
const ProtobufCFieldDescriptor *edge_field_scalar(const ProtobufCMessageDescriptor *desc,
                                                  const char *field);

/* Applies the binds of r's row to req: those from path, query and token when
 * new_ids is false; those that make new ids when it is true (after the
 * Idempotency-Key was claimed). */
lb_status edge_binds_apply(ProtobufCMessage *req, edge_req *r, bool new_ids, lb_err *err);

#endif
