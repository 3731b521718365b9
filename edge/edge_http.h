/* edge_http.h - one HTTP request in the edge: reading its body within limits,
 * decoding it, and writing responses, including the one error shape
 * {"error":{"code","message","field"?}} (DESIGN §5).
 *
 * civetweb has no body limit (PLATFORM.md), so the length checks happen here,
 * before a byte of the body is read.
 *
 * Ownership: an edge_req lives on the stack of the civetweb handler; body and
 *            strings it points to are freed by edge_req_destroy().
 * Threads:   one edge_req per civetweb worker thread; the pure functions
 *            (edge_error_body, edge_body_check, edge_json_type_ok) are reentrant.
 */
#ifndef LAYBY_EDGE_EDGE_HTTP_H
#define LAYBY_EDGE_EDGE_HTTP_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "edge_auth.h"
#include "lb.h"

struct mg_connection;
struct mg_request_info;
typedef struct edge_app edge_app;
typedef struct edge_route edge_route;

#define EDGE_PARAMS_MAX  4
#define EDGE_HEADERS_MAX 512 /* extra response headers, e.g. Location + Allow */

/* A {name} segment of the path, pointing into the request's URI. */
typedef struct edge_param {
    const char *name; /* points into the route pattern, name_len bytes */
    size_t name_len;
    const char *val; /* points into the request path, len bytes */
    size_t len;
} edge_param;

typedef struct edge_req {
    /* set by the dispatcher before the handler runs */
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    edge_app *app;
    const edge_route *route; /* NULL when no route matched */
    edge_param params[EDGE_PARAMS_MAX];
    size_t n_params;
    int64_t max_body;                /* bytes */
    bool authed;                     /* claims valid */
    edge_claims claims;              /* who asked (authed routes) */
    char actor[BUS_ACTOR_MAX];       /* "<sub> <ROLE>" or "" */
    char traceparent[BUS_TRACE_MAX]; /* incoming if valid, else new; echoed */
    char correlation[ID_STR_LEN];    /* of the first message this request sent */
    bool idem_repeat;                /* its Idempotency-Key was claimed before (edge_idem.repeat) */
    /* filled while handling */
    char *body; /* NUL-terminated copy of the request body, or NULL */
    size_t body_len;
    bool body_unread; /* a body may remain on the wire: close the connection */
    int status;       /* HTTP status sent, 0 = nothing sent yet */
    /* what a prepare hook read for its reply_swap (the pay route's order);
     * freed by edge_req_destroy */
    ProtobufCMessage *held;
} edge_req;

void edge_req_destroy(edge_req *r);

/* Request header value or NULL. */
const char *edge_header(const edge_req *r, const char *name);
/* Copies param `name` into out (NUL-terminated). False when absent or too long. */
bool edge_param_copy(const edge_req *r, const char *name, char *out, size_t n);

/* Pure: the error body for code (message defaults to the status text; field
 * omitted when NULL or ""). *out is malloc'd. */
lb_status edge_error_body(char **out, lb_status code, const char *message, const char *field,
                          lb_err *err);
/* Pure: true for application/json with optional parameters (charset). */
bool edge_json_type_ok(const char *content_type);
/* Pure: may a body of content_length (-1 = chunked) and content_type be read
 * under max_body? LB_ERR_LENGTH, LB_ERR_TOO_LARGE or LB_ERR_MEDIA_TYPE if not. */
lb_status edge_body_check(long long content_length, const char *content_type, int64_t max_body,
                          lb_err *err);

/* Sends status with body (len bytes) of type content_type, plus extra header
 * lines (each ending in "\r\n", may be NULL). Sets r->status. */
void edge_reply(edge_req *r, int status, const char *content_type, const char *body, size_t len,
                const char *extra_headers);
/* JSON text body. */
void edge_reply_json(edge_req *r, int status, const char *json, const char *extra_headers);
/* A protobuf message as JSON through the generic codec. */
void edge_reply_msg(edge_req *r, int status, const ProtobufCMessage *msg,
                    const char *extra_headers);
/* The error shape for e (HTTP status from its code). Server-side faults (5xx)
 * get the status's generic text: internals are logged, never sent. */
void edge_reply_error(edge_req *r, const lb_err *e, const char *extra_headers);
/* Same, from a code and text. */
void edge_reply_status(edge_req *r, lb_status code, const char *field, const char *message,
                       const char *extra_headers);

/* The body edge_reply_status() would send, and its HTTP status, for callers
 * that must also remember it (Idempotency-Key). malloc'd; NULL when out of memory. */
char *edge_error_text(int *status, lb_status code, const char *field, const char *message);

/* Checks and reads the whole body into r->body. On failure it has replied
 * (411, 413, 415, 400) and returns the status. */
lb_status edge_body_read_or_reply(edge_req *r);
/* Reads the body and decodes it as desc. On failure it has replied
 * (including 400 with `field`) and returns NULL. Free the result with
 * protobuf_c_message_free_unpacked(). */
ProtobufCMessage *edge_body_decode_or_reply(edge_req *r, const ProtobufCMessageDescriptor *desc);

/* Starts an envelope for a message of type desc sent on behalf of r:
 * actor and traceparent from the request, one correlation per request. */
void edge_envelope_init(edge_req *r, bus_envelope *env, const ProtobufCMessageDescriptor *desc);

#endif
