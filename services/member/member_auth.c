/* member_auth.c - passwords, logins and tokens.
 *
 * Login order matters: (1) the throttles (per username and per client
 * address, in LAYBY_MEMBER_LIMITS) are read before any hashing, so a flood of
 * guesses costs a key-value read each; (2) the hashing pool (member_pool.c)
 * admits at most hash_threads + hash_queue logins, the rest get 429 at once,
 * so a login storm can tie up at most that many responder threads and /me
 * keeps its own, and it hashes at a low CPU priority;
 * (3) an unknown username is verified against a dummy hash, so it answers
 * like a wrong password in the same time; (4) only a correct password learns
 * the account's state (403 email_not_verified or account_locked).
 *
 * Tokens: the access token is an ES256 JWT (sub, role, jti, sid, iat, exp,
 * iss); the refresh token is 32 random bytes, stored as a BLAKE2b hash only.
 * A login is a session (the token family): each refresh spends the presented
 * token and issues a new pair; presenting a spent token revokes the session
 * and its newest access token, since one of the two holders is a thief.
 *
 * Invariants:
 * (1) A session's access_jti is its newest access token; revoking a session
 *     puts that jti into LAYBY_REVOKED before the transaction commits, so a
 *     failure leaves the token revoked and the session live (safe side),
 *     never the reverse.
 * (2) A refresh token row is spent under FOR UPDATE: two refreshes with one
 *     token serialise, the second sees it spent and revokes the family. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/id.h"
#include "engine/log.h"
#include "member.h"

#define REFRESH_BYTES    32
#define REFRESH_TEXT_MAX 64 /* "rt." + 43 base64url characters */
#define ADDR_KEY_MAX     80
#define LIMIT_KEY_MAX    (2 * MEMBER_HASH_BYTES + 16)
#define THROTTLE_TIMES   16

/* --- tokens ---------------------------------------------------------------- */

typedef struct token_pair {
    char *access; /* malloc'd by es256_jwt_sign() */
    char refresh[REFRESH_TEXT_MAX];
    char refresh_hash[2 * 32 + 1];
    char jti[ID_STR_LEN];
    int64_t exp_s;
} token_pair;

static void
refresh_hash_hex(char out[2 * 32 + 1], const char *token)
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, (const uint8_t *)token, strlen(token), NULL, 0);
    member_hex(out, h, sizeof h);
}

/* New refresh token and jti, and the signed access token for them. */
static lb_status
tokens_make(token_pair *t, const char *member_id, const char *role, const char *session_id,
            lb_err *err)
{
    uint8_t raw[REFRESH_BYTES];
    randombytes_buf(raw, sizeof raw);
    memcpy(t->refresh, "rt.", 3);
    sodium_bin2base64(t->refresh + 3, sizeof t->refresh - 3, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    refresh_hash_hex(t->refresh_hash, t->refresh);
    id_new(t->jti);
    int64_t now_s = lb_now_ms() / 1000;
    t->exp_s = now_s + member_conf.access_ttl_ms / 1000;

    /* Signed with the key parsed at start (es256.h), in libjwt's token shape. */
    json_t *claims =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "sub", member_id, "role", role, "jti",
                  t->jti, "sid", session_id, "iss", member_conf.jwt_issuer, "iat",
                  (json_int_t)now_s, "exp", (json_int_t)t->exp_s);
    if (claims == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "access token claims");
    lb_status st = es256_jwt_sign(&t->access, member_app->signer, claims, err);
    json_decref(claims);
    if (st != LB_OK)
        lb_err_wrap(err, "sign access token");
    return st;
}

static ProtobufCMessage *
pair_reply(token_pair *t)
{
    Layby__V1__TokenPair *p = malloc(sizeof *p);
    if (p == NULL)
        return NULL;
    layby__v1__token_pair__init(p);
    p->access_token = t->access;
    t->access = NULL;
    p->refresh_token = strdup(t->refresh);
    p->token_type = strdup("Bearer");
    p->expires_in = member_conf.access_ttl_ms / 1000;
    if (p->access_token == NULL || p->refresh_token == NULL || p->token_type == NULL) {
        protobuf_c_message_free_unpacked(&p->base, NULL);
        return NULL;
    }
    return &p->base;
}

/* Revokes the access tokens named by rows (access_jti, access_exp) of r. */
static lb_status
revoke_rows(const PGresult *r, lb_err *err)
{
    for (int i = 0; i < PQntuples(r); i++) {
        lb_status st =
            member_kv_revoke(PQgetvalue(r, i, 0), strtoll(PQgetvalue(r, i, 1), NULL, 10), err);
        if (st != LB_OK)
            return st;
    }
    return LB_OK;
}

