/* saga.h - saga types as data and the pure decider that runs them.
 *
 * A saga type is a table of steps (saga_step): the command each step sends,
 * the events that mean success or failure, an optional compensation and its
 * events, a timeout and retry policies. saga_decide() is a pure function
 *   (type, state, input) -> (new state, decision)
 * where the decision lists the commands to send, the saga's one pending timer,
 * a reply and a log line. It has no clock, no randomness and no I/O: time, a
 * random seed and the durations of the steps (read from settings when the saga
 * starts) come in with the inputs, so the orchestrator can persist the inputs
 * in the saga's log and a replay decides exactly the same again.
 * Three kinds of step (DESIGN §4): a command step sends a command and waits for
 * its outcome events; a wait step sends nothing and waits for an event, its
 * timeout being a failure; a delay step is a durable timer that succeeds when
 * it fires. Signals (cancel, return) reach a running saga by its id and are
 * handled as its type's signal table says. A saga keeps a typed record (one
 * protobuf message per type) that steps' events fill and builders read.
 * docs/SAGAS.md explains the rules; the states and invariants are below.
 *
 * Ownership: saga types, steps and retry policies are static const tables,
 *            borrowed by everything here. saga_state, saga_input and
 *            saga_decision are plain caller memory (no pointers inside the
 *            state; an input's strings are borrowed for the call; a
 *            decision's subjects and descriptors point into the type table).
 *            saga_state_pack() returns a malloc'd buffer the caller free()s;
 *            saga_cmd_build() returns a message the caller frees with
 *            protobuf_c_message_free_unpacked(msg, NULL).
 * Threads:   everything is reentrant; a registry is read-only once filled.
 */
#ifndef LAYBY_ENGINE_SAGA_H
#define LAYBY_ENGINE_SAGA_H

#include <protobuf-c/protobuf-c.h>

#include "id.h"
#include "lb.h"

#define SAGA_STEPS_MAX   24   /* steps in one saga type (order_place has 19) */
#define SAGA_NAME_MAX    64   /* saga type name, with its NUL */
#define SAGA_SUBJECT_MAX 256  /* a reply inbox (= BUS_SUBJECT_MAX) */
#define SAGA_ACTOR_MAX   96   /* Layby-Actor or operator name (= BUS_ACTOR_MAX) */
#define SAGA_TRACE_MAX   64   /* traceparent (= BUS_TRACE_MAX) */
#define SAGA_REASON_MAX  256  /* failure or operator text; longer text is cut */
#define SAGA_LOG_MAX     512  /* one log line; longer text is cut */
#define SAGA_CMDS_MAX    2    /* commands one decision can send */
#define SAGA_RECORD_MAX  4096 /* a saga's packed record */
#define SAGA_BODY_MAX    8192 /* a packed event a record is merged from */

/* Subjects the saga engine itself uses (DESIGN §2). */
#define SAGA_SUBJ_RETRY        "layby.cmd.saga.retry"
#define SAGA_SUBJ_RESOLVE      "layby.cmd.saga.resolve"
#define SAGA_SUBJ_SIGNAL       "layby.cmd.saga.signal"
#define SAGA_SUBJ_START_PREFIX "layby.cmd.saga.start." /* + the type's name */

/* --- states --------------------------------------------------------------- */

/* A saga's status. NONE is the zero value of a state that holds no saga.
 * X(name, terminal, subject of the SagaChanged event announcing it)
 * clang-format off */
#define SAGA_STATUS_MAP(X)                                \
    X(NONE, true, "")                                     \
    X(RUNNING, false, "layby.evt.saga.running")           \
    X(COMPENSATING, false, "layby.evt.saga.compensating") \
    X(COMPLETED, true, "layby.evt.saga.completed")        \
    X(FAILED, true, "layby.evt.saga.failed")              \
    X(STUCK, false, "layby.evt.saga.stuck")               \
    X(RESOLVED, true, "layby.evt.saga.resolved")          \
    X(CANCELLED, true, "layby.evt.saga.cancelled")
