/* edge_model.c - the product read model and its follower (edge_model.h).
 *
 * Layout: every product is one heap struct, never freed before the model.
 * `sorted` holds them in the list's order (created_us, product id), so a page
 * is a binary search and a short walk; `index` is a chained hash of the ids
 * for the detail. Both change only under the write lock, taken for an
 * insert; a reader takes the read lock just long enough to collect pointers,
 * then copies the fields outside it (they are immutable, the stock is
 * atomic, and a product lives as long as the model).
 *
 * Invariants:
 * (1) sorted and index change only under the write lock: the follower's
 *     inserts, and a worker's insert of the product its create reply carried.
 *     A stock change holds the read lock (to find the product) and stores
 *     the stock atomically; only the follower changes stock after an insert.
 * (2) A product's version only grows; its stock is the one of that version.
 * (3) ready is true only after a snapshot taken after reading sequence S,
 *     and every event after S up to the consumer's current end, were applied
 *     with the connection up all along. Any disconnect, reconnect or
 *     subscription failure clears it until the follower proves (3) again.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np: writers must not starve */
#include "edge_model.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "engine/page_cursor.h"
#include "engine/subjects.h"
#include "id.h"
#include "log.h"
#include "metrics.h"

#define PRODUCTS_FILTER "layby.evt.product.>"
#define SNAPSHOT_PAGE   1000
#define NEXT_WAIT_MS    50
#define PROBE_EVERY_US  50000 /* consumer info while not ready */
#define CHECK_EVERY_US  10000 /* connection state */
#define RETRY_WAIT_MS   1000
#define PAGE_MAX        100 /* catalog.h CATALOG_PAGE_MAX */
#define PAGE_DEFAULT    20
#define TEXT_MAX_CHARS  100 /* category and q, catalog.h */
#define INDEX_BUCKETS_0 4096

typedef struct mproduct {
    struct mproduct *next; /* index chain */
    char id[ID_STR_LEN];
    int64_t created_us;
    int64_t version; /* written under the write lock, or by the follower under the read lock */
    _Atomic int64_t stock;
    int64_t price;
    char *name, *details, *category, *created_at;
    /* The product's JSON as the codec writes it (codec_json_encode_text of a
     * Product), cut around the stock, the one field that changes: a read
     * copies head, prints the stock and copies tail (product_render). */
    char *json_head, *json_tail;
    size_t head_len, tail_len;
} mproduct;

struct edge_model {
    /* guarded by lock (written by the follower under the write side) */
    pthread_rwlock_t lock;
    mproduct **sorted;
    size_t n, cap;
    mproduct **index;
    size_t n_buckets;
    /* follower */
    bus *bus;
    int64_t query_timeout_ms;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_bool ready;
    metrics_metric *m_ready, *m_products, *m_applied, *m_lag_us;
    metrics_metric *m_served, *m_passed; /* reads answered here / left to the catalog */
};

/* --- the structure ---------------------------------------------------------------- */

static size_t
id_hash(const char *id, size_t n_buckets)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: ids are random already */
    for (; *id; id++)
        h = (h ^ (uint8_t)*id) * 1099511628211ULL;
    return (size_t)(h % n_buckets);
}

static mproduct *
index_find(mproduct *const *index, size_t n_buckets, const char *id)
{
    for (mproduct *p = index[id_hash(id, n_buckets)]; p != NULL; p = p->next)
        if (strcmp(p->id, id) == 0)
            return p;
    return NULL;
}

/* (created_us, id) of a before b? */
static int
key_cmp(int64_t a_us, const char *a_id, int64_t b_us, const char *b_id)
{
    if (a_us != b_us)
        return a_us < b_us ? -1 : 1;
    return strcmp(a_id, b_id); /* lower-case canonical text sorts as uuid bytes do */
}

