/* edge_routes.h - the edge's routes as data, and the one civetweb handler
 * that walks them.
 *
 * A route is one row (edge_route): method, path pattern, who may call it,
 * kind, bus subject, request / body / reply message types, success status
 * and Location, Idempotency-Key, where path and query parameters and the
 * token's member id go in the request (binds), the business error codes it
 * may answer, and optional hooks for what is truly route-specific. One
 * function, edge_route_run(), runs any row that is not LOCAL; the OpenAPI
 * document (edge_openapi.c) is generated from the same rows and the protobuf
 * descriptors, so the two cannot drift. docs/ARCHITECTURE.md "Adding a route"
 * says how to write a row.
 *
 * Patterns are literal segments and {name} segments that capture one
 * non-empty path segment. A path that matches no pattern is 404; a path that
 * matches only under other methods is 405 with an Allow header.
 *
 * Ownership: route tables are static const; edge_param values point into the
 *            caller's path.
 * Threads:   edge_route_find() and edge_routes_check() are pure;
 *            edge_dispatch() and edge_route_run() run on any civetweb worker.
 */
#ifndef LAYBY_EDGE_EDGE_ROUTES_H
#define LAYBY_EDGE_EDGE_ROUTES_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

#include "edge_http.h"
#include "lb.h"

struct mg_connection;

typedef enum edge_who {
    EDGE_PUBLIC, /* anyone */
    EDGE_MEMBER, /* a valid access token of any role */
    EDGE_ADMIN   /* a valid access token with role ADMIN */
} edge_who;

/* What a row sends and how its outcome is waited for (table in edge_run.c). */
typedef enum edge_kind {
    EDGE_KIND_LOCAL,      /* answered in the edge by the row's fn (operations) */
    EDGE_KIND_QUERY,      /* core request/reply; no answer in time is 504 */
    EDGE_KIND_COMMAND,    /* JetStream command; no outcome in time is 202 */
    EDGE_KIND_SAGA_START, /* a command on layby.cmd.saga.start.<type>: as COMMAND */
    EDGE_KIND_SIGNAL,     /* a signal to a running saga by its id: as COMMAND */
    EDGE_KIND__COUNT
} edge_kind;

/* Where a bound request field takes its value from. */
typedef enum edge_from {
    EDGE_FROM_END,    /* ends a bind list (zero, so EDGE_BINDS terminates it) */
    EDGE_FROM_PATH,   /* the {name} path segment */
    EDGE_FROM_QUERY,  /* the ?name= query parameter (absent: field keeps its default) */
    EDGE_FROM_SUB,    /* the access token's sub, the member id */
    EDGE_FROM_NEW_ID, /* a new UUID; with Idempotency-Key, derived from it (name = id kind) */
    EDGE_FROM_CONST,  /* the text in name, e.g. a signal's name "cancel" */
} edge_from;

/* Extra checks of a bound value before it is converted to the field's type. */
typedef enum edge_fmt {
    EDGE_FMT_ANY,  /* the field's protobuf type decides (string, integer, bool, enum) */
    EDGE_FMT_UUID, /* must be a UUID (400 invalid_argument naming the parameter) */
} edge_fmt;

/* One request field filled from outside the body. */
typedef struct edge_bind {
    edge_from from;
    const char *name;  /* path or query parameter; id kind for NEW_ID; the value for CONST;
                          NULL for SUB */
    const char *field; /* proto field name (snake_case) of a top-level request field */
    edge_fmt fmt;
    const char *doc; /* OpenAPI description of a query parameter, or NULL */
} edge_bind;

/* One bind each, for EDGE_BINDS(...). */
#define EDGE_PATH(pname, pfield)                                                        \
    {                                                                                   \
        .from = EDGE_FROM_PATH, .name = (pname), .field = (pfield), .fmt = EDGE_FMT_ANY \
    }
#define EDGE_PATH_UUID(pname, pfield)                                                    \
    {                                                                                    \
        .from = EDGE_FROM_PATH, .name = (pname), .field = (pfield), .fmt = EDGE_FMT_UUID \
    }
