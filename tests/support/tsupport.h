/* tsupport.h - helpers shared by the integration and end-to-end suites.
 *
 * The servers are started once per run by tests/support/harness.sh (through
 * `scripts/dev test`), which exports their addresses and credentials; these
 * helpers read them, give each test clean state, and start/stop the daemons
 * built by this tree and the test nats-server itself.
 *
 * Helpers named tsupport_* that cannot do their job fail the running test
 * with a Criterion assertion (a test outside the harness fails with a message
 * naming the missing variable), so callers need not check results.
 *
 * Typical suite:
 *   static void setup(void) { tsupport_reset(); }   // before starting daemons
 *   Test(catalog, reserves_stock, .init = setup) {
 *       tsupport_proc p;
 *       tsupport_daemon_start(&p, "layby-catalog", 0, NULL, NULL);
 *       ...
 *       cr_assert(tsupport_poll_until(rows_arrived, &want, 5000));
 *       cr_assert_eq(tsupport_daemon_stop(&p, 5000), 0);
 *   }
 *
 * Ownership: returned strings are static or borrowed from the environment;
 *            tsupport_pg() is borrowed (one per test process); connections
 *            from tsupport_nats_connect() are the caller's to destroy.
 * Threads:   test code only, one test at a time.
 */
#ifndef LAYBY_TESTS_SUPPORT_TSUPPORT_H
#define LAYBY_TESTS_SUPPORT_TSUPPORT_H

#include <jansson.h>
#include <jwt.h>
#include <libpq-fe.h>
#include <nats/nats.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bus_topology.h"

/* --- environment ---------------------------------------------------------- */

/* Value of an environment variable the harness exports, or NULL. */
const char *tsupport_env(const char *name);
/* Same, but fails the test when it is unset (the suite runs outside the harness). */
const char *tsupport_env_req(const char *name);

/* --- PostgreSQL (as the superuser, LAYBY_TEST_PG_ADMIN_URL) ----------------- */

/* The test process's admin connection (opened on first use, reopened if it broke). */
PGconn *tsupport_pg(void);
/* Runs SQL (several statements allowed) and fails the test on error. */
void tsupport_sql(const char *sql);
/* Runs a query returning one row with one integer column (count(*), say). */
int64_t tsupport_sql_int(const char *sql);

/* PostgreSQL's own counts for a table (pg_stat_user_tables): sequential
 * scans and deleted rows so far, this session's own included. Another
 * session reports its counts within ~1 s of going idle (10 s at most), not
 * at each commit. */
typedef struct tsupport_table_stats {
    int64_t seq_scans, deleted;
} tsupport_table_stats;
tsupport_table_stats tsupport_table_stats_get(const char *table);
/* Waits up to timeout_ms until table's deleted-rows count is at least
 * deleted; returns the counts then (the caller asserts on them). Waiting on
 * the statistics, not on count(*), which would scan the table itself. */
tsupport_table_stats tsupport_table_stats_wait(const char *table, int64_t deleted, int timeout_ms);

/* --- NATS -------------------------------------------------------------------- */

/* Connects as the user of LAYBY_<who>_NATS_USER/_PASSWORD (who: "CTL" = admin,
 * "EDGE", "CATALOG", "ORCHESTRATOR", ...), without reconnecting. NULL who
 * connects anonymously (the server refuses that). Returns the nats.c status;
 * on NATS_OK *out is the caller's. errh may be NULL; it sees async errors
 * such as permission violations. */
natsStatus tsupport_nats_connect(natsConnection **out, const char *who, natsErrHandler errh,
                                 void *errh_arg);
/* Stops the test nats-server (SIGTERM, waits until it exited). */
void tsupport_nats_stop(void);
/* Sends sig to the test nats-server: SIGSTOP freezes it with every
 * connection open (what clients send goes unread and unanswered; returns
 * once every thread of it has stopped), SIGCONT
 * thaws it, SIGKILL kills it (and waits until it is gone, frozen or not). */
void tsupport_nats_signal(int sig);
/* Starts it again with the same config, port and JetStream store; waits until
 * it accepts connections. Does nothing when it runs (so it fits a .fini). */
void tsupport_nats_start(void);

/* --- clean state ----------------------------------------------------------- */

/* Truncates every table of the service schemas (everything but public, where
 * the migrations table lives), purges the topology's streams and buckets and
 * deletes + recreates its durables with default settings. Call before starting
 * daemons: a daemon bound to a deleted durable stops receiving. */
void tsupport_reset(void);
/* Same with other consumer settings (short AckWait for redelivery tests). */
void tsupport_reset_with(const bus_topology_opts *opts);
/* The consumer settings of the last reset (the defaults before any). */
const bus_topology_opts *tsupport_reset_opts(void);

