/* ctl_check.c - `layby-ctl events replay --check`: would this build have
 * sent the same commands on real history?
 *
 * For every saga selected (--since: changed since; --correlation; --saga-type;
 * --limit: the N most recently changed)
 * it feeds the inputs the saga's log recorded (every event, timer, signal and
 * operator command, in order: the timers are in no stream, so the log is the
 * record of inputs) through this build's decider, and compares the commands
 * it decides, in order, with the commands LAYBY_CMD really holds for the saga
 * (on a subject some saga type of this build sends, naming the saga by its
 * saga_id field, else by its Layby-Correlation: the orchestrator's rule; the
 * correlation alone does not say which saga, since an order's place and pay
 * sagas share the order id). A saga whose decided and sent commands differ is reported, with
 * the first difference; exit 1 if any differs.
 *
 * The sagas are read first, so LAYBY_CMD is read only from the earliest
 * creation time among them (less CHECK_SKEW_MS, for the clocks of
 * PostgreSQL and nats-server): `--since` or `--limit` on a long history
 * reads the recent part of the stream, not all of it. Sagas created before
 * LAYBY_CMD's oldest message are skipped (their first commands aged out of
 * the stream), and so is the tail still in an outbox: run it on a quiet
 * moment, or read the report knowing a saga changed in the last second may
 * show a command not yet relayed.
 *
 * A test build (LAYBY_TEST_HOOKS) can swap in a changed step table for the
 * test saga type (LAYBY_CTL_TEST_CHANGED_STEPS=1): how the suite shows that a
 * divergence is reported. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "codec.h"
#include "ctl_events.h"
#include "ctl_saga_int.h"
#include "id.h"
#ifdef LAYBY_TEST_HOOKS
#include "sagas_test.h"
#endif

/* clang-format off */
#define SQL_CHECK_LOG                                                                          \
    "WITH pick AS (SELECT saga_id, saga_type, version, created_at FROM saga.sagas"              \
    "  WHERE ($1::bigint = 0 OR updated_at >= timestamptz 'epoch' + $1::bigint * interval '1 millisecond')" \
    "    AND ($2 = '' OR saga_id = NULLIF($2, '')::uuid OR correlation = NULLIF($2, '')::uuid)" \
    "    AND ($3 = '' OR saga_type = $3)"                                                        \
    "  ORDER BY updated_at DESC LIMIT NULLIF($4::bigint, 0))"                                    \
    " SELECT l.id, " SAGA_VIEW_TS("l.at") ", l.msg_id, l.input_kind, l.input, l.verdict, l.from_status," \
    " l.to_status, l.line, l.saga_id::text, s.saga_type, s.version,"                           \
    " (extract(epoch FROM s.created_at) * 1000)::bigint"                                        \
    " FROM saga.saga_log l JOIN pick s USING (saga_id)"                                         \
    " ORDER BY l.saga_id, l.id"
/* clang-format on */
/* A saga's first command is stored after its row commits (created_at is
 * the transaction's start): the stream is read from this much before the
 * earliest creation, in case nats-server's clock runs behind PostgreSQL's. */
#define CHECK_SKEW_MS 5000

enum {
    CHK_SAGA = LOG_COL_LINE + 1,
    CHK_TYPE,
    CHK_VERSION,
    CHK_CREATED_MS
};

/* One command LAYBY_CMD holds. */
typedef struct sent_cmd {
    char corr[ID_STR_LEN]; /* the saga it was sent for */
    uint64_t seq;
    const char *subject; /* the step table's string (a known subject) */
    char type[96];
} sent_cmd;

typedef struct check_run {
    const saga_registry *reg;
    sent_cmd *sent;
    size_t n_sent, cap_sent;
    int64_t cmd_first_ms; /* LAYBY_CMD's oldest message */
    int64_t read_from_ms; /* where the read of LAYBY_CMD started (0: not read) */
    uint64_t checked, differ, skipped;
} check_run;

/* --- the registry -------------------------------------------------------------- */

#ifdef LAYBY_TEST_HOOKS
static const saga_type *changed_types[64];
static saga_registry changed_reg;
#endif

static const saga_registry *
check_registry(lb_err *err)
{
    const saga_registry *reg = saga_view_registry(err);
#ifdef LAYBY_TEST_HOOKS
    const char *env = getenv("LAYBY_CTL_TEST_CHANGED_STEPS");
    if (reg != NULL && env != NULL && strcmp(env, "1") == 0 &&
        reg->n_types <= LB_COUNTOF(changed_types)) {
        for (size_t i = 0; i < reg->n_types; i++)
            changed_types[i] =
                reg->types[i] == &saga_sagatest_v1 ? &saga_sagatest_v1_changed : reg->types[i];
        changed_reg.types = changed_types;
        changed_reg.n_types = reg->n_types;
        return &changed_reg;
    }
#endif
    return reg;
}

