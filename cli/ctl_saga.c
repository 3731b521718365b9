/* ctl_saga.c - `layby-ctl saga list|show`: sagas as schema saga holds them,
 * and the helpers the other saga commands share (ctl_saga_int.h).
 *
 * Both only read (LAYBY_CTL_DATABASE_URL connects as the saga role). `show`
 * prints the saga's record and steps and its timeline: every logged input
 * (start, events, timers, signals, operator commands with who and why),
 * decoded, with the decision and the commands it sent, which this build's
 * decider recomputes from the log (the orchestrator logs inputs, not the
 * commands; they are a pure function of them). A saga whose type this build
 * lacks shows its timeline without the commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ctl_saga_int.h"
#include "id.h"
#include "layby/v1/saga.pb-c.h"
#include "saga_orch.h"

/* clang-format off */
/* Newest first by creation, keyset on (created_at, saga_id): both never
 * change, so pages neither skip nor repeat a saga while sagas run, and the
 * index sagas_created (sql/0760) serves the order without indexing
 * updated_at, which would make every step's write of a saga a non-HOT update.
 * --since still filters on updated_at (changed at or after). */
#define SQL_LIST                                                                            \
    "SELECT saga_id::text, saga_type, version, status, state, " CTL_TS("updated_at") ", "  \
    CTL_TS("created_at") ", (extract(epoch FROM created_at) * 1000000)::bigint"            \
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

const char *const ctl_verdict_names[] = {
    [SAGA_APPLIED] = "APPLIED",
    [SAGA_IGNORED] = "IGNORED",
    [SAGA_REFUSED] = "REFUSED",
};

static const struct {
    unsigned bit;
    const char *name;
} step_flags[] = {
    { SAGA_STEP_F_RETRY_WAIT, "retry-wait" },
    { SAGA_STEP_F_UNCERTAIN, "uncertain" },
};

/* --- shared (ctl_saga_int.h) ------------------------------------------------ */

PGresult *
ctl_query(PGconn *pg, const char *sql, int n, const char *const *params, lb_err *err)
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
ctl_bytea(unsigned char **out, size_t *len, const PGresult *r, int row, int col, lb_err *err)
{
    *out = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), len);
    return *out != NULL ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "bytea column");
}

lb_status
ctl_state_get(saga_state *state, const PGresult *r, int row, int col, lb_err *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    lb_status s = ctl_bytea(&buf, &len, r, row, col, err);
    if (s == LB_OK)
        s = saga_state_unpack(state, buf, len, err);
    PQfreemem(buf);
    return s;
}

const saga_registry *
ctl_registry(lb_err *err)
{
    static bool ready;
    if (!ready && saga_orch_init(err) != LB_OK)
        return NULL;
    ready = true;
    return saga_orch_registry();
}

const saga_type *
ctl_saga_type(const saga_state *state)
{
    lb_err err;
    const saga_registry *reg = ctl_registry(&err);
    return reg ? saga_registry_find(reg, state->type, state->version) : NULL;
}

