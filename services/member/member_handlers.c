/* member_handlers.c - the member service's context, sealed columns, its
 * request table and the requests that need no password check: username
 * availability, sign-up, my page and the phone change.
 *
 * Every request is core request/reply (member.h says why). A write opens its
 * own transaction on the responder's connection and writes its events
 * (member ids only) to the outbox in it; svc_query_commit() hands them to
 * the relay, which publishes them at once.
 *
 * Invariants:
 * (1) No column of schema member holds a username, email or phone in the
 *     clear; uniqueness is the UNIQUE blind index of the folded username, so
 *     two sign-ups racing for one name in any case get one row and one 409.
 * (2) Nothing personal reaches a log line, an event or an error message:
 *     they name member ids and fields, never values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/id.h"
#include "engine/log.h"
#include "engine/outbox.h"
#include "member.h"

member_ctx *member_app;
member_cfg member_conf; /* filled by main() from its option rows */

/* --- sealed columns ------------------------------------------------------- */

void
member_hex(char *out, const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* sodium's decoder rather than sscanf("%2x") per byte: a GET /me opens three
 * columns, and the sscanf calls were 2.5 % of the member's CPU in its profile
 * (docs/BENCHMARKS.md, Members). */
static bool
unhex(uint8_t *out, size_t cap, size_t *len, const char *hex)
{
    size_t n = strlen(hex);
    const char *end = NULL;
    return n % 2 == 0 && sodium_hex2bin(out, cap, hex, n, NULL, len, &end) == 0 && end == hex + n;
}

lb_status
member_seal(uint8_t *out, size_t cap, size_t *len, const char *column, const char *member_id,
            const char *text, lb_err *err)
{
    char ad[96];
    snprintf(ad, sizeof ad, "member.%s:%s", column, member_id);
    return seal_encrypt(out, cap, len, &member_app->keys, (const uint8_t *)text, strlen(text), ad,
                        err);
}

lb_status
member_unseal(char *out, size_t n, const char *column, const char *member_id, const PGresult *r,
              int row, int col, lb_err *err)
{
    uint8_t sealed[MEMBER_FIELD_MAX + SEAL_OVERHEAD];
    size_t len = 0, plen = 0;
    if (!unhex(sealed, sizeof sealed, &len, PQgetvalue(r, row, col)))
        return lb_err_set(err, LB_ERR_INTERNAL, "member %s: %s column unreadable", member_id,
                          column);
    char ad[96];
    snprintf(ad, sizeof ad, "member.%s:%s", column, member_id);
    lb_status st =
        seal_decrypt((uint8_t *)out, n - 1, &plen, &member_app->keys, sealed, len, ad, err);
    out[st == LB_OK ? plen : 0] = '\0';
    if (st != LB_OK)
        lb_err_wrap(err, column);
    return st;
}

lb_status
member_hash(uint8_t out[MEMBER_HASH_BYTES], const char *kind, const char *value, lb_err *err)
{
    crypto_generichash_state hs;
    if (crypto_generichash_init(&hs, member_app->index_key, sizeof member_app->index_key,
                                MEMBER_HASH_BYTES) != 0)
        return lb_err_set(err, LB_ERR_CRYPTO, "blake2b");
    crypto_generichash_update(&hs, (const uint8_t *)kind, strlen(kind) + 1);
    crypto_generichash_update(&hs, (const uint8_t *)value, strlen(value));
    crypto_generichash_final(&hs, out, MEMBER_HASH_BYTES);
    return LB_OK;
}

lb_status
member_index(uint8_t out[MEMBER_HASH_BYTES], const char *kind, const char *value, lb_err *err)
{
    char folded[MEMBER_FIELD_MAX + 1];
    member_fold(folded, sizeof folded, value);
    return member_hash(out, kind, folded, err);
}

/* Hex blind index of a username, the key of most look-ups. */
static lb_status
username_index_hex(char out[2 * MEMBER_HASH_BYTES + 1], const char *username, lb_err *err)
{
    uint8_t idx[MEMBER_HASH_BYTES];
    lb_status st = member_index(idx, "username", username, err);
    if (st == LB_OK)
        member_hex(out, idx, sizeof idx);
    return st;
}

/* --- helpers shared by the request files ------------------------------------ */

ProtobufCMessage *
member_throttled(int64_t retry_after_ms, const char *message)
{
    Layby__V1__Throttled *t = malloc(sizeof *t);
    char *m = strdup(message);
    if (t == NULL || m == NULL) {
        free(t);
        free(m);
        return NULL;
    }
    layby__v1__throttled__init(t);
    t->retry_after_s = retry_after_ms <= 0 ? 1 : (retry_after_ms + 999) / 1000;
    t->message = m;
    return &t->base;
}

lb_status
member_event(svc_query *q, const char *subject, const ProtobufCMessage *ev, lb_err *err)
{
    bus_envelope env;
    bus_envelope_init(&env, ev->descriptor, svc_query_env(q));
    return svc_query_emit(q, subject, &env, ev, err);
}

static ProtobufCMessage *
status_reply(const char *member_id, const char *status)
{
    Layby__V1__MemberStatus *m = malloc(sizeof *m);
    if (m == NULL)
        return NULL;
    layby__v1__member_status__init(m);
    m->member_id = strdup(member_id);
    m->status = strdup(status);
    if (m->member_id == NULL || m->status == NULL) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return NULL;
    }
    return &m->base;
}

