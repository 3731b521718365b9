/* bus_json.h - a stored message as JSON: seq, time, subject, headers, type
 * and body (the message decoded by its Layby-Type, proto3 JSON), or
 * bodyBase64 and error when it cannot be decoded.
 *
 * bus_json_write() appends it to b as one compact object (no newline; nothing
 * on error), without a jansson tree: what `layby-ctl events replay` writes per
 * message. bus_json_tree() is the same as a tree the caller json_decref()s.
 *
 * Threads: any; the caches they reuse are per thread.
 */
#ifndef LAYBY_ENGINE_BUS_JSON_H
#define LAYBY_ENGINE_BUS_JSON_H

#include <jansson.h>
#include <nats/nats.h>
#include <stdint.h>

#include "codec.h"
#include "lb.h"

lb_status bus_json_write(codec_buf *b, natsMsg *m, uint64_t seq, int64_t time_ns);
json_t *bus_json_tree(natsMsg *m, uint64_t seq, int64_t time_ns);

#endif
