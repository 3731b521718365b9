/* outbox_pub.c - publishes a buffer of outbox rows to JetStream and waits for
 * every ack: the relay's lanes and the stateless workers (svc.h) use it.
 *
 * Each publisher has its own JetStream context, because publish errors and
 * js_PublishAsyncComplete() are per context: one caller's wait must not cover
 * (or be failed by) another's publishes. */
#include "outbox.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "fault.h"
#include "log.h"

#define PUB_ACK_WAIT_MS 5000 /* an unanswered row counts as refused after this */

struct outbox_pub {
    jsCtx *js;
    atomic_int errors; /* JetStream refusals since the last outbox_pub_rows() */
    metrics_metric *m_errors;
    outbox_pub_acked_fn acked; /* NULL: outcomes are only counted */
    void *acked_closure;
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

/* nats.c calls this instead of on_pub_error when an acked callback is set:
 * for every row, and it hands us the published message to destroy. */
static void
on_pub_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    outbox_pub *p = closure;
    const char *id = NULL;
    if (natsMsgHeader_Get(m, BUS_H_MSG_ID, &id) != NATS_OK)
        id = NULL;
    if (pa == NULL) {
        atomic_fetch_add(&p->errors, 1);
        metrics_add(p->m_errors, 1);
        log_warn(NULL, "outbox.publish_failed",
                 "JetStream refused or did not answer an outbox row; the sweep will retry",
                 LOG_STR("msg_id", id ? id : ""),
                 LOG_STR("detail", pae && pae->ErrText
                                       ? pae->ErrText
                                       : natsStatus_GetText(pae ? pae->Err : NATS_ERR)));
    }
    if (id != NULL)
        p->acked(p->acked_closure, id, pa != NULL);
    natsMsg_Destroy(m);
}

lb_status
outbox_pub_new(outbox_pub **out, bus *b, metrics_metric *m_errors, lb_err *err)
{
    return outbox_pub_new_acked(out, b, m_errors, NULL, NULL, err);
}

lb_status
outbox_pub_new_acked(outbox_pub **out, bus *b, metrics_metric *m_errors, outbox_pub_acked_fn acked,
                     void *closure, lb_err *err)
{
    outbox_pub *p = calloc(1, sizeof *p);
    if (p == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "outbox publisher");
    p->m_errors = m_errors;
    p->acked = acked;
    p->acked_closure = closure;
    jsOptions jo;
    jsOptions_Init(&jo);
    if (acked != NULL) {
        jo.PublishAsync.AckHandler = on_pub_ack;
        jo.PublishAsync.AckHandlerClosure = p;
    } else {
        jo.PublishAsync.ErrHandler = on_pub_error;
        jo.PublishAsync.ErrHandlerClosure = p;
    }
    jo.PublishAsync.MaxPending = 8192;
    jo.Wait = 5000;
    natsStatus ns = natsConnection_JetStream(&p->js, bus_conn(b), &jo);
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
    free(p);
}

lb_status
outbox_pub_settle(outbox_pub *p, lb_err *err)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = PUB_ACK_WAIT_MS;
    if (js_PublishAsyncComplete(p->js, &po) != NATS_OK)
        return lb_err_set(err, LB_ERR_BUS, "earlier outbox publishes are still unacknowledged");
    return LB_OK;
}

/* Sends every row of b; max_wait_ms > 0 makes nats.c answer an unacked row
 * with a timeout after that long (the acked callback needs an outcome). */
static lb_status
publish_all(outbox_pub *p, const outbox_buf *b, int64_t max_wait_ms, size_t *sent, lb_err *err)
{
    *sent = 0;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = max_wait_ms;
    for (size_t i = 0; i < b->n; i++) {
        const outbox_row *row = &b->rows[i];
        natsMsg *m = NULL;
        lb_status st = bus_msg_new_raw(&m, row->subject, &row->env, row->body, row->len, err);
        if (st != LB_OK)
            return st;
        natsStatus ns = js_PublishMsgAsync(p->js, &m, max_wait_ms > 0 ? &po : NULL);
        if (ns != NATS_OK) {
            natsMsg_Destroy(m);
            return bus__nats_err(err, ns, "outbox publish");
        }
        (*sent)++;
    }
    return LB_OK;
}

lb_status
outbox_pub_rows_nowait(outbox_pub *p, const outbox_buf *b, size_t *sent, lb_err *err)
{
    *sent = 0;
    if (p->acked == NULL)
        return lb_err_set(err, LB_ERR_INTERNAL, "outbox_pub_rows_nowait needs an acked callback");
    return publish_all(p, b, PUB_ACK_WAIT_MS, sent, err);
}

lb_status
outbox_pub_rows(outbox_pub *p, const outbox_buf *b, lb_err *err)
{
    if (b->n == 0)
        return LB_OK;
    atomic_store(&p->errors, 0);
    size_t sent = 0;
    lb_status st = publish_all(p, b, p->acked != NULL ? PUB_ACK_WAIT_MS : 0, &sent, err);
    if (st != LB_OK)
        return st;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = PUB_ACK_WAIT_MS;
    natsStatus ns = js_PublishAsyncComplete(p->js, &po);
    if (ns != NATS_OK || atomic_load(&p->errors) != 0)
        return lb_err_set(err, LB_ERR_BUS, "outbox publish not acknowledged (%s)",
                          natsStatus_GetText(ns));
    return LB_OK;
}
