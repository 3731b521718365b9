/* ctl_saga_ops.c - `layby-ctl saga retry|resolve|cancel|signal|replay`.
 *
 * retry, resolve, cancel and signal are commands to the orchestrator
 * (layby.v1.RetrySaga / ResolveSaga / SignalSaga): the tool never writes a
 * saga row itself, so the decider's rules and the saga's log stay the only
 * way a saga changes, and the log records who asked and why (the input's
 * actor and reason; `saga show` prints them). replay re-decides a saga's
 * recorded inputs with the pure decider and the saga types of this build
 * (saga_orch_registry()), which shows whether the stored state is what the
 * log says it should be. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "codec.h"
#include "ctl_saga_int.h"
#include "id.h"
#include "layby/v1/saga.pb-c.h"

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
    const char *signal; /* the signal this command always sends; NULL = --signal */
} saga_ops[] = {
    { "saga retry",   SAGA_SUBJ_RETRY,   &layby__v1__retry_saga__descriptor,   NULL },
    { "saga resolve", SAGA_SUBJ_RESOLVE, &layby__v1__resolve_saga__descriptor, NULL },
    { "saga cancel",  SAGA_SUBJ_SIGNAL,  &layby__v1__signal_saga__descriptor,  "cancel" },
    { "saga signal",  SAGA_SUBJ_SIGNAL,  &layby__v1__signal_saga__descriptor,  NULL },
};
/* clang-format on */
const ctl_flags ctl_saga_op_flags = CTL_FLAGS(saga_op_opts);
const ctl_flags ctl_saga_signal_flags = CTL_FLAGS(saga_signal_opts);

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
    json_t *j = NULL;
    if (ctl_out.json && codec_json_encode_proto3(&j, &o->base, NULL) == LB_OK) {
        ctl_json_doc(j);
        return;
    }
    printf("%s accepted: saga %s (%s v%u) is %s%s%s at step %u %s\n", what, o->saga_id, o->type,
           o->version, ctl_color(o->status), o->status, ctl_color_end(), o->step, o->step_name);
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
    str_set(m, "name", op->signal != NULL ? op->signal : c->signal);
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
    int rc = ctl_id_args(&id, &conf, cmd, "saga id", argc, argv);
    if (rc >= 0)
        return rc;
    return op_send(op, &conf, id, &err) == LB_OK ? CTL_EXIT_OK : ctl_fail(cmd, &err);
}

/* --- saga replay ----------------------------------------------------------- */

/* Decides one logged input again; prints it and whether it matches the log. */
static lb_status
replay_one(saga_view_redo *redo, bool *match, const saga_type *t, const PGresult *r, int row,
           json_t *entries, lb_err *err)
{
    saga_input_rec *rec = malloc(sizeof *rec);
    saga_decision d;
    if (rec == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "input record");
    lb_status s = saga_view_redecide(redo, rec, &d, t, r, row, err);
    if (s != LB_OK) {
        free(rec);
        return s;
    }
    bool same = saga_view_decision_matches(&d, r, row);
    json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "id", PQgetvalue(r, row, LOG_COL_ID),
                          "kind", saga_input_kind_name(rec->in.kind), "verdict",
                          saga_view_verdict_names[d.verdict], "from", saga_status_name(d.from),
                          "to", saga_status_name(d.to), "line", d.log, "matches", same);
    free(rec);
    if (!same) {
        json_object_set_new(
            e, "recorded",
            json_pack("{s:s,s:s,s:s,s:s}", "verdict", PQgetvalue(r, row, LOG_COL_VERDICT), "from",
                      PQgetvalue(r, row, LOG_COL_FROM), "to", PQgetvalue(r, row, LOG_COL_TO),
                      "line", PQgetvalue(r, row, LOG_COL_LINE)));
        *match = false;
    }
    if (!ctl_out.json) {
        printf("  #%-6s %-7s %-7s %s->%s  %s\n", PQgetvalue(r, row, LOG_COL_ID),
               json_string_value(json_object_get(e, "kind")), saga_view_verdict_names[d.verdict],
               saga_status_name(d.from), saga_status_name(d.to), d.log);
        if (!same)
            printf("    recorded: %s %s->%s  %s\n", PQgetvalue(r, row, LOG_COL_VERDICT),
                   PQgetvalue(r, row, LOG_COL_FROM), PQgetvalue(r, row, LOG_COL_TO),
                   PQgetvalue(r, row, LOG_COL_LINE));
    }
    json_array_append_new(entries, e);
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
replay_log(bool *match, json_t *doc, PGconn *pg, const char *id, const saga_type *t,
           const saga_state *stored, lb_err *err)
{
    const char *p[] = { id };
    PGresult *r = saga_view_query(pg, SAGA_VIEW_SQL_LOG, 1, p, err);
    if (r == NULL)
        return LB_ERR_DB;
    saga_view_redo *redo = calloc(1, sizeof *redo);
    bool eq = false;
    lb_status s = redo != NULL ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "replay state");
    json_t *entries = json_object_get(doc, "entries");
    if (!ctl_out.json)
        printf("replaying %d log entries of saga %s (%s v%u)\n", PQntuples(r), id, t->name,
               t->version);
    for (int i = 0; i < PQntuples(r) && s == LB_OK; i++)
        s = replay_one(redo, match, t, r, i, entries, err);
    PQclear(r);
    if (s == LB_OK && (s = states_equal(&eq, &redo->state, stored, err)) == LB_OK && !eq) {
        char text[256];
        snprintf(text, sizeof text,
                 "final state differs: stored %s at step %u (updated %lld), replayed %s at step "
                 "%u (updated %lld)",
                 saga_status_name(stored->status), stored->step, (long long)stored->updated_ms,
                 saga_status_name(redo->state.status), redo->state.step,
                 (long long)redo->state.updated_ms);
        json_object_set_new(doc, "finalState", json_string(text));
        if (!ctl_out.json)
            printf("%s\n", text);
        *match = false;
    }
    free(redo);
    return s;
}

