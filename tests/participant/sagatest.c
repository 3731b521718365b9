/* sagatest.c - layby-sagatest, the participant of the test sagas
 * (tests/sagas/), run by the saga suites and the saga benchmark.
 *
 * It behaves as a real participant must (docs/SAGAS.md): idempotent per
 * (saga, step): a repeated command answers the first outcome and has no second
 * effect; an undo of a step never done is a no-op answered "undone" and is
 * remembered, so a late do for it is refused. How it answers is scripted by the
 * saga's StartTestSaga.script, copied into every command, tokens separated by
 * spaces, each "<step>:<action>[=<n>]" with steps numbered from 0:
 *   fail        every attempt of the step fails for good
 *   flaky=N     the first N attempts fail (retryably)
 *   drop=N      the first N deliveries are dropped (a lost message)
 *   undofail=N  the first N undos fail (retryably)
 * With LAYBY_SAGATEST_NOOP=1 it answers every do with done at once and keeps
 * nothing, not even an inbox: it runs stateless (svc.h), the benchmark's no-op
 * participant.
 *
 * The runtime's suite (tests/integration/svc_runtime_test.c) uses it for one
 * more handler, deliberately NOT idempotent, so only the engine's inbox stands
 * between a repeated delivery and a second effect: a TestStepDo sent to
 * layby.cmd.sagatest.count adds one to sagatest.counts[saga_id] and emits
 * layby.evt.sagatest.counted; with script "fail" it fails (rolls back); with
 * "sleep=MS" it takes MS milliseconds first (a handler slower than AckWait). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/svc.h"
#include "layby/v1/saga.pb-c.h"
#include "sagas_test.h"

/* clang-format off */
static const char SQL_TRY[] =
    "INSERT INTO sagatest.tries AS t (saga_id, step, kind, n) VALUES ($1, $2, $3, 1) "
    "ON CONFLICT (saga_id, step, kind) DO UPDATE SET n = t.n + 1 RETURNING n";
static const char SQL_OUTCOME_GET[] =
    "SELECT kind, outcome FROM sagatest.outcomes WHERE saga_id = $1 AND step = $2";
static const char SQL_OUTCOME_PUT[] =
    "INSERT INTO sagatest.outcomes (saga_id, step, kind, outcome) VALUES ($1, $2, $3, $4)";
static const char SQL_EFFECT[] =
    "INSERT INTO sagatest.effects (saga_id, step, kind) VALUES ($1, $2, $3)";

static const char SQL_COUNT[] =
    "INSERT INTO sagatest.counts AS c (key, n) VALUES ($1, 1) "
    "ON CONFLICT (key) DO UPDATE SET n = c.n + 1";

static const store_stmt sagatest_stmts[] = {
    { "sagatest_count",       SQL_COUNT },
    { "sagatest_try",         SQL_TRY },
    { "sagatest_outcome_get", SQL_OUTCOME_GET },
    { "sagatest_outcome_put", SQL_OUTCOME_PUT },
    { "sagatest_effect",      SQL_EFFECT },
};
/* clang-format on */

static bool sagatest_noop;

/* n of "<step>:<action>=<n>" in script (1 without "=n"); 0 if absent. */
static int
script_get(const char *script, unsigned step, const char *action)
{
    char want[64];
    snprintf(want, sizeof want, "%u:%s", step, action);
    size_t wl = strlen(want);
    for (const char *p = script; p != NULL && *p;) {
        while (*p == ' ')
            p++;
        if (strncmp(p, want, wl) == 0 && (p[wl] == '=' || p[wl] == ' ' || p[wl] == '\0'))
            return p[wl] == '=' ? atoi(p + wl + 1) : 1;
        p = strchr(p, ' ');
    }
    return 0;
}

typedef struct sagatest_answer {
    const ProtobufCMessageDescriptor *desc;
    const char *subject;
    bool final;
    const char *reason;
} sagatest_answer;

