/* store.c - one libpq connection with its prepared statements.
 *
 * Statements are prepared on connect and after every reconnect, so a caller
 * never sees "prepared statement does not exist" after PostgreSQL restarted.
 *
 * Transactions run in libpq pipeline mode. Every round trip costs two context
 * switches on each side and, on a busy 2-core machine, a wait in the run queue;
 * a service batch used to make seven of them (BEGIN, inbox, read, three
 * writes, COMMIT). Now BEGIN travels with the first statement that waits for
 * its result, and statements whose result nobody asks for travel with the
 * next one that waits or with COMMIT, and reads that do not depend on each
 * other share one round trip (store_send): two round trips for a saga batch.
 * The server runs them in order inside the explicit transaction; the first
 * failure aborts the rest, and store_commit() (or the next waiting statement)
 * reports it with the failing statement's name. */
#include "store.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define STORE_UNREAD_MAX 256 /* names kept for error messages; more are counted only */
#define STORE_KEEP_MAX   4   /* results kept for store_take() per transaction */

/* plan_cache_mode values, and the SET that makes each the session's. */
typedef enum store_plan {
    PLAN_AUTO,
    PLAN_GENERIC,
    PLAN_CUSTOM,
    PLAN_UNKNOWN
} store_plan;

static const char *const plan_set_sql[] = {
    [PLAN_AUTO] = "SET plan_cache_mode = auto",
    [PLAN_GENERIC] = "SET plan_cache_mode = force_generic_plan",
    [PLAN_CUSTOM] = "SET plan_cache_mode = force_custom_plan",
};

struct store {
    /* config */
    char *url;
    const store_stmt *stmts; /* borrowed table */
    size_t n_stmts;
    bool generic_default; /* store_generic_plans() */
    /* The rows of stmts[] that start with STORE_GENERIC or STORE_CUSTOM, and
     * their plans: plan_ensure() looks a statement up among these few, not
     * the whole table, at every statement. */
    struct store_marked {
        const char *name;
        store_plan plan;
    } * marked;
    size_t n_marked;
    /* state */
    PGconn *pg;
    store_plan plan_now; /* the session's plan_cache_mode */
    bool prepared;       /* stmts prepared on this pg */
    bool gone;           /* the server sent FATAL on this pg: its backend is ending */
    bool in_tx;          /* between store_begin and commit/rollback: pipeline mode */
    /* Statements sent in this transaction whose results are not read yet;
     * keep[i] >= 0 names the kept[] slot that receives the result. */
    const char *unread[STORE_UNREAD_MAX];
    signed char keep[STORE_UNREAD_MAX];
    int n_unread;
    PGresult *kept[STORE_KEEP_MAX]; /* results of store_send(), until store_take() */
    int n_kept;
};

lb_status
store__result_err(const PGresult *r, PGconn *pg, lb_err *err, const char *what)
{
    const char *sqlstate = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *text = r ? PQresultErrorMessage(r) : PQerrorMessage(pg);
    lb_status code = LB_ERR_INTERNAL;
    if (PQstatus(pg) != CONNECTION_OK || sqlstate == NULL)
        code = LB_ERR_DB;
    else if (strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "40001") == 0 ||
             strcmp(sqlstate, "40P01") == 0 || strncmp(sqlstate, "57P", 3) == 0 ||
             strcmp(sqlstate, "55P03") == 0)
        code = LB_ERR_DB; /* connection, serialization, deadlock, shutdown, lock: retry */
    else if (strncmp(sqlstate, "23", 2) == 0)
        code = LB_ERR_CONFLICT;
    char clean[LB_ERR_MSG_MAX];
    snprintf(clean, sizeof clean, "%s", text ? text : "");
    size_t l = strlen(clean);
    while (l > 0 && (clean[l - 1] == '\n' || clean[l - 1] == ' '))
        clean[--l] = '\0';
    return lb_err_set(err, code, "%s: %s%s%s", what, clean, sqlstate ? " sqlstate " : "",
                      sqlstate ? sqlstate : "");
}