lb_status
ctl_saga_row(PGresult **out, PGconn *pg, const char *id, lb_err *err)
{
    const char *p[] = { id };
    PGresult *r = ctl_query(pg, CTL_SQL_SAGA, 1, p, err);
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
ctl_redecide(ctl_redo *redo, saga_input_rec *rec, saga_decision *d, const saga_type *t,
             const PGresult *r, int row, lb_err *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    lb_status s = ctl_bytea(&buf, &len, r, row, LOG_COL_INPUT, err);
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
ctl_decision_matches(const saga_decision *d, const PGresult *r, int row)
{
    return strcmp(ctl_verdict_names[d->verdict], PQgetvalue(r, row, LOG_COL_VERDICT)) == 0 &&
           strcmp(saga_status_name(d->to), PQgetvalue(r, row, LOG_COL_TO)) == 0 &&
           strcmp(d->log, PQgetvalue(r, row, LOG_COL_LINE)) == 0;
}

json_t *
ctl_cmd_json(const saga_cmd *c)
{
    return json_pack("{s:s,s:s,s:i,s:i,s:b}", "subject", c->subject, "type", c->desc->name, "step",
                     (int)c->step, "attempt", (int)c->attempt, "compensate", c->compensate);
}

/* --- saga list ------------------------------------------------------------- */

typedef struct saga_list_conf {
    ctl_conn conn;
    const char *state;
    const char *type;
    const char *since;
    const char *correlation;
    const char *after;
    int64_t limit;
} saga_list_conf;

/* clang-format off */
static const cfg_opt saga_list_opts[] = {
    { "state",       NULL, CFG_STR, "",   offsetof(saga_list_conf, state),       0, 0,      "only sagas in this state (RUNNING, COMPENSATING, COMPLETED, FAILED, STUCK, RESOLVED, CANCELLED)" },
    { "type",        NULL, CFG_STR, "",   offsetof(saga_list_conf, type),        0, 0,      "only sagas of this type (order_place)" },
    { "since",       NULL, CFG_STR, "",   offsetof(saga_list_conf, since),       0, 0,      "only sagas changed at or after this time (RFC 3339)" },
    { "correlation", NULL, CFG_STR, "",   offsetof(saga_list_conf, correlation), 0, 0,      "only the sagas of this flow (Layby-Correlation: an order's place and pay sagas)" },
    { "after",       NULL, CFG_STR, "",   offsetof(saga_list_conf, after),       0, 0,      "the next page: the cursor the previous page ended with" },
    { "limit",       NULL, CFG_INT, "50", offsetof(saga_list_conf, limit),       1, 100000, "sagas per page, newest first" },
};
/* clang-format on */
const ctl_flags ctl_saga_list_flags = CTL_FLAGS(saga_list_opts);

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
    const saga_type *t = ctl_saga_type(state);
    return json_pack(
        "{s:s,s:s,s:i,s:s,s:i,s:s,s:s,s:s}", "sagaId", PQgetvalue(r, i, LIST_ID), "type",
        PQgetvalue(r, i, LIST_TYPE), "version", atoi(PQgetvalue(r, i, LIST_VERSION)), "state",
        PQgetvalue(r, i, LIST_STATUS), "step", (int)state->step, "stepName",
        t != NULL && state->step < t->n_steps ? t->steps[state->step].name : "?", "created",
        PQgetvalue(r, i, LIST_CREATED), "updated", PQgetvalue(r, i, LIST_UPDATED));
}

static void
list_text(json_t *items, const char *next)
{
    size_t i;
    json_t *o;
    printf("%-36s  %-12s %3s  %-12s %-14s %s\n", "ID", "TYPE", "VER", "STATE", "STEP", "UPDATED");
    json_array_foreach(items, i, o)
    {
        const char *st = json_string_value(json_object_get(o, "state"));
        char step[48];
        snprintf(step, sizeof step, "%d %s", (int)json_integer_value(json_object_get(o, "step")),
                 json_string_value(json_object_get(o, "stepName")));
        printf("%-36s  %-12s %3d  %s%-12s%s %-14s %s\n",
               json_string_value(json_object_get(o, "sagaId")),
               json_string_value(json_object_get(o, "type")),
               (int)json_integer_value(json_object_get(o, "version")), ctl_color(st), st,
               ctl_color_end(), step, json_string_value(json_object_get(o, "updated")));
    }
    printf("%zu saga%s\n", json_array_size(items), json_array_size(items) == 1 ? "" : "s");
    if (next != NULL)
        printf("more: --after %s\n", next);
}

static lb_status
list_run(PGconn *pg, const saga_list_conf *c, const char *since_ms, const char *cur_us,
         const char *cur_id, lb_err *err)
{
    char limit[24];
    snprintf(limit, sizeof limit, "%lld",
             (long long)c->limit + 1); /* one more: is there a next page? */
    const char *p[] = { c->state, c->type, since_ms, c->correlation, cur_us, cur_id, limit };
    PGresult *r = ctl_query(pg, SQL_LIST, 7, p, err);
    if (r == NULL)
        return LB_ERR_DB;
    int n = PQntuples(r);
    int shown = n > c->limit ? (int)c->limit : n;
    json_t *items = json_array();
    lb_status s = LB_OK;
    for (int i = 0; i < shown && s == LB_OK; i++) {
        saga_state state;
        if ((s = ctl_state_get(&state, r, i, LIST_STATE, err)) == LB_OK)
            json_array_append_new(items, list_row_json(r, i, &state));
    }
    char next[80] = "";
    if (n > shown)
        snprintf(next, sizeof next, "%s_%s", PQgetvalue(r, shown - 1, LIST_US),
                 PQgetvalue(r, shown - 1, LIST_ID));
    PQclear(r);
    if (s == LB_OK && ctl_out.json)
        ctl_json_doc(json_pack("{s:O,s:s*}", "items", items, "nextCursor", next[0] ? next : NULL));
    else if (s == LB_OK)
        list_text(items, next[0] ? next : NULL);
    json_decref(items);
    return s;
}

int
ctl_saga_list(const ctl_cmd *cmd, int argc, char **argv)
{
    saga_list_conf conf = { 0 };
    PGconn *pg = NULL;
    lb_err err;
    char since_ms[24] = "0", cur_us[24] = "0", cur_id[ID_STR_LEN] = "";
    int rc = ctl_parse(&conf, cmd, argc, argv);
    if (rc >= 0)
        return rc;
    if (conf.state[0] != '\0' && saga_status_from_name(conf.state) == SAGA_NONE)
        return ctl_usage_error(cmd, "unknown state '%s'", conf.state);
    if (conf.correlation[0] != '\0' && !id_valid(conf.correlation))
        return ctl_usage_error(cmd, "--correlation '%s' is not an id (a UUID)", conf.correlation);
    if (conf.after[0] != '\0' && !cursor_parse(cur_us, sizeof cur_us, cur_id, conf.after))
        return ctl_usage_error(cmd, "--after '%s' is not a cursor this command printed",
                               conf.after);
    if (conf.since[0] != '\0') {
        int64_t ms = 0;
        if (ctl_time_parse(&ms, conf.since, &err) != LB_OK)
            return ctl_usage_error(cmd, "--since: %s", err.msg);
        snprintf(since_ms, sizeof since_ms, "%lld", (long long)(ms > 0 ? ms : 1));
    }
    rc = ctl_pg_open(&pg, &conf.conn, &err) == LB_OK &&
                 list_run(pg, &conf, since_ms, cur_us, cur_id, &err) == LB_OK
             ? CTL_EXIT_OK
             : ctl_fail(cmd, &err);
    PQfinish(pg);
    return rc;
}

/* --- saga show: the record and steps --------------------------------------- */

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
    else if (ctl_bytea(&buf, &len, r, 0, SAGA_COL_START, &err) != LB_OK ||
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
    if (ctl_bytea(&buf, &len, r, row, LOG_COL_INPUT, &err) != LB_OK ||
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

/* The timeline as JSON; commands when this build has the saga's type. */
static lb_status
timeline_json(json_t **out, PGconn *pg, const char *id, const saga_type *t, lb_err *err)
{
    const char *p[] = { id };
    PGresult *r = ctl_query(pg, CTL_SQL_LOG, 1, p, err);
    if (r == NULL)
        return LB_ERR_DB;
    ctl_redo *redo = calloc(1, sizeof *redo);
    saga_input_rec *rec = malloc(sizeof *rec);
    json_t *arr = json_array();
    bool redo_ok = t != NULL && redo != NULL && rec != NULL;
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *e =
            json_pack("{s:I,s:s,s:s,s:s,s:o,s:s,s:s,s:s,s:s}", "id",
                      (json_int_t)strtoll(PQgetvalue(r, i, LOG_COL_ID), NULL, 10), "at",
                      PQgetvalue(r, i, LOG_COL_AT), "kind", PQgetvalue(r, i, LOG_COL_KIND), "msgId",
                      PQgetvalue(r, i, LOG_COL_MSG), "input", input_json(r, i), "verdict",
                      PQgetvalue(r, i, LOG_COL_VERDICT), "from", PQgetvalue(r, i, LOG_COL_FROM),
                      "to", PQgetvalue(r, i, LOG_COL_TO), "line", PQgetvalue(r, i, LOG_COL_LINE));
        saga_decision d;
        lb_err derr = { 0 };
        if (redo_ok && ctl_redecide(redo, rec, &d, t, r, i, &derr) == LB_OK) {
            json_t *cmds = json_array();
            for (size_t k = 0; k < d.n_cmds; k++)
                json_array_append_new(cmds, ctl_cmd_json(&d.cmds[k]));
            json_object_set_new(e, "commands", cmds);
            if (!ctl_decision_matches(&d, r, i))
                json_object_set_new(e, "redecided", json_string(d.log));
        } else if (redo_ok) {
            redo_ok = false; /* later entries build on this one */
            json_object_set_new(e, "redecideError", json_string(derr.msg));
        }
        json_array_append_new(arr, e);
    }
    PQclear(r);
    free(redo);
    free(rec);
    *out = arr;
    return LB_OK;
}

static void
show_text(json_t *s)
{
    json_t *v, *o;
    size_t i;
    const char *state = json_string_value(json_object_get(s, "state"));
    printf("saga          %s\n", json_string_value(json_object_get(s, "sagaId")));
    printf("type          %s v%d (started by %s)\n", json_string_value(json_object_get(s, "type")),
           (int)json_integer_value(json_object_get(s, "version")),
           json_string_value(json_object_get(s, "startedBy")));
    printf("correlation   %s\n", json_string_value(json_object_get(s, "correlation")));
    json_t *start = json_object_get(s, "start");
    char *start_text =
        json_dumps(json_object_get(start, "message"), JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("start         %s %s\n", json_string_value(json_object_get(start, "type")),
           start_text ? start_text : "");
    free(start_text);
    printf("status        %s%s%s\n", ctl_color(state), state, ctl_color_end());
    printf("step          %d %s\n", (int)json_integer_value(json_object_get(s, "step")),
           json_string_value(json_object_get(s, "stepName")));
    printf("created       %s\n", json_string_value(json_object_get(s, "created")));
    printf("updated       %s\n", json_string_value(json_object_get(s, "updated")));
    if ((v = json_object_get(s, "actor")) != NULL && json_string_length(v) > 0)
        printf("actor         %s\n", json_string_value(v));
    v = json_object_get(s, "timer");
    if (json_is_object(v))
        printf("timer         %s step %d attempt %d due %s\n",
               json_string_value(json_object_get(v, "kind")),
               (int)json_integer_value(json_object_get(v, "step")),
               (int)json_integer_value(json_object_get(v, "attempt")),
               json_string_value(json_object_get(v, "due")));
    else
        printf("timer         none\n");
    if ((v = json_object_get(s, "failure")) != NULL)
        printf("fail reason   %s: %s\n", json_string_value(json_object_get(v, "code")),
               json_string_value(json_object_get(v, "reason")));
    if ((v = json_object_get(s, "lastError")) != NULL)
        printf("last error    %s\n", json_string_value(v));
    if ((v = json_object_get(s, "resolved")) != NULL)
        printf("resolved by   %s: %s\n", json_string_value(json_object_get(v, "by")),
               json_string_value(json_object_get(v, "reason")));
    if ((v = json_object_get(s, "signal")) != NULL)
        printf("signal        %s\n", json_string_value(v));
    v = json_object_get(s, "record");
    if (v != NULL && !json_is_null(v)) {
        char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("record        %s\n", text ? text : "");
        free(text);
    }
    printf("steps:\n  %-3s %-12s %-8s %-13s %-8s %-6s %-12s %-10s %s\n", "#", "NAME", "KIND",
           "STATUS", "ATTEMPT", "TRIES", "COMP ATTEMPT", "COMP TRIES", "DURATION");
    json_array_foreach(json_object_get(s, "steps"), i, o)
    {
        printf("  %-3zu %-12s %-8s %-13s %-8d %-6d %-12d %-10d %lldms", i,
               json_string_value(json_object_get(o, "name")),
               json_string_value(json_object_get(o, "kind")),
               json_string_value(json_object_get(o, "status")),
               (int)json_integer_value(json_object_get(o, "attempt")),
               (int)json_integer_value(json_object_get(o, "tries")),
               (int)json_integer_value(json_object_get(o, "compAttempt")),
               (int)json_integer_value(json_object_get(o, "compTries")),
               (long long)json_integer_value(json_object_get(o, "durationMs")));
        size_t k;
        json_t *f;
        json_array_foreach(json_object_get(o, "flags"), k, f) printf(" %s", json_string_value(f));
        printf("\n");
    }
}

/* One timeline entry: the input (who and why for operators and signals, the
 * event decoded), the decision, then each command it sent. */
static void
entry_text(json_t *e)
{
    json_t *in = json_object_get(e, "input"), *v;
    const char *to = json_string_value(json_object_get(e, "to"));
    printf("  %s  %-7s %-7s %s->%s%s%s  %s\n", json_string_value(json_object_get(e, "at")),
           json_string_value(json_object_get(e, "kind")),
           json_string_value(json_object_get(e, "verdict")),
           json_string_value(json_object_get(e, "from")), ctl_color(to), to, ctl_color_end(),
           json_string_value(json_object_get(e, "line")));
    const char *actor = json_string_value(json_object_get(in, "actor"));
    const char *reason = json_string_value(json_object_get(in, "reason"));
    if ((v = json_object_get(in, "signal")) != NULL)
        printf("      signal    %s\n", json_string_value(v));
    if (actor != NULL || reason != NULL)
        printf("      by        %s: %s\n", actor ? actor : "?", reason ? reason : "");
    if ((v = json_object_get(in, "event")) != NULL) {
        char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("      event     %s %s\n", json_string_value(json_object_get(in, "eventType")),
               text ? text : "");
        free(text);
    } else if ((v = json_object_get(in, "eventType")) != NULL) {
        printf("      event     %s\n", json_string_value(v));
    }
    size_t k;
    json_t *c;
    json_array_foreach(json_object_get(e, "commands"), k, c)
    {
        printf("      %s %s %s step %d attempt %d\n",
               json_is_true(json_object_get(c, "compensate")) ? "undo  ->" : "sent  ->",
               json_string_value(json_object_get(c, "subject")),
               json_string_value(json_object_get(c, "type")),
               (int)json_integer_value(json_object_get(c, "step")),
               (int)json_integer_value(json_object_get(c, "attempt")));
    }
    if ((v = json_object_get(e, "redecided")) != NULL)
        printf("      this build decides instead: %s\n", json_string_value(v));
    if ((v = json_object_get(e, "redecideError")) != NULL)
        printf("      (commands unknown: %s)\n", json_string_value(v));
}

lb_status
ctl_saga_json(json_t **out, PGconn *pg, const char *id, lb_err *err)
{
    PGresult *r = NULL;
    saga_state state;
    json_t *tl = NULL;
    lb_status s = ctl_saga_row(&r, pg, id, err);
    if (s != LB_OK)
        return s;
    if ((s = ctl_state_get(&state, r, 0, SAGA_COL_STATE, err)) != LB_OK) {
        PQclear(r);
        return s;
    }
    const saga_type *t = ctl_saga_type(&state);
    json_t *doc = state_json(id, r, &state, t);
    PQclear(r);
    if ((s = timeline_json(&tl, pg, id, t, err)) != LB_OK) {
        json_decref(doc);
        return s;
    }
    json_object_set_new(doc, "timeline", tl);
    *out = doc;
    return LB_OK;
}

static lb_status
show_run(PGconn *pg, const char *id, lb_err *err)
{
    json_t *doc = NULL;
    lb_status s = ctl_saga_json(&doc, pg, id, err);
    if (s != LB_OK)
        return s;
    if (ctl_out.json) {
        ctl_json_doc(doc);
        return LB_OK;
    }
    json_t *tl = json_object_get(doc, "timeline");
    show_text(doc);
    printf("timeline (%zu entries):\n", json_array_size(tl));
    size_t i;
    json_t *e;
    json_array_foreach(tl, i, e) entry_text(e);
    json_decref(doc);
    return LB_OK;
}

int
ctl_saga_show(const ctl_cmd *cmd, int argc, char **argv)
{
    struct {
        ctl_conn conn;
    } conf = { 0 };
    const char *id = NULL;
    PGconn *pg = NULL;
    lb_err err;
    int rc = ctl_id_args(&id, &conf, cmd, "saga id", argc, argv);
    if (rc >= 0)
        return rc;
    rc = ctl_pg_open(&pg, &conf.conn, &err) == LB_OK && show_run(pg, id, &err) == LB_OK
             ? CTL_EXIT_OK
             : ctl_fail(cmd, &err);
    PQfinish(pg);
    return rc;
}

lb_status
ctl_saga_print(PGconn *pg, const char *id, lb_err *err)
{
    return show_run(pg, id, err);
}
