/* member_validate_test.c - the sign-up rules of issue 18
 * (services/member/member_validate.c): each refusal names its field. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "member.h"

/* Arrays, not pointers: Criterion hands each case to a fresh process, where
 * the parent's pointers mean nothing. */
typedef struct vcase {
    char username[40], password[40], email[40], phone[24];
    char field[16]; /* "" = accepted */
} vcase;

/* clang-format off */
static vcase cases[] = {
    { "alice",     "correct horse", "alice@example.com",   "010-1234-5678",   "" },
    { "Al.i_ce-9", "correct horse", "a.b+c@mail.example.co.kr", "+82 10 1234 5678", "" },
    { "al",        "correct horse", "alice@example.com",   "010-1234-5678",   "username" },
    { "abcdefghijabcdefghijabcdefghijabc", "correct horse", "a@example.com", "0101234567", "username" },
    { "ali ce",    "correct horse", "alice@example.com",   "010-1234-5678",   "username" },
    { "alice!",    "correct horse", "alice@example.com",   "010-1234-5678",   "username" },
    { "alice",     "short",         "alice@example.com",   "010-1234-5678",   "password" },
    { "alice",     "my ALICE pass", "alice@example.com",   "010-1234-5678",   "password" },
    { "alice",     "correct horse", "alice.example.com",   "010-1234-5678",   "email" },
    { "alice",     "correct horse", "alice@example",       "010-1234-5678",   "email" },
    { "alice",     "correct horse", "al..ice@example.com", "010-1234-5678",   "email" },
    { "alice",     "correct horse", "alice@-example.com",  "010-1234-5678",   "email" },
    { "alice",     "correct horse", "a@b@example.com",     "010-1234-5678",   "email" },
    { "alice",     "correct horse", "alice@example.com",   "010-12a4-5678",   "phone" },
    { "alice",     "correct horse", "alice@example.com",   "12345",           "phone" },
    { "alice",     "correct horse", "alice@example.com",   "010--1234-5678",  "phone" },
    { "alice",     "correct horse", "alice@example.com",   "01+0-1234-5678",  "phone" },
    { "alice",     "correct horse", "alice@example.com",   "1234567890123456", "phone" },
};
/* clang-format on */

ParameterizedTestParameters(member, signup_rules)
{
    return cr_make_param_array(vcase, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(vcase *c, member, signup_rules)
{
    Layby__V1__SignUp s = LAYBY__V1__SIGN_UP__INIT;
    s.username = c->username;
    s.password = c->password;
    s.email = c->email;
    s.phone = c->phone;
    lb_err err;
    lb_err_clear(&err);
    lb_status st = member_signup_check(&s, &err);
    if (c->field[0] == '\0') {
        cr_assert_eq(st, LB_OK, "%s refused: %s", c->username, err.msg);
    } else {
        cr_assert_eq(st, LB_ERR_INVALID, "accepted a bad %s", c->field);
        cr_assert_str_eq(err.field, c->field);
    }
}

Test(member, password_length_counts_characters_not_bytes)
{
    /* ten Hangul syllables: 30 bytes, 10 characters */
    const char *ten = "가나다라마바사아자차";
    cr_assert_eq(member_password_check(ten, "alice", "password", NULL), LB_OK);
    char long_pw[200];
    memset(long_pw, 'x', 129);
    long_pw[129] = '\0';
    cr_assert_eq(member_password_check(long_pw, "alice", "password", NULL), LB_ERR_INVALID);
}

Test(member, fold_makes_case_variants_equal)
{
    char a[40], b[40];
    member_fold(a, sizeof a, "Alice.B");
    member_fold(b, sizeof b, "aLICE.b");
    cr_assert_str_eq(a, b);
}