/* --- username check and sign-up ------------------------------------------- */

static lb_status
member_username_available(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                          lb_err *err)
{
    const Layby__V1__UsernameCheck *c = (const Layby__V1__UsernameCheck *)req;
    lb_status st = member_username_check(c->username, err);
    if (st != LB_OK)
        return st;
    char idx[2 * MEMBER_HASH_BYTES + 1];
    if ((st = username_index_hex(idx, c->username, err)) != LB_OK)
        return st;
    const char *params[] = { idx };
    PGresult *res = NULL;
    if ((st = store_exec(svc_query_store(q), &res, "member_by_username", 1, params, err)) != LB_OK)
        return st;
    Layby__V1__UsernameAvailability *a = malloc(sizeof *a);
    if (a == NULL) {
        PQclear(res);
        return lb_err_set(err, LB_ERR_NOMEM, "availability");
    }
    layby__v1__username_availability__init(a);
    a->available = PQntuples(res) == 0;
    PQclear(res);
    *reply = &a->base;
    return LB_OK;
}

/* The three sealed columns of a new row, as hex parameters. */
typedef struct sealed_cols {
    char username[2 * (MEMBER_USERNAME_MAX + SEAL_OVERHEAD) + 1];
    char email[2 * (MEMBER_EMAIL_MAX + SEAL_OVERHEAD) + 1];
    char phone[2 * (MEMBER_PHONE_MAX + SEAL_OVERHEAD) + 1];
} sealed_cols;

static lb_status
seal_hex(char *out, const char *column, const char *member_id, const char *text, lb_err *err)
{
    uint8_t buf[MEMBER_FIELD_MAX + SEAL_OVERHEAD];
    size_t len = 0;
    lb_status st = member_seal(buf, sizeof buf, &len, column, member_id, text, err);
    if (st == LB_OK)
        member_hex(out, buf, len);
    return st;
}

static lb_status
member_sign_up(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__SignUp *s = (const Layby__V1__SignUp *)req;
    lb_status st = member_signup_check(s, err);
    if (st != LB_OK)
        return st;
    char id[ID_STR_LEN], uidx[2 * MEMBER_HASH_BYTES + 1], eidx[2 * MEMBER_HASH_BYTES + 1];
    uint8_t e[MEMBER_HASH_BYTES];
    id_new(id);
    if ((st = username_index_hex(uidx, s->username, err)) != LB_OK ||
        (st = member_index(e, "email", s->email, err)) != LB_OK)
        return st;
    member_hex(eidx, e, sizeof e);
    /* A taken name costs no hashing: check first (the insert still decides). */
    store *db = svc_query_store(q);
    PGresult *res = NULL;
    const char *p1[] = { uidx };
    if ((st = store_exec(db, &res, "member_by_username", 1, p1, err)) != LB_OK)
        return st;
    bool taken = PQntuples(res) > 0;
    PQclear(res);
    if (taken)
        return lb_err_field(err, LB_ERR_USERNAME_TAKEN, "username", "username is taken");

    sealed_cols c;
    char hash[crypto_pwhash_STRBYTES];
    if ((st = seal_hex(c.username, "username", id, s->username, err)) != LB_OK ||
        (st = seal_hex(c.email, "email", id, s->email, err)) != LB_OK ||
        (st = seal_hex(c.phone, "phone", id, s->phone, err)) != LB_OK ||
        (st = member_pw_hash(hash, s->password, err)) != LB_OK)
        return st;
    char now[32];
    lb_time_format(now, sizeof now, lb_now_ms());
    const char *params[] = { id, uidx, eidx, c.username, c.email, c.phone, hash, now };
    if ((st = store_begin(db, err)) != LB_OK)
        return st;
    if ((st = store_exec(db, &res, "member_insert", 8, params, err)) != LB_OK)
        goto out_rollback;
    taken = PQntuples(res) == 0;
    PQclear(res);
    if (taken) {
        st = lb_err_field(err, LB_ERR_USERNAME_TAKEN, "username", "username is taken");
        goto out_rollback;
    }
    Layby__V1__MemberSignedUp ev = LAYBY__V1__MEMBER_SIGNED_UP__INIT;
    ev.member_id = id;
    if ((st = member_event(q, SUBJ_MEMBER_SIGNED_UP, &ev.base, err)) != LB_OK ||
        (st = svc_query_commit(q, err)) != LB_OK)
        goto out_rollback;
    sodium_memzero(hash, sizeof hash);
    if ((*reply = status_reply(id, MEMBER_STATUS_PENDING)) == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "sign-up reply");
    log_info(&(log_ctx){ .correlation = svc_query_env(q)->correlation }, "member.signed_up",
             "member signed up", LOG_STR("member", id));
    return LB_OK;
out_rollback:
    svc_query_rollback(q);
    return st;
}

