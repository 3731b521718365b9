/* ctl_saga.c - `layby-ctl saga list|show|retry|resolve|signal|replay`: what
 * an operator needs for sagas.
 *
 * list, show and replay read schema saga (LAYBY_CTL_DATABASE_URL connects as
 * the saga role) and change nothing. retry, resolve and signal are commands to
 * the orchestrator (layby.v1.RetrySaga / ResolveSaga / SignalSaga): the tool never writes a
 * saga row itself, so the decider's rules and the saga's log stay the only
 * way a saga changes. replay re-decides a saga's recorded inputs with the
 * pure decider and the saga types of this build (saga_orch_registry()), which
 * shows whether the stored state is what the log says it should be. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "codec.h"
#include "ctl.h"
#include "layby/v1/saga.pb-c.h"
#include "saga_orch.h"

/* Timestamps as RFC 3339 UTC with milliseconds, like lb_time_format(). */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* clang-format off */
#define SQL_LIST                                                                           \
    "SELECT saga_id::text, saga_type, version, status, state, " TS("updated_at")          \
    " FROM saga.sagas WHERE ($1 = '' OR status = $1)"                                      \
    " ORDER BY updated_at DESC, saga_id LIMIT $2::bigint"
#define SQL_SAGA                                                                           \
    "SELECT saga_type, version, status, state, start_type, " TS("created_at") ", "        \
    TS("updated_at") " FROM saga.sagas WHERE saga_id = $1::uuid"
#define SQL_LOG                                                                            \
    "SELECT id, " TS("at") ", msg_id, input_kind, input, verdict, from_status, to_status, line" \
    " FROM saga.saga_log WHERE saga_id = $1::uuid ORDER BY id"
/* clang-format on */

enum {
    SAGA_COL_TYPE,
    SAGA_COL_VERSION,
    SAGA_COL_STATUS,
    SAGA_COL_STATE,
    SAGA_COL_START_TYPE,
    SAGA_COL_CREATED,
    SAGA_COL_UPDATED
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

static const char *const verdict_names[] = {
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

/* --- shared ---------------------------------------------------------------- */

/* Runs a query with text parameters and results; NULL (with err) on failure. */
static PGresult *
query(PGconn *pg, const char *sql, int n, const char *const *params, lb_err *err)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        return r;
    const char *m = PQresultErrorMessage(r);
    lb_err_set(err, LB_ERR_DB, "PostgreSQL: %.*s", (int)strcspn(m, "\n"), m);
    PQclear(r);
    return NULL;
}

/* A bytea column (text form) as bytes; the caller PQfreemem()s *out. */
static lb_status
bytea_get(unsigned char **out, size_t *len, const PGresult *r, int row, int col, lb_err *err)
{
    *out = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), len);
    return *out != NULL ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "bytea column");
}

static lb_status
state_get(saga_state *st, const PGresult *r, int row, int col, lb_err *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    lb_status s = bytea_get(&buf, &len, r, row, col, err);
    if (s == LB_OK)
        s = saga_state_unpack(st, buf, len, err);
    PQfreemem(buf);
    return s;
}

static const saga_registry *
registry(lb_err *err)
{
    static bool ready;
    if (!ready && saga_orch_init(err) != LB_OK)
        return NULL;
    ready = true;
    return saga_orch_registry();
}

/* Name of step i of the type st runs on, "?" when this build lacks it. */
static const char *
step_name(const saga_state *st, uint32_t i)
{
    lb_err err;
    const saga_registry *reg = registry(&err);
    const saga_type *t = reg ? saga_registry_find(reg, st->type, st->version) : NULL;
    return t != NULL && i < t->n_steps ? t->steps[i].name : "?";
}

/* Opens the database from conn and checks the saga id argument. */
static lb_status
saga_open(PGconn **pg, const ctl_conn *conn, const char *id, lb_err *err)
{
    if (id != NULL && !id_valid(id))
        return lb_err_set(err, LB_ERR_INVALID, "'%s' is not a saga id (a UUID)", id);
    return ctl_pg_open(pg, conn, err);
}

