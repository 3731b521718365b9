/* ctl_audit_check.c - the audit's judgement (ctl_audit.h): pure, so the unit
 * suite feeds it hand-made answers and every rule is tested on its own.
 *
 * The four services' order pages are sorted by order id and walked together
 * (a merge join): each order id is judged once, with whatever each service
 * knows of it (an order a service never heard of has "" status and zeros). */
#include "ctl_audit.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {
#define X(k, name, what) [CTL_AUDIT_##k] = name,
    CTL_AUDIT_KINDS(X)
#undef X
};
static const char *const kind_whats[] = {
#define X(k, name, what) [CTL_AUDIT_##k] = what,
    CTL_AUDIT_KINDS(X)
#undef X
};
_Static_assert(LB_COUNTOF(kind_names) == CTL_AUDIT_KIND__COUNT, "one name per kind");

const char *
ctl_audit_kind_name(ctl_audit_kind k)
{
    return k < CTL_AUDIT_KIND__COUNT ? kind_names[k] : "?";
}

const char *
ctl_audit_kind_what(ctl_audit_kind k)
{
    return k < CTL_AUDIT_KIND__COUNT ? kind_whats[k] : "?";
}

/* --- rules as tables ---------------------------------------------------------- */

/* How the catalog holds an order's units. */
typedef enum hold {
    HOLD_NONE,
    HOLD_RESERVED,
    HOLD_SOLD,
    HOLD_RETURNED,
} hold;
static const char *const hold_names[] = {
    [HOLD_NONE] = "nothing",
    [HOLD_RESERVED] = "reserved",
    [HOLD_SOLD] = "sold",
    [HOLD_RETURNED] = "returned",
};

/* clang-format off */
/* DESIGN §6's order statuses: what the catalog must hold for a settled
 * order, whether it is paid (charged - refunded = total), whether its total
 * must equal its reserved lines' value, and the delivery statuses that fit
 * it (space-separated; "-" = no delivery). Any other status (an order the
 * order service does not know: "") holds nothing, is not paid and has no
 * delivery. */
static const struct {
    const char *status;
    hold holds;
    bool paid;
    bool priced;
    const char *deliveries;
} order_rules[] = {
    /* status              holds          paid   priced deliveries */
    { "PENDING",           HOLD_NONE,     false, false, "-" },
    { "PAYMENT_PENDING",   HOLD_RESERVED, false, true,  "-" },
    { "PAID",              HOLD_SOLD,     true,  true,  "PREPARING SHIPPING DELIVERED" },
    { "RETURN_REQUESTED",  HOLD_SOLD,     true,  true,  "RETURN_PICKUP" },
    { "RETURNED",          HOLD_RETURNED, false, true,  "RETURNED" },
    { "REJECTED",          HOLD_NONE,     false, false, "-" },
    { "CANCELLED",         HOLD_NONE,     false, false, "- CANCELLED" },
};

/* The catalog's stock_orders statuses (sql/0101_catalog_stock.sql). */
static const struct {
    const char *status;
    hold holds;
} stock_rules[] = {
    { "RESERVED", HOLD_RESERVED },
    { "SOLD",     HOLD_SOLD },
    { "RETURNED", HOLD_RETURNED },
    { "REJECTED", HOLD_NONE },
    { "RELEASED", HOLD_NONE },
};
/* clang-format on */

static size_t
order_rule(const char *status)
{
    for (size_t i = 0; i < LB_COUNTOF(order_rules); i++)
        if (strcmp(order_rules[i].status, status) == 0)
            return i;
    return LB_COUNTOF(order_rules);
}

static hold
stock_hold(const char *status)
{
    for (size_t i = 0; i < LB_COUNTOF(stock_rules); i++)
        if (strcmp(stock_rules[i].status, status) == 0)
            return stock_rules[i].holds;
    return HOLD_NONE;
}

/* True when word is one of the space-separated words of list. */
static bool
word_in(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, " ");
        if (len == n && strncmp(p, word, n) == 0)
            return true;
        p += len;
        p += strspn(p, " ");
    }
    return false;
}

/* --- the report --------------------------------------------------------------- */

static lb_status __attribute__((format(printf, 5, 6)))
report_add(ctl_audit_report *r, ctl_audit_kind kind, const char *id, lb_err *err, const char *fmt,
           ...)
{
    if (r->n_violations == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        ctl_audit_violation *v = realloc(r->violations, cap * sizeof *v);
        if (v == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "audit report");
        r->violations = v;
        r->cap = cap;
    }
    ctl_audit_violation *v = &r->violations[r->n_violations++];
    v->kind = kind;
    snprintf(v->id, sizeof v->id, "%s", id);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->detail, sizeof v->detail, fmt, ap);
    va_end(ap);
    return LB_OK;
}

