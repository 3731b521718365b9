/* seal.c - AEAD for personal data at rest (see seal.h for the format). */
#include "seal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static uint8_t
key_id(const uint8_t key[SEAL_KEY_BYTES])
{
    uint8_t h[16];
    crypto_generichash(h, sizeof h, key, SEAL_KEY_BYTES, NULL, 0);
    return h[0];
}

lb_status
seal_keys_from_hex(seal_keys *k, const char *hex, lb_err *err)
{
    uint8_t key[SEAL_KEY_BYTES];
    size_t len = 0;
    const char *end = NULL;
    if (sodium_init() < 0)
        return lb_err_set(err, LB_ERR_CRYPTO, "libsodium init");
    if (sodium_hex2bin(key, sizeof key, hex, strlen(hex), " \n\r\t", &len, &end) != 0 ||
        len != SEAL_KEY_BYTES || (end != NULL && *end != '\0')) {
        sodium_memzero(key, sizeof key);
        return lb_err_set(err, LB_ERR_CONFIG, "data key must be %d hex digits", SEAL_KEY_BYTES * 2);
    }
    memset(k, 0, sizeof *k);
    memcpy(k->key[0], key, sizeof key);
    k->id[0] = key_id(key);
    k->n = 1;
    sodium_memzero(key, sizeof key);
    return LB_OK;
}

lb_status
seal_keys_from_text(seal_keys *k, const char *text, lb_err *err)
{
    seal_keys tmp;
    memset(&tmp, 0, sizeof tmp);
    const char *p = text;
    lb_status st = LB_OK;
    while (*p != '\0' && st == LB_OK) {
        size_t len = strcspn(p, "\n");
        const char *hash = memchr(p, '#', len);
        size_t use = hash ? (size_t)(hash - p) : len;
        char line[128];
        size_t o = 0;
        for (size_t i = 0; i < use && o + 1 < sizeof line; i++)
            if (!isspace((unsigned char)p[i]))
                line[o++] = p[i];
        line[o] = '\0';
        if (o > 0) {
            seal_keys one;
            if (tmp.n == SEAL_KEYS_MAX)
                st = lb_err_set(err, LB_ERR_CONFIG, "more than %d data keys", SEAL_KEYS_MAX);
            else if ((st = seal_keys_from_hex(&one, line, err)) == LB_OK) {
                memcpy(tmp.key[tmp.n], one.key[0], SEAL_KEY_BYTES);
                tmp.id[tmp.n++] = one.id[0];
            }
            seal_keys_wipe(&one);
        }
        sodium_memzero(line, sizeof line);
        p += len + (p[len] == '\n' ? 1 : 0);
    }
    if (st == LB_OK && tmp.n == 0)
        st = lb_err_set(err, LB_ERR_CONFIG, "no data key");
    if (st == LB_OK)
        *k = tmp;
    seal_keys_wipe(&tmp);
    return st;
}

unsigned
seal_value_key_id(const uint8_t *sealed, size_t n)
{
    return n >= SEAL_OVERHEAD ? sealed[0] : 0;
}

/* Reads path (at most cap - 1 bytes) into buf. */
static lb_status
read_key_file(char *buf, size_t cap, const char *var, const char *path, lb_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "%s: cannot open the key file", var);
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return LB_OK;
}

lb_status
seal_keys_load(seal_keys *k, const char *svc, lb_err *err)
{
    char var[96], buf[1024];
    lb_status st;
    snprintf(var, sizeof var, "LAYBY_%s_DATA_KEY_FILE", svc);
    const char *path = getenv(var);
    if (path == NULL || *path == '\0') {
        snprintf(var, sizeof var, "LAYBY_DATA_KEY_FILE");
        path = getenv(var);
    }
    if (path != NULL && *path != '\0') {
        if ((st = read_key_file(buf, sizeof buf, var, path, err)) != LB_OK)
            return st;
    } else {
        snprintf(var, sizeof var, "LAYBY_DATA_KEY");
        const char *hex = getenv(var);
        if (hex == NULL || *hex == '\0')
            return lb_err_set(err, LB_ERR_CONFIG,
                              "no data key: set LAYBY_%s_DATA_KEY_FILE, LAYBY_DATA_KEY_FILE "
                              "or LAYBY_DATA_KEY",
                              svc);
        snprintf(buf, sizeof buf, "%s", hex);
    }
    st = seal_keys_from_text(k, buf, err);
    sodium_memzero(buf, sizeof buf);
    if (st != LB_OK)
        return lb_err_set(err, LB_ERR_CONFIG, "%s: one to %d keys of %d hex digits, one a line",
                          var, SEAL_KEYS_MAX, SEAL_KEY_BYTES * 2);
    return LB_OK;
}

void
seal_keys_wipe(seal_keys *k)
{
    sodium_memzero(k, sizeof *k);
}

lb_status
seal_encrypt(uint8_t *out, size_t cap, size_t *out_n, const seal_keys *k, const uint8_t *plain,
             size_t n, const char *ad, lb_err *err)
{
    if (k->n == 0)
        return lb_err_set(err, LB_ERR_CRYPTO, "no data key loaded");
    if (cap < n + SEAL_OVERHEAD)
        return lb_err_set(err, LB_ERR_INTERNAL, "seal buffer too small");
    uint8_t *nonce = out + 1;
    out[0] = k->id[0];
    randombytes_buf(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        out + 1 + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen, plain, n,
        (const uint8_t *)ad, strlen(ad), NULL, nonce, k->key[0]);
    *out_n = 1 + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + (size_t)clen;
    return LB_OK;
}

lb_status
seal_decrypt(uint8_t *out, size_t cap, size_t *out_n, const seal_keys *k, const uint8_t *sealed,
             size_t n, const char *ad, lb_err *err)
{
    if (n < SEAL_OVERHEAD || cap < n - SEAL_OVERHEAD)
        return lb_err_set(err, LB_ERR_CRYPTO, "sealed value has a bad length");
    for (size_t i = 0; i < k->n; i++) {
        if (k->id[i] != sealed[0])
            continue;
        unsigned long long plen = 0;
        const uint8_t *nonce = sealed + 1;
        const uint8_t *c = nonce + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
        size_t clen = n - 1 - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plen, NULL, c, clen,
                                                       (const uint8_t *)ad, strlen(ad), nonce,
                                                       k->key[i]) == 0) {
            *out_n = (size_t)plen;
            return LB_OK;
        }
    }
    return lb_err_set(err, LB_ERR_CRYPTO, "sealed value does not open (key or data changed)");
}
