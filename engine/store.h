/* store.h - PostgreSQL access through libpq: one connection, its prepared
 * statements and its transactions.
 *
 * A service names its SQL once in a table of store_stmt rows; store_open()
 * prepares them on connect and again after a reconnect, so callers refer to
 * statements by name only. Errors that a retry may cure (connection lost,
 * deadlock, serialization failure) are LB_ERR_DB; a constraint violation is
 * LB_ERR_CONFLICT; others LB_ERR_INTERNAL.
 *
 * Ownership: store_open() returns a store freed by store_close(); PGresult
 *            values returned to callers are theirs to PQclear().
 * Threads:   a store belongs to one thread at a time.
 */
#ifndef LAYBY_ENGINE_STORE_H
#define LAYBY_ENGINE_STORE_H

#include <libpq-fe.h>

#include "lb.h"

typedef struct store_stmt {
    const char *name; /* prepared-statement name, also the C constant's name */
    const char *sql;  /* may start with STORE_GENERIC or STORE_CUSTOM */
} store_stmt;

/* The start of a statement planned once per connection, whatever the
 * connection's default (store_generic_plans): for a statement whose generic
 * plan is the plan any parameters get, where PostgreSQL's own choice
 * (plan_cache_mode auto) may still plan it at every call. A comment, so
 * pg_stat_statements and the server's log show it with the statement. */
#define STORE_GENERIC "/* generic plan */ "
/* The start of a statement planned at every call, whatever the connection's
 * default: for a statement whose best plan depends on its parameters (a
 * keyset page whose optional cursor and filters a generic plan can only
 * test row by row), where PostgreSQL's own choice may settle on the generic
 * plan once the average of its custom plans looks dear enough. */
#define STORE_CUSTOM  "/* custom plan */ "

typedef struct store store;

/* Connects to url and prepares stmts (borrowed: the table must outlive the store). */
lb_status store_open(store **out, const char *url, const store_stmt *stmts, size_t n, lb_err *err);
void store_close(store *s); /* NULL is a no-op */
PGconn *store_pg(store *s);
/* Reconnects if the connection is bad (and re-prepares). */
lb_status store_ensure(store *s, lb_err *err);
/* Every statement on this connection planned once (plan_cache_mode =
 * force_generic_plan), now and after every reconnect. Without it PostgreSQL
 * chooses per statement (auto), but for STORE_GENERIC and STORE_CUSTOM ones
 * (STORE_CUSTOM wins over this default too). The store sets
 * plan_cache_mode itself, before the statement that needs another mode than
 * the session has (one SET, inside the transaction's pipeline or a round
 * trip of its own outside one); it assumes a new session starts in auto. */
void store_generic_plans(store *s);

/* A transaction is pipelined (store.c): BEGIN leaves with the first statement
 * that waits for its result, and inside a transaction a statement whose result
 * is not asked for (out == NULL) is sent without waiting. Its failure is
 * reported by the next statement that waits, or by store_commit(); either way
 * the caller then calls store_rollback(). Outside a transaction every
 * statement waits. */
lb_status store_begin(store *s, lb_err *err);
lb_status store_commit(store *s, lb_err *err);
void store_rollback(store *s); /* best effort; never fails the caller */

/* Inside a transaction: sends prepared statement `name` without waiting and
 * keeps its result (format 0 text, 1 binary) for store_take(*ticket), so reads
 * that do not depend on each other share one round trip. At most 4 per
 * transaction. */
lb_status store_send(store *s, int *ticket, const char *name, int nparams,
                     const char *const *values, int result_format, lb_err *err);
/* Waits for everything sent so far (one round trip; none if nothing is in
 * flight). Returns the first failure among them. */
lb_status store_flush(store *s, lb_err *err);
/* The kept result of a sent statement once a later wait read it; the caller
 * PQclear()s it. NULL when it failed, was not read yet or was taken already.
 * Results not taken are freed at commit or rollback. */
PGresult *store_take(store *s, int ticket);

/* Runs prepared statement `name` with text parameters (NULL value = SQL NULL).
 * When out is not NULL, *out gets the result (text format). Parameter memory
 * may be freed as soon as this returns, even when the statement was only sent. */
lb_status store_exec(store *s, PGresult **out, const char *name, int nparams,
                     const char *const *values, lb_err *err);
/* Same with per-parameter lengths and formats (binary parameters such as bytea)
 * and the result's format (0 text, 1 binary). */
lb_status store_exec_bin(store *s, PGresult **out, const char *name, int nparams,
                         const char *const *values, const int *lengths, const int *formats,
                         int result_format, lb_err *err);
/* Runs literal SQL without parameters (BEGIN, LISTEN ...). */
lb_status store_exec_sql(store *s, const char *sql, lb_err *err);

/* An array parameter built as a text literal ({"a","b"}), so a whole batch
 * travels in one statement (unnest($1::text[])). Caller memory: begin, add,
 * end, pass .p as the parameter, then store_array_free(). On allocation
 * failure .oom is set and the adds become no-ops. */
typedef struct store_array {
    char *p;
    size_t len, cap;
    bool oom;
} store_array;

void store_array_begin(store_array *a);
void store_array_text(store_array *a, const char *s);
void store_array_int(store_array *a, int64_t v);
void store_array_bytea(store_array *a, const uint8_t *b, size_t n);
void store_array_null(store_array *a);
void store_array_end(store_array *a);
void store_array_free(store_array *a);
/* Ends arrays[0..n) and points params[i] at each literal: a statement's array
 * parameters in one call. False when one of them ran out of memory. */
bool store_arrays_end(store_array *const *arrays, size_t n, const char **params);

/* Maps a failed result to a status and fills err with PQresultErrorMessage. */
lb_status store__result_err(const PGresult *r, PGconn *pg, lb_err *err, const char *what);

#endif