/* The saga's row; LB_ERR_NOT_FOUND for an unknown id. */
static lb_status
saga_row(PGresult **out, PGconn *pg, const char *id, lb_err *err)
{
    const char *p[] = { id };
    PGresult *r = query(pg, SQL_SAGA, 1, p, err);
    if (r == NULL)
        return LB_ERR_DB;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return lb_err_set(err, LB_ERR_NOT_FOUND, "no saga %s", id);
    }
    *out = r;
    return LB_OK;
}

/* --- saga list ------------------------------------------------------------- */

typedef struct saga_list_conf {
    ctl_conn conn;
    const char *status;
    int64_t limit;
} saga_list_conf;

/* clang-format off */
static const cfg_opt saga_list_opts[] = {
    { "status", NULL, CFG_STR, "",   offsetof(saga_list_conf, status), 0, 0,      "only sagas in this status (RUNNING, COMPENSATING, COMPLETED, FAILED, STUCK, RESOLVED, CANCELLED)" },
    { "limit",  NULL, CFG_INT, "50", offsetof(saga_list_conf, limit),  1, 100000, "print at most N sagas, most recently changed first" },
};
/* clang-format on */

static lb_status
list_print(PGconn *pg, const saga_list_conf *c, lb_err *err)
{
    char limit[24];
    snprintf(limit, sizeof limit, "%lld", (long long)c->limit);
    const char *p[] = { c->status, limit };
    PGresult *r = query(pg, SQL_LIST, 2, p, err);
    if (r == NULL)
        return LB_ERR_DB;
    printf("%-36s  %-12s %3s  %-12s %-12s %s\n", "ID", "TYPE", "VER", "STATUS", "STEP", "UPDATED");
    lb_status s = LB_OK;
    for (int i = 0; i < PQntuples(r) && s == LB_OK; i++) {
        saga_state st;
        if ((s = state_get(&st, r, i, 4, err)) != LB_OK)
            break;
        char step[48];
        snprintf(step, sizeof step, "%u %s", st.step, step_name(&st, st.step));
        printf("%-36s  %-12s %3s  %-12s %-12s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
               PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), step, PQgetvalue(r, i, 5));
    }
    if (s == LB_OK)
        printf("%d saga%s\n", PQntuples(r), PQntuples(r) == 1 ? "" : "s");
    PQclear(r);
    return s;
}

int
ctl_saga_list(const ctl_cmd *cmd, int argc, char **argv)
{
    saga_list_conf conf = { 0 };
    PGconn *pg = NULL;
    lb_err err;
    int rc = ctl_args(&conf, cmd, saga_list_opts, LB_COUNTOF(saga_list_opts), argc, argv);
    if (rc >= 0)
        return rc;
    if (conf.status[0] != '\0' && saga_status_from_name(conf.status) == SAGA_NONE) {
        fprintf(stderr, "layby-ctl %s: unknown status '%s'\n", cmd->name, conf.status);
        return CTL_EXIT_USAGE;
    }
    rc = saga_open(&pg, &conf.conn, NULL, &err) == LB_OK && list_print(pg, &conf, &err) == LB_OK
             ? CTL_EXIT_OK
             : ctl_fail(cmd, &err);
    PQfinish(pg);
    return rc;
}

/* --- saga show ------------------------------------------------------------- */

typedef struct saga_show_conf {
    ctl_conn conn;
} saga_show_conf;

static void
flags_print(unsigned flags)
{
    for (size_t i = 0; i < LB_COUNTOF(step_flags); i++)
        if (flags & step_flags[i].bit)
            printf(" %s", step_flags[i].name);
}

static void
steps_print(const saga_state *st)
{
    lb_err err;
    const saga_registry *reg = registry(&err);
    const saga_type *t = reg ? saga_registry_find(reg, st->type, st->version) : NULL;
    size_t n = t != NULL ? t->n_steps : SAGA_STEPS_MAX;
    printf("steps:\n  %-3s %-12s %-8s %-13s %-8s %-6s %-12s %s\n", "#", "NAME", "KIND", "STATUS",
           "ATTEMPT", "TRIES", "COMP ATTEMPT", "COMP TRIES");
    for (size_t i = 0; i < n; i++) {
        const saga_step_state *ss = &st->steps[i];
        printf("  %-3zu %-12s %-8s %-13s %-8u %-6u %-12u %-10u", i, step_name(st, (uint32_t)i),
               t != NULL ? saga_step_kind_name(t->steps[i].kind) : "?",
               saga_step_status_name((saga_step_status)ss->status), ss->attempt, ss->tries,
               ss->comp_attempt, ss->comp_tries);
        flags_print(ss->flags);
        printf("\n");
    }
}

