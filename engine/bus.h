/* bus.h - NATS JetStream: connection, the message envelope, publishing, queries.
 *
 * Every message layby sends is one protobuf body plus the DESIGN §2 headers.
 * Only bus_envelope_init() decides those headers; everything that publishes
 * goes through a bus_envelope, so ids, correlation, causation, actor and
 * traceparent are carried the same way everywhere.
 *
 * Ownership: bus_open() returns a bus freed with bus_close(); natsMsg values
 *            returned to callers are theirs to natsMsg_Destroy().
 * Threads:   a bus (one natsConnection + jsCtx) is thread-safe, as nats.c is.
 */
#ifndef LAYBY_ENGINE_BUS_H
#define LAYBY_ENGINE_BUS_H

#include <nats/nats.h>
#include <protobuf-c/protobuf-c.h>

#include "id.h"
#include "lb.h"

#define BUS_SUBJECT_MAX 256
#define BUS_TYPE_MAX    128
#define BUS_ACTOR_MAX   96
#define BUS_TRACE_MAX   64 /* "00-<32 hex>-<16 hex>-<2 hex>" is 55 */

/* Header names (DESIGN §2) and the extra ones a dead letter carries. */
#define BUS_H_MSG_ID          "Nats-Msg-Id"
#define BUS_H_TYPE            "Layby-Type"
#define BUS_H_CORRELATION     "Layby-Correlation"
#define BUS_H_CAUSATION       "Layby-Causation"
#define BUS_H_REPLY           "Layby-Reply"
#define BUS_H_ACTOR           "Layby-Actor"
#define BUS_H_TRACEPARENT     "traceparent"
#define BUS_H_DLQ_SUBJECT     "Layby-Dlq-Subject"
#define BUS_H_DLQ_CONSUMER    "Layby-Dlq-Consumer"
#define BUS_H_DLQ_ERROR       "Layby-Dlq-Error"
#define BUS_H_DLQ_STREAM_SEQ  "Layby-Dlq-Stream-Seq"
#define BUS_H_DLQ_DELIVERIES  "Layby-Dlq-Deliveries"
#define BUS_H_DLQ_ORIGINAL_ID "Layby-Dlq-Original-Id" /* the dead message's Nats-Msg-Id */

/* Streams (DESIGN §2). */
#define BUS_STREAM_CMD "LAYBY_CMD"
#define BUS_STREAM_EVT "LAYBY_EVT"
#define BUS_STREAM_DLQ "LAYBY_DLQ"

typedef struct bus_envelope {
    char msg_id[ID_STR_LEN];         /* Nats-Msg-Id */
    char type[BUS_TYPE_MAX];         /* Layby-Type, full protobuf name */
    char correlation[ID_STR_LEN];    /* Layby-Correlation ("" = none) */
    char causation[ID_STR_LEN];      /* Layby-Causation ("" = none) */
    char reply[BUS_SUBJECT_MAX];     /* Layby-Reply ("" = nobody waits) */
    char actor[BUS_ACTOR_MAX];       /* Layby-Actor "<member id> <ROLE>" ("" = system) */
    char traceparent[BUS_TRACE_MAX]; /* W3C trace context ("" = none) */
} bus_envelope;

/* Starts the envelope of a new message of type `type`: a fresh msg id; when
 * `cause` is given, correlation, actor and traceparent are carried over and
 * causation is the cause's msg id; otherwise correlation is the new msg id.
 * The reply inbox is never inherited: set env->reply explicitly. */
void bus_envelope_init(bus_envelope *env, const ProtobufCMessageDescriptor *type,
                       const bus_envelope *cause);
/* Reads the headers of a received message. A missing Nats-Msg-Id or Layby-Type
 * is LB_ERR_DECODE (such a message cannot be handled exactly once). */
lb_status bus_envelope_read(bus_envelope *env, natsMsg *m, lb_err *err);
/* Writes env as headers onto m. */
lb_status bus_envelope_write(natsMsg *m, const bus_envelope *env, lb_err *err);
/* Parses a W3C traceparent; LB_ERR_INVALID if malformed. */
lb_status bus_traceparent_check(const char *tp, lb_err *err);
/* Makes a new sampled traceparent (for requests that arrive without one). */
void bus_traceparent_new(char out[BUS_TRACE_MAX]);