/* First position whose key is greater than (us, id). */
static size_t
sorted_after(mproduct *const *sorted, size_t n, int64_t us, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(sorted[mid]->created_us, sorted[mid]->id, us, id) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void
product_free(mproduct *p)
{
    if (p == NULL)
        return;
    free(p->name);
    free(p->details);
    free(p->category);
    free(p->created_at);
    free(p->json_head);
    free(p->json_tail);
    free(p);
}

/* "2026-12-02T11:54:40.123Z" -> µs since the epoch (the catalog keeps ms). */
static bool
created_parse(int64_t *out, const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0, used = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &used) != 7 ||
        used != (int)strlen(s))
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    *out = (int64_t)t * 1000000 + (int64_t)ms * 1000;
    return true;
}

/* Under the write lock: room for one more in sorted and a fitting index. */
static lb_status
grow_locked(edge_model *m, lb_err *err)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 1024;
        mproduct **s = realloc(m->sorted, cap * sizeof *s);
        if (s == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "read model");
        m->sorted = s;
        m->cap = cap;
    }
    if (m->n + 1 > 2 * m->n_buckets) {
        size_t nb = 4 * m->n_buckets;
        mproduct **idx = calloc(nb, sizeof *idx);
        if (idx == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "read model index");
        for (size_t i = 0; i < m->n_buckets; i++)
            for (mproduct *p = m->index[i], *next; p != NULL; p = next) {
                next = p->next;
                size_t h = id_hash(p->id, nb);
                p->next = idx[h];
                idx[h] = p;
            }
        free(m->index);
        m->index = idx;
        m->n_buckets = nb;
    }
    return LB_OK;
}

/* Renders mp's JSON once, at insert. Building a jansson tree per product
 * and dumping it on every read was most of a list page's cost (20 products;
 * docs/DECISIONS.md §5b'); the codec itself writes the text here, so both
 * paths answer the same bytes (e2e catalog_test compares them). */
static bool
product_render(mproduct *mp)
{
    Layby__V1__Product p = LAYBY__V1__PRODUCT__INIT;
    p.product_id = mp->id;
    p.name = mp->name;
    p.price = mp->price;
    p.details = mp->details;
    p.category = mp->category;
    p.stock_available = 0;
    p.created_at = mp->created_at;
    char *text = NULL;
    if (codec_json_encode_text(&text, &p.base, NULL) != LB_OK)
        return false;
    /* Inside a JSON string every '"' is escaped, so ,"stockAvailable": with a
     * bare quote can only be the key. */
    static const char key[] = ",\"stockAvailable\":0";
    char *at = strstr(text, key);
    if (at == NULL) {
        free(text);
        return false;
    }
    mp->json_tail = strdup(at + sizeof key - 1);
    mp->head_len = (size_t)(at - text) + sizeof key - 2; /* through the ':' */
    text[mp->head_len] = '\0';
    mp->json_head = text;
    mp->tail_len = mp->json_tail ? strlen(mp->json_tail) : 0;
    return mp->json_tail != NULL;
}

static mproduct *
product_new(const Layby__V1__Product *p, int64_t created_us, int64_t version)
{
    mproduct *mp = calloc(1, sizeof *mp);
    if (mp == NULL)
        return NULL;
    snprintf(mp->id, sizeof mp->id, "%s", p->product_id);
    mp->created_us = created_us;
    mp->version = version;
    atomic_init(&mp->stock, p->stock_available);
    mp->price = p->price;
    mp->name = strdup(p->name);
    mp->details = strdup(p->details);
    mp->category = strdup(p->category);
    mp->created_at = strdup(p->created_at);
    if (!mp->name || !mp->details || !mp->category || !mp->created_at || !product_render(mp)) {
        product_free(mp);
        return NULL;
    }
    return mp;
}

/* Inserts or, for a known product, keeps the higher version's stock
 * (invariants 1, 2). The follower and workers (create replies) both call it. */
