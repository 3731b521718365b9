/* saga_orch_admin.c - the orchestrator's admin reads: a page of sagas and a
 * saga's record, steps and timeline, for the console's endpoints (the edge
 * has no database, so it asks the daemon that owns schema saga). The JSON is
 * saga_view's, the same layby-ctl prints with --json; it travels as the text
 * of an AdminDocument, which the edge answers as it is. Read-only: no
 * transaction, one statement per read (a page of the list is at most
 * SAGA_ORCH_ADMIN_PAGE_MAX + 1 rows). */
#include <stdlib.h>
#include <string.h>

#include "engine/subjects.h"
#include "id.h"
#include "layby/v1/admin.pb-c.h"
#include "saga_orch.h"
#include "saga_view.h"

#define SAGA_ORCH_ADMIN_PAGE_MAX         100
/* A saga's timeline page: an entry with its decoded input is at most a few
 * KB, so 500 of them stay well under NATS's 1 MB payload. */
#define SAGA_ORCH_ADMIN_TIMELINE_MAX     500
#define SAGA_ORCH_ADMIN_TIMELINE_DEFAULT 200

/* doc (taken) as the text of an AdminDocument in *reply. */
static lb_status
document_reply(ProtobufCMessage **reply, json_t *doc, lb_err *err)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    Layby__V1__AdminDocument *d = malloc(sizeof *d);
    if (text == NULL || d == NULL) {
        free(text);
        free(d);
        return lb_err_set(err, LB_ERR_NOMEM, "admin document");
    }
    layby__v1__admin_document__init(d);
    d->json = text; /* freed with the message (protobuf_c's default allocator) */
    *reply = &d->base;
    return LB_OK;
}

static lb_status
admin_list(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__AdminSagaList *l = (const Layby__V1__AdminSagaList *)req;
    if (l->limit < 0 || l->limit > SAGA_ORCH_ADMIN_PAGE_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "limit", "limit must be between 1 and %d",
                            SAGA_ORCH_ADMIN_PAGE_MAX);
    saga_view_filter f = { .state = l->state,
                           .type = l->type,
                           .saga_id = l->order_id,
                           .cursor = l->cursor,
                           .limit = l->limit > 0 ? l->limit : SAGA_VIEW_PAGE_DEFAULT };
    if (l->since[0] != '\0' && lb_time_parse(&f.since_ms, l->since, err) != LB_OK)
        return lb_err_field(err, LB_ERR_INVALID, "since", "since must be an RFC 3339 time");
    if (f.since_ms <= 0 && l->since[0] != '\0')
        f.since_ms = 1; /* 0 means no filter */
    json_t *doc = NULL;
    lb_status s = saga_view_list(&doc, store_pg(svc_query_store(q)), &f, err);
    return s == LB_OK ? document_reply(reply, doc, err) : s;
}

static lb_status
admin_show(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__AdminSagaShow *m = (const Layby__V1__AdminSagaShow *)req;
    if (!id_valid(m->saga_id))
        return lb_err_field(err, LB_ERR_INVALID, "sagaId", "sagaId must be an id (a UUID)");
    if (m->timeline_limit < 0 || m->timeline_limit > SAGA_ORCH_ADMIN_TIMELINE_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "timelineLimit",
                            "timelineLimit must be between 1 and %d", SAGA_ORCH_ADMIN_TIMELINE_MAX);
    saga_view_page page = { .from = 0,
                            .limit = m->timeline_limit > 0 ? m->timeline_limit
                                                           : SAGA_ORCH_ADMIN_TIMELINE_DEFAULT };
    char *end = NULL;
    if (m->timeline_cursor[0] != '\0' &&
        ((page.from = strtoll(m->timeline_cursor, &end, 10)) < 0 || *end != '\0' ||
         m->timeline_cursor[0] == '-' || m->timeline_cursor[0] == '+'))
        return lb_err_field(err, LB_ERR_INVALID, "timelineCursor",
                            "timelineCursor must be a timelineNextCursor");
    json_t *doc = NULL;
    lb_status s = saga_view_show(&doc, store_pg(svc_query_store(q)), m->saga_id, page, err);
    return s == LB_OK ? document_reply(reply, doc, err) : s;
}

static lb_status
admin_overview(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    (void)req;
    json_t *doc = NULL;
    lb_status s = saga_view_overview(&doc, store_pg(svc_query_store(q)), err);
    return s == LB_OK ? document_reply(reply, doc, err) : s;
}

/* clang-format off */
const svc_query_route saga_orch_admin_queries[SAGA_ORCH_QUERIES_COUNT] = {
    { SUBJ_SAGA_ADMIN_LIST, &layby__v1__admin_saga_list__descriptor, admin_list, SVC_QUERY_READS },
    { SUBJ_SAGA_ADMIN_SHOW, &layby__v1__admin_saga_show__descriptor, admin_show, SVC_QUERY_READS },
    { SUBJ_SAGA_ADMIN_OVERVIEW, &layby__v1__admin_overview__descriptor, admin_overview, SVC_QUERY_READS },
};
/* clang-format on */
