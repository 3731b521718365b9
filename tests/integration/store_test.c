/* store_test.c - pipelined transactions (engine/store.c) against the real
 * PostgreSQL: statements whose result nobody waits for still run in order,
 * their failures surface at the next wait or at COMMIT with the statement's
 * name, a rollback leaves nothing behind, and the store stays usable after a
 * failure and after its backend was killed; a backend that ended while
 * idle is replaced before the next transaction; plan modes per connection
 * and per statement. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "tsupport.h"

/* clang-format off */
static const store_stmt stmts[] = {
    { "st_put",   "INSERT INTO storetest.t (k, v) VALUES ($1::int, $2)" },
    { "st_count", "SELECT count(*) FROM storetest.t" },
    { "st_get",   "SELECT v FROM storetest.t WHERE k = $1::int" },
    { "st_pid",   "SELECT pg_backend_pid()" },
    { "st_bin",   "SELECT k, v::bytea FROM storetest.t ORDER BY k" },
    { "st_plans", "SELECT current_setting('plan_cache_mode')" },
    { "st_parallel", "SELECT current_setting('max_parallel_workers_per_gather')" },
    { "st_get_generic", STORE_GENERIC "SELECT v FROM storetest.t WHERE k = $1::int" },
    { "st_get_custom", STORE_CUSTOM "SELECT v FROM storetest.t WHERE k = $1::int" },
    { "st_planned", "SELECT generic_plans || '/' || custom_plans FROM pg_prepared_statements "
                    "WHERE name = $1" },
};
/* clang-format on */

static store *db;

static void
setup(void)
{
    tsupport_sql(
        "DROP SCHEMA IF EXISTS storetest CASCADE; CREATE SCHEMA storetest;"
        "CREATE TABLE storetest.t (k int PRIMARY KEY, v text NOT NULL CHECK (v <> 'bad'))");
    lb_err err;
    cr_assert_eq(store_open(&db, tsupport_env_req("LAYBY_TEST_PG_ADMIN_URL"), stmts,
                            LB_COUNTOF(stmts), &err),
                 LB_OK, "%s", err.msg);
}

static void
teardown(void)
{
    store_close(db);
    db = NULL;
    tsupport_sql("DROP SCHEMA IF EXISTS storetest CASCADE");
}

static void
put(const char *k, const char *v, lb_status want)
{
    lb_err err;
    const char *p[] = { k, v };
    lb_status got = store_exec(db, NULL, "st_put", 2, p, &err);
    cr_assert_eq(got, want, "put %s: %s", k, got == LB_OK ? "ok" : err.msg);
}

static int64_t
rows(void)
{
    return tsupport_sql_int("SELECT count(*) FROM storetest.t");
}

