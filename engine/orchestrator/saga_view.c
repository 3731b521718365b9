/* saga_view.c - sagas as an operator reads them (saga_view.h): one page of
 * the list, and a saga's record, steps and timeline, as JSON. layby-ctl
 * prints it (`saga list|show --json`) and the orchestrator answers it to the
 * edge's admin endpoints (layby.qry.orchestrator.saga_list|saga_show), so the console and the
 * CLI show the same document. */
#include "saga_view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "id.h"
#include "layby/v1/saga.pb-c.h"
#include "saga_orch.h"

/* clang-format off */
/* Newest first by creation, keyset on (created_at, saga_id): both never
 * change, so pages neither skip nor repeat a saga while sagas run, and the
 * index sagas_created (sql/0760) serves the order without indexing
 * updated_at, which would make every step's write of a saga a non-HOT update.
 * since still filters on updated_at (changed at or after). */
#define SQL_LIST                                                                            \
    "SELECT saga_id::text, saga_type, version, status, state, " SAGA_VIEW_TS("updated_at") ", "  \
    SAGA_VIEW_TS("created_at") ", (extract(epoch FROM created_at) * 1000000)::bigint"            \
    " FROM saga.sagas"                                                                      \
    " WHERE ($1 = '' OR status = $1) AND ($2 = '' OR saga_type = $2)"                        \
    "   AND ($3::bigint = 0 OR updated_at >= timestamptz 'epoch' + $3::bigint * interval '1 millisecond')" \
    "   AND ($4 = '' OR saga_id = NULLIF($4, '')::uuid OR correlation = NULLIF($4, '')::uuid)" \
    "   AND ($5::bigint = 0 OR (created_at, saga_id) <"                                     \
    "        (timestamptz 'epoch' + $5::bigint * interval '1 microsecond', NULLIF($6, '')::uuid))" \
    " ORDER BY created_at DESC, saga_id DESC LIMIT $7::bigint"
/* clang-format on */
enum {
    LIST_ID,
    LIST_TYPE,
    LIST_VERSION,
    LIST_STATUS,
    LIST_STATE,
    LIST_UPDATED,
    LIST_CREATED,
    LIST_US
};

const char *const saga_view_verdict_names[] = {
    [SAGA_APPLIED] = "APPLIED",
    [SAGA_IGNORED] = "IGNORED",
    [SAGA_REFUSED] = "REFUSED",
};

static const struct {
    unsigned bit;
    const char *name;
} step_flags[] = {
    { SAGA_STEP_F_RETRY_WAIT, "retry-wait" }, { SAGA_STEP_F_UNCERTAIN, "uncertain" },
    { SAGA_STEP_F_EARLY, "early" },           { SAGA_STEP_F_AHEAD, "ahead" },
    { SAGA_STEP_F_REFUSED, "refused" },
};

/* --- shared ---------------------------------------------------------------- */

PGresult *
saga_view_query(PGconn *pg, const char *sql, int n, const char *const *params, lb_err *err)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        return r;
    const char *m = PQresultErrorMessage(r);
    lb_err_set(err, LB_ERR_DB, "PostgreSQL: %.*s", (int)strcspn(m, "\n"), m);
    PQclear(r);
    return NULL;
}

lb_status
saga_view_bytea(unsigned char **out, size_t *len, const PGresult *r, int row, int col, lb_err *err)
{
    *out = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), len);
    return *out != NULL ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "bytea column");
}

lb_status
saga_view_state_get(saga_state *state, const PGresult *r, int row, int col, lb_err *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    lb_status s = saga_view_bytea(&buf, &len, r, row, col, err);
    if (s == LB_OK)
        s = saga_state_unpack(state, buf, len, err);
    PQfreemem(buf);
    return s;
}

const saga_registry *
saga_view_registry(lb_err *err)
{
    static bool ready;
    if (!ready && saga_orch_init(err) != LB_OK)
        return NULL;
    ready = true;
    return saga_orch_registry();
}

const saga_type *
saga_view_type(const saga_state *state)
{
    lb_err err;
    const saga_registry *reg = saga_view_registry(&err);
    return reg ? saga_registry_find(reg, state->type, state->version) : NULL;
}

