/* saga_orch_handlers.c - what the orchestrator reads and when: messages to
 * saga inputs (starts, participant events, operator commands, signals), the
 * timer tick and housekeeping (status gauges, pruning finished sagas). The
 * handler rows themselves are derived from the saga types
 * (saga_orch_types.c).
 *
 * Every row names the same function, so the svc runtime hands all of a
 * batch's saga inputs to one saga_orch_apply() call: one lock statement and
 * one write per table per batch, however many sagas the batch touches. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "engine/metrics.h"
#include "layby/v1/saga.pb-c.h"
#include "saga_orch.h"

#define SAGA_TICK_BATCH     256
#define SAGA_PRUNE_EVERY_MS 10000
#define SAGA_PRUNE_ROUNDS   20 /* x 500 sagas per prune */

/* The orchestrator's own settings, filled by svc_main() before threads start. */
typedef struct saga_orch_cfg {
    int64_t retention_ms; /* keep finished sagas this long */
    bool speculate;       /* decide from the rows it wrote when it can (saga_orch_mem.c) */
} saga_orch_cfg;
static saga_orch_cfg saga_orch_conf;

/* --- inputs from messages ------------------------------------------------- */

/* The string field `name` of m, or NULL when m has none. */
static const char *
str_field(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return *(char *const *)((const char *)m + f->offset);
}

/* Builds the decider input of one message; false (with why) if it names no saga. */
static bool
input_from_item(saga_orch_input *oi, const svc_item *it, lb_err *why)
{
    memset(oi, 0, sizeof *oi);
    const ProtobufCMessage *m = it->msg;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    /* A message names its saga by a saga_id field, else by its correlation. */
    const char *id = str_field(m, "saga_id");
    if (id == NULL || id[0] == '\0')
        id = it->env->correlation;
    if (!id_valid(id)) {
        lb_err_field(why, LB_ERR_INVALID, "sagaId", "sagaId must be a UUID");
        return false;
    }
    snprintf(oi->saga_id, sizeof oi->saga_id, "%s", id);
    oi->item = it;
    oi->in.now_ms = it->now_ms;
    oi->in.msg_id = it->env->msg_id;
    oi->in.saga_id = oi->saga_id;
    if (d == &layby__v1__retry_saga__descriptor || d == &layby__v1__resolve_saga__descriptor) {
        const char *actor = str_field(m, "actor");
        oi->in.kind = d == &layby__v1__retry_saga__descriptor ? SAGA_IN_RETRY : SAGA_IN_RESOLVE;
        oi->in.actor = (actor != NULL && actor[0]) ? actor : it->env->actor;
        oi->in.reason = str_field(m, "reason");
        return true;
    }
    if (d == &layby__v1__signal_saga__descriptor) {
        const char *actor = str_field(m, "actor");
        oi->in.kind = SAGA_IN_SIGNAL;
        oi->in.signal = str_field(m, "name");
        oi->in.actor = (actor != NULL && actor[0]) ? actor : it->env->actor;
        oi->in.reason = str_field(m, "reason");
        return true;
    }
    if ((oi->start_type = saga_orch_start_type(it->subject)) != NULL) {
        oi->in.kind = SAGA_IN_START;
        oi->in.reply_to = it->env->reply;
        oi->in.actor = it->env->actor;
        oi->in.traceparent = it->env->traceparent;
        return true;
    }
    oi->in.kind = SAGA_IN_EVENT;
    oi->event = m;
    return true;
}

static int
id_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Locks every saga the batch names in the inbox claim's round trip, before it
 * is known which messages are duplicates: locking a saga a duplicate names
 * costs nothing, and the batch saves a round trip to PostgreSQL. */
static lb_status
saga_orch_prefetch(svc_batch *b, const svc_item *items, size_t n, lb_err *err)
{
    char(*ids)[ID_STR_LEN] = malloc((n ? n : 1) * ID_STR_LEN);
    if (ids == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "saga ids");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        saga_orch_input oi;
        lb_err why;
        if (input_from_item(&oi, &items[i], &why))
            memcpy(ids[k++], oi.saga_id, ID_STR_LEN);
    }
    qsort(ids, k, ID_STR_LEN, id_cmp);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || strcmp(ids[u - 1], ids[i]) != 0)
            memcpy(ids[u++], ids[i], ID_STR_LEN);
    lb_status s = saga_orch_lock_send(b, (const char(*)[ID_STR_LEN])ids, u, err);
    free(ids);
    return s;
}

