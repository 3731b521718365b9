/* page_cursor.h - the opaque keyset cursor of product pages.
 *
 * A page walk is ordered by (created_at, product id), a key that never
 * changes. The cursor names the last position shown, bound to the filter it
 * was made for (category, search), so a forged, truncated or borrowed cursor
 * is refused before any SQL runs. The catalog's query and the edge's read
 * model (edge/edge_model.c) both make and read it, so a client's walk may
 * switch between them page by page (docs/DECISIONS.md, "page cursor").
 *
 * Ownership: callers own every buffer.
 * Threads:   reentrant (libsodium must be initialised: sodium_init()).
 */
#ifndef LAYBY_ENGINE_PAGE_CURSOR_H
#define LAYBY_ENGINE_PAGE_CURSOR_H

#include <stdint.h>

#include "lb.h"

#define PAGE_CURSOR_MAX 96 /* encoded text with its NUL */

/* Writes the cursor of position (created_us, product_id) for the filter. */
void page_cursor_encode(char out[PAGE_CURSOR_MAX], int64_t created_us, const char *product_id,
                        const char *category, const char *q);
/* LB_ERR_INVALID (field "cursor") for anything encode did not make for this
 * filter; on LB_OK fills created_us and product_id (ID_STR_LEN bytes). */
lb_status page_cursor_decode(const char *cursor, const char *category, const char *q,
                             int64_t *created_us, char *product_id, lb_err *err);

#endif