#define EDGE_QUERY(pname, pfield, pdoc)                                            \
    {                                                                              \
        .from = EDGE_FROM_QUERY, .name = (pname), .field = (pfield), .doc = (pdoc) \
    }
#define EDGE_SUB(pfield)                         \
    {                                            \
        .from = EDGE_FROM_SUB, .field = (pfield) \
    }
#define EDGE_NEW_ID(kind, pfield)                                   \
    {                                                               \
        .from = EDGE_FROM_NEW_ID, .name = (kind), .field = (pfield) \
    }
#define EDGE_CONST(pfield, text)                                   \
    {                                                              \
        .from = EDGE_FROM_CONST, .name = (text), .field = (pfield) \
    }

/* A business code answered by the service, shown to the client as another. */
typedef struct edge_remap {
    lb_status from, to;
} edge_remap;

/* Answers the request; must reply exactly once (edge_reply*). LOCAL rows. */
typedef void (*edge_handler_fn)(edge_req *r);

/* What a row cannot say as data. Every hook is optional. */
typedef struct edge_hooks {
    /* After the binds, before sending: fill or check request fields. An error
     * is answered as it is (a 4xx with its field). */
    lb_status (*prepare)(ProtobufCMessage *req, edge_req *r, lb_err *err);
    /* On a decoded success reply: the status to answer instead of the row's
     * (e.g. 202 while a saga is still deciding), or 0 to keep it. */
    int (*reply_status)(const ProtobufCMessage *reply, const edge_req *r);
    /* On a decoded success reply, before reply_status: complete it or replace
     * it by the row's `answer` (freeing the old one), e.g. a saga's outcome by
     * the order it created, read with a query. An error is answered as it is,
     * and *reply is then still the caller's. */
    lb_status (*reply_swap)(ProtobufCMessage **reply, edge_req *r, lb_err *err);
    /* Request fields (proto names, EDGE_FILLS(...)) that prepare sets from
     * what only the edge knows (the client's address, the token's login id).
     * Like bound fields, they are no part of the request body: a body naming
     * one is 400 unknown_field, and the OpenAPI body schema leaves them out. */
    const char *const *fills;
    /* After prepare: answer from the edge's own state instead of sending
     * (the product read model, edge_model.h). LB_OK with *body, the JSON
     * text of a `reply` message (malloc'd, the caller's), answered with the
     * row's status (a row with this hook has no reply_status, reply_swap or
     * Location: edge_routes_check); LB_ERR_UNAVAILABLE sends the request as
     * usual; another error is answered as it is. Text, not a message: the
     * model keeps its answers rendered (a list page is 20 products). */
    lb_status (*local)(char **body, const ProtobufCMessage *req, edge_req *r, lb_err *err);
    /* On a decoded success reply, before it is answered: let the edge's own
     * state learn from it (a product this edge created is listed at once). */
    void (*reply_seen)(const ProtobufCMessage *reply, edge_req *r);
} edge_hooks;

/* Sentinel-terminated lists for a row, written inline in the table. */
#define EDGE_STEP_ANSWERS 2 /* types a row's step_answer may name */

#define EDGE_BINDS(...)  ((const edge_bind[]){ __VA_ARGS__, { .from = EDGE_FROM_END } })
#define EDGE_ERRORS(...) ((const lb_status[]){ __VA_ARGS__, LB_OK })
#define EDGE_REMAP(...)  ((const edge_remap[]){ __VA_ARGS__, { LB_OK, LB_OK } })
#define EDGE_FILLS(...)  ((const char *const[]){ __VA_ARGS__, NULL })

