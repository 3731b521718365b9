/* edge_auth_test.c - bearer token checks: the pinned algorithm, our own claim
 * checks (libjwt 1.10 does neither) and the verified-token cache.
 *
 * Each test makes a fresh P-256 key pair with OpenSSL and mints its tokens
 * with libjwt, the way the member service will.
 */
#include <criterion/criterion.h>
#include <jwt.h>
#include <pthread.h>
#include <string.h>

#include "edge_auth.h"
#include "tsupport.h"

static char priv_pem[4096], pub_pem[1024], other_priv_pem[4096];
static edge_auth *auth;
static const int64_t NOW = 1700000000;

static void
setup(void)
{
    tsupport_es256_keys(priv_pem, sizeof priv_pem, pub_pem, sizeof pub_pem);
    tsupport_es256_keys(other_priv_pem, sizeof other_priv_pem, NULL, 0);
    lb_err err;
    cr_assert_eq(edge_auth_new(&auth, pub_pem, strlen(pub_pem), NULL, &err), LB_OK, "%s", err.msg);
}

static void
teardown(void)
{
    edge_auth_free(auth);
    auth = NULL;
}

typedef struct mint_opts {
    jwt_alg_t alg;
    const char *key; /* PEM or HMAC secret */
    const char *sub, *role, *iss;
    int64_t exp, nbf, iat; /* 0 = leave out */
} mint_opts;

static char *
mint(mint_opts o)
{
    jwt_t *j = NULL;
    cr_assert_eq(jwt_new(&j), 0);
    if (o.sub)
        jwt_add_grant(j, "sub", o.sub);
    if (o.role)
        jwt_add_grant(j, "role", o.role);
    if (o.iss)
        jwt_add_grant(j, "iss", o.iss);
    if (o.exp)
        jwt_add_grant_int(j, "exp", (long)o.exp);
    if (o.nbf)
        jwt_add_grant_int(j, "nbf", (long)o.nbf);
    if (o.iat)
        jwt_add_grant_int(j, "iat", (long)o.iat);
    cr_assert_eq(
        jwt_set_alg(j, o.alg, (const unsigned char *)o.key, o.key ? (int)strlen(o.key) : 0), 0);
    char *t = jwt_encode_str(j);
    cr_assert(t != NULL);
    jwt_free(j);
    return t;
}

static mint_opts
good(void)
{
    return (mint_opts){ .alg = JWT_ALG_ES256,
                        .key = priv_pem,
                        .sub = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                        .role = "ADMIN",
                        .iss = "layby",
                        .exp = NOW + 900,
                        .iat = NOW - 5 };
}

static lb_status
verify(const char *token, edge_claims *c)
{
    lb_err err;
    lb_err_clear(&err);
    lb_status s = edge_auth_verify(c, auth, token, NOW, &err);
    if (s != LB_OK)
        cr_assert_eq(err.code, LB_ERR_UNAUTHORIZED, "refusals are 401, got %s",
                     lb_status_name(err.code));
    return s;
}

static void
assert_refused(mint_opts o)
{
    char *t = mint(o);
    edge_claims c;
    cr_assert_eq(verify(t, &c), LB_ERR_UNAUTHORIZED, "token should be refused: %s", t);
    free(t);
}

TestSuite(edge_auth, .init = setup, .fini = teardown);

