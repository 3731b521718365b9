/* saga_drv.h - a driver for the pure saga decider in unit tests
 * (tests/unit/saga_*_test.c): it feeds inputs one at a time and checks each
 * decision against the state it produced (invariants, round trip of the
 * stored form, ignored inputs change nothing), records every input packed as
 * the saga log would, and replays that log to the same decisions.
 *
 * Ownership: drv_new() returns a driver freed by drv_free().
 * Threads:   one test thread.
 */
#ifndef LAYBY_TESTS_SUPPORT_SAGA_DRV_H
#define LAYBY_TESTS_SUPPORT_SAGA_DRV_H

#include "engine/saga.h"

#define SAGA_ID "0190a5c8-7d2e-7c3a-8b1e-3f2a1b4c5d6e"
#define LOG_MAX 128

typedef struct drv {
    const saga_type *t;
    saga_state s;
    saga_decision d;
    int64_t now;
    uint64_t seed;
    char cmds[1024]; /* every command sent: "a1 b1 ~a1" */
    bool fired;
    saga_timer last_fired;
    saga_input last_in;
    uint32_t skip_mask; /* what `start` passes (saga_skips_read()) */
    /* the recorded log */
    size_t n_log;
    uint8_t *log[LOG_MAX];
    size_t log_len[LOG_MAX];
    saga_decision decisions[LOG_MAX];
} drv;

drv *drv_new(const saga_type *t);
void drv_free(drv *v);
/* Decides one input and checks the decision (verdict `want`), then records it. */
void feed(drv *v, const saga_input *in, saga_verdict want);
/* Re-runs the recorded log from nothing: same decisions, same final state. */
void replay_check(const drv *v);
bool timer_eq(const saga_timer *a, const saga_timer *b);
bool state_eq(const saga_state *a, const saga_state *b);
bool decision_eq(const saga_decision *a, const saga_decision *b);
/* "DDF" etc.: one letter per step (P S D F C X K=skipped); U = FAILED and uncertain. */
void steps_string(char *out, const saga_type *t, const saga_state *s);

#endif
