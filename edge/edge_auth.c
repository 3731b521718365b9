/* edge_auth.c - ES256 bearer tokens: pinned algorithm, our own claim checks,
 * and a bounded cache of verified tokens.
 *
 * The cache is direct-mapped: a token's keyed hash (SipHash, random key per
 * process, so clients cannot aim collisions) picks one slot; a newer token
 * evicts the older one. A hit compares the whole token text, so a collision
 * can only cost a verification, never mix up two members. An entry is used
 * only while now < exp: a cached token expires exactly like a fresh one.
 *
 * Invariants:
 * (1) Only tokens that passed every check below enter the cache.
 * (2) cache[i].token is NULL or a malloc'd copy owned by the cache, guarded
 *     by edge_auth.lock together with the claims next to it.
 */
#include "edge_auth.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EDGE_PEM_MAX    16384 /* a P-256 public key PEM is ~180 bytes */
#define EDGE_ISSUER_MAX 64

typedef struct cache_slot {
    char *token; /* NULL = empty */
    size_t len;
    edge_claims claims;
} cache_slot;

struct edge_auth {
    /* config, fixed after edge_auth_new() */
    char *pem;
    size_t pem_len;
    char issuer[EDGE_ISSUER_MAX];
    int64_t skew_s;
    size_t cap;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    edge_revoke *revoked; /* NULL = no revocations; set before requests arrive */
    /* state, guarded by lock */
    pthread_mutex_t lock;
    cache_slot *slots;
    uint64_t hits, misses;
};

typedef struct role_row {
    const char *name;
    edge_role role;
} role_row;

/* clang-format off */
static const role_row role_rows[] = {
    { "USER",  EDGE_ROLE_USER  },
    { "ADMIN", EDGE_ROLE_ADMIN },
};
/* clang-format on */

const char *
edge_role_name(edge_role r)
{
    for (size_t i = 0; i < LB_COUNTOF(role_rows); i++)
        if (role_rows[i].role == r)
            return role_rows[i].name;
    return "NONE";
}

static edge_role
role_parse(const char *s)
{
    for (size_t i = 0; s != NULL && i < LB_COUNTOF(role_rows); i++)
        if (strcmp(role_rows[i].name, s) == 0)
            return role_rows[i].role;
    return EDGE_ROLE_NONE;
}

lb_status
edge_auth_new(edge_auth **out, const char *pem, size_t pem_len, const edge_auth_opts *opts,
              lb_err *err)
{
    edge_auth_opts o = EDGE_AUTH_OPTS_INIT;
    if (opts != NULL)
        o = *opts;
    if (pem == NULL || pem_len == 0 || pem_len > EDGE_PEM_MAX)
        return lb_err_set(err, LB_ERR_CONFIG, "JWT public key: empty or larger than %d bytes",
                          EDGE_PEM_MAX);
    if (o.issuer == NULL || strlen(o.issuer) >= EDGE_ISSUER_MAX)
        return lb_err_set(err, LB_ERR_CONFIG, "JWT issuer missing or too long");
    if (sodium_init() < 0)
        return lb_err_set(err, LB_ERR_CRYPTO, "sodium_init failed");

    edge_auth *a = calloc(1, sizeof *a);
    if (a == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "edge_auth");
    a->pem = malloc(pem_len + 1);
    a->slots = o.cache_cap ? calloc(o.cache_cap, sizeof *a->slots) : NULL;
    if (a->pem == NULL || (o.cache_cap && a->slots == NULL)) {
        free(a->pem);
        free(a->slots);
        free(a);
        return lb_err_set(err, LB_ERR_NOMEM, "edge_auth cache");
    }
    memcpy(a->pem, pem, pem_len);
    a->pem[pem_len] = '\0';
    a->pem_len = pem_len;
    snprintf(a->issuer, sizeof a->issuer, "%s", o.issuer);
    a->skew_s = o.skew_s;
    a->cap = o.cache_cap;
    crypto_shorthash_keygen(a->hash_key);
    pthread_mutex_init(&a->lock, NULL);

    /* Fail at start, not on the first request, when the file is no public key. */
    if (strstr(a->pem, "-----BEGIN PUBLIC KEY-----") == NULL) {
        edge_auth_free(a);
        return lb_err_set(err, LB_ERR_CONFIG, "JWT public key: not a PEM public key");
    }
    *out = a;
    return LB_OK;
}

lb_status
edge_auth_load(edge_auth **out, const char *pem_path, const edge_auth_opts *opts, lb_err *err)
{
    if (pem_path == NULL || pem_path[0] == '\0')
        return lb_err_set(err, LB_ERR_CONFIG, "JWT public key file not set");
    FILE *f = fopen(pem_path, "rb");
    if (f == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "JWT public key file %s: %s", pem_path,
                          strerror(errno));
    char buf[EDGE_PEM_MAX + 1];
    size_t n = fread(buf, 1, sizeof buf, f);
    bool bad = ferror(f) || n > EDGE_PEM_MAX;
    fclose(f);
    if (bad)
        return lb_err_set(err, LB_ERR_CONFIG, "JWT public key file %s: unreadable or too large",
                          pem_path);
    lb_status s = edge_auth_new(out, buf, n, opts, err);
    if (s != LB_OK)
        lb_err_wrap(err, pem_path);
    return s;
}

void
edge_auth_free(edge_auth *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->cap; i++)
        free(a->slots[i].token);
    free(a->slots);
    free(a->pem);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static size_t
