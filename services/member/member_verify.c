/* member_verify.c - email verification: a 6-digit code mailed to the member,
 * confirmed to make the member ACTIVE.
 *
 * The code exists in two places only: the mail (sealed inside the
 * layby.cmd.mailer.send command, so LAYBY_CMD never holds it in the clear)
 * and, as a keyed BLAKE2b hash, in LAYBY_MEMBER_CODES under the username's
 * blind index: "<issued ms> <wrong tries> <hash hex>". A new code replaces
 * the old one and its tries.
 *
 * A request for a code answers 202 whether or not the username and email
 * belong to a pending member, so it tells nobody which accounts exist; the
 * resend limit counts per username all the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/id.h"
#include "engine/log.h"
#include "member.h"

#define CODE_VALUE_MAX 160
#define KEY_MAX        (2 * MEMBER_HASH_BYTES + 16)
#define HOUR_MS        (3600LL * 1000)

static lb_status
code_hash_hex(char out[2 * MEMBER_HASH_BYTES + 1], const char *member_id, const char *code,
              lb_err *err)
{
    char v[ID_STR_LEN + 8];
    snprintf(v, sizeof v, "%s:%s", member_id, code);
    uint8_t h[MEMBER_HASH_BYTES];
    lb_status st = member_hash(h, "code", v, err);
    sodium_memzero(v, sizeof v);
    if (st == LB_OK)
        member_hex(out, h, sizeof h);
    return st;
}

static lb_status
uidx_hex(char out[2 * MEMBER_HASH_BYTES + 1], const char *username, lb_err *err)
{
    uint8_t idx[MEMBER_HASH_BYTES];
    lb_status st = member_index(idx, "username", username, err);
    if (st == LB_OK)
        member_hex(out, idx, sizeof idx);
    return st;
}

/* The pending member's row for uidx, or NULL (absent, or PGresult on error). */
static lb_status
member_find(PGresult **out, store *db, const char *uidx, lb_err *err)
{
    const char *params[] = { uidx };
    lb_status st = store_exec(db, out, "member_by_username", 1, params, err);
    if (st == LB_OK && PQntuples(*out) == 0) {
        PQclear(*out);
        *out = NULL;
    }
    return st;
}

/* The mail command, sealed, queued for the query's transaction. */
static lb_status
mail_queue(svc_query *q, const char *to, const char *code, lb_err *err)
{
    char text[256], mail_id[ID_STR_LEN], ad[ID_STR_LEN + 8];
    snprintf(
        text, sizeof text,
        "Your layby verification code is %s.\r\nIt is valid for %lld minutes.\r\n", code,
        (long long)(member_conf.code_ttl_ms / 60000 > 0 ? member_conf.code_ttl_ms / 60000 : 1));
    Layby__V1__MailContent mc = LAYBY__V1__MAIL_CONTENT__INIT;
    mc.to = (char *)to;
    mc.subject = "Your layby verification code";
    mc.text = text;
    size_t plen = protobuf_c_message_get_packed_size(&mc.base);
    uint8_t *plain = malloc(plen + 1), *sealed = malloc(plen + SEAL_OVERHEAD);
    lb_status st = LB_OK;
    if (plain == NULL || sealed == NULL) {
        st = lb_err_set(err, LB_ERR_NOMEM, "mail");
        goto out;
    }
    protobuf_c_message_pack(&mc.base, plain);
    id_new(mail_id);
    snprintf(ad, sizeof ad, "mail:%s", mail_id);
    size_t slen = 0;
    if ((st = seal_encrypt(sealed, plen + SEAL_OVERHEAD, &slen, &member_app->keys, plain, plen, ad,
                           err)) != LB_OK)
        goto out;
    Layby__V1__SendMail cmd = LAYBY__V1__SEND_MAIL__INIT;
    cmd.mail_id = mail_id;
    cmd.sealed.data = sealed;
    cmd.sealed.len = slen;
    st = member_event(q, SUBJ_MAILER_SEND, &cmd.base, err);
out:
    if (plain != NULL)
        sodium_memzero(plain, plen);
    sodium_memzero(text, sizeof text);
    free(plain);
    free(sealed);
    return st;
}

static ProtobufCMessage *
accepted_reply(void)
{
    Layby__V1__VerificationAccepted *a = malloc(sizeof *a);
    if (a == NULL)
        return NULL;
    layby__v1__verification_accepted__init(a);
    a->expires_in = member_conf.code_ttl_ms / 1000;
    return &a->base;
}