/* svc_def.speculate: a batch is decided from memory (saga_orch_mem.c) when
 * every input's saga is remembered, or the input starts one. */
bool
saga_orch_speculate(const svc_item *items, size_t n)
{
    if (!saga_orch_conf.speculate)
        return false;
    for (size_t i = 0; i < n; i++) {
        saga_orch_input oi;
        lb_err why;
        if (input_from_item(&oi, &items[i], &why) && oi.in.kind != SAGA_IN_START &&
            !saga_orch_mem_has(oi.saga_id))
            return false;
    }
    return true;
}

lb_status
saga_orch_on_input(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    saga_orch_input *ins = calloc(n, sizeof *ins);
    if (ins == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "saga inputs");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (input_from_item(&ins[k], &items[i], &items[i].why))
            k++;
        else
            items[i].outcome = items[i].why.code;
    }
    lb_status s = saga_orch_apply(b, ins, k, err);
    free(ins);
    return s;
}

/* --- timers and housekeeping ---------------------------------------------- */
static int64_t saga_orch_last_prune_ms; /* tick thread only */

/* Unfinished sagas only: finished ones are announced (SagaChanged) and
 * pruned, and counting them would scan the whole table. Of the unfinished,
 * COMPENSATING and STUCK are few and what an operator is paged for: counted
 * every 5 s from their entries in sagas_active. RUNNING is every saga in
 * flight, in a shop every order until its return window closes (weeks of
 * orders): counting it reads one index entry a saga (21 ms for 125,000, and
 * PostgreSQL planned two parallel workers for it, 62 ms on three processes,
 * every 5 s, docs/BENCHMARKS.md twenty-fifth sitting). So it is counted once
 * a minute (and by one process: store.c). Tick thread only. */
static struct gauge_row {
    const char *statuses; /* saga_counts' $1 */
    saga_status covered[2];
    size_t n;
    int64_t every_ms, last_ms;
} gauge_rows[] = {
    { "{COMPENSATING,STUCK}", { SAGA_COMPENSATING, SAGA_STUCK }, 2, 5000, 0 },
    { "{RUNNING}", { SAGA_RUNNING }, 1, 60000, 0 },
};

/* Sets layby_saga_sagas{status} of each status g covers from r's (status,
 * count) rows, 0 for one r does not name (it has no sagas). */
static void
gauges_set(const struct gauge_row *g, PGresult *r)
{
    for (size_t c = 0; c < g->n; c++) {
        long long count = 0;
        for (int i = 0; i < PQntuples(r); i++)
            if (saga_status_from_name(PQgetvalue(r, i, 0)) == g->covered[c])
                count = atoll(PQgetvalue(r, i, 1));
        char labels[64];
        snprintf(labels, sizeof labels, "status=\"%s\"", saga_status_name(g->covered[c]));
        metrics_set(metrics_gauge("layby_saga_sagas", labels, "unfinished sagas by status"), count);
    }
}

static void
saga_orch_gauges(store *db, int64_t now)
{
    for (size_t i = 0; i < LB_COUNTOF(gauge_rows); i++) {
        struct gauge_row *g = &gauge_rows[i];
        if (now - g->last_ms < g->every_ms)
            continue;
        g->last_ms = now;
        PGresult *r = NULL;
        lb_err err;
        const char *p[] = { g->statuses };
        if (store_exec(db, &r, "saga_counts", 1, p, &err) == LB_OK) {
            gauges_set(g, r);
            PQclear(r);
        }
    }
}

/* svc_def.housekeep: outside the tick's transaction (svc_query.c), so a
 * failed prune is logged and never rolls back the timers the tick fired; each
 * prune round is a transaction of its own. */