static lb_status
prepare_all(store *s, lb_err *err)
{
    for (size_t i = 0; i < s->n_stmts; i++) {
        PGresult *r = PQprepare(s->pg, s->stmts[i].name, s->stmts[i].sql, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            lb_status st = store__result_err(r, s->pg, err, s->stmts[i].name);
            PQclear(r);
            return st;
        }
        PQclear(r);
    }
    s->prepared = true;
    return LB_OK;
}

/* Sees the error a backend sends as it ends (pg_terminate_backend,
 * PostgreSQL shutting down) while the session is idle: libpq hands an error
 * that answers no query to the notice receiver. Notices go to the JSON log,
 * not to libpq's default receiver, which printed bare "FATAL:  terminating
 * connection ..." lines among the JSON ones: severity, SQLSTATE and the
 * primary message only, since detail and context may quote row values. */
static void
notice_seen(void *arg, const PGresult *r)
{
    store *s = arg;
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *text = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    bool ending = sev != NULL && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0);
    if (ending)
        s->gone = true;
    if (ending || (sev != NULL && (strcmp(sev, "ERROR") == 0 || strcmp(sev, "WARNING") == 0)))
        log_warn(NULL, "store.notice", "PostgreSQL says", LOG_STR("severity", sev),
                 LOG_STR("sqlstate", state ? state : ""), LOG_STR("pg_message", text ? text : ""));
    else
        log_debug(NULL, "store.notice", "PostgreSQL says", LOG_STR("severity", sev ? sev : ""),
                  LOG_STR("sqlstate", state ? state : ""), LOG_STR("pg_message", text ? text : ""));
}

static lb_status
connect_pg(store *s, lb_err *err)
{
    if (s->pg != NULL)
        PQfinish(s->pg);
    s->prepared = false;
    s->gone = false;
    /* No parallel workers in a daemon's sessions: its statements are short
     * OLTP ones, and on the 2-core machine layby is measured on the plans
     * that took two workers (the saga gauge's and the console Overview's
     * counts over the sagas in flight) ran 3 times slower than alone and held
     * both cores meanwhile (docs/BENCHMARKS.md, twenty-fifth sitting).
     * Before dbname, so that an `options` in the URL still wins. */
    static const char *const keys[] = { "options", "dbname", NULL };
    const char *const vals[] = { "-c max_parallel_workers_per_gather=0", s->url, NULL };
    s->pg = PQconnectdbParams(keys, vals, 1);
    if (s->pg != NULL)
        PQsetNoticeReceiver(s->pg, notice_seen, s);
    if (PQstatus(s->pg) != CONNECTION_OK) {
        char msg[LB_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(s->pg));
        msg[strcspn(msg, "\n")] = '\0';
        return lb_err_set(err, LB_ERR_DB, "connect to PostgreSQL: %s", msg);
    }
    s->plan_now = PLAN_AUTO; /* PostgreSQL's default; plan_ensure() sets another */
    return prepare_all(s, err);
}

/* The plan a statement's SQL asks for by its first comment, PLAN_UNKNOWN
 * for none. */
static store_plan
sql_plan(const char *sql)
{
    if (strncmp(sql, STORE_GENERIC, sizeof STORE_GENERIC - 1) == 0)
        return PLAN_GENERIC;
    if (strncmp(sql, STORE_CUSTOM, sizeof STORE_CUSTOM - 1) == 0)
        return PLAN_CUSTOM;
    return PLAN_UNKNOWN;
}

lb_status
store_open(store **out, const char *url, const store_stmt *stmts, size_t n, lb_err *err)
{
    store *s = calloc(1, sizeof *s);
    if (s == NULL || (s->url = strdup(url)) == NULL) {
        free(s);
        return lb_err_set(err, LB_ERR_NOMEM, "store");
    }
    s->stmts = stmts;
    s->n_stmts = n;
    s->marked = calloc(n + 1, sizeof *s->marked);
    if (s->marked == NULL) {
        store_close(s);
        return lb_err_set(err, LB_ERR_NOMEM, "store");
    }
    for (size_t i = 0; i < n; i++) {
        store_plan p = sql_plan(stmts[i].sql);
        if (p != PLAN_UNKNOWN)
            s->marked[s->n_marked++] = (struct store_marked){ stmts[i].name, p };
    }
    lb_status st = connect_pg(s, err);
    if (st != LB_OK) {
        store_close(s);
        return st;
    }
    *out = s;
    return LB_OK;
}

