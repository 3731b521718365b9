/* member_sql.c - every SQL statement of the member service, prepared by name
 * on each connection (store.h). Binary values (blind indexes, sealed columns,
 * token hashes) travel as hex text: decode($n, 'hex') in, encode(.., 'hex') out. */
#include "member.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

#define MEMBER_COLS                                                                  \
    "member_id::text, encode(username_sealed, 'hex'), encode(email_sealed, 'hex'), " \
    "encode(phone_sealed, 'hex'), password_hash, role, status, locked, "             \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "  \
    "encode(email_index, 'hex')"

/* clang-format off */
static const char MEMBER_SQL_INSERT[] =
    "INSERT INTO member.members (member_id, username_index, email_index, username_sealed, "
    "email_sealed, phone_sealed, password_hash, status, created_at, updated_at) "
    "VALUES ($1::uuid, decode($2, 'hex'), decode($3, 'hex'), decode($4, 'hex'), "
    "decode($5, 'hex'), decode($6, 'hex'), $7, 'PENDING_VERIFICATION', $8::timestamptz, "
    "$8::timestamptz) ON CONFLICT (username_index) DO NOTHING RETURNING member_id::text";
static const char MEMBER_SQL_BY_USERNAME[] =
    "SELECT " MEMBER_COLS " FROM member.members WHERE username_index = decode($1, 'hex')";
static const char MEMBER_SQL_BY_ID[] =
    "SELECT " MEMBER_COLS " FROM member.members WHERE member_id = $1::uuid";
static const char MEMBER_SQL_BY_ID_LOCK[] =
    "SELECT " MEMBER_COLS " FROM member.members WHERE member_id = $1::uuid FOR UPDATE";
static const char MEMBER_SQL_ACTIVATE[] =
    "UPDATE member.members SET status = 'ACTIVE', updated_at = now() "
    "WHERE member_id = $1::uuid AND status = 'PENDING_VERIFICATION' RETURNING 1";
static const char MEMBER_SQL_PASSWORD_SET[] =
    "UPDATE member.members SET password_hash = $2, updated_at = now() WHERE member_id = $1::uuid";
static const char MEMBER_SQL_PHONE_SET[] =
    "UPDATE member.members SET phone_sealed = decode($2, 'hex'), updated_at = now() "
    "WHERE member_id = $1::uuid";
static const char MEMBER_SQL_ROLE_SET[] =
    "UPDATE member.members SET role = $2, updated_at = now() WHERE member_id = $1::uuid";
static const char MEMBER_SQL_LOCKED_SET[] =
    "UPDATE member.members SET locked = $2::boolean, updated_at = now() WHERE member_id = $1::uuid";
/* Rows with a column not sealed by key $1, locked so two rekeys never race. */
static const char MEMBER_SQL_REKEY_BATCH[] =
    "SELECT " MEMBER_COLS " FROM member.members WHERE get_byte(username_sealed, 0) <> $1::int "
    "OR get_byte(email_sealed, 0) <> $1::int OR get_byte(phone_sealed, 0) <> $1::int "
    "ORDER BY member_id LIMIT $2::int FOR UPDATE SKIP LOCKED";
static const char MEMBER_SQL_REKEY_LEFT[] =
    "SELECT count(*) FROM member.members WHERE get_byte(username_sealed, 0) <> $1::int "
    "OR get_byte(email_sealed, 0) <> $1::int OR get_byte(phone_sealed, 0) <> $1::int";
static const char MEMBER_SQL_RESEAL[] =
    "UPDATE member.members SET username_sealed = decode($2, 'hex'), "
    "email_sealed = decode($3, 'hex'), phone_sealed = decode($4, 'hex') WHERE member_id = $1::uuid";

static const char MEMBER_SQL_SESSION_INSERT[] =
    "INSERT INTO member.sessions (session_id, member_id, access_jti, access_exp, expires_at) "
    "VALUES ($1::uuid, $2::uuid, $3, $4::bigint, now() + $5::bigint * interval '1 millisecond')";
static const char MEMBER_SQL_REFRESH_INSERT[] =
    "INSERT INTO member.refresh_tokens (token_hash, session_id) VALUES (decode($1, 'hex'), $2::uuid)";
