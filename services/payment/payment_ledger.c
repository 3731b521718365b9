/* payment_ledger.c - layby.qry.payment.ledger: an order's ledger as lines,
 * oldest first, for the operations console's order page (issue 24): every
 * gateway call (captured, declined, outage) and every refund or void, with
 * its amount, time, saga and the command key that caused it. Read-only; one
 * statement; at most PAYMENT_LEDGER_MAX lines, so an order retried without
 * end still answers one bounded page (truncated says so). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payment.h"

#define PAYMENT_LEDGER_MAX 200

/* Row r of PAYMENT_SQL_LEDGER as a line (its text columns, then the two
 * amounts); false when out of memory. */
static bool
line_fill(Layby__V1__PaymentLine *l, const PGresult *res, int r)
{
    char **const texts[] = { &l->kind,   &l->id,  &l->saga_id,   &l->status, &l->method,
                             &l->reason, &l->key, &l->charge_id, &l->at };
    for (int c = 0; c < (int)LB_COUNTOF(texts); c++)
        if ((*texts[c] = strdup(PQgetvalue(res, r, c))) == NULL)
            return false;
    l->amount = atoll(PQgetvalue(res, r, LB_COUNTOF(texts)));
    l->refunded = atoll(PQgetvalue(res, r, LB_COUNTOF(texts) + 1));
    return true;
}

lb_status
payment_ledger(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__GetPaymentLedger *g = (const Layby__V1__GetPaymentLedger *)req;
    if (!id_valid(g->order_id))
        return lb_err_field(err, LB_ERR_INVALID, "orderId", "orderId must be a UUID");
    PGresult *res = NULL;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", PAYMENT_LEDGER_MAX + 1); /* one more says "truncated" */
    const char *p[] = { g->order_id, lim };
    lb_status st = store_exec(svc_query_store(q), &res, PAYMENT_SQL(PAYMENT_SQL_LEDGER), 2, p, err);
    if (st != LB_OK)
        return st;
    int rows = PQntuples(res);
    Layby__V1__PaymentLedger *out = calloc(1, sizeof *out);
    bool oom = out == NULL;
    if (!oom) {
        layby__v1__payment_ledger__init(out);
        out->truncated = rows > PAYMENT_LEDGER_MAX;
        if (out->truncated)
            rows = PAYMENT_LEDGER_MAX;
        out->order_id = strdup(g->order_id);
        out->lines = calloc((size_t)rows + 1, sizeof *out->lines);
        oom = out->order_id == NULL || out->lines == NULL;
    }
    for (int r = 0; !oom && r < rows; r++) {
        Layby__V1__PaymentLine *l = calloc(1, sizeof *l);
        if (l == NULL) {
            oom = true;
            break;
        }
        layby__v1__payment_line__init(l);
        out->lines[out->n_lines++] = l;
        oom = !line_fill(l, res, r);
    }
    PQclear(res);
    if (oom) {
        if (out != NULL)
            protobuf_c_message_free_unpacked(&out->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "ledger");
    }
    *reply = &out->base;
    return LB_OK;
}
