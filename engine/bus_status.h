/* bus_status.h - what the JetStream side of the shop looks like right now,
 * as JSON, for `layby-ctl status` and the console's Overview
 * (GET /api/v1/admin/overview): each stream of engine/bus_topology.c (messages,
 * bytes, replicas, its cluster leader), each durable (pending, ack pending,
 * redelivered), and each NATS server the connection knows (name, version,
 * JetStream), read from the INFO line a server sends to whoever connects.
 *
 * Reads only: stream and consumer infos, no consumer created.
 * Ownership: the json_t returned are the caller's.
 * Threads:   any (over a thread-safe jsCtx / natsConnection).
 */
#ifndef LAYBY_ENGINE_BUS_STATUS_H
#define LAYBY_ENGINE_BUS_STATUS_H

#include <jansson.h>
#include <nats/nats.h>
#include <stdint.h>

#include "lb.h"

/* [{name, ok, messages, bytes, lastSeq, replicas, leader}] in the topology's
 * order; a stream the server lacks is {name, ok:false}. *dlq_msgs is
 * LAYBY_DLQ's message count (0 when it is missing). */
json_t *bus_status_streams(jsCtx *js, uint64_t *dlq_msgs);
/* [{stream, name, ok, pending, ackPending, redelivered}], one per durable of
 * the topology; a missing durable is {stream, name, ok:false}. */
json_t *bus_status_durables(jsCtx *js);
/* [{url, connected, ok, name, version, jetstream, cluster} or {url, ok:false,
 * error}], one per server URL nc knows (given and discovered); each is asked
 * over a connection of its own that reads the INFO line and closes, waiting
 * at most timeout_ms. */
json_t *bus_status_servers(natsConnection *nc, int64_t timeout_ms);

#endif