lb_status
saga_view_row(PGresult **out, PGconn *pg, const char *id, lb_err *err)
{
    const char *p[] = { id };
    PGresult *r = saga_view_query(pg, SAGA_VIEW_SQL_SAGA, 1, p, err);
    if (r == NULL)
        return LB_ERR_DB;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no saga %s", id);
    }
    *out = r;
    return LB_OK;
}

lb_status
saga_view_redecide(saga_view_redo *redo, saga_input_rec *rec, saga_decision *d, const saga_type *t,
                   const PGresult *r, int row, lb_err *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    lb_status s = saga_view_bytea(&buf, &len, r, row, LOG_COL_INPUT, err);
    if (s == LB_OK)
        s = saga_input_unpack(rec, t, buf, len, err);
    PQfreemem(buf);
    if (s == LB_OK)
        s = saga_decide(&redo->state, d, t, redo->exists ? &redo->state : NULL, &rec->in, err);
    if (s != LB_OK) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        return lb_err_set(err, s, "log entry %s: %s", PQgetvalue(r, row, LOG_COL_ID), why);
    }
    if (d->verdict == SAGA_APPLIED)
        redo->exists = true;
    return LB_OK;
}

bool
saga_view_decision_matches(const saga_decision *d, const PGresult *r, int row)
{
    return strcmp(saga_view_verdict_names[d->verdict], PQgetvalue(r, row, LOG_COL_VERDICT)) == 0 &&
           strcmp(saga_status_name(d->to), PQgetvalue(r, row, LOG_COL_TO)) == 0 &&
           strcmp(d->log, PQgetvalue(r, row, LOG_COL_LINE)) == 0;
}

json_t *
saga_view_cmd_json(const saga_cmd *c)
{
    return json_pack("{s:s,s:s,s:i,s:i,s:b}", "subject", c->subject, "type", c->desc->name, "step",
                     (int)c->step, "attempt", (int)c->attempt, "compensate", c->compensate);
}

/* --- the list ---------------------------------------------------------------- */

/* "<microseconds>_<saga id>" of the row a page ended with. */
static bool
cursor_parse(char *us, size_t n_us, char *id, const char *text)
{
    const char *sep = strchr(text, '_');
    size_t k = sep != NULL ? (size_t)(sep - text) : 0;
    if (k == 0 || k >= n_us || strspn(text, "0123456789") != k || !id_valid(sep + 1))
        return false;
    memcpy(us, text, k);
    us[k] = '\0';
    snprintf(id, ID_STR_LEN, "%s", sep + 1);
    return true;
}

static json_t *
list_row_json(const PGresult *r, int i, const saga_state *state)
{
    const saga_type *t = saga_view_type(state);
    return json_pack(
        "{s:s,s:s,s:i,s:s,s:i,s:s,s:s,s:s}", "sagaId", PQgetvalue(r, i, LIST_ID), "type",
        PQgetvalue(r, i, LIST_TYPE), "version", atoi(PQgetvalue(r, i, LIST_VERSION)), "state",
        PQgetvalue(r, i, LIST_STATUS), "step", (int)state->step, "stepName",
        t != NULL && state->step < t->n_steps ? t->steps[state->step].name : "?", "created",
        PQgetvalue(r, i, LIST_CREATED), "updated", PQgetvalue(r, i, LIST_UPDATED));
}

lb_status
saga_view_filter_check(const saga_view_filter *f, lb_err *err)
{
    char us[24], id[ID_STR_LEN];
    if (f->state[0] != '\0' && saga_status_from_name(f->state) == SAGA_NONE)
        return lb_err_field(err, LB_ERR_INVALID, "state", "unknown saga state '%.40s'", f->state);
    if (f->saga_id[0] != '\0' && !id_valid(f->saga_id))
        return lb_err_field(err, LB_ERR_INVALID, "orderId", "orderId must be an id (a UUID)");
    if (f->cursor[0] != '\0' && !cursor_parse(us, sizeof us, id, f->cursor))
        return lb_err_field(err, LB_ERR_INVALID, "cursor", "cursor is not a nextCursor of a page");
    if (f->limit < 1)
        return lb_err_field(err, LB_ERR_INVALID, "limit", "limit must be at least 1");
    return LB_OK;
}

