/* es256_test.c - ES256 tokens with a key parsed once (engine/es256.h): the
 * member service signs access tokens with it and the edge verifies them.
 * The token must keep the shape libjwt 1.10 wrote (clients hold such tokens,
 * and libjwt must still read ours), verify only under its own key pair, and
 * a key of the wrong kind or curve must fail at load, not at the first login. */
#include <criterion/criterion.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <string.h>

#include "edge_auth.h"
#include "es256.h"
#include "tsupport.h"

static char priv_pem[4096], pub_pem[1024], other_priv_pem[4096];
static es256_key *signer;

static void
setup(void)
{
    tsupport_es256_keys(priv_pem, sizeof priv_pem, pub_pem, sizeof pub_pem);
    tsupport_es256_keys(other_priv_pem, sizeof other_priv_pem, NULL, 0);
    lb_err err;
    cr_assert_eq(es256_key_new(&signer, ES256_PRIVATE, priv_pem, strlen(priv_pem), &err), LB_OK,
                 "%s", err.msg);
}

static void
teardown(void)
{
    es256_key_free(signer);
    signer = NULL;
}

TestSuite(es256, .init = setup, .fini = teardown);

static const char CLAIMS[] = "{\"sub\":\"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\",\"role\":\"USER\","
                             "\"jti\":\"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c\","
                             "\"sid\":\"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d\",\"iss\":\"layby\","
                             "\"iat\":%lld,\"exp\":%lld}";

static char *
sign_with(es256_key *k, int64_t now_s)
{
    char text[512];
    snprintf(text, sizeof text, CLAIMS, (long long)now_s, (long long)now_s + 900);
    json_t *claims = json_loads(text, 0, NULL);
    cr_assert_not_null(claims);
    char *tok = NULL;
    lb_err err;
    cr_assert_eq(es256_jwt_sign(&tok, k, claims, &err), LB_OK, "%s", err.msg);
    json_decref(claims);
    return tok;
}

/* "<header>.<claims>" of a token: what the signature covers. */
static size_t
signed_part(const char *tok)
{
    const char *last = strrchr(tok, '.');
    cr_assert_not_null(last);
    return (size_t)(last - tok);
}

Test(es256, a_token_has_the_shape_libjwt_writes_and_libjwt_reads_it)
{
    int64_t now = 1700000000;
    char *ours = sign_with(signer, now);
    char text[512];
    snprintf(text, sizeof text, CLAIMS, (long long)now, (long long)now + 900);
    jwt_t *j = NULL;
    cr_assert_eq(jwt_new(&j), 0);
    cr_assert_eq(jwt_add_grants_json(j, text), 0);
    cr_assert_eq(
        jwt_set_alg(j, JWT_ALG_ES256, (const unsigned char *)priv_pem, (int)strlen(priv_pem)), 0);
    char *theirs = jwt_encode_str(j);
    jwt_free(j);
    cr_assert_not_null(theirs);
    size_t n = signed_part(theirs);
    cr_assert_eq(signed_part(ours), n, "ours %s\ntheirs %s", ours, theirs);
    cr_assert(memcmp(ours, theirs, n) == 0, "ours %s\ntheirs %s", ours, theirs);
    /* ECDSA signatures are randomised: the signature parts differ, both verify. */
    jwt_t *d = NULL;
    cr_assert_eq(jwt_decode(&d, ours, (const unsigned char *)pub_pem, (int)strlen(pub_pem)), 0,
                 "libjwt refuses our token");
    cr_assert_eq(jwt_get_alg(d), JWT_ALG_ES256);
    cr_assert_str_eq(jwt_get_grant(d, "sub"), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    jwt_free(d);
    free(ours);
    free(theirs);
}

Test(es256, the_edge_accepts_a_token_of_its_key_and_refuses_one_of_another)
{
    es256_key *other = NULL;
    lb_err err;
    cr_assert_eq(es256_key_new(&other, ES256_PRIVATE, other_priv_pem, strlen(other_priv_pem), &err),
                 LB_OK);
    edge_auth *a = NULL;
    cr_assert_eq(edge_auth_new(&a, pub_pem, strlen(pub_pem), NULL, &err), LB_OK, "%s", err.msg);
    int64_t now = lb_now_ms() / 1000;
    char *good = sign_with(signer, now), *forged = sign_with(other, now);
    edge_claims c;
    cr_assert_eq(edge_auth_verify(&c, a, good, now, &err), LB_OK, "%s", err.msg);
    cr_assert_str_eq(c.sid, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d");
    cr_assert_eq(c.role, EDGE_ROLE_USER);
    cr_assert_eq(edge_auth_verify(&c, a, forged, now, &err), LB_ERR_UNAUTHORIZED,
                 "a token signed with another key passed");
    es256_key *pub = NULL;
    cr_assert_eq(es256_key_new(&pub, ES256_PUBLIC, pub_pem, strlen(pub_pem), &err), LB_OK);
    uint8_t sig[ES256_SIG_BYTES];
    cr_assert_eq(es256_sign(sig, signer, "abc", 3, &err), LB_OK);
    cr_assert(es256_verify(pub, sig, "abc", 3));
    cr_assert(es256_verify(signer, sig, "abc", 3), "a private key verifies too");
    cr_assert_not(es256_verify(pub, sig, "abd", 3), "another input");
    cr_assert_not(es256_verify(other, sig, "abc", 3), "another key");
    sig[5] ^= 1;
    cr_assert_not(es256_verify(pub, sig, "abc", 3), "a flipped bit");
    free(good);
    free(forged);
    edge_auth_free(a);
    es256_key_free(pub);
    es256_key_free(other);
}

static char *
pem_of_curve(const char *curve)
{
    EVP_PKEY *k = EVP_EC_gen(curve);
    cr_assert_not_null(k);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    char *out = strndup(p, (size_t)n);
    BIO_free(b);
    EVP_PKEY_free(k);
    return out;
}

Test(es256, a_key_of_the_wrong_kind_or_curve_fails_at_load)
{
    es256_key *k = NULL;
    lb_err err;
    char *p384 = pem_of_curve("P-384");
    cr_assert_eq(es256_key_new(&k, ES256_PRIVATE, p384, strlen(p384), &err), LB_ERR_CONFIG);
    cr_assert_null(k);
    free(p384);
    cr_assert_eq(es256_key_new(&k, ES256_PRIVATE, pub_pem, strlen(pub_pem), &err), LB_ERR_CONFIG,
                 "a public key cannot sign");
    cr_assert_eq(es256_key_new(&k, ES256_PUBLIC, "not a key", 9, &err), LB_ERR_CONFIG);
    cr_assert_eq(es256_key_new(&k, ES256_PUBLIC, "", 0, &err), LB_ERR_CONFIG);
    cr_assert_null(k);
    /* A public key loads for verifying but refuses to sign. */
    cr_assert_eq(es256_key_new(&k, ES256_PUBLIC, pub_pem, strlen(pub_pem), &err), LB_OK);
    uint8_t sig[ES256_SIG_BYTES];
    cr_assert_eq(es256_sign(sig, k, "abc", 3, &err), LB_ERR_CONFIG);
    es256_key_free(k);
}
