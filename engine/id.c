/* id.c - UUIDv7 (RFC 9562): 48-bit Unix ms, version 7, 12-bit counter-ish
 * sequence in rand_a, random rand_b. Within one process ids strictly increase:
 * when the clock stands still (or steps back) we bump the previous id instead. */
#include "id.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t id_last[16]; /* guarded by id_lock */

lb_status
id_init(lb_err *err)
{
    if (sodium_init() < 0)
        return lb_err_set(err, LB_ERR_CRYPTO, "sodium_init failed");
    return LB_OK;
}

static void
to_text(char out[ID_STR_LEN], const uint8_t b[16])
{
    snprintf(out, ID_STR_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

static void
make_v7(uint8_t b[16], int64_t ms)
{
    randombytes_buf(b + 6, 10);
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0f));
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
}

/* Adds one to the 74 non-version bits after the timestamp, carrying into it. */
static void
bump(uint8_t b[16])
{
    for (int i = 15; i >= 0; i--) {
        if (i == 8) { /* skip variant bits: 6 usable bits */
            if ((b[8] & 0x3f) != 0x3f) {
                b[8]++;
                return;
            }
            b[8] &= 0xc0;
            continue;
        }
        if (i == 6) { /* skip version nibble */
            if ((b[6] & 0x0f) != 0x0f) {
                b[6]++;
                return;
            }
            b[6] &= 0xf0;
            continue;
        }
        if (++b[i] != 0)
            return;
    }
}

void
id_new_at(char out[ID_STR_LEN], int64_t ms)
{
    uint8_t b[16];
    make_v7(b, ms);
    pthread_mutex_lock(&id_lock);
    if (memcmp(b, id_last, 16) <= 0) {
        memcpy(b, id_last, 16);
        bump(b);
    }
    memcpy(id_last, b, 16);
    pthread_mutex_unlock(&id_lock);
    to_text(out, b);
}

void
id_new(char out[ID_STR_LEN])
{
    id_new_at(out, lb_now_ms());
}

void
id_from_key(char out[ID_STR_LEN], const char *ns, const char *key)
{
    uint8_t h[16];
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, NULL, 0, sizeof h);
    crypto_generichash_update(&hs, (const unsigned char *)ns, strlen(ns));
    crypto_generichash_update(&hs, (const unsigned char *)"\0", 1);
    crypto_generichash_update(&hs, (const unsigned char *)key, strlen(key));
    crypto_generichash_final(&hs, h, sizeof h);
    h[6] = (uint8_t)(0x80 | (h[6] & 0x0f)); /* version 8: custom */
    h[8] = (uint8_t)(0x80 | (h[8] & 0x3f));
    to_text(out, h);
}

bool
id_valid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

int64_t
id_time_ms(const char *s)
{
    if (!id_valid(s) || s[14] != '7')
        return 0;
    int64_t ms = 0;
    for (int i = 0; i < 13; i++) {
        if (s[i] == '-')
            continue;
        char c = s[i];
        int v = (c <= '9') ? c - '0' : (c | 0x20) - 'a' + 10;
        ms = (ms << 4) | v;
    }
    return ms;
}