/* clang-format on */

typedef enum saga_status {
#define SAGA__ENUM(name, terminal, subject) SAGA_##name,
    SAGA_STATUS_MAP(SAGA__ENUM)
#undef SAGA__ENUM
    SAGA__STATUS_COUNT
} saga_status;

/* One step's progress. "FAILED" with SAGA_STEP_F_RETRY_WAIT is a failed
 * attempt waiting for its backoff timer; without it the step failed for good. */
typedef enum saga_step_status {
    SAGA_STEP_PENDING,      /* not started */
    SAGA_STEP_SENT,         /* command `attempt` sent, waiting for its outcome */
    SAGA_STEP_DONE,         /* a success event arrived */
    SAGA_STEP_FAILED,       /* last attempt failed (see RETRY_WAIT) */
    SAGA_STEP_COMPENSATING, /* compensation `comp_attempt` sent or waiting to be resent */
    SAGA_STEP_COMPENSATED,  /* compensation confirmed */
    SAGA_STEP_SKIPPED,      /* never run: a signal jumped over it, or the saga ended before */
    SAGA__STEP_STATUS_COUNT
} saga_step_status;

/* saga_step_state.flags */
#define SAGA_STEP_F_RETRY_WAIT 0x1u /* last attempt failed; a retry timer is pending */
#define SAGA_STEP_F_UNCERTAIN                                \
    0x2u /* failed without a final answer: it may have taken \
            effect, so it is compensated too */
#define SAGA_STEP_F_EARLY                                      \
    0x4u /* a wait step's success came before the saga reached \
            it (R10): it took effect, and the step is DONE the \
            moment it starts */
#define SAGA_STEP_F_AHEAD                                          \
    0x8u /* its first attempt went with the step before it         \
            (saga_step.ahead) and the saga has not reached it yet: \
            it may take effect, so a rollback undoes it too (R12) */
#define SAGA_STEP_F_REFUSED                                     \
    0x10u /* an AHEAD step's final failure came before the saga \
             reached it: it fails the moment it starts (R12) */
/* saga_state.flags */
#define SAGA_F_REPLIED   0x1u /* the requester has had its one reply */
#define SAGA_F_CANCELLED 0x2u /* a signal rolls it back: it ends CANCELLED, not FAILED */
#define SAGA_F_REPLIED_OK                                           \
    0x4u /* that one reply was OK (a step with .reply, or the end): \
            a repeated START answers OK even if the saga fails later */

typedef struct saga_step_state {
    uint8_t status;        /* saga_step_status */
    uint8_t flags;         /* SAGA_STEP_F_* */
    uint16_t attempt;      /* forward attempts sent; the last one is `attempt` */
    uint16_t tries;        /* forward attempts counted against the retry policy */
    uint16_t comp_attempt; /* compensation attempts sent, never reset */
    uint16_t comp_tries;   /* compensation attempts in the current budget
                              (an operator retry starts a new budget) */
    uint16_t early_code;   /* REFUSED: the failure's lb_status (its text is the
                              saga's fail_reason until the saga gets there) */
} saga_step_state;

typedef enum saga_timer_kind {
    SAGA_TIMER_STEP_TIMEOUT, /* command sent, no outcome yet */
    SAGA_TIMER_STEP_RETRY,   /* backoff after a failed attempt: then resend */
    SAGA_TIMER_COMP_TIMEOUT, /* compensation sent, no outcome yet */
    SAGA_TIMER_COMP_RETRY,   /* backoff after a failed compensation */
    SAGA_TIMER_DELAY,        /* a delay step's timer: the step succeeds when it fires */
    SAGA__TIMER_KIND_COUNT
} saga_timer_kind;

/* A durable timer. A saga has at most one pending; a timer input is acted on
 * only if it equals that one, so stale or duplicated firings change nothing. */