/* --- my page ---------------------------------------------------------------- */

/* A Me from a member_by_* row, decrypted. */
static lb_status
me_from_row(Layby__V1__Me **out, const PGresult *r, lb_err *err)
{
    const char *id = PQgetvalue(r, 0, MEMBER_COL_ID);
    char u[MEMBER_FIELD_MAX + 1], e[MEMBER_FIELD_MAX + 1], p[MEMBER_FIELD_MAX + 1];
    lb_status st;
    if ((st = member_unseal(u, sizeof u, "username", id, r, 0, MEMBER_COL_USERNAME, err)) !=
            LB_OK ||
        (st = member_unseal(e, sizeof e, "email", id, r, 0, MEMBER_COL_EMAIL, err)) != LB_OK ||
        (st = member_unseal(p, sizeof p, "phone", id, r, 0, MEMBER_COL_PHONE, err)) != LB_OK)
        return st;
    Layby__V1__Me *me = malloc(sizeof *me);
    if (me == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "me");
    layby__v1__me__init(me);
    me->member_id = strdup(id);
    me->username = strdup(u);
    me->email = strdup(e);
    me->phone = strdup(p);
    me->role = strdup(PQgetvalue(r, 0, MEMBER_COL_ROLE));
    me->created_at = strdup(PQgetvalue(r, 0, MEMBER_COL_CREATED));
    sodium_memzero(u, sizeof u);
    sodium_memzero(e, sizeof e);
    sodium_memzero(p, sizeof p);
    if (!me->member_id || !me->username || !me->email || !me->phone || !me->role ||
        !me->created_at) {
        protobuf_c_message_free_unpacked(&me->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "me fields");
    }
    *out = me;
    return LB_OK;
}

lb_status
member_me_get(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__GetMe *g = (const Layby__V1__GetMe *)req;
    if (!id_valid(g->member_id))
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no such member");
    const char *params[] = { g->member_id };
    PGresult *res = NULL;
    lb_status st = store_exec(svc_query_store(q), &res, "member_by_id", 1, params, err);
    if (st != LB_OK)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no such member");
    }
    Layby__V1__Me *me = NULL;
    st = me_from_row(&me, res, err);
    PQclear(res);
    if (st == LB_OK)
        *reply = &me->base;
    return st;
}

