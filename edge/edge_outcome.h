/* edge_outcome.h - an answer being built before it is sent: status, body
 * text and Location.
 *
 * An answer that Idempotency-Key must remember has to exist as text before it
 * goes on the wire, so the route runner and any hook or LOCAL handler that
 * sends a bus message build an edge_outcome, send it, then hand the same text
 * to edge_idem_finish(). These helpers are the one place that turns a reply
 * message, a failure or a bus fault into an outcome.
 *
 * Ownership: an edge_outcome lives on the caller's stack; its body is freed by
 *            edge_outcome_destroy().
 * Threads:   any civetweb worker; nothing shared.
 */
#ifndef LAYBY_EDGE_EDGE_OUTCOME_H
#define LAYBY_EDGE_EDGE_OUTCOME_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "edge_http.h"
#include "lb.h"

#define EDGE_LOCATION_MAX 192 /* a Location path such as "/api/v1/products/" + id */

typedef struct edge_outcome {
    int status;                       /* HTTP status; 0 until set */
    char *body;                       /* malloc'd JSON text; NULL = out of memory */
    char location[EDGE_LOCATION_MAX]; /* "" = no Location header */
    int64_t retry_after_s;            /* > 0: a Retry-After header (429) */
} edge_outcome;

/* The error shape for err (status from its code; 5xx text hidden). */
void edge_outcome_error(edge_outcome *o, const lb_err *err);
/* msg as JSON with status; an encoding fault becomes its error. */
void edge_outcome_msg(edge_outcome *o, int status, const ProtobufCMessage *msg);
/* A JSON object (borrowed) as the body with status. */
void edge_outcome_json(edge_outcome *o, int status, const json_t *obj);
/* 429 too_many_requests with Retry-After, from a layby.v1.Throttled reply
 * (a service's answer to a rate limit). */
void edge_outcome_throttled(edge_outcome *o, natsMsg *reply);
/* True when reply is a layby.v1.Throttled. */
bool edge_reply_is_throttled(natsMsg *reply);
/* An empty body (204). */
void edge_outcome_empty(edge_outcome *o, int status);
/* Sends o (Location header when set); out of memory becomes a bare 500. */
void edge_outcome_send(edge_req *r, const edge_outcome *o);
void edge_outcome_destroy(edge_outcome *o);

/* Fills o->location from pattern, replacing each {jsonName} with that field of
 * msg (a string or an integer, as the codec writes it). False, and no
 * Location, when a field is missing, empty or the result too long. */
bool edge_outcome_location(edge_outcome *o, const char *pattern, const ProtobufCMessage *msg);
/* Same, from msg already encoded as a JSON object (borrowed). */
bool edge_outcome_location_json(edge_outcome *o, const char *pattern, const json_t *obj);

/* The client-visible status for a fault of ours: a reply we cannot decode is
 * our bug (500), not the client's bad message (LB_ERR_DECODE is 400). */
lb_status edge_fault_status(lb_status s);
/* Logs a server-side fault of request r once, with its correlation. */
void edge_fault_log(const edge_req *r, const char *event, const lb_err *err);

#endif