void
store_generic_plans(store *s)
{
    s->generic_default = true;
}

void
store_close(store *s)
{
    if (s == NULL)
        return;
    if (s->pg != NULL)
        PQfinish(s->pg);
    free(s->marked);
    free(s->url);
    free(s);
}

PGconn *
store_pg(store *s)
{
    return s->pg;
}

/* Whether an idle session is known dead before anything is sent on it. A
 * backend that ends while its session is idle (pg_terminate_backend,
 * PostgreSQL shut down or restarted) sends a FATAL error and closes its end;
 * libpq learns it only when it next reads. Reading what is pending here costs
 * a poll() (and a read only when something came), no round trip.
 *
 * Why it matters: whatever runs on a session that was already dead fails
 * before the server saw any of it. A read may then simply run again
 * (svc_query.c), but a write whose COMMIT was sent and whose answer was lost
 * has an unknown fate and may not be run again by the engine: a query
 * (request/reply) answers the failure, its client repeats it; a command batch
 * is run again only because its inbox claim commits with it (svc_batch.c: a
 * batch that did commit finds its ids claimed and changes nothing). Seeing the
 * dead session first takes most writes after a database fault out of that
 * question: they run once, on a new session. What is left is a session that
 * dies between this check and the statement, or during the transaction. */
static bool
session_dead(store *s)
{
    if (s->pg == NULL || PQstatus(s->pg) != CONNECTION_OK || s->gone)
        return true;
    if (s->in_tx) /* results are pending: not ours to read here */
        return false;
    struct pollfd p = { .fd = PQsocket(s->pg), .events = POLLIN };
    if (poll(&p, 1, 0) <= 0)
        return false; /* nothing came: as alive as anything can tell */
    if (!PQconsumeInput(s->pg))
        return true;       /* the server closed the connection */
    (void)PQisBusy(s->pg); /* parses what came: a FATAL reaches notice_seen() */
    return s->gone || PQstatus(s->pg) != CONNECTION_OK;
}

lb_status
store_ensure(store *s, lb_err *err)
{
    if (!session_dead(s) && s->prepared)
        return LB_OK;
    return connect_pg(s, err);
}

/* --- pipelined transactions --------------------------------------------- */

/* The connection is in an unknown protocol state: drop it; store_ensure()
 * reconnects before the next transaction. */
static void
kept_clear(store *s)
{
    for (int i = 0; i < s->n_kept; i++)
        PQclear(s->kept[i]);
    memset(s->kept, 0, sizeof s->kept);
    s->n_kept = 0;
}

static void
store_broken(store *s)
{
    if (s->pg != NULL)
        PQfinish(s->pg);
    s->pg = NULL;
    s->prepared = false;
    s->in_tx = false;
    s->n_unread = 0;
    kept_clear(s);
}

static void
unread_push(store *s, const char *name, int keep)
{
    if (s->n_unread < STORE_UNREAD_MAX) {
        s->unread[s->n_unread] = name;
        s->keep[s->n_unread] = (signed char)keep;
    }
    s->n_unread++;
}

/* Reads the result of every unread statement, then the sync. The first failure
 * goes to err; *out, when not NULL, receives the last statement's result, and
 * results of store_send() go to their kept[] slot. */