lb_status
member_sessions_end(store *s, const char *member_id, const char *keep_session, lb_err *err)
{
    const char *params[] = { member_id, keep_session };
    PGresult *res = NULL;
    lb_status st = store_exec(s, &res, "member_sessions_end", 2, params, err);
    if (st == LB_OK)
        st = revoke_rows(res, err);
    PQclear(res);
    return st;
}

/* --- login ------------------------------------------------------------------ */

typedef struct login_keys {
    char uidx[2 * MEMBER_HASH_BYTES + 1]; /* the username's blind index */
    char user[LIMIT_KEY_MAX];
    char addr[ADDR_KEY_MAX];
} login_keys;

static lb_status
login_keys_make(login_keys *k, const char *username, const char *addr, lb_err *err)
{
    uint8_t idx[MEMBER_HASH_BYTES];
    char hex[2 * MEMBER_HASH_BYTES + 1];
    lb_status st = member_index(idx, "username", username, err);
    if (st != LB_OK)
        return st;
    member_hex(k->uidx, idx, sizeof idx);
    snprintf(k->user, sizeof k->user, "fail.u.%s", k->uidx);
    /* The client address is personal data too: only its keyed hash is a key. */
    if ((st = member_hash(idx, "addr", addr ? addr : "", err)) != LB_OK)
        return st;
    member_hex(hex, idx, 16);
    snprintf(k->addr, sizeof k->addr, "fail.a.%s", hex);
    return LB_OK;
}

/* 0 when under the limit, else ms until the oldest counted failure leaves the
 * window; *failures = how many the window holds. */
static int64_t
throttle_wait(const char *key, int64_t now_ms, size_t *failures)
{
    int64_t times[THROTTLE_TIMES];
    uint64_t rev;
    size_t n = member_kv_times(times, THROTTLE_TIMES, &rev, member_app->limits, key, now_ms,
                               member_conf.login_window_ms);
    *failures = n;
    if ((int64_t)n < member_conf.login_fail_max)
        return 0;
    return times[n - (size_t)member_conf.login_fail_max] + member_conf.login_window_ms - now_ms;
}

static void
login_failed(const login_keys *k, int64_t now_ms, const bus_envelope *env)
{
    lb_err err;
    const char *keys[] = { k->user, k->addr };
    for (size_t i = 0; i < LB_COUNTOF(keys); i++)
        if (member_kv_times_add(member_app->limits, keys[i], now_ms, member_conf.login_window_ms,
                                &err) != LB_OK)
            log_warn(&(log_ctx){ .correlation = env->correlation }, "member.throttle_failed",
                     "cannot count a failed login", LOG_ERR(&err));
}

/* Session row + first refresh token, in one transaction. */
static lb_status
session_open(store *db, token_pair *t, const char *member_id, const char *role, lb_err *err)
{
    char sid[ID_STR_LEN], exp[24], ttl[24];
    id_new(sid);
    lb_status st = tokens_make(t, member_id, role, sid, err);
    if (st != LB_OK)
        return st;
    snprintf(exp, sizeof exp, "%lld", (long long)t->exp_s);
    snprintf(ttl, sizeof ttl, "%lld", (long long)member_conf.refresh_ttl_ms);
    const char *ps[] = { sid, member_id, t->jti, exp, ttl };
    const char *pr[] = { t->refresh_hash, sid };
    if ((st = store_begin(db, err)) != LB_OK)
        return st;
    if ((st = store_exec(db, NULL, "member_session_insert", 5, ps, err)) != LB_OK ||
        (st = store_exec(db, NULL, "member_refresh_insert", 2, pr, err)) != LB_OK ||
        (st = store_commit(db, err)) != LB_OK)
        store_rollback(db);
    return st;
}