/* Most servers a URL list may name (a cluster is 3 or 5 nodes; the client
 * learns the others from the server once connected). */
#define BUS_SERVERS_MAX 16

typedef struct bus_opts {
    const char *url;  /* nats://127.0.0.1:4222, or a comma-separated list of a cluster's nodes */
    const char *user; /* NULL or "" = anonymous */
    const char *password;
    const char *name;         /* connection name shown by the server */
    int64_t publish_wait_ms;  /* JetStream publish ack wait (default 5000) */
    int64_t max_pending;      /* async publishes in flight (default 4096) */
    int64_t publish_retry_ms; /* bus_publish() retries an unanswered publish this long (15000) */
} bus_opts;
#define BUS_OPTS_INIT                                \
    {                                                \
        .publish_wait_ms = 5000, .max_pending = 4096 \
    }

typedef struct bus bus;

/* Gives o the servers of `urls`, a comma-separated list (blanks around each
 * URL ignored), as natsOptions_SetServers() takes them: the client connects to
 * any, and on a node's loss reconnects to another. LB_ERR_CONFIG for an empty
 * list, an empty item or more than BUS_SERVERS_MAX. Used by the daemons
 * (bus_open) and layby-ctl, so LAYBY_NATS_URL means the same to both. */
lb_status bus_servers_set(natsOptions *o, const char *urls, lb_err *err);
/* Splits urls like bus_servers_set() into out[] (pointers into buf, which
 * must hold strlen(urls) + 1 bytes); *n is the count. */
lb_status bus_servers_split(char *buf, size_t cap, const char *urls, const char **out, int *n,
                            lb_err *err);

/* Connects with unlimited reconnects (retrying a first connect that fails). */
lb_status bus_open(bus **out, const bus_opts *opts, lb_err *err);
/* Waits for the bus's own async publishes, then closes the connection, which
 * joins nats.c's reader thread: after it, subscriptions and JetStream
 * contexts made on this bus can be destroyed without a delivery racing them
 * (nats.c 3.4.1 crashed in natsConn_processMsg when they were destroyed on a
 * live connection). Once; bus_close() calls it if not done. NULL is a no-op. */
void bus_disconnect(bus *b);
void bus_close(bus *b); /* NULL is a no-op; flushes pending async publishes first */

/* engine/bus_libnats.c takes the place of two functions of libnats 3.4.1 to
 * mend two of its bugs: a subscription freed under the reader thread (a
 * subscription destroyed, or a connection closed, while a message for it
 * arrives: each is now freed half a second later), and a connect that spins
 * forever on a server that went quiet after its INFO. bus_open() calls
 * bus_libnats_init(), which fails only if the library lacks either function.
 * bus_libnats_releases_pending() counts the releases still waiting (tests). */
lb_status bus_libnats_init(lb_err *err);
size_t bus_libnats_releases_pending(void);
/* Waits up to wait_ms for js's pending async publishes, then destroys it (NULL: no-op). */
void bus_js_destroy(jsCtx *js, int64_t wait_ms);
natsConnection *bus_conn(bus *b);
jsCtx *bus_js(bus *b);
bool bus_connected(bus *b);

/* Builds a natsMsg carrying msg under env; on LB_OK *out is the caller's. */
lb_status bus_msg_new(natsMsg **out, const char *subject, const bus_envelope *env,
                      const ProtobufCMessage *msg, lb_err *err);
/* Same with an already-packed body. */
lb_status bus_msg_new_raw(natsMsg **out, const char *subject, const bus_envelope *env,
                          const void *body, size_t len, lb_err *err);

/* Publishes to JetStream and waits for the stored ack. A timeout is ambiguous
 * (the message may be stored), and while a node dies or the stream elects a
 * leader the publish gets no answer (timeout, no responders) or "JetStream
 * temporarily unavailable": bus_publish() itself sends the same message with
 * the same Nats-Msg-Id again, every 100 ms up to bus_opts.publish_retry_ms, so
 * the stream's duplicate window (2 min) drops a repeat that was stored. Other
 * failures and the last one return at once; retrying with the same env is
 * still safe within the window. */
lb_status bus_publish(bus *b, const char *subject, const bus_envelope *env,
                      const ProtobufCMessage *msg, lb_err *err);
/* Core NATS publish (replies to a waiting edge request); no persistence. */
lb_status bus_publish_core(bus *b, const char *subject, const bus_envelope *env,
                           const ProtobufCMessage *msg, lb_err *err);