typedef struct saga_timer {
    saga_timer_kind kind;
    uint32_t step;
    uint32_t attempt; /* forward or compensation attempt it belongs to */
    int64_t due_ms;
} saga_timer;

/* Invariants (checked by saga_state_check()):
 * (1) RUNNING: steps before `step` are DONE or SKIPPED, steps after it PENDING
 *     (a wait step among them may carry SAGA_STEP_F_EARLY; the step right
 *     after it may have been sent ahead: AHEAD, attempt 1, and EARLY or
 *     REFUSED once its outcome came);
 *     steps[step] is SENT with timer STEP_TIMEOUT(step, attempt) (DELAY for a
 *     delay step), or FAILED+RETRY_WAIT with timer STEP_RETRY(step, attempt).
 * (2) COMPENSATING: steps before `step` are DONE or SKIPPED; steps[step] is COMPENSATING
 *     with timer COMP_TIMEOUT(step, comp_attempt), or with RETRY_WAIT and timer
 *     COMP_RETRY(step, comp_attempt); steps after it are PENDING, FAILED,
 *     COMPENSATED, SKIPPED, or DONE when they have no compensation.
 * (3) STUCK: as (2) without RETRY_WAIT and without a timer.
 * (4) COMPLETED, FAILED, CANCELLED, RESOLVED: no timer, and nothing changes
 *     them again. COMPLETED: every step DONE or SKIPPED. FAILED, CANCELLED: no
 *     step COMPENSATING, and no step that has a compensation is DONE or
 *     FAILED+UNCERTAIN, except at or below a DONE pivot step (never undone).
 * (5) 0 < tries <= attempt once a step was sent (an EARLY step is compensated
 *     without ever being sent); comp_tries <= comp_attempt;
 *     attempts only grow, so every message and timer names its attempt
 *     unambiguously.
 * (6) At most one command is in flight per saga (two while a step sent ahead
 *     has not answered) and at most one timer exists. */
typedef struct saga_state {
    /* identity, fixed by START */
    char id[ID_STR_LEN];              /* UUIDv7 = Layby-Correlation of everything it sends */
    char type[SAGA_NAME_MAX];         /* saga type name */
    uint32_t version;                 /* type version it started on and always runs on */
    char reply_to[SAGA_SUBJECT_MAX];  /* requester's Layby-Reply, "" = nobody waits */
    char actor[SAGA_ACTOR_MAX];       /* Layby-Actor of the START, carried on commands */
    char traceparent[SAGA_TRACE_MAX]; /* of the START, carried on commands */
    int64_t created_ms;
    /* progress */
    int64_t updated_ms; /* now_ms of the last input that changed something */
    saga_status status;
    uint32_t step;  /* step being run (RUNNING) or compensated (COMPENSATING, STUCK) */
    uint32_t flags; /* SAGA_F_* */
    saga_step_state steps[SAGA_STEPS_MAX];
    bool has_timer;
    saga_timer timer;                     /* the one pending timer, if has_timer */
    lb_status fail_code;                  /* why the saga is rolling back, LB_OK if not */
    char fail_reason[SAGA_REASON_MAX];    /* text of that failure */
    char last_error[SAGA_REASON_MAX];     /* most recent failure of any attempt */
    char resolved_by[SAGA_ACTOR_MAX];     /* operator who resolved it */
    char resolve_reason[SAGA_REASON_MAX]; /* and why */
    char signal[SAGA_NAME_MAX];           /* the last signal accepted, "" = none */
    /* fixed by START: each step's timeout or delay, from the settings of that
     * moment (saga_step.duration), so a replay and a restart use the same */
    int64_t durations_ms[SAGA_STEPS_MAX];
    /* fixed by START: bit i = step i is never run by this saga (saga_step.skip
     * said so of its start command); it is SKIPPED when the saga reaches it */
    uint32_t skip_mask;
    /* the type's record (saga_type.record), packed; record_len 0 = empty */
    uint32_t record_len;
    uint8_t record[SAGA_RECORD_MAX];
} saga_state;