void
ctl_audit_report_destroy(ctl_audit_report *r)
{
    if (r == NULL)
        return;
    free(r->violations);
    memset(r, 0, sizeof *r);
}

/* --- products ------------------------------------------------------------------ */

static lb_status
product_check(ctl_audit_report *r, const ctl_audit_product *p, lb_err *err)
{
    lb_status st = LB_OK;
    int64_t in = p->initial + p->restocked;
    int64_t out = p->available + p->reserved + p->sold - p->returned;
    if (in != out)
        st = report_add(r, CTL_AUDIT_STOCK_EQUATION, p->id, err,
                        "initial %lld + restocked %lld = %lld, but available %lld + reserved %lld "
                        "+ sold %lld - returned %lld = %lld",
                        (long long)p->initial, (long long)p->restocked, (long long)in,
                        (long long)p->available, (long long)p->reserved, (long long)p->sold,
                        (long long)p->returned, (long long)out);
    if (st == LB_OK && (p->reserved != p->ledger_reserved || p->sold != p->ledger_sold ||
                        p->returned != p->ledger_returned))
        st = report_add(r, CTL_AUDIT_STOCK_LEDGER, p->id, err,
                        "reserved/sold/returned %lld/%lld/%lld, the order ledger says "
                        "%lld/%lld/%lld",
                        (long long)p->reserved, (long long)p->sold, (long long)p->returned,
                        (long long)p->ledger_reserved, (long long)p->ledger_sold,
                        (long long)p->ledger_returned);
    return st;
}

/* --- orders -------------------------------------------------------------------- */

/* One order id as the four services know it; absent parts are NULL. */
typedef struct order_view {
    const char *id;
    const ctl_audit_stock *stock;
    const ctl_audit_order *order;
    const ctl_audit_money *money;
    const ctl_audit_delivery *delivery;
} order_view;

/* Checked whether or not the order is in flight: the ledger commits each of
 * these in one transaction, so no saga can be half-way through them. */
static lb_status
money_always_check(ctl_audit_report *r, const ctl_audit_money *m, lb_err *err)
{
    lb_status st = LB_OK;
    if (m->captures > 1)
        st = report_add(r, CTL_AUDIT_CHARGED_TWICE, m->id, err, "%lld captures, %lld won",
                        (long long)m->captures, (long long)m->charged);
    if (st == LB_OK && m->refunded > m->charged)
        st = report_add(r, CTL_AUDIT_REFUND_ABOVE, m->id, err, "charged %lld, refunded %lld",
                        (long long)m->charged, (long long)m->refunded);
    if (st == LB_OK && m->refunded != m->refunded_on_charges)
        st = report_add(r, CTL_AUDIT_REFUND_LEDGER, m->id, err,
                        "refund rows %lld, the charge says %lld refunded", (long long)m->refunded,
                        (long long)m->refunded_on_charges);
    return st;
}

static lb_status
settled_check(ctl_audit_report *r, const order_view *v, lb_err *err)
{
    const char *status = v->order ? v->order->status : "";
    size_t rule = order_rule(status);
    hold want = rule < LB_COUNTOF(order_rules) ? order_rules[rule].holds : HOLD_NONE;
    bool paid = rule < LB_COUNTOF(order_rules) && order_rules[rule].paid;
    hold have = v->stock ? stock_hold(v->stock->status) : HOLD_NONE;
    int64_t total = v->order ? v->order->total : 0;
    int64_t net = v->money ? v->money->charged - v->money->refunded : 0;
    int64_t expect = paid ? total : 0;
    lb_status st = LB_OK;

    r->orders++;
    r->charged += v->money ? v->money->charged : 0;
    r->refunded += v->money ? v->money->refunded : 0;
    r->paid_total += expect;
    if (have != want)
        st = report_add(r, CTL_AUDIT_STOCK_HELD, v->id, err,
                        "order %s, but the catalog holds %s (%s, %lld units)",
                        status[0] ? status : "unknown to the order service", hold_names[have],
                        v->stock ? v->stock->status : "no stock row",
                        (long long)(v->stock ? v->stock->units : 0));
    if (st == LB_OK && rule < LB_COUNTOF(order_rules) && order_rules[rule].priced &&
        v->stock != NULL && v->stock->amount != total)
        st = report_add(r, CTL_AUDIT_ORDER_TOTAL, v->id, err,
                        "order total %lld, its reserved lines are worth %lld", (long long)total,
                        (long long)v->stock->amount);
    if (st == LB_OK && net != expect)
        st = report_add(r, CTL_AUDIT_MONEY, v->id, err,
                        "charged %lld - refunded %lld = %lld, but the order is %s (expects %lld)",
                        (long long)(v->money ? v->money->charged : 0),
                        (long long)(v->money ? v->money->refunded : 0), (long long)net,
                        status[0] ? status : "unknown to the order service", (long long)expect);
    const char *fits = rule < LB_COUNTOF(order_rules) ? order_rules[rule].deliveries : "-";
    const char *ds = v->delivery ? v->delivery->status : "-";
    if (st == LB_OK && !word_in(fits, ds))
        st = report_add(r, CTL_AUDIT_DELIVERY, v->id, err, "order %s, delivery %s (fits: %s)",
                        status[0] ? status : "unknown to the order service",
                        v->delivery ? ds : "none", fits);
    return st;
}

