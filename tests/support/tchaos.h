/* tchaos.h - the faults of the chaos run (issue 22) and its timeline.
 *
 * tests/e2e/chaos_test.c drives the shop; this module plans and causes the
 * faults (a daemon's SIGKILL, one of two instances killed, nats-server
 * SIGKILLed, PostgreSQL stopped with `-m immediate`, a service's database
 * sessions cut with pg_terminate_backend) and keeps the per-second counts
 * that bench/chaos_plot.py turns into a picture and recovery times.
 *
 * A plan is a function of its random stream only (a seed replays it). Every
 * fault runs on the test's thread (tsupport rules: failures assert); the
 * counters are atomic and may be bumped from any thread.
 */
#ifndef LAYBY_TESTS_SUPPORT_TCHAOS_H
#define LAYBY_TESTS_SUPPORT_TCHAOS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- randomness: splitmix64 ---------------------------------------------------- */

uint64_t tchaos_mix64(uint64_t *s);
/* A number in [0, n). */
int tchaos_pick(uint64_t *s, int n);

/* --- the plan ------------------------------------------------------------------ */

typedef enum tchaos_kind {
    TCHAOS_KILL,      /* SIGKILL a daemon (target), restarted after 0-500 ms */
    TCHAOS_TWIN_KILL, /* SIGKILL one of two instances; the other carries on */
    TCHAOS_NATS_KILL, /* SIGKILL nats-server, restarted after 1-3 s */
    TCHAOS_PG_CRASH,  /* pg_ctl stop -m immediate, restarted after 1-3 s */
    TCHAOS_PG_CUT,    /* pg_terminate_backend of one service's sessions, 3 times */
} tchaos_kind;

typedef struct tchaos_event {
    int64_t at_ms; /* from the start of the load */
    tchaos_kind kind;
    int target; /* KILL: which daemon; TWIN_KILL: which instance; PG_CUT: which role */
} tchaos_event;

#define TCHAOS_EVENTS_MAX 256

/* Faults from start_ms to end_ms, one every gap_min_ms..gap_max_ms; each
 * special fault (two nats-server kills, one PostgreSQL crash, one twin kill,
 * three cuts) takes the slot nearest its share of the window, the rest are
 * KILLs of a random one of n_targets daemons. cuts draws a role among
 * n_roles. Returns the number of events (sorted by time), at most cap. */
size_t tchaos_plan(tchaos_event *out, size_t cap, uint64_t *rng, int64_t start_ms, int64_t end_ms,
                   int gap_min_ms, int gap_max_ms, int n_targets, int n_roles);
const char *tchaos_kind_name(tchaos_kind k);
/* True when the plan holds every kind of fault at least once. */
bool tchaos_plan_complete(const tchaos_event *ev, size_t n);

/* --- the faults that are no daemon's ---------------------------------------------- */

/* SIGKILL the harness's nats-server and wait until it is gone (then
 * tsupport_nats_start() brings it back with its data). */
void tchaos_nats_kill(void);
/* pg_ctl stop -m immediate: every backend dies, no checkpoint (then
 * tsupport_pg_start() runs the crash recovery). */
void tchaos_pg_crash(void);
/* pg_terminate_backend() on every session of the role; how many. */
int tchaos_pg_cut(const char *role);

/* --- the timeline ------------------------------------------------------------------ */

typedef struct tchaos_rate {
    int64_t t0_ms;
    int n_secs;
    atomic_int *answered; /* requests answered (not 5xx, not unanswered), per second */
    atomic_int *accepted; /* orders accepted (201/202), per second */
} tchaos_rate;

void tchaos_rate_init(tchaos_rate *r, int64_t t0_ms, int n_secs);
void tchaos_rate_free(tchaos_rate *r);
/* One more in this second (any thread). */
void tchaos_rate_answered(tchaos_rate *r);
void tchaos_rate_accepted(tchaos_rate *r);
/* Writes `sec,answered,accepted` lines for seconds [0, upto_s) to path. */
bool tchaos_rate_write(const tchaos_rate *r, int upto_s, const char *path);

#endif