slot_of(const edge_auth *a, const char *token, size_t len)
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)token, len, a->hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return (size_t)(v % a->cap);
}

static bool
cache_get(edge_auth *a, const char *token, size_t len, int64_t now_s, edge_claims *out)
{
    if (a->cap == 0)
        return false;
    size_t i = slot_of(a, token, len);
    bool hit = false;
    pthread_mutex_lock(&a->lock);
    cache_slot *s = &a->slots[i];
    if (s->token != NULL && s->len == len && memcmp(s->token, token, len) == 0 &&
        now_s < s->claims.exp_s) {
        *out = s->claims;
        hit = true;
    }
    if (hit)
        a->hits++;
    else
        a->misses++;
    pthread_mutex_unlock(&a->lock);
    return hit;
}

static void
cache_put(edge_auth *a, const char *token, size_t len, const edge_claims *c)
{
    if (a->cap == 0)
        return;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return; /* the cache is an optimisation: skip it when memory is short */
    memcpy(copy, token, len + 1);
    size_t i = slot_of(a, token, len);
    pthread_mutex_lock(&a->lock);
    char *old = a->slots[i].token;
    a->slots[i] = (cache_slot){ .token = copy, .len = len, .claims = *c };
    pthread_mutex_unlock(&a->lock);
    free(old);
}

static bool
sub_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= EDGE_SUB_MAX || n >= EDGE_JTI_MAX)
        return false;
    for (size_t i = 0; i < n; i++) /* goes into "Layby-Actor: <sub> <ROLE>" */
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

/* The claim checks libjwt leaves to us, on the decoded payload. */
static lb_status
claims_check(edge_claims *out, const edge_auth *a, const json_t *g, int64_t now_s, lb_err *err)
{
    const json_t *exp = json_object_get(g, "exp");
    const json_t *nbf = json_object_get(g, "nbf");
    const json_t *iat = json_object_get(g, "iat");
    const char *iss = json_string_value(json_object_get(g, "iss"));
    const char *sub = json_string_value(json_object_get(g, "sub"));
    const char *role = json_string_value(json_object_get(g, "role"));
    const char *jti = json_string_value(json_object_get(g, "jti"));
    const char *sid = json_string_value(json_object_get(g, "sid"));

    if (!json_is_integer(exp))
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token has no exp");
    if (now_s >= json_integer_value(exp))
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token expired");
    if (nbf != NULL && (!json_is_integer(nbf) || json_integer_value(nbf) > now_s + a->skew_s))
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token not valid yet");
    if (iat != NULL && (!json_is_integer(iat) || json_integer_value(iat) > now_s + a->skew_s))
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token issued in the future");
    if (iss == NULL || strcmp(iss, a->issuer) != 0)
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token has the wrong issuer");
    if (sub == NULL || !sub_ok(sub))
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token has no valid sub");
    edge_role r = role_parse(role);
    if (r == EDGE_ROLE_NONE)
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token has no valid role");

    if ((jti != NULL && !sub_ok(jti)) || (sid != NULL && !sub_ok(sid)))
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token has a malformed jti or sid");

    snprintf(out->sub, sizeof out->sub, "%s", sub);
    snprintf(out->jti, sizeof out->jti, "%s", jti ? jti : "");
    snprintf(out->sid, sizeof out->sid, "%s", sid ? sid : "");
    out->role = r;
    out->exp_s = json_integer_value(exp);
    return LB_OK;
}

lb_status
edge_auth_verify(edge_claims *out, edge_auth *a, const char *token, int64_t now_s, lb_err *err)
{
    size_t len = token ? strnlen(token, EDGE_TOKEN_MAX + 1) : 0;
    if (len == 0 || len > EDGE_TOKEN_MAX)
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "missing or oversized token");
    if (cache_get(a, token, len, now_s, out))
        goto out_revoked;

    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, (const unsigned char *)a->pem, (int)a->pem_len) != 0 || jwt == NULL)
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token signature or format invalid");

    lb_status s = LB_OK;
    char *grants = NULL;
    json_t *g = NULL;
    /* libjwt verifies with whatever alg the token names: an HS256 token keyed
     * with our public key text would pass. Pin ES256 here. */
    if (jwt_get_alg(jwt) != JWT_ALG_ES256) {
        s = lb_err_set(err, LB_ERR_UNAUTHORIZED, "token algorithm not accepted");
        goto out_jwt;
    }
    grants = jwt_get_grants_json(jwt, NULL);
    g = grants ? json_loads(grants, 0, NULL) : NULL;
    if (!json_is_object(g)) {
        s = lb_err_set(err, LB_ERR_UNAUTHORIZED, "token payload unreadable");
        goto out_jwt;
    }
    edge_claims c;
    s = claims_check(&c, a, g, now_s, err);
    if (s == LB_OK) {
        cache_put(a, token, len, &c);
        *out = c;
    }
out_jwt:
    json_decref(g);
    free(grants);
    jwt_free(jwt);
    if (s != LB_OK)
        return s;
out_revoked:
    if (a->revoked != NULL && edge_revoke_has(a->revoked, out->jti, now_s))
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token revoked");
    return LB_OK;
}

void
edge_auth_revocations(edge_auth *a, edge_revoke *rv)
{
    a->revoked = rv;
}

void
edge_auth_stats(edge_auth *a, uint64_t *hits, uint64_t *misses)
{
    pthread_mutex_lock(&a->lock);
    if (hits != NULL)
        *hits = a->hits;
    if (misses != NULL)
        *misses = a->misses;
    pthread_mutex_unlock(&a->lock);
}