static int64_t
newest_change(const order_view *v)
{
    int64_t t = 0;
    if (v->stock && v->stock->updated_ms > t)
        t = v->stock->updated_ms;
    if (v->order && v->order->updated_ms > t)
        t = v->order->updated_ms;
    if (v->money && v->money->updated_ms > t)
        t = v->money->updated_ms;
    if (v->delivery && v->delivery->updated_ms > t)
        t = v->delivery->updated_ms;
    return t;
}

/* qsort by id; each struct starts with its id. */
static int
by_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* qsort's base must not be NULL, even for no rows (UBSan: nonnull). */
static void
rows_sort(void *rows, size_t n, size_t size)
{
    if (n > 1)
        qsort(rows, n, size, by_id);
}

/* The smallest id at the four cursors, or NULL when all are done. */
static const char *
next_id(const ctl_audit_input *in, size_t s, size_t o, size_t m, size_t d)
{
    const char *ids[] = { s < in->n_stock ? in->stock[s].id : NULL,
                          o < in->n_orders ? in->orders[o].id : NULL,
                          m < in->n_money ? in->money[m].id : NULL,
                          d < in->n_deliveries ? in->deliveries[d].id : NULL };
    const char *min = NULL;
    for (size_t i = 0; i < LB_COUNTOF(ids); i++)
        if (ids[i] != NULL && (min == NULL || strcmp(ids[i], min) < 0))
            min = ids[i];
    return min;
}

lb_status
ctl_audit_check(ctl_audit_report *out, ctl_audit_input *in, lb_err *err)
{
    memset(out, 0, sizeof *out);
    lb_status st = LB_OK;
    for (size_t i = 0; st == LB_OK && i < in->n_products; i++) {
        st = product_check(out, &in->products[i], err);
        out->products++;
    }
    rows_sort(in->stock, in->n_stock, sizeof *in->stock);
    rows_sort(in->orders, in->n_orders, sizeof *in->orders);
    rows_sort(in->money, in->n_money, sizeof *in->money);
    rows_sort(in->deliveries, in->n_deliveries, sizeof *in->deliveries);
    size_t s = 0, o = 0, m = 0, d = 0;
    const char *id;
    while (st == LB_OK && (id = next_id(in, s, o, m, d)) != NULL) {
        char key[ID_STR_LEN];
        snprintf(key, sizeof key, "%s", id);
        order_view v = { .id = key };
        if (s < in->n_stock && strcmp(in->stock[s].id, key) == 0)
            v.stock = &in->stock[s++];
        if (o < in->n_orders && strcmp(in->orders[o].id, key) == 0)
            v.order = &in->orders[o++];
        if (m < in->n_money && strcmp(in->money[m].id, key) == 0)
            v.money = &in->money[m++];
        if (d < in->n_deliveries && strcmp(in->deliveries[d].id, key) == 0)
            v.delivery = &in->deliveries[d++];
        if (v.money != NULL)
            st = money_always_check(out, v.money, err);
        if (st != LB_OK)
            break;
        if (newest_change(&v) >= in->settled_before_ms)
            out->in_flight++;
        else
            st = settled_check(out, &v, err);
    }
    if (st != LB_OK)
        ctl_audit_report_destroy(out);
    return st;
}