static lb_status
emit_answer(svc_batch *b, const svc_item *it, const char *saga_id, unsigned step, unsigned attempt,
            const sagatest_answer *a, lb_err *err)
{
    /* Done/Undone and Failed/UndoFailed share their first fields; build each kind. */
    bus_envelope env;
    bus_envelope_init(&env, a->desc, it->env);
    if (a->desc == &layby__v1__test_step_done__descriptor) {
        Layby__V1__TestStepDone m = LAYBY__V1__TEST_STEP_DONE__INIT;
        m.saga_id = (char *)saga_id, m.step = step, m.attempt = attempt;
        return svc_emit(b, a->subject, &env, &m.base, err);
    }
    if (a->desc == &layby__v1__test_step_undone__descriptor) {
        Layby__V1__TestStepUndone m = LAYBY__V1__TEST_STEP_UNDONE__INIT;
        m.saga_id = (char *)saga_id, m.step = step, m.attempt = attempt;
        return svc_emit(b, a->subject, &env, &m.base, err);
    }
    if (a->desc == &layby__v1__test_step_failed__descriptor) {
        Layby__V1__TestStepFailed m = LAYBY__V1__TEST_STEP_FAILED__INIT;
        m.saga_id = (char *)saga_id, m.step = step, m.attempt = attempt;
        m.final = a->final, m.reason = (char *)a->reason, m.code = "unprocessable";
        return svc_emit(b, a->subject, &env, &m.base, err);
    }
    Layby__V1__TestStepUndoFailed m = LAYBY__V1__TEST_STEP_UNDO_FAILED__INIT;
    m.saga_id = (char *)saga_id, m.step = step, m.attempt = attempt;
    m.final = a->final, m.reason = (char *)a->reason, m.code = "unavailable";
    return svc_emit(b, a->subject, &env, &m.base, err);
}

static const sagatest_answer ans_done = { &layby__v1__test_step_done__descriptor,
                                          SAGA_SUBJ_TEST_DONE, false, "" };
static const sagatest_answer ans_fail = { &layby__v1__test_step_failed__descriptor,
                                          SAGA_SUBJ_TEST_FAILED, true, "scripted failure" };
static const sagatest_answer ans_flaky = { &layby__v1__test_step_failed__descriptor,
                                           SAGA_SUBJ_TEST_FAILED, false, "scripted flake" };
static const sagatest_answer ans_refused = { &layby__v1__test_step_failed__descriptor,
                                             SAGA_SUBJ_TEST_FAILED, true, "already undone" };
static const sagatest_answer ans_undone = { &layby__v1__test_step_undone__descriptor,
                                            SAGA_SUBJ_TEST_UNDONE, false, "" };
static const sagatest_answer ans_undo_flaky = { &layby__v1__test_step_undo_failed__descriptor,
                                                SAGA_SUBJ_TEST_UNDO_FAILED, false,
                                                "scripted undo failure" };

/* Runs one do or undo; *a is the answer to send, NULL to drop it. */
static lb_status
handle_one(store *db, const char *saga_id, unsigned step, bool undo, const char *script,
           const sagatest_answer **a, lb_err *err)
{
    char stepbuf[16];
    snprintf(stepbuf, sizeof stepbuf, "%u", step);
    const char *kind = undo ? "undo" : "do";
    const char *p3[] = { saga_id, stepbuf, kind };
    PGresult *r = NULL;
    lb_status s = store_exec(db, &r, "sagatest_try", 3, p3, err);
    if (s != LB_OK)
        return s;
    int n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!undo && n <= script_get(script, step, "drop")) {
        *a = NULL;
        return LB_OK;
    }
    if (undo && n <= script_get(script, step, "undofail")) {
        *a = &ans_undo_flaky;
        return LB_OK;
    }
    const char *p2[] = { saga_id, stepbuf };
    if ((s = store_exec(db, &r, "sagatest_outcome_get", 2, p2, err)) != LB_OK)
        return s;
    const char *done_outcome = NULL;
    bool undone = false;
    for (int i = 0; i < PQntuples(r); i++) {
        if (strcmp(PQgetvalue(r, i, 0), "do") == 0)
            done_outcome = strcmp(PQgetvalue(r, i, 1), "done") == 0 ? "done" : "failed";
        else
            undone = true;
    }
    PQclear(r);
    const char *outcome;
    if (undo) {
        *a = &ans_undone;
        if (undone)
            return LB_OK; /* repeat: same answer, no second effect */
        outcome = "undone";
        const char *p4[] = { saga_id, stepbuf, "undo", outcome };
        if ((s = store_exec(db, NULL, "sagatest_outcome_put", 4, p4, err)) != LB_OK)
            return s;
        if (done_outcome != NULL && strcmp(done_outcome, "done") == 0)
            s = store_exec(db, NULL, "sagatest_effect", 3, p3, err);
        return s;
    }
    if (undone) {
        *a = &ans_refused; /* undone before it was done: a late do must not act */
        return LB_OK;
    }
    if (done_outcome != NULL) {
        *a = strcmp(done_outcome, "done") == 0 ? &ans_done : &ans_fail;
        return LB_OK;
    }
    if (script_get(script, step, "fail")) {
        *a = &ans_fail;
        const char *p4[] = { saga_id, stepbuf, "do", "failed" };
        return store_exec(db, NULL, "sagatest_outcome_put", 4, p4, err);
    }
    if (n <= script_get(script, step, "flaky")) {
        *a = &ans_flaky;
        return LB_OK;
    }
    *a = &ans_done;
    const char *p4[] = { saga_id, stepbuf, "do", "done" };
    if ((s = store_exec(db, NULL, "sagatest_outcome_put", 4, p4, err)) != LB_OK)
        return s;
    return store_exec(db, NULL, "sagatest_effect", 3, p3, err);
}

