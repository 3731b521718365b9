/* page_cursor.c - the page cursor (page_cursor.h), moved here from the
 * catalog so the edge's read model makes the same one.
 *
 * base64url (no padding) of: version byte 1 | created_at µs, 8 bytes big-endian
 * | product id, 16 bytes | tag, 8 bytes. The tag is BLAKE2b over the first 25
 * bytes, the category and the search, so a truncated or altered cursor, or one
 * from another listing, is refused before any SQL runs. It is a check, not a
 * secret: a client who rebuilds it can only start a page at a position of its
 * choosing, which the listing shows anyway, and the values reach SQL as typed
 * parameters. (docs/DECISIONS.md) */

#include "page_cursor.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "id.h"

#define CURSOR_VERSION 1
#define CURSOR_BODY    25
#define CURSOR_TAG     8
#define CURSOR_BYTES   (CURSOR_BODY + CURSOR_TAG)

static void
cursor_tag(uint8_t tag[CURSOR_TAG], const uint8_t body[CURSOR_BODY], const char *category,
           const char *q)
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, (const uint8_t *)"layby.cursor", 12, CURSOR_TAG);
    crypto_generichash_update(&h, body, CURSOR_BODY);
    crypto_generichash_update(&h, (const uint8_t *)category, strlen(category) + 1);
    crypto_generichash_update(&h, (const uint8_t *)q, strlen(q) + 1);
    crypto_generichash_final(&h, tag, CURSOR_TAG);
}

static bool
uuid_to_bin(uint8_t out[16], const char *id)
{
    char hex[33];
    size_t k = 0;
    for (const char *p = id; *p && k < 32; p++)
        if (*p != '-')
            hex[k++] = *p;
    hex[k] = '\0';
    size_t len = 0;
    return k == 32 && sodium_hex2bin(out, 16, hex, 32, NULL, &len, NULL) == 0 && len == 16;
}

static void
uuid_from_bin(char out[ID_STR_LEN], const uint8_t b[16])
{
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, b, 16);
    snprintf(out, ID_STR_LEN, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
}

void
page_cursor_encode(char out[PAGE_CURSOR_MAX], int64_t created_us, const char *product_id,
                   const char *category, const char *q)
{
    uint8_t raw[CURSOR_BYTES] = { CURSOR_VERSION };
    for (int i = 0; i < 8; i++)
        raw[1 + i] = (uint8_t)((uint64_t)created_us >> (56 - 8 * i));
    if (!uuid_to_bin(raw + 9, product_id))
        memset(raw + 9, 0, 16); /* our own ids are always valid */
    cursor_tag(raw + CURSOR_BODY, raw, category, q);
    sodium_bin2base64(out, PAGE_CURSOR_MAX, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

lb_status
page_cursor_decode(const char *cursor, const char *category, const char *q, int64_t *created_us,
                   char *product_id, lb_err *err)
{
    uint8_t raw[CURSOR_BYTES + 1], tag[CURSOR_TAG];
    size_t len = 0;
    if (strlen(cursor) >= PAGE_CURSOR_MAX ||
        sodium_base642bin(raw, sizeof raw, cursor, strlen(cursor), NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        len != CURSOR_BYTES || raw[0] != CURSOR_VERSION)
        return lb_err_field(err, LB_ERR_INVALID, "cursor", "cursor is not one this listing made");
    cursor_tag(tag, raw, category, q);
    if (sodium_memcmp(tag, raw + CURSOR_BODY, CURSOR_TAG) != 0)
        return lb_err_field(err, LB_ERR_INVALID, "cursor", "cursor is not one this listing made");
    uint64_t us = 0;
    for (int i = 0; i < 8; i++)
        us = (us << 8) | raw[1 + i];
    *created_us = (int64_t)us;
    uuid_from_bin(product_id, raw + 9);
    return LB_OK;
}