Test(edge_auth, valid_es256_token_passes_with_claims)
{
    char *t = mint(good());
    edge_claims c;
    cr_assert_eq(verify(t, &c), LB_OK);
    cr_assert_str_eq(c.sub, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    cr_assert_eq(c.role, EDGE_ROLE_ADMIN);
    cr_assert_eq(c.exp_s, NOW + 900);
    free(t);

    mint_opts u = good();
    u.role = "USER";
    t = mint(u);
    cr_assert_eq(verify(t, &c), LB_OK);
    cr_assert_eq(c.role, EDGE_ROLE_USER);
    cr_assert_str_eq(edge_role_name(c.role), "USER");
    free(t);
}

Test(edge_auth, expired_token_fails)
{
    mint_opts o = good();
    o.exp = NOW - 1;
    assert_refused(o);
    o.exp = NOW; /* exp is the first second the token is no longer valid */
    assert_refused(o);
}

Test(edge_auth, hs256_signed_with_public_key_fails)
{
    mint_opts o = good();
    o.alg = JWT_ALG_HS256;
    o.key = pub_pem;
    char *t = mint(o);
    /* The attack is real with libjwt alone: it accepts this token. */
    jwt_t *j = NULL;
    cr_assert_eq(jwt_decode(&j, t, (const unsigned char *)pub_pem, (int)strlen(pub_pem)), 0);
    cr_assert_eq(jwt_get_alg(j), JWT_ALG_HS256);
    jwt_free(j);
    edge_claims c;
    cr_assert_eq(verify(t, &c), LB_ERR_UNAUTHORIZED);
    free(t);
}

Test(edge_auth, alg_none_fails)
{
    mint_opts o = good();
    o.alg = JWT_ALG_NONE;
    o.key = NULL;
    assert_refused(o);
}

Test(edge_auth, tampered_signature_fails)
{
    char *t = mint(good());
    char *sig = strrchr(t, '.') + 1;
    size_t mid = strlen(sig) / 2;
    sig[mid] = sig[mid] == 'A' ? 'B' : 'A';
    edge_claims c;
    cr_assert_eq(verify(t, &c), LB_ERR_UNAUTHORIZED);
    free(t);
}

Test(edge_auth, payload_swapped_under_a_valid_signature_fails)
{
    /* Take a USER token's signature and put an ADMIN payload in front of it. */
    mint_opts u = good();
    u.role = "USER";
    char *user = mint(u);
    char *admin = mint(good());
    char forged[4096];
    const char *admin_sig = strrchr(admin, '.');
    const char *user_sig = strrchr(user, '.');
    snprintf(forged, sizeof forged, "%.*s%s", (int)(admin_sig - admin), admin, user_sig);
    edge_claims c;
    cr_assert_eq(verify(forged, &c), LB_ERR_UNAUTHORIZED);
    free(user);
    free(admin);
}

Test(edge_auth, token_of_another_key_fails)
{
    mint_opts o = good();
    o.key = other_priv_pem;
    assert_refused(o);
}

Test(edge_auth, claim_checks_fail_closed)
{
    mint_opts o;
    o = good(), o.exp = 0;
    assert_refused(o); /* no exp */
    o = good(), o.iss = "someone-else";
    assert_refused(o);
    o = good(), o.iss = NULL;
    assert_refused(o);
    o = good(), o.role = "SUPERUSER";
    assert_refused(o);
    o = good(), o.role = NULL;
    assert_refused(o);
    o = good(), o.sub = NULL;
    assert_refused(o);
    o = good(), o.sub = "two words";
    assert_refused(o);
    o = good(), o.nbf = NOW + 3600;
    assert_refused(o);
    o = good(), o.iat = NOW + 3600;
    assert_refused(o);
}

Test(edge_auth, garbage_and_oversized_tokens_fail)
{
    edge_claims c;
    cr_assert_eq(verify("", &c), LB_ERR_UNAUTHORIZED);
    cr_assert_eq(verify("not.a.jwt", &c), LB_ERR_UNAUTHORIZED);
    cr_assert_eq(verify("abc", &c), LB_ERR_UNAUTHORIZED);
    char big[EDGE_TOKEN_MAX + 10];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(verify(big, &c), LB_ERR_UNAUTHORIZED);
}

Test(edge_auth, cache_hit_returns_same_claims)
{
    char *t = mint(good());
    edge_claims a, b;
    uint64_t hits, misses;
    cr_assert_eq(verify(t, &a), LB_OK);
    edge_auth_stats(auth, &hits, &misses);
    cr_assert_eq(hits, 0);
    cr_assert_eq(misses, 1);
    cr_assert_eq(verify(t, &b), LB_OK);
    edge_auth_stats(auth, &hits, &misses);
    cr_assert_eq(hits, 1, "second check should come from the cache");
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
    free(t);
}

Test(edge_auth, cached_token_still_expires)
{
    char *t = mint(good());
    edge_claims c;
    lb_err err;
    cr_assert_eq(edge_auth_verify(&c, auth, t, NOW, &err), LB_OK);
    cr_assert_eq(edge_auth_verify(&c, auth, t, NOW + 899, &err), LB_OK);
    cr_assert_eq(edge_auth_verify(&c, auth, t, NOW + 900, &err), LB_ERR_UNAUTHORIZED);
    free(t);
}

Test(edge_auth, refused_tokens_are_not_cached)
{
    mint_opts o = good();
    o.alg = JWT_ALG_HS256;
    o.key = pub_pem;
    char *t = mint(o);
    edge_claims c;
    cr_assert_eq(verify(t, &c), LB_ERR_UNAUTHORIZED);
    cr_assert_eq(verify(t, &c), LB_ERR_UNAUTHORIZED);
    uint64_t hits;
    edge_auth_stats(auth, &hits, NULL);
    cr_assert_eq(hits, 0);
    free(t);
}

Test(edge_auth, tiny_cache_evicts_but_stays_correct)
{
    edge_auth_free(auth);
    edge_auth_opts ao = EDGE_AUTH_OPTS_INIT;
    ao.cache_cap = 2;
    lb_err err;
    cr_assert_eq(edge_auth_new(&auth, pub_pem, strlen(pub_pem), &ao, &err), LB_OK);
    char *tok[6];
    for (int i = 0; i < 6; i++) {
        mint_opts o = good();
        char sub[32];
        snprintf(sub, sizeof sub, "member-%d", i);
        o.sub = sub;
        tok[i] = mint(o);
    }
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 6; i++) {
            edge_claims c;
            char want[32];
            snprintf(want, sizeof want, "member-%d", i);
            cr_assert_eq(verify(tok[i], &c), LB_OK);
            cr_assert_str_eq(c.sub, want);
        }
    for (int i = 0; i < 6; i++)
        free(tok[i]);
}

Test(edge_auth, key_that_is_not_a_public_key_is_refused)
{
    edge_auth *a = NULL;
    lb_err err;
    cr_assert_eq(edge_auth_new(&a, priv_pem, strlen(priv_pem), NULL, &err), LB_ERR_CONFIG);
    cr_assert_null(a);
    cr_assert_eq(edge_auth_load(&a, "/nonexistent/key.pem", NULL, &err), LB_ERR_CONFIG);
    cr_assert_null(a);
}

typedef struct worker_arg {
    char *token;
    int ok;
} worker_arg;

static void *
worker(void *p)
{
    worker_arg *w = p;
    for (int i = 0; i < 200; i++) {
        edge_claims c;
        if (edge_auth_verify(&c, auth, w->token, NOW, NULL) == LB_OK &&
            strcmp(c.sub, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") == 0)
            w->ok++;
    }
    return NULL;
}

Test(edge_auth, concurrent_checks_agree)
{
    char *t = mint(good());
    pthread_t th[8];
    worker_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (worker_arg){ .token = t };
        cr_assert_eq(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].ok, 200);
    }
    uint64_t hits, misses;
    edge_auth_stats(auth, &hits, &misses);
    cr_assert_eq(hits + misses, 1600);
    cr_assert_geq(hits, 1600 - 8, "at most one verification per thread before the cache fills");
    free(t);
}