static lb_status
product_merge(edge_model *m, const Layby__V1__Product *p, int64_t created_us, int64_t version,
              lb_err *err)
{
    lb_status st = LB_OK;
    pthread_rwlock_wrlock(&m->lock);
    mproduct *have = index_find(m->index, m->n_buckets, p->product_id);
    if (have != NULL) {
        if (version > have->version) {
            atomic_store(&have->stock, p->stock_available);
            have->version = version;
        }
        goto out;
    }
    mproduct *mp = product_new(p, created_us, version);
    if (mp == NULL) {
        st = lb_err_set(err, LB_ERR_NOMEM, "read model product");
        goto out;
    }
    if ((st = grow_locked(m, err)) != LB_OK) {
        product_free(mp);
        goto out;
    }
    size_t at = sorted_after(m->sorted, m->n, created_us, mp->id);
    memmove(&m->sorted[at + 1], &m->sorted[at], (m->n - at) * sizeof *m->sorted);
    m->sorted[at] = mp;
    m->n++;
    size_t h = id_hash(mp->id, m->n_buckets);
    mp->next = m->index[h];
    m->index[h] = mp;
    metrics_set(m->m_products, (int64_t)m->n);
out:
    pthread_rwlock_unlock(&m->lock);
    return st;
}

lb_status
edge_model_product_put(edge_model *m, const Layby__V1__Product *p, int64_t version, lb_err *err)
{
    int64_t us;
    if (p == NULL || !id_valid(p->product_id) || p->name == NULL || p->details == NULL ||
        p->category == NULL || p->created_at == NULL || !created_parse(&us, p->created_at))
        return lb_err_set(err, LB_ERR_INVALID, "product not usable by the read model");
    char id[ID_STR_LEN];
    snprintf(id, sizeof id, "%s", p->product_id);
    for (char *c = id; *c; c++)
        if (*c >= 'A' && *c <= 'F')
            *c = (char)(*c - 'A' + 'a');
    Layby__V1__Product copy = *p;
    copy.product_id = id;
    return product_merge(m, &copy, us, version, err);
}

/* A stock change, by the follower (invariants 1, 2): the read lock suffices,
 * since version is written only by this thread or under the write lock. */
static void
stock_apply(edge_model *m, const Layby__V1__ProductStockChanged *ch)
{
    pthread_rwlock_rdlock(&m->lock);
    mproduct *p = index_find(m->index, m->n_buckets, ch->product_id);
    if (p != NULL && ch->version > p->version) {
        atomic_store(&p->stock, ch->stock_available);
        p->version = ch->version;
    }
    pthread_rwlock_unlock(&m->lock);
}

/* --- readers -------------------------------------------------------------------------- */

bool
edge_model_ready(edge_model *m)
{
    return m != NULL && atomic_load(&m->ready);
}

size_t
edge_model_count(edge_model *m)
{
    pthread_rwlock_rdlock(&m->lock);
    size_t n = m->n;
    pthread_rwlock_unlock(&m->lock);
    return n;
}

/* The room product_write() needs for p: its text and the longest stock. */
static size_t
product_room(const mproduct *p)
{
    return p->head_len + p->tail_len + 21; /* "-9223372036854775808" */
}

/* Writes p's JSON at out (room: product_room(p)), its stock as of now;
 * returns the bytes written. */
static size_t
product_write(char *out, mproduct *p)
{
    memcpy(out, p->json_head, p->head_len);
    size_t n = p->head_len;
    n += (size_t)sprintf(out + n, "%lld", (long long)atomic_load(&p->stock));
    memcpy(out + n, p->json_tail, p->tail_len);
    return n + p->tail_len;
}

/* Counts who answers a read: st LB_ERR_UNAVAILABLE leaves it to the catalog. */
static lb_status
counted(edge_model *m, lb_status st)
{
    if (m != NULL)
        metrics_add(st == LB_ERR_UNAVAILABLE ? m->m_passed : m->m_served, 1);
    return st;
}

static lb_status
product_get(char **out, edge_model *m, const char *id, lb_err *err)
{
    if (!edge_model_ready(m) || id == NULL || strlen(id) >= ID_STR_LEN)
        return lb_err_set(err, LB_ERR_UNAVAILABLE, "read model not ready");
    char key[ID_STR_LEN];
    snprintf(key, sizeof key, "%s", id);
    for (char *c = key; *c; c++)
        if (*c >= 'A' && *c <= 'F')
            *c = (char)(*c - 'A' + 'a');
    pthread_rwlock_rdlock(&m->lock);
    mproduct *p = index_find(m->index, m->n_buckets, key);
    pthread_rwlock_unlock(&m->lock);
    if (p == NULL) /* perhaps created a moment ago: only the catalog can say 404 */
        return lb_err_set(err, LB_ERR_UNAVAILABLE, "not in the read model");
    char *text = malloc(product_room(p) + 1);
    if (text == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "product");
    text[product_write(text, p)] = '\0';
    *out = text;
    return LB_OK;
}