/* The saga's record as one JSON line (codec.h), when its type keeps one. */
static void
record_print(const saga_state *st)
{
    lb_err err;
    const saga_registry *reg = registry(&err);
    const saga_type *t = reg ? saga_registry_find(reg, st->type, st->version) : NULL;
    ProtobufCMessage *rec = NULL;
    char *json = NULL;
    if (t == NULL || t->record == NULL)
        return;
    if (saga_record_get(&rec, t, st, &err) == LB_OK &&
        codec_json_encode_text(&json, rec, &err) == LB_OK)
        printf("record        %s %s\n", t->record->name, json);
    else
        printf("record        (unreadable: %s)\n", err.msg);
    free(json);
    if (rec != NULL)
        protobuf_c_message_free_unpacked(rec, NULL);
}

static void
durations_print(const saga_state *st)
{
    lb_err err;
    const saga_registry *reg = registry(&err);
    const saga_type *t = reg ? saga_registry_find(reg, st->type, st->version) : NULL;
    size_t n = t != NULL ? t->n_steps : 0;
    if (n == 0 || st->durations_ms[0] == 0)
        return; /* started before durations were kept */
    printf("durations    ");
    for (size_t i = 0; i < n; i++)
        printf(" %s=%lldms", t->steps[i].name, (long long)st->durations_ms[i]);
    printf("\n");
}

static void
state_print(const char *id, const PGresult *r, const saga_state *st)
{
    char due[32];
    printf("saga          %s\n", id);
    printf("type          %s v%s (started by %s)\n", PQgetvalue(r, 0, SAGA_COL_TYPE),
           PQgetvalue(r, 0, SAGA_COL_VERSION), PQgetvalue(r, 0, SAGA_COL_START_TYPE));
    printf("status        %s\n", saga_status_name(st->status));
    printf("step          %u %s\n", st->step, step_name(st, st->step));
    printf("created       %s\n", PQgetvalue(r, 0, SAGA_COL_CREATED));
    printf("updated       %s\n", PQgetvalue(r, 0, SAGA_COL_UPDATED));
    if (st->actor[0] != '\0')
        printf("actor         %s\n", st->actor);
    if (st->has_timer) {
        lb_time_format(due, sizeof due, st->timer.due_ms);
        printf("timer         %s step %u attempt %u due %s\n", saga_timer_kind_name(st->timer.kind),
               st->timer.step, st->timer.attempt, due);
    } else {
        printf("timer         none\n");
    }
    if (st->fail_code != LB_OK)
        printf("fail reason   %s: %s\n", lb_status_code(st->fail_code), st->fail_reason);
    if (st->last_error[0] != '\0')
        printf("last error    %s\n", st->last_error);
    if (st->resolved_by[0] != '\0')
        printf("resolved by   %s: %s\n", st->resolved_by, st->resolve_reason);
    if (st->signal[0] != '\0')
        printf("signal        %s\n", st->signal);
    durations_print(st);
    record_print(st);
    steps_print(st);
}

static lb_status
log_print(PGconn *pg, const char *id, lb_err *err)
{
    const char *p[] = { id };
    PGresult *r = query(pg, SQL_LOG, 1, p, err);
    if (r == NULL)
        return LB_ERR_DB;
    printf("log (%d entries):\n", PQntuples(r));
    for (int i = 0; i < PQntuples(r); i++)
        printf("  %s  %-7s %-7s %s->%s  %s\n", PQgetvalue(r, i, LOG_COL_AT),
               PQgetvalue(r, i, LOG_COL_KIND), PQgetvalue(r, i, LOG_COL_VERDICT),
               PQgetvalue(r, i, LOG_COL_FROM), PQgetvalue(r, i, LOG_COL_TO),
               PQgetvalue(r, i, LOG_COL_LINE));
    PQclear(r);
    return LB_OK;
}

