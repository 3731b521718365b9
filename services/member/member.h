/* member.h - the member service's parts: validation (member_validate.c), its
 * SQL (member_sql.c), short-lived state in key-value buckets (member_kv.c),
 * logins and tokens (member_auth.c), the Argon2id pool (member_pool.c), the
 * request table (member_handlers.c) and the operators' requests
 * (member_admin.c).
 *
 * Requests carrying passwords or personal data arrive as core request/reply
 * on layby.qry.member.<name>, never through a stream (docs/DECISIONS.md);
 * each write runs its own transaction with the outbox, whose events carry
 * member ids only, and commits it with svc_query_commit(), which hands the
 * rows to the relay at once (no wait for the sweep).
 *
 * Ownership: member_ctx is built once by main() (member_ctx_open) and freed by
 *            member_ctx_close() after the service stopped; handlers borrow it.
 * Threads:   the context is read-only after start except the hashing pool and
 *            the bus, which are thread-safe.
 */
#ifndef LAYBY_SERVICES_MEMBER_MEMBER_H
#define LAYBY_SERVICES_MEMBER_MEMBER_H

#include <libpq-fe.h>
#include <sodium.h>

#include "engine/es256.h"
#include "engine/seal.h"
#include "engine/subjects.h"
#include "engine/svc.h"
#include "layby/v1/common.pb-c.h"
#include "layby/v1/mail.pb-c.h"
#include "layby/v1/member.pb-c.h"

/* Limits of the sign-up fields (member_validate.c). */
#define MEMBER_USERNAME_MIN 3
#define MEMBER_USERNAME_MAX 32
#define MEMBER_PASSWORD_MIN 10
#define MEMBER_PASSWORD_MAX 128
#define MEMBER_EMAIL_MAX    254
#define MEMBER_PHONE_MAX    32 /* characters as typed, spaces and dashes included */
#define MEMBER_FIELD_MAX    256

/* Argon2id at OWASP's minimum (docs/DECISIONS.md, "password hashing"). */
#define MEMBER_ARGON_MEMLIMIT (19u * 1024u * 1024u)
#define MEMBER_ARGON_OPSLIMIT 2u

/* The hashing cgroup's weight (--hash-cgroup-shares; member_pool.c): the
 * string is the option's default, the number the unit test's. 0: an idle
 * group (cpu.idle = 1), the default since the quiet-machine figures of
 * docs/DECISIONS.md §9 (a weight of 32 let a /me wait a whole hash). */
#define MEMBER_HASH_CGROUP_SHARES_STR "0"
#define MEMBER_HASH_CGROUP_SHARES     0

#define MEMBER_STATUS_PENDING "PENDING_VERIFICATION"
#define MEMBER_STATUS_ACTIVE  "ACTIVE"

/* The daemon's own settings (LAYBY_MEMBER_* and the shared key files). */
#define MEMBER_HASH_BYTES 32 /* keyed BLAKE2b: blind indexes, code and address hashes */

typedef struct member_cfg {
    const char *index_key_file; /* data keys: seal_keys_load("MEMBER") */
    const char *jwt_key_file;
    const char *jwt_issuer;
    int64_t access_ttl_ms;
    int64_t refresh_ttl_ms;
    int64_t code_ttl_ms;
    int64_t code_tries;           /* wrong tries per code before 429 */
    int64_t resend_gap_ms;        /* at most one code per gap */
    int64_t resend_per_hour;      /* and this many per hour */
    int64_t login_fail_max;       /* failures per window, per username and per address */
    int64_t login_window_ms;      /* the failure window */
    int64_t hash_threads;         /* Argon2id pool */
    int64_t hash_queue;           /* logins waiting for the pool before 429 */
    const char *hash_priority;    /* the pool threads' scheduling (member_pool.c) */
    const char *hash_cgroup;      /* "" or a cpu cgroup the pool threads join */
    int64_t hash_cgroup_shares;   /* its weight (v1 shares); 0: an idle group */
    int64_t hash_cgroup_grace_ms; /* a hash's time in it before it leaves */
    int64_t argon_memlimit;       /* bytes */
    int64_t argon_opslimit;       /* passes */
} member_cfg;