lb_status
member_login(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__Login *l = (const Layby__V1__Login *)req;
    const bus_envelope *env = svc_query_env(q);
    int64_t now = lb_now_ms();
    if (l->password == NULL || strlen(l->password) > 4 * MEMBER_PASSWORD_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "password", "password is too long");
    bool name_ok = member_username_check(l->username, NULL) == LB_OK;
    login_keys k;
    lb_status st = login_keys_make(&k, name_ok ? l->username : "", l->client_addr, err);
    if (st != LB_OK)
        return st;
    size_t user_failures = 0, addr_failures = 0;
    int64_t wait_u = throttle_wait(k.user, now, &user_failures);
    int64_t wait_a = throttle_wait(k.addr, now, &addr_failures);
    if (wait_u > 0 || wait_a > 0) {
        *reply = member_throttled(wait_u > wait_a ? wait_u : wait_a,
                                  "too many failed logins; try again later");
        return *reply ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "throttled");
    }

    PGresult *res = NULL;
    bool found = false;
    store *db = svc_query_store(q);
    if (name_ok) {
        const char *params[] = { k.uidx };
        if ((st = store_exec(db, &res, "member_by_username", 1, params, err)) != LB_OK)
            return st;
        found = PQntuples(res) == 1;
    }
    const char *hash = found ? PQgetvalue(res, 0, MEMBER_COL_HASH) : member_app->dummy_hash;
    st = member_pw_verify(hash, l->password, err);
    if (st == LB_ERR_THROTTLED) {
        PQclear(res);
        *reply = member_throttled(1000, "too many logins at once; retry");
        return *reply ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "throttled");
    }
    if (st != LB_OK || !found) {
        PQclear(res);
        login_failed(&k, now, env);
        return lb_err_set(err, LB_ERR_CREDENTIALS, "wrong username or password");
    }
    char id[ID_STR_LEN], role[16];
    snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, MEMBER_COL_ID));
    snprintf(role, sizeof role, "%s", PQgetvalue(res, 0, MEMBER_COL_ROLE));
    bool locked = PQgetvalue(res, 0, MEMBER_COL_LOCKED)[0] == 't';
    bool active = strcmp(PQgetvalue(res, 0, MEMBER_COL_STATUS), MEMBER_STATUS_ACTIVE) == 0;
    PQclear(res);
    if (locked)
        return lb_err_set(err, LB_ERR_LOCKED, "this account is locked");
    if (!active)
        return lb_err_set(err, LB_ERR_NOT_VERIFIED, "verify the email address first");
    /* A success forgets the username's failures. Most logins have none to
     * forget: then no delete (a JetStream write at normal priority while /me
     * runs; docs/BENCHMARKS.md, Members). One counted while we hashed stays. */
    if (user_failures > 0)
        member_kv_del(member_app->limits, k.user, NULL);

    token_pair t = { 0 };
    st = session_open(db, &t, id, role, err);
    if (st == LB_OK && (*reply = pair_reply(&t)) == NULL)
        st = lb_err_set(err, LB_ERR_NOMEM, "token reply");
    free(t.access);
    sodium_memzero(&t, sizeof t);
    if (st == LB_OK)
        log_info(&(log_ctx){ .correlation = env->correlation }, "member.login", "member logged in",
                 LOG_STR("member", id));
    return st;
}

/* --- refresh and logout ----------------------------------------------------- */

lb_status
member_refresh(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__Refresh *r = (const Layby__V1__Refresh *)req;
    const bus_envelope *env = svc_query_env(q);
    size_t len = r->refresh_token ? strlen(r->refresh_token) : 0;
    if (len < 4 || len >= REFRESH_TEXT_MAX || strncmp(r->refresh_token, "rt.", 3) != 0)
        return lb_err_field(err, LB_ERR_UNAUTHORIZED, "refreshToken", "refresh token not valid");
    char hash[2 * 32 + 1];
    refresh_hash_hex(hash, r->refresh_token);
    store *db = svc_query_store(q);
    PGresult *res = NULL;
    const char *ph[] = { hash };
    lb_status st = store_begin(db, err);
    if (st != LB_OK)
        return st;
    if ((st = store_exec(db, &res, "member_refresh_find", 1, ph, err)) != LB_OK)
        goto out_rollback;
    if (PQntuples(res) == 0) {
        st = lb_err_field(err, LB_ERR_UNAUTHORIZED, "refreshToken", "refresh token not valid");
        goto out_rollback;
    }
    char sid[ID_STR_LEN], mid[ID_STR_LEN], role[16];
    snprintf(sid, sizeof sid, "%s", PQgetvalue(res, 0, 0));
    snprintf(mid, sizeof mid, "%s", PQgetvalue(res, 0, 2));
    snprintf(role, sizeof role, "%s", PQgetvalue(res, 0, 5));
    bool spent = PQgetvalue(res, 0, 1)[0] == 't', revoked = PQgetvalue(res, 0, 3)[0] == 't';
    bool expired = PQgetvalue(res, 0, 4)[0] == 't', locked = PQgetvalue(res, 0, 7)[0] == 't';
    PQclear(res);
    res = NULL;
    if (spent && !revoked) {
        /* Reuse: whoever holds the newer token may be a thief. End the login. */
        const char *ps[] = { sid, mid };
        if ((st = store_exec(db, &res, "member_session_revoke", 2, ps, err)) != LB_OK ||
            (st = revoke_rows(res, err)) != LB_OK || (st = store_commit(db, err)) != LB_OK)
            goto out_rollback;
        PQclear(res);
        log_warn(&(log_ctx){ .correlation = env->correlation }, "member.refresh_reuse",
                 "spent refresh token presented; login revoked", LOG_STR("member", mid),
                 LOG_STR("session", sid));
        return lb_err_field(err, LB_ERR_UNAUTHORIZED, "refreshToken",
                            "refresh token already used; the login is revoked");
    }
    if (spent || revoked || expired || locked) {
        st = lb_err_field(err, LB_ERR_UNAUTHORIZED, "refreshToken", "refresh token not valid");
        goto out_rollback;
    }
    token_pair t = { 0 };
    if ((st = tokens_make(&t, mid, role, sid, err)) != LB_OK)
        goto out_rollback;
    char exp[24];
    snprintf(exp, sizeof exp, "%lld", (long long)t.exp_s);
    const char *pr[] = { t.refresh_hash, sid };
    const char *pj[] = { sid, t.jti, exp };
    if ((st = store_exec(db, NULL, "member_refresh_spend", 1, ph, err)) == LB_OK &&
        (st = store_exec(db, NULL, "member_refresh_insert", 2, pr, err)) == LB_OK &&
        (st = store_exec(db, NULL, "member_session_rotate", 3, pj, err)) == LB_OK &&
        (st = store_commit(db, err)) == LB_OK && (*reply = pair_reply(&t)) == NULL)
        st = lb_err_set(err, LB_ERR_NOMEM, "token reply");
    free(t.access);
    sodium_memzero(&t, sizeof t);
    if (st != LB_OK)
        goto out_rollback;
    return LB_OK;
out_rollback:
    PQclear(res);
    store_rollback(db);
    return st;
}

