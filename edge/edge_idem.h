/* edge_idem.h - Idempotency-Key for POST routes that create (DESIGN §5).
 *
 * The first outcome of (member, route, path values, key) is remembered in the JetStream
 * key-value bucket LAYBY_IDEMPOTENCY (24 h TTL, created by `layby-ctl bus
 * setup`) together with a hash of the request body, so a repeat gets the
 * first outcome byte for byte and a repeat with another body gets 422.
 * Routes also derive their new entity's id from the key, so even without the
 * bucket (unreachable) a repeat names the same entity.
 *
 * Ownership: an edge_idem lives on the handler's stack; nothing to free.
 * Threads:   any civetweb worker; the bucket handle in edge_app has a lock.
 */
#ifndef LAYBY_EDGE_EDGE_IDEM_H
#define LAYBY_EDGE_EDGE_IDEM_H

#include <stdbool.h>

#include "edge_http.h"

#define EDGE_IDEM_BUCKET  "LAYBY_IDEMPOTENCY"
#define EDGE_IDEM_KEY_MAX 256 /* longest Idempotency-Key accepted, with NUL */
#define EDGE_HASH_HEX     65  /* 32-byte BLAKE2b as hex, with NUL */

typedef struct edge_idem {
    bool active; /* a key was given and the bucket holds our claim */
    bool repeat; /* the claim was there before us: an earlier try with this key
                    was answered 202 (or is still running, or crashed) */
    char kv_key[EDGE_HASH_HEX];
    char body_hash[EDGE_HASH_HEX];
} edge_idem;

/* The request's path values, "\n<name>=<value>" each ("" for a route
 * without {params}): a key is scoped to the resource the path names, so the
 * same key on POST /orders/{A}/payment and /orders/{B}/payment is two requests
 * (docs/DECISIONS.md "Idempotency-Key scope"). Both the record's key and the
 * ids derived from the key (edge_bind.c) include it. Truncated to n. */
void edge_idem_target(char *out, size_t n, const edge_req *r);

/* Pure: checks an Idempotency-Key header value (1..255 printable ASCII). */
bool edge_idem_key_ok(const char *key);
/* Pure: the bucket key for (sub, route, key) and the body hash, as hex. */
void edge_idem_hashes(char kv_key[EDGE_HASH_HEX], char body_hash[EDGE_HASH_HEX], const char *sub,
                      const char *route, const char *key, const char *body, size_t body_len);

/* Starts handling a create with Idempotency-Key `key` (NULL = none) for the
 * body in r->body. *replied is set when the request was answered here: with
 * the remembered outcome, 422 for a different body, or 400 for a bad key;
 * otherwise the caller goes on and later calls edge_idem_finish(). */
void edge_idem_begin_or_reply(edge_idem *idem, bool *replied, edge_req *r, const char *key);
/* Remembers a final outcome (not 202 or 5xx, which a repeat should retry). */
void edge_idem_finish(const edge_idem *idem, edge_req *r, int status, const char *body,
                      const char *location);

#endif