static char
ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* ILIKE '%q%' in the C locale: A-Z fold, every other byte is itself. */
static bool
name_matches(const char *name, const char *q, size_t qlen)
{
    if (qlen == 0)
        return true;
    for (const char *s = name; *s; s++) {
        size_t k = 0;
        while (k < qlen && s[k] && ascii_lower(s[k]) == ascii_lower(q[k]))
            k++;
        if (k == qlen)
            return true;
    }
    return false;
}

/* The requests the catalog would refuse: left to it, so the errors stay its own. */
static bool
list_servable(const Layby__V1__ListProducts *l)
{
    return l->limit >= 0 && l->limit <= PAGE_MAX && lb_utf8_valid(l->category) &&
           lb_utf8_len(l->category) <= TEXT_MAX_CHARS && lb_utf8_valid(l->q) &&
           lb_utf8_len(l->q) <= TEXT_MAX_CHARS;
}

/* The ProductPage's JSON as the codec writes it: {"items":[...],"nextCursor":"..."}
 * (a cursor is base64url: nothing to escape). */
static lb_status
page_new(char **out, mproduct *const *hits, size_t shown, bool more,
         const Layby__V1__ListProducts *l, lb_err *err)
{
    static const char start[] = "{\"items\":[", mid[] = "],\"nextCursor\":\"", end[] = "\"}";
    char cursor[PAGE_CURSOR_MAX] = "";
    if (more)
        page_cursor_encode(cursor, hits[shown - 1]->created_us, hits[shown - 1]->id, l->category,
                           l->q);
    size_t room = sizeof start + sizeof mid + sizeof end + strlen(cursor) + shown;
    for (size_t i = 0; i < shown; i++)
        room += product_room(hits[i]);
    char *text = malloc(room);
    if (text == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "page");
    size_t n = sizeof start - 1;
    memcpy(text, start, n);
    for (size_t i = 0; i < shown; i++) {
        if (i > 0)
            text[n++] = ',';
        n += product_write(text + n, hits[i]);
    }
    sprintf(text + n, "%s%s%s", mid, cursor, end);
    *out = text;
    return LB_OK;
}

static lb_status
product_page(char **out, edge_model *m, const Layby__V1__ListProducts *l, lb_err *err)
{
    if (!edge_model_ready(m))
        return lb_err_set(err, LB_ERR_UNAVAILABLE, "read model not ready");
    if (!list_servable(l))
        return lb_err_set(err, LB_ERR_UNAVAILABLE, "left to the catalog");
    size_t limit = l->limit ? (size_t)l->limit : PAGE_DEFAULT;
    int64_t after_us = INT64_MIN;
    char after_id[ID_STR_LEN] = "";
    if (l->cursor[0] != '\0' &&
        page_cursor_decode(l->cursor, l->category, l->q, &after_us, after_id, NULL) != LB_OK)
        return lb_err_set(err, LB_ERR_UNAVAILABLE, "left to the catalog"); /* its 400 */
    size_t qlen = strlen(l->q);
    mproduct *hits[PAGE_MAX + 1];
    size_t n_hits = 0;
    pthread_rwlock_rdlock(&m->lock);
    size_t i = l->cursor[0] ? sorted_after(m->sorted, m->n, after_us, after_id) : 0;
    for (; i < m->n && n_hits <= limit; i++) {
        mproduct *p = m->sorted[i];
        if ((l->category[0] == '\0' || strcmp(p->category, l->category) == 0) &&
            name_matches(p->name, l->q, qlen))
            hits[n_hits++] = p;
    }
    pthread_rwlock_unlock(&m->lock);
    bool more = n_hits > limit;
    return page_new(out, hits, more ? limit : n_hits, more, l, err);
}