/* --- daemons ----------------------------------------------------------------- */

typedef struct tsupport_proc {
    pid_t pid;          /* 0 when not running */
    int port;           /* where /healthz answered */
    char name[64];      /* layby-catalog */
    char log[512];      /* LAYBY_TEST_TMP/<name>-<n>.log */
    char pid_file[512]; /* LAYBY_TEST_TMP/run/<name>-<n>.pid, for the harness's cleanup */
    int status;         /* once reaped: as tsupport_daemon_stop() returns (137 = SIGKILL) */
} tsupport_proc;

/* Starts LAYBY_BUILD_DIR/<name> with extra arguments (NULL-terminated list or
 * NULL) and extra "NAME=value" environment entries (same), stdout and stderr
 * to p->log, and waits up to 30 s until GET http://127.0.0.1:<port>/healthz
 * answers 200. port 0 = the daemon's port from the environment
 * (LAYBY_CATALOG_METRICS_PORT, LAYBY_ORCHESTRATOR_METRICS_PORT, LAYBY_EDGE_PORT).
 * A second instance needs its own port (tsupport_port_free()) passed both
 * here and in its env or args. */
void tsupport_daemon_start(tsupport_proc *p, const char *name, int port, const char *const *args,
                           const char *const *env);
/* The same, waiting up to ready_ms for /healthz; returns how long it took. */
int64_t tsupport_daemon_start_within(tsupport_proc *p, const char *name, int port,
                                     const char *const *args, const char *const *env, int ready_ms);
/* tsupport_daemon_start() in two halves, to start several at once: spawn
 * returns once it forked; wait_ready waits up to timeout_ms for /healthz. */
void tsupport_daemon_spawn(tsupport_proc *p, const char *name, int port, const char *const *args,
                           const char *const *env);
void tsupport_daemon_wait_ready(tsupport_proc *p, int timeout_ms);
/* SIGTERM, waits up to timeout_ms, then SIGKILL; reaps. Returns the exit
 * status (0 = clean stop), 128 + signal if killed, -1 if it was not running. */
int tsupport_daemon_stop(tsupport_proc *p, int timeout_ms);
/* SIGKILL (a crash) and reap. */
void tsupport_daemon_kill(tsupport_proc *p);
/* True while the process runs (reaps it if it exited). */
bool tsupport_daemon_alive(tsupport_proc *p);
/* True when GET http://127.0.0.1:<port><path> answers 200 within 1 s. */
bool tsupport_http_ok(int port, const char *path);
/* A loopback TCP port nobody listens on right now. */
int tsupport_port_free(void);

/* --- waiting ------------------------------------------------------------------ */

/* Issue 25: a SIGKILLed daemon's held work is taken up within this of its
 * restart, counted from the moment the restarted daemon answers /healthz.
 * Its start-up before that (0.2-0.5 s idle, up to 4.5 s seen at load 39 under
 * ASan) is the machine's, not the engine's; the tests print it. The held
 * messages come back at most the durable's AckWait (3 s) after the kill, so
 * from ready the engine needs at most 3 s plus a fetch and a commit: the 2 s
 * left are the margin for a loaded CI machine. An AckWait of 30 s fails it. */
#define TSUPPORT_RECOVERY_MS 5000

/* Calls cond(arg) every 20 ms until it returns true (-> true) or timeout_ms
 * passed (-> false). The way to wait for anything asynchronous; never sleep. */
bool tsupport_poll_until(bool (*cond)(void *), void *arg, int timeout_ms);

/* --- layby-ctl (tsupport_ctl.c) ---------------------------------------------- */

/* Runs LAYBY_BUILD_DIR/layby-ctl with args (NULL-terminated) in the harness's
 * environment plus env ("NAME=value", NULL-terminated or NULL); *out receives
 * stdout (and stderr after it when err_too), the caller free()s it. Returns
 * the exit status; fails the test if it died or a sanitizer spoke. */
int tsupport_ctl_run(char **out, bool err_too, const char *const *env, const char *const *args);

/* --- layby pieces the suites share (tsupport_layby.c) ---------------------- */

struct bus;
/* A bus connected as the admin user (LAYBY_CTL_NATS_*); the caller bus_close()s it. */
struct bus *tsupport_admin_bus(const char *name);
/* Publishes m to subject on b (JetStream, acked) with a fresh envelope;
 * fails the test when the publish fails. */