lb_status
member_phone_change(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                    lb_err *err)
{
    const Layby__V1__ChangePhone *c = (const Layby__V1__ChangePhone *)req;
    if (!id_valid(c->member_id))
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no such member");
    lb_status st = member_phone_check(c->phone, err);
    if (st != LB_OK)
        return st;
    char phone[sizeof((sealed_cols *)0)->phone];
    if ((st = seal_hex(phone, "phone", c->member_id, c->phone, err)) != LB_OK)
        return st;
    store *db = svc_query_store(q);
    const char *params[] = { c->member_id, phone };
    PGresult *res = NULL;
    if ((st = store_begin(db, err)) != LB_OK)
        return st;
    Layby__V1__MemberChanged ev = LAYBY__V1__MEMBER_CHANGED__INIT;
    ev.member_id = c->member_id;
    ev.what = "phone";
    if ((st = store_exec(db, NULL, "member_phone_set", 2, params, err)) != LB_OK ||
        (st = store_exec(db, &res, "member_by_id", 1, params, err)) != LB_OK)
        goto out_rollback;
    if (PQntuples(res) == 0) {
        st = lb_err_set(err, LB_ERR_NOT_FOUND, "no such member");
        goto out_rollback;
    }
    Layby__V1__Me *me = NULL;
    if ((st = me_from_row(&me, res, err)) != LB_OK)
        goto out_rollback;
    if ((st = member_event(q, SUBJ_MEMBER_CHANGED, &ev.base, err)) != LB_OK ||
        (st = svc_query_commit(q, err)) != LB_OK) {
        protobuf_c_message_free_unpacked(&me->base, NULL);
        goto out_rollback;
    }
    PQclear(res);
    *reply = &me->base;
    return LB_OK;
out_rollback:
    PQclear(res);
    svc_query_rollback(q);
    return st;
}

/* --- context -------------------------------------------------------------- */