/* The step table's own string for a subject some type sends, NULL if none. */
static const char *
known_subject(const saga_registry *reg, const char *subject)
{
    for (size_t i = 0; i < reg->n_types; i++) {
        const saga_type *t = reg->types[i];
        for (size_t k = 0; k < t->n_steps; k++) {
            const saga_step *s = &t->steps[k];
            if (s->subject != NULL && strcmp(s->subject, subject) == 0)
                return s->subject;
            if (s->compensate_subject != NULL && strcmp(s->compensate_subject, subject) == 0)
                return s->compensate_subject;
        }
    }
    return NULL;
}

/* --- the commands sent ------------------------------------------------------------ */

/* The saga a command was sent for: its saga_id field when its type has one
 * (copied into out), else its correlation. */
static const char *
sent_saga(char out[ID_STR_LEN], natsMsg *m, const char *type, const char *corr)
{
    const ProtobufCMessageDescriptor *d = type != NULL ? codec_type_find(type) : NULL;
    const ProtobufCFieldDescriptor *f =
        d != NULL ? protobuf_c_message_descriptor_get_field_by_name(d, "saga_id") : NULL;
    ProtobufCMessage *msg = NULL;
    lb_err err;
    if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED ||
        codec_unpack(&msg, d, (const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
                     &err) != LB_OK)
        return corr;
    const char *id = *(char *const *)((const char *)msg + f->offset);
    snprintf(out, ID_STR_LEN, "%s", id != NULL && id_valid(id) ? id : corr);
    protobuf_c_message_free_unpacked(msg, NULL);
    return out;
}

static bool
sent_add(void *arg, natsMsg *m, uint64_t seq, int64_t time_ns)
{
    (void)time_ns;
    check_run *run = arg;
    const char *corr = NULL, *type = NULL;
    const char *subject = known_subject(run->reg, natsMsg_GetSubject(m));
    if (subject == NULL || natsMsgHeader_Get(m, BUS_H_CORRELATION, &corr) != NATS_OK ||
        corr == NULL || !id_valid(corr))
        return true;
    natsMsgHeader_Get(m, BUS_H_TYPE, &type);
    char saga_id[ID_STR_LEN];
    const char *saga = sent_saga(saga_id, m, type, corr);
    if (run->n_sent == run->cap_sent) {
        size_t cap = run->cap_sent ? run->cap_sent * 2 : 4096;
        sent_cmd *p = realloc(run->sent, cap * sizeof *p);
        if (p == NULL)
            return false;
        run->sent = p;
        run->cap_sent = cap;
    }
    sent_cmd *s = &run->sent[run->n_sent++];
    snprintf(s->corr, sizeof s->corr, "%s", saga);
    snprintf(s->type, sizeof s->type, "%s", type ? type : "");
    s->seq = seq;
    s->subject = subject;
    return true;
}

