/* tcheckout.h - checkouts through the shop's edges for the fault suites
 * (issue 23): client threads place an order and pay it (card tok_visa)
 * through several edges, each POST with its own Idempotency-Key, moving to
 * the next edge when one does not answer or answers a 5xx (what a load
 * balancer in front of two edges does), so a repeat may reach the other
 * edge: the idempotency rules of DESIGN hold across instances or the checks
 * find a second order or a second charge.
 *
 * Members are JWTs minted with the harness's key (no sign-up: Argon2id is not
 * what the suites measure); each client has its member and an address.
 * A flow is done when its payment is captured (pay answered 200, or 202 and
 * the order became PAID); the time it was done is kept for the per-phase
 * rates and pauses.
 *
 * Ownership: the caller's tcheckout_run; tcheckout_free() releases it.
 * Threads:   setup and checks on the test's thread (they assert); the clients
 *            never assert, they record what they saw.
 */
#ifndef LAYBY_TESTS_SUPPORT_TCHECKOUT_H
#define LAYBY_TESTS_SUPPORT_TCHECKOUT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/id.h"

#define TCHECKOUT_EDGES_MAX   4
#define TCHECKOUT_CLIENTS_MAX 32
#define TCHECKOUT_PRODUCTS    8
#define TCHECKOUT_AUTH_MAX    2048

typedef struct tcheckout_flow {
    char order[ID_STR_LEN];
    long place_status; /* last answer: 201/202 accepted, 0 never answered */
    long pay_status;   /* 0 = not paid (or never answered) */
    int64_t done_ms;   /* wall clock (lb_now_ms) when captured, 0 = not */
    int repeats;       /* calls repeated after no answer or a 5xx */
    int edge_moves;    /* repeats sent to another edge than the last try */
} tcheckout_flow;

typedef struct tcheckout_member {
    char id[ID_STR_LEN];
    char auth[TCHECKOUT_AUTH_MAX];
    char address[ID_STR_LEN];
} tcheckout_member;

typedef struct tcheckout_run {
    int ports[TCHECKOUT_EDGES_MAX]; /* the edges' HTTP ports */
    int n_ports;
    int n_clients;
    char tag[32]; /* Idempotency-Key prefix: new for each run */
    char products[TCHECKOUT_PRODUCTS][ID_STR_LEN];
    tcheckout_member members[TCHECKOUT_CLIENTS_MAX];
    tcheckout_flow *flows;
    int max_flows;
    atomic_int next_flow, done_flows, paid_flows;
    atomic_llong interval_us;  /* 0 = closed loop (every client at once) */
    atomic_llong next_slot_us; /* pacing: when the next flow may start */
    atomic_bool stop;          /* no new flow */
    atomic_bool abandon;       /* no further call either (a failed test's teardown) */
    bool running;
    pthread_t threads[TCHECKOUT_CLIENTS_MAX];
} tcheckout_run;

/* Products with stock for max_flows orders and n_clients members with an
 * address, through the first edge (asserts). */
void tcheckout_setup(tcheckout_run *r, const int *ports, int n_ports, int n_clients, int max_flows);
/* Starts the clients (closed loop until tcheckout_pace()). */
void tcheckout_start(tcheckout_run *r);
/* From now on a flow starts every 1/per_s s over all clients. */
void tcheckout_pace(tcheckout_run *r, double per_s);
/* Stops the clients once their flows are done; joins them. */
void tcheckout_stop(tcheckout_run *r);
/* Stops the clients at their next call, flows half done (teardown). */
void tcheckout_abandon(tcheckout_run *r);
/* Flows started so far (<= max_flows). */
int tcheckout_started(tcheckout_run *r);
/* Abandons running clients, frees the flows. */
void tcheckout_free(tcheckout_run *r);

#endif