/* --- types ---------------------------------------------------------------- */

/* Retry policy: `attempts` tries in all (>= 1); after a failed try n the next
 * waits saga_backoff_ms(): base_ms * multiplier^(n-1), at most cap_ms, minus up
 * to jitter_pct percent of it so retries of many sagas spread out. */
typedef struct saga_retry {
    uint32_t attempts;
    int64_t base_ms;
    uint32_t multiplier; /* 2 = doubling; 1 = constant */
    int64_t cap_ms;
    uint32_t jitter_pct; /* 0..100 */
} saga_retry;

/* A step's duration read from settings (LAYBY_FAST, per-rule variables),
 * called by the orchestrator when a saga starts; > 0. */
typedef int64_t (*saga_duration_fn)(void);

/* Whether a saga started by `start` (the decoded start command) never runs
 * this step, e.g. the wishlist step of an order not from the wishlist: a
 * decision of the table, instead of a command whose participant does
 * nothing. Called once, when the saga starts (saga_skips_read()); pure. */
typedef bool (*saga_skip_fn)(const ProtobufCMessage *start);

/* What a decision asks to send. */
typedef struct saga_cmd {
    const char *subject;                    /* borrowed from the step table */
    const ProtobufCMessageDescriptor *desc; /* message type to build */
    uint32_t step;
    uint32_t attempt; /* forward or compensation attempt, 1-based */
    bool compensate;
} saga_cmd;

typedef struct saga_type saga_type;

/* The business flow a saga belongs to, read from its start command: the
 * Layby-Correlation of everything the saga sends (DESIGN §2: the order id for
 * order flows) and saga.sagas.correlation, by which `layby-ctl` finds every
 * saga of a flow. NULL (or an invalid id) = the saga's own id. Events find
 * their saga by their saga_id field, never by this. */
typedef const char *(*saga_correlation_fn)(const ProtobufCMessage *start);

/* What a builder sees: all borrowed for the call. */
typedef struct saga_build_in {
    const saga_type *t;
    const saga_state *s;            /* id, durations, updated_ms = time of the input */
    const saga_cmd *cmd;            /* step, attempt, compensate, desc to build */
    const ProtobufCMessage *start;  /* the decoded start command */
    const ProtobufCMessage *record; /* the decoded record; NULL when the type has none */
} saga_build_in;

/* Builds the message of in->cmd. Pure apart from allocating *out. */
typedef lb_status (*saga_build_fn)(ProtobufCMessage **out, const saga_build_in *in, lb_err *err);

/* Copies what a step's event says into the saga's record (decoded, of type
 * saga_type.record), e.g. the reserved lines and prices, the charge id. Runs
 * inside the pure decider, on every forward event of the step that is applied
 * (on_ok, on_fail): deterministic, no I/O. */
typedef lb_status (*saga_merge_fn)(ProtobufCMessage *record, const ProtobufCMessage *event,
                                   lb_err *err);

typedef enum saga_step_kind {
    SAGA_STEP_COMMAND, /* send `command`, wait for on_ok/on_fail; a timeout retries */
    SAGA_STEP_WAIT,    /* send nothing, wait for on_ok (or on_fail); the timeout is a
                          final failure (the payment deadline): earlier steps are undone */
    SAGA_STEP_DELAY,   /* send nothing; succeed when the duration has passed (durable) */
} saga_step_kind;

