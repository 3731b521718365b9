/* sagas_test.h - the saga types that exist only for tests and benchmarks,
 * compiled into test builds of the orchestrator (LAYBY_TEST_HOOKS), never
 * into a Release one (docs/SAGAS.md).
 *
 *   sagatest   three command steps a, b, c of TestStepDo/TestStepUndo
 *   sagabench  the same steps with 30 s timeouts, for the benchmark
 *   sagaflow   every step kind, signals and a record (sagaflow.c)
 *   sagabench v2, four steps, only where asked for (sagas_test_v2)
 *
 * Ownership: static const tables.
 * Threads:   read-only.
 */
#ifndef LAYBY_TESTS_SAGAS_SAGAS_TEST_H
#define LAYBY_TESTS_SAGAS_SAGAS_TEST_H

#include "engine/saga.h"

/* The test participants' subjects (tests/participant/sagatest.c). */
#define SAGA_SUBJ_TEST_DO          "layby.cmd.sagatest.do"
#define SAGA_SUBJ_TEST_UNDO        "layby.cmd.sagatest.undo"
#define SAGA_SUBJ_TEST_DONE        "layby.evt.sagatest.done"
#define SAGA_SUBJ_TEST_FAILED      "layby.evt.sagatest.failed"
#define SAGA_SUBJ_TEST_UNDONE      "layby.evt.sagatest.undone"
#define SAGA_SUBJ_TEST_UNDO_FAILED "layby.evt.sagatest.undo_failed"
#define SAGA_SUBJ_START_TEST       SAGA_SUBJ_START_PREFIX "sagatest"
#define SAGA_SUBJ_START_BENCH      SAGA_SUBJ_START_PREFIX "sagabench"
#define SAGA_SUBJ_START_FLOW       SAGA_SUBJ_START_PREFIX "sagaflow"

extern const saga_type saga_sagatest_v1;
/* The same type with step b's command on another subject: a "changed build"
 * for the replay check's test (cli/ctl_check.c); never registered. */
extern const saga_type saga_sagatest_v1_changed;
/* The same steps with production-like timeouts (30 s), for the benchmark: under
 * full load a 1 s timeout fires before the answer arrives and retries pile up. */
extern const saga_type saga_sagabench_v1;

/* sagaflow's steps, in order (signal rules and tests name them). */
enum sagaflow_step {
    SAGAFLOW_A,          /* command, compensated; its note goes to the record */
    SAGAFLOW_PAY,        /* wait for TestStepDone(step 1) until the deadline; compensated */
    SAGAFLOW_PREPARE,    /* command, compensated; its TestStepDo carries the record */
    SAGAFLOW_SHIP_DELAY, /* delay (LAYBY_SAGAFLOW_DELAY_MS, default 300 ms) */
    SAGAFLOW_SHIP,       /* command, the pivot: nothing before it is undone once done */
    SAGAFLOW_WINDOW,     /* delay: the return window; the saga COMPLETES when it ends */
    SAGAFLOW_RET_DELAY,  /* delay, reached only by the `return` signal */
    SAGAFLOW_REFUND,     /* command */
    SAGAFLOW__STEPS
};
/* cancel: allowed at A..SHIP_DELAY (refused LB_ERR_STATE after);
 * return: allowed at WINDOW (refused LB_ERR_CONFLICT otherwise). */
extern const saga_type saga_sagaflow_v1;

/* Every test type, for the orchestrator's test build and the ctl's replay. */
extern const saga_type *const sagas_test[];
extern const size_t sagas_n_test;

/* sagabench v2: v1's steps and a fourth, d. Registered besides the others only
 * by an orchestrator started with LAYBY_TEST_SAGA_V2=1 (saga_orch_types.c), so
 * the version-pinning test can restart an orchestrator that has v1 alone into
 * one that has both, with a v1 saga in flight. */
extern const saga_type saga_sagabench_v2;
extern const saga_type *const sagas_test_v2[];
extern const size_t sagas_n_test_v2;

#endif
