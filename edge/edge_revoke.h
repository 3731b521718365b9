/* edge_revoke.h - revoked access tokens, known to every edge within a second
 * without a round trip per request.
 *
 * The member service puts each revoked token's jti into the key-value bucket
 * LAYBY_REVOKED with the token's exp as value (logout, refresh-token reuse,
 * password change, lock). A watcher thread here follows the bucket (first
 * every live entry, then each new put, ~1-2 ms after it) into an in-memory
 * set that edge_auth_verify() consults on every request, cached tokens too.
 * An expiry makes no watch event (PLATFORM.md), so entries carry their exp
 * and are dropped here once it passed: the token is dead by then anyway.
 *
 * Ownership: edge_revoke_new() returns a set freed by edge_revoke_free(),
 *            which stops the watcher first.
 * Threads:   edge_revoke_has/add are thread-safe (one lock); the watcher is
 *            one thread of its own.
 */
#ifndef LAYBY_EDGE_EDGE_REVOKE_H
#define LAYBY_EDGE_EDGE_REVOKE_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "lb.h"

#define EDGE_JTI_MAX 64

typedef struct edge_revoke edge_revoke;

lb_status edge_revoke_new(edge_revoke **out, lb_err *err);
/* Tells the watcher to stop without waiting for it (see edge_model_stop()). */
void edge_revoke_stop(edge_revoke *rv);
void edge_revoke_free(edge_revoke *rv); /* NULL is a no-op */
/* Starts following bucket through b (borrowed; outlives the set). Until the
 * bucket exists the watcher retries every second. */
lb_status edge_revoke_watch(edge_revoke *rv, bus *b, const char *bucket, lb_err *err);
/* True once the watcher has read the bucket's current entries (readiness). */
bool edge_revoke_synced(edge_revoke *rv);

void edge_revoke_add(edge_revoke *rv, const char *jti, int64_t exp_s);
bool edge_revoke_has(edge_revoke *rv, const char *jti, int64_t now_s);
/* Entries held (tests, metrics). */
size_t edge_revoke_count(edge_revoke *rv);

#endif
