/* bus_dlq.c - reading LAYBY_DLQ by sequence (bus_dlq.h). */
#include "bus_dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "bus_json.h"
#include "bus_topology.h"

/* clang-format off */
/* The Layby-Dlq-* headers the console names (bus.h), as JSON keys. */
static const struct {
    const char *header;
    const char *key;
} dlq_fields[] = {
    { BUS_H_DLQ_SUBJECT,    "originalSubject" },
    { BUS_H_DLQ_CONSUMER,   "consumer" },
    { BUS_H_DLQ_ERROR,      "lastError" },
    { BUS_H_DLQ_DELIVERIES, "deliveries" },
};
/* clang-format on */

static bool
header_eq(natsMsg *m, const char *key, const char *want)
{
    const char *v = NULL;
    return want == NULL || want[0] == '\0' ||
           (natsMsgHeader_Get(m, key, &v) == NATS_OK && v != NULL && strcmp(v, want) == 0);
}

bool
bus_dlq_matches(natsMsg *m, const bus_dlq_filter *f)
{
    const char *orig = NULL;
    if (f->subject != NULL && f->subject[0] != '\0' &&
        (natsMsgHeader_Get(m, BUS_H_DLQ_SUBJECT, &orig) != NATS_OK || orig == NULL ||
         !bus_topology_filter_matches(f->subject, orig)))
        return false;
    return header_eq(m, BUS_H_DLQ_CONSUMER, f->consumer) && header_eq(m, BUS_H_TYPE, f->type) &&
           header_eq(m, BUS_H_CORRELATION, f->correlation);
}

lb_status
bus_dlq_get(natsMsg **m, jsCtx *js, uint64_t seq, lb_err *err)
{
    jsErrCode jerr = 0;
    natsStatus s = js_GetMsg(m, js, BUS_STREAM_DLQ, seq, NULL, &jerr);
    if (s == NATS_NOT_FOUND)
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no message %" PRIu64 " in %s", seq,
                          BUS_STREAM_DLQ);
    return s == NATS_OK ? LB_OK : bus__nats_err(err, s, "read " BUS_STREAM_DLQ);
}

lb_status
bus_dlq_state(uint64_t *msgs, uint64_t *first, uint64_t *last, jsCtx *js, lb_err *err)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, js, BUS_STREAM_DLQ, NULL, &jerr);
    if (s != NATS_OK)
        return bus__nats_err(err, s, "stream " BUS_STREAM_DLQ);
    *msgs = si->State.Msgs;
    *first = si->State.FirstSeq;
    *last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return LB_OK;
}

lb_status
bus_dlq_walk(jsCtx *js, const bus_dlq_filter *f, bus_dlq_span span, bus_dlq_fn fn, void *arg,
             int64_t *shown, uint64_t *next, lb_err *err)
{
    uint64_t msgs = 0, first = 0, last = 0;
    lb_status st = bus_dlq_state(&msgs, &first, &last, js, err);
    *next = 0;
    if (st != LB_OK)
        return st;
    if (span.from_seq > first)
        first = span.from_seq;
    int64_t looked = 0;
    for (uint64_t seq = first; msgs > 0 && seq <= last && *shown < span.items; seq++) {
        if (span.scan > 0 && looked++ >= span.scan) {
            *next = seq; /* so much work per call: the caller goes on from here */
            return LB_OK;
        }
        natsMsg *m = NULL;
        st = bus_dlq_get(&m, js, seq, err);
        if (st == LB_ERR_NOT_FOUND)
            continue; /* deleted, or aged out while we walk */
        if (st != LB_OK)
            return st;
        if (bus_dlq_matches(m, f)) {
            st = fn(js, m, seq, arg, err);
            (*shown)++;
        }
        natsMsg_Destroy(m);
        if (st != LB_OK)
            return st;
        if (*shown >= span.items && seq < last)
            *next = seq + 1;
    }
    return LB_OK;
}

json_t *
bus_dlq_letter_json(natsMsg *m, uint64_t seq)
{
    json_t *o = bus_json_tree(m, seq, natsMsg_GetTime(m));
    for (size_t i = 0; i < LB_COUNTOF(dlq_fields); i++) {
        const char *v = NULL;
        json_object_set_new(o, dlq_fields[i].key,
                            natsMsgHeader_Get(m, dlq_fields[i].header, &v) == NATS_OK && v != NULL
                                ? json_string(v)
                                : json_null());
    }
    char cmd[64];
    snprintf(cmd, sizeof cmd, "layby-ctl dlq redrive %" PRIu64, seq);
    json_object_set_new(o, "redrive", json_string(cmd));
    return o;
}

static lb_status
page_add(jsCtx *js, natsMsg *m, uint64_t seq, void *arg, lb_err *err)
{
    (void)js;
    (void)err;
    json_array_append_new(arg, bus_dlq_letter_json(m, seq));
    return LB_OK;
}

lb_status
bus_dlq_page(json_t **out, jsCtx *js, const bus_dlq_filter *f, bus_dlq_span span, lb_err *err)
{
    uint64_t msgs = 0, first = 0, last = 0, next = 0;
    int64_t shown = 0;
    json_t *items = json_array();
    lb_status s = bus_dlq_state(&msgs, &first, &last, js, err);
    if (s == LB_OK)
        s = bus_dlq_walk(js, f, span, page_add, items, &shown, &next, err);
    if (s != LB_OK) {
        json_decref(items);
        return s;
    }
    json_t *doc = json_pack("{s:I,s:o}", "total", (json_int_t)msgs, "items", items);
    if (next != 0) {
        char cur[24];
        snprintf(cur, sizeof cur, "%" PRIu64, next);
        json_object_set_new(doc, "nextCursor", json_string(cur));
    }
    *out = doc;
    return LB_OK;
}