struct ProtobufCMessage;
void tsupport_publish(struct bus *b, const char *subject, const struct ProtobufCMessage *m);
/* Starts a test saga (layby.v1.StartTestSaga, key "key") with a new id written
 * to id (ID_STR_LEN bytes) and the participant's script. */
void tsupport_test_saga_start(struct bus *admin, char *id, const char *script);
/* Waits up to timeout_ms until saga id's row has status. */
void tsupport_saga_wait_status(int timeout_ms, const char *id, const char *status);
/* The test saga's participant: (re)creates its schema (tests/participant/
 * schema.sql) and its durable `sagatest` on LAYBY_CMD, with the settings of
 * the last tsupport_reset()/tsupport_reset_with(). Call after either. */
void tsupport_sagatest_setup(struct bus *admin);
/* A stack with the test saga types, a saga suite's .init: clean state
 * (tsupport_reset()), the admin bus named name, and the test participant's
 * schema and durable (tsupport_sagatest_setup()). Close it with
 * tsupport_stack_close(). */
struct bus *tsupport_sagatest_open(const char *name);
/* Starts LAYBY_BUILD_DIR/layby-sagatest on a free metrics port, with extra
 * environment entries "NAME=value" (NULL-terminated; NULL = none). */
void tsupport_sagatest_start(tsupport_proc *p, const char *const *env);
/* The same, returning once it forked (tsupport_daemon_wait_ready()). */
void tsupport_sagatest_spawn(tsupport_proc *p, const char *const *env);
/* Polls the integer query built from fmt (count(*), say) until it returns n;
 * fails the test, showing the last value, when timeout_ms passes first. */
