/* edge_auth.c - ES256 bearer tokens: pinned algorithm, our own claim checks,
 * and a bounded cache of verified tokens.
 *
 * Verification is ours, not libjwt's: libjwt 1.10 re-parses the PEM key on
 * every call (~2,300 verifies/s, PLATFORM.md), tries whatever `alg` a token
 * names and checks no claim. Here the public key is parsed once into an
 * OpenSSL EVP_PKEY (P-256 only), the header must say exactly "ES256", the
 * 64-byte JOSE signature (R||S) is turned into DER and checked with
 * EVP_DigestVerify over "<header>.<payload>", then the claims are checked.
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
 * (3) key is set once by edge_auth_new() and only read afterwards (es256.h:
 *     concurrent verifications with one key are allowed).
 */
#include "edge_auth.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es256.h"

#define EDGE_PEM_MAX    16384 /* a P-256 public key PEM is ~180 bytes */
#define EDGE_ISSUER_MAX 64
#define JWT_PART_MAX    EDGE_TOKEN_MAX

typedef struct cache_slot {
    char *token; /* NULL = empty */
    size_t len;
    edge_claims claims;
} cache_slot;

struct edge_auth {
    /* config, fixed after edge_auth_new() */
    es256_key *key; /* the ES256 public key, parsed once */
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

/* The P-256 public key in pem, or NULL. */
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
    /* Fail at start, not on the first request, when the file is no P-256 public key. */
    es256_key *key = NULL;
    if (es256_key_new(&key, ES256_PUBLIC, pem, pem_len, NULL) != LB_OK)
        return lb_err_set(err, LB_ERR_CONFIG, "JWT public key: not a PEM P-256 public key");

    edge_auth *a = calloc(1, sizeof *a);
    if (a == NULL) {
        es256_key_free(key);
        return lb_err_set(err, LB_ERR_NOMEM, "edge_auth");
    }
    a->key = key;
    a->slots = o.cache_cap ? calloc(o.cache_cap, sizeof *a->slots) : NULL;
    if (o.cache_cap && a->slots == NULL) {
        es256_key_free(key);
        free(a);
        return lb_err_set(err, LB_ERR_NOMEM, "edge_auth cache");
    }
    snprintf(a->issuer, sizeof a->issuer, "%s", o.issuer);
    a->skew_s = o.skew_s;
    a->cap = o.cache_cap;
    crypto_shorthash_keygen(a->hash_key);
    pthread_mutex_init(&a->lock, NULL);
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
    es256_key_free(a->key);
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

/* The claims, on the decoded payload of a token whose signature is good. */
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

/* base64url without padding, the JWS encoding; false on any other character
 * or when the result does not fit in cap bytes. */
static bool
b64url_decode(uint8_t *out, size_t cap, size_t *len, const char *in, size_t in_len)
{
    return in_len > 0 && sodium_base642bin(out, cap, in, in_len, NULL, len, NULL,
                                           sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0;
}

/* The JWS header must name ES256 and nothing we would have to understand. */
static bool
header_ok(const uint8_t *h, size_t len)
{
    json_t *j = json_loadb((const char *)h, len, JSON_REJECT_DUPLICATES, NULL);
    const char *alg = json_string_value(json_object_get(j, "alg"));
    bool ok = json_is_object(j) && alg != NULL && strcmp(alg, "ES256") == 0 &&
              json_object_get(j, "crit") == NULL;
    json_decref(j);
    return ok;
}

/* Signature, header and claims of a token not in the cache. */
static lb_status
token_check(edge_claims *out, const edge_auth *a, const char *token, size_t len, int64_t now_s,
            lb_err *err)
{
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token signature or format invalid");
    size_t hlen = (size_t)(dot1 - token), plen = (size_t)(dot2 - dot1 - 1);
    size_t slen = len - (size_t)(dot2 + 1 - token);
    uint8_t sig[ES256_SIG_BYTES + 1], head[JWT_PART_MAX];
    size_t n = 0;
    /* The algorithm first: an HS256 or alg:none token never reaches a verifier. */
    if (!b64url_decode(head, sizeof head, &n, token, hlen) || !header_ok(head, n))
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token algorithm not accepted");
    if (!b64url_decode(sig, sizeof sig, &n, dot2 + 1, slen) || n != ES256_SIG_BYTES ||
        !es256_verify(a->key, sig, token, (size_t)(dot2 - token)))
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token signature or format invalid");
    uint8_t *payload = malloc(plen + 1);
    if (payload == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "token payload");
    json_t *g = NULL;
    if (b64url_decode(payload, plen + 1, &n, dot1 + 1, plen))
        g = json_loadb((const char *)payload, n, JSON_REJECT_DUPLICATES, NULL);
    free(payload);
    lb_status s = json_is_object(g)
                      ? claims_check(out, a, g, now_s, err)
                      : lb_err_set(err, LB_ERR_UNAUTHORIZED, "token payload unreadable");
    json_decref(g);
    return s;
}

lb_status
edge_auth_verify(edge_claims *out, edge_auth *a, const char *token, int64_t now_s, lb_err *err)
{
    size_t len = token ? strnlen(token, EDGE_TOKEN_MAX + 1) : 0;
    if (len == 0 || len > EDGE_TOKEN_MAX)
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "missing or oversized token");
    if (!cache_get(a, token, len, now_s, out)) {
        edge_claims c;
        lb_status s = token_check(&c, a, token, len, now_s, err);
        if (s != LB_OK)
            return s;
        cache_put(a, token, len, &c);
        *out = c;
    }
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
