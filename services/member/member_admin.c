/* member_admin.c - operators' requests (layby-ctl member ...): show a member
 * decrypted, grant the ADMIN role, lock and unlock, and re-seal rows under the
 * current data key in batches while the shop runs.
 *
 * Only the admin NATS user may publish layby.qry.member.admin and .rekey
 * (etc/nats-users.tsv: the edge may not), so these need no token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/id.h"
#include "engine/log.h"
#include "member.h"

typedef lb_status (*admin_fn)(store *db, const PGresult *row, const char *id, lb_err *err);

static lb_status
admin_grant(store *db, const PGresult *row, const char *id, lb_err *err)
{
    if (strcmp(PQgetvalue(row, 0, MEMBER_COL_STATUS), MEMBER_STATUS_ACTIVE) != 0)
        return lb_err_set(err, LB_ERR_STATE, "only a verified member can be an admin");
    const char *params[] = { id, "ADMIN" };
    return store_exec(db, NULL, "member_role_set", 2, params, err);
}

static lb_status
admin_lock(store *db, const PGresult *row, const char *id, lb_err *err)
{
    (void)row;
    const char *params[] = { id, "true" };
    lb_status st = store_exec(db, NULL, "member_locked_set", 2, params, err);
    if (st == LB_OK) /* a locked member's logins end now, access tokens included */
        st = member_sessions_end(db, id, NULL, err);
    return st;
}

static lb_status
admin_unlock(store *db, const PGresult *row, const char *id, lb_err *err)
{
    (void)row;
    const char *params[] = { id, "false" };
    return store_exec(db, NULL, "member_locked_set", 2, params, err);
}

typedef struct admin_action {
    const char *name;
    admin_fn fn;       /* NULL = read only */
    const char *event; /* MemberChanged.what */
} admin_action;

/* clang-format off */
static const admin_action admin_actions[] = {
    { "show",        NULL,         NULL },
    { "grant_admin", admin_grant,  "role" },
    { "lock",        admin_lock,   "locked" },
    { "unlock",      admin_unlock, "unlocked" },
};
/* clang-format on */

static lb_status
record_from_row(Layby__V1__MemberRecord **out, const PGresult *r, lb_err *err)
{
    const char *id = PQgetvalue(r, 0, MEMBER_COL_ID);
    char u[MEMBER_FIELD_MAX + 1], e[MEMBER_FIELD_MAX + 1], p[MEMBER_FIELD_MAX + 1];
    lb_status st;
    if ((st = member_unseal(u, sizeof u, "username", id, r, 0, MEMBER_COL_USERNAME, err)) !=
            LB_OK ||
        (st = member_unseal(e, sizeof e, "email", id, r, 0, MEMBER_COL_EMAIL, err)) != LB_OK ||
        (st = member_unseal(p, sizeof p, "phone", id, r, 0, MEMBER_COL_PHONE, err)) != LB_OK)
        return st;
    Layby__V1__MemberRecord *rec = malloc(sizeof *rec);
    Layby__V1__Me *me = malloc(sizeof *me);
    if (rec == NULL || me == NULL) {
        free(rec);
        free(me);
        return lb_err_set(err, LB_ERR_NOMEM, "record");
    }
    layby__v1__member_record__init(rec);
    layby__v1__me__init(me);
    rec->me = me;
    me->member_id = strdup(id);
    me->username = strdup(u);
    me->email = strdup(e);
    me->phone = strdup(p);
    me->role = strdup(PQgetvalue(r, 0, MEMBER_COL_ROLE));
    me->created_at = strdup(PQgetvalue(r, 0, MEMBER_COL_CREATED));
    bool locked = PQgetvalue(r, 0, MEMBER_COL_LOCKED)[0] == 't';
    rec->status = strdup(locked ? "LOCKED" : PQgetvalue(r, 0, MEMBER_COL_STATUS));
    /* the key id is the first byte of the sealed value (engine/seal.h) */
    unsigned kid = 0;
    sscanf(PQgetvalue(r, 0, MEMBER_COL_USERNAME), "%2x", &kid);
    rec->key_id = kid;
    sodium_memzero(u, sizeof u);
    sodium_memzero(e, sizeof e);
    sodium_memzero(p, sizeof p);
    if (!me->member_id || !me->username || !me->email || !me->phone || !me->role ||
        !me->created_at || !rec->status) {
        protobuf_c_message_free_unpacked(&rec->base, NULL);
        return lb_err_set(err, LB_ERR_NOMEM, "record fields");
    }
    *out = rec;
    return LB_OK;
}

/* The row of ref (member id or username), locked when for_update. */
static lb_status
row_find(PGresult **out, store *db, const char *ref, lb_err *err)
{
    char uidx[2 * MEMBER_HASH_BYTES + 1];
    const char *stmt = "member_by_id_lock", *param = ref;
    if (!id_valid(ref)) {
        uint8_t idx[MEMBER_HASH_BYTES];
        lb_status st = member_index(idx, "username", ref, err);
        if (st != LB_OK)
            return st;
        member_hex(uidx, idx, sizeof idx);
        stmt = "member_by_username";
        param = uidx;
    }
    const char *params[] = { param };
    lb_status st = store_exec(db, out, stmt, 1, params, err);
    if (st == LB_OK && PQntuples(*out) == 0) {
        PQclear(*out);
        *out = NULL;
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no such member");
    }
    return st;
}