lb_status
edge_model_product_get(char **out, edge_model *m, const char *id, lb_err *err)
{
    return counted(m, product_get(out, m, id, err));
}

lb_status
edge_model_product_page(char **out, edge_model *m, const Layby__V1__ListProducts *l, lb_err *err)
{
    return counted(m, product_page(out, m, l, err));
}

/* --- the follower ----------------------------------------------------------------------- */

static void
nap_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static lb_status
stream_last_seq(uint64_t *out, bus *b, lb_err *err)
{
    jsStreamInfo *si = NULL;
    jsErrCode ec = 0;
    natsStatus s = js_GetStreamInfo(&si, bus_js(b), BUS_STREAM_EVT, NULL, &ec);
    if (s != NATS_OK)
        return bus__nats_err(err, s, "LAYBY_EVT info");
    *out = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return LB_OK;
}

/* Every product from the catalog, a page at a time. */
static lb_status
snapshot_load(edge_model *m, lb_err *err)
{
    char cursor[PAGE_CURSOR_MAX] = "";
    lb_status st = LB_OK;
    do {
        Layby__V1__ListProductStates req = LAYBY__V1__LIST_PRODUCT_STATES__INIT;
        req.limit = SNAPSHOT_PAGE;
        req.cursor = cursor;
        bus_envelope env;
        bus_envelope_init(&env, &layby__v1__list_product_states__descriptor, NULL);
        natsMsg *reply = NULL;
        ProtobufCMessage *msg = NULL;
        st = bus_request(&reply, m->bus, SUBJ_CATALOG_PRODUCT_STATES, &env, &req.base,
                         m->query_timeout_ms, err);
        if (st == LB_OK)
            st = bus_reply_decode(&msg, reply, &layby__v1__product_states__descriptor, err);
        natsMsg_Destroy(reply);
        if (st != LB_OK)
            return st;
        Layby__V1__ProductStates *ps = (Layby__V1__ProductStates *)msg;
        for (size_t i = 0; st == LB_OK && i < ps->n_items; i++)
            if (ps->items[i]->product != NULL)
                st = product_merge(m, ps->items[i]->product, ps->items[i]->created_us,
                                   ps->items[i]->version, err);
        snprintf(cursor, sizeof cursor, "%s", ps->next_cursor ? ps->next_cursor : "");
        protobuf_c_message_free_unpacked(msg, NULL);
    } while (st == LB_OK && cursor[0] != '\0');
    return st;
}

static lb_status
subscribe_from(natsSubscription **out, bus *b, uint64_t start_seq, lb_err *err)
{
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = BUS_STREAM_EVT;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = start_seq;
    jsErrCode ec = 0;
    natsStatus s = js_SubscribeSync(out, bus_js(b), PRODUCTS_FILTER, NULL, &so, &ec);
    return s == NATS_OK ? LB_OK : bus__nats_err(err, s, "LAYBY_EVT ordered consumer");
}

/* One event; anything malformed is skipped (logged), never fatal. */
static void
event_apply(edge_model *m, natsMsg *msg)
{
    const char *subject = natsMsg_GetSubject(msg);
    const uint8_t *data = (const uint8_t *)natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    lb_err err;
    lb_err_clear(&err);
    if (strcmp(subject, SUBJ_PRODUCT_STOCK_CHANGED) == 0) {
        Layby__V1__ProductStockChanged *ch =
            layby__v1__product_stock_changed__unpack(NULL, len, data);
        if (ch != NULL && ch->product_id != NULL)
            stock_apply(m, ch);
        else
            log_warn(NULL, "edge.model_bad_event", "undecodable stock change skipped");
        if (ch != NULL)
            layby__v1__product_stock_changed__free_unpacked(ch, NULL);
    } else if (strcmp(subject, SUBJ_PRODUCT_CREATED) == 0) {
        Layby__V1__ProductCreated *c = layby__v1__product_created__unpack(NULL, len, data);
        if (c == NULL || edge_model_product_put(m, c->product, 1, &err) != LB_OK)
            log_warn(NULL, "edge.model_bad_event", "unusable product event skipped", LOG_ERR(&err));
        if (c != NULL)
            layby__v1__product_created__free_unpacked(c, NULL);
    }
    metrics_add(m->m_applied, 1);
}

