/* id_test.c - UUIDv7: text form, version and variant bits, strict ordering
 * within one process (also inside one millisecond and when the clock steps
 * back), the embedded time, and keyed ids. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/id.h"

static void
setup(void)
{
    cr_assert_eq(id_init(NULL), LB_OK);
}

TestSuite(id, .init = setup);

Test(id, new_ids_are_canonical_version_7_with_the_rfc_variant)
{
    char s[ID_STR_LEN];
    id_new(s);
    cr_assert_eq(strlen(s), 36);
    cr_assert(id_valid(s));
    cr_assert_eq(s[14], '7', "version nibble of %s", s);
    cr_assert(strchr("89ab", s[19]) != NULL, "variant of %s", s);
}

Test(id, ten_thousand_ids_in_a_burst_strictly_increase)
{
    char prev[ID_STR_LEN], cur[ID_STR_LEN];
    id_new(prev);
    for (int i = 0; i < 10000; i++) {
        id_new(cur);
        cr_assert_gt(strcmp(cur, prev), 0, "%s after %s", cur, prev);
        memcpy(prev, cur, sizeof cur);
    }
}

Test(id, ids_keep_increasing_when_the_clock_steps_back)
{
    char a[ID_STR_LEN], b[ID_STR_LEN];
    id_new_at(a, 1700000000000LL);
    id_new_at(b, 1600000000000LL); /* an NTP step backwards */
    cr_assert_gt(strcmp(b, a), 0);
}

Test(id, the_time_inside_an_id_is_the_time_it_was_made_at)
{
    char s[ID_STR_LEN];
    int64_t ms = 1764000000123LL;
    id_new_at(s, ms + 3600000); /* later than any id made so far in this process */
    cr_assert_eq(id_time_ms(s), ms + 3600000);
    cr_assert_eq(id_time_ms("not an id"), 0);
}

Test(id, keyed_ids_are_stable_and_differ_by_namespace_and_key)
{
    char a[ID_STR_LEN], b[ID_STR_LEN], c[ID_STR_LEN], d[ID_STR_LEN];
    id_from_key(a, "product", "admin-1:k1");
    id_from_key(b, "product", "admin-1:k1");
    id_from_key(c, "product", "admin-1:k2");
    id_from_key(d, "order", "admin-1:k1");
    cr_assert_str_eq(a, b);
    cr_assert_str_neq(a, c);
    cr_assert_str_neq(a, d);
    cr_assert(id_valid(a));
    cr_assert_eq(a[14], '8', "keyed ids are version 8: %s", a);
}

Test(id, validation_refuses_malformed_text)
{
    static const char *const bad[] = {
        "",
        "0193b1e8-0000-7000-8000-00000000000",   /* short */
        "0193b1e8-0000-7000-8000-0000000000000", /* long */
        "0193b1e8x0000-7000-8000-000000000000",  /* separator */
        "0193b1e8-0000-7000-8000-00000000000g",  /* not hex */
    };
    for (size_t i = 0; i < LB_COUNTOF(bad); i++)
        cr_assert_not(id_valid(bad[i]), "%s", bad[i]);
    cr_assert_not(id_valid(NULL));
    cr_assert(id_valid("0193B1E8-0000-7000-8000-000000000000"), "upper case hex is valid");
}