static void
saga_orch_housekeep(store *db, int64_t now)
{
    lb_err err;
    saga_orch_gauges(db, now);
    if (now - saga_orch_last_prune_ms >= SAGA_PRUNE_EVERY_MS) {
        saga_orch_last_prune_ms = now;
        char keep[24];
        snprintf(keep, sizeof keep, "%lld", (long long)saga_orch_conf.retention_ms);
        const char *p[] = { keep };
        /* Batches of 500 until one comes back short: a bounded amount of work per
         * tick, and pruning keeps up with the rate sagas finish at. */
        for (int round = 0; round < SAGA_PRUNE_ROUNDS; round++) {
            PGresult *r = NULL;
            if (store_exec(db, &r, "saga_prune", 1, p, &err) != LB_OK) {
                log_warn(NULL, "saga.prune_failed", "pruning finished sagas failed", LOG_ERR(&err));
                break;
            }
            int deleted = atoi(PQcmdTuples(r));
            PQclear(r);
            if (deleted < 500)
                break;
        }
    }
}

/* Parks saga oi->saga_id, which failed alone with why: STUCK, no timer, the
 * error in its row (parked_error), a SagaChanged to layby.evt.saga.stuck. */
static lb_status
park(svc_batch *b, const saga_orch_input *oi, const lb_err *why, lb_err *err)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)oi->in.now_ms);
    const char *p[] = { oi->saga_id, why->msg, now };
    PGresult *r = NULL;
    lb_status s = store_exec(svc_batch_store(b), &r, "saga_park", 3, p, err);
    if (s != LB_OK)
        return s;
    if (PQntuples(r) == 1) {
        log_error(&(log_ctx){ .correlation = oi->saga_id }, "saga.parked",
                  "saga cannot be run; parked as STUCK for an operator",
                  LOG_STR("previous", PQgetvalue(r, 0, 2)), LOG_ERR(why));
        metrics_add(metrics_counter("layby_saga_parked_total", "",
                                    "sagas parked STUCK because their row could not be run"),
                    1);
        ProtobufCMessage *m = NULL;
        s = saga_orch_msg_parked(&m, oi->saga_id, PQgetvalue(r, 0, 0),
                                 (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10),
                                 PQgetvalue(r, 0, 2), why, err);
        if (s == LB_OK) {
            bus_envelope env;
            bus_envelope_init(&env, m->descriptor, NULL);
            snprintf(env.correlation, sizeof env.correlation, "%s", oi->saga_id);
            s = svc_emit(b, saga_status_subject(SAGA_STUCK), &env, m, err);
            protobuf_c_message_free_unpacked(m, NULL);
        }
    }
    PQclear(r);
    return s;
}

/* Applies ins[0..n) between a mark and its check, undoing it all on failure
 * (*failed then says why). An error return means the transaction is lost. */
static lb_status
apply_marked(svc_batch *b, saga_orch_input *ins, size_t n, bool *failed, lb_err *why, lb_err *err)
{
    svc_mark m;
    lb_status s = svc_batch_mark(b, &m, err);
    if (s != LB_OK)
        return s;
    lb_status s1 = saga_orch_apply(b, ins, n, why);
    if (s1 == LB_OK)
        s1 = svc_batch_check(b, why);
    *failed = s1 != LB_OK;
    return *failed ? svc_batch_undo(b, &m, err) : LB_OK;
}

/* Set when a batch of timers failed: the next tick fires one saga at a time.
 * Tick thread only. */
static bool saga_orch_isolate;

/* Errors a retry may cure (store.h): the saga keeps its timer for the next tick. */
static bool
transient(lb_status s)
{
    return s == LB_ERR_DB || s == LB_ERR_NOMEM;
}

/* Fires due timers: each becomes a TIMER input of its (locked) saga.
 *
 * One saga that cannot be run (its version is gone, its state or start does
 * not decode, the decider finds it broken) must not stop every timer: it
 * would fail the whole tick, come first again 50 ms later and fail it again.
 * So, as a failing message is isolated (svc.h invariant 3), a failed batch of
 * timers fails the tick, and the next tick fires each saga alone (a savepoint
 * each); one that fails alone, for a reason a retry cannot cure, is parked
 * (park()), in the same transaction as the timers of the others. The batch
 * itself runs without a savepoint: a subtransaction that locks and updates
 * rows its parent claimed costs every tick (multixacts), failures are rare. */