/* 0 when a code may be sent now, else ms to wait. */
static int64_t
resend_wait(const char *key, int64_t now)
{
    int64_t times[16];
    uint64_t rev;
    size_t n = member_kv_times(times, 16, &rev, member_app->limits, key, now, HOUR_MS);
    if (n > 0 && now - times[n - 1] < member_conf.resend_gap_ms)
        return member_conf.resend_gap_ms - (now - times[n - 1]);
    if ((int64_t)n >= member_conf.resend_per_hour)
        return times[n - (size_t)member_conf.resend_per_hour] + HOUR_MS - now;
    return 0;
}

lb_status
member_verification_send(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                         lb_err *err)
{
    const Layby__V1__VerificationSend *v = (const Layby__V1__VerificationSend *)req;
    lb_status st = member_username_check(v->username, err);
    if (st == LB_OK)
        st = member_email_check(v->email, err);
    char uidx[2 * MEMBER_HASH_BYTES + 1], key[KEY_MAX];
    if (st != LB_OK || (st = uidx_hex(uidx, v->username, err)) != LB_OK)
        return st;
    int64_t now = lb_now_ms();
    snprintf(key, sizeof key, "send.%s", uidx);
    int64_t wait = resend_wait(key, now);
    if (wait > 0) {
        *reply = member_throttled(wait, "a code was sent recently; wait before asking again");
        return *reply ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "throttled");
    }
    if ((st = member_kv_times_add(member_app->limits, key, now, HOUR_MS, err)) != LB_OK)
        return st;

    store *db = svc_query_store(q);
    PGresult *row = NULL;
    if ((st = member_find(&row, db, uidx, err)) != LB_OK)
        return st;
    uint8_t e[MEMBER_HASH_BYTES];
    char eidx[2 * MEMBER_HASH_BYTES + 1] = "";
    if (row != NULL && (st = member_index(e, "email", v->email, err)) == LB_OK)
        member_hex(eidx, e, sizeof e);
    bool send =
        row != NULL && st == LB_OK &&
        strcmp(PQgetvalue(row, 0, MEMBER_COL_STATUS), MEMBER_STATUS_PENDING) == 0 &&
        sodium_memcmp(eidx, PQgetvalue(row, 0, MEMBER_COL_EMAIL_INDEX), sizeof eidx - 1) == 0;
    if (send) {
        char code[8], hash[2 * MEMBER_HASH_BYTES + 1], value[CODE_VALUE_MAX], ckey[KEY_MAX];
        snprintf(code, sizeof code, "%06u", (unsigned)randombytes_uniform(1000000));
        const char *id = PQgetvalue(row, 0, MEMBER_COL_ID);
        st = code_hash_hex(hash, id, code, err);
        snprintf(value, sizeof value, "%lld 0 %s", (long long)now, hash);
        snprintf(ckey, sizeof ckey, "code.%s", uidx);
        uint64_t rev = 0;
        natsStatus ns = NATS_OK;
        if (st == LB_OK &&
            (ns = kvStore_Put(&rev, member_app->codes, ckey, value, (int)strlen(value))) != NATS_OK)
            st = bus__nats_err(err, ns, "store verification code");
        if (st == LB_OK && (st = store_begin(db, err)) == LB_OK) {
            if ((st = mail_queue(q, v->email, code, err)) != LB_OK ||
                (st = svc_query_commit(q, err)) != LB_OK)
                svc_query_rollback(q);
        }
        sodium_memzero(code, sizeof code);
        if (st == LB_OK)
            log_info(&(log_ctx){ .correlation = svc_query_env(q)->correlation }, "member.code_sent",
                     "verification code mailed", LOG_STR("member", id));
    }
    PQclear(row);
    if (st != LB_OK)
        return st;
    if ((*reply = accepted_reply()) == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "accepted");
    return LB_OK;
}

static bool
code_shape_ok(const char *c)
{
    if (c == NULL || strlen(c) != 6)
        return false;
    for (int i = 0; i < 6; i++)
        if (c[i] < '0' || c[i] > '9')
            return false;
    return true;
}

static ProtobufCMessage *
active_reply(const char *member_id)
{
    Layby__V1__MemberStatus *m = malloc(sizeof *m);
    if (m == NULL)
        return NULL;
    layby__v1__member_status__init(m);
    m->member_id = strdup(member_id);
    m->status = strdup(MEMBER_STATUS_ACTIVE);
    if (m->member_id == NULL || m->status == NULL) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return NULL;
    }
    return &m->base;
}

/* Counts one wrong try on the code entry of revision rev (another instance
 * may count at once: re-read and count again on a conflict). */