typedef struct saga_step {
    const char *name;
    saga_step_kind kind; /* 0 = SAGA_STEP_COMMAND */
    /* forward: command (COMMAND steps; NULL = the step only waits for its
     * events, each timeout counting as a failed try) */
    const ProtobufCMessageDescriptor *command;
    const char *subject;
    saga_build_fn build;
    const ProtobufCMessageDescriptor *on_ok;   /* required but for DELAY steps */
    const char *on_ok_subject;                 /* where it arrives: layby.evt.<aggregate>.<name> */
    const ProtobufCMessageDescriptor *on_fail; /* NULL = it cannot fail, only time out */
    const char *on_fail_subject;
    /* COMMAND: per attempt; WAIT: the deadline; DELAY: the delay. duration, when
     * set, is read at START instead (timeout_ms is then only its fallback). */
    int64_t timeout_ms;
    saga_duration_fn duration;
    const saga_retry *retry; /* COMMAND: required; WAIT, DELAY: unused */
    bool reply;              /* answer the requester (OK, RUNNING) once this step is DONE */
    /* The participant's answer to this step's command answers the requester
     * too: until the saga has replied, the command carries the saga's
     * Layby-Reply, so the participant's outcome (svc_emit_answer) reaches a
     * waiting requester one hop before the saga's own reply (R7), which still
     * follows and finds nobody waiting. Only for a COMMAND step whose DONE is
     * that reply (.reply, .ends or the last step) and whose participant
     * answers as the saga would: its success is the saga's, and its refusals
     * are final, with the code the saga fails with (saga_type_check). */
    bool answers;
    bool ends;  /* once DONE the saga COMPLETES; later steps run only after a GOTO signal */
    bool pivot; /* once DONE, neither it nor any earlier step is ever compensated */
    /* NULL = always run. Only for a command step without compensation, reply,
     * ends or pivot: skipping it changes nothing a later step relies on. */
    saga_skip_fn skip;
    /* forward recovery (R11, COMMAND steps): an attempt that fails without a
     * final answer (timeout, transient failure) is retried for ever at the
     * policy's backoff (at most cap_ms once its attempts are spent), never
     * given up and compensated. For steps after the payment: a participant
     * that is merely away delays the order; giving up would compensate while
     * the commands given up on still sit queued and run when it returns. */
    bool forward;
    /* Sent ahead (R12, COMMAND steps but the first): the first attempt of this
     * step goes with the first attempt of the step before it, so the two
     * participants work at once; its outcome is kept until the saga gets
     * here, where it counts as it would have then. Only for a step that does
     * not need the previous step's outcome (its builder reads the start
     * command, not the record) and that the previous step's failure may
     * undo: a rollback that starts before the saga gets here compensates it
     * as a step that may have taken effect. */
    bool ahead;
    saga_merge_fn merge; /* forward events -> record (saga_type.record required) */
    /* compensation (NULL = nothing to undo; DELAY steps have none) */
    const ProtobufCMessageDescriptor *compensate;
    const char *compensate_subject;
    saga_build_fn build_compensate;
    const ProtobufCMessageDescriptor *on_compensated;
    const char *on_compensated_subject;
    const ProtobufCMessageDescriptor *on_compensate_fail;
    const char *on_compensate_fail_subject;
    const saga_retry *compensate_retry; /* NULL = .retry (required for WAIT steps) */
    int64_t compensate_timeout_ms;      /* per attempt; 0 = timeout_ms (required for WAIT) */
} saga_step;

typedef enum saga_signal_action {
    SAGA_SIGNAL_CANCEL, /* undo what is done, in reverse; the saga ends CANCELLED */
    SAGA_SIGNAL_GOTO,   /* leave the current (wait or delay) step, run from step `to` */
} saga_signal_action;

/* One rule of a saga type's signal table: signal `name` received while the
 * saga is RUNNING at a step in [first, last] does `action`. The first rule
 * that matches applies; a signal no rule allows now is refused with the
 * `refused` code of the first rule of that name (LB_ERR_STATE when 0); a
 * signal the type does not know is refused LB_ERR_INVALID. The sender is
 * answered as soon as it is decided (SagaOutcome, status COMPENSATING,
 * CANCELLED or RUNNING), not when the compensation finished; the same signal
 * again, once accepted, is answered OK and changes nothing. */
