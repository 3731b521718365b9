/* es256.c - ES256 signatures and tokens with a preloaded OpenSSL key.
 *
 * OpenSSL speaks DER ECDSA signatures (SEQUENCE { r, s }); JOSE wants the two
 * 32-byte integers side by side, left-padded with zeros. der_of() and
 * jose_of() convert between them.
 *
 * Invariants:
 * (1) es256_key.pkey is a P-256 EC key; of kind ES256_PRIVATE only if it
 *     holds the private half. Neither changes after es256_key_new().
 */
#include "es256.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define COORD_BYTES    (ES256_SIG_BYTES / 2)
/* {"alg":"ES256","typ":"JWT"}, as libjwt 1.10 writes it, in base64url */
#define JWT_HEADER_B64 "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9"

struct es256_key {
    EVP_PKEY *pkey;
    es256_kind kind;
};

static bool
is_p256(EVP_PKEY *k)
{
    char group[32];
    size_t glen = 0;
    return EVP_PKEY_get_base_id(k) == EVP_PKEY_EC &&
           EVP_PKEY_get_group_name(k, group, sizeof group, &glen) == 1 &&
           strcmp(group, "prime256v1") == 0;
}

lb_status
es256_key_new(es256_key **out, es256_kind kind, const char *pem, size_t pem_len, lb_err *err)
{
    if (pem == NULL || pem_len == 0 || pem_len > ES256_PEM_MAX)
        return lb_err_set(err, LB_ERR_CONFIG, "ES256 key: empty or over %d bytes", ES256_PEM_MAX);
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    EVP_PKEY *p = NULL;
    if (bio != NULL)
        p = kind == ES256_PRIVATE ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
                                  : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    if (p == NULL || !is_p256(p)) {
        EVP_PKEY_free(p);
        return lb_err_set(err, LB_ERR_CONFIG, "ES256 key: not a P-256 %s key in PEM",
                          kind == ES256_PRIVATE ? "private" : "public");
    }
    es256_key *k = malloc(sizeof *k);
    if (k == NULL) {
        EVP_PKEY_free(p);
        return lb_err_set(err, LB_ERR_NOMEM, "ES256 key");
    }
    k->pkey = p;
    k->kind = kind;
    *out = k;
    return LB_OK;
}

void
es256_key_free(es256_key *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

/* DER of the JOSE signature sig; *der is OPENSSL_malloc'd. <= 0 on failure. */
static int
der_of(unsigned char **der, const uint8_t sig[ES256_SIG_BYTES])
{
    int len = -1;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, COORD_BYTES, NULL);
    BIGNUM *s = BN_bin2bn(sig + COORD_BYTES, COORD_BYTES, NULL);
    if (es != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        len = i2d_ECDSA_SIG(es, der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return len;
}

/* The JOSE form of a DER signature. */
static bool
jose_of(uint8_t sig[ES256_SIG_BYTES], const unsigned char *der, size_t der_len)
{
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (es == NULL)
        return false;
    const BIGNUM *r = ECDSA_SIG_get0_r(es), *s = ECDSA_SIG_get0_s(es);
    bool ok = BN_bn2binpad(r, sig, COORD_BYTES) == COORD_BYTES &&
              BN_bn2binpad(s, sig + COORD_BYTES, COORD_BYTES) == COORD_BYTES;
    ECDSA_SIG_free(es);
    return ok;
}

lb_status
es256_sign(uint8_t sig[ES256_SIG_BYTES], const es256_key *k, const char *input, size_t len,
           lb_err *err)
{
    if (k->kind != ES256_PRIVATE)
        return lb_err_set(err, LB_ERR_CONFIG, "ES256: signing needs the private key");
    unsigned char der[80]; /* a P-256 DER signature is at most 72 bytes */
    size_t der_len = sizeof der;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
              EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)input, len) == 1 &&
              jose_of(sig, der, der_len);
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        ERR_clear_error();
        return lb_err_set(err, LB_ERR_CRYPTO, "ES256 sign");
    }
    return LB_OK;
}

bool
es256_verify(const es256_key *k, const uint8_t sig[ES256_SIG_BYTES], const char *input, size_t len)
{
    unsigned char *der = NULL;
    int der_len = der_of(&der, sig);
    bool ok = false;
    EVP_MD_CTX *ctx = der_len > 0 ? EVP_MD_CTX_new() : NULL;
    if (ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1)
        ok = EVP_DigestVerify(ctx, der, (size_t)der_len, (const unsigned char *)input, len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        ERR_clear_error(); /* a bad signature leaves its reasons on this thread's queue */
    OPENSSL_free(der);
    return ok;
}

lb_status
es256_jwt_sign(char **out, const es256_key *k, const json_t *claims, lb_err *err)
{
    char *body = json_is_object(claims) ? json_dumps(claims, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    if (body == NULL)
        return lb_err_set(err, LB_ERR_INTERNAL, "ES256 token: claims are no JSON object");
    size_t blen = strlen(body), hlen = sizeof JWT_HEADER_B64 - 1;
    size_t b64 = sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t s64 =
        sodium_base64_ENCODED_LEN(ES256_SIG_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *t = malloc(hlen + 1 + b64 + 1 + s64);
    if (t == NULL) {
        free(body);
        return lb_err_set(err, LB_ERR_NOMEM, "ES256 token");
    }
    memcpy(t, JWT_HEADER_B64 ".", hlen + 1);
    sodium_bin2base64(t + hlen + 1, b64, (const unsigned char *)body, blen,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    free(body);
    size_t signed_len = strlen(t);
    uint8_t sig[ES256_SIG_BYTES];
    lb_status st = es256_sign(sig, k, t, signed_len, err);
    if (st != LB_OK) {
        free(t);
        return st;
    }
    t[signed_len] = '.';
    sodium_bin2base64(t + signed_len + 1, s64, sig, sizeof sig,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    *out = t;
    return LB_OK;
}
