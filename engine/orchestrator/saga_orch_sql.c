/* saga_orch_sql.c - every statement of the orchestrator. Batches travel as
 * arrays (store_array): one statement per batch, whatever its size. */
#include "saga_orch.h"

/* clang-format off */
static const char SAGA_SQL_LOCK[] =
    "SELECT saga_id::text, state, start_type, start FROM saga.sagas "
    "WHERE saga_id = ANY($1::uuid[]) ORDER BY saga_id FOR UPDATE";
/* New sagas (fresh) are INSERTed without ON CONFLICT: two orchestrators that
 * both decided the START of one new id (neither could lock a row that did not
 * exist yet) cannot both commit. The second INSERT waits for the first
 * transaction and then fails on the key, so its batch rolls back and is
 * retried, when the row is there to lock (saga_orch_apply.c, invariant 4).
 * Existing sagas, locked by saga_lock, are updated through ON CONFLICT, which
 * finds each row by the key's index whatever the planner thinks of the join.
 * correlation (sql/0770) is written once, by the INSERT: it never changes.
 * The batch's log rows ($13-$21) go in the same statement (lg): one statement
 * a batch instead of two, which at low rates, where every input is its own
 * batch, is a tenth of the orchestrator's statements (docs/BENCHMARKS.md,
 * eighteenth sitting). The log has no key to the saga's row (sql/0002), so the
 * order of the two inserts inside the statement does not matter.
 * timer_slot (the due timer's second, which the sweep's index keys on) and
 * finished_at (updated_at once finished: pruning's and the overview's key)
 * are written here, not generated (sql/0940): $8 / 1000 is
 * saga.timer_slot(timer_due_at) for the millisecond times the orchestrator
 * writes, $22 says whether the status is a finished one (saga_status_terminal()). */
static const char SAGA_SQL_WRITE[] =
    "WITH u AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::bytea[], "
    "$6::text[], $7::bytea[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bool[], "
    "$12::uuid[], $22::bool[]) AS u(id, t, v, st, s, stt, sta, due, cr, up, fresh, corr, fin)), "
    "lg AS (INSERT INTO saga.saga_log (saga_id, at, msg_id, input_kind, input, verdict, "
    "from_status, to_status, line) "
    "SELECT l.id, to_timestamp(l.at / 1000.0), l.m, l.k, l.i, l.v, l.f, l.t, l.l "
    "FROM unnest($13::uuid[], $14::bigint[], $15::text[], $16::text[], $17::bytea[], "
    "$18::text[], $19::text[], $20::text[], $21::text[]) AS l(id, at, m, k, i, v, f, t, l)), "
    "ins AS (INSERT INTO saga.sagas (saga_id, saga_type, version, status, state, start_type, "
    "start, timer_due_at, timer_slot, created_at, updated_at, finished_at, correlation) "
    "SELECT u.id, u.t, u.v, u.st, u.s, u.stt, u.sta, to_timestamp(u.due / 1000.0), u.due / 1000, "
    "to_timestamp(u.cr / 1000.0), to_timestamp(u.up / 1000.0), "
    "CASE WHEN u.fin THEN to_timestamp(u.up / 1000.0) END, u.corr FROM u WHERE u.fresh) "
    "INSERT INTO saga.sagas (saga_id, saga_type, version, status, state, start_type, start, "
    "timer_due_at, timer_slot, created_at, updated_at, finished_at) "
    "SELECT u.id, u.t, u.v, u.st, u.s, u.stt, u.sta, to_timestamp(u.due / 1000.0), u.due / 1000, "
    "to_timestamp(u.cr / 1000.0), to_timestamp(u.up / 1000.0), "
    "CASE WHEN u.fin THEN to_timestamp(u.up / 1000.0) END FROM u WHERE NOT u.fresh "
    "ON CONFLICT (saga_id) DO UPDATE SET status = EXCLUDED.status, state = EXCLUDED.state, "
    "timer_due_at = EXCLUDED.timer_due_at, timer_slot = EXCLUDED.timer_slot, "
    "updated_at = EXCLUDED.updated_at, finished_at = EXCLUDED.finished_at, parked_error = NULL";
/* The check of a batch decided from remembered rows (saga_orch_mem.c, svc.h
 * svc_speculate_fn), sent before the batch's writes in the same round trip:
 * locks the rows in id order, as saga_lock does, and fails the transaction
 * unless every row's state and status are still the bytes remembered. Under
 * READ COMMITTED a row another transaction moved while this one waited for
 * its lock is compared in its new version (the lock re-reads it), so a
 * concurrent step is seen, never overwritten. The failure is a cast of text
 * to int, evaluated only when the count is short (it is not a constant, so
 * the planner cannot fold it): the writes and COMMIT leave before this
 * answer is read, and only an error stops them. (A PL/pgSQL function with a
 * RAISE says the same more plainly, at the price of a function call and a
 * migration; measured, neither was cheaper.) */
