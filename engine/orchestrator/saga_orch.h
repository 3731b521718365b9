/* saga_orch.h - layby-orchestrator: persists sagas and runs the pure decider
 * (engine/saga.h) on every input, exactly once, through the svc runtime.
 *
 * Parts: saga_orch_sql.c (every statement), saga_orch_apply.c (load, decide and
 * persist a batch of inputs: the core), saga_orch_msg.c (what it sends besides
 * step commands), saga_orch_handlers.c (inputs from messages, timers,
 * housekeeping), saga_orch_types.c (the registered types and what the
 * orchestrator reads because of them).
 *
 * Ownership: inputs are caller memory; their strings are borrowed for the call.
 * Threads:   handlers and the tick run on svc threads, each with its own store.
 */
#ifndef LAYBY_ENGINE_ORCHESTRATOR_SAGA_ORCH_H
#define LAYBY_ENGINE_ORCHESTRATOR_SAGA_ORCH_H

#include "engine/saga.h"
#include "engine/svc.h"

#define SAGA_ORCH_STMTS_COUNT 7
extern const store_stmt saga_orch_stmts[SAGA_ORCH_STMTS_COUNT];
/* The admin reads it answers (saga_orch_admin.c): layby.qry.orchestrator.saga_list|saga_show. */
#define SAGA_ORCH_QUERIES_COUNT 3
extern const svc_query_route saga_orch_admin_queries[SAGA_ORCH_QUERIES_COUNT];
/* Filled by saga_orch_init(): its consumers and handlers derive from the types. */
extern svc_def saga_orch_def;

/* One input for one saga, in arrival order. */
typedef struct saga_orch_input {
    saga_input in;                 /* kind, now_ms, seed and kind's fields */
    char saga_id[ID_STR_LEN];      /* which saga */
    const svc_item *item;          /* message that carried it; NULL for timers */
    const saga_type *start_type;   /* START: type to start (latest version) */
    const ProtobufCMessage *event; /* EVENT: decoded later, against the saga's type */
} saga_orch_input;

/* Locks the sagas the inputs name (in id order, so two orchestrators never
 * deadlock), decides every input in order, and writes in the batch's
 * transaction: saga rows with their timer, a log row per input, the commands
 * and SagaChanged events (outbox), replies (after commit). */
lb_status saga_orch_apply(svc_batch *b, saga_orch_input *ins, size_t n, lb_err *err);
/* Sends the lock of sagas ids[0..n) (sorted, distinct) as the batch's prefetch;
 * saga_orch_apply() reads the rows from it. */
lb_status saga_orch_lock_send(svc_batch *b, const char (*ids)[ID_STR_LEN], size_t n, lb_err *err);

/* A saga's row as this orchestrator last wrote it (saga_orch_mem.c): what
 * saga_write stored, owned buffers. */
typedef struct saga_mem_row {
    saga_status status;
    const char *start_type; /* a codec descriptor's name (static) */
    uint8_t *state, *start;
    size_t state_len, start_len;
} saga_mem_row;
void saga_orch_mem_row_free(saga_mem_row *r);
/* Whether saga id's row is remembered. */
bool saga_orch_mem_has(const char *id);
/* A copy of saga id's remembered row into *out (the caller's to free), or
 * *found false. */
lb_status saga_orch_mem_get(const char *id, saga_mem_row *out, bool *found, lb_err *err);
/* The rows one transaction writes, remembered once it commits:
 * saga_orch_mem_batch_add() takes r's buffers (*b created on first use), and
 * saga_orch_mem_batch_commit(b, committed) is the svc_batch_on_commit() hook
 * that stores them (or drops them) and frees b. */
typedef struct saga_mem_batch saga_mem_batch;
lb_status saga_orch_mem_batch_add(saga_mem_batch **b, const char *id, saga_mem_row *r, lb_err *err);
void saga_orch_mem_batch_commit(void *arg, bool committed);

/* The saga types this orchestrator runs (saga_orch_types.c): sagas/ and, in a
 * test build, tests/sagas/. saga_orch_init() registers them and derives
 * saga_orch_def's consumers and handler rows; call it once before threads. */
const saga_registry *saga_orch_registry(void);
lb_status saga_orch_init(lb_err *err);
/* The type a start subject (layby.cmd.saga.start.<name>) starts, latest
 * version; NULL if none. */
const saga_type *saga_orch_start_type(const char *subject);
/* The handler of every row (saga_orch_handlers.c). */
bool saga_orch_speculate(const svc_item *items, size_t n);
lb_status saga_orch_on_input(svc_batch *b, svc_item *items, size_t n, lb_err *err);

/* Builders (saga_orch_msg.c). *out is the caller's. */
lb_status saga_orch_msg_changed(ProtobufCMessage **out, const saga_type *t, const saga_state *s,
                                saga_status from, const char *actor, lb_err *err);
lb_status saga_orch_msg_outcome(ProtobufCMessage **out, const saga_type *t, const saga_state *s,
                                lb_err *err);
lb_status saga_orch_msg_failure(ProtobufCMessage **out, lb_status code, const char *reason,
                                lb_err *err);
/* SagaChanged to STUCK of a saga parked because it could not be run: built
 * from its row's columns, since its stored state may not decode. */
lb_status saga_orch_msg_parked(ProtobufCMessage **out, const char *saga_id, const char *type,
                               uint32_t version, const char *previous, const lb_err *why,
                               lb_err *err);

#endif
