/* ctl_token.c - `layby-ctl token mint`: an ES256 access token for tests,
 * benchmarks and operators (an ADMIN token to create products, say),
 * signed with the key the edge verifies against. Claims: sub, role, iss,
 * iat, exp, jti (UUIDv7). The token goes to stdout and nowhere else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <sodium.h>

#include "ctl.h"
#include "id.h"

#define TOKEN_KEY_MAX (16 * 1024) /* a PEM EC key is ~250 bytes */
#define TOKEN_SUB_MAX 96          /* same bound as Layby-Actor ids */

typedef struct token_conf {
    ctl_conn conn; /* unused: minting needs no connection */
    const char *sub;
    const char *role;
    int64_t ttl_ms;
    const char *key_file;
    const char *issuer;
} token_conf;

/* clang-format off */
static const cfg_opt token_opts[] = {
    { "sub",    NULL,                         CFG_STR, NULL,   offsetof(token_conf, sub),      0, 0,             "subject: the member id" },
    { "role",   NULL,                         CFG_STR, "USER", offsetof(token_conf, role),     0, 0,             "ADMIN or USER" },
    { "ttl",    NULL,                         CFG_MS,  "1h",   offsetof(token_conf, ttl_ms),   1000, 366LL * 86400000, "lifetime" },
    { "key",    "LAYBY_JWT_PRIVATE_KEY_FILE", CFG_STR, NULL,   offsetof(token_conf, key_file), 0, 0,             "ES256 private key (PEM, SEC1 or PKCS#8)" },
    { "issuer", "LAYBY_JWT_ISSUER",           CFG_STR, "layby", offsetof(token_conf, issuer),  0, 0,             "iss claim" },
};

static const char *const token_roles[] = { "ADMIN", "USER" };
/* clang-format on */
const ctl_flags ctl_token_flags = CTL_FLAGS(token_opts);

static bool
role_known(const char *r)
{
    for (size_t i = 0; i < LB_COUNTOF(token_roles); i++)
        if (strcmp(r, token_roles[i]) == 0)
            return true;
    return false;
}

static bool
sub_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= TOKEN_SUB_MAX)
        return false;
    for (size_t i = 0; i < n; i++) /* it ends up in "Layby-Actor: <sub> <ROLE>" */
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

/* Reads the key file into buf (the caller wipes it). */
static lb_status
key_read(unsigned char *buf, size_t cap, size_t *len, const char *path, lb_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "cannot open key file %s", path);
    *len = fread(buf, 1, cap, f);
    bool too_big = (*len == cap);
    fclose(f);
    if (*len == 0 || too_big)
        return lb_err_set(err, LB_ERR_CONFIG, "key file %s is empty or too large", path);
    return LB_OK;
}

static lb_status
token_sign(char **out, const token_conf *c, const unsigned char *key, size_t key_len, lb_err *err)
{
    jwt_t *jwt = NULL;
    char jti[ID_STR_LEN];
    long now_s = (long)(lb_now_ms() / 1000);
    lb_status rc = LB_OK;

    id_new(jti);
    if (jwt_new(&jwt) != 0)
        return lb_err_set(err, LB_ERR_NOMEM, "jwt_new");
    if (jwt_add_grant(jwt, "sub", c->sub) != 0 || jwt_add_grant(jwt, "role", c->role) != 0 ||
        jwt_add_grant(jwt, "iss", c->issuer) != 0 || jwt_add_grant(jwt, "jti", jti) != 0 ||
        jwt_add_grant_int(jwt, "iat", now_s) != 0 ||
        jwt_add_grant_int(jwt, "exp", now_s + (long)(c->ttl_ms / 1000)) != 0) {
        rc = lb_err_set(err, LB_ERR_INTERNAL, "adding claims failed");
        goto out;
    }
    if (jwt_set_alg(jwt, JWT_ALG_ES256, key, (int)key_len) != 0) {
        rc = lb_err_set(err, LB_ERR_CRYPTO, "the key is not usable for ES256");
        goto out;
    }
    *out = jwt_encode_str(jwt);
    if (*out == NULL)
        rc = lb_err_set(err, LB_ERR_CRYPTO, "signing failed (is %s a P-256 private key?)",
                        c->key_file);
out:
    jwt_free(jwt);
    return rc;
}

int
ctl_token_mint(const ctl_cmd *cmd, int argc, char **argv)
{
    token_conf conf = { 0 };
    unsigned char key[TOKEN_KEY_MAX];
    size_t key_len = 0;
    char *token = NULL;
    lb_err err;
    int rc = ctl_args(&conf, cmd, token_opts, LB_COUNTOF(token_opts), argc, argv);
    if (rc >= 0)
        return rc;
    if (!role_known(conf.role))
        return ctl_usage_error(cmd, "--role must be ADMIN or USER");
    if (!sub_ok(conf.sub))
        return ctl_usage_error(cmd, "--sub must be 1-%d printable characters, no spaces",
                               TOKEN_SUB_MAX - 1);
    if (key_read(key, sizeof key, &key_len, conf.key_file, &err) != LB_OK ||
        token_sign(&token, &conf, key, key_len, &err) != LB_OK) {
        rc = ctl_fail(cmd, &err);
    } else {
        if (ctl_out.json)
            ctl_json_doc(
                json_pack("{s:s,s:s,s:s}", "token", token, "sub", conf.sub, "role", conf.role));
        else
            printf("%s\n", token);
        rc = CTL_EXIT_OK;
    }
    sodium_memzero(key, sizeof key);
    free(token);
    return rc;
}
