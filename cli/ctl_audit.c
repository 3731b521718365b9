/* ctl_audit.c - `layby-ctl audit [--json] [--settle 30s] [--page 1000]`:
 * asks each service's audit query (DESIGN §7: catalog, order, payment,
 * delivery) for its side of the books,
 * page after page, lets ctl_audit_check() judge them (ctl_audit.h), and
 * prints the figures and every violation, naming the products and orders.
 * Exit 0 when the books balance, 1 on a violation or when a service did not
 * answer, 2 on a usage error. It reads nothing but the answers, so it runs
 * against a live shop: an order that changed within --settle before the
 * audit began is in flight and only counted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "ctl.h"
#include "ctl_audit.h"
#include "engine/subjects.h"
#include "layby/v1/catalog.pb-c.h"
#include "layby/v1/delivery.pb-c.h"
#include "layby/v1/order.pb-c.h"
#include "layby/v1/payment.pb-c.h"

typedef struct audit_conf {
    ctl_conn conn;
    bool json;
    int64_t settle_ms;
    int64_t page;
} audit_conf;

/* clang-format off */
static const cfg_opt audit_opts[] = {
    { "json",   NULL, CFG_BOOL, "false", offsetof(audit_conf, json),      0, 0,      "one JSON document on stdout" },
    { "settle", NULL, CFG_MS,   "30s",   offsetof(audit_conf, settle_ms), 0, 86400000, "orders changed this recently are in flight, not judged" },
    { "page",   NULL, CFG_INT,  "1000",  offsetof(audit_conf, page),      1, 5000,   "orders per audit query" },
};
/* clang-format on */

/* What the services said beyond the rows the check needs. */
typedef struct audit_answers {
    ctl_audit_input in;
    size_t cap_stock, cap_orders, cap_money, cap_deliveries;
    Layby__V1__OrderAudit *order_first;     /* by status */
    Layby__V1__PaymentAudit *payment_first; /* the ledger's totals */
} audit_answers;

static lb_status
ask(ProtobufCMessage **out, bus *b, const audit_conf *c, const char *subject,
    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *want, lb_err *err)
{
    bus_envelope env;
    bus_envelope_init(&env, req->descriptor, NULL);
    natsMsg *reply = NULL;
    lb_status s = bus_request(&reply, b, subject, &env, req, c->conn.timeout_ms, err);
    if (s == LB_OK)
        s = bus_reply_decode(out, reply, want, err);
    natsMsg_Destroy(reply);
    if (s != LB_OK && err != NULL) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        lb_err_set(err, s, "%s: %s", subject, why);
    }
    return s;
}

/* Makes room for n more rows of size sz in *arr (count *len, capacity *cap). */
static lb_status
grow(void **arr, size_t *cap, size_t len, size_t n, size_t sz, lb_err *err)
{
    if (len + n <= *cap)
        return LB_OK;
    size_t want = *cap ? *cap : 1024;
    while (want < len + n)
        want *= 2;
    void *p = realloc(*arr, want * sz);
    if (p == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "audit rows");
    *arr = p;
    *cap = want;
    return LB_OK;
}