static lb_status
show_print(PGconn *pg, const char *id, lb_err *err)
{
    PGresult *r = NULL;
    saga_state st;
    lb_status s = saga_row(&r, pg, id, err);
    if (s != LB_OK)
        return s;
    if ((s = state_get(&st, r, 0, SAGA_COL_STATE, err)) == LB_OK) {
        state_print(id, r, &st);
        s = log_print(pg, id, err);
    }
    PQclear(r);
    return s;
}

int
ctl_saga_show(const ctl_cmd *cmd, int argc, char **argv)
{
    saga_show_conf conf = { 0 };
    const char *id = NULL;
    PGconn *pg = NULL;
    lb_err err;
    int rc = ctl_positional(&id, cmd, "saga id", &argc, argv);
    if (rc < 0)
        rc = ctl_args(&conf, cmd, NULL, 0, argc, argv);
    if (rc >= 0)
        return rc;
    rc = saga_open(&pg, &conf.conn, id, &err) == LB_OK && show_print(pg, id, &err) == LB_OK
             ? CTL_EXIT_OK
             : ctl_fail(cmd, &err);
    PQfinish(pg);
    return rc;
}

/* --- saga retry | resolve -------------------------------------------------- */

typedef struct saga_op_conf {
    ctl_conn conn;
    const char *reason;
    const char *actor;
    const char *signal;
} saga_op_conf;

/* clang-format off */
static const cfg_opt saga_op_opts[] = {
    { "reason", NULL,   CFG_STR, NULL,       offsetof(saga_op_conf, reason), 0, 0, "why (recorded in the saga's log; required)" },
    { "actor",  "USER", CFG_STR, "operator", offsetof(saga_op_conf, actor),  0, 0, "who asks (recorded in the saga's log)" },
};
static const cfg_opt saga_signal_opts[] = {
    { "signal", NULL,   CFG_STR, NULL,       offsetof(saga_op_conf, signal), 0, 0, "the signal's name (cancel, return; the saga type's table)" },
    { "reason", NULL,   CFG_STR, NULL,       offsetof(saga_op_conf, reason), 0, 0, "why (recorded in the saga's log; required)" },
    { "actor",  "USER", CFG_STR, "operator", offsetof(saga_op_conf, actor),  0, 0, "who asks (recorded in the saga's log)" },
};

/* Commands to the orchestrator: the row's command name -> subject, message
 * and options. */
static const struct saga_op {
    const char *cmd;
    const char *subject;
    const ProtobufCMessageDescriptor *desc;
    const cfg_opt *opts;
    size_t n_opts;
} saga_ops[] = {
    { "saga retry",   SAGA_SUBJ_RETRY,   &layby__v1__retry_saga__descriptor,   saga_op_opts,     LB_COUNTOF(saga_op_opts) },
    { "saga resolve", SAGA_SUBJ_RESOLVE, &layby__v1__resolve_saga__descriptor, saga_op_opts,     LB_COUNTOF(saga_op_opts) },
    { "saga signal",  SAGA_SUBJ_SIGNAL,  &layby__v1__signal_saga__descriptor,  saga_signal_opts, LB_COUNTOF(saga_signal_opts) },
};
/* clang-format on */

/* Sets the string field `name` of m to v (borrowed). */
static void
str_set(ProtobufCMessage *m, const char *name, const char *v)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING)
        memcpy((char *)m + f->offset, &v, sizeof v);
}

static void
outcome_print(const Layby__V1__SagaOutcome *o, const char *what)
{
    printf("%s accepted: saga %s (%s v%u) is %s at step %u %s\n", what, o->saga_id, o->type,
           o->version, o->status, o->step, o->step_name);
}

/* bus_open() retries an unreachable server for ever (it suits daemons), so
 * the tool first checks it can connect, and fails fast otherwise. */
static lb_status
bus_connect(bus **b, const ctl_conn *c, lb_err *err)
{
    natsConnection *probe = NULL;
    lb_status s = ctl_nats_open(&probe, NULL, c, err);
    ctl_nats_close(probe, NULL);
    if (s != LB_OK)
        return s;
    bus_opts o = BUS_OPTS_INIT;
    o.url = c->nats_url;
    o.user = c->nats_user;
    o.password = c->nats_password;
    o.name = "layby-ctl";
    o.publish_wait_ms = c->timeout_ms;
    return bus_open(b, &o, err);
}

