/* log.h - structured logs: one JSON object a line on stderr.
 *
 * Every line carries time, level, service, instance, event (a stable dotted
 * name), the correlation id when there is one, a message and typed extras:
 *   log_warn(lc, "bus.nak", "redelivering", LOG_STR("subject", s), LOG_INT("attempt", n));
 * Never log passwords, tokens, codes, emails or addresses.
 *
 * Ownership: log_ctx is caller memory; strings passed in are copied out at once.
 * Threads:   safe; one write(2) per line so lines never interleave.
 */
#ifndef LAYBY_ENGINE_LOG_H
#define LAYBY_ENGINE_LOG_H

#include "lb.h"

typedef enum log_level {
    LOG_DEBUG,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR
} log_level;

/* Per-flow context: which correlation id lines belong to. */
typedef struct log_ctx {
    const char *correlation; /* borrowed, may be NULL */
} log_ctx;

typedef enum log_kv_kind {
    LOG_KV_END,
    LOG_KV_STR,
    LOG_KV_INT,
    LOG_KV_ERR
} log_kv_kind;

typedef struct log_kv {
    log_kv_kind kind;
    const char *key;
    const char *s;
    int64_t i;
    const lb_err *err;
} log_kv;

#define LOG_STR(k, v) ((log_kv){ .kind = LOG_KV_STR, .key = (k), .s = (v) })
#define LOG_INT(k, v) ((log_kv){ .kind = LOG_KV_INT, .key = (k), .i = (int64_t)(v) })
#define LOG_ERR(e)    ((log_kv){ .kind = LOG_KV_ERR, .key = "error", .err = (e) })

/* Sets the process-wide service and instance names (copied) and minimum level. */
void log_init(const char *service, const char *instance, log_level min);
/* Parses "debug|info|warn|error"; LB_ERR_CONFIG otherwise. */
lb_status log_level_parse(log_level *out, const char *s, lb_err *err);

void log_write(log_level lvl, const log_ctx *lc, const char *event, const char *msg,
               const log_kv *kvs, size_t n);

#define LOG__KVS(...) ((const log_kv[]){ { .kind = LOG_KV_END }, __VA_ARGS__ })
#define LOG__N(...)   (sizeof(LOG__KVS(__VA_ARGS__)) / sizeof(log_kv) - 1)
#define log_debug(lc, ev, msg, ...) \
    log_write(LOG_DEBUG, (lc), (ev), (msg), LOG__KVS(__VA_ARGS__) + 1, LOG__N(__VA_ARGS__))
#define log_info(lc, ev, msg, ...) \
    log_write(LOG_INFO, (lc), (ev), (msg), LOG__KVS(__VA_ARGS__) + 1, LOG__N(__VA_ARGS__))
#define log_warn(lc, ev, msg, ...) \
    log_write(LOG_WARN, (lc), (ev), (msg), LOG__KVS(__VA_ARGS__) + 1, LOG__N(__VA_ARGS__))
#define log_error(lc, ev, msg, ...) \
    log_write(LOG_ERROR, (lc), (ev), (msg), LOG__KVS(__VA_ARGS__) + 1, LOG__N(__VA_ARGS__))

#endif