/* One more transaction on the same store commits one more row. */
static void
assert_usable(const char *k)
{
    lb_err err;
    int64_t before = rows();
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    put(k, "ok", LB_OK);
    cr_assert_eq(store_commit(db, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(rows(), before + 1);
}

/* The integer that st's statement name (no parameters) answers. */
static int64_t
stmt_int(store *st, const char *name)
{
    PGresult *r = NULL;
    lb_err err;
    cr_assert_eq(store_exec(st, &r, name, 0, NULL, &err), LB_OK, "%s: %s", name, err.msg);
    int64_t n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static int64_t
count_in_tx(void)
{
    return stmt_int(db, "st_count");
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, unawaited_writes_run_in_order_and_commit)
{
    lb_err err;
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    put("1", "a", LB_OK);
    put("2", "b", LB_OK);
    /* A statement that waits sees the writes sent before it. */
    cr_assert_eq(count_in_tx(), 2);
    put("3", "c", LB_OK);
    cr_assert_eq(store_commit(db, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(rows(), 3);
    /* Outside a transaction every statement waits. */
    put("4", "d", LB_OK);
    cr_assert_eq(rows(), 4);
}

Test(store, failed_write_is_reported_at_commit_and_rolls_back_everything)
{
    lb_err err;
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    put("1", "a", LB_OK);
    put("2", "bad", LB_OK); /* only sent: the CHECK fails on the server */
    put("3", "c", LB_OK);
    lb_status s = store_commit(db, &err);
    cr_assert_eq(s, LB_ERR_CONFLICT, "a constraint violation, got %d", s);
    cr_assert(strstr(err.msg, "st_put") != NULL, "names the statement: %s", err.msg);
    cr_assert(strstr(err.msg, "23514") != NULL, "carries the sqlstate: %s", err.msg);
    store_rollback(db);
    cr_assert_eq(rows(), 0);
    assert_usable("5"); /* the same store runs the next transaction normally */
}

Test(store, failed_write_is_reported_by_the_next_waiting_statement)
{
    lb_err err;
    put("7", "x", LB_OK);
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    put("7", "duplicate", LB_OK);
    PGresult *r = NULL;
    const char *p[] = { "7" };
    lb_status s = store_exec(db, &r, "st_get", 1, p, &err);
    cr_assert_eq(s, LB_ERR_CONFLICT, "the duplicate key surfaces here, got %d", s);
    cr_assert_null(r);
    cr_assert(strstr(err.msg, "st_put") != NULL, "%s", err.msg);
    store_rollback(db);
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(store_exec(db, &r, "st_get", 1, p, &err), LB_OK, "%s", err.msg);
    cr_assert_str_eq(PQgetvalue(r, 0, 0), "x");
    PQclear(r);
    cr_assert_eq(store_commit(db, &err), LB_OK, "%s", err.msg);
}

Test(store, rollback_discards_writes_never_awaited)
{
    lb_err err;
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    put("1", "a", LB_OK);
    put("2", "b", LB_OK);
    store_rollback(db);
    cr_assert_eq(rows(), 0);
    put("3", "c", LB_OK);
    cr_assert_eq(rows(), 1);
}

Test(store, binary_results_inside_a_transaction)
{
    lb_err err;
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    put("1", "ab", LB_OK);
    PGresult *r = NULL;
    cr_assert_eq(store_exec_bin(db, &r, "st_bin", 0, NULL, NULL, NULL, 1, &err), LB_OK, "%s",
                 err.msg);
    cr_assert_eq(PQntuples(r), 1);
    cr_assert_eq(PQgetlength(r, 0, 0), 4, "int4 in binary is 4 bytes");
    cr_assert_eq(PQgetlength(r, 0, 1), 2);
    cr_assert_eq(memcmp(PQgetvalue(r, 0, 1), "ab", 2), 0);
    PQclear(r);
    cr_assert_eq(store_commit(db, &err), LB_OK, "%s", err.msg);
}

/* Ends db's backend from another session (pg_terminate_backend) and waits
 * until it is gone. Inside a transaction too: the pid is read on db's own
 * session. */
static void
session_terminate(void)
{
    lb_err err;
    PGresult *r = NULL;
    cr_assert_eq(store_exec(db, &r, "st_pid", 0, NULL, &err), LB_OK, "%s", err.msg);
    char sql[128], kill[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
             PQgetvalue(r, 0, 0));
    snprintf(kill, sizeof kill, "SELECT pg_terminate_backend(%s)", PQgetvalue(r, 0, 0));
    PQclear(r);
    tsupport_sql(kill);
    for (int i = 0; i < 50 && tsupport_sql_int(sql) > 0; i++)
        tsupport_sql("SELECT pg_sleep(0.02)");
}

Test(store, killed_backend_fails_the_transaction_then_reconnects)
{
    lb_err err;
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    put("1", "a", LB_OK);
    session_terminate();
    lb_status s = store_commit(db, &err);
    cr_assert_eq(s, LB_ERR_DB, "a lost connection is retryable, got %d (%s)", s, err.msg);
    store_rollback(db);
    cr_assert_eq(rows(), 0);
    assert_usable("2"); /* store_begin reconnects and prepares the statements again */
}

/* max_parallel_workers_per_gather of st's session. */
static int64_t
parallel_workers(store *st)
{
    return stmt_int(st, "st_parallel");
}

/* A daemon's sessions plan without parallel workers (store.c connect_pg),
 * on every new session too; an operator's `options` in the URL wins. */
Test(store, sessions_plan_without_parallel_workers_unless_the_url_says_otherwise)
{
    cr_assert_eq(tsupport_sql_int("SELECT current_setting('max_parallel_workers_per_gather')::int"),
                 2, "the server's default, which the store's sessions must not have");
    cr_assert_eq(parallel_workers(db), 0);
    session_terminate();
    lb_err err;
    cr_assert_eq(store_ensure(db, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(parallel_workers(db), 0, "a reconnected session plans without them too");

    const char *url = tsupport_env_req("LAYBY_TEST_PG_ADMIN_URL");
    char own[1024];
    snprintf(own, sizeof own, "%s%soptions=-c%%20max_parallel_workers_per_gather%%3D1", url,
             strchr(url, '?') ? "&" : "?");
    store *st = NULL;
    cr_assert_eq(store_open(&st, own, stmts, LB_COUNTOF(stmts), &err), LB_OK, "%s", err.msg);
    int64_t n = parallel_workers(st);
    store_close(st);
    cr_assert_eq(n, 1, "the URL's options were overridden");
}

/* A backend that ends while its session is idle (pg_terminate_backend, a
 * PostgreSQL restart) is seen before the next transaction sends anything:
 * store_begin() starts it on a new session, so it commits the first time
 * instead of failing on the dead one (which a write may not simply repeat). */
Test(store, a_session_ended_while_idle_is_replaced_before_the_next_transaction)
{
    lb_err err;
    session_terminate();
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    put("1", "a", LB_OK);
    cr_assert_eq(store_commit(db, &err), LB_OK, "the transaction ran on the dead session: %s",
                 err.msg);
    cr_assert_eq(rows(), 1);
}

/* What a backend says as it ends (FATAL: terminating connection due to
 * administrator command) reaches the daemon's log as a JSON line, not as
 * libpq's bare "FATAL:  ..." text among them: the test's stderr, where the
 * log goes, is caught in a file while the session is killed and replaced. */
Test(store, a_backend_s_last_words_are_a_json_log_line)
{
    lb_err err;
    char path[] = "/tmp/layby-store-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    session_terminate();
    lb_status st = store_begin(db, &err); /* sees the FATAL, connects again */
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    cr_assert_eq(st, LB_OK, "%s", err.msg);
    store_rollback(db);
    FILE *f = fdopen(fd, "r");
    rewind(f);
    char line[2048];
    int json = 0, bare = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '{' && strstr(line, "\"event\":\"store.notice\"") != NULL &&
            strstr(line, "\"severity\":\"FATAL\"") != NULL &&
            strstr(line, "\"sqlstate\":\"57P01\"") != NULL)
            json++;
        else if (line[0] != '{')
            bare++;
    }
    fclose(f);
    unlink(path);
    cr_expect_eq(json, 1, "the FATAL as a JSON line");
    cr_expect_eq(bare, 0, "lines that are not JSON on the log");
}

static void
assert_plans(const char *want)
{
    lb_err err;
    PGresult *r = NULL;
    cr_assert_eq(store_exec(db, &r, "st_plans", 0, NULL, &err), LB_OK, "%s", err.msg);
    cr_assert_str_eq(PQgetvalue(r, 0, 0), want);
    PQclear(r);
}

/* How PostgreSQL ran prepared statement name on the store's session so far:
 * "<calls on the generic plan>/<custom plans>". */
static void
assert_planned(const char *name, const char *want)
{
    lb_err err;
    PGresult *r = NULL;
    const char *p[] = { name };
    cr_assert_eq(store_exec(db, &r, "st_planned", 1, p, &err), LB_OK, "%s", err.msg);
    cr_assert_str_eq(PQgetvalue(r, 0, 0), want, "%s planned %s", name, PQgetvalue(r, 0, 0));
    PQclear(r);
}

/* The svc runtime's batch connections force generic plans (svc_internal.h):
 * a reconnect must not quietly bring back a plan per call. */
Test(store, generic_plans_hold_after_a_reconnect)
{
    lb_err err;
    assert_plans("auto");
    store_generic_plans(db);
    assert_plans("force_generic_plan");
    session_terminate();
    lb_status s = store_exec(db, NULL, "st_pid", 0, NULL, &err);
    cr_assert_eq(s, LB_ERR_DB, "the killed connection fails first, got %d", s);
    cr_assert_eq(store_ensure(db, &err), LB_OK, "%s", err.msg);
    assert_plans("force_generic_plan");
}

/* Runs the marked statement `name` (row 1 must read "a") and the plain
 * st_get n times each, in turn, outside transactions. */
static void
marked_beside_plain(const char *name, int n)
{
    lb_err err;
    const char *p[] = { "1" };
    for (int i = 0; i < n; i++) {
        PGresult *r = NULL;
        cr_assert_eq(store_exec(db, &r, name, 1, p, &err), LB_OK, "%s", err.msg);
        cr_assert_str_eq(PQgetvalue(r, 0, 0), "a");
        PQclear(r);
        cr_assert_eq(store_exec(db, NULL, "st_get", 1, p, &err), LB_OK, "%s", err.msg);
    }
}

/* A STORE_GENERIC statement on a connection that plans as PostgreSQL
 * chooses (the query threads) is planned once: PostgreSQL's own choice
 * plans the first five calls anew, and kept doing so for the order read
 * (order_sql.c). The statements around it keep the connection's mode, in and
 * out of transactions and after a rollback undid the switch. */
Test(store, a_generic_statement_is_planned_once_whatever_the_connection_does)
{
    lb_err err;
    put("1", "a", LB_OK);
    const char *p[] = { "1" };
    marked_beside_plain("st_get_generic", 8);
    assert_planned("st_get_generic", "8/0"); /* calls on the generic plan / custom plans */
    assert_planned("st_get", "3/5");         /* PostgreSQL's auto: five custom plans first */
    assert_plans("auto");

    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(store_exec(db, NULL, "st_get_generic", 1, p, &err), LB_OK, "%s", err.msg);
    store_rollback(db); /* undoes the SET sent with it */
    cr_assert_eq(store_exec(db, NULL, "st_get_generic", 1, p, &err), LB_OK, "%s", err.msg);
    assert_planned("st_get_generic", "10/0"); /* the rolled-back call counts too */
    assert_plans("auto");
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(store_exec(db, NULL, "st_get_generic", 1, p, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(store_commit(db, &err), LB_OK, "%s", err.msg);
    assert_plans("auto");
    assert_planned("st_get_generic", "11/0");
}

/* A STORE_CUSTOM statement is planned at every call, on a connection that
 * plans everything once (the svc runtime's batch connections) as on one
 * where PostgreSQL chooses: a keyset page's generic plan tests its cursor
 * row by row (catalog_sql.c), and PostgreSQL's own choice took that plan once
 * dearer searches had raised its average of custom plans. */
Test(store, a_custom_statement_is_planned_at_every_call_whatever_the_connection_does)
{
    lb_err err;
    put("1", "a", LB_OK);
    const char *p[] = { "1" };
    marked_beside_plain("st_get_custom", 8);
    assert_planned("st_get_custom", "0/8");
    assert_planned("st_get", "3/5");
    assert_plans("auto");

    store_generic_plans(db);
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(store_exec(db, NULL, "st_get", 1, p, &err), LB_OK, "%s", err.msg);
        cr_assert_eq(store_exec(db, NULL, "st_get_custom", 1, p, &err), LB_OK, "%s", err.msg);
    }
    cr_assert_eq(store_commit(db, &err), LB_OK, "%s", err.msg);
    assert_planned("st_get_custom", "0/11");
    assert_planned("st_get", "6/5"); /* the connection's default around it */
    assert_plans("force_generic_plan");
}

Test(store, sent_reads_share_one_round_trip_and_keep_their_results)
{
    lb_err err;
    put("1", "a", LB_OK);
    put("2", "b", LB_OK);
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    int t_count = -1, t_get = -1;
    const char *p[] = { "2" };
    cr_assert_eq(store_send(db, &t_count, "st_count", 0, NULL, 0, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(store_send(db, &t_get, "st_get", 1, p, 0, &err), LB_OK, "%s", err.msg);
    cr_assert_null(store_take(db, t_count), "nothing is read before a wait");
    cr_assert_eq(store_flush(db, &err), LB_OK, "%s", err.msg);
    PGresult *r = store_take(db, t_get);
    cr_assert_not_null(r);
    cr_assert_str_eq(PQgetvalue(r, 0, 0), "b");
    PQclear(r);
    cr_assert_null(store_take(db, t_get), "a result is taken once");
    r = store_take(db, t_count);
    cr_assert_not_null(r);
    cr_assert_str_eq(PQgetvalue(r, 0, 0), "2");
    PQclear(r);
    cr_assert_eq(store_commit(db, &err), LB_OK, "%s", err.msg);
}

Test(store, sent_read_after_a_failed_write_reports_the_write)
{
    lb_err err;
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    put("1", "bad", LB_OK);
    int t = -1;
    cr_assert_eq(store_send(db, &t, "st_count", 0, NULL, 0, &err), LB_OK, "%s", err.msg);
    lb_status s = store_flush(db, &err);
    cr_assert_eq(s, LB_ERR_CONFLICT, "got %d", s);
    cr_assert(strstr(err.msg, "st_put") != NULL, "%s", err.msg);
    cr_assert_null(store_take(db, t), "an aborted read keeps no result");
    store_rollback(db);
    /* Results left untaken are dropped with the transaction, not leaked. */
    cr_assert_eq(store_begin(db, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(store_send(db, &t, "st_count", 0, NULL, 0, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(store_flush(db, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(store_commit(db, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(store_send(db, &t, "st_count", 0, NULL, 0, &err), LB_ERR_INTERNAL,
                 "store_send needs a transaction");
}