static const char MEMBER_SQL_REFRESH_FIND[] =
    "SELECT rt.session_id::text, rt.spent_at IS NOT NULL, s.member_id::text, "
    "s.revoked_at IS NOT NULL, s.expires_at < now(), m.role, m.status, m.locked "
    "FROM member.refresh_tokens rt JOIN member.sessions s USING (session_id) "
    "JOIN member.members m USING (member_id) "
    "WHERE rt.token_hash = decode($1, 'hex') FOR UPDATE OF rt, s";
static const char MEMBER_SQL_REFRESH_SPEND[] =
    "UPDATE member.refresh_tokens SET spent_at = now() WHERE token_hash = decode($1, 'hex')";
static const char MEMBER_SQL_SESSION_ROTATE[] =
    "UPDATE member.sessions SET access_jti = $2, access_exp = $3::bigint WHERE session_id = $1::uuid";
static const char MEMBER_SQL_SESSION_REVOKE[] =
    "UPDATE member.sessions SET revoked_at = now() WHERE session_id = $1::uuid "
    "AND member_id = $2::uuid AND revoked_at IS NULL RETURNING access_jti, access_exp";
static const char MEMBER_SQL_SESSIONS_END[] =
    "UPDATE member.sessions SET revoked_at = now() WHERE member_id = $1::uuid "
    "AND revoked_at IS NULL AND session_id IS DISTINCT FROM $2::uuid "
    "RETURNING access_jti, access_exp";
static const char MEMBER_SQL_SESSION_LIVE[] =
    "SELECT 1 FROM member.sessions WHERE session_id = $1::uuid AND member_id = $2::uuid "
    "AND revoked_at IS NULL";
/* Logins that can never be used again, a day after they ended (expired, or
 * revoked: logout, reuse, password change, lock), in batches of
 * MEMBER_PRUNE_BATCH (tick); their refresh tokens go with them (CASCADE).
 * The day keeps an ended login readable for an operator following up a
 * member.refresh_reuse warning; nothing needs it afterwards: a revoked
 * access token is in LAYBY_REVOKED until its exp, and a refresh token
 * whose row is gone is refused like a spent one of an ended login. */
static const char MEMBER_SQL_SESSIONS_PRUNE[] =
    "DELETE FROM member.sessions WHERE session_id IN ("
    "SELECT session_id FROM member.sessions WHERE expires_at < now() - interval '1 day' "
    "UNION SELECT session_id FROM member.sessions WHERE revoked_at < now() - interval '1 day' "
    "LIMIT " STR(MEMBER_PRUNE_BATCH) ")";

const store_stmt member_stmts[MEMBER_STMTS_COUNT] = {
    { "member_insert",          MEMBER_SQL_INSERT },
    { "member_by_username",     MEMBER_SQL_BY_USERNAME },
    { "member_by_id",           MEMBER_SQL_BY_ID },
    { "member_by_id_lock",      MEMBER_SQL_BY_ID_LOCK },
    { "member_activate",        MEMBER_SQL_ACTIVATE },
    { "member_password_set",    MEMBER_SQL_PASSWORD_SET },
    { "member_phone_set",       MEMBER_SQL_PHONE_SET },
    { "member_role_set",        MEMBER_SQL_ROLE_SET },
    { "member_locked_set",      MEMBER_SQL_LOCKED_SET },
    { "member_rekey_batch",     MEMBER_SQL_REKEY_BATCH },
    { "member_rekey_left",      MEMBER_SQL_REKEY_LEFT },
    { "member_reseal",          MEMBER_SQL_RESEAL },
    { "member_session_insert",  MEMBER_SQL_SESSION_INSERT },
    { "member_refresh_insert",  MEMBER_SQL_REFRESH_INSERT },
    { "member_refresh_find",    MEMBER_SQL_REFRESH_FIND },
    { "member_refresh_spend",   MEMBER_SQL_REFRESH_SPEND },
    { "member_session_rotate",  MEMBER_SQL_SESSION_ROTATE },
    { "member_session_revoke",  MEMBER_SQL_SESSION_REVOKE },
    { "member_sessions_end",    MEMBER_SQL_SESSIONS_END },
    { "member_session_live",    MEMBER_SQL_SESSION_LIVE },
    { "member_sessions_prune",  MEMBER_SQL_SESSIONS_PRUNE },
};
/* clang-format on */