static lb_status
op_send(const struct saga_op *op, const saga_op_conf *c, const char *id, lb_err *err)
{
    ProtobufCMessage *m = malloc(op->desc->sizeof_message), *out = NULL;
    natsMsg *reply = NULL;
    bus *b = NULL;
    bus_envelope env;
    if (m == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "%s", op->desc->name);
    protobuf_c_message_init(op->desc, m);
    str_set(m, "saga_id", id);
    str_set(m, "actor", c->actor);
    str_set(m, "reason", c->reason);
    str_set(m, "name", c->signal);
    bus_envelope_init(&env, op->desc, NULL);
    lb_status s = bus_connect(&b, &c->conn, err);
    if (s == LB_OK)
        s = bus_command(&reply, b, op->subject, &env, m, c->conn.timeout_ms, err);
    if (s == LB_OK)
        s = bus_reply_decode(&out, reply, &layby__v1__saga_outcome__descriptor, err);
    if (s == LB_OK)
        outcome_print((const Layby__V1__SagaOutcome *)out, op->cmd + strlen("saga "));
    if (out != NULL)
        protobuf_c_message_free_unpacked(out, NULL);
    natsMsg_Destroy(reply);
    bus_close(b);
    free(m); /* its strings are borrowed */
    return s;
}

int
ctl_saga_op(const ctl_cmd *cmd, int argc, char **argv)
{
    saga_op_conf conf = { 0 };
    const char *id = NULL;
    lb_err err;
    const struct saga_op *op = NULL;
    for (size_t i = 0; i < LB_COUNTOF(saga_ops); i++)
        if (strcmp(saga_ops[i].cmd, cmd->name) == 0)
            op = &saga_ops[i];
    if (op == NULL) {
        lb_err_set(&err, LB_ERR_INTERNAL, "no operator command named %s", cmd->name);
        return ctl_fail(cmd, &err);
    }
    int rc = ctl_positional(&id, cmd, "saga id", &argc, argv);
    if (rc < 0)
        rc = ctl_args(&conf, cmd, op->opts, op->n_opts, argc, argv);
    if (rc >= 0)
        return rc;
    if (!id_valid(id)) {
        fprintf(stderr, "layby-ctl %s: '%s' is not a saga id (a UUID)\n", cmd->name, id);
        return CTL_EXIT_USAGE;
    }
    return op_send(op, &conf, id, &err) == LB_OK ? CTL_EXIT_OK : ctl_fail(cmd, &err);
}

/* --- saga replay ----------------------------------------------------------- */

/* Decides one logged input again; prints it and whether it matches the log. */
static lb_status
replay_one(saga_state *st, bool *exists, bool *match, const saga_type *t, const PGresult *r,
           int row, lb_err *err)
{
    saga_input_rec rec;
    saga_decision d;
    unsigned char *buf = NULL;
    size_t len = 0;
    lb_status s = bytea_get(&buf, &len, r, row, LOG_COL_INPUT, err);
    if (s == LB_OK)
        s = saga_input_unpack(&rec, t, buf, len, err);
    PQfreemem(buf);
    if (s == LB_OK)
        s = saga_decide(st, &d, t, *exists ? st : NULL, &rec.in, err);
    if (s != LB_OK) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        return lb_err_set(err, s, "log entry %s: %s", PQgetvalue(r, row, LOG_COL_ID), why);
    }
    if (d.verdict == SAGA_APPLIED)
        *exists = true;
    printf("  #%-6s %-7s %-7s %s->%s  %s\n", PQgetvalue(r, row, LOG_COL_ID),
           saga_input_kind_name(rec.in.kind), verdict_names[d.verdict], saga_status_name(d.from),
           saga_status_name(d.to), d.log);
    if (strcmp(verdict_names[d.verdict], PQgetvalue(r, row, LOG_COL_VERDICT)) != 0 ||
        strcmp(saga_status_name(d.to), PQgetvalue(r, row, LOG_COL_TO)) != 0 ||
        strcmp(d.log, PQgetvalue(r, row, LOG_COL_LINE)) != 0) {
        printf("    recorded: %s %s->%s  %s\n", PQgetvalue(r, row, LOG_COL_VERDICT),
               PQgetvalue(r, row, LOG_COL_FROM), PQgetvalue(r, row, LOG_COL_TO),
               PQgetvalue(r, row, LOG_COL_LINE));
        *match = false;
    }
    return LB_OK;
}