static lb_status
pipeline_read(store *s, PGresult **out, lb_err *err)
{
    lb_status st = LB_OK;
    int n = s->n_unread;
    s->n_unread = 0;
    for (int i = 0; i < n; i++) {
        const char *name = i < STORE_UNREAD_MAX ? s->unread[i] : "statement";
        int keep = i < STORE_UNREAD_MAX ? s->keep[i] : -1;
        PGresult *r = PQgetResult(s->pg);
        if (r == NULL) {
            store_broken(s);
            return st != LB_OK ? st : lb_err_set(err, LB_ERR_DB, "%s: connection lost", name);
        }
        ExecStatusType t = PQresultStatus(r);
        if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK && t != PGRES_PIPELINE_ABORTED &&
            st == LB_OK)
            st = store__result_err(r, s->pg, err, name);
        if (i == n - 1 && out != NULL && st == LB_OK)
            *out = r;
        else if (keep >= 0 && st == LB_OK)
            s->kept[keep] = r;
        else
            PQclear(r);
        PGresult *end = PQgetResult(s->pg); /* NULL ends one statement's results */
        if (end != NULL) {
            PQclear(end);
            store_broken(s);
            return st != LB_OK ? st : lb_err_set(err, LB_ERR_DB, "%s: protocol state", name);
        }
    }
    PGresult *sync = PQgetResult(s->pg);
    bool ok = sync != NULL && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    if (!ok) {
        if (out != NULL && *out != NULL) {
            PQclear(*out);
            *out = NULL;
        }
        store_broken(s);
        return st != LB_OK ? st : lb_err_set(err, LB_ERR_DB, "pipeline sync lost");
    }
    return st;
}

static lb_status
pipeline_send(store *s, const char *name, bool prepared, int nparams, const char *const *values,
              const int *lengths, const int *formats, int result_format, int keep, lb_err *err)
{
    int ok = prepared ? PQsendQueryPrepared(s->pg, name, nparams, values, lengths, formats,
                                            result_format)
                      : PQsendQueryParams(s->pg, name, 0, NULL, NULL, NULL, NULL, result_format);
    if (!ok)
        return store__result_err(NULL, s->pg, err, name);
    unread_push(s, name, keep);
    return LB_OK;
}

/* Sends the statement and, with wait, a sync, then reads everything up to it. */
static lb_status
pipeline_exec(store *s, PGresult **out, const char *name, bool prepared, int nparams,
              const char *const *values, const int *lengths, const int *formats, int result_format,
              bool wait, lb_err *err)
{
    lb_status st =
        pipeline_send(s, name, prepared, nparams, values, lengths, formats, result_format, -1, err);
    if (st != LB_OK || !wait)
        return st;
    if (!PQpipelineSync(s->pg))
        return store__result_err(NULL, s->pg, err, name);
    PGresult *r = NULL;
    st = pipeline_read(s, &r, err);
    if (st == LB_OK && out != NULL)
        *out = r;
    else
        PQclear(r);
    return st;
}

/* The plan statement `name` asks for, PLAN_UNKNOWN for none. */
static store_plan
stmt_plan(const store *s, const char *name)
{
    for (size_t i = 0; i < s->n_marked; i++)
        if (strcmp(s->marked[i].name, name) == 0)
            return s->marked[i].plan;
    return PLAN_UNKNOWN;
}

/* Sets the session's plan_cache_mode to what statement `name` needs, when it
 * has another: inside a transaction the SET leaves with the statement (a
 * rollback undoes it, so store_rollback() forgets the mode), outside one it is
 * a round trip of its own. A marked statement has its plan; otherwise the
 * connection's default. */
static lb_status
plan_ensure(store *s, const char *name, lb_err *err)
{
    store_plan want = stmt_plan(s, name);
    if (want == PLAN_UNKNOWN)
        want = s->generic_default ? PLAN_GENERIC : PLAN_AUTO;
    if (s->plan_now == want)
        return LB_OK;
    const char *sql = plan_set_sql[want];
    lb_status st = s->in_tx ? pipeline_send(s, sql, false, 0, NULL, NULL, NULL, 0, -1, err)
                            : store_exec_sql(s, sql, err);
    s->plan_now = st == LB_OK ? want : PLAN_UNKNOWN;
    return st;
}

lb_status
store_exec_sql(store *s, const char *sql, lb_err *err)
{
    if (s->in_tx)
        return pipeline_exec(s, NULL, sql, false, 0, NULL, NULL, NULL, 0, true, err);
    PGresult *r = PQexec(s->pg, sql);
    ExecStatusType t = PQresultStatus(r);
    lb_status st = LB_OK;
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK)
        st = store__result_err(r, s->pg, err, sql);
    PQclear(r);
    return st;
}