static lb_status
replay_run(bool *match, json_t *doc, PGconn *pg, const char *id, lb_err *err)
{
    PGresult *r = NULL;
    saga_state stored;
    const saga_registry *reg = saga_view_registry(err);
    if (reg == NULL)
        return err->code;
    lb_status s = saga_view_row(&r, pg, id, err);
    if (s != LB_OK)
        return s;
    s = saga_view_state_get(&stored, r, 0, SAGA_COL_STATE, err);
    const saga_type *t = saga_registry_find(reg, PQgetvalue(r, 0, SAGA_COL_TYPE),
                                            (uint32_t)atoi(PQgetvalue(r, 0, SAGA_COL_VERSION)));
    if (s == LB_OK && t == NULL)
        s = lb_err_set(err, LB_ERR_NOT_FOUND, "saga type %s v%s is not in this build",
                       PQgetvalue(r, 0, SAGA_COL_TYPE), PQgetvalue(r, 0, SAGA_COL_VERSION));
    PQclear(r);
    if (s == LB_OK)
        s = replay_log(match, doc, pg, id, t, &stored, err);
    return s;
}

int
ctl_saga_replay(const ctl_cmd *cmd, int argc, char **argv)
{
    struct {
        ctl_conn conn;
    } conf = { 0 };
    const char *id = NULL;
    PGconn *pg = NULL;
    bool match = true;
    lb_err err;
    int rc = ctl_id_args(&id, &conf, cmd, "saga id", argc, argv);
    if (rc >= 0)
        return rc;
    json_t *doc = json_pack("{s:s,s:[]}", "sagaId", id, "entries");
    if (ctl_pg_open(&pg, &conf.conn, &err) != LB_OK ||
        replay_run(&match, doc, pg, id, &err) != LB_OK)
        rc = ctl_fail(cmd, &err);
    else
        rc = match ? CTL_EXIT_OK : CTL_EXIT_FAIL;
    PQfinish(pg);
    json_object_set_new(doc, "matches", json_boolean(rc == CTL_EXIT_OK));
    if (ctl_out.json && (rc == CTL_EXIT_OK || !match))
        ctl_json_doc(json_incref(doc));
    else if (rc == CTL_EXIT_OK)
        printf("replay matches: the log decides the stored state\n");
    else if (!match)
        printf("replay MISMATCH: the stored saga is not what its log decides\n");
    json_decref(doc);
    return rc;
}

/* --- for other topics (ctl.h) ------------------------------------------------ */

lb_status
ctl_bus_open(bus **b, const ctl_conn *c, lb_err *err)
{
    return bus_connect(b, c, err);
}