static void
code_try_count(const char *ckey, uint64_t rev, int64_t issued, int64_t tries, const char *hash)
{
    for (int attempt = 0; attempt < 4; attempt++) {
        char value[CODE_VALUE_MAX];
        snprintf(value, sizeof value, "%lld %lld %s", (long long)issued, (long long)tries + 1,
                 hash);
        uint64_t out = 0;
        if (kvStore_Update(&out, member_app->codes, ckey, value, (int)strlen(value), rev) ==
            NATS_OK)
            return;
        kvEntry *e = NULL;
        if (kvStore_Get(&e, member_app->codes, ckey) != NATS_OK || e == NULL)
            return;
        long long i2 = 0, t2 = 0;
        char h2[2 * MEMBER_HASH_BYTES + 1];
        char buf[CODE_VALUE_MAX];
        int len = kvEntry_ValueLen(e);
        snprintf(buf, sizeof buf, "%.*s", len, (const char *)kvEntry_Value(e));
        rev = kvEntry_Revision(e);
        kvEntry_Destroy(e);
        if (sscanf(buf, "%lld %lld %64s", &i2, &t2, h2) != 3 || strcmp(h2, hash) != 0)
            return; /* a new code replaced it: nothing to count */
        tries = t2;
    }
}

lb_status
member_verification_confirm(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                            lb_err *err)
{
    const Layby__V1__VerificationConfirm *v = (const Layby__V1__VerificationConfirm *)req;
    lb_status st = member_username_check(v->username, err);
    if (st != LB_OK)
        return st;
    if (!code_shape_ok(v->code))
        return lb_err_field(err, LB_ERR_CODE, "code", "code must be 6 digits");
    char uidx[2 * MEMBER_HASH_BYTES + 1], ckey[KEY_MAX];
    if ((st = uidx_hex(uidx, v->username, err)) != LB_OK)
        return st;
    snprintf(ckey, sizeof ckey, "code.%s", uidx);
    store *db = svc_query_store(q);
    PGresult *row = NULL;
    if ((st = member_find(&row, db, uidx, err)) != LB_OK)
        return st;
    if (row == NULL)
        return lb_err_field(err, LB_ERR_CODE, "code", "code is wrong or expired");
    char id[ID_STR_LEN];
    snprintf(id, sizeof id, "%s", PQgetvalue(row, 0, MEMBER_COL_ID));
    bool active = strcmp(PQgetvalue(row, 0, MEMBER_COL_STATUS), MEMBER_STATUS_ACTIVE) == 0;
    PQclear(row);
    if (active)
        return (*reply = active_reply(id)) ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "reply");

    kvEntry *e = NULL;
    if (kvStore_Get(&e, member_app->codes, ckey) != NATS_OK || e == NULL)
        return lb_err_field(err, LB_ERR_CODE, "code", "code is wrong or expired");
    char buf[CODE_VALUE_MAX], stored[2 * MEMBER_HASH_BYTES + 1], hash[2 * MEMBER_HASH_BYTES + 1];
    snprintf(buf, sizeof buf, "%.*s", kvEntry_ValueLen(e), (const char *)kvEntry_Value(e));
    uint64_t rev = kvEntry_Revision(e);
    kvEntry_Destroy(e);
    long long issued = 0, tries = 0;
    int64_t now = lb_now_ms();
    if (sscanf(buf, "%lld %lld %64s", &issued, &tries, stored) != 3 ||
        now - issued > member_conf.code_ttl_ms) {
        member_kv_del(member_app->codes, ckey, NULL);
        return lb_err_field(err, LB_ERR_CODE, "code", "code is wrong or expired");
    }
    if (tries >= member_conf.code_tries) {
        *reply =
            member_throttled(member_conf.resend_gap_ms, "too many wrong codes; ask for a new code");
        return *reply ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "throttled");
    }
    if ((st = code_hash_hex(hash, id, v->code, err)) != LB_OK)
        return st;
    if (sodium_memcmp(hash, stored, sizeof hash - 1) != 0) {
        code_try_count(ckey, rev, issued, tries, stored);
        return lb_err_field(err, LB_ERR_CODE, "code", "code is wrong or expired");
    }
    const char *params[] = { id };
    Layby__V1__MemberActivated ev = LAYBY__V1__MEMBER_ACTIVATED__INIT;
    ev.member_id = id;
    if ((st = store_begin(db, err)) != LB_OK)
        return st;
    if ((st = store_exec(db, NULL, "member_activate", 1, params, err)) != LB_OK ||
        (st = member_event(q, SUBJ_MEMBER_ACTIVATED, &ev.base, err)) != LB_OK ||
        (st = svc_query_commit(q, err)) != LB_OK) {
        svc_query_rollback(q);
        return st;
    }
    member_kv_del(member_app->codes, ckey, NULL);
    log_info(&(log_ctx){ .correlation = svc_query_env(q)->correlation }, "member.activated",
             "member verified the email address", LOG_STR("member", id));
    return (*reply = active_reply(id)) ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "reply");
}