lb_status
store_begin(store *s, lb_err *err)
{
    lb_status st = store_ensure(s, err);
    if (st != LB_OK)
        return st;
    if (s->in_tx)
        return lb_err_set(err, LB_ERR_INTERNAL, "store_begin inside a transaction");
    if (!PQenterPipelineMode(s->pg))
        return store__result_err(NULL, s->pg, err, "enter pipeline mode");
    s->in_tx = true;
    s->n_unread = 0;
    kept_clear(s);
    /* Not sent alone: it leaves with the first statement that waits. */
    return pipeline_send(s, "BEGIN", false, 0, NULL, NULL, NULL, 0, -1, err);
}

lb_status
store_send(store *s, int *ticket, const char *name, int nparams, const char *const *values,
           int result_format, lb_err *err)
{
    if (!s->in_tx || s->n_kept == STORE_KEEP_MAX)
        return lb_err_set(err, LB_ERR_INTERNAL, "store_send %s: no transaction or too many kept",
                          name);
    lb_status st = plan_ensure(s, name, err);
    if (st == LB_OK)
        st = pipeline_send(s, name, true, nparams, values, NULL, NULL, result_format, s->n_kept,
                           err);
    if (st == LB_OK)
        *ticket = s->n_kept++;
    return st;
}

lb_status
store_flush(store *s, lb_err *err)
{
    if (!s->in_tx || s->n_unread == 0)
        return LB_OK;
    if (!PQpipelineSync(s->pg))
        return store__result_err(NULL, s->pg, err, "pipeline sync");
    return pipeline_read(s, NULL, err);
}

PGresult *
store_take(store *s, int ticket)
{
    if (ticket < 0 || ticket >= s->n_kept)
        return NULL;
    PGresult *r = s->kept[ticket];
    s->kept[ticket] = NULL;
    return r;
}

static void
pipeline_leave(store *s)
{
    s->in_tx = false;
    if (s->pg != NULL && !PQexitPipelineMode(s->pg))
        store_broken(s);
}

lb_status
store_commit(store *s, lb_err *err)
{
    if (!s->in_tx)
        return lb_err_set(err, LB_ERR_INTERNAL, "store_commit outside a transaction");
    /* CRASH POINT: if the connection drops during COMMIT the outcome is unknown;
     * callers treat it as failed and redo the work, which the inbox makes safe. */
    lb_status st = pipeline_exec(s, NULL, "COMMIT", false, 0, NULL, NULL, NULL, 0, true, err);
    if (s->pg == NULL)
        return st;
    if (st != LB_OK)
        return st; /* still in the transaction block: the caller rolls back */
    pipeline_leave(s);
    kept_clear(s);
    return LB_OK;
}

void
store_rollback(store *s)
{
    if (s->in_tx) {
        lb_err ignored;
        /* Statements still in flight: a sync ends the (aborted) run; read up to it. */
        if (s->pg != NULL && s->n_unread > 0) {
            if (PQpipelineSync(s->pg))
                pipeline_read(s, NULL, &ignored);
            else
                store_broken(s);
        }
        pipeline_leave(s);
        s->n_unread = 0;
        kept_clear(s);
    }
    s->plan_now = PLAN_UNKNOWN; /* a SET sent in the transaction is undone with it */
    if (s->pg == NULL || PQstatus(s->pg) != CONNECTION_OK)
        return;
    PQclear(PQexec(s->pg, "ROLLBACK"));
}

lb_status
store_exec_bin(store *s, PGresult **out, const char *name, int nparams, const char *const *values,
               const int *lengths, const int *formats, int result_format, lb_err *err)
{
    lb_status st = plan_ensure(s, name, err);
    if (st != LB_OK)
        return st;
    if (s->in_tx)
        return pipeline_exec(s, out, name, true, nparams, values, lengths, formats, result_format,
                             out != NULL, err);
    PGresult *r = PQexecPrepared(s->pg, name, nparams, values, lengths, formats, result_format);
    ExecStatusType t = PQresultStatus(r);
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
        st = store__result_err(r, s->pg, err, name);
        PQclear(r);
        return st;
    }
    if (out != NULL)
        *out = r;
    else
        PQclear(r);
    return LB_OK;
}

lb_status
store_exec(store *s, PGresult **out, const char *name, int nparams, const char *const *values,
           lb_err *err)
{
    return store_exec_bin(s, out, name, nparams, values, NULL, NULL, 0, err);
}
