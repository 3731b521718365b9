/* saga_view.h - sagas as an operator reads them, in one place for layby-ctl
 * (`saga list|show --json`, with SQL of its own connection) and for the
 * orchestrator's admin queries (layby.qry.orchestrator.saga_list|saga_show, which the edge's
 * console endpoints ask): schema saga read with SQL and rendered as JSON.
 *
 * A saga's JSON is its record and steps and its timeline: every logged input
 * (start, events, timers, signals, operator commands with who and why),
 * decoded, with the decision and the commands it sent, which this build's
 * decider recomputes from the log (the orchestrator logs inputs, not the
 * commands; they are a pure function of them). A saga whose type this build
 * lacks shows its timeline without the commands.
 *
 * Ownership: PGresults and json_t trees returned are the caller's.
 * Threads:   pure over the connection given; the type registry is read-only
 *            once saga_orch_init() ran (saga_view_registry() runs it lazily
 *            for the single-threaded tool).
 */
#ifndef LAYBY_ENGINE_ORCHESTRATOR_SAGA_VIEW_H
#define LAYBY_ENGINE_ORCHESTRATOR_SAGA_VIEW_H

#include <jansson.h>
#include <libpq-fe.h>

#include "engine/saga.h"

/* Timestamps as RFC 3339 UTC with milliseconds, like lb_time_format(). */
#define SAGA_VIEW_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* clang-format off */
#define SAGA_VIEW_SQL_SAGA                                                                  \
    "SELECT saga_type, version, status, state, start_type, " SAGA_VIEW_TS("created_at") ", " \
    SAGA_VIEW_TS("updated_at") ", start, coalesce(correlation, saga_id)::text"            \
    " FROM saga.sagas WHERE saga_id = $1::uuid"
#define SAGA_VIEW_SQL_LOG                                                                   \
    "SELECT id, " SAGA_VIEW_TS("at") ", msg_id, input_kind, input, verdict, from_status, to_status, line" \
    " FROM saga.saga_log WHERE saga_id = $1::uuid ORDER BY id"
/* The log's first $2 entries (NULL: all of them). */
#define SAGA_VIEW_SQL_LOG_HEAD SAGA_VIEW_SQL_LOG " LIMIT $2::bigint"
/* clang-format on */

enum {
    SAGA_COL_TYPE,
    SAGA_COL_VERSION,
    SAGA_COL_STATUS,
    SAGA_COL_STATE,
    SAGA_COL_START_TYPE,
    SAGA_COL_CREATED,
    SAGA_COL_UPDATED,
    SAGA_COL_START,      /* the start command's bytes (of type SAGA_COL_START_TYPE) */
    SAGA_COL_CORRELATION /* the saga's flow: the order id for both order sagas */
};
enum {
    LOG_COL_ID,
    LOG_COL_AT,
    LOG_COL_MSG,
    LOG_COL_KIND,
    LOG_COL_INPUT,
    LOG_COL_VERDICT,
    LOG_COL_FROM,
    LOG_COL_TO,
    LOG_COL_LINE
};

#define SAGA_VIEW_PAGE_DEFAULT 50
#define SAGA_VIEW_CURSOR_MAX   80 /* "<microseconds>_<saga id>" */

extern const char *const saga_view_verdict_names[];

/* Runs a query with text parameters and results; NULL (with err) on failure. */
PGresult *saga_view_query(PGconn *pg, const char *sql, int n, const char *const *params,
                          lb_err *err);
/* A bytea column's bytes; the caller PQfreemem()s *out. */
lb_status saga_view_bytea(unsigned char **out, size_t *len, const PGresult *r, int row, int col,
                          lb_err *err);
lb_status saga_view_state_get(saga_state *state, const PGresult *r, int row, int col, lb_err *err);
/* This build's saga types (the orchestrator's registry); NULL with err. */
const saga_registry *saga_view_registry(lb_err *err);
/* The type st runs on in this build, NULL when it lacks it. */
const saga_type *saga_view_type(const saga_state *state);
/* The saga's row (SAGA_VIEW_SQL_SAGA); LB_ERR_NOT_FOUND for an unknown id. */
lb_status saga_view_row(PGresult **out, PGconn *pg, const char *id, lb_err *err);

/* Re-decides a saga's logged inputs one by one from nothing, as the
 * orchestrator did: saga_view_redecide() unpacks row `row` of a
 * SAGA_VIEW_SQL_LOG result into *rec and decides it on redo->state (exists:
 * whether a saga exists yet). */
typedef struct saga_view_redo {
    saga_state state;
    bool exists;
} saga_view_redo;
lb_status saga_view_redecide(saga_view_redo *redo, saga_input_rec *rec, saga_decision *d,
                             const saga_type *t, const PGresult *r, int row, lb_err *err);
/* Whether the decision is the one the log recorded (verdict, status, line). */
bool saga_view_decision_matches(const saga_decision *d, const PGresult *r, int row);
/* A decided command as JSON: subject, type, step, attempt, compensate. */
json_t *saga_view_cmd_json(const saga_cmd *c);

/* Which sagas a list shows; "" (0) for a filter not asked. */
typedef struct saga_view_filter {
    const char *state;   /* a status name (saga_status_from_name) */
    const char *type;    /* a saga type's name */
    int64_t since_ms;    /* changed at or after */
    const char *saga_id; /* the saga of this flow (an order's id) */
    const char *cursor;  /* nextCursor of the previous page */
    int64_t limit;       /* rows per page, >= 1 */
} saga_view_filter;

/* Checks a filter's state name, saga id and cursor: LB_ERR_INVALID with the
 * field's JSON name (state, orderId, cursor) otherwise. */
lb_status saga_view_filter_check(const saga_view_filter *f, lb_err *err);
/* One page, newest first, read with one statement of at most
 * limit + 1 rows: {"items":[...],"nextCursor":"..."}, no nextCursor on the last page. */
lb_status saga_view_list(json_t **out, PGconn *pg, const saga_view_filter *f, lb_err *err);
/* Which entries of a saga's timeline a document holds: from the entry at
 * position `from` (0 = the first; the log is append-only, so a position is a
 * stable cursor), at most `limit` of them (0 = all, as layby-ctl prints). */
typedef struct saga_view_page {
    int64_t from;
    int64_t limit;
} saga_view_page;
#define SAGA_VIEW_PAGE_ALL ((saga_view_page){ 0, 0 })

/* A saga's record, steps and timeline: what `layby-ctl saga show --json`
 * prints. With a page, the timeline holds only its entries and, when more
 * follow, "timelineNextCursor" (the next page's `from`, as text); "timelineFrom"
 * is the first entry's position. The commands of an entry are re-decided from
 * the start, so the log's entries before the page are read too (inputs only
 * decoded for the page): LB_ERR_NOT_FOUND for an unknown id. */
lb_status saga_view_show(json_t **out, PGconn *pg, const char *id, saga_view_page page,
                         lb_err *err);

/* The Overview's sagas (saga_overview.c): {sagas: [{type, state, count,
 * finished}], finishedSince, bucketSeconds, throughput: [{at, started,
 * finished, completed}]}: every unfinished saga, the finished ones since
 * finishedSince, 30 buckets of 10 s, the last one the current (partial) one. */
lb_status saga_view_overview(json_t **out, PGconn *pg, lb_err *err);

#endif
