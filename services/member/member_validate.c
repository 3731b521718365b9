/* member_validate.c - the sign-up rules of issue 18, each refusal naming its
 * JSON field:
 *   username  3-32 characters of a-z 0-9 . _ - (upper case is accepted and
 *             kept for display; uniqueness ignores case, docs/DECISIONS.md)
 *   password  10-128 characters, not containing the username (any case)
 *   email     local@domain with a dotted domain of letters, digits, hyphens
 *   phone     7-15 digits, an optional leading +, spaces and dashes between */
#include <ctype.h>
#include <string.h>

#include "member.h"

void
member_fold(char *out, size_t n, const char *s)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < n; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
}

lb_status
member_username_check(const char *u, lb_err *err)
{
    size_t n = u ? strlen(u) : 0;
    if (n < MEMBER_USERNAME_MIN || n > MEMBER_USERNAME_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "username", "username must be %d to %d characters",
                            MEMBER_USERNAME_MIN, MEMBER_USERNAME_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return lb_err_field(err, LB_ERR_INVALID, "username",
                                "username may hold only letters, digits, '.', '_' and '-'");
    }
    return LB_OK;
}

/* strstr ignoring ASCII case (both are short: at most 128 and 32 bytes). */
static bool
contains_folded(const char *hay, const char *needle)
{
    size_t hn = strlen(hay), nn = strlen(needle);
    for (size_t i = 0; nn > 0 && i + nn <= hn; i++) {
        size_t j = 0;
        while (j < nn && tolower((unsigned char)hay[i + j]) == tolower((unsigned char)needle[j]))
            j++;
        if (j == nn)
            return true;
    }
    return false;
}

lb_status
member_password_check(const char *pw, const char *username, const char *field, lb_err *err)
{
    if (pw == NULL || !lb_utf8_valid(pw))
        return lb_err_field(err, LB_ERR_INVALID, field, "%s must be UTF-8 text", field);
    size_t n = lb_utf8_len(pw);
    if (n < MEMBER_PASSWORD_MIN || n > MEMBER_PASSWORD_MAX)
        return lb_err_field(err, LB_ERR_INVALID, field, "%s must be %d to %d characters", field,
                            MEMBER_PASSWORD_MIN, MEMBER_PASSWORD_MAX);
    if (username != NULL && username[0] != '\0' && contains_folded(pw, username))
        return lb_err_field(err, LB_ERR_INVALID, field, "%s must not contain the username", field);
    return LB_OK;
}

static bool
local_char(unsigned char c)
{
    return isalnum(c) || (c != '\0' && strchr("!#$%&'*+/=?^_`{|}~.-", c) != NULL);
}

/* One domain label: 1-63 of letters, digits and inner hyphens. */
static bool
label_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

lb_status
member_email_check(const char *e, lb_err *err)
{
    size_t n = e ? strlen(e) : 0;
    const char *at = n ? strchr(e, '@') : NULL;
    bool ok = n > 0 && n <= MEMBER_EMAIL_MAX && at != NULL && strchr(at + 1, '@') == NULL;
    if (ok) {
        size_t ln = (size_t)(at - e);
        ok = ln >= 1 && ln <= 64 && e[0] != '.' && e[ln - 1] != '.';
        for (size_t i = 0; ok && i < ln; i++)
            ok = local_char((unsigned char)e[i]) && !(e[i] == '.' && e[i + 1] == '.');
    }
    if (ok) {
        const char *d = at + 1;
        size_t labels = 0;
        while (ok) {
            const char *dot = strchr(d, '.');
            size_t len = dot ? (size_t)(dot - d) : strlen(d);
            ok = label_ok(d, len);
            labels++;
            if (dot == NULL)
                break;
            d = dot + 1;
        }
        ok = ok && labels >= 2;
    }
    if (!ok)
        return lb_err_field(err, LB_ERR_INVALID, "email", "email is not a valid address");
    return LB_OK;
}

lb_status
member_phone_check(const char *p, lb_err *err)
{
    size_t n = p ? strlen(p) : 0, digits = 0;
    bool ok = n > 0 && n <= MEMBER_PHONE_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        char c = p[i];
        if (c >= '0' && c <= '9')
            digits++;
        else if (c == '+')
            ok = i == 0;
        else if (c == ' ' || c == '-')
            ok = digits > 0 && i + 1 < n && p[i + 1] >= '0' && p[i + 1] <= '9';
        else
            ok = false;
    }
    if (!ok || digits < 7 || digits > 15)
        return lb_err_field(err, LB_ERR_INVALID, "phone",
                            "phone must be 7 to 15 digits, with an optional leading '+', "
                            "spaces and dashes");
    return LB_OK;
}

lb_status
member_signup_check(const Layby__V1__SignUp *s, lb_err *err)
{
    lb_status st = member_username_check(s->username, err);
    if (st == LB_OK)
        st = member_password_check(s->password, s->username, "password", err);
    if (st == LB_OK)
        st = member_email_check(s->email, err);
    if (st == LB_OK)
        st = member_phone_check(s->phone, err);
    return st;
}
