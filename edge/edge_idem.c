/* edge_idem.c - remembering the first outcome of an idempotent create.
 *
 * A record in LAYBY_IDEMPOTENCY is JSON:
 *   {"bodyHash":"<hex>","status":<http>,"body":"<text>","location":"<path>"}
 * status 0 is a claim: a request with this key is (or was) in flight.
 *
 * States of one key:
 *   absent  -> claim   kvStore_Create (atomic: of racing requests one wins;
 *                      the losers read the winner's claim). Created first,
 *                      read only when that fails: one round trip a first try
 *   claim   -> outcome kvStore_Put of a final answer (2xx but 202, 4xx), before
 *                      it is sent: a repeat that follows the answer finds it
 *   claim stays when the answer was 202 or 5xx, or the edge crashed: a repeat
 *   then runs the route again, which is safe because the entity id is derived
 *   from the key and the service answers a repeat with what it stored.
 * Any bucket error degrades to "no record" (logged): the derived id still
 * keeps repeats from creating twice.
 */
#include "edge_idem.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge_app.h"
#include "edge_routes.h"
#include "fault.h"
#include "log.h"

#define KV_RETRY_US (5 * 1000000) /* after a failed bucket open */

bool
edge_idem_key_ok(const char *key)
{
    size_t n = key ? strnlen(key, EDGE_IDEM_KEY_MAX) : 0;
    if (n == 0 || n >= EDGE_IDEM_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < ' ' || key[i] > '~')
            return false;
    return true;
}

void
edge_idem_target(char *out, size_t n, const edge_req *r)
{
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->n_params && at < n; i++) {
        const edge_param *p = &r->params[i];
        int k = snprintf(out + at, n - at, "\n%.*s=%.*s", (int)p->name_len, p->name, (int)p->len,
                         p->val);
        if (k < 0)
            break;
        at += (size_t)k;
    }
}

static void
hex_of(char out[EDGE_HASH_HEX], const unsigned char h[32])
{
    sodium_bin2hex(out, EDGE_HASH_HEX, h, 32);
}

void
edge_idem_hashes(char kv_key[EDGE_HASH_HEX], char body_hash[EDGE_HASH_HEX], const char *sub,
                 const char *route, const char *key, const char *body, size_t body_len)
{
    unsigned char h[32];
    crypto_generichash_state hs;
    /* NUL separators: ("a b", "c") and ("a", "b c") must not collide */
    crypto_generichash_init(&hs, NULL, 0, sizeof h);
    crypto_generichash_update(&hs, (const unsigned char *)sub, strlen(sub) + 1);
    crypto_generichash_update(&hs, (const unsigned char *)route, strlen(route) + 1);
    crypto_generichash_update(&hs, (const unsigned char *)key, strlen(key) + 1);
    crypto_generichash_final(&hs, h, sizeof h);
    hex_of(kv_key, h);
    crypto_generichash(h, sizeof h, (const unsigned char *)body, body_len, NULL, 0);
    hex_of(body_hash, h);
}

/* The bucket handle, opened on first use; NULL while unavailable. */
static kvStore *
bucket(edge_app *app)
{
    pthread_mutex_lock(&app->kv_lock);
    kvStore *kv = app->kv;
    int64_t now = lb_mono_us();
    if (kv == NULL && (app->kv_failed_us == 0 || now - app->kv_failed_us >= KV_RETRY_US)) {
        natsStatus s = js_KeyValue(&kv, bus_js(app->bus), EDGE_IDEM_BUCKET);
        if (s != NATS_OK) {
            lb_err err;
            bus__nats_err(&err, s, "open bucket " EDGE_IDEM_BUCKET);
            log_warn(NULL, "edge.idem_unavailable", "idempotency bucket unavailable",
                     LOG_ERR(&err));
            kv = NULL;
            app->kv_failed_us = now;
        } else {
            app->kv = kv;
        }
    }
    pthread_mutex_unlock(&app->kv_lock);
    return kv;
}

static void
kv_warn(edge_req *r, natsStatus s, const char *what)
{
    lb_err err;
    bus__nats_err(&err, s, what);
    log_ctx lc = { .correlation = r->correlation[0] ? r->correlation : NULL };
    log_warn(&lc, "edge.idem_unavailable", "idempotency record skipped", LOG_ERR(&err));
}

static char *
record_text(const char *body_hash, int status, const char *body, const char *location)
{
    json_t *rec = json_pack("{s:s, s:i, s:s, s:s}", "bodyHash", body_hash, "status", status, "body",
                            body ? body : "", "location", location ? location : "");
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    return text;
}