static void
copy_text(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

static lb_status
catalog_pages(audit_answers *a, bus *b, const audit_conf *c, lb_err *err)
{
    char after[ID_STR_LEN] = "";
    lb_status s = LB_OK;
    do {
        Layby__V1__GetStockAudit g = LAYBY__V1__GET_STOCK_AUDIT__INIT;
        g.after_order_id = after;
        g.limit = (int32_t)c->page;
        Layby__V1__StockAudit *r = NULL;
        if ((s = ask((ProtobufCMessage **)&r, b, c, SUBJ_CATALOG_AUDIT, &g.base,
                     &layby__v1__stock_audit__descriptor, err)) != LB_OK)
            break;
        if (after[0] == '\0' && r->n_products > 0) {
            a->in.products = calloc(r->n_products, sizeof *a->in.products);
            s = a->in.products ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "audit products");
            for (size_t i = 0; s == LB_OK && i < r->n_products; i++) {
                const Layby__V1__ProductStockTotals *t = r->products[i];
                ctl_audit_product *p = &a->in.products[a->in.n_products++];
                *p = (ctl_audit_product){ .initial = t->initial,
                                          .restocked = t->restocked,
                                          .available = t->available,
                                          .reserved = t->reserved,
                                          .sold = t->sold,
                                          .returned = t->returned,
                                          .ledger_reserved = t->ledger_reserved,
                                          .ledger_sold = t->ledger_sold,
                                          .ledger_returned = t->ledger_returned };
                copy_text(p->id, sizeof p->id, t->product_id);
            }
        }
        if (s == LB_OK)
            s = grow((void **)&a->in.stock, &a->cap_stock, a->in.n_stock, r->n_orders,
                     sizeof *a->in.stock, err);
        for (size_t i = 0; s == LB_OK && i < r->n_orders; i++) {
            const Layby__V1__OrderStockRow *o = r->orders[i];
            ctl_audit_stock *d = &a->in.stock[a->in.n_stock++];
            copy_text(d->id, sizeof d->id, o->order_id);
            copy_text(d->status, sizeof d->status, o->status);
            d->units = o->units;
            d->amount = o->amount;
            d->updated_ms = o->updated_ms;
        }
        copy_text(after, sizeof after, r->next_order_id);
        protobuf_c_message_free_unpacked(&r->base, NULL);
    } while (s == LB_OK && after[0] != '\0');
    return s;
}

static lb_status
order_pages(audit_answers *a, bus *b, const audit_conf *c, lb_err *err)
{
    char after[ID_STR_LEN] = "";
    lb_status s = LB_OK;
    do {
        Layby__V1__GetOrderAudit g = LAYBY__V1__GET_ORDER_AUDIT__INIT;
        g.after_order_id = after;
        g.limit = (int32_t)c->page;
        Layby__V1__OrderAudit *r = NULL;
        if ((s = ask((ProtobufCMessage **)&r, b, c, SUBJ_ORDER_AUDIT, &g.base,
                     &layby__v1__order_audit__descriptor, err)) != LB_OK)
            break;
        s = grow((void **)&a->in.orders, &a->cap_orders, a->in.n_orders, r->n_orders,
                 sizeof *a->in.orders, err);
        for (size_t i = 0; s == LB_OK && i < r->n_orders; i++) {
            const Layby__V1__OrderAuditRow *o = r->orders[i];
            ctl_audit_order *d = &a->in.orders[a->in.n_orders++];
            copy_text(d->id, sizeof d->id, o->order_id);
            copy_text(d->status, sizeof d->status, o->status);
            d->total = o->total;
            d->updated_ms = o->updated_ms;
        }
        copy_text(after, sizeof after, r->next_order_id);
        if (a->order_first == NULL)
            a->order_first = r;
        else
            protobuf_c_message_free_unpacked(&r->base, NULL);
    } while (s == LB_OK && after[0] != '\0');
    return s;
}