static int
sent_cmp(const void *a, const void *b)
{
    const sent_cmd *x = a, *y = b;
    int c = strcmp(x->corr, y->corr);
    return c != 0 ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* The commands sent for saga id: run->sent[*first .. *first + *n). */
static void
sent_find(size_t *first, size_t *n, const check_run *run, const char *id)
{
    size_t lo = 0, hi = run->n_sent;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(run->sent[mid].corr, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    for (hi = lo; hi < run->n_sent && strcmp(run->sent[hi].corr, id) == 0; hi++)
        ;
    *n = hi - lo;
}

/* Reads the commands of LAYBY_CMD stored from from_ms on. */
static lb_status
sent_read(check_run *run, const ctl_conn *conn, int64_t from_ms, lb_err *err)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    lb_status s = ctl_nats_open(&nc, &js, conn, err);
    if (s == LB_OK) {
        natsStatus ns = js_GetStreamInfo(&si, js, BUS_STREAM_CMD, NULL, NULL);
        if (ns != NATS_OK)
            s = ctl_nats_err(err, ns, BUS_STREAM_CMD);
        else
            run->cmd_first_ms = si->State.Msgs > 0 ? si->State.FirstTime / 1000000 : INT64_MAX;
        jsStreamInfo_Destroy(si);
    }
    ctl_range rg = { .stream = BUS_STREAM_CMD, .subject = "layby.cmd.>", .since_ms = from_ms };
    run->read_from_ms = from_ms;
    if (s == LB_OK)
        s = ctl_range_read(js, &rg, sent_add, run, conn->timeout_ms, err);
    ctl_nats_close(nc, js);
    if (s == LB_OK)
        qsort(run->sent, run->n_sent, sizeof *run->sent, sent_cmp);
    return s;
}

/* --- one saga ------------------------------------------------------------------------ */

typedef struct decided {
    saga_cmd cmds[1024];
    size_t n;
} decided;

static json_t *
cmd_pair(const char *subject, const char *type)
{
    return json_pack("{s:s,s:s}", "subject", subject, "type", type);
}

static void
report(check_run *run, const PGresult *r, int row, const decided *dc, size_t first, size_t n,
       size_t at)
{
    const char *id = PQgetvalue(r, row, CHK_SAGA);
    json_t *o =
        json_pack("{s:s,s:s,s:i,s:I,s:[],s:[]}", "sagaId", id, "type", PQgetvalue(r, row, CHK_TYPE),
                  "version", atoi(PQgetvalue(r, row, CHK_VERSION)), "firstDifference",
                  (json_int_t)at, "decided", "sent");
    for (size_t i = 0; i < dc->n; i++)
        json_array_append_new(json_object_get(o, "decided"),
                              cmd_pair(dc->cmds[i].subject, dc->cmds[i].desc->name));
    for (size_t i = 0; i < n; i++)
        json_array_append_new(json_object_get(o, "sent"),
                              cmd_pair(run->sent[first + i].subject, run->sent[first + i].type));
    run->differ++;
    if (ctl_out.json) {
        ctl_json_line(o);
        return;
    }
    printf("%sDIFFERS%s saga %s (%s v%s): command #%zu: decided %s %s, sent %s %s\n",
           ctl_color("FAIL"), ctl_color_end(), id, PQgetvalue(r, row, CHK_TYPE),
           PQgetvalue(r, row, CHK_VERSION), at, at < dc->n ? dc->cmds[at].subject : "(nothing)",
           at < dc->n ? dc->cmds[at].desc->name : "",
           at < n ? run->sent[first + at].subject : "(nothing)",
           at < n ? run->sent[first + at].type : "");
    json_decref(o);
}

/* Re-decides rows [row, end) of one saga and compares. */
static lb_status
saga_check(check_run *run, const PGresult *r, int row, int end, saga_view_redo *redo,
           saga_input_rec *rec, decided *dc, lb_err *err)
{
    const char *id = PQgetvalue(r, row, CHK_SAGA);
    if (strtoll(PQgetvalue(r, row, CHK_CREATED_MS), NULL, 10) < run->cmd_first_ms) {
        run->skipped++;
        return LB_OK;
    }
    const saga_type *t = saga_registry_find(run->reg, PQgetvalue(r, row, CHK_TYPE),
                                            (uint32_t)atoi(PQgetvalue(r, row, CHK_VERSION)));
    if (t == NULL)
        return lb_err_set(err, LB_ERR_NOT_FOUND, "saga %s: type %s v%s is not in this build", id,
                          PQgetvalue(r, row, CHK_TYPE), PQgetvalue(r, row, CHK_VERSION));
    memset(redo, 0, sizeof *redo);
    dc->n = 0;
    for (int i = row; i < end; i++) {
        saga_decision d;
        lb_status s = saga_view_redecide(redo, rec, &d, t, r, i, err);
        if (s != LB_OK)
            return s;
        for (size_t k = 0; k < d.n_cmds && dc->n < LB_COUNTOF(dc->cmds); k++)
            dc->cmds[dc->n++] = d.cmds[k];
    }
    size_t first = 0, n = 0, at = 0;
    sent_find(&first, &n, run, id);
    while (at < dc->n && at < n &&
           strcmp(dc->cmds[at].subject, run->sent[first + at].subject) == 0 &&
           strcmp(dc->cmds[at].desc->name, run->sent[first + at].type) == 0)
        at++;
    run->checked++;
    if (at < dc->n || at < n)
        report(run, r, row, dc, first, n, at);
    if (run->checked % 1000 == 0)
        ctl_progress("layby-ctl events replay --check: %" PRIu64 " sagas\n", run->checked);
    return LB_OK;
}

/* The log rows of the sagas selected (SQL_CHECK_LOG), and the earliest
 * creation among them (INT64_MAX when none). */
static PGresult *
sagas_read(int64_t *first_ms, PGconn *pg, const char *since_ms, const char *corr, const char *type,
           int64_t limit, lb_err *err)
{
    char lim[24];
    snprintf(lim, sizeof lim, "%lld", (long long)limit);
    const char *p[] = { since_ms, corr, type, lim };
    PGresult *r = saga_view_query(pg, SQL_CHECK_LOG, 4, p, err);
    *first_ms = INT64_MAX;
    for (int row = 0; r != NULL && row < PQntuples(r); row++) {
        int64_t ms = strtoll(PQgetvalue(r, row, CHK_CREATED_MS), NULL, 10);
        if (ms < *first_ms)
            *first_ms = ms;
    }
    return r;
}

static lb_status
sagas_check(check_run *run, const PGresult *r, lb_err *err)
{
    saga_view_redo *redo = malloc(sizeof *redo);
    saga_input_rec *rec = malloc(sizeof *rec);
    decided *dc = malloc(sizeof *dc);
    lb_status s = redo && rec && dc ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "check state");
    int n = PQntuples(r);
    for (int row = 0; row < n && s == LB_OK;) {
        int end = row + 1;
        while (end < n && strcmp(PQgetvalue(r, end, CHK_SAGA), PQgetvalue(r, row, CHK_SAGA)) == 0)
            end++;
        s = saga_check(run, r, row, end, redo, rec, dc, err);
        row = end;
    }
    free(redo);
    free(rec);
    free(dc);
    return s;
}