struct edge_route {
    const char *method;
    const char *path;
    edge_who who;
    edge_kind kind;
    const char *summary;   /* one line for OpenAPI */
    const char *operation; /* OpenAPI operationId, unique, lowerCamelCase */
    /* bus side (not LOCAL) */
    const char *subject;                       /* engine/subjects.h */
    const ProtobufCMessageDescriptor *request; /* the message sent */
    const ProtobufCMessageDescriptor *body;    /* the JSON body; NULL = none read */
    const char *body_field;                    /* request field holding the body; NULL = the
                                                  body is the request itself */
    const ProtobufCMessageDescriptor *reply;   /* the success reply */
    /* SAGA_START rows: what the participant of the saga's answering step
     * (saga.h .answers) may answer, accepted as the reply too: it answers one
     * hop before the saga does. Up to EDGE_STEP_ANSWERS, unused ones NULL (the
     * place row: the Order a current order service answers, and the
     * OrderStatusSet of one from before proto answer_order). The reply_swap
     * hook gets any of them, or the reply. */
    const ProtobufCMessageDescriptor *step_answer[EDGE_STEP_ANSWERS];
    const ProtobufCMessageDescriptor *answer; /* what the client gets when the reply_swap
                                                 hook replaces the reply; NULL = reply */
    int status;                               /* success status; 204 sends no body */
    const char *location;    /* Location pattern, {jsonName} from the reply (from the
                                request on 202), e.g. "/api/v1/products/{productId}" */
    bool idempotent;         /* takes Idempotency-Key (POST that creates or pays) */
    const edge_bind *binds;  /* EDGE_BINDS(...) or NULL */
    const lb_status *errors; /* EDGE_ERRORS(...): business codes the service may answer */
    const edge_remap *remap; /* EDGE_REMAP(...) or NULL */
    const edge_hooks *hooks; /* NULL = none */
    /* A string field of the reply holding the answer's JSON text, answered as
     * it is (an admin read the owning daemon renders, e.g. a saga's
     * timeline: the same document layby-ctl prints); `schema` describes it.
     * NULL = the reply message is the answer. */
    const char *reply_json;
    /* LOCAL rows */
    edge_handler_fn fn;
    const char *produces; /* content type of the 200 body; NULL = application/json */
    const char *schema;   /* JSON Schema text of the 200 body for OpenAPI (and reply_json rows) */
};

#define EDGE_ROUTES_MAX 128 /* rows in edge_table.c (metrics slots) */
#define EDGE_ALLOW_MAX  64  /* "GET, POST, PUT, PATCH, DELETE" */

/* Finds the route for method and path in routes[0..n). LB_OK sets *out and
 * params; LB_ERR_NOT_FOUND for an unknown path; LB_ERR_METHOD when the path is
 * known under other methods, listed in allow ("GET, POST"). */
lb_status edge_route_find(const edge_route **out, edge_param params[EDGE_PARAMS_MAX],
                          size_t *n_params, char allow[EDGE_ALLOW_MAX], const edge_route *routes,
                          size_t n, const char *method, const char *path);

/* Checks that rows are well-formed: fields named by binds, body_field and
 * Location exist with fitting types, every {param} of a path is bound, every
 * non-LOCAL row has subject, request and reply, operation ids are unique.
 * The first fault is described in err (LB_ERR_CONFIG). */
lb_status edge_routes_check(const edge_route *routes, size_t n, lb_err *err);

/* True when the edge sets request field proto_name of rt itself (a bind or
 * the prepare hook's fills): the client may not send it in the body, and the
 * OpenAPI request body does not show it. */
bool edge_route_sets(const edge_route *rt, const char *proto_name);

/* Runs a non-LOCAL row for r (edge_run.c): decode the body, bind parameters,
 * claim the Idempotency-Key, send, wait, answer. Replies exactly once. */
void edge_route_run(edge_req *r);

/* The edge's table (edge_table.c). */
const edge_route *edge_routes_table(size_t *n);

/* Creates the per-route metrics; call once before edge_dispatch() runs. */
void edge_routes_metrics_init(void);

/* The civetweb request handler for "/": cbdata is the edge_app. */
int edge_dispatch(struct mg_connection *conn, void *cbdata);

/* Starts civetweb on app->cfg's host, port, workers and request timeout with
 * edge_dispatch() for every path. No request is answered before the handler
 * is in place, however early a client connects. Call once per process; stop
 * with mg_stop(*out). */
struct mg_context;
lb_status edge_listen(struct mg_context **out, edge_app *app, lb_err *err);
/* Its two halves, so that a test can hold the moment between them: open
 * starts civetweb (a request that arrives waits), route installs the handler
 * (the waiting requests go on to it). */
lb_status edge_listen_open(struct mg_context **out, edge_app *app, lb_err *err);
void edge_listen_route(struct mg_context *ctx, edge_app *app);

#endif