static lb_status
sagatest_on_command(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const svc_item *it = &items[i];
        bool undo = it->msg->descriptor == &layby__v1__test_step_undo__descriptor;
        const char *saga_id, *script;
        unsigned step, attempt;
        if (undo) {
            const Layby__V1__TestStepUndo *m = (const Layby__V1__TestStepUndo *)it->msg;
            saga_id = m->saga_id, script = m->script, step = m->step, attempt = m->attempt;
        } else {
            const Layby__V1__TestStepDo *m = (const Layby__V1__TestStepDo *)it->msg;
            saga_id = m->saga_id, script = m->script, step = m->step, attempt = m->attempt;
        }
        const sagatest_answer *a = undo ? &ans_undone : &ans_done;
        lb_status s = sagatest_noop
                          ? LB_OK
                          : handle_one(svc_batch_store(b), saga_id, step, undo, script, &a, err);
        if (s != LB_OK)
            return s;
        if (a != NULL && (s = emit_answer(b, it, saga_id, step, attempt, a, err)) != LB_OK)
            return s;
    }
    return LB_OK;
}

#define SAGATEST_SUBJ_COUNT   "layby.cmd.sagatest.count"
#define SAGATEST_SUBJ_COUNTED "layby.evt.sagatest.counted"

/* One more per command, however often it arrives: no key, no check. */
static lb_status
sagatest_on_count(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const Layby__V1__TestStepDo *m = (const Layby__V1__TestStepDo *)items[i].msg;
        if (strcmp(m->script, "fail") == 0)
            return lb_err_set(err, LB_ERR_INTERNAL, "scripted count failure for %s", m->saga_id);
        if (strncmp(m->script, "sleep=", 6) == 0) {
            long ms = strtol(m->script + 6, NULL, 10);
            struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
        const char *p[] = { m->saga_id };
        lb_status s = store_exec(svc_batch_store(b), NULL, "sagatest_count", 1, p, err);
        if (s != LB_OK)
            return s;
        bus_envelope env;
        bus_envelope_init(&env, &layby__v1__test_step_done__descriptor, items[i].env);
        Layby__V1__TestStepDone ev = LAYBY__V1__TEST_STEP_DONE__INIT;
        ev.saga_id = m->saga_id;
        if ((s = svc_emit(b, SAGATEST_SUBJ_COUNTED, &env, &ev.base, err)) != LB_OK)
            return s;
    }
    return LB_OK;
}

/* clang-format off */
static const svc_handler sagatest_handlers[] = {
    { SAGA_SUBJ_TEST_DO,   &layby__v1__test_step_do__descriptor,   sagatest_on_command, NULL },
    { SAGA_SUBJ_TEST_UNDO, &layby__v1__test_step_undo__descriptor, sagatest_on_command, NULL },
    { SAGATEST_SUBJ_COUNT, &layby__v1__test_step_do__descriptor,   sagatest_on_count, NULL },
};
static const svc_consumer sagatest_consumers[] = {
    { "LAYBY_CMD", "sagatest" },
};
/* clang-format on */

static const svc_def sagatest_def = {
    .name = "sagatest",
    .consumers = sagatest_consumers,
    .n_consumers = LB_COUNTOF(sagatest_consumers),
    .handlers = sagatest_handlers,
    .n_handlers = LB_COUNTOF(sagatest_handlers),
    .stmts = sagatest_stmts,
    .n_stmts = LB_COUNTOF(sagatest_stmts),
};

int
main(int argc, char **argv)
{
    const char *noop = getenv("LAYBY_SAGATEST_NOOP");
    sagatest_noop = noop != NULL && strcmp(noop, "1") == 0;
    /* The no-op participant has no effects, so it needs no inbox and no outbox
     * either: it runs stateless (svc.h), as a no-op step of any saga engine. */
    svc_def def = sagatest_def;
    def.stateless = sagatest_noop;
    return svc_main(argc, argv, &def,
                    "Test participant of the sagatest saga (tests only); "
                    "LAYBY_SAGATEST_NOOP=1 answers every command at once.");
}
