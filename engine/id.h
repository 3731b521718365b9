/* id.h - UUIDv7 identifiers: time-ordered, so ids sort in creation order and
 * B-tree inserts stay at the right edge of the index.
 *
 * Ownership: callers pass the buffers.
 * Threads:   reentrant (randomness from libsodium, initialised in id_init()).
 */
#ifndef LAYBY_ENGINE_ID_H
#define LAYBY_ENGINE_ID_H

#include "lb.h"

#define ID_STR_LEN 37 /* 36 characters and the NUL */

/* Initialises libsodium; call once from main() (safe to repeat). */
lb_status id_init(lb_err *err);
/* Writes a new UUIDv7 in canonical lower-case text form. Ids made by one process
 * are strictly increasing, even within one millisecond. */
void id_new(char out[ID_STR_LEN]);
/* Same, for a given time (tests). */
void id_new_at(char out[ID_STR_LEN], int64_t ms);
/* A UUID derived from a key (same key -> same id), shaped as version 8. */
void id_from_key(char out[ID_STR_LEN], const char *ns, const char *key);
/* True for canonical 8-4-4-4-12 hex text. */
bool id_valid(const char *s);
/* Milliseconds since epoch stored in a UUIDv7 (0 if not one). */
int64_t id_time_ms(const char *s);

#endif