static lb_status
payment_pages(audit_answers *a, bus *b, const audit_conf *c, lb_err *err)
{
    char after[ID_STR_LEN] = "";
    lb_status s = LB_OK;
    do {
        Layby__V1__GetPaymentAudit g = LAYBY__V1__GET_PAYMENT_AUDIT__INIT;
        g.after_order_id = after;
        g.limit = (int32_t)c->page;
        Layby__V1__PaymentAudit *r = NULL;
        if ((s = ask((ProtobufCMessage **)&r, b, c, SUBJ_PAYMENT_AUDIT, &g.base,
                     &layby__v1__payment_audit__descriptor, err)) != LB_OK)
            break;
        s = grow((void **)&a->in.money, &a->cap_money, a->in.n_money, r->n_orders,
                 sizeof *a->in.money, err);
        for (size_t i = 0; s == LB_OK && i < r->n_orders; i++) {
            const Layby__V1__PaymentAuditRow *o = r->orders[i];
            ctl_audit_money *d = &a->in.money[a->in.n_money++];
            copy_text(d->id, sizeof d->id, o->order_id);
            d->captures = o->captures;
            d->charged = o->charged;
            d->refunded = o->refunded;
            d->refunded_on_charges = o->refunded_on_charges;
            d->updated_ms = o->updated_ms;
        }
        copy_text(after, sizeof after, r->next_order_id);
        if (a->payment_first == NULL)
            a->payment_first = r;
        else
            protobuf_c_message_free_unpacked(&r->base, NULL);
    } while (s == LB_OK && after[0] != '\0');
    return s;
}

static lb_status
delivery_pages(audit_answers *a, bus *b, const audit_conf *c, lb_err *err)
{
    char after[ID_STR_LEN] = "";
    lb_status s = LB_OK;
    do {
        Layby__V1__GetDeliveryAudit g = LAYBY__V1__GET_DELIVERY_AUDIT__INIT;
        g.after_order_id = after;
        g.limit = (int32_t)c->page;
        Layby__V1__DeliveryAudit *r = NULL;
        if ((s = ask((ProtobufCMessage **)&r, b, c, SUBJ_DELIVERY_AUDIT, &g.base,
                     &layby__v1__delivery_audit__descriptor, err)) != LB_OK)
            break;
        s = grow((void **)&a->in.deliveries, &a->cap_deliveries, a->in.n_deliveries, r->n_orders,
                 sizeof *a->in.deliveries, err);
        for (size_t i = 0; s == LB_OK && i < r->n_orders; i++) {
            const Layby__V1__DeliveryAuditRow *o = r->orders[i];
            ctl_audit_delivery *d = &a->in.deliveries[a->in.n_deliveries++];
            copy_text(d->id, sizeof d->id, o->order_id);
            copy_text(d->status, sizeof d->status, o->status);
            d->updated_ms = o->updated_ms;
        }
        copy_text(after, sizeof after, r->next_order_id);
        protobuf_c_message_free_unpacked(&r->base, NULL);
    } while (s == LB_OK && after[0] != '\0');
    return s;
}

static void
answers_destroy(audit_answers *a)
{
    free(a->in.deliveries);
    free(a->in.products);
    free(a->in.stock);
    free(a->in.orders);
    free(a->in.money);
    if (a->order_first != NULL)
        protobuf_c_message_free_unpacked(&a->order_first->base, NULL);
    if (a->payment_first != NULL)
        protobuf_c_message_free_unpacked(&a->payment_first->base, NULL);
}

/* --- output ----------------------------------------------------------------------- */

static const Layby__V1__PaymentAuditTotals no_totals = LAYBY__V1__PAYMENT_AUDIT_TOTALS__INIT;

static const Layby__V1__PaymentAuditTotals *
ledger_of(const audit_answers *a)
{
    return a->payment_first && a->payment_first->totals ? a->payment_first->totals : &no_totals;
}