static ProtobufCMessage *
done_reply(void)
{
    Layby__V1__Done *d = malloc(sizeof *d);
    if (d != NULL)
        layby__v1__done__init(d);
    return d ? &d->base : NULL;
}

lb_status
member_logout(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__Logout *l = (const Layby__V1__Logout *)req;
    if (!id_valid(l->member_id) || !id_valid(l->session_id))
        return lb_err_set(err, LB_ERR_UNAUTHORIZED, "token names no login");
    store *db = svc_query_store(q);
    PGresult *res = NULL;
    const char *ps[] = { l->session_id, l->member_id };
    /* The presented token first: it is revoked even if its session is gone. */
    lb_status st = member_kv_revoke(l->jti, l->exp, err);
    if (st != LB_OK)
        return st;
    if ((st = store_begin(db, err)) != LB_OK)
        return st;
    if ((st = store_exec(db, &res, "member_session_revoke", 2, ps, err)) != LB_OK ||
        (st = revoke_rows(res, err)) != LB_OK || (st = store_commit(db, err)) != LB_OK) {
        PQclear(res);
        store_rollback(db);
        return st;
    }
    PQclear(res);
    if ((*reply = done_reply()) == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "done");
    return LB_OK;
}

/* --- password change --------------------------------------------------------- */

lb_status
member_password_change(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                       lb_err *err)
{
    const Layby__V1__ChangePassword *c = (const Layby__V1__ChangePassword *)req;
    if (!id_valid(c->member_id))
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no such member");
    if (c->current_password == NULL || strlen(c->current_password) > 4 * MEMBER_PASSWORD_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "currentPassword", "currentPassword is too long");
    store *db = svc_query_store(q);
    PGresult *res = NULL;
    const char *pid[] = { c->member_id };
    lb_status st = store_exec(db, &res, "member_by_id", 1, pid, err);
    if (st != LB_OK)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no such member");
    }
    char username[MEMBER_FIELD_MAX + 1];
    st = member_unseal(username, sizeof username, "username", c->member_id, res, 0,
                       MEMBER_COL_USERNAME, err);
    if (st == LB_OK)
        st = member_password_check(c->new_password, username, "newPassword", err);
    sodium_memzero(username, sizeof username);
    if (st == LB_OK) {
        st = member_pw_verify(PQgetvalue(res, 0, MEMBER_COL_HASH), c->current_password, err);
        if (st == LB_ERR_CREDENTIALS)
            st = lb_err_field(err, LB_ERR_CREDENTIALS, "currentPassword",
                              "current password is wrong");
    }
    PQclear(res);
    char hash[crypto_pwhash_STRBYTES];
    if (st != LB_OK || (st = member_pw_hash(hash, c->new_password, err)) != LB_OK)
        return st;
    const char *pw[] = { c->member_id, hash };
    Layby__V1__MemberChanged ev = LAYBY__V1__MEMBER_CHANGED__INIT;
    ev.member_id = c->member_id;
    ev.what = "password";
    if ((st = store_begin(db, err)) != LB_OK)
        return st;
    if ((st = store_exec(db, NULL, "member_password_set", 2, pw, err)) != LB_OK ||
        (st = member_sessions_end(db, c->member_id, id_valid(c->session_id) ? c->session_id : NULL,
                                  err)) != LB_OK ||
        (st = member_event(q, SUBJ_MEMBER_CHANGED, &ev.base, err)) != LB_OK ||
        (st = svc_query_commit(q, err)) != LB_OK) {
        svc_query_rollback(q);
        return st;
    }
    sodium_memzero(hash, sizeof hash);
    if ((*reply = done_reply()) == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "done");
    return LB_OK;
}
