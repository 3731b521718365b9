/* seal.h - personal data encrypted at rest (DESIGN §3): libsodium's
 * XChaCha20-Poly1305 AEAD under a 32-byte key from the environment.
 *
 * A sealed value is  key id (1 byte) | nonce (24) | ciphertext + tag (16).
 * The key id is the first byte of BLAKE2b(key), so a value names the key that
 * sealed it and a rotation can keep old keys for opening. The caller binds a
 * value to its row with `ad` (associated data such as "orders.address:<id>"),
 * so a sealed blob copied onto another row does not open.
 *
 * Keys come from LAYBY_<SVC>_DATA_KEY_FILE, else LAYBY_DATA_KEY_FILE (a file
 * holding 64 hex digits; the local stack writes var/secrets/data.key), else
 * LAYBY_DATA_KEY (the hex itself). Never from the repository.
 *
 * Rotation: a key file may hold up to SEAL_KEYS_MAX lines of 64 hex digits
 * ('#' comments and blank lines ignored). The first line seals, every line
 * opens. Put the new key first, keep the old one below it, re-seal the rows
 * (`layby-ctl member rekey` for members), then drop the old line.
 *
 * Ownership: seal_keys is caller memory; seal_keys_wipe() zeroes it.
 * Threads:   a loaded seal_keys is read-only and may be shared by threads.
 */
#ifndef LAYBY_ENGINE_SEAL_H
#define LAYBY_ENGINE_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "lb.h"

#define SEAL_KEY_BYTES 32
#define SEAL_OVERHEAD  (1 + 24 + 16) /* key id, nonce, tag */
#define SEAL_KEYS_MAX  4             /* the current key and up to 3 older ones */

typedef struct seal_keys {
    uint8_t key[SEAL_KEYS_MAX][SEAL_KEY_BYTES]; /* key[0] seals; all open */
    uint8_t id[SEAL_KEYS_MAX];
    size_t n;
} seal_keys;

/* Loads the key for service prefix svc ("ORDER") from the environment. A
 * missing or malformed key is LB_ERR_CONFIG naming the variable (never the key). */
lb_status seal_keys_load(seal_keys *k, const char *svc, lb_err *err);
/* Sets key[0] from 64 hex digits (tests, and the loader). */
lb_status seal_keys_from_hex(seal_keys *k, const char *hex, lb_err *err);
/* Sets the keys from key-file text: one key per line, the first seals. */
lb_status seal_keys_from_text(seal_keys *k, const char *text, lb_err *err);
/* The key id a sealed value names (its first byte), 0 when it is too short;
 * a value whose id differs from k->id[0] is due for re-sealing. */
unsigned seal_value_key_id(const uint8_t *sealed, size_t n);
void seal_keys_wipe(seal_keys *k);

/* Seals n bytes of plain into out (cap >= n + SEAL_OVERHEAD); *out_n gets the length. */
lb_status seal_encrypt(uint8_t *out, size_t cap, size_t *out_n, const seal_keys *k,
                       const uint8_t *plain, size_t n, const char *ad, lb_err *err);
/* Opens a sealed value into out (cap >= n - SEAL_OVERHEAD). A wrong key, ad or
 * a tampered value is LB_ERR_CRYPTO. */
lb_status seal_decrypt(uint8_t *out, size_t cap, size_t *out_n, const seal_keys *k,
                       const uint8_t *sealed, size_t n, const char *ad, lb_err *err);

#endif