lb_status
member_admin(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__MemberAdmin *a = (const Layby__V1__MemberAdmin *)req;
    const admin_action *act = NULL;
    for (size_t i = 0; i < LB_COUNTOF(admin_actions); i++)
        if (strcmp(admin_actions[i].name, a->action) == 0)
            act = &admin_actions[i];
    if (act == NULL)
        return lb_err_field(err, LB_ERR_INVALID, "action", "unknown action");
    if (a->ref == NULL || a->ref[0] == '\0' || strlen(a->ref) > MEMBER_FIELD_MAX)
        return lb_err_field(err, LB_ERR_INVALID, "ref", "name a member by username or id");
    store *db = svc_query_store(q);
    PGresult *row = NULL;
    lb_status st = store_begin(db, err);
    if (st != LB_OK)
        return st;
    if ((st = row_find(&row, db, a->ref, err)) != LB_OK)
        goto out_rollback;
    if (act->fn != NULL) {
        char id[ID_STR_LEN];
        snprintf(id, sizeof id, "%s", PQgetvalue(row, 0, MEMBER_COL_ID));
        Layby__V1__MemberChanged ev = LAYBY__V1__MEMBER_CHANGED__INIT;
        ev.member_id = id;
        ev.what = (char *)act->event;
        const char *params[] = { id };
        if ((st = act->fn(db, row, id, err)) != LB_OK ||
            (st = member_event(q, SUBJ_MEMBER_CHANGED, &ev.base, err)) != LB_OK)
            goto out_rollback;
        PQclear(row);
        row = NULL;
        if ((st = store_exec(db, &row, "member_by_id", 1, params, err)) != LB_OK)
            goto out_rollback;
        log_info(&(log_ctx){ .correlation = svc_query_env(q)->correlation }, "member.admin",
                 "operator changed a member", LOG_STR("member", id), LOG_STR("action", act->name));
    }
    Layby__V1__MemberRecord *rec = NULL;
    if ((st = record_from_row(&rec, row, err)) != LB_OK)
        goto out_rollback;
    if ((st = svc_query_commit(q, err)) != LB_OK) {
        protobuf_c_message_free_unpacked(&rec->base, NULL);
        goto out_rollback;
    }
    PQclear(row);
    *reply = &rec->base;
    return LB_OK;
out_rollback:
    PQclear(row);
    svc_query_rollback(q);
    return st;
}

/* Re-seals one column of row i under the current key into hex. */
static lb_status
reseal(char *out, const PGresult *r, int i, int col, const char *column, lb_err *err)
{
    const char *id = PQgetvalue(r, i, MEMBER_COL_ID);
    char plain[MEMBER_FIELD_MAX + 1];
    uint8_t buf[MEMBER_FIELD_MAX + SEAL_OVERHEAD];
    size_t len = 0;
    lb_status st = member_unseal(plain, sizeof plain, column, id, r, i, col, err);
    if (st == LB_OK && (st = member_seal(buf, sizeof buf, &len, column, id, plain, err)) == LB_OK)
        member_hex(out, buf, len);
    sodium_memzero(plain, sizeof plain);
    return st;
}

lb_status
member_rekey(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply, lb_err *err)
{
    const Layby__V1__Rekey *rk = (const Layby__V1__Rekey *)req;
    int64_t batch = rk->batch > 0 && rk->batch <= 10000 ? rk->batch : 500;
    char cur[8], lim[24];
    snprintf(cur, sizeof cur, "%u", (unsigned)member_app->keys.id[0]);
    snprintf(lim, sizeof lim, "%lld", (long long)batch);
    store *db = svc_query_store(q);
    PGresult *rows = NULL, *left = NULL;
    const char *pb[] = { cur, lim };
    int64_t done = 0;
    lb_status st = store_begin(db, err);
    if (st != LB_OK)
        return st;
    if ((st = store_exec(db, &rows, "member_rekey_batch", 2, pb, err)) != LB_OK)
        goto out_rollback;
    for (int i = 0; i < PQntuples(rows); i++) {
        char u[2 * (MEMBER_FIELD_MAX + SEAL_OVERHEAD) + 1], e[sizeof u], p[sizeof u];
        if ((st = reseal(u, rows, i, MEMBER_COL_USERNAME, "username", err)) != LB_OK ||
            (st = reseal(e, rows, i, MEMBER_COL_EMAIL, "email", err)) != LB_OK ||
            (st = reseal(p, rows, i, MEMBER_COL_PHONE, "phone", err)) != LB_OK)
            goto out_rollback;
        const char *pr[] = { PQgetvalue(rows, i, MEMBER_COL_ID), u, e, p };
        if ((st = store_exec(db, NULL, "member_reseal", 4, pr, err)) != LB_OK)
            goto out_rollback;
        done++;
    }
    const char *pc[] = { cur };
    if ((st = store_exec(db, &left, "member_rekey_left", 1, pc, err)) != LB_OK ||
        (st = store_commit(db, err)) != LB_OK)
        goto out_rollback;
    Layby__V1__RekeyProgress *pr = malloc(sizeof *pr);
    if (pr == NULL) {
        st = lb_err_set(err, LB_ERR_NOMEM, "rekey");
        goto out;
    }
    layby__v1__rekey_progress__init(pr);
    pr->resealed = done;
    pr->remaining = strtoll(PQgetvalue(left, 0, 0), NULL, 10);
    *reply = &pr->base;
    goto out;
out_rollback:
    store_rollback(db);
out:
    PQclear(rows);
    PQclear(left);
    return st;
}