lb_status
saga_view_list(json_t **out, PGconn *pg, const saga_view_filter *f, lb_err *err)
{
    lb_status s = saga_view_filter_check(f, err);
    if (s != LB_OK)
        return s;
    char since[24], limit[24], cur_us[24] = "0", cur_id[ID_STR_LEN] = "";
    snprintf(since, sizeof since, "%lld", (long long)(f->since_ms > 0 ? f->since_ms : 0));
    snprintf(limit, sizeof limit, "%lld", (long long)f->limit + 1); /* one more: a next page? */
    if (f->cursor[0] != '\0')
        cursor_parse(cur_us, sizeof cur_us, cur_id, f->cursor);
    const char *p[] = { f->state, f->type, since, f->saga_id, cur_us, cur_id, limit };
    PGresult *r = saga_view_query(pg, SQL_LIST, 7, p, err);
    if (r == NULL)
        return LB_ERR_DB;
    int n = PQntuples(r);
    int shown = n > f->limit ? (int)f->limit : n;
    json_t *items = json_array();
    for (int i = 0; i < shown && s == LB_OK; i++) {
        saga_state state;
        if ((s = saga_view_state_get(&state, r, i, LIST_STATE, err)) == LB_OK)
            json_array_append_new(items, list_row_json(r, i, &state));
    }
    char next[SAGA_VIEW_CURSOR_MAX] = "";
    if (n > shown)
        snprintf(next, sizeof next, "%s_%s", PQgetvalue(r, shown - 1, LIST_US),
                 PQgetvalue(r, shown - 1, LIST_ID));
    PQclear(r);
    if (s != LB_OK) {
        json_decref(items);
        return s;
    }
    *out = json_pack("{s:o,s:s*}", "items", items, "nextCursor", next[0] ? next : NULL);
    return *out != NULL ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "saga list");
}

/* --- a saga: the record and steps ---------------------------------------- */

static json_t *
steps_json(const saga_state *state, const saga_type *t)
{
    json_t *arr = json_array();
    size_t n = t != NULL ? t->n_steps : SAGA_STEPS_MAX;
    for (size_t i = 0; i < n; i++) {
        const saga_step_state *ss = &state->steps[i];
        json_t *flags = json_array();
        for (size_t k = 0; k < LB_COUNTOF(step_flags); k++)
            if (ss->flags & step_flags[k].bit)
                json_array_append_new(flags, json_string(step_flags[k].name));
        json_array_append_new(
            arr, json_pack("{s:i,s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:o,s:I}", "index", (int)i, "name",
                           t != NULL ? t->steps[i].name : "?", "kind",
                           t != NULL ? saga_step_kind_name(t->steps[i].kind) : "?", "status",
                           saga_step_status_name((saga_step_status)ss->status), "attempt",
                           ss->attempt, "tries", ss->tries, "compAttempt", ss->comp_attempt,
                           "compTries", ss->comp_tries, "flags", flags, "durationMs",
                           (json_int_t)state->durations_ms[i]));
    }
    return arr;
}

static json_t *
record_json(const saga_state *state, const saga_type *t)
{
    ProtobufCMessage *rec = NULL;
    json_t *j = NULL;
    lb_err err;
    if (t == NULL || t->record == NULL)
        return json_null();
    if (saga_record_get(&rec, t, state, &err) != LB_OK ||
        codec_json_encode_proto3(&j, rec, &err) != LB_OK)
        j = json_pack("{s:s}", "error", err.msg);
    if (rec != NULL)
        protobuf_c_message_free_unpacked(rec, NULL);
    return j;
}

/* The start command decoded (proto3 JSON) by its type through the codec
 * registry: for a pay saga, the order it pays. */
static json_t *
start_json(const PGresult *r)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    ProtobufCMessage *m = NULL;
    json_t *j = NULL;
    lb_err err;
    const char *type = PQgetvalue(r, 0, SAGA_COL_START_TYPE);
    const ProtobufCMessageDescriptor *d = codec_type_find(type);
    if (d == NULL)
        j = json_pack("{s:s}", "error", "unknown type");
    else if (saga_view_bytea(&buf, &len, r, 0, SAGA_COL_START, &err) != LB_OK ||
             codec_unpack(&m, d, buf, len, &err) != LB_OK ||
             codec_json_encode_proto3(&j, m, &err) != LB_OK)
        j = json_pack("{s:s}", "error", err.msg);
    if (m != NULL)
        protobuf_c_message_free_unpacked(m, NULL);
    PQfreemem(buf);
    return json_pack("{s:s,s:o}", "type", type, "message", j);
}

