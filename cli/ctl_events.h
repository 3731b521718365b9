/* ctl_events.h - reading a stream range in order (ctl_events.c), shared by
 * `events replay|tail`, the older `replay` and `events replay --check`
 * (ctl_check.c).
 *
 * Ownership: the message passed to a ctl_msg_fn is destroyed after it returns.
 * Threads:   single-threaded tool.
 */
#ifndef LAYBY_CLI_CTL_EVENTS_H
#define LAYBY_CLI_CTL_EVENTS_H

#include "bus_topology.h"
#include "ctl.h"

/* Which messages: a stream, a subject filter, where to start and stop. */
typedef struct ctl_range {
    const char *stream;
    const char *subject;
    uint64_t from_seq; /* 0 = from since_ms, or the oldest */
    int64_t since_ms;  /* 0 = not set */
    uint64_t until_seq;
    int64_t until_ms;
} ctl_range;

/* Called per message in stream order; false stops the read. */
typedef bool (*ctl_msg_fn)(void *arg, natsMsg *m, uint64_t seq, int64_t time_ns);

/* Reads the range through an ordered consumer, up to the stream's last
 * sequence when the read started. */
lb_status ctl_range_read(jsCtx *js, const ctl_range *rg, ctl_msg_fn fn, void *arg,
                         int64_t timeout_ms, lb_err *err);
const bus_topology_stream *ctl_stream_find(const char *name);

/* `events replay --check` (ctl_check.c): re-decides every saga changed since
 * `since` ("" = all; correlation, type_name "" = any; at most limit, the
 * most recently changed, 0 = all) from its log and
 * compares the commands it decides with those LAYBY_CMD holds. */
int ctl_check_run(const ctl_cmd *cmd, const ctl_conn *conn, const char *since,
                  const char *correlation, const char *type_name, int64_t limit);

#endif