extern member_cfg member_conf;
extern const svc_def member_def;

/* --- validation (pure) ----------------------------------------------------- */

lb_status member_username_check(const char *u, lb_err *err);
lb_status member_password_check(const char *pw, const char *username, const char *field,
                                lb_err *err);
lb_status member_email_check(const char *e, lb_err *err);
lb_status member_phone_check(const char *p, lb_err *err);
/* All four of a sign-up, field by field. */
lb_status member_signup_check(const Layby__V1__SignUp *s, lb_err *err);
/* The lower-case form uniqueness and look-ups use (out: MEMBER_USERNAME_MAX + 1). */
void member_fold(char *out, size_t n, const char *s);

/* --- context ------------------------------------------------------------------ */

typedef struct member_pool member_pool;

typedef struct member_ctx {
    /* config, fixed after start */
    seal_keys keys;                                 /* personal data (engine/seal.h) */
    uint8_t index_key[crypto_generichash_KEYBYTES]; /* blind indexes and hashes */
    es256_key *signer;                              /* access tokens' private key */
    char dummy_hash[crypto_pwhash_STRBYTES];        /* verified for unknown users */
    /* thread-safe */
    bus *bus;          /* key-value buckets */
    kvStore *codes;    /* LAYBY_MEMBER_CODES */
    kvStore *limits;   /* LAYBY_MEMBER_LIMITS */
    kvStore *revoked;  /* LAYBY_REVOKED */
    member_pool *pool; /* Argon2id */
} member_ctx;

extern member_ctx *member_app;

/* Loads keys, opens the buckets and starts the pool from member_conf and the
 * shared settings. On error nothing is left open. */
lb_status member_ctx_open(member_ctx **out, const svc_cfg *sc, lb_err *err);
void member_ctx_close(member_ctx *c); /* NULL is a no-op */

/* --- sealed columns ------------------------------------------------------- */

/* Seals a text column of member_id ("username", "email", "phone") into out
 * (cap bytes). */
lb_status member_seal(uint8_t *out, size_t cap, size_t *len, const char *column,
                      const char *member_id, const char *text, lb_err *err);
/* Opens a bytea column (binary result) into out (n bytes, NUL-terminated). */
lb_status member_unseal(char *out, size_t n, const char *column, const char *member_id,
                        const PGresult *r, int row, int col, lb_err *err);
/* Keyed BLAKE2b of "<kind>\0<value>" under the index key: equal inputs give
 * equal hashes, and without the key nobody can test a guess. */
lb_status member_hash(uint8_t out[MEMBER_HASH_BYTES], const char *kind, const char *value,
                      lb_err *err);
/* Blind index of a username or an email: member_hash of the case-folded text. */
lb_status member_index(uint8_t out[MEMBER_HASH_BYTES], const char *kind, const char *value,
                       lb_err *err);

/* --- passwords (member_pool.c) --------------------------------------------- */

/* Argon2id on the pool, waiting for it. LB_ERR_THROTTLED when the pool
 * already holds threads + queue jobs. */
lb_status member_pw_hash(char out[crypto_pwhash_STRBYTES], const char *pw, lb_err *err);
/* LB_OK when pw matches hash; LB_ERR_CREDENTIALS when not. */
lb_status member_pw_verify(const char *hash, const char *pw, lb_err *err);
/* Where the hashing threads hash (member_pool.c): dir "" or NULL = none;
 * otherwise a cpu cgroup folder, made if missing and given a weight of
 * `shares` (v1 cpu.shares; 0: idle, cpu.idle = 1), that each thread moves
 * itself into; a job that has hashed there for grace_ms (0: no limit) has its
 * thread moved to the folder's parent until its next job. */
typedef struct member_pool_cgroup {
    const char *dir;
    int64_t shares;
    int64_t grace_ms;
} member_pool_cgroup;
#ifdef LAYBY_TEST_HOOKS
/* shares for a cgroup whose weight is not set (tests: a cgroup v2 hierarchy
 * without the cpu controller still tries the thread moves) */
