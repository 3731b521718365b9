/* ctl_saga_int.h - what the saga commands' files share (ctl_saga.c: list and
 * show; ctl_saga_ops.c: operator commands and replay; ctl_check.c: the
 * replay check): reading schema saga and re-deciding a saga's log.
 *
 * Ownership: PGresults are the caller's (PQclear).
 * Threads:   single-threaded tool.
 */
#ifndef LAYBY_CLI_CTL_SAGA_INT_H
#define LAYBY_CLI_CTL_SAGA_INT_H

#include "ctl.h"
#include "saga.h"

/* Timestamps as RFC 3339 UTC with milliseconds, like lb_time_format(). */
#define CTL_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* clang-format off */
#define CTL_SQL_SAGA                                                                       \
    "SELECT saga_type, version, status, state, start_type, " CTL_TS("created_at") ", "    \
    CTL_TS("updated_at") ", start, coalesce(correlation, saga_id)::text"                   \
    " FROM saga.sagas WHERE saga_id = $1::uuid"
#define CTL_SQL_LOG                                                                        \
    "SELECT id, " CTL_TS("at") ", msg_id, input_kind, input, verdict, from_status, to_status, line" \
    " FROM saga.saga_log WHERE saga_id = $1::uuid ORDER BY id"
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

extern const char *const ctl_verdict_names[];

/* Runs a query with text parameters and results; NULL (with err) on failure. */
PGresult *ctl_query(PGconn *pg, const char *sql, int n, const char *const *params, lb_err *err);
/* A bytea column's bytes; the caller PQfreemem()s *out. */
lb_status ctl_bytea(unsigned char **out, size_t *len, const PGresult *r, int row, int col,
                    lb_err *err);
lb_status ctl_state_get(saga_state *state, const PGresult *r, int row, int col, lb_err *err);
/* This build's saga types (the orchestrator's registry); NULL with err. */
const saga_registry *ctl_registry(lb_err *err);
/* The type st runs on in this build, NULL when it lacks it. */
const saga_type *ctl_saga_type(const saga_state *state);
/* The saga's row (CTL_SQL_SAGA); LB_ERR_NOT_FOUND for an unknown id. */
lb_status ctl_saga_row(PGresult **out, PGconn *pg, const char *id, lb_err *err);

/* Re-decides a saga's logged inputs one by one from nothing, as the
 * orchestrator did: ctl_redecide() unpacks row `row` of a CTL_SQL_LOG result
 * into *rec and decides it on *st (exists: whether a saga exists yet). */
typedef struct ctl_redo {
    saga_state state;
    bool exists;
} ctl_redo;
lb_status ctl_redecide(ctl_redo *redo, saga_input_rec *rec, saga_decision *d, const saga_type *t,
                       const PGresult *r, int row, lb_err *err);
/* Whether the decision is the one the log recorded (verdict, status, line). */
bool ctl_decision_matches(const saga_decision *d, const PGresult *r, int row);
/* A decided command as JSON: subject, type, step, attempt, compensate. */
json_t *ctl_cmd_json(const saga_cmd *c);

#endif
