/* bus_json.c - a stored message (a stream's, read by sequence) as one JSON
 * object, for layby-ctl (replay, dlq list|show) and the edge's dead-letter
 * reads (bus_dlq.c), so the CLI and the console show the same.
 */
#include "bus_json.h"

#include <pthread.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "codec.h"

/* Written as text into a codec_buf, not built as a jansson tree: replay
 * writes one per stored message (see ctl_events.c); bus_json_tree() parses
 * the same text for the commands that want a tree, so both agree. */

/* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ": microseconds, so that the hops of a flow
 * can be told apart from JetStream's clock alone (bench/saga_timeline.py);
 * the part up to the second is kept from the last call, as a replay's
 * neighbours mostly share their second. */
static lb_status
time_write(codec_buf *b, int64_t us)
{
    static _Thread_local int64_t last_s = INT64_MIN;
    static _Thread_local char last[32];
    int64_t s = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
    if (s != last_s) {
        char when[40];
        lb_time_format(when, sizeof when, s * 1000);
        snprintf(last, sizeof last, "%.19s", when);
        last_s = s;
    }
    char text[64];
    int n = snprintf(text, sizeof text, "\"%s.%06dZ\"", last, (int)(us - s * 1000000));
    return codec_buf_add(b, text, (size_t)n);
}

/* "key": after a comma unless it is the object's first. */
static lb_status
key_write(codec_buf *b, const char *key, bool first)
{
    lb_status s = first ? LB_OK : codec_buf_add(b, ",", 1);
    if (s == LB_OK)
        s = codec_buf_string(b, key, strlen(key));
    return s == LB_OK ? codec_buf_add(b, ":", 1) : s;
}

/* A header value as a JSON string. Headers are bytes to NATS: a value that
 * is not UTF-8 is read as Latin-1, so the line stays JSON. */
static lb_status
header_value_write(codec_buf *b, const char *v)
{
    size_t n = strlen(v), k = 0;
    lb_status s = codec_buf_string(b, v, n);
    if (s != LB_ERR_INVALID)
        return s;
    unsigned char *u = malloc(2 * n + 1);
    if (u == NULL)
        return LB_ERR_NOMEM;
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        if (*p >= 0x80)
            u[k++] = (unsigned char)(0xc0 | (*p >> 6)),
            u[k++] = (unsigned char)(0x80 | (*p & 0x3f));
        else
            u[k++] = *p;
    }
    s = codec_buf_string(b, (const char *)u, k);
    free(u);
    return s;
}

/* Headers as an object: a string per key, an array when a key repeats. */
static lb_status
headers_write(codec_buf *b, natsMsg *m)
{
    const char **keys = NULL;
    int n = 0;
    lb_status s = codec_buf_add(b, "{", 1);
    if (s == LB_OK && natsMsgHeader_Keys(m, &keys, &n) != NATS_OK)
        n = 0;
    for (int i = 0, written = 0; i < n && s == LB_OK; i++) {
        const char **vals = NULL;
        int nv = 0;
        if (natsMsgHeader_Values(m, keys[i], &vals, &nv) != NATS_OK)
            continue;
        s = key_write(b, keys[i], written++ == 0);
        if (s == LB_OK && nv != 1)
            s = codec_buf_add(b, "[", 1);
        for (int k = 0; k < nv && s == LB_OK; k++) {
            if (k > 0)
                s = codec_buf_add(b, ",", 1);
            if (s == LB_OK)
                s = header_value_write(b, vals[k]);
        }
        if (s == LB_OK && nv != 1)
            s = codec_buf_add(b, "]", 1);
        free((void *)vals);
    }
    free((void *)keys);
    return s == LB_OK ? codec_buf_add(b, "}", 1) : s;
}

/* Room for protobuf-c to unpack one message into, reused message after
 * message: replay would otherwise malloc and free every string of every
 * message. A message that does not fit takes malloc's memory instead. */
typedef struct body_arena {
    size_t used;
    _Alignas(max_align_t) unsigned char mem[64 * 1024];
} body_arena;

