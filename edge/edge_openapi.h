/* edge_openapi.h - the OpenAPI 3.0 document, generated from the route rows,
 * the protobuf descriptors and the status table of lb.h.
 *
 * Nothing in it is typed by hand: paths and operations come from the rows,
 * request and reply schemas from the messages' descriptors (lowerCamelCase
 * names, types, enums, repeated, nested messages), error responses from the
 * codes each row can answer and lb.h's code -> HTTP table. A schema used
 * only in replies lists every field as required (the codec writes every
 * field); one used in request bodies refuses unknown fields and requires
 * none (a missing field means its proto3 default). A message used both ways
 * gets a second schema for input, named <Name>Input.
 *
 * Ownership: edge_openapi_build() returns a new jansson reference;
 *            edge_openapi_text() returns a process-lifetime string.
 * Threads:   both are thread-safe (the text is built once).
 */
#ifndef LAYBY_EDGE_EDGE_OPENAPI_H
#define LAYBY_EDGE_EDGE_OPENAPI_H

#include <jansson.h>

#include "edge_routes.h"
#include "lb.h"

/* Builds the document for routes[0..n). On error *out is unchanged. */
lb_status edge_openapi_build(json_t **out, const edge_route *routes, size_t n, lb_err *err);

/* The edge's own document as text, built on first use; NULL when it could
 * not be built (out of memory). */
const char *edge_openapi_text(void);

#endif