typedef struct saga_signal {
    const char *name; /* "cancel", "return" */
    uint32_t first, last;
    saga_signal_action action;
    uint32_t to;       /* GOTO: the step to run next (> last) */
    lb_status code;    /* CANCEL: the failure the requester is told if still waiting
                          (0 = LB_ERR_STATE) */
    lb_status refused; /* the answer when no rule of this name allows it now */
    /* That answer's text, for whoever sent the signal (a buyer, over HTTP);
     * NULL = the engine's, which names the saga's status and step. The saga's
     * log names them either way. */
    const char *refused_text;
} saga_signal;

struct saga_type {
    const char *name;
    uint32_t version;
    const ProtobufCMessageDescriptor *start; /* the command that starts one, on
                                                layby.cmd.saga.start.<name> */
    const saga_step *steps;
    size_t n_steps;
    const saga_signal *signals; /* NULL = accepts no signal */
    size_t n_signals;
    const ProtobufCMessageDescriptor *record; /* the saga's record; NULL = none */
    saga_correlation_fn correlation;          /* NULL = the saga's id */
};

/* --- inputs and decisions ------------------------------------------------- */

typedef enum saga_input_kind {
    SAGA_IN_START,   /* the start command: saga_id, reply_to, actor, traceparent */
    SAGA_IN_EVENT,   /* a participant's event: event, step, attempt, final, code, reason */
    SAGA_IN_TIMER,   /* a durable timer fired: timer, step, attempt */
    SAGA_IN_RETRY,   /* operator: actor, reason */
    SAGA_IN_RESOLVE, /* operator: actor, reason */
    SAGA_IN_SIGNAL,  /* signal: signal, actor, reason */
    SAGA__INPUT_KIND_COUNT
} saga_input_kind;

typedef struct saga_input {
    saga_input_kind kind;
    int64_t now_ms;          /* the orchestrator's time for this input: the decider has no clock */
    uint64_t seed;           /* randomness for jitter, recorded so a replay decides the same */
    const char *msg_id;      /* Nats-Msg-Id, for the log; NULL or "" for timers */
    const char *saga_id;     /* START */
    const char *reply_to;    /* START: requester inbox; NULL/"" = nobody waits */
    const char *actor;       /* START: Layby-Actor; RETRY/RESOLVE: the operator */
    const char *traceparent; /* START */
    const ProtobufCMessageDescriptor *event; /* EVENT: its type */
    uint32_t step;                           /* EVENT, TIMER: 0-based step index */
    uint32_t attempt;                        /* EVENT, TIMER: 1-based; 0 = not said */
    bool final;                              /* EVENT: a failure that retrying cannot change */
    lb_status code;                          /* EVENT: status of a failure (LB_OK = unspecified) */
    const char *reason;                      /* EVENT: failure text; RETRY/RESOLVE/SIGNAL: why */
    saga_timer_kind timer;                   /* TIMER */
    const char *signal;                      /* SIGNAL: its name */
    /* START: each step's duration (saga_durations_read()); n = the type's steps.
     * NULL or 0 = the step's timeout_ms. */
    const int64_t *durations_ms;
    size_t n_durations;
    uint32_t skip_mask; /* START: the steps this saga skips (saga_skips_read()) */
    /* EVENT: the packed event, when a step's merge hook will read it */
    const uint8_t *body;
    size_t body_len;
} saga_input;

typedef enum saga_verdict {
    SAGA_APPLIED, /* the state changed: store it and the decision */
    SAGA_IGNORED, /* stale, duplicate or out of place: nothing changes (log says why) */
    SAGA_REFUSED, /* an operator command not allowed now: reply, nothing changes */
} saga_verdict;

typedef enum saga_timer_op {
    SAGA_TIMER_KEEP,  /* leave the saga's pending timer as it is */
    SAGA_TIMER_SET,   /* replace it by decision.timer */
    SAGA_TIMER_CLEAR, /* the saga has no timer any more */
} saga_timer_op;