/* Answers from a stored record; false when the record is only a claim. */
static bool
replay_or_reply(edge_req *r, const edge_idem *idem, const json_t *rec)
{
    const char *hash = json_string_value(json_object_get(rec, "bodyHash"));
    if (hash == NULL || strcmp(hash, idem->body_hash) != 0) {
        edge_reply_status(r, LB_ERR_UNPROCESSABLE, NULL,
                          "Idempotency-Key was already used with a different request body", NULL);
        return true;
    }
    json_int_t status = json_integer_value(json_object_get(rec, "status"));
    const char *body = json_string_value(json_object_get(rec, "body"));
    const char *loc = json_string_value(json_object_get(rec, "location"));
    if (status < 200 || status > 599 || body == NULL)
        return false;
    char extra[EDGE_HEADERS_MAX] = "";
    if (loc != NULL && loc[0] != '\0')
        snprintf(extra, sizeof extra, "Location: %s\r\n", loc);
    edge_reply(r, (int)status, "application/json", body, strlen(body), extra);
    return true;
}

void
edge_idem_begin_or_reply(edge_idem *idem, bool *replied, edge_req *r, const char *key)
{
    *idem = (edge_idem){ .active = false };
    *replied = false;
    if (key == NULL)
        return;
    if (!edge_idem_key_ok(key)) {
        edge_reply_status(r, LB_ERR_INVALID, NULL,
                          "Idempotency-Key must be 1 to 255 printable ASCII characters", NULL);
        *replied = true;
        return;
    }
    char route[2 * EDGE_HEADERS_MAX + 16], target[EDGE_HEADERS_MAX];
    edge_idem_target(target, sizeof target, r);
    snprintf(route, sizeof route, "%s %.*s%s", r->route->method, EDGE_HEADERS_MAX - 1,
             r->route->path, target);
    edge_idem_hashes(idem->kv_key, idem->body_hash, r->claims.sub, route, key,
                     r->body ? r->body : "", r->body_len);
    kvStore *kv = bucket(r->app);
    if (kv == NULL)
        return;

    char *claim = record_text(idem->body_hash, 0, NULL, NULL);
    if (claim == NULL)
        return;
    /* Create first: a first try, the usual case, is one round trip, where a
     * read before it made two (a checkout has two keyed POSTs). Only a key
     * that exists (a repeat, or another request with this key won the race)
     * is read. Two rounds: the record may vanish between the failed Create
     * and the read (TTL), and the next Create claims it then. A Create that
     * timed out but landed reads back as our own claim: idem->repeat is then
     * set for a first try, as a lost read-then-create race set it before. */
    for (int round = 0; round < 2 && !*replied && !idem->active; round++) {
        uint64_t rev = 0;
        natsStatus s = kvStore_Create(&rev, kv, idem->kv_key, claim, (int)strlen(claim));
        if (s == NATS_OK) {
            idem->active = true;
            break;
        }
        kvEntry *e = NULL;
        natsStatus g = kvStore_Get(&e, kv, idem->kv_key);
        if (g == NATS_OK) {
            json_t *rec =
                json_loadb((const char *)kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, NULL);
            kvEntry_Destroy(e);
            *replied = rec != NULL && replay_or_reply(r, idem, rec);
            json_decref(rec);
            idem->active = !*replied; /* a claim: go on, then record the outcome */
            idem->repeat = idem->active;
        } else if (g != NATS_NOT_FOUND) {
            kv_warn(r, g, "read idempotency key");
            break;
        } else if (round == 1) {
            kv_warn(r, s, "claim idempotency key");
        }
    }
    free(claim);
}

void
edge_idem_finish(const edge_idem *idem, edge_req *r, int status, const char *body,
                 const char *location)
{
    if (!idem->active || status == 202 || status >= 500)
        return;
    kvStore *kv = bucket(r->app);
    char *text = record_text(idem->body_hash, status, body, location);
    if (kv == NULL || text == NULL) {
        free(text);
        return;
    }
    /* Test builds: edge.idem_slow (a hold point, fault.h) makes the put
     * late, as a busy core can, so a test can show the answer waits for it. */
    if (fault_held("edge.idem_slow")) {
        const struct timespec late = { 0, 200 * 1000 * 1000 };
        nanosleep(&late, NULL);
    }
    uint64_t rev = 0;
    natsStatus s = kvStore_Put(&rev, kv, idem->kv_key, text, (int)strlen(text));
    if (s != NATS_OK)
        kv_warn(r, s, "record idempotent outcome");
    free(text);
}
