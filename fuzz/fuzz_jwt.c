/* fuzz_jwt.c - the edge's bearer token check (edge_auth_verify()).
 *
 * Two kinds of input, chosen by the first byte:
 *   even: the rest is the token text as a client sends it (parsing, base64url,
 *         the algorithm check, the signature check on garbage);
 *   odd:  the rest is "<header JSON>\n<payload JSON>", signed here with the
 *         key the checker trusts, so the header and claims checks behind the
 *         signature are reached too (a fuzzer cannot forge a signature).
 * Time is fixed (NOW_S), so an input means the same on every run.
 *
 * Invariants:
 * (1) an accepted token's header says alg ES256 (parsed here independently);
 * (2) its claims are usable: a printable sub, a role, exp after now;
 * (3) the same token with one signature character changed is refused;
 * (4) a repeat (answered from the cache) gives the same claims.
 */
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "edge_auth.h"
#include "fuzz.h"

#define NOW_S 1800000000LL /* 2027-01-15 */

static edge_auth *auth;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        fuzz_fail("sodium_init");
    const char *pem = fuzz_es256_public_pem();
    edge_auth_opts o = EDGE_AUTH_OPTS_INIT;
    o.cache_cap = 64;
    lb_err err;
    if (edge_auth_new(&auth, pem, strlen(pem), &o, &err) != LB_OK)
        fuzz_fail("edge_auth_new: %s", err.msg);
    return 0;
}

/* Invariant (1): decode the header part ourselves. */
static void
header_is_es256(const char *token)
{
    const char *dot = strchr(token, '.');
    uint8_t head[EDGE_TOKEN_MAX];
    size_t n = 0;
    if (dot == NULL || sodium_base642bin(head, sizeof head, token, (size_t)(dot - token), NULL, &n,
                                         NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        fuzz_fail("accepted a token whose header is not base64url");
    json_t *h = json_loadb((const char *)head, n, 0, NULL);
    const char *alg = json_string_value(json_object_get(h, "alg"));
    if (alg == NULL || strcmp(alg, "ES256") != 0)
        fuzz_fail("accepted a token whose alg is %s", alg ? alg : "(none)");
    json_decref(h);
}

static void
check_accepted(char *token, const edge_claims *c)
{
    header_is_es256(token);
    size_t sub_len = strlen(c->sub);
    if (sub_len == 0 || (c->role != EDGE_ROLE_USER && c->role != EDGE_ROLE_ADMIN) ||
        c->exp_s <= NOW_S)
        fuzz_fail("accepted unusable claims: sub \"%s\" role %d exp %lld", c->sub, (int)c->role,
                  (long long)c->exp_s);
    for (size_t i = 0; i < sub_len; i++)
        if (c->sub[i] <= ' ' || c->sub[i] > '~')
            fuzz_fail("accepted a sub with byte 0x%02x", (unsigned char)c->sub[i]);

    edge_claims again;
    lb_err err;
    if (edge_auth_verify(&again, auth, token, NOW_S, &err) != LB_OK ||
        strcmp(again.sub, c->sub) != 0 || again.role != c->role || again.exp_s != c->exp_s)
        fuzz_fail("a repeat of an accepted token differs");

    /* (3): change a character in the middle of the signature */
    char *sig = strrchr(token, '.');
    size_t sig_len = sig ? strlen(sig + 1) : 0;
    if (sig_len < 8)
        fuzz_fail("accepted a token with a %zu-character signature", sig_len);
    char *p = sig + 1 + sig_len / 2;
    *p = *p == 'A' ? 'B' : 'A';
    if (edge_auth_verify(&again, auth, token, NOW_S, &err) == LB_OK)
        fuzz_fail("a token with a changed signature was accepted");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    char *token;
    if ((data[0] & 1) == 0) {
        token = fuzz_strndup(data + 1, size - 1);
    } else {
        const uint8_t *nl = memchr(data + 1, '\n', size - 1);
        size_t hlen = nl ? (size_t)(nl - data - 1) : size - 1;
        const char *payload = nl ? (const char *)nl + 1 : "";
        size_t plen = nl ? size - 2 - hlen : 0;
        token = malloc(EDGE_TOKEN_MAX + 1);
        if (token == NULL)
            fuzz_fail("out of memory");
        if (fuzz_es256_sign(token, EDGE_TOKEN_MAX + 1, (const char *)data + 1, hlen, payload,
                            plen) != 0) {
            free(token);
            return 0;
        }
    }
    edge_claims c;
    lb_err err;
    lb_status s = edge_auth_verify(&c, auth, token, NOW_S, &err);
    if (s == LB_OK)
        check_accepted(token, &c);
    else if (s != LB_ERR_UNAUTHORIZED && s != LB_ERR_NOMEM)
        fuzz_fail("a refused token gave %s, not unauthorized", lb_status_name(s));
    free(token);
    return 0;
}