static void *
arena_alloc(void *data, size_t size)
{
    body_arena *a = data;
    size_t need = (size + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
    if (need < size || need > sizeof a->mem - a->used)
        return malloc(size);
    void *p = a->mem + a->used;
    a->used += need;
    return p;
}

static void
arena_free(void *data, void *p)
{
    body_arena *a = data;
    uintptr_t at = (uintptr_t)p, mem = (uintptr_t)a->mem;
    if (at < mem || at >= mem + sizeof a->mem) /* the arena's own goes with the next reset */
        free(p);
}

/* The body decoded by its Layby-Type, as proto3 JSON appended to b; on
 * failure nothing is appended and why says what is wrong. */
static lb_status
body_write(codec_buf *b, natsMsg *m, const char *type, lb_err *why)
{
    /* One arena for the process (64 KB of thread-local storage would come off
     * each civetweb worker's small stack): a thread that finds it taken
     * decodes with malloc instead. */
    static body_arena arena;
    static pthread_mutex_t arena_lock = PTHREAD_MUTEX_INITIALIZER;
    bool mine = pthread_mutex_trylock(&arena_lock) == 0;
    ProtobufCAllocator alloc = { arena_alloc, arena_free, &arena };
    const char *data = natsMsg_GetData(m);
    int len = natsMsg_GetDataLength(m);
    const ProtobufCMessageDescriptor *d = type != NULL ? codec_type_find(type) : NULL;
    ProtobufCMessage *msg = NULL;
    lb_status s = LB_OK;
    if (d == NULL)
        s = lb_err_set(why, LB_ERR_DECODE, "unknown %s '%s'", BUS_H_TYPE, type ? type : "");
    if (mine)
        arena.used = 0;
    if (s == LB_OK)
        s = codec_unpack_with(&msg, d, (const uint8_t *)(data ? data : ""), (size_t)len,
                              mine ? &alloc : NULL, why);
    if (s == LB_OK) {
        s = codec_proto3_write(b, msg, why);
        protobuf_c_message_free_unpacked(msg, mine ? &alloc : NULL);
    }
    if (mine)
        pthread_mutex_unlock(&arena_lock);
    return s;
}

/* The raw body and why it could not be decoded. */
static lb_status
body_raw_write(codec_buf *b, natsMsg *m, const lb_err *why)
{
    const char *data = natsMsg_GetData(m);
    size_t len = (size_t)natsMsg_GetDataLength(m);
    size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    lb_status s = key_write(b, "bodyBase64", false);
    if (s == LB_OK)
        s = codec_buf_reserve(b, n + 2);
    if (s != LB_OK)
        return s;
    b->data[b->len++] = '"';
    sodium_bin2base64(b->data + b->len, n, (const unsigned char *)(data ? data : ""), len,
                      sodium_base64_VARIANT_ORIGINAL);
    b->len += n - 1; /* not its NUL */
    b->data[b->len++] = '"';
    s = key_write(b, "error", false);
    return s == LB_OK ? codec_buf_string(b, why->msg, strlen(why->msg)) : s;
}

lb_status
bus_json_write(codec_buf *b, natsMsg *m, uint64_t seq, int64_t time_ns)
{
    const char *type = NULL, *subject = natsMsg_GetSubject(m);
    lb_err why;
    size_t start = b->len;
    natsMsgHeader_Get(m, BUS_H_TYPE, &type);
    lb_status s = codec_buf_add(b, "{\"seq\":", 7);
    if (s == LB_OK)
        s = codec_buf_int(b, (int64_t)seq);
    if (s == LB_OK && (s = key_write(b, "time", false)) == LB_OK)
        s = time_write(b, time_ns / 1000);
    if (s == LB_OK && (s = key_write(b, "subject", false)) == LB_OK)
        s = header_value_write(b, subject ? subject : "");
    if (s == LB_OK && (s = key_write(b, "headers", false)) == LB_OK)
        s = headers_write(b, m);
    if (s == LB_OK && (s = key_write(b, "type", false)) == LB_OK)
        s = type != NULL ? header_value_write(b, type) : codec_buf_add(b, "null", 4);
    if (s == LB_OK && (s = key_write(b, "body", false)) == LB_OK &&
        body_write(b, m, type, &why) != LB_OK) {
        b->len -= strlen(",\"body\":"); /* undecodable: the raw bytes instead */
        s = body_raw_write(b, m, &why);
    }
    if (s == LB_OK)
        s = codec_buf_add(b, "}", 1);
    if (s != LB_OK)
        b->len = start;
    return s;
}

json_t *
bus_json_tree(natsMsg *m, uint64_t seq, int64_t time_ns)
{
    codec_buf b = { 0 };
    json_t *o = NULL;
    if (bus_json_write(&b, m, seq, time_ns) == LB_OK)
        o = json_loadb(b.data, b.len, 0, NULL);
    codec_buf_free(&b);
    return o != NULL ? o : json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "error", "out of memory");
}
