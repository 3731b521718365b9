/* edge_model.h - the edge's product read model: GET /api/v1/products and
 * GET /api/v1/products/{id} answered from memory, without a round trip.
 *
 * Each edge keeps its own. On start (and whenever its subscription fails) a
 * follower thread reads LAYBY_EVT's last sequence S, then every product with
 * its stock version from the catalog (layby.qry.catalog.product_states, a
 * page at a time), then follows layby.evt.product.> from S + 1 with an
 * ordered consumer. A product's stock version grows by one per change
 * (ProductStockChanged.version, catalog.products.version), so an event and a
 * snapshot page that describe the same product are merged by keeping the
 * highest version, whatever order they arrive in. Products are never deleted
 * and their other fields never change (no route changes them), so only the
 * stock moves after a product is known.
 *
 * The model answers only while it is ready: snapshot loaded, the consumer
 * caught up with the stream (its pending count 0 and every delivered message
 * applied), and the connection up since then. Otherwise, and for whatever it
 * cannot answer exactly as the catalog would (a product it does not hold, a
 * malformed limit, cursor or filter), the caller asks the catalog: the edge
 * then behaves as without a model. The reservation path stays the authority
 * on stock; the model's stockAvailable trails it by the event's trip
 * (outbox relay -> JetStream -> this consumer, milliseconds when healthy).
 *
 * Search (q) is served here: the catalog's database runs with the C locale
 * (scripts/lib/pg.sh, initdb --no-locale), where ILIKE folds ASCII letters
 * only; the model matches the same way (case-insensitive for A-Z, bytes
 * otherwise), so both paths answer the same items for any q.
 *
 * Answers are JSON text, rendered by the codec once per product at insert
 * and cut around the stock (the only field that moves): a read copies text
 * and prints one number, no message or jansson tree per product
 * (docs/DECISIONS.md §5b').
 *
 * Ownership: edge_model_new() returns a model freed by edge_model_free(),
 *            which stops the follower first. Answers are new strings the
 *            caller frees (free()).
 * Threads:   one follower thread writes; any number of civetweb workers read.
 *            Structure (the sorted array, the id index) changes under the
 *            write side of a writer-preferring rwlock, readers hold the read
 *            side only to find products; a product's stock is one atomic
 *            word, so a stock change takes no lock at all, and a product,
 *            once inserted, lives as long as the model.
 */
#ifndef LAYBY_EDGE_EDGE_MODEL_H
#define LAYBY_EDGE_EDGE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "layby/v1/catalog.pb-c.h"
#include "lb.h"

typedef struct edge_model edge_model;

lb_status edge_model_new(edge_model **out, lb_err *err);
/* Tells the follower to stop without waiting for it; at the edge's stop this
 * comes before the connection closes, so the close does not read as a fault. */
void edge_model_stop(edge_model *m);
void edge_model_free(edge_model *m); /* NULL is a no-op */

/* Starts the follower on b (borrowed; outlives the model). query_timeout_ms
 * bounds each snapshot page request. */
lb_status edge_model_follow(edge_model *m, bus *b, int64_t query_timeout_ms, lb_err *err);

/* True while the model answers reads (see above). */
bool edge_model_ready(edge_model *m);
/* Products held (tests, metrics). */
size_t edge_model_count(edge_model *m);

/* Merges one product at stock version `version` (the follower's snapshot and
 * events, and the edge's own create replies: a product this edge created is
 * listed by it at once). created_at must be RFC 3339 UTC as the catalog
 * writes it. */
lb_status edge_model_product_put(edge_model *m, const Layby__V1__Product *p, int64_t version,
                                 lb_err *err);

/* The detail of product id: the JSON text the catalog's Product reply
 * encodes to (codec_json_encode_text), in *out (the caller's, free()).
 * LB_ERR_UNAVAILABLE: ask the catalog (not ready, or not held here: a
 * product created a moment ago on another edge, or none). */
lb_status edge_model_product_get(char **out, edge_model *m, const char *id, lb_err *err);
/* A page as the catalog's list_products answers it (same cursor), as the
 * JSON text of that ProductPage, in *out (the caller's, free()).
 * LB_ERR_UNAVAILABLE: ask the catalog (not ready, or a request it refuses). */
lb_status edge_model_product_page(char **out, edge_model *m, const Layby__V1__ListProducts *l,
                                  lb_err *err);

#endif