/* Compares the replayed state with the stored one, byte for byte as packed. */
static lb_status
states_equal(bool *eq, const saga_state *a, const saga_state *b, lb_err *err)
{
    uint8_t *pa = NULL, *pb = NULL;
    size_t la = 0, lb = 0;
    lb_status s = saga_state_pack(&pa, &la, a, err);
    if (s == LB_OK)
        s = saga_state_pack(&pb, &lb, b, err);
    *eq = s == LB_OK && la == lb && memcmp(pa, pb, la) == 0;
    free(pa);
    free(pb);
    return s;
}

static lb_status
replay_log(bool *match, PGconn *pg, const char *id, const saga_type *t, const saga_state *stored,
           lb_err *err)
{
    const char *p[] = { id };
    PGresult *r = query(pg, SQL_LOG, 1, p, err);
    if (r == NULL)
        return LB_ERR_DB;
    saga_state st;
    bool exists = false, eq = false;
    lb_status s = LB_OK;
    memset(&st, 0, sizeof st);
    printf("replaying %d log entries of saga %s (%s v%u)\n", PQntuples(r), id, t->name, t->version);
    for (int i = 0; i < PQntuples(r) && s == LB_OK; i++)
        s = replay_one(&st, &exists, match, t, r, i, err);
    PQclear(r);
    if (s != LB_OK || (s = states_equal(&eq, &st, stored, err)) != LB_OK)
        return s;
    if (!eq) {
        printf("final state differs: stored %s at step %u (updated %lld), replayed %s at step %u "
               "(updated %lld)\n",
               saga_status_name(stored->status), stored->step, (long long)stored->updated_ms,
               saga_status_name(st.status), st.step, (long long)st.updated_ms);
        *match = false;
    }
    return LB_OK;
}

static lb_status
replay_run(bool *match, PGconn *pg, const char *id, lb_err *err)
{
    PGresult *r = NULL;
    saga_state stored;
    const saga_registry *reg = registry(err);
    if (reg == NULL)
        return err->code;
    lb_status s = saga_row(&r, pg, id, err);
    if (s != LB_OK)
        return s;
    s = state_get(&stored, r, 0, SAGA_COL_STATE, err);
    const saga_type *t = saga_registry_find(reg, PQgetvalue(r, 0, SAGA_COL_TYPE),
                                            (uint32_t)atoi(PQgetvalue(r, 0, SAGA_COL_VERSION)));
    if (s == LB_OK && t == NULL)
        s = lb_err_set(err, LB_ERR_NOT_FOUND, "saga type %s v%s is not in this build",
                       PQgetvalue(r, 0, SAGA_COL_TYPE), PQgetvalue(r, 0, SAGA_COL_VERSION));
    PQclear(r);
    if (s == LB_OK)
        s = replay_log(match, pg, id, t, &stored, err);
    return s;
}

int
ctl_saga_replay(const ctl_cmd *cmd, int argc, char **argv)
{
    saga_show_conf conf = { 0 };
    const char *id = NULL;
    PGconn *pg = NULL;
    bool match = true;
    lb_err err;
    int rc = ctl_positional(&id, cmd, "saga id", &argc, argv);
    if (rc < 0)
        rc = ctl_args(&conf, cmd, NULL, 0, argc, argv);
    if (rc >= 0)
        return rc;
    if (saga_open(&pg, &conf.conn, id, &err) != LB_OK || replay_run(&match, pg, id, &err) != LB_OK)
        rc = ctl_fail(cmd, &err);
    else
        rc = match ? CTL_EXIT_OK : CTL_EXIT_FAIL;
    PQfinish(pg);
    if (rc == CTL_EXIT_OK)
        printf("replay matches: the log decides the stored state\n");
    else if (match == false)
        printf("replay MISMATCH: the stored saga is not what its log decides\n");
    return rc;
}

/* --- for other topics (ctl.h) -------------------------------------------------- */

lb_status
ctl_saga_print(PGconn *pg, const char *id, lb_err *err)
{
    return show_print(pg, id, err);
}

lb_status
ctl_bus_open(bus **b, const ctl_conn *c, lb_err *err)
{
    return bus_connect(b, c, err);
}
