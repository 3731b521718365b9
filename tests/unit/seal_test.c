/* seal_test.c - personal data sealing: round trip, binding to its row, tampering, keys. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "engine/seal.h"

static const char *HEX_A = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char *HEX_B = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

Test(seal, round_trip_hides_the_plain_text)
{
    seal_keys k;
    lb_err err;
    cr_assert_eq(seal_keys_from_hex(&k, HEX_A, &err), LB_OK, "%s", err.msg);
    const char *plain = "Seoul, 12 Teheran-ro";
    uint8_t sealed[128], back[128];
    size_t n = 0, m = 0;
    cr_assert_eq(seal_encrypt(sealed, sizeof sealed, &n, &k, (const uint8_t *)plain, strlen(plain),
                              "orders.address:1", &err),
                 LB_OK);
    cr_assert_eq(n, strlen(plain) + SEAL_OVERHEAD);
    for (size_t i = 0; i + 7 <= n; i++)
        cr_assert_neq(memcmp(sealed + i, "Teheran", 7), 0,
                      "plain text visible in the sealed value");
    cr_assert_eq(seal_decrypt(back, sizeof back, &m, &k, sealed, n, "orders.address:1", &err),
                 LB_OK, "%s", err.msg);
    cr_assert_eq(m, strlen(plain));
    cr_assert_eq(memcmp(back, plain, m), 0);
}

Test(seal, other_row_other_key_or_tampering_does_not_open)
{
    seal_keys a, b;
    lb_err err;
    cr_assert_eq(seal_keys_from_hex(&a, HEX_A, &err), LB_OK);
    cr_assert_eq(seal_keys_from_hex(&b, HEX_B, &err), LB_OK);
    uint8_t sealed[128], back[128];
    size_t n = 0, m = 0;
    cr_assert_eq(
        seal_encrypt(sealed, sizeof sealed, &n, &a, (const uint8_t *)"x", 1, "row:1", &err), LB_OK);
    cr_assert_eq(seal_decrypt(back, sizeof back, &m, &a, sealed, n, "row:2", &err), LB_ERR_CRYPTO);
    cr_assert_eq(seal_decrypt(back, sizeof back, &m, &b, sealed, n, "row:1", &err), LB_ERR_CRYPTO);
    sealed[n - 1] ^= 1;
    cr_assert_eq(seal_decrypt(back, sizeof back, &m, &a, sealed, n, "row:1", &err), LB_ERR_CRYPTO);
    cr_assert_eq(seal_decrypt(back, sizeof back, &m, &a, sealed, 3, "row:1", &err), LB_ERR_CRYPTO);
}

Test(seal, bad_keys_are_config_errors)
{
    seal_keys k;
    lb_err err;
    cr_assert_eq(seal_keys_from_hex(&k, "abcd", &err), LB_ERR_CONFIG);
    cr_assert_eq(seal_keys_from_hex(
                     &k, "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", &err),
                 LB_ERR_CONFIG);
    unsetenv("LAYBY_SEALTEST_DATA_KEY_FILE");
    unsetenv("LAYBY_DATA_KEY_FILE");
    unsetenv("LAYBY_DATA_KEY");
    cr_assert_eq(seal_keys_load(&k, "SEALTEST", &err), LB_ERR_CONFIG);
    cr_assert_null(strstr(err.msg, HEX_A));
    setenv("LAYBY_DATA_KEY", HEX_A, 1);
    cr_assert_eq(seal_keys_load(&k, "SEALTEST", &err), LB_OK, "%s", err.msg);
    unsetenv("LAYBY_DATA_KEY");
}
