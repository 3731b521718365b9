/* edge_revoke.c - the revoked-jti set and its bucket watcher (edge_revoke.h).
 *
 * The set is a chained hash table keyed by SipHash of the jti (random key per
 * process). It only grows by revocations, each dropped after its exp, and
 * exp is at most the access-token lifetime away. */
#include "edge_revoke.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define BUCKETS       4096
#define PRUNE_EVERY_S 30
#define WATCH_WAIT_MS 250
#define RETRY_WAIT_MS 1000

typedef struct entry {
    struct entry *next;
    int64_t exp_s;
    char jti[EDGE_JTI_MAX];
} entry;

struct edge_revoke {
    /* fixed after new */
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    /* guarded by lock */
    pthread_mutex_t lock;
    entry *buckets[BUCKETS];
    size_t n;
    int64_t pruned_s;
    /* watcher */
    bus *bus;
    char bucket[64];
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_bool synced;
};

lb_status
edge_revoke_new(edge_revoke **out, lb_err *err)
{
    if (sodium_init() < 0)
        return lb_err_set(err, LB_ERR_CRYPTO, "sodium_init failed");
    edge_revoke *rv = calloc(1, sizeof *rv);
    if (rv == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "revocation set");
    crypto_shorthash_keygen(rv->hash_key);
    pthread_mutex_init(&rv->lock, NULL);
    *out = rv;
    return LB_OK;
}

static size_t
slot(const edge_revoke *rv, const char *jti)
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)jti, strlen(jti), rv->hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return (size_t)(v % BUCKETS);
}

/* Drops entries whose exp passed; under lock. */
static void
prune_locked(edge_revoke *rv, int64_t now_s)
{
    for (size_t i = 0; i < BUCKETS; i++) {
        entry **pp = &rv->buckets[i];
        while (*pp != NULL) {
            entry *e = *pp;
            if (e->exp_s <= now_s) {
                *pp = e->next;
                free(e);
                rv->n--;
            } else {
                pp = &e->next;
            }
        }
    }
    rv->pruned_s = now_s;
}

void
edge_revoke_add(edge_revoke *rv, const char *jti, int64_t exp_s)
{
    if (jti == NULL || jti[0] == '\0' || strlen(jti) >= EDGE_JTI_MAX)
        return;
    int64_t now_s = lb_now_ms() / 1000;
    size_t i = slot(rv, jti);
    pthread_mutex_lock(&rv->lock);
    if (now_s - rv->pruned_s >= PRUNE_EVERY_S)
        prune_locked(rv, now_s);
    entry *e = rv->buckets[i];
    while (e != NULL && strcmp(e->jti, jti) != 0)
        e = e->next;
    if (e == NULL && (e = calloc(1, sizeof *e)) != NULL) {
        snprintf(e->jti, sizeof e->jti, "%s", jti);
        e->next = rv->buckets[i];
        rv->buckets[i] = e;
        rv->n++;
    }
    if (e != NULL && exp_s > e->exp_s)
        e->exp_s = exp_s;
    pthread_mutex_unlock(&rv->lock);
}

bool
edge_revoke_has(edge_revoke *rv, const char *jti, int64_t now_s)
{
    if (jti == NULL || jti[0] == '\0')
        return false;
    size_t i = slot(rv, jti);
    bool hit = false;
    pthread_mutex_lock(&rv->lock);
    for (entry *e = rv->buckets[i]; e != NULL && !hit; e = e->next)
        hit = strcmp(e->jti, jti) == 0 && e->exp_s > now_s;
    pthread_mutex_unlock(&rv->lock);
    return hit;
}

size_t
edge_revoke_count(edge_revoke *rv)
{
    pthread_mutex_lock(&rv->lock);
    size_t n = rv->n;
    pthread_mutex_unlock(&rv->lock);
    return n;
}

bool
edge_revoke_synced(edge_revoke *rv)
{
    return atomic_load(&rv->synced);
}

static void
nap_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void *
watch_main(void *arg)
{
    edge_revoke *rv = arg;
    kvStore *kv = NULL;
    kvWatcher *w = NULL;
    bool warned = false;
    while (!atomic_load(&rv->stop)) {
        if (w == NULL) {
            kvWatchOptions o;
            kvWatchOptions_Init(&o);
            o.IgnoreDeletes = true;
            natsStatus s = kv ? NATS_OK : js_KeyValue(&kv, bus_js(rv->bus), rv->bucket);
            if (s == NATS_OK)
                s = kvStore_WatchAll(&w, kv, &o);
            if (s != NATS_OK) {
                if (!warned)
                    log_warn(
                        NULL, "edge.revoke_watch", "cannot watch the revocation bucket; retrying",
                        LOG_STR("bucket", rv->bucket), LOG_STR("error", nats_GetLastError(NULL)));
                warned = true;
                kvStore_Destroy(kv);
                kv = NULL;
                w = NULL;
                nap_ms(RETRY_WAIT_MS);
                continue;
            }
            warned = false;
        }
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, w, WATCH_WAIT_MS);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            kvWatcher_Destroy(w);
            w = NULL;
            if (atomic_load(&rv->stop))
                break; /* the edge is stopping: it closed the connection */
            nap_ms(RETRY_WAIT_MS);
            continue;
        }
        if (e == NULL) { /* the initial values are all in */
            atomic_store(&rv->synced, true);
            continue;
        }
        if (kvEntry_Operation(e) == kvOp_Put) {
            char v[32];
            snprintf(v, sizeof v, "%.*s", kvEntry_ValueLen(e), (const char *)kvEntry_Value(e));
            edge_revoke_add(rv, kvEntry_Key(e), strtoll(v, NULL, 10));
        }
        kvEntry_Destroy(e);
    }
    kvWatcher_Destroy(w);
    kvStore_Destroy(kv);
    return NULL;
}

lb_status
edge_revoke_watch(edge_revoke *rv, bus *b, const char *bucket, lb_err *err)
{
    rv->bus = b;
    snprintf(rv->bucket, sizeof rv->bucket, "%s", bucket);
    if (pthread_create(&rv->thread, NULL, watch_main, rv) != 0)
        return lb_err_set(err, LB_ERR_INTERNAL, "start revocation watcher");
    rv->started = true;
    return LB_OK;
}

void
edge_revoke_stop(edge_revoke *rv)
{
    if (rv != NULL)
        atomic_store(&rv->stop, true);
}

void
edge_revoke_free(edge_revoke *rv)
{
    if (rv == NULL)
        return;
    edge_revoke_stop(rv);
    if (rv->started)
        pthread_join(rv->thread, NULL);
    for (size_t i = 0; i < BUCKETS; i++)
        for (entry *e = rv->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    pthread_mutex_destroy(&rv->lock);
    free(rv);
}