void tsupport_wait_count(int timeout_ms, int64_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Kills (SIGKILL) every running daemon of procs[0..n) and zeroes the array: a
 * suite's .fini, so a test that failed half-way leaves nothing running. */
void tsupport_daemons_kill(tsupport_proc *procs, size_t n);
/* True when the daemon's log (p->log) holds needle. */
bool tsupport_log_has(const tsupport_proc *p, const char *needle);
/* How many lines of the daemon's log (p->log) hold needle; 0 without a log. */
int tsupport_log_count(const tsupport_proc *p, const char *needle);
/* Fails the test (cr_expect) for each sanitizer report in p->log: a daemon's
 * report lands there, not in the test's output. */
void tsupport_log_expect_clean(const tsupport_proc *p);
/* SIGTERM to each running daemon of procs[0..n), expecting a clean exit (0)
 * and a log without sanitizer reports (a daemon's LeakSanitizer report is
 * written only when it exits by itself). */
void tsupport_daemons_stop_checked(tsupport_proc *procs, size_t n);
/* A suite's .fini: SIGTERM to every daemon of procs[0..n) still running,
 * then forgets the array, so every test of the suite ends with its daemons
 * stopped and their logs scanned, whatever its body did. Criterion 2.4.1
 * prints a .fini's failed assertions but counts none (checked), so a daemon
 * that does not exit 0 or left a sanitizer report prints a line holding
 * TSUPPORT_FINI_FAILED instead, which fails the suite's ctest
 * (FAIL_REGULAR_EXPRESSION in tests/CMakeLists.txt). */
#define TSUPPORT_FINI_FAILED "tsupport-daemon-check-failed"
void tsupport_daemons_finish(tsupport_proc *procs, size_t n);
/* A suite's .fini for a suite with an admin bus: tsupport_daemons_finish(),
 * then bus_close(*admin) and *admin = NULL (the bus last: a daemon stopping
 * may still publish what the test waits on). */
void tsupport_stack_close(struct bus **admin, tsupport_proc *procs, size_t n);
/* A crash point fired: p exited, killed by SIGKILL (not a segfault or a
 * sanitizer abort), and its log holds the `fault.kill` line. */
void tsupport_expect_fault_kill(tsupport_proc *p, int timeout_ms);
/* Stops the test PostgreSQL (pg_ctl stop -m fast as the postgres user, on
 * LAYBY_TEST_PG_DATA) / starts it again and reconnects tsupport_pg(). */
void tsupport_pg_stop(void);
void tsupport_pg_start(void);
/* The value of one series ("layby_svc_messages_handled_total{service=\"catalog\"}")
 * on the daemon serving /metrics at port; fails the test when it is absent. */
long long tsupport_metric(int port, const char *series);
/* The same without failing the test: -1 when the series is absent or the
 * daemon does not answer (for polling a gauge before its first round). */
double tsupport_metric_try(int port, const char *series);
/* A valid CreateProduct for product pid named name (a laptop, stock 5) in the
 * caller's c and d; the strings are borrowed, so keep them alive while c is used. */
struct Layby__V1__CreateProduct;
struct Layby__V1__ProductDraft;
void tsupport_create_product(struct Layby__V1__CreateProduct *c, struct Layby__V1__ProductDraft *d,
                             const char *pid, const char *name);

/* --- HTTP client for edge suites (tsupport_http.c) ---------------------------- */

/* A fresh ES256 (P-256) key pair as PEM: PKCS#8 private key into priv, public
 * key into pub (pub may be NULL). Fails the test when a buffer is too small. */
void tsupport_es256_keys(char *priv, size_t priv_n, char *pub, size_t pub_n);

/* Needs no harness server: the unit suites that run the edge in-process use
 * it too. The body and headers are captured into fixed buffers; what does not
 * fit is dropped (still NUL-terminated), which no edge answer comes near. */
typedef struct tsupport_resp {
    long status;        /* HTTP status, 0 before an answer */
    char body[262144];  /* the response body, NUL-terminated (/metrics grows with the routes) */
    size_t body_len;    /* bytes of body kept */
    char headers[8192]; /* status line + header lines as received (CRLF kept) */
    size_t headers_len; /* bytes of headers kept */
} tsupport_resp;

/* curl CURLOPT_WRITEFUNCTION / CURLOPT_HEADERFUNCTION appending to the
 * tsupport_resp passed as WRITEDATA / HEADERDATA, for a test that drives its
 * own CURL handle (keep-alive, HEAD). Zero the tsupport_resp first. */
size_t tsupport_http_on_body(char *p, size_t sz, size_t n, void *resp);
size_t tsupport_http_on_header(char *p, size_t sz, size_t n, void *resp);
/* method path on http://127.0.0.1:<port> with extra header lines hdrs
 * ("Name: value", NULL-terminated list, or NULL) and body (NULL = none), on a
 * fresh connection; *r gets the answer (it is zeroed first). chunked sends the
 * body with Transfer-Encoding: chunked and no Content-Length. Fails the test
 * when no answer came within 20 s. */
void tsupport_http_call(tsupport_resp *r, int port, const char *method, const char *path,
                        const char *const *hdrs, const char *body, bool chunked);
/* For client threads (never asserts): method path on http://127.0.0.1:<port>
 * through the caller's handle curl (a CURL *: curl.h stays out of this
 * header, its socket declarations clash with suites' names; reset first, so
 * its connection is kept),
 * as JSON, with the header line auth ("Authorization: Bearer ..."; NULL =
 * none), an Idempotency-Key idem (NULL = none) and body (NULL = none); the
 * answer's body goes into out (cap bytes, NUL-terminated, cut beyond).
 * Returns the HTTP status, 0 when no answer came within 20 s. */
long tsupport_http_try(void *curl, int port, const char *method, const char *path, const char *auth,
                       const char *idem, const char *body, char *out, size_t cap);
/* Value of response header name (case-insensitive, without CRLF) into out
 * (n bytes); false if absent or longer than n - 1. */
bool tsupport_http_header(const tsupport_resp *r, const char *name, char *out, size_t n);
/* The body parsed as JSON (the caller json_decref()s it); fails the test when
 * it is not JSON. */
json_t *tsupport_http_json(const tsupport_resp *r);
/* Asserts the edge's error shape: status, a JSON body {"error": {"code": code,
 * "message": <string>, "field": field}}, field absent when field is NULL. */
void tsupport_http_assert_error(const tsupport_resp *r, long status, const char *code,
                                const char *field);

/* iat value for tsupport_jwt_mint(): leave the claim out. */
#define TSUPPORT_JWT_NO_IAT (-1)
/* Signs a token as the member service would (sub = a fixed member id, role,
 * iss "layby", iat unless TSUPPORT_JWT_NO_IAT, exp; seconds since the epoch)
 * with alg and key_pem (a PEM private key for ES256; for HS256 the text is the
 * HMAC secret, which is how a suite forges the alg-confusion attack) and writes
 * the header line "Authorization: Bearer <token>" into out (n bytes). */
void tsupport_jwt_mint(char *out, size_t n, const char *role, jwt_alg_t alg, const char *key_pem,
                       int64_t iat, int64_t exp);
/* "Authorization: Bearer <token>" for member `sub` with `role`, valid 10 min,
 * ES256-signed with the harness's key (LAYBY_JWT_PRIVATE_KEY_FILE). */
void tsupport_jwt_member(char *out, size_t n, const char *sub, const char *role);
/* The same, valid valid_s seconds (a run longer than 10 min: the chaos run's
 * clients hold one token each for all of it). */
void tsupport_jwt_member_for(char *out, size_t n, const char *sub, const char *role, int valid_s);

#endif
