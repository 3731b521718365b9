/* fuzz_page_cursor.c - the product listing's page cursor
 * (engine/page_cursor.c), which arrives from clients in ?cursor= and is read
 * by both the catalog and the edge's read model.
 *
 * Input: "<cursor>\n<category>\n<q>" (missing parts are empty). The cursor
 * is decoded for that filter; separately, the first 24 bytes are taken as a
 * position (8 bytes of created_at µs, 16 of product id) that is encoded and
 * decoded again.
 *
 * Invariants:
 * (1) a decoded cursor gives a product id in UUID text form, and encoding
 *     that position for the same filter gives back the very cursor text;
 * (2) any position survives encode -> decode for its filter;
 * (3) a cursor made for one filter is refused for another.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "id.h"
#include "page_cursor.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        fuzz_fail("sodium_init");
    return 0;
}

static void
uuid_text(char out[ID_STR_LEN], const uint8_t b[16])
{
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, b, 16);
    snprintf(out, ID_STR_LEN, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    char *parts[3] = { text, "", "" };
    for (int i = 1; i < 3; i++) {
        char *nl = strchr(parts[i - 1], '\n');
        if (nl == NULL)
            break;
        *nl = '\0';
        parts[i] = nl + 1;
    }
    const char *cursor = parts[0], *category = parts[1], *q = parts[2];

    int64_t us = 0;
    char id[ID_STR_LEN];
    lb_err err;
    if (page_cursor_decode(cursor, category, q, &us, id, &err) == LB_OK) {
        char again[PAGE_CURSOR_MAX];
        if (strlen(id) != ID_STR_LEN - 1)
            fuzz_fail("decoded id \"%s\" is not UUID text", id);
        page_cursor_encode(again, us, id, category, q);
        if (strcmp(again, cursor) != 0)
            fuzz_fail("cursor %s decodes to a position that encodes as %s", cursor, again);
    } else if (err.code != LB_ERR_INVALID || strcmp(err.field, "cursor") != 0) {
        fuzz_fail("refused cursor: %s field \"%s\"", lb_status_name(err.code), err.field);
    }

    if (size >= 24) {
        int64_t pos_us = 0;
        for (int i = 0; i < 8; i++)
            pos_us = (int64_t)(((uint64_t)pos_us << 8) | data[i]);
        char pos_id[ID_STR_LEN], made[PAGE_CURSOR_MAX];
        uuid_text(pos_id, data + 8);
        page_cursor_encode(made, pos_us, pos_id, category, q);
        int64_t got_us = 0;
        char got_id[ID_STR_LEN];
        if (page_cursor_decode(made, category, q, &got_us, got_id, &err) != LB_OK)
            fuzz_fail("own cursor %s refused: %s", made, err.msg);
        if (got_us != pos_us || strcmp(got_id, pos_id) != 0)
            fuzz_fail("cursor %s: position changed (%s -> %s)", made, pos_id, got_id);
        /* (3): the same cursor for another search */
        size_t ql = strlen(q);
        char *other = malloc(ql + 2);
        if (other == NULL)
            fuzz_fail("out of memory");
        memcpy(other, q, ql);
        other[ql] = 'x';
        other[ql + 1] = '\0';
        if (page_cursor_decode(made, category, other, &got_us, got_id, &err) == LB_OK)
            fuzz_fail("cursor for q \"%s\" accepted for q \"%s\"", q, other);
        free(other);
    }
    free(text);
    return 0;
}
