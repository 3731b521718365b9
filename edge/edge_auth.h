/* edge_auth.h - bearer token checks for the HTTP edge.
 *
 * Access tokens are ES256 JWTs issued by the member service. This module
 * verifies them itself with OpenSSL against the public key parsed once at
 * start (libjwt re-parses the PEM per call, does not pin the algorithm and
 * checks no claim: PLATFORM.md): only ES256 is accepted, and exp, nbf, iat
 * and iss are checked here. Verified tokens are also remembered (keyed by the
 * whole token text, bounded, until their exp), so a repeat costs a hash and a
 * compare. A revoked jti (edge_revoke.h) is refused whether the token was
 * cached or not.
 *
 * Ownership: edge_auth_new() returns an edge_auth freed by edge_auth_free();
 *            claims are copied into caller memory.
 * Threads:   edge_auth_verify() and edge_auth_stats() are thread-safe (the
 *            cache has its own lock); new/free run on one thread.
 */
#ifndef LAYBY_EDGE_EDGE_AUTH_H
#define LAYBY_EDGE_EDGE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "edge_revoke.h"
#include "lb.h"

#define EDGE_SUB_MAX   64   /* member id (a UUID) with room to spare */
#define EDGE_TOKEN_MAX 4096 /* longer bearer tokens are refused unread */

typedef enum edge_role {
    EDGE_ROLE_NONE,
    EDGE_ROLE_USER,
    EDGE_ROLE_ADMIN
} edge_role;

typedef struct edge_claims {
    char sub[EDGE_SUB_MAX]; /* member id */
    edge_role role;
    int64_t exp_s;          /* expiry, seconds since epoch */
    char jti[EDGE_JTI_MAX]; /* token id ("" if the token has none): what logout revokes */
    char sid[EDGE_SUB_MAX]; /* login (session) id of member-issued tokens, else "" */
} edge_claims;

typedef struct edge_auth_opts {
    const char *issuer; /* required iss claim, "layby" */
    size_t cache_cap;   /* remembered tokens; 0 = no cache */
    int64_t skew_s;     /* tolerated clock skew for nbf and iat */
} edge_auth_opts;
#define EDGE_AUTH_OPTS_INIT                                \
    {                                                      \
        .issuer = "layby", .cache_cap = 4096, .skew_s = 60 \
    }

typedef struct edge_auth edge_auth;

/* pem is the ES256 public key (PEM "PUBLIC KEY", P-256), parsed here once.
 * On error *out is unchanged. */
lb_status edge_auth_new(edge_auth **out, const char *pem, size_t pem_len,
                        const edge_auth_opts *opts, lb_err *err);
/* Reads the PEM from a file, then edge_auth_new(). */
lb_status edge_auth_load(edge_auth **out, const char *pem_path, const edge_auth_opts *opts,
                         lb_err *err);
void edge_auth_free(edge_auth *a); /* NULL is a no-op */

/* Checks token (the text after "Bearer ") at time now_s. LB_OK fills *out;
 * any fault is LB_ERR_UNAUTHORIZED with a reason safe to show the client. */
lb_status edge_auth_verify(edge_claims *out, edge_auth *a, const char *token, int64_t now_s,
                           lb_err *err);

/* Makes edge_auth_verify() refuse tokens whose jti is in rv (borrowed; set
 * once before requests arrive). Cached tokens are checked too. */
void edge_auth_revocations(edge_auth *a, edge_revoke *rv);

/* Cache counters since creation (tests and metrics). */
void edge_auth_stats(edge_auth *a, uint64_t *hits, uint64_t *misses);

/* "ADMIN" / "USER" / "NONE" */
const char *edge_role_name(edge_role r);

#endif