typedef struct saga_reply {
    bool send;
    bool to_sender;   /* reply to the input's Layby-Reply (operator commands, repeated
                         START), not to the saga's requester (state.reply_to) */
    lb_status status; /* LB_OK -> SagaOutcome; otherwise a Failure with this code */
    char reason[SAGA_REASON_MAX];
} saga_reply;

/* Everything one input causes. Turn it into effects, in one transaction with
 * the saga row and the log row: cmds -> svc_emit(), timer -> the timer table,
 * reply -> svc_reply(), status change -> SagaChanged on saga_status_subject(). */
typedef struct saga_decision {
    saga_verdict verdict;
    saga_status from, to; /* saga status before and after */
    size_t n_cmds;
    saga_cmd cmds[SAGA_CMDS_MAX];
    saga_timer_op timer_op;
    saga_timer timer; /* when timer_op == SAGA_TIMER_SET */
    saga_reply reply;
    char log[SAGA_LOG_MAX]; /* what happened, for the saga's log */
    bool forward_retry;     /* a forward step (saga_step.forward) is retried past its
                               policy's attempts: the orchestrator reports it */
} saga_decision;

/* Decides one input. `in` is the stored state, NULL when no saga with that id
 * exists (only START creates one). *out receives the new state (equal to *in
 * unless d->verdict is SAGA_APPLIED; all zero, status SAGA_NONE, when in is
 * NULL and nothing was created); out may alias in. t must be the type the
 * saga runs on (saga_registry_find() with in->type and in->version), or for a
 * START the latest version (saga_registry_latest()).
 * Stale, duplicated and early inputs are decisions too (IGNORED), not errors;
 * errors are LB_ERR_INVALID for a type/state mismatch or a broken state. */
lb_status saga_decide(saga_state *out, saga_decision *d, const saga_type *t, const saga_state *in,
                      const saga_input *input, lb_err *err);

/* Delay before the try after failed try `attempt` (1-based). Pure. */
int64_t saga_backoff_ms(const saga_retry *r, uint32_t attempt, uint64_t seed);

/* Checks invariants (1)-(6) of s against t; LB_ERR_INVALID names the first one
 * broken. */
lb_status saga_state_check(const saga_type *t, const saga_state *s, lb_err *err);

/* Fills an event input from a decoded participant event: its type, and the
 * fields step, attempt, final, code (lb.h snake_case) and reason when the
 * message has them. A message without `step` must name one step of t
 * unambiguously by its type. LB_ERR_INVALID when it belongs to no step. */
lb_status saga_event_read(saga_input *in, const saga_type *t, const ProtobufCMessage *ev,
                          lb_err *err);

/* Builds the message of a decided command (the step's build function), with
 * the saga's record decoded for it. */
lb_status saga_cmd_build(ProtobufCMessage **out, const saga_type *t, const saga_state *s,
                         const saga_cmd *cmd, const ProtobufCMessage *start, lb_err *err);

/* Fills out[0..t->n_steps) with each step's duration now: its duration
 * function, else its timeout_ms. For the START input (saga_input.durations_ms). */
void saga_durations_read(int64_t *out, const saga_type *t);

/* The steps a saga started by `start` skips (bit i = step i, saga_step.skip).
 * For the START input (saga_input.skip_mask), like the durations. */
uint32_t saga_skips_read(const saga_type *t, const ProtobufCMessage *start);

/* The saga's record decoded (*out is the caller's: free with
 * protobuf_c_message_free_unpacked(*out, NULL)); an empty record when nothing
 * was merged yet; *out = NULL when the type keeps none. */
lb_status saga_record_get(ProtobufCMessage **out, const saga_type *t, const saga_state *s,
                          lb_err *err);

/* Whether a step's events must come with their body (saga_input.body). */
bool saga_step_merges(const saga_type *t, uint32_t step);

