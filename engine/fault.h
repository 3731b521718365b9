/* fault.h - named crash points for tests of what survives a crash.
 *
 * LAYBY_FAULT="<point>[:<n>]" makes the n-th (default first) pass through
 * fault_point("<point>") kill the process with SIGKILL, exactly as a power cut
 * or the OOM killer would at that line. Unset (production), a point costs one
 * predictable branch. Points: svc.after_commit (a batch committed, not acked;
 * every service and the orchestrator), svc.tick_after_commit (a timer tick
 * committed, replies not sent), relay.after_publish (published, not deleted),
 * svc.after_publish (a stateless batch published and acked by JetStream, its
 * inputs not acked).
 *
 * Ownership: none.  Threads: safe; the counter is atomic.
 */
#ifndef LAYBY_ENGINE_FAULT_H
#define LAYBY_ENGINE_FAULT_H

/* Reads LAYBY_FAULT; call once from main() before threads start. */
void fault_init(void);
/* Dies here if LAYBY_FAULT names this point and its count is reached. */
void fault_point(const char *name);

#endif