static json_t *
state_json(const char *id, const PGresult *r, const saga_state *state, const saga_type *t)
{
    json_t *o = json_pack(
        "{s:s,s:s,s:i,s:s,s:s,s:i,s:s,s:s,s:s}", "sagaId", id, "type",
        PQgetvalue(r, 0, SAGA_COL_TYPE), "version", atoi(PQgetvalue(r, 0, SAGA_COL_VERSION)),
        "startedBy", PQgetvalue(r, 0, SAGA_COL_START_TYPE), "state",
        saga_status_name(state->status), "step", (int)state->step, "stepName",
        t != NULL && state->step < t->n_steps ? t->steps[state->step].name : "?", "created",
        PQgetvalue(r, 0, SAGA_COL_CREATED), "updated", PQgetvalue(r, 0, SAGA_COL_UPDATED));
    json_object_set_new(o, "actor", json_string(state->actor));
    json_object_set_new(o, "correlation", json_string(PQgetvalue(r, 0, SAGA_COL_CORRELATION)));
    json_object_set_new(o, "start", start_json(r));
    if (state->has_timer) {
        char due[32];
        lb_time_format(due, sizeof due, state->timer.due_ms);
        json_object_set_new(
            o, "timer",
            json_pack("{s:s,s:i,s:i,s:s}", "kind", saga_timer_kind_name(state->timer.kind), "step",
                      (int)state->timer.step, "attempt", (int)state->timer.attempt, "due", due));
    } else {
        json_object_set_new(o, "timer", json_null());
    }
    if (state->fail_code != LB_OK)
        json_object_set_new(o, "failure",
                            json_pack("{s:s,s:s}", "code", lb_status_code(state->fail_code),
                                      "reason", state->fail_reason));
    if (state->last_error[0] != '\0')
        json_object_set_new(o, "lastError", json_string(state->last_error));
    if (state->resolved_by[0] != '\0')
        json_object_set_new(
            o, "resolved",
            json_pack("{s:s,s:s}", "by", state->resolved_by, "reason", state->resolve_reason));
    if (state->signal[0] != '\0')
        json_object_set_new(o, "signal", json_string(state->signal));
    json_object_set_new(o, "record", record_json(state, t));
    json_object_set_new(o, "steps", steps_json(state, t));
    return o;
}

/* --- saga show: the timeline ----------------------------------------------- */

/* The logged input decoded: SagaInput in the proto3 JSON mapping, with its
 * kind by name and an event's body decoded by its type. */
static json_t *
input_json(const PGresult *r, int row)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    ProtobufCMessage *m = NULL;
    json_t *j = NULL;
    lb_err err;
    if (saga_view_bytea(&buf, &len, r, row, LOG_COL_INPUT, &err) != LB_OK ||
        codec_unpack(&m, &layby__v1__saga_input__descriptor, buf, len, &err) != LB_OK ||
        codec_json_encode_proto3(&j, m, &err) != LB_OK) {
        j = json_pack("{s:s}", "error", err.msg);
    } else {
        const Layby__V1__SagaInput *in = (const Layby__V1__SagaInput *)m;
        json_object_set_new(
            j, "kind",
            json_string(in->kind < SAGA__INPUT_KIND_COUNT ? saga_input_kind_name(in->kind) : "?"));
        const ProtobufCMessageDescriptor *d = codec_type_find(in->event_type);
        ProtobufCMessage *ev = NULL;
        json_t *evj = NULL;
        if (d != NULL && in->body.len > 0 &&
            codec_unpack(&ev, d, in->body.data, in->body.len, &err) == LB_OK &&
            codec_json_encode_proto3(&evj, ev, &err) == LB_OK) {
            json_object_del(j, "body");
            json_object_set_new(j, "event", evj);
        }
        if (ev != NULL)
            protobuf_c_message_free_unpacked(ev, NULL);
    }
    if (m != NULL)
        protobuf_c_message_free_unpacked(m, NULL);
    PQfreemem(buf);
    return j;
}

