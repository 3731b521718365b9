/* log.c - JSON lines on stderr, escaped by jansson, one write(2) per line. */
#include "log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char log_service[64] = "layby";
static char log_instance[64] = "0";
static log_level log_min = LOG_INFO;

static const char *const level_names[] = {
    [LOG_DEBUG] = "debug",
    [LOG_INFO] = "info",
    [LOG_WARN] = "warn",
    [LOG_ERROR] = "error",
};

void
log_init(const char *service, const char *instance, log_level min)
{
    snprintf(log_service, sizeof log_service, "%s", service ? service : "layby");
    snprintf(log_instance, sizeof log_instance, "%s", instance ? instance : "0");
    log_min = min;
}

lb_status
log_level_parse(log_level *out, const char *s, lb_err *err)
{
    for (size_t i = 0; i < LB_COUNTOF(level_names); i++) {
        if (strcmp(level_names[i], s) == 0) {
            *out = (log_level)i;
            return LB_OK;
        }
    }
    return lb_err_set(err, LB_ERR_CONFIG, "log level '%s' is not debug|info|warn|error", s);
}

void
log_write(log_level lvl, const log_ctx *lc, const char *event, const char *msg, const log_kv *kvs,
          size_t n)
{
    if (lvl < log_min)
        return;
    char ts[32];
    lb_time_format(ts, sizeof ts, lb_now_ms());
    json_t *o = json_object();
    if (o == NULL)
        return;
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "level", json_string(level_names[lvl]));
    json_object_set_new(o, "service", json_string(log_service));
    json_object_set_new(o, "instance", json_string(log_instance));
    if (lc != NULL && lc->correlation != NULL && lc->correlation[0] != '\0')
        json_object_set_new(o, "correlation", json_string(lc->correlation));
    json_object_set_new(o, "event", json_string(event ? event : ""));
    json_object_set_new(o, "msg", json_string(msg ? msg : ""));
    for (size_t i = 0; i < n; i++) {
        const log_kv *kv = &kvs[i];
        switch (kv->kind) {
        case LOG_KV_STR:
            json_object_set_new(o, kv->key, kv->s ? json_string(kv->s) : json_null());
            break;
        case LOG_KV_INT:
            json_object_set_new(o, kv->key, json_integer(kv->i));
            break;
        case LOG_KV_ERR:
            if (kv->err != NULL) {
                json_object_set_new(o, "error", json_string(kv->err->msg));
                json_object_set_new(o, "status", json_string(lb_status_name(kv->err->code)));
            }
            break;
        case LOG_KV_END:
            break;
        }
    }
    char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (line == NULL)
        return;
    size_t len = strlen(line);
    line[len] = '\n'; /* json_dumps leaves room: we overwrite the NUL, never read it again */
    ssize_t w = write(STDERR_FILENO, line, len + 1);
    (void)w;
    free(line);
}