static lb_status
file_slurp(char **out, size_t *len, const char *path, lb_err *err)
{
    FILE *f = path && path[0] ? fopen(path, "rb") : NULL;
    if (f == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "JWT private key file not set or unreadable");
    char *buf = malloc(16384);
    size_t n = buf ? fread(buf, 1, 16383, f) : 0;
    fclose(f);
    if (buf == NULL || n == 0 || n == 16383) {
        free(buf);
        return lb_err_set(err, LB_ERR_CONFIG, "JWT private key file %s: empty or too large", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return LB_OK;
}

static lb_status
index_key_load(uint8_t key[crypto_generichash_KEYBYTES], const char *path, lb_err *err)
{
    char buf[256];
    FILE *f = path && path[0] ? fopen(path, "rb") : NULL;
    if (f == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "LAYBY_INDEX_KEY_FILE not set or unreadable");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    size_t len = 0;
    int rc = sodium_hex2bin(key, crypto_generichash_KEYBYTES, buf, n, " \r\n\t", &len, NULL);
    sodium_memzero(buf, sizeof buf);
    if (rc != 0 || len != crypto_generichash_KEYBYTES)
        return lb_err_set(err, LB_ERR_CONFIG, "LAYBY_INDEX_KEY_FILE: must hold 64 hex digits");
    return LB_OK;
}

/* The access tokens' private key, parsed once (es256.h: libjwt re-parsed the
 * PEM on every login); the PEM text is wiped once parsed. */
static lb_status
signer_load(es256_key **out, const char *path, lb_err *err)
{
    char *pem = NULL;
    size_t len = 0;
    lb_status st = file_slurp(&pem, &len, path, err);
    if (st == LB_OK && (st = es256_key_new(out, ES256_PRIVATE, pem, len, err)) != LB_OK)
        lb_err_wrap(err, "LAYBY_JWT_PRIVATE_KEY_FILE");
    if (pem != NULL)
        sodium_memzero(pem, len);
    free(pem);
    return st;
}

static lb_status
bucket_open(kvStore **out, bus *b, const char *name, lb_err *err)
{
    natsStatus ns = js_KeyValue(out, bus_js(b), name);
    if (ns != NATS_OK)
        return bus__nats_err(err, ns, name);
    return LB_OK;
}

lb_status
member_ctx_open(member_ctx **out, const svc_cfg *sc, lb_err *err)
{
    const member_cfg *mc = &member_conf;
    member_ctx *c = calloc(1, sizeof *c);
    if (c == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "member context");
    if (sodium_init() < 0) {
        free(c);
        return lb_err_set(err, LB_ERR_CRYPTO, "sodium_init failed");
    }
    lb_status st = seal_keys_load(&c->keys, "MEMBER", err);
    if (st == LB_OK)
        st = index_key_load(c->index_key, mc->index_key_file, err);
    if (st == LB_OK)
        st = signer_load(&c->signer, mc->jwt_key_file, err);
    /* The hash an unknown user's password is checked against, so a miss costs
     * what a wrong password costs. */
    if (st == LB_OK &&
        crypto_pwhash_str_alg(c->dummy_hash, "layby-dummy-password", 20,
                              (unsigned long long)mc->argon_opslimit, (size_t)mc->argon_memlimit,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        st = lb_err_set(err, LB_ERR_NOMEM, "argon2id dummy hash");
    const member_pool_cgroup cg = { .dir = mc->hash_cgroup,
                                    .shares = mc->hash_cgroup_shares,
                                    .grace_ms = mc->hash_cgroup_grace_ms };
    if (st == LB_OK)
        st = member_pool_new(&c->pool, (size_t)mc->hash_threads, (size_t)mc->hash_queue,
                             mc->hash_priority, &cg, err);
    if (st == LB_OK) {
        bus_opts bo = BUS_OPTS_INIT;
        bo.url = sc->nats_url;
        bo.user = sc->nats_user;
        bo.password = sc->nats_password;
        bo.name = "layby-member kv";
        st = bus_open(&c->bus, &bo, err);
    }
    if (st == LB_OK && (st = bucket_open(&c->codes, c->bus, KV_MEMBER_CODES, err)) == LB_OK &&
        (st = bucket_open(&c->limits, c->bus, KV_MEMBER_LIMITS, err)) == LB_OK)
        st = bucket_open(&c->revoked, c->bus, KV_REVOKED, err);
    if (st != LB_OK) {
        member_ctx_close(c);
        return st;
    }
    *out = c;
    return LB_OK;
}

void
member_ctx_close(member_ctx *c)
{
    if (c == NULL)
        return;
    kvStore_Destroy(c->codes);
    kvStore_Destroy(c->limits);
    kvStore_Destroy(c->revoked);
    bus_close(c->bus);
    member_pool_free(c->pool);
    es256_key_free(c->signer);
    seal_keys_wipe(&c->keys);
    sodium_memzero(c->index_key, sizeof c->index_key);
    free(c);
}

/* --- tables ------------------------------------------------------------------ */

/* clang-format off */
static const svc_query_route member_queries[] = {
    /* subject                            request type                                    handler, kind */
    { SUBJ_MEMBER_USERNAME_CHECK,       &layby__v1__username_check__descriptor,       member_username_available, SVC_QUERY_READS },
    { SUBJ_MEMBER_SIGN_UP,              &layby__v1__sign_up__descriptor,              member_sign_up, SVC_QUERY_WRITES },
    { SUBJ_MEMBER_VERIFICATION_SEND,    &layby__v1__verification_send__descriptor,    member_verification_send, SVC_QUERY_WRITES },
    { SUBJ_MEMBER_VERIFICATION_CONFIRM, &layby__v1__verification_confirm__descriptor, member_verification_confirm, SVC_QUERY_WRITES },
    { SUBJ_MEMBER_LOGIN,                &layby__v1__login__descriptor,                member_login, SVC_QUERY_WRITES },
    { SUBJ_MEMBER_REFRESH,              &layby__v1__refresh__descriptor,              member_refresh, SVC_QUERY_WRITES },
    { SUBJ_MEMBER_LOGOUT,               &layby__v1__logout__descriptor,               member_logout, SVC_QUERY_WRITES },
    { SUBJ_MEMBER_GET_ME,               &layby__v1__get_me__descriptor,               member_me_get, SVC_QUERY_READS },
    { SUBJ_MEMBER_CHANGE_PASSWORD,      &layby__v1__change_password__descriptor,      member_password_change, SVC_QUERY_WRITES },
    { SUBJ_MEMBER_CHANGE_PHONE,         &layby__v1__change_phone__descriptor,         member_phone_change, SVC_QUERY_WRITES },
    { SUBJ_MEMBER_ADMIN,                &layby__v1__member_admin__descriptor,         member_admin, SVC_QUERY_WRITES },
    { SUBJ_MEMBER_REKEY,                &layby__v1__rekey__descriptor,                member_rekey, SVC_QUERY_WRITES },
};
/* clang-format on */

/* Drops ended logins (member_sql.c says which), a batch per transaction,
 * again at once while batches come back full. Runs at start, then every
 * tick_interval_ms. */
static lb_status
member_tick(svc_batch *b, int64_t now_ms, bool *more, lb_err *err)
{
    (void)now_ms;
    PGresult *res = NULL;
    lb_status st = store_exec(svc_batch_store(b), &res, "member_sessions_prune", 0, NULL, err);
    *more = st == LB_OK && atoi(PQcmdTuples(res)) >= MEMBER_PRUNE_BATCH;
    PQclear(res);
    return st;
}

const svc_def member_def = {
    .name = "member",
    .queries = member_queries,
    .n_queries = LB_COUNTOF(member_queries),
    .stmts = member_stmts,
    .n_stmts = MEMBER_STMTS_COUNT,
    .tick = member_tick,
    .tick_interval_ms = 60000,
};