/* Row i of a SAGA_VIEW_SQL_LOG result as a timeline entry (without commands). */
static json_t *
entry_json(const PGresult *r, int i)
{
    return json_pack("{s:I,s:s,s:s,s:s,s:o,s:s,s:s,s:s,s:s}", "id",
                     (json_int_t)strtoll(PQgetvalue(r, i, LOG_COL_ID), NULL, 10), "at",
                     PQgetvalue(r, i, LOG_COL_AT), "kind", PQgetvalue(r, i, LOG_COL_KIND), "msgId",
                     PQgetvalue(r, i, LOG_COL_MSG), "input", input_json(r, i), "verdict",
                     PQgetvalue(r, i, LOG_COL_VERDICT), "from", PQgetvalue(r, i, LOG_COL_FROM),
                     "to", PQgetvalue(r, i, LOG_COL_TO), "line", PQgetvalue(r, i, LOG_COL_LINE));
}

/* The timeline's page as JSON into doc; commands when this build has the
 * saga's type. One statement reads the log up to one entry past the page
 * (to know whether another follows): the entries before it are re-decided
 * but not rendered. */
static lb_status
timeline_json(json_t *doc, PGconn *pg, const char *id, const saga_type *t, saga_view_page page,
              lb_err *err)
{
    char head[24];
    snprintf(head, sizeof head, "%lld", (long long)(page.from + page.limit + 1));
    const char *p[] = { id, page.limit > 0 ? head : NULL };
    PGresult *r = saga_view_query(pg, SAGA_VIEW_SQL_LOG_HEAD, 2, p, err);
    if (r == NULL)
        return LB_ERR_DB;
    saga_view_redo *redo = calloc(1, sizeof *redo);
    saga_input_rec *rec = malloc(sizeof *rec);
    json_t *arr = json_array();
    bool redo_ok = t != NULL && redo != NULL && rec != NULL;
    int64_t end = page.limit > 0 ? page.from + page.limit : INT64_MAX;
    int n = PQntuples(r);
    for (int i = 0; i < n && i < end; i++) {
        bool shown = i >= page.from;
        json_t *e = shown ? entry_json(r, i) : NULL;
        saga_decision d;
        lb_err derr = { 0 };
        if (redo_ok && saga_view_redecide(redo, rec, &d, t, r, i, &derr) == LB_OK) {
            if (shown) {
                json_t *cmds = json_array();
                for (size_t k = 0; k < d.n_cmds; k++)
                    json_array_append_new(cmds, saga_view_cmd_json(&d.cmds[k]));
                json_object_set_new(e, "commands", cmds);
                if (!saga_view_decision_matches(&d, r, i))
                    json_object_set_new(e, "redecided", json_string(d.log));
            }
        } else if (redo_ok) {
            redo_ok = false; /* later entries build on this one */
            if (shown)
                json_object_set_new(e, "redecideError", json_string(derr.msg));
        }
        if (shown)
            json_array_append_new(arr, e);
    }
    PQclear(r);
    free(redo);
    free(rec);
    json_object_set_new(doc, "timeline", arr);
    if (page.limit > 0) {
        json_object_set_new(doc, "timelineFrom", json_integer((json_int_t)page.from));
        if (n > end) {
            char next[24];
            snprintf(next, sizeof next, "%lld", (long long)end);
            json_object_set_new(doc, "timelineNextCursor", json_string(next));
        }
    }
    return LB_OK;
}

lb_status
saga_view_show(json_t **out, PGconn *pg, const char *id, saga_view_page page, lb_err *err)
{
    PGresult *r = NULL;
    saga_state state;
    lb_status s = saga_view_row(&r, pg, id, err);
    if (s != LB_OK)
        return s;
    if ((s = saga_view_state_get(&state, r, 0, SAGA_COL_STATE, err)) != LB_OK) {
        PQclear(r);
        return s;
    }
    const saga_type *t = saga_view_type(&state);
    json_t *doc = state_json(id, r, &state, t);
    PQclear(r);
    if ((s = timeline_json(doc, pg, id, t, page, err)) != LB_OK) {
        json_decref(doc);
        return s;
    }
    *out = doc;
    return LB_OK;
}
