/* saga_internal.h - helpers the saga_*.c files share and nobody else needs:
 * the decider's context and moves (saga_decide.c), used by the start,
 * operator and signal handlers (saga_decide_ops.c), and the record merge
 * (saga_record.c).
 *
 * Ownership: returned descriptors are static (generated code); a ctx borrows
 *            everything it points to for one saga_decide() call.
 * Threads:   reentrant.
 */
#ifndef LAYBY_ENGINE_SAGA_INTERNAL_H
#define LAYBY_ENGINE_SAGA_INTERNAL_H

#include "saga.h"

/* The event type of t with this full protobuf name ("layby.v1.TestStepDone"),
 * among every step's four events; NULL if t receives no such event. */
const ProtobufCMessageDescriptor *saga__event_find(const saga_type *t, const char *full_name);

/* One decision in progress. */
typedef struct saga__ctx {
    const saga_type *t;
    saga_state *s; /* the new state, a copy of the old one being edited */
    saga_decision *d;
    const saga_input *in;
    lb_status rc; /* an error (not a decision): saga_decide() returns it */
    lb_err *err;
} saga__ctx;

/* Appends to the decision's log line, "; "-separated (cut at SAGA_LOG_MAX). */
void saga__note(saga__ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copies src (NULL = "") into dst of size n; false when it does not fit. */
bool saga__copy_str(char *dst, size_t n, const char *src);
/* Copies text that is only shown to people, cutting what does not fit. */
void saga__copy_text(char *dst, size_t n, const char *src);
void saga__ignore(saga__ctx *c, const char *why);
void saga__applied(saga__ctx *c);
/* Refuses the input: the log says why, the sender is answered code and why
 * (refuse_as: answer instead, for a sender who is not an operator). */
void saga__refuse(saga__ctx *c, lb_status code, const char *why);
void saga__refuse_as(saga__ctx *c, lb_status code, const char *why, const char *answer);
void saga__reply_sender(saga__ctx *c, lb_status code, const char *reason);
void saga__clear_timer(saga__ctx *c);
/* Runs step i, or completes the saga after its last step. */
void saga__advance(saga__ctx *c, uint32_t i);
/* Sends the next compensation attempt of step i. */
void saga__send_comp(saga__ctx *c, uint32_t i);
/* Compensates the highest step at or below `from` that owes it; with none
 * left the saga has rolled back: FAILED, or CANCELLED after a signal. */
void saga__compensate_from(saga__ctx *c, int64_t from);

/* The start, operator and signal inputs (saga_decide_ops.c). */
void saga__on_start(saga__ctx *c);
void saga__on_retry(saga__ctx *c);
void saga__on_resolve(saga__ctx *c);
void saga__on_signal(saga__ctx *c);

/* Steps below this index are never compensated: everything at or below the
 * highest DONE pivot step (0 when there is none). */
uint32_t saga__floor(const saga_type *t, const saga_state *s);
/* A step that took or may have taken effect and has a compensation, above
 * the floor. */
bool saga__owes_compensation(const saga_type *t, const saga_state *s, uint32_t i);

/* Runs step `step`'s merge hook on the event of `in` (saga_record.c). */
lb_status saga__record_merge(saga_state *s, const saga_type *t, uint32_t step, const saga_input *in,
                             lb_err *err);

#endif