static double
mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int
ctl_check_run(const ctl_cmd *cmd, const ctl_conn *conn, const char *since, const char *correlation,
              const char *type_name, int64_t limit)
{
    check_run run = { 0 };
    PGconn *pg = NULL;
    lb_err err;
    char since_ms[24] = "0";
    if (since[0] != '\0') {
        int64_t ms = 0;
        if (lb_time_parse(&ms, since, &err) != LB_OK)
            return ctl_usage_error(cmd, "--since: %s", err.msg);
        snprintf(since_ms, sizeof since_ms, "%lld", (long long)(ms > 0 ? ms : 1));
    }
    if (correlation[0] != '\0' && !id_valid(correlation))
        return ctl_usage_error(cmd, "--correlation '%s' is not an id (a UUID)", correlation);
    /* The sagas first: their earliest creation bounds the read of LAYBY_CMD.
     * per_s counts the query and the re-deciding, not the stream read. */
    int64_t first_ms = INT64_MAX;
    PGresult *r = NULL;
    lb_status s = (run.reg = check_registry(&err)) != NULL ? LB_OK : err.code;
    if (s == LB_OK)
        s = ctl_pg_open(&pg, conn, &err);
    double t0 = mono_s(), read_s = 0;
    if (s == LB_OK &&
        (r = sagas_read(&first_ms, pg, since_ms, correlation, type_name, limit, &err)) == NULL)
        s = LB_ERR_DB;
    if (s == LB_OK && first_ms != INT64_MAX) {
        double t = mono_s();
        s = sent_read(&run, conn, first_ms > CHECK_SKEW_MS ? first_ms - CHECK_SKEW_MS : 1, &err);
        read_s = mono_s() - t;
    }
    if (s == LB_OK)
        s = sagas_check(&run, r, &err);
    PQclear(r);
    PQfinish(pg);
    free(run.sent);
    if (s != LB_OK)
        return ctl_fail(cmd, &err);
    double secs = mono_s() - t0 - read_s;
    double per_s = secs > 0 ? (double)run.checked / secs : 0;
    char from[40] = "";
    if (run.read_from_ms > 0)
        lb_time_format(from, sizeof from, run.read_from_ms);
    if (ctl_out.json)
        ctl_json_line(json_pack("{s:{s:I,s:I,s:I,s:I,s:s?,s:f,s:f}}", "summary", "checked",
                                (json_int_t)run.checked, "differ", (json_int_t)run.differ,
                                "skipped", (json_int_t)run.skipped, "commandsRead",
                                (json_int_t)run.n_sent, "readFrom", from[0] ? from : NULL,
                                "readSeconds", read_s, "sagasPerSecond", per_s));
    else
        printf("check: %" PRIu64 " sagas re-decided, %" PRIu64 " differ, %" PRIu64
               " skipped (older than %s's first message); %zu commands read (from %s) in %.2f "
               "s; %.0f sagas/s\n",
               run.checked, run.differ, run.skipped, BUS_STREAM_CMD, run.n_sent,
               from[0] ? from : "-", read_s, per_s);
    return run.differ == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
