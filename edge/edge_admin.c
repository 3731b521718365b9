/* edge_admin.c - admin reads answered in the edge: LAYBY_DLQ's dead letters
 * (edge_admin.h). A page looks at most BUS_DLQ_SCAN_MAX sequences, so a
 * filter that matches little still costs one bounded page of reads. */
#include "edge_admin.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "bus_dlq.h"
#include "edge_app.h"
#include "layby/v1/admin.pb-c.h"

/* doc (taken) as compact JSON text in *body. */
static lb_status
doc_text(char **body, json_t *doc, lb_err *err)
{
    *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return *body != NULL ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "admin document");
}

/* Never UNAVAILABLE from a local hook: that would send the request on to a
 * subject nobody answers. The bus's failure is 503 all the same. */
static lb_status
bus_failed(lb_status s, lb_err *err)
{
    if (s == LB_ERR_UNAVAILABLE)
        err->code = s = LB_ERR_BUS;
    return s;
}

static lb_status
dlq_list(char **body, const ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    const Layby__V1__AdminDeadLetterList *l = (const Layby__V1__AdminDeadLetterList *)req;
    if (l->limit < 0 || l->limit > BUS_DLQ_PAGE_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "limit", "limit must be between 1 and %d",
                            BUS_DLQ_PAGE_MAX);
    bus_dlq_span span = { .items = l->limit > 0 ? l->limit : BUS_DLQ_PAGE_DEFAULT,
                          .scan = BUS_DLQ_SCAN_MAX };
    if (l->cursor[0] != '\0') {
        char *end = NULL;
        unsigned long long v = strtoull(l->cursor, &end, 10);
        if (l->cursor[0] < '0' || l->cursor[0] > '9' || *end != '\0' || v == 0)
            return lb_err_field(err, LB_ERR_INVALID, "cursor", "cursor must be a nextCursor");
        span.from_seq = (uint64_t)v;
    }
    bus_dlq_filter f = { .consumer = l->consumer, .type = l->type, .correlation = l->correlation };
    json_t *doc = NULL;
    lb_status s = bus_dlq_page(&doc, bus_js(r->app->bus), &f, span, err);
    return s == LB_OK ? doc_text(body, doc, err) : bus_failed(s, err);
}

static lb_status
dlq_show(char **body, const ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    const Layby__V1__AdminDeadLetterShow *m = (const Layby__V1__AdminDeadLetterShow *)req;
    if (m->seq == 0)
        return lb_err_field(err, LB_ERR_INVALID, "seq", "seq must be a positive integer");
    natsMsg *msg = NULL;
    lb_status s = bus_dlq_get(&msg, bus_js(r->app->bus), m->seq, err);
    if (s != LB_OK)
        return bus_failed(s, err);
    json_t *doc = bus_dlq_letter_json(msg, m->seq);
    natsMsg_Destroy(msg);
    return doc_text(body, doc, err);
}

const edge_hooks edge_admin_dlq_list_hooks = { .local = dlq_list };
const edge_hooks edge_admin_dlq_show_hooks = { .local = dlq_show };