/* Invariant (3): has every message the consumer delivered been applied?
 * Compared by consumer sequence: a filtered consumer's stream position may
 * move past other subjects' messages. applied_cseq is the consumer sequence
 * of the last message applied (a reset consumer counts from 1 again). */
static bool
caught_up(natsSubscription *sub, uint64_t applied_cseq)
{
    int queued = 0, bytes = 0;
    if (natsSubscription_GetPending(sub, &queued, &bytes) != NATS_OK || queued != 0)
        return false;
    jsConsumerInfo *ci = NULL;
    jsErrCode ec = 0;
    if (natsSubscription_GetConsumerInfo(&ci, sub, NULL, &ec) != NATS_OK)
        return false;
    bool ok = ci->NumPending == 0 && ci->Delivered.Consumer <= applied_cseq;
    jsConsumerInfo_Destroy(ci);
    return ok;
}

static void
ready_set(edge_model *m, bool ready)
{
    if (atomic_exchange(&m->ready, ready) != ready) {
        metrics_set(m->m_ready, ready);
        log_info(NULL, ready ? "edge.model_ready" : "edge.model_behind",
                 ready ? "product reads served by the edge" : "product reads go to the catalog",
                 LOG_INT("products", (int64_t)edge_model_count(m)));
    }
}

static uint64_t
reconnects(natsConnection *nc)
{
    natsStatistics *stats = NULL;
    uint64_t n = 0;
    if (natsStatistics_Create(&stats) == NATS_OK && natsConnection_GetStats(nc, stats) == NATS_OK)
        natsStatistics_GetCounts(stats, NULL, NULL, NULL, NULL, &n);
    natsStatistics_Destroy(stats);
    return n;
}

/* Snapshot after reading S, then subscribe from S + 1 (invariant 3). */
static natsSubscription *
follow_start(edge_model *m, bool *warned)
{
    natsSubscription *sub = NULL;
    uint64_t seq = 0;
    lb_err err;
    lb_err_clear(&err);
    if (stream_last_seq(&seq, m->bus, &err) == LB_OK && snapshot_load(m, &err) == LB_OK &&
        subscribe_from(&sub, m->bus, seq + 1, &err) == LB_OK) {
        log_info(NULL, "edge.model_follow", "read model loaded; following product events",
                 LOG_INT("from_seq", (int64_t)seq + 1),
                 LOG_INT("products", (int64_t)edge_model_count(m)));
        *warned = false;
        return sub;
    }
    if (!*warned)
        log_warn(NULL, "edge.model_start", "read model cannot start yet; retrying", LOG_ERR(&err));
    *warned = true;
    return NULL;
}

