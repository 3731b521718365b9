/* order_msg.c - address validation, sealing, and the builders of every
 * message the order service sends (STYLE §7). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "order.h"

seal_keys order_keys;

/* --- validation ---------------------------------------------------------- */

typedef struct text_rule {
    const char *field; /* JSON name */
    size_t offset;     /* char * in Layby__V1__AddressDraft */
    size_t min, max;   /* code points */
    bool phone;        /* digits, spaces, '+', '-' and parentheses only */
} text_rule;

/* clang-format off */
static const text_rule address_rules[] = {
    { "label",     offsetof(Layby__V1__AddressDraft, label),     0, 50,  false },
    { "recipient", offsetof(Layby__V1__AddressDraft, recipient), 1, 100, false },
    { "phone",     offsetof(Layby__V1__AddressDraft, phone),     7, 20,  true },
    { "zipcode",   offsetof(Layby__V1__AddressDraft, zipcode),   3, 10,  false },
    { "city",      offsetof(Layby__V1__AddressDraft, city),      1, 100, false },
    { "street",    offsetof(Layby__V1__AddressDraft, street),    1, 200, false },
    { "detail",    offsetof(Layby__V1__AddressDraft, detail),    0, 200, false },
};
/* clang-format on */

static const char *
field_text(const Layby__V1__AddressDraft *d, const text_rule *r)
{
    const char *v = *(char *const *)((const char *)d + r->offset);
    return v ? v : "";
}

static bool
blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

static bool
phone_ok(const char *s)
{
    for (; *s; s++)
        if (!strchr("0123456789 +-()", *s))
            return false;
    return true;
}

lb_status
order_address_validate(const Layby__V1__AddressDraft *d, bool partial, lb_err *err)
{
    for (size_t i = 0; i < LB_COUNTOF(address_rules); i++) {
        const text_rule *r = &address_rules[i];
        const char *v = field_text(d, r);
        if (partial && *v == '\0')
            continue; /* PATCH: an empty field keeps the stored value */
        if (!lb_utf8_valid(v))
            return lb_err_field(err, LB_ERR_INVALID, r->field, "%s must be UTF-8 text", r->field);
        size_t len = lb_utf8_len(v);
        if (len < r->min || (r->min > 0 && blank(v)))
            return lb_err_field(err, LB_ERR_INVALID, r->field,
                                "%s must have at least %zu characters", r->field, r->min);
        if (len > r->max)
            return lb_err_field(err, LB_ERR_INVALID, r->field, "%s is longer than %zu characters",
                                r->field, r->max);
        if (r->phone && !phone_ok(v))
            return lb_err_field(err, LB_ERR_INVALID, r->field,
                                "%s may hold digits, spaces, '+', '-' and parentheses only",
                                r->field);
    }
    return LB_OK;
}

void
order_ad_address(char *out, size_t n, const char *address_id)
{
    snprintf(out, n, "orders.address:%s", address_id);
}

void
order_ad_ship_to(char *out, size_t n, const char *order_id)
{
    snprintf(out, n, "orders.ship_to:%s", order_id);
}

/* --- sealing ------------------------------------------------------------- */

lb_status
order_address_seal(char *out, size_t cap, const Layby__V1__AddressDraft *d, const char *ad,
                   lb_err *err)
{
    /* is_default is not personal and lives in its own column. */
    Layby__V1__AddressDraft copy = *d;
    copy.is_default_present_case = LAYBY__V1__ADDRESS_DRAFT__IS_DEFAULT_PRESENT__NOT_SET;
    size_t n = protobuf_c_message_get_packed_size(&copy.base);
    if (n + SEAL_OVERHEAD > ORDER_SEALED_MAX || cap < (n + SEAL_OVERHEAD) * 2 + 3)
        return lb_err_set(err, LB_ERR_INVALID, "address too large");
    uint8_t plain[ORDER_SEALED_MAX], sealed[ORDER_SEALED_MAX];
    protobuf_c_message_pack(&copy.base, plain);
    size_t sn = 0;
    lb_status st = seal_encrypt(sealed, sizeof sealed, &sn, &order_keys, plain, n, ad, err);
    sodium_memzero(plain, sizeof plain);
    if (st != LB_OK)
        return st;
    out[0] = '\\';
    out[1] = 'x';
    sodium_bin2hex(out + 2, cap - 2, sealed, sn);
    return LB_OK;
}

lb_status
order_address_open(Layby__V1__AddressDraft **out, const char *hex, const char *ad, lb_err *err)
{
    uint8_t sealed[ORDER_SEALED_MAX], plain[ORDER_SEALED_MAX];
    size_t sn = 0, pn = 0;
    if (sodium_hex2bin(sealed, sizeof sealed, hex, strlen(hex), NULL, &sn, NULL) != 0)
        return lb_err_set(err, LB_ERR_CRYPTO, "sealed address is not hex");
    lb_status st = seal_decrypt(plain, sizeof plain, &pn, &order_keys, sealed, sn, ad, err);
    if (st != LB_OK)
        return st;
    Layby__V1__AddressDraft *d = layby__v1__address_draft__unpack(NULL, pn, plain);
    sodium_memzero(plain, sizeof plain);
    if (d == NULL)
        return lb_err_set(err, LB_ERR_CRYPTO, "sealed address does not decode");
    *out = d;
    return LB_OK;
}

/* --- builders ------------------------------------------------------------ */

static char *
text_dup(const char *s, bool *oom)
{
    char *d = strdup(s ? s : "");
    if (d == NULL)
        *oom = true;
    return d;
}

lb_status
order_msg_address_from_row(Layby__V1__Address **out, const PGresult *r, int row, lb_err *err)
{
    const char *id = PQgetvalue(r, row, 0);
    char ad[64];
    order_ad_address(ad, sizeof ad, id);
    Layby__V1__AddressDraft *d = NULL;
    lb_status st = order_address_open(&d, PQgetvalue(r, row, 2), ad, err);
    if (st != LB_OK)
        return st;
    Layby__V1__Address *a = malloc(sizeof *a);
    if (a == NULL) {
        protobuf_c_message_free_unpacked(&d->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "address");
    }
    layby__v1__address__init(a);
    bool oom = false;
    a->address_id = text_dup(id, &oom);
    a->label = text_dup(d->label, &oom);
    a->recipient = text_dup(d->recipient, &oom);
    a->phone = text_dup(d->phone, &oom);
    a->zipcode = text_dup(d->zipcode, &oom);
    a->city = text_dup(d->city, &oom);
    a->street = text_dup(d->street, &oom);
    a->detail = text_dup(d->detail, &oom);
    a->is_default = PQgetvalue(r, row, 3)[0] == 't';
    a->created_at = text_dup(PQgetvalue(r, row, 4), &oom);
    protobuf_c_message_free_unpacked(&d->base, NULL);
    if (oom) {
        protobuf_c_message_free_unpacked(&a->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "address fields");
    }
    *out = a;
    return LB_OK;
}