/* A query (DESIGN §2 request/reply): sends req on subject, waits timeout_ms.
 * On LB_OK *reply is the caller's natsMsg. No responders is LB_ERR_UNAVAILABLE. */
lb_status bus_request(natsMsg **reply, bus *b, const char *subject, const bus_envelope *env,
                      const ProtobufCMessage *req, int64_t timeout_ms, lb_err *err);

/* Sends a command to JetStream with a fresh reply inbox in Layby-Reply and
 * waits up to timeout_ms for the outcome. LB_ERR_TIMEOUT means the command is
 * stored (or may be) but nobody answered in time: it will still be handled. */
lb_status bus_command(natsMsg **reply, bus *b, const char *subject, bus_envelope *env,
                      const ProtobufCMessage *cmd, int64_t timeout_ms, lb_err *err);

/* Fetches up to batch messages from a pull subscription, waiting at most
 * wait_ms for the first. LB_OK fills *list (natsMsgList_Destroy() it);
 * LB_ERR_TIMEOUT when nothing came; the status of bus__nats_err() otherwise.
 * b (may be NULL) is the subscription's bus: while it is disconnected, this
 * waits instead of fetching.
 * Why not natsSubscription_Fetch(sub, batch) alone: in nats.c 3.4 (Debian
 * 12), when messages already wait in the subscription, Fetch takes them,
 * lowers its target by their number and, if they were more than half the
 * batch, keeps adding messages past the end of its array for as long as
 * answers to other pull requests keep coming (heap corruption; fixed
 * upstream in 3.9). Asking for exactly the number waiting is not enough:
 * status messages (408) count as waiting but are not taken, and more answers
 * stream in between the count and Fetch's own. So:
 *  - messages waiting: taken one Fetch(1) at a time (a target of 1 cannot
 *    be passed), up to batch, and no request is sent;
 *  - nothing waiting, disconnected: no Fetch. Each Fetch sends a pull
 *    request; those sent while disconnected wait in the reconnect buffer
 *    and were all answered at once after it, a stream of up to batch
 *    messages each into the subscription while the next Fetch(batch) ran:
 *    the twin orchestrator of the chaos run died of it with SIGSEGV after a
 *    nats-server restart (tests/integration/bus_fetch_test.c);
 *  - nothing waiting, connected: Fetch(batch). Its answers end with its
 *    wait (the request expires 10 ms before it on the server), so only a
 *    request still answered after its Fetch gave up (a server stalled past
 *    the wait) could stream into the next one.
 * One thread per subscription, as Fetch itself requires. */
lb_status bus_fetch(natsMsgList *list, bus *b, natsSubscription *sub, int batch, int64_t wait_ms,
                    lb_err *err);

/* Decodes a reply: Layby-Type names either `want` (-> *out, LB_OK) or
 * layby.v1.Failure (-> its status, message and field in err). */
lb_status bus_reply_decode(ProtobufCMessage **out, natsMsg *reply,
                           const ProtobufCMessageDescriptor *want, lb_err *err);
/* The same for a reply that may be any of wants[0..n) (a saga start's: the
 * saga's outcome, or its answering step's event); (*out)->descriptor says
 * which. */
lb_status bus_reply_decode_any(ProtobufCMessage **out, natsMsg *reply,
                               const ProtobufCMessageDescriptor *const *wants, size_t n,
                               lb_err *err);

/* Copies the last nats.c error text (nats_GetLastError) into err. */
lb_status bus__nats_err(lb_err *err, natsStatus s, const char *what);

#ifdef LAYBY_TEST_HOOKS
/* A bus without NATS, for fuzzing the edge (fuzz/fuzz_edge_request.c): every
 * bus_request() and bus_command() calls fn with what would have been sent
 * (command tells which), and fn's status and *reply are the call's. Nothing
 * else works on it (bus_js() and bus_conn() are NULL, bus_connected() false).
 * Test builds only. */
typedef lb_status (*bus_capture_fn)(natsMsg **reply, void *ctx, const char *subject,
                                    const bus_envelope *env, const ProtobufCMessage *msg,
                                    bool command, lb_err *err);
lb_status bus_capture_new(bus **out, bus_capture_fn fn, void *ctx, lb_err *err);
#endif

#endif
