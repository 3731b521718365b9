/* fuzz_common.c - helpers shared by the fuzz targets (fuzz.h): failing with
 * a message, and a process-wide ES256 key that signs tokens, so the JWT and
 * edge targets can reach past the signature check into the claims and the
 * routes (a fuzzer cannot forge a signature, nor should it have to).
 */
#include "fuzz.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIG_HALF 32 /* P-256: R and S are 32 bytes each */

static EVP_PKEY *key;
static char pub_pem[1024];

void
fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz invariant broken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

char *
fuzz_strndup(const uint8_t *data, size_t len)
{
    char *s = malloc(len + 1);
    if (s == NULL)
        fuzz_fail("out of memory");
    if (len > 0)
        memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

static void
key_make(void)
{
    if (key != NULL)
        return;
    key = EVP_EC_gen("P-256");
    BIO *bio = BIO_new(BIO_s_mem());
    if (key == NULL || bio == NULL || PEM_write_bio_PUBKEY(bio, key) != 1)
        fuzz_fail("cannot make an ES256 key");
    int n = BIO_read(bio, pub_pem, (int)sizeof pub_pem - 1);
    if (n <= 0)
        fuzz_fail("cannot write the public key");
    pub_pem[n] = '\0';
    BIO_free(bio);
}

const char *
fuzz_es256_public_pem(void)
{
    key_make();
    return pub_pem;
}

/* Appends base64url(bin) at out + *used; -1 when it does not fit. */
static int
b64_append(char *out, size_t n, size_t *used, const void *bin, size_t len)
{
    size_t need = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (*used + need > n)
        return -1;
    sodium_bin2base64(out + *used, need, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    *used += strlen(out + *used);
    return 0;
}

int
fuzz_es256_sign(char *out, size_t n, const char *header, size_t header_len, const char *payload,
                size_t payload_len)
{
    key_make();
    size_t used = 0;
    if (b64_append(out, n, &used, header, header_len) != 0 || used + 2 > n)
        return -1;
    out[used++] = '.';
    if (b64_append(out, n, &used, payload, payload_len) != 0)
        return -1;
    size_t signed_len = used;

    unsigned char der[128];
    size_t der_len = sizeof der;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)out, signed_len) != 1)
        fuzz_fail("ES256 sign");
    EVP_MD_CTX_free(ctx);
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    unsigned char rs[2 * SIG_HALF];
    if (es == NULL || BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, SIG_HALF) != SIG_HALF ||
        BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + SIG_HALF, SIG_HALF) != SIG_HALF)
        fuzz_fail("ES256 signature shape");
    ECDSA_SIG_free(es);
    if (used + 2 > n)
        return -1;
    out[used++] = '.';
    return b64_append(out, n, &used, rs, sizeof rs);
}