static void *
follow_main(void *arg)
{
    edge_model *m = arg;
    natsConnection *nc = bus_conn(m->bus);
    natsSubscription *sub = NULL;
    uint64_t applied_cseq = 0, seen_reconnects = reconnects(nc);
    int64_t probed_us = 0, checked_us = 0;
    bool warned = false;
    while (!atomic_load(&m->stop)) {
        if (sub == NULL) {
            ready_set(m, false);
            if ((sub = follow_start(m, &warned)) == NULL) {
                nap_ms(RETRY_WAIT_MS);
                continue;
            }
            applied_cseq = 0;
        }
        natsMsg *msg = NULL;
        natsStatus s = natsSubscription_NextMsg(&msg, sub, NEXT_WAIT_MS);
        if (s == NATS_OK) {
            jsMsgMetaData *md = NULL;
            if (natsMsg_GetMetaData(&md, msg) == NATS_OK) {
                applied_cseq = md->Sequence.Consumer;
                metrics_set(m->m_lag_us, lb_now_ms() * 1000 - md->Timestamp / 1000);
                jsMsgMetaData_Destroy(md);
            }
            event_apply(m, msg);
            natsMsg_Destroy(msg);
        } else if (s == NATS_INVALID_SUBSCRIPTION || s == NATS_CONNECTION_CLOSED) {
            if (atomic_load(&m->stop))
                break; /* the edge is stopping: it closed the connection */
            log_warn(NULL, "edge.model_follow_failed", "ordered consumer gone; starting again",
                     LOG_STR("error", natsStatus_GetText(s)));
            natsSubscription_Destroy(sub);
            sub = NULL;
            continue;
        } else if (s != NATS_TIMEOUT) {
            /* missed heartbeats, a slow consumer: the ordered consumer resets
             * itself from the last sequence it delivered; until the probe
             * proves it caught up, the catalog answers. */
            log_warn(NULL, "edge.model_follow_failed", "ordered consumer interrupted",
                     LOG_STR("error", natsStatus_GetText(s)));
            ready_set(m, false);
            nap_ms(NEXT_WAIT_MS);
        }
        int64_t now_us = lb_mono_us();
        if (now_us - checked_us < CHECK_EVERY_US)
            continue;
        checked_us = now_us;
        /* Invariant (3): a disconnect or reconnect since the last look may have
         * left events unseen until the ordered consumer resets. */
        uint64_t rc = reconnects(nc);
        if (natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED || rc != seen_reconnects) {
            seen_reconnects = rc;
            ready_set(m, false);
        }
        if (!atomic_load(&m->ready) && now_us - probed_us >= PROBE_EVERY_US) {
            probed_us = now_us;
            if (natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED &&
                caught_up(sub, applied_cseq))
                ready_set(m, true);
        }
    }
    /* No unsubscribe: the edge may not delete consumers on LAYBY_EVT
     * (etc/services.tsv); the server drops the ephemeral once it is idle. */
    natsSubscription_Destroy(sub);
    return NULL;
}

/* --- lifecycle ---------------------------------------------------------------------------- */

lb_status
edge_model_new(edge_model **out, lb_err *err)
{
    edge_model *m = calloc(1, sizeof *m);
    if (m == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "read model");
    m->index = calloc(INDEX_BUCKETS_0, sizeof *m->index);
    if (m->index == NULL) {
        free(m);
        return lb_err_set(err, LB_ERR_NOMEM, "read model index");
    }
    m->n_buckets = INDEX_BUCKETS_0;
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&m->lock, &a);
    pthread_rwlockattr_destroy(&a);
    m->m_ready = metrics_gauge("layby_edge_model_ready", "",
                               "1 while product reads are served from the edge's read model");
    m->m_products = metrics_gauge("layby_edge_model_products", "", "products in the read model");
    m->m_applied = metrics_counter("layby_edge_model_events_total", "",
                                   "product events applied to the read model");
    m->m_served = metrics_counter("layby_edge_model_reads_total", "answer=\"model\"",
                                  "product reads by who answered them");
    m->m_passed = metrics_counter("layby_edge_model_reads_total", "answer=\"catalog\"",
                                  "product reads by who answered them");
    m->m_lag_us = metrics_gauge("layby_edge_model_lag_microseconds", "",
                                "stored-to-applied time of the last product event");
    *out = m;
    return LB_OK;
}

lb_status
edge_model_follow(edge_model *m, bus *b, int64_t query_timeout_ms, lb_err *err)
{
    m->bus = b;
    m->query_timeout_ms = query_timeout_ms;
    if (pthread_create(&m->thread, NULL, follow_main, m) != 0)
        return lb_err_set(err, LB_ERR_INTERNAL, "start read model follower");
    m->started = true;
    return LB_OK;
}

void
edge_model_stop(edge_model *m)
{
    if (m != NULL)
        atomic_store(&m->stop, true);
}

void
edge_model_free(edge_model *m)
{
    if (m == NULL)
        return;
    edge_model_stop(m);
    if (m->started)
        pthread_join(m->thread, NULL);
    for (size_t i = 0; i < m->n; i++)
        product_free(m->sorted[i]);
    free(m->sorted);
    free(m->index);
    pthread_rwlock_destroy(&m->lock);
    free(m);
}
