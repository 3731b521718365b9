/* fault.h - named crash points for tests of what survives a crash.
 *
 * Test builds only (CMake option LAYBY_TEST_HOOKS, on for Debug and Asan).
 * LAYBY_FAULT="<point>[:<n>]" makes the n-th (default first) pass through
 * fault_point("<point>") kill the process with SIGKILL, exactly as a power cut
 * or the OOM killer would at that line. Unset, a point costs one predictable
 * branch; in Release it is not there at all. Points: svc.after_commit (a batch
 * committed, not acked; every service and the orchestrator), svc.tick_after_commit (a timer tick
 * that sent something committed, its rows not handed to the relay), relay.after_publish (published,
 * not deleted), svc.after_publish (a stateless batch published and acked by JetStream, its inputs
 * not acked), mailer.after_send (a mail handed to SMTP or the mailbox, its command not committed).
 * A hold point does not kill: while LAYBY_FAULT names it, fault_held() is true and the code there
 * holds its work back. Hold points: relay.hold (the relay's lanes publish nothing, so what a clean
 * stop publishes is visibly the final drain's), edge.idem_slow (the edge records an
 * Idempotency-Key outcome 200 ms late).
 *
 * Ownership: none.  Threads: safe; the counter is atomic.
 */
#ifndef LAYBY_ENGINE_FAULT_H
#define LAYBY_ENGINE_FAULT_H

#include <stdbool.h>

#ifdef LAYBY_TEST_HOOKS
/* Reads LAYBY_FAULT; call once from main() before threads start. */
void fault_init(void);
/* Dies here if LAYBY_FAULT names this point and its count is reached. */
void fault_point(const char *name);
/* True if LAYBY_FAULT names this hold point. */
bool fault_held(const char *name);
#else
/* Release builds (CMake LAYBY_TEST_HOOKS off): no crash points, LAYBY_FAULT
 * is never read, and a point compiles to nothing. */
#define fault_init()      ((void)0)
#define fault_point(name) ((void)0)
#define fault_held(name)  false
#endif

#endif
