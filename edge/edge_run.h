/* edge_run.h - what each kind of route does (the table in edge_run.c), for
 * the runner and the OpenAPI generator alike, and the runner's pure body
 * decoding.
 *
 * Ownership: static const data.
 * Threads:   reentrant.
 */
#ifndef LAYBY_EDGE_EDGE_RUN_H
#define LAYBY_EDGE_EDGE_RUN_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

#include "edge_routes.h"

typedef struct edge_kind_info {
    const char *name; /* "command" */
    bool command;     /* JetStream command with a reply inbox; else a core request */
    bool pending_202; /* no outcome in time: 202 PENDING (the command is stored) */
    size_t wait_cfg;  /* offsetof(edge_cfg, ...): how long to wait for the outcome */
} edge_kind_info;

/* The row of kind k (LOCAL's for an out-of-range k). */
const edge_kind_info *edge_kind_info_of(edge_kind k);

/* Pure: decodes the JSON text of a body that is rt's request itself (no
 * body_field), refusing keys of fields the row's binds fill: the token's
 * member id or the path's id can never come from the body (unknown_field). */
lb_status edge_run_body_decode(ProtobufCMessage **out, const edge_route *rt, const char *text,
                               size_t len, lb_err *err);

#endif
