/* seal_test.c - personal data sealing: round trip, binding to its row, tampering, keys. */
#include <criterion/criterion.h>
#include <stdio.h>
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

Test(seal, rotation_opens_old_values_and_seals_with_the_first_key)
{
    seal_keys old, both, fresh;
    lb_err err;
    cr_assert_eq(seal_keys_from_text(&old, HEX_A, &err), LB_OK, "%s", err.msg);
    uint8_t s1[64], s2[64], back[64];
    size_t n1 = 0, n2 = 0, m = 0;
    cr_assert_eq(seal_encrypt(s1, sizeof s1, &n1, &old, (const uint8_t *)"bob", 3, "ad", &err),
                 LB_OK);
    char text[300];
    snprintf(text, sizeof text, "# new key first\n%s\n\n%s  # retiring\n", HEX_B, HEX_A);
    cr_assert_eq(seal_keys_from_text(&both, text, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(both.n, 2);
    cr_assert_eq(seal_decrypt(back, sizeof back, &m, &both, s1, n1, "ad", &err), LB_OK);
    cr_assert_eq(seal_encrypt(s2, sizeof s2, &n2, &both, (const uint8_t *)"bob", 3, "ad", &err),
                 LB_OK);
    cr_assert_eq(seal_value_key_id(s2, n2), both.id[0]);
    cr_assert_neq(seal_value_key_id(s1, n1), both.id[0], "the old value is not due for re-sealing");
    /* the old key retired: only re-sealed values open */
    cr_assert_eq(seal_keys_from_text(&fresh, HEX_B, &err), LB_OK);
    cr_assert_eq(seal_decrypt(back, sizeof back, &m, &fresh, s1, n1, "ad", &err), LB_ERR_CRYPTO);
    cr_assert_eq(seal_decrypt(back, sizeof back, &m, &fresh, s2, n2, "ad", &err), LB_OK);
    cr_assert_eq(seal_keys_from_text(&fresh, "", &err), LB_ERR_CONFIG);
    cr_assert_eq(seal_keys_from_text(&fresh, "abcd\n", &err), LB_ERR_CONFIG);
}
