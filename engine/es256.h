/* es256.h - ES256 (ECDSA P-256 + SHA-256) JSON Web Tokens with a key parsed
 * once: the member service signs access tokens with it, the edge verifies
 * them with it.
 *
 * libjwt 1.10 re-reads the PEM key and rebuilds the OpenSSL key on every sign
 * and every verify (~2,100 signs/s, ~2,300 verifies/s on this machine,
 * PLATFORM.md), ten times the cost of the curve itself. Here the PEM is parsed
 * into an EVP_PKEY once and each call is only the curve.
 *
 * The tokens are byte for byte the shape libjwt 1.10 writes (the member
 * service signed with it before, and clients may have stored tokens): header
 * {"alg":"ES256","typ":"JWT"}, claims with sorted keys and no spaces (jansson
 * JSON_SORT_KEYS | JSON_COMPACT), each part base64url without padding, and
 * the JOSE signature R || S (32 bytes each, RFC 7518 §3.4), not DER.
 *
 * Ownership: es256_key_new() returns a key freed by es256_key_free();
 *            es256_jwt_sign() returns a malloc'd token the caller frees.
 * Threads:   a key is read-only after es256_key_new(); sign and verify may run
 *            on many threads with one key (OpenSSL 3 allows it).
 */
#ifndef LAYBY_ENGINE_ES256_H
#define LAYBY_ENGINE_ES256_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb.h"

#define ES256_SIG_BYTES 64    /* JOSE: R || S */
#define ES256_PEM_MAX   16384 /* a P-256 key PEM is ~180-250 bytes */

typedef struct es256_key es256_key;

/* Which half of a key pair a PEM holds. */
typedef enum es256_kind {
    ES256_PUBLIC,  /* "PUBLIC KEY": verifies */
    ES256_PRIVATE, /* "EC PRIVATE KEY" (SEC1) or "PRIVATE KEY" (PKCS#8): signs and verifies */
} es256_kind;

/* Parses pem (pem_len bytes) as a P-256 key of the given kind; any other
 * curve or key type is LB_ERR_CONFIG. On error *out is unchanged. */
lb_status es256_key_new(es256_key **out, es256_kind kind, const char *pem, size_t pem_len,
                        lb_err *err);
void es256_key_free(es256_key *k); /* NULL is a no-op */

/* sig = the JOSE signature of input under a private key. */
lb_status es256_sign(uint8_t sig[ES256_SIG_BYTES], const es256_key *k, const char *input,
                     size_t len, lb_err *err);
/* True when sig is input's signature under k (either kind). */
bool es256_verify(const es256_key *k, const uint8_t sig[ES256_SIG_BYTES], const char *input,
                  size_t len);

/* *out = "<header>.<claims>.<signature>", claims a JSON object. */
lb_status es256_jwt_sign(char **out, const es256_key *k, const json_t *claims, lb_err *err);

#endif