static json_t *
audit_doc(const audit_answers *a, const ctl_audit_report *r, const audit_conf *c)
{
    const Layby__V1__PaymentAuditTotals *t = ledger_of(a);
    json_t *by = json_object(), *vs = json_array();
    for (size_t i = 0; a->order_first && i < a->order_first->n_by_status; i++) {
        const Layby__V1__OrderStatusTotals *s = a->order_first->by_status[i];
        json_object_set_new(
            by, s->status,
            json_pack("{s:I,s:I}", "orders", (json_int_t)s->orders, "total", (json_int_t)s->total));
    }
    for (size_t i = 0; i < r->n_violations; i++) {
        const ctl_audit_violation *v = &r->violations[i];
        json_array_append_new(vs, json_pack("{s:s,s:s,s:s}", "kind", ctl_audit_kind_name(v->kind),
                                            "id", v->id, "detail", v->detail));
    }
    return json_pack(
        "{s:b,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I},s:o,s:o}", "ok",
        r->n_violations == 0, "settleMs", (json_int_t)c->settle_ms, "products",
        (json_int_t)r->products, "orders", (json_int_t)r->orders, "inFlight",
        (json_int_t)r->in_flight, "money", "charged", (json_int_t)r->charged, "refunded",
        (json_int_t)r->refunded, "net", (json_int_t)(r->charged - r->refunded), "paidTotal",
        (json_int_t)r->paid_total, "ledger", "charged", (json_int_t)t->charged, "refunded",
        (json_int_t)t->refunded, "captures", (json_int_t)t->captures, "ordersChargedTwice",
        (json_int_t)t->orders_charged_twice, "ordersRefundedAboveCharge",
        (json_int_t)t->orders_refunded_above_charge, "declined", (json_int_t)t->declined, "failed",
        (json_int_t)t->failed, "ordersByStatus", by, "violations", vs);
}

static lb_status
print_json(json_t *doc, lb_err *err)
{
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    if (text == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "audit JSON");
    printf("%s\n", text);
    free(text);
    return LB_OK;
}

/* At most this many violations are kept with the last result: the console
 * shows the first ones, layby-ctl audit prints them all. */
#define AUDIT_KEPT_VIOLATIONS 20

/* Keeps the result in KV_OPS/KV_OPS_AUDIT for the console's Overview: doc
 * (an audit's document, NULL when it could not finish) with when it ran and
 * why it did not finish. A failure to keep it is only said on stderr: the
 * audit's verdict is its exit code. */
static void
audit_keep(bus *b, json_t *doc, const lb_err *failed)
{
    if (b == NULL || bus_js(b) == NULL)
        return;
    char at[40];
    lb_time_format(at, sizeof at, lb_now_ms());
    json_t *keep = doc != NULL ? json_deep_copy(doc) : json_pack("{s:b}", "ok", 0);
    json_object_set_new(keep, "at", json_string(at));
    if (failed != NULL)
        json_object_set_new(keep, "error", json_string(failed->msg));
    json_t *vs = json_object_get(keep, "violations");
    json_object_set_new(keep, "violationCount", json_integer((json_int_t)json_array_size(vs)));
    while (json_array_size(vs) > AUDIT_KEPT_VIOLATIONS)
        json_array_remove(vs, json_array_size(vs) - 1);
    char *text = json_dumps(keep, JSON_COMPACT);
    json_decref(keep);
    kvStore *kv = NULL;
    natsStatus s = text != NULL ? js_KeyValue(&kv, bus_js(b), KV_OPS) : NATS_NO_MEMORY;
    if (s == NATS_OK)
        s = kvStore_PutString(NULL, kv, KV_OPS_AUDIT, text);
    if (s != NATS_OK)
        fprintf(stderr, "layby-ctl audit: the result was not kept in %s (%s): %s\n", KV_OPS,
                natsStatus_GetText(s), "layby-ctl bus setup makes the bucket");
    kvStore_Destroy(kv);
    free(text);
}

