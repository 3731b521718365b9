/* store.c - one libpq connection with its prepared statements.
 *
 * Statements are prepared on connect and after every reconnect, so a caller
 * never sees "prepared statement does not exist" after PostgreSQL restarted. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store {
    /* config */
    char *url;
    const store_stmt *stmts; /* borrowed table */
    size_t n_stmts;
    /* state */
    PGconn *pg;
    bool prepared; /* stmts prepared on this pg */
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

static lb_status
connect_pg(store *s, lb_err *err)
{
    if (s->pg != NULL)
        PQfinish(s->pg);
    s->prepared = false;
    s->pg = PQconnectdb(s->url);
    if (PQstatus(s->pg) != CONNECTION_OK) {
        char msg[LB_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(s->pg));
        msg[strcspn(msg, "\n")] = '\0';
        return lb_err_set(err, LB_ERR_DB, "connect to PostgreSQL: %s", msg);
    }
    return prepare_all(s, err);
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
    lb_status st = connect_pg(s, err);
    if (st != LB_OK) {
        store_close(s);
        return st;
    }
    *out = s;
    return LB_OK;
}

void
store_close(store *s)
{
    if (s == NULL)
        return;
    if (s->pg != NULL)
        PQfinish(s->pg);
    free(s->url);
    free(s);
}

PGconn *
store_pg(store *s)
{
    return s->pg;
}

lb_status
store_ensure(store *s, lb_err *err)
{
    if (s->pg != NULL && PQstatus(s->pg) == CONNECTION_OK && s->prepared)
        return LB_OK;
    return connect_pg(s, err);
}

lb_status
store_exec_sql(store *s, const char *sql, lb_err *err)
{
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
    return store_exec_sql(s, "BEGIN", err);
}

lb_status
store_commit(store *s, lb_err *err)
{
    /* CRASH POINT: if the connection drops during COMMIT the outcome is unknown;
     * callers treat it as failed and redo the work, which the inbox makes safe. */
    return store_exec_sql(s, "COMMIT", err);
}

void
store_rollback(store *s)
{
    if (s->pg == NULL || PQstatus(s->pg) != CONNECTION_OK)
        return;
    PGresult *r = PQexec(s->pg, "ROLLBACK");
    PQclear(r);
}

lb_status
store_exec_bin(store *s, PGresult **out, const char *name, int nparams, const char *const *values,
               const int *lengths, const int *formats, lb_err *err)
{
    PGresult *r = PQexecPrepared(s->pg, name, nparams, values, lengths, formats, 0);
    ExecStatusType t = PQresultStatus(r);
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
        lb_status st = store__result_err(r, s->pg, err, name);
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
    return store_exec_bin(s, out, name, nparams, values, NULL, NULL, err);
}
