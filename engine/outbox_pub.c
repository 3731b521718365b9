/* outbox_pub.c - publishes a buffer of outbox rows to JetStream and waits for
 * every ack: the relay's lanes and the stateless workers (svc.h) use it.
 *
 * Each publisher has its own JetStream context, because publish errors and
 * js_PublishAsyncComplete() are per context: one caller's wait must not cover
 * (or be failed by) another's publishes. */
#include "outbox.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "log.h"

/* Contexts set aside by context_reset(), destroyed with the publisher. */
#define PUB_RETIRED_MAX 4

struct outbox_pub {
    bus *b;
    jsCtx *js;
    jsCtx *retired[PUB_RETIRED_MAX]; /* oldest first */
    size_t n_retired;
    atomic_int errors; /* JetStream refusals since the last outbox_pub_rows() */
    metrics_metric *m_errors;
};

static void
on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    outbox_pub *p = closure;
    atomic_fetch_add(&p->errors, 1);
    metrics_add(p->m_errors, 1);
    log_warn(NULL, "outbox.publish_failed", "JetStream refused an outbox row; it will be retried",
             LOG_STR("detail", pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err)));
}

/* A JetStream context of p's own (errors and waits are per context). */
static natsStatus
context_open(outbox_pub *p, jsCtx **out)
{
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.ErrHandler = on_pub_error;
    jo.PublishAsync.ErrHandlerClosure = p;
    jo.PublishAsync.MaxPending = 8192;
    jo.Wait = 5000;
    return natsConnection_JetStream(out, bus_conn(p->b), &jo);
}

lb_status
outbox_pub_new(outbox_pub **out, bus *b, metrics_metric *m_errors, lb_err *err)
{
    outbox_pub *p = calloc(1, sizeof *p);
    if (p == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "outbox publisher");
    p->b = b;
    p->m_errors = m_errors;
    natsStatus ns = context_open(p, &p->js);
    if (ns != NATS_OK) {
        free(p);
        return bus__nats_err(err, ns, "outbox jetstream context");
    }
    *out = p;
    return LB_OK;
}

void
outbox_pub_free(outbox_pub *p)
{
    if (p == NULL)
        return;
    bus_js_destroy(p->js, 2000);
    for (size_t i = 0; i < p->n_retired; i++)
        jsCtx_Destroy(p->retired[i]); /* their rows went again on a newer context */
    free(p);
}

/* nats.c 3.4 keeps an async publish pending until its ack comes, with no
 * deadline of its own, and a stream leader that died holding the publish
 * never sends one: the context would never settle again, and a relay lane
 * would leave every row to the sweep's grace period for good (seen in
 * integration cluster_faults when LAYBY_CMD's leader was killed). So a wait
 * that timed out starts over on a new context: the rows are still in the
 * table (or the batch is redelivered) and go again with their ids as
 * Nats-Msg-Id, so a copy stored after all is dropped as a duplicate.
 * The old context keeps its pending messages until it is destroyed. Only while connected:
 * publishes made during an outage wait in the reconnect buffer and are
 * answered once it is back, so they must not be sent again on top. */
static void
context_reset(outbox_pub *p)
{
    jsCtx *fresh = NULL;
    if (natsConnection_Status(bus_conn(p->b)) != NATS_CONN_STATUS_CONNECTED)
        return;
    if (context_open(p, &fresh) != NATS_OK)
        return; /* the next wait tries again */
    /* The old context is set aside, not destroyed: its acks may be arriving
     * right now (they were late, not lost), and nats.c 3.4.1 can then touch
     * the freed ack subscription from its reader thread (a SEGV in
     * natsConn_processMsg, seen in bus_command under ASan). Resets are rare;
     * the oldest of a few goes when more come, long after its acks. */
    if (p->n_retired == PUB_RETIRED_MAX) {
        jsCtx_Destroy(p->retired[0]);
        memmove(p->retired, p->retired + 1, (PUB_RETIRED_MAX - 1) * sizeof p->retired[0]);
        p->n_retired--;
    }
    p->retired[p->n_retired++] = p->js;
    p->js = fresh;
    log_warn(NULL, "outbox.publisher_reset",
             "outbox publishes unacknowledged for 5 s; they go again on a new context");
}

lb_status
outbox_pub_settle(outbox_pub *p, lb_err *err)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 5000;
    if (js_PublishAsyncComplete(p->js, &po) == NATS_OK)
        return LB_OK;
    context_reset(p);
    return lb_err_set(err, LB_ERR_BUS, "earlier outbox publishes are still unacknowledged");
}

lb_status
outbox_pub_rows(outbox_pub *p, const outbox_buf *b, lb_err *err)
{
    if (b->n == 0)
        return LB_OK;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 5000;
    atomic_store(&p->errors, 0);
    for (size_t i = 0; i < b->n; i++) {
        const outbox_row *row = &b->rows[i];
        natsMsg *m = NULL;
        lb_status st = bus_msg_new_raw(&m, row->subject, &row->env, row->body, row->len, err);
        if (st != LB_OK)
            return st;
        natsStatus ns = js_PublishMsgAsync(p->js, &m, NULL);
        if (ns != NATS_OK) {
            natsMsg_Destroy(m);
            return bus__nats_err(err, ns, "outbox publish");
        }
    }
    natsStatus ns = js_PublishAsyncComplete(p->js, &po);
    if (ns == NATS_TIMEOUT)
        context_reset(p);
    if (ns != NATS_OK || atomic_load(&p->errors) != 0)
        return lb_err_set(err, LB_ERR_BUS, "outbox publish not acknowledged (%s)",
                          natsStatus_GetText(ns));
    return LB_OK;
}