static void
print_text(const audit_answers *a, const ctl_audit_report *r, const audit_conf *c)
{
    const Layby__V1__PaymentAuditTotals *t = ledger_of(a);
    size_t per_kind[CTL_AUDIT_KIND__COUNT] = { 0 };
    for (size_t i = 0; i < r->n_violations; i++)
        per_kind[r->violations[i].kind]++;
    printf("audit: %zu products, %zu settled orders, %zu in flight (changed in the last %lld ms)\n",
           r->products, r->orders, r->in_flight, (long long)c->settle_ms);
    printf("  stock   initial + restocked = available + reserved + sold - returned: %s\n",
           per_kind[CTL_AUDIT_STOCK_EQUATION] + per_kind[CTL_AUDIT_STOCK_LEDGER] ? "VIOLATED"
                                                                                 : "ok");
    printf("  orders  stock held, totals and deliveries as the statuses say: %s\n",
           per_kind[CTL_AUDIT_STOCK_HELD] + per_kind[CTL_AUDIT_ORDER_TOTAL] +
                   per_kind[CTL_AUDIT_DELIVERY]
               ? "VIOLATED"
               : "ok");
    printf("  money   charged %lld - refunded %lld = %lld; PAID and RETURN_REQUESTED totals "
           "%lld: %s\n",
           (long long)r->charged, (long long)r->refunded, (long long)(r->charged - r->refunded),
           (long long)r->paid_total, per_kind[CTL_AUDIT_MONEY] ? "VIOLATED" : "ok");
    printf("  ledger  %lld captures (%lld won), %lld refunded, %lld orders charged twice, %lld "
           "refunded above the charge, %lld declined, %lld outages\n",
           (long long)t->captures, (long long)t->charged, (long long)t->refunded,
           (long long)t->orders_charged_twice, (long long)t->orders_refunded_above_charge,
           (long long)t->declined, (long long)t->failed);
    printf("  status ");
    for (size_t i = 0; a->order_first && i < a->order_first->n_by_status; i++) {
        const Layby__V1__OrderStatusTotals *s = a->order_first->by_status[i];
        printf(" %s %lld (%lld won)", s->status, (long long)s->orders, (long long)s->total);
    }
    printf("\n");
    if (r->n_violations == 0) {
        printf("OK\n");
        return;
    }
    printf("VIOLATIONS (%zu):\n", r->n_violations);
    for (size_t i = 0; i < r->n_violations; i++) {
        const ctl_audit_violation *v = &r->violations[i];
        printf("  %-19s %s  %s\n", ctl_audit_kind_name(v->kind), v->id, v->detail);
    }
    for (size_t k = 0; k < CTL_AUDIT_KIND__COUNT; k++)
        if (per_kind[k])
            printf("  (%s: %s)\n", ctl_audit_kind_name((ctl_audit_kind)k),
                   ctl_audit_kind_what((ctl_audit_kind)k));
}

int
ctl_audit(const ctl_cmd *cmd, int argc, char **argv)
{
    audit_conf c = { 0 };
    int rc = ctl_args(&c, cmd, audit_opts, LB_COUNTOF(audit_opts), argc, argv);
    if (rc >= 0)
        return rc;
    c.json = c.json || ctl_out.json; /* main() takes --json for every command */
    lb_err err;
    bus *b = NULL;
    audit_answers a = { 0 };
    ctl_audit_report r = { 0 };
    /* Taken before the first question: whatever changes while the pages are
     * read is newer than this, so it is in flight and not judged. */
    a.in.settled_before_ms = lb_now_ms() - c.settle_ms;
    lb_status s = ctl_bus_open(&b, &c.conn, &err);
    if (s == LB_OK)
        s = catalog_pages(&a, b, &c, &err);
    if (s == LB_OK)
        s = order_pages(&a, b, &c, &err);
    if (s == LB_OK)
        s = payment_pages(&a, b, &c, &err);
    if (s == LB_OK)
        s = delivery_pages(&a, b, &c, &err);
    if (s == LB_OK)
        s = ctl_audit_check(&r, &a.in, &err);
    json_t *doc = s == LB_OK ? audit_doc(&a, &r, &c) : NULL;
    audit_keep(b, doc, s == LB_OK ? NULL : &err);
    if (s == LB_OK)
        s = c.json ? print_json(doc, &err) : (print_text(&a, &r, &c), LB_OK);
    json_decref(doc);
    bool ok = r.n_violations == 0;
    ctl_audit_report_destroy(&r);
    answers_destroy(&a);
    bus_close(b);
    if (s != LB_OK)
        return ctl_fail(cmd, &err);
    return ok ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
