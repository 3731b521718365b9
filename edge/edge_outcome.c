/* edge_outcome.c - building answers as text before they are sent (see
 * edge_outcome.h). Error bodies come from edge_error_text() only, so the
 * error shape is the same whether an answer is sent now or replayed from the
 * idempotency bucket later.
 */
#include "edge_outcome.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "edge_routes.h"
#include "layby/v1/common.pb-c.h"
#include "log.h"

void
edge_outcome_error(edge_outcome *o, const lb_err *err)
{
    free(o->body);
    o->body = edge_error_text(&o->status, err->code, err->field, err->msg);
}

void
edge_outcome_msg(edge_outcome *o, int status, const ProtobufCMessage *msg)
{
    lb_err err;
    lb_err_clear(&err);
    free(o->body);
    o->body = NULL;
    if (codec_json_encode_text(&o->body, msg, &err) != LB_OK) {
        edge_outcome_error(o, &err);
        return;
    }
    o->status = status;
}

void
edge_outcome_json(edge_outcome *o, int status, const json_t *obj)
{
    free(o->body);
    o->body = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    o->status = status;
}

void
edge_outcome_empty(edge_outcome *o, int status)
{
    free(o->body);
    o->body = calloc(1, 1);
    o->status = status;
}

void
edge_outcome_send(edge_req *r, const edge_outcome *o)
{
    if (o->body == NULL || o->status == 0) {
        edge_reply_status(r, LB_ERR_NOMEM, NULL, NULL, NULL);
        return;
    }
    char extra[EDGE_HEADERS_MAX] = "";
    if (o->location[0] != '\0')
        snprintf(extra, sizeof extra, "Location: %s\r\n", o->location);
    else if (o->retry_after_s > 0)
        snprintf(extra, sizeof extra, "Retry-After: %lld\r\n", (long long)o->retry_after_s);
    edge_reply(r, o->status, "application/json", o->body, strlen(o->body), extra);
}

bool
edge_reply_is_throttled(natsMsg *reply)
{
    const char *type = NULL;
    return natsMsgHeader_Get(reply, BUS_H_TYPE, &type) == NATS_OK && type != NULL &&
           strcmp(type, layby__v1__throttled__descriptor.name) == 0;
}

void
edge_outcome_throttled(edge_outcome *o, natsMsg *reply)
{
    ProtobufCMessage *t = NULL;
    lb_err err;
    lb_err_clear(&err);
    const char *text = "too many requests";
    o->retry_after_s = 1;
    if (codec_unpack(&t, &layby__v1__throttled__descriptor, (const uint8_t *)natsMsg_GetData(reply),
                     (size_t)natsMsg_GetDataLength(reply), &err) == LB_OK) {
        const Layby__V1__Throttled *th = (const Layby__V1__Throttled *)t;
        if (th->retry_after_s > 0)
            o->retry_after_s = th->retry_after_s;
        if (th->message[0] != '\0')
            text = th->message;
    }
    lb_err_set(&err, LB_ERR_THROTTLED, "%s", text);
    edge_outcome_error(o, &err);
    if (t != NULL)
        protobuf_c_message_free_unpacked(t, NULL);
}

void
edge_outcome_destroy(edge_outcome *o)
{
    free(o->body);
    o->body = NULL;
}

/* The text of one placeholder's value; false when absent or empty. */
static bool
placeholder_value(char *out, size_t n, const json_t *obj, const char *name, size_t name_len)
{
    char key[LB_ERR_FIELD_MAX];
    if (name_len >= sizeof key)
        return false;
    memcpy(key, name, name_len);
    key[name_len] = '\0';
    const json_t *v = json_object_get(obj, key);
    int w = -1;
    if (json_is_string(v) && json_string_length(v) > 0)
        w = snprintf(out, n, "%s", json_string_value(v));
    else if (json_is_integer(v))
        w = snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return w > 0 && (size_t)w < n;
}

bool
edge_outcome_location(edge_outcome *o, const char *pattern, const ProtobufCMessage *msg)
{
    o->location[0] = '\0';
    json_t *obj = NULL;
    if (pattern == NULL || msg == NULL || codec_json_encode(&obj, msg, NULL) != LB_OK)
        return false;
    bool ok = edge_outcome_location_json(o, pattern, obj);
    json_decref(obj);
    return ok;
}

bool
edge_outcome_location_json(edge_outcome *o, const char *pattern, const json_t *obj)
{
    o->location[0] = '\0';
    if (pattern == NULL || obj == NULL)
        return false;
    char out[EDGE_LOCATION_MAX];
    size_t used = 0;
    bool ok = true;
    for (const char *p = pattern; *p != '\0' && ok;) {
        const char *open = strchr(p, '{');
        const char *close = open ? strchr(open, '}') : NULL;
        size_t lit = open && close ? (size_t)(open - p) : strlen(p);
        char val[EDGE_LOCATION_MAX] = "";
        if (open && close)
            ok = placeholder_value(val, sizeof val, obj, open + 1, (size_t)(close - open - 1));
        int w = snprintf(out + used, sizeof out - used, "%.*s%s", (int)lit, p, val);
        ok = ok && w >= 0 && (size_t)w < sizeof out - used;
        used += ok ? (size_t)w : 0;
        p = open && close ? close + 1 : p + lit;
    }
    if (ok)
        memcpy(o->location, out, used + 1);
    return ok;
}

lb_status
edge_fault_status(lb_status s)
{
    return s == LB_ERR_DECODE ? LB_ERR_INTERNAL : s;
}

void
edge_fault_log(const edge_req *r, const char *event, const lb_err *err)
{
    log_ctx lc = { .correlation = r->correlation[0] ? r->correlation : NULL };
    log_warn(&lc, event, "request failed", LOG_STR("route", r->route ? r->route->path : ""),
             LOG_ERR(err));
}