static const char SAGA_SQL_UNCHANGED[] =
    "SELECT CASE WHEN count(*) = cardinality($1::uuid[]) THEN 0 "
    "ELSE ('saga rows changed since this orchestrator wrote them: ' || count(*))::int END "
    "FROM (SELECT 1 FROM saga.sagas s "
    "JOIN unnest($1::uuid[], $2::bytea[], $3::text[]) AS r(id, state, status) "
    "ON s.saga_id = r.id AND s.state = r.state AND s.status = r.status "
    "ORDER BY s.saga_id FOR UPDATE OF s) locked";
/* Due timers of sagas nobody else holds right now (SKIP LOCKED: two
 * orchestrators never fire the same timer; a busy saga is taken next tick).
 * The index is on the timer's second (timer_slot, sql/0760: timer_due_at is
 * not indexed so that a step's write stays a HOT update); a due timer's slot
 * is at most now's, and ordering by slot first lets the index give the order
 * (an incremental sort within each second), so a backlog is not sorted whole. */
static const char SAGA_SQL_TIMERS_DUE[] =
    "SELECT saga_id::text FROM saga.sagas "
    "WHERE timer_slot <= saga.timer_slot(to_timestamp($1::bigint / 1000.0)) "
    "AND timer_due_at <= to_timestamp($1::bigint / 1000.0) "
    "ORDER BY timer_slot, timer_due_at LIMIT $2 FOR UPDATE SKIP LOCKED";
/* A saga whose row cannot be run: STUCK without a timer, with the error, so
 * no tick takes it again and an operator sees why. Its state is left as it was
 * stored (it may not even decode). Returns what the SagaChanged event needs. */
static const char SAGA_SQL_PARK[] =
    "WITH old AS (SELECT saga_id, status FROM saga.sagas WHERE saga_id = $1::uuid) "
    "UPDATE saga.sagas g SET status = 'STUCK', timer_due_at = NULL, timer_slot = NULL, "
    "finished_at = NULL, parked_error = $2, "
    "updated_at = to_timestamp($3::bigint / 1000.0) FROM old WHERE g.saga_id = old.saga_id "
    "RETURNING g.saga_type, g.version, old.status";
/* finished_at: updated_at of a finished saga, NULL before (sql/0760).
 * A plan that needs no statistics (both tables are analyzed rarely,
 * sql/0950): oldest first, in sagas_finished's order, and both deletes by
 * primary key from an array. With `saga_id IN (SELECT ...)` PostgreSQL
 * hash-joined the whole saga_log (a 240,000-row log read at every prune
 * round: 42 ms against 4 ms, tests/integration/saga_faults_test.c). */
static const char SAGA_SQL_PRUNE[] =
    "WITH gone AS (DELETE FROM saga.sagas WHERE saga_id = ANY(ARRAY(SELECT saga_id "
    "FROM saga.sagas WHERE finished_at < now() - make_interval(secs => $1::bigint / 1000.0) "
    "ORDER BY finished_at LIMIT 500)) "
    "RETURNING saga_id) "
    "DELETE FROM saga.saga_log WHERE saga_id = ANY(ARRAY(SELECT saga_id FROM gone))";
/* The unfinished sagas' gauges, from sagas_active alone (sql/0002, 0960):
 * $1 the statuses to count, a subset of the index's (saga_orch_handlers.c,
 * gauge_rows: the few COMPENSATING and STUCK often, RUNNING, every saga in
 * flight, once a minute). The literal IN lets PostgreSQL use the partial
 * index whatever $1 holds. */
static const char SAGA_SQL_COUNTS[] =
    "SELECT status, count(*) FROM saga.sagas "
    "WHERE status IN ('RUNNING', 'COMPENSATING', 'STUCK') AND status = ANY($1::text[]) "
    "GROUP BY status";

const store_stmt saga_orch_stmts[SAGA_ORCH_STMTS_COUNT] = {
    { "saga_lock",       SAGA_SQL_LOCK },
    { "saga_write",      SAGA_SQL_WRITE },
    { "saga_unchanged",  SAGA_SQL_UNCHANGED },
    { "saga_timers_due", SAGA_SQL_TIMERS_DUE },
    { "saga_park",       SAGA_SQL_PARK },
    { "saga_prune",      SAGA_SQL_PRUNE },
    { "saga_counts",     SAGA_SQL_COUNTS },
};
/* clang-format on */
