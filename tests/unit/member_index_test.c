/* member_index_test.c - the blind index of issue 18 (member_index() and
 * member_hash(), services/member/member_handlers.c): keyed BLAKE2b of the
 * case-folded value, so uniqueness and look-ups work without the plain text,
 * and nobody without the index key can test a guess. */
#include <criterion/criterion.h>
#include <string.h>

#include "member.h"

static member_ctx ctx;

static void
setup(void)
{
    cr_assert_geq(sodium_init(), 0);
    memset(&ctx, 0, sizeof ctx);
    for (size_t i = 0; i < sizeof ctx.index_key; i++)
        ctx.index_key[i] = (uint8_t)(i * 7 + 1);
    member_app = &ctx;
}

static void
teardown(void)
{
    member_app = NULL;
}

TestSuite(member_index, .init = setup, .fini = teardown);

static void
idx(uint8_t out[MEMBER_HASH_BYTES], const char *kind, const char *value)
{
    lb_err err;
    cr_assert_eq(member_index(out, kind, value, &err), LB_OK, "%s", err.msg);
}

Test(member_index, same_name_in_any_case_is_one_index)
{
    uint8_t a[MEMBER_HASH_BYTES], b[MEMBER_HASH_BYTES], c[MEMBER_HASH_BYTES];
    idx(a, "username", "Bob.Smith");
    idx(b, "username", "bob.smith");
    idx(c, "username", "BOB.SMITH");
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "case must not matter");
    cr_assert_eq(memcmp(a, c, sizeof a), 0);
    idx(b, "username", "bob.smiths");
    cr_assert_neq(memcmp(a, b, sizeof a), 0, "another name, another index");
}

Test(member_index, kinds_are_separate)
{
    /* the same text as a username and as an email: two indexes, so one
     * column's index says nothing about another's */
    uint8_t u[MEMBER_HASH_BYTES], e[MEMBER_HASH_BYTES];
    idx(u, "username", "alice@example.com");
    idx(e, "email", "alice@example.com");
    cr_assert_neq(memcmp(u, e, sizeof u), 0);
}

Test(member_index, depends_on_the_key_and_hides_the_value)
{
    uint8_t a[MEMBER_HASH_BYTES], b[MEMBER_HASH_BYTES], plain[MEMBER_HASH_BYTES];
    idx(a, "username", "carol");
    /* an unkeyed BLAKE2b of the same input (what a thief without the key
     * could compute) differs */
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, NULL, 0, sizeof plain);
    crypto_generichash_update(&hs, (const uint8_t *)"username", strlen("username") + 1);
    crypto_generichash_update(&hs, (const uint8_t *)"carol", 5);
    crypto_generichash_final(&hs, plain, sizeof plain);
    cr_assert_neq(memcmp(a, plain, sizeof a), 0, "the index must be keyed");
    ctx.index_key[0] ^= 1;
    idx(b, "username", "carol");
    cr_assert_neq(memcmp(a, b, sizeof a), 0, "another key, another index");
    ctx.index_key[0] ^= 1;
    idx(b, "username", "carol");
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "the same key gives the same index");
    char hex[2 * MEMBER_HASH_BYTES + 1];
    member_hex(hex, a, sizeof a);
    cr_assert_null(strstr(hex, "carol"));
    cr_assert_eq(strlen(hex), 2 * MEMBER_HASH_BYTES);
}