/* The signal rule that applies to signal `name` in state s, NULL if none. */
const saga_signal *saga_signal_find(const saga_type *t, const saga_state *s, const char *name);

const char *saga_status_name(saga_status s);    /* "RUNNING" */
const char *saga_status_subject(saga_status s); /* "layby.evt.saga.running", "" for NONE */
bool saga_status_terminal(saga_status s);
/* Reverse of saga_status_name(); SAGA_NONE when unknown. */
saga_status saga_status_from_name(const char *name);
const char *saga_step_status_name(saga_step_status s); /* "SENT" */
const char *saga_timer_kind_name(saga_timer_kind k);   /* "STEP_TIMEOUT" */
const char *saga_input_kind_name(saga_input_kind k);   /* "EVENT" */
const char *saga_step_kind_name(saga_step_kind k);     /* "DELAY" */

/* --- registry ------------------------------------------------------------- */

/* The saga types an orchestrator knows, keyed by (name, version). New sagas
 * start on a name's latest version; a saga in flight keeps its own, so its
 * version must stay registered until no saga of it is unfinished. */
typedef struct saga_registry {
    const saga_type *const *types; /* borrowed table */
    size_t n_types;
} saga_registry;

/* Checks every type (steps, descriptors, policies) and that no (name, version)
 * repeats; the table is borrowed. */
lb_status saga_registry_init(saga_registry *r, const saga_type *const *types, size_t n,
                             lb_err *err);
const saga_type *saga_registry_find(const saga_registry *r, const char *name, uint32_t version);
const saga_type *saga_registry_latest(const saga_registry *r, const char *name);
/* The type a stored saga runs on; LB_ERR_NOT_FOUND if that version is gone. */
lb_status saga_registry_for(const saga_type **out, const saga_registry *r, const saga_state *s,
                            lb_err *err);
/* Checks one type's table. */
lb_status saga_type_check(const saga_type *t, lb_err *err);
/* The correlation of saga `id` of type t started by `start` (may be NULL):
 * t->correlation's answer when it is a valid id, else id. Borrowed. */
const char *saga_correlation(const saga_type *t, const char *id, const ProtobufCMessage *start);

/* --- stored forms (layby.v1.SagaState, layby.v1.SagaInput) ----------------- */

/* Packs s; *out is malloc'd, the caller free()s it. */
lb_status saga_state_pack(uint8_t **out, size_t *out_len, const saga_state *s, lb_err *err);
/* Unpacks what saga_state_pack() wrote; LB_ERR_DECODE for garbage, out-of-range
 * values or strings too long. *out is untouched on error. */
lb_status saga_state_unpack(saga_state *out, const uint8_t *buf, size_t len, lb_err *err);

/* An input with the storage for its strings, as read back from a saga's log.
 * in points into the record itself: use it in place, never copy a record. */
typedef struct saga_input_rec {
    saga_input in; /* its pointers point into the buffers below */
    char msg_id[ID_STR_LEN];
    char saga_id[ID_STR_LEN];
    char reply_to[SAGA_SUBJECT_MAX];
    char actor[SAGA_ACTOR_MAX];
    char traceparent[SAGA_TRACE_MAX];
    char reason[SAGA_REASON_MAX];
    char signal[SAGA_NAME_MAX];
    int64_t durations_ms[SAGA_STEPS_MAX];
    uint8_t body[SAGA_BODY_MAX];
} saga_input_rec;

/* Packs an input for the saga's log; *out is malloc'd, the caller free()s it. */
lb_status saga_input_pack(uint8_t **out, size_t *out_len, const saga_input *in, lb_err *err);
/* Unpacks a logged input of a saga of type t (its event type is looked up among
 * t's events). LB_ERR_DECODE for garbage or an event type t does not know. */
lb_status saga_input_unpack(saga_input_rec *out, const saga_type *t, const uint8_t *buf, size_t len,
                            lb_err *err);

#endif
