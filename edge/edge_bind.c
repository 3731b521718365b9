/* edge_bind.c - text from outside the body into request fields (see
 * edge_bind.h).
 *
 * Integers are read with strtoll/strtoull and refused unless the whole text
 * is a decimal number inside the field's range, so "12abc" or "99999999999"
 * for an int32 is a 400, never a silently different value.
 */
#include "edge_bind.h"

#include <civetweb.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_app.h"
#include "edge_idem.h"
#include "id.h"

const ProtobufCFieldDescriptor *
edge_field_scalar(const ProtobufCMessageDescriptor *desc, const char *field)
{
    const ProtobufCFieldDescriptor *f =
        field ? protobuf_c_message_descriptor_get_field_by_name(desc, field) : NULL;
    if (f == NULL || f->label == PROTOBUF_C_LABEL_REPEATED || f->type == PROTOBUF_C_TYPE_MESSAGE ||
        f->type == PROTOBUF_C_TYPE_BYTES)
        return NULL;
    return f;
}

static bool
parse_signed(int64_t *out, const char *s, int64_t lo, int64_t hi)
{
    if (*s == '\0' || *s == '+' || *s == ' ')
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool
parse_unsigned(uint64_t *out, const char *s, uint64_t hi)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > hi)
        return false;
    *out = v;
    return true;
}

/* Writes text into the field's slot; false when it does not fit the type. */
static bool
slot_set(void *slot, const ProtobufCFieldDescriptor *f, const char *text)
{
    int64_t i;
    uint64_t u;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (!parse_signed(&i, text, INT32_MIN, INT32_MAX))
            return false;
        *(int32_t *)slot = (int32_t)i;
        return true;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (!parse_signed(&i, text, INT64_MIN, INT64_MAX))
            return false;
        *(int64_t *)slot = i;
        return true;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (!parse_unsigned(&u, text, UINT32_MAX))
            return false;
        *(uint32_t *)slot = (uint32_t)u;
        return true;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (!parse_unsigned(&u, text, UINT64_MAX))
            return false;
        *(uint64_t *)slot = u;
        return true;
    case PROTOBUF_C_TYPE_BOOL:
        if (strcmp(text, "true") != 0 && strcmp(text, "false") != 0)
            return false;
        *(protobuf_c_boolean *)slot = text[0] == 't';
        return true;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(
            (const ProtobufCEnumDescriptor *)f->descriptor, text);
        if (ev == NULL)
            return false;
        *(int *)slot = ev->value;
        return true;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (!lb_utf8_valid(text))
            return false;
        char *copy = strdup(text);
        if (copy == NULL)
            return false;
        char **s = slot;
        /* the default may be a shared constant that free_unpacked skips */
        if (*s != NULL && *s != (const char *)f->default_value && *s != protobuf_c_empty_string)
            free(*s);
        *s = copy;
        return true;
    }
    default:
        return false;
    }
}

lb_status
edge_field_set(ProtobufCMessage *m, const char *field, const char *text, const char *param,
               lb_err *err)
{
    const ProtobufCFieldDescriptor *f = edge_field_scalar(m->descriptor, field);
    if (f == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "%s has no settable field %s", m->descriptor->name,
                          field ? field : "(null)");
    if (!slot_set((char *)m + f->offset, f, text))
        return lb_err_field(err, LB_ERR_INVALID, param, "%s is not a valid %s", param,
                            f->type == PROTOBUF_C_TYPE_ENUM     ? "name"
                            : f->type == PROTOBUF_C_TYPE_STRING ? "text"
                            : f->type == PROTOBUF_C_TYPE_BOOL   ? "boolean (true or false)"
                                                                : "integer in range");
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)((char *)m + f->quantifier_offset) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0)
        *(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
    return LB_OK;
}

/* The text of one bind for r; *present false when an optional source is absent. */
static lb_status
bind_text(char *out, size_t n, bool *present, edge_req *r, const edge_bind *b, lb_err *err)
{
    *present = true;
    switch (b->from) {
    case EDGE_FROM_PATH:
        if (!edge_param_copy(r, b->name, out, n))
            return lb_err_field(err, LB_ERR_INVALID, b->name, "%s is too long", b->name);
        return LB_OK;
    case EDGE_FROM_QUERY: {
        const char *qs = r->ri ? r->ri->query_string : NULL;
        int got = qs ? mg_get_var(qs, strlen(qs), b->name, out, n) : -1;
        if (got == -2)
            return lb_err_field(err, LB_ERR_INVALID, b->name, "%s is too long", b->name);
        *present = got >= 0;
        return LB_OK;
    }
    case EDGE_FROM_SUB:
        snprintf(out, n, "%s", r->claims.sub);
        return LB_OK;
    case EDGE_FROM_NEW_ID: {
        const char *key = edge_header(r, "Idempotency-Key");
        if (key == NULL || !r->route->idempotent) {
            id_new(out);
            return LB_OK;
        }
        /* a repeat with the same key names the same entity, whatever
         * happened to the first request (edge_idem.h) */
        char k[EDGE_SUB_MAX + EDGE_IDEM_KEY_MAX + EDGE_HEADERS_MAX + 2], target[EDGE_HEADERS_MAX];
        edge_idem_target(target, sizeof target, r);
        snprintf(k, sizeof k, "%s:%s%s", r->claims.sub, key, target);
        id_from_key(out, b->name, k);
        return LB_OK;
    }
    case EDGE_FROM_CONST:
        snprintf(out, n, "%s", b->name);
        return LB_OK;
    default:
        return lb_err_set(err, LB_ERR_CONFIG, "bind without a source");
    }
}

lb_status
edge_binds_apply(ProtobufCMessage *req, edge_req *r, bool new_ids, lb_err *err)
{
    for (const edge_bind *b = r->route->binds; b != NULL && b->from != EDGE_FROM_END; b++) {
        if ((b->from == EDGE_FROM_NEW_ID) != new_ids)
            continue;
        char text[EDGE_QUERY_VALUE_MAX];
        bool present;
        lb_status s = bind_text(text, sizeof text, &present, r, b, err);
        if (s != LB_OK)
            return s;
        if (!present)
            continue;
        const char *param = b->name ? b->name : b->field;
        if (b->fmt == EDGE_FMT_UUID && !id_valid(text))
            return lb_err_field(err, LB_ERR_INVALID, param, "%s must be a UUID", param);
        s = edge_field_set(req, b->field, text, param, err);
        if (s != LB_OK)
            return s;
    }
    return LB_OK;
}