static lb_status
saga_orch_tick(svc_batch *b, int64_t now_ms, bool *more, lb_err *err)
{
    store *db = svc_batch_store(b);
    char now[24], lim[16];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(lim, sizeof lim, "%d", SAGA_TICK_BATCH);
    const char *p[] = { now, lim };
    PGresult *r = NULL;
    lb_status s = store_exec(db, &r, "saga_timers_due", 2, p, err);
    if (s != LB_OK)
        return s;
    int rows = PQntuples(r);
    *more = rows == SAGA_TICK_BATCH;
    if (rows == 0) {
        PQclear(r);
        return LB_OK;
    }
    saga_orch_input *ins = calloc((size_t)rows, sizeof *ins);
    if (ins == NULL) {
        PQclear(r);
        return lb_err_set(err, LB_ERR_NOMEM, "timer inputs");
    }
    for (int i = 0; i < rows; i++) {
        snprintf(ins[i].saga_id, sizeof ins[i].saga_id, "%s", PQgetvalue(r, i, 0));
        ins[i].in.kind = SAGA_IN_TIMER;
        ins[i].in.now_ms = now_ms;
        ins[i].in.msg_id = "";
        ins[i].in.saga_id = ins[i].saga_id;
    }
    PQclear(r);
    bool failed = false;
    lb_err why;
    if (!saga_orch_isolate) {
        /* Checked here, so a failing write is seen as this batch's failure. */
        if ((s = saga_orch_apply(b, ins, (size_t)rows, err)) == LB_OK)
            s = svc_batch_check(b, err);
        if (s != LB_OK) {
            saga_orch_isolate = true;
            log_warn(NULL, "saga.tick_retry", "timer batch failed; firing one saga at a time",
                     LOG_INT("size", rows), LOG_ERR(err));
        }
    } else {
        saga_orch_isolate = false;
        for (int i = 0; i < rows && s == LB_OK; i++) {
            if ((s = apply_marked(b, &ins[i], 1, &failed, &why, err)) != LB_OK || !failed)
                continue;
            if (transient(why.code))
                log_warn(&(log_ctx){ .correlation = ins[i].saga_id }, "saga.timer_failed",
                         "timer failed; will retry", LOG_ERR(&why));
            else
                s = park(b, &ins[i], &why, err);
        }
        saga_orch_isolate = s != LB_OK;
    }
    free(ins);
    return s;
}

/* --- the service ----------------------------------------------------------- */

/* clang-format off */
static const cfg_opt saga_orch_opts[] = {
    { "saga-retention", "LAYBY_SAGA_RETENTION", CFG_MS, "30d", offsetof(saga_orch_cfg, retention_ms),
      60000, INT64_MAX, "keep finished sagas and their logs this long" },
    { "saga-speculate", "LAYBY_SAGA_SPECULATE", CFG_BOOL, "true", offsetof(saga_orch_cfg, speculate),
      0, 0, "decide an input from the saga's row as this orchestrator wrote it, checked in the "
      "commit's round trip, instead of reading the row first" },
};

/* clang-format on */

/* Consumers and handlers are derived from the saga types by saga_orch_init()
 * (saga_orch_types.c). */
svc_def saga_orch_def = {
    .name = "orchestrator",
    .stmts = saga_orch_stmts,
    .n_stmts = SAGA_ORCH_STMTS_COUNT,
    .queries = saga_orch_admin_queries,
    .n_queries = SAGA_ORCH_QUERIES_COUNT,
    .prefetch = saga_orch_prefetch,
    .speculate = saga_orch_speculate,
    .tick = saga_orch_tick,
    .tick_interval_ms = 50,
    .housekeep = saga_orch_housekeep,
    .opts = { &saga_orch_conf, saga_orch_opts, LB_COUNTOF(saga_orch_opts) },
};