#define MEMBER_HASH_CGROUP_NO_WEIGHT (-1)
#endif
/* Starts `threads` hashing threads scheduled as `priority` ("normal", "low",
 * "batch", "idle"); admits threads + queue jobs at once. LB_ERR_CONFIG for an
 * unknown priority or one the threads cannot take. cg (NULL: none): the
 * cgroup; one it cannot use only logs member.hash_cgroup_failed, once; a
 * thread that cannot leave it after a grace logs
 * member.hash_cgroup_leave_failed, once, and the pool goes on without it. */
lb_status member_pool_new(member_pool **out, size_t threads, size_t queue, const char *priority,
                          const member_pool_cgroup *cg, lb_err *err);
void member_pool_free(member_pool *p); /* joins its threads; NULL is a no-op */
/* Jobs admitted and not yet done (running or waiting). */
size_t member_pool_in_flight(member_pool *p);
/* Jobs whose thread a grace took out of the cgroup, since the start. */
size_t member_pool_cgroup_left(member_pool *p);

/* --- key-value state (member_kv.c) ------------------------------------------ */

/* Hex of a blind index or hash, used as a key-value key (65 bytes). */
void member_hex(char *out, const uint8_t *b, size_t n);
/* Times of recent events under key in the limits bucket, oldest first;
 * returns how many of the last `window_ms` (at most cap). */
size_t member_kv_times(int64_t *times, size_t cap, uint64_t *rev, kvStore *kv, const char *key,
                       int64_t now_ms, int64_t window_ms);
/* Appends now_ms to the list under key (keeping those within window_ms). */
lb_status member_kv_times_add(kvStore *kv, const char *key, int64_t now_ms, int64_t window_ms,
                              lb_err *err);
lb_status member_kv_del(kvStore *kv, const char *key, lb_err *err);
/* Marks jti revoked until exp_s (the edge watches LAYBY_REVOKED). */
lb_status member_kv_revoke(const char *jti, int64_t exp_s, lb_err *err);

/* --- requests --------------------------------------------------------------- */

lb_status member_verification_send(svc_query *q, const ProtobufCMessage *req,
                                   ProtobufCMessage **reply, lb_err *err);
lb_status member_verification_confirm(svc_query *q, const ProtobufCMessage *req,
                                      ProtobufCMessage **reply, lb_err *err);
lb_status member_login(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                       lb_err *err);
lb_status member_refresh(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                         lb_err *err);
lb_status member_logout(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                        lb_err *err);
lb_status member_password_change(svc_query *q, const ProtobufCMessage *req,
                                 ProtobufCMessage **reply, lb_err *err);
lb_status member_me_get(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                        lb_err *err);
lb_status member_phone_change(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                              lb_err *err);
lb_status member_admin(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                       lb_err *err);
lb_status member_rekey(svc_query *q, const ProtobufCMessage *req, ProtobufCMessage **reply,
                       lb_err *err);

/* Ends sessions of member_id (all but keep_session, which may be NULL) in the
 * caller's transaction and revokes their access tokens. */
lb_status member_sessions_end(store *s, const char *member_id, const char *keep_session,
                              lb_err *err);

/* A Throttled reply (HTTP 429 + Retry-After). */
ProtobufCMessage *member_throttled(int64_t retry_after_ms, const char *message);
/* Queues a message (events: member ids only) caused by query q for its open
 * transaction; svc_query_commit() writes it and hands it to the relay. */
lb_status member_event(svc_query *q, const char *subject, const ProtobufCMessage *ev, lb_err *err);

/* Columns of MEMBER_COLS (member_sql.c) in member_by_* results. */
enum {
    MEMBER_COL_ID,
    MEMBER_COL_USERNAME,
    MEMBER_COL_EMAIL,
    MEMBER_COL_PHONE,
    MEMBER_COL_HASH,
    MEMBER_COL_ROLE,
    MEMBER_COL_STATUS,
    MEMBER_COL_LOCKED,
    MEMBER_COL_CREATED,
    MEMBER_COL_EMAIL_INDEX
};

#define MEMBER_STMTS_COUNT 21
#define MEMBER_PRUNE_BATCH 500 /* ended logins deleted per statement (member_tick) */
extern const store_stmt member_stmts[MEMBER_STMTS_COUNT];

#endif
