/* ctl_msg.c - helpers the reading commands share (replay, dlq show, saga):
 * the one positional argument, RFC 3339 input, and a stored message as JSON. */
#define _XOPEN_SOURCE 700 /* strptime */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "codec.h"
#include "ctl.h"

int
ctl_positional(const char **out, const ctl_cmd *cmd, const char *what, int *argc, char **argv)
{
    *out = NULL;
    for (int i = 1; i < *argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return -1; /* ctl_args() prints the help */
    if (*argc < 2 || strncmp(argv[1], "--", 2) == 0)
        return ctl_usage_error(cmd, "missing <%s>", what);
    *out = argv[1];
    /* Shift the rest down so argv[0] stays the command word. */
    for (int i = 1; i + 1 < *argc; i++)
        argv[i] = argv[i + 1];
    (*argc)--;
    argv[*argc] = NULL;
    return -1;
}

int
ctl_u64_arg(uint64_t *out, const ctl_cmd *cmd, const char *what, const char *text)
{
    char *end = NULL;
    unsigned long long v = text[0] != '-' ? strtoull(text, &end, 10) : 0;
    if (end == NULL || end == text || *end != '\0' || v == 0)
        return ctl_usage_error(cmd, "<%s> must be a positive integer, not '%s'", what, text);
    *out = (uint64_t)v;
    return -1;
}

/* Reads "+hh:mm", "-hh:mm" or "Z" into seconds east of UTC. */
static bool
zone_parse(int64_t *out_s, const char *p)
{
    int hh = 0, mm = 0, used = 0;
    if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
        *out_s = 0;
        return true;
    }
    if ((p[0] != '+' && p[0] != '-') || sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &used) != 2 ||
        p[1 + used] != '\0' || hh > 23 || mm > 59)
        return false;
    *out_s = (p[0] == '-' ? -1 : 1) * (int64_t)(hh * 3600 + mm * 60);
    return true;
}

lb_status
ctl_time_parse(int64_t *out_ms, const char *s, lb_err *err)
{
    struct tm tm = { 0 };
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    int64_t frac_ms = 0, zone_s = 0;
    if (p != NULL && *p == '.') {
        int64_t scale = 100;
        for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
            frac_ms += (*p - '0') * scale;
    }
    if (p == NULL || !zone_parse(&zone_s, p))
        return lb_err_set(err, LB_ERR_CONFIG,
                          "'%s' is not RFC 3339 (2025-01-31T09:30:00Z or +09:00)", s);
    *out_ms = ((int64_t)timegm(&tm) - zone_s) * 1000 + frac_ms;
    return LB_OK;
}

/* Headers as an object: a string per key, an array when a key repeats. */
static json_t *
headers_json(natsMsg *m)
{
    json_t *h = json_object();
    const char **keys = NULL;
    int n = 0;
    if (natsMsgHeader_Keys(m, &keys, &n) != NATS_OK)
        return h;
    for (int i = 0; i < n; i++) {
        const char **vals = NULL;
        int nv = 0;
        if (natsMsgHeader_Values(m, keys[i], &vals, &nv) != NATS_OK)
            continue;
        json_t *v = nv == 1 ? json_string(vals[0]) : json_array();
        for (int k = 0; nv != 1 && k < nv; k++)
            json_array_append_new(v, json_string(vals[k]));
        json_object_set_new(h, keys[i], v);
        free((void *)vals);
    }
    free((void *)keys);
    return h;
}

/* The raw body and why it could not be decoded. */
static void
body_raw(json_t *o, const char *data, int len, const char *why)
{
    size_t cap = sodium_base64_ENCODED_LEN((size_t)len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(cap);
    if (b64 != NULL) {
        sodium_bin2base64(b64, cap, (const unsigned char *)data, (size_t)len,
                          sodium_base64_VARIANT_ORIGINAL);
        json_object_set_new(o, "bodyBase64", json_string(b64));
        free(b64);
    }
    json_object_set_new(o, "error", json_string(why));
}

/* Decodes the body by its Layby-Type; a failure keeps the raw bytes instead. */
static void
body_json(json_t *o, natsMsg *m, const char *type)
{
    const char *data = natsMsg_GetData(m);
    int len = natsMsg_GetDataLength(m);
    const ProtobufCMessageDescriptor *d = type != NULL ? codec_type_find(type) : NULL;
    ProtobufCMessage *msg = NULL;
    json_t *body = NULL;
    lb_err err;
    if (d == NULL) {
        lb_err_set(&err, LB_ERR_DECODE, "unknown %s '%s'", BUS_H_TYPE, type ? type : "");
    } else if (codec_unpack(&msg, d, (const uint8_t *)(data ? data : ""), (size_t)len, &err) ==
               LB_OK) {
        codec_json_encode_proto3(&body, msg, &err);
        protobuf_c_message_free_unpacked(msg, NULL);
    }
    if (body != NULL)
        json_object_set_new(o, "body", body);
    else
        body_raw(o, data ? data : "", len, err.msg);
}

json_t *
ctl_msg_json(natsMsg *m, uint64_t seq, int64_t time_ns)
{
    char when[32];
    const char *type = NULL;
    json_t *o = json_object();
    lb_time_format(when, sizeof when, time_ns / 1000000);
    natsMsgHeader_Get(m, BUS_H_TYPE, &type);
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "subject", json_string(natsMsg_GetSubject(m)));
    json_object_set_new(o, "headers", headers_json(m));
    json_object_set_new(o, "type", type != NULL ? json_string(type) : json_null());
    body_json(o, m, type);
    return o;
}

void
ctl_msg_print(natsMsg *m, uint64_t seq, int64_t time_ns, size_t flags)
{
    json_t *o = ctl_msg_json(m, seq, time_ns);
    char *text = json_dumps(o, flags | JSON_PRESERVE_ORDER);
    if (text != NULL) {
        puts(text);
        free(text);
    }
    json_decref(o);
}
