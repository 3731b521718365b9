/* lb.c - the status table, error filling and clocks every module shares. */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE   700 /* strptime */
#include "lb.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct status_row {
    const char *name;
    int http;
    const char *code;
    const char *text;
} status_row;

static const status_row status_rows[] = {
#define LB__ROW(name, http, code, text) [LB_##name] = { #name, http, code, text },
    LB_STATUS_MAP(LB__ROW)
#undef LB__ROW
};
_Static_assert(LB_COUNTOF(status_rows) == LB__STATUS_COUNT, "status table size");

static const status_row *
row_of(lb_status s)
{
    if ((unsigned)s >= LB__STATUS_COUNT)
        s = LB_ERR_INTERNAL;
    return &status_rows[s];
}

const char *
lb_status_name(lb_status s)
{
    return row_of(s)->name;
}

const char *
lb_status_code(lb_status s)
{
    return row_of(s)->code;
}

const char *
lb_status_text(lb_status s)
{
    return row_of(s)->text;
}

int
lb_status_http(lb_status s)
{
    return row_of(s)->http;
}

lb_status
lb_status_from_code(const char *code)
{
    if (code == NULL)
        return LB_ERR_INTERNAL;
    for (size_t i = 0; i < LB_COUNTOF(status_rows); i++)
        if (strcmp(status_rows[i].code, code) == 0)
            return (lb_status)i;
    return LB_ERR_INTERNAL;
}

bool
lb_status_transient(lb_status s)
{
    return s == LB_ERR_DB || s == LB_ERR_BUS || s == LB_ERR_UNAVAILABLE || s == LB_ERR_TIMEOUT;
}

lb_status
lb_err_set(lb_err *err, lb_status code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        err->field[0] = '\0';
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

lb_status
lb_err_field(lb_err *err, lb_status code, const char *field, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        snprintf(err->field, sizeof err->field, "%s", field ? field : "");
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

lb_status
lb_err_wrap(lb_err *err, const char *what)
{
    if (err == NULL)
        return LB_ERR_INTERNAL;
    char tmp[LB_ERR_MSG_MAX];
    size_t wl = strlen(what);
    if (wl + 2 >= sizeof tmp)
        wl = sizeof tmp - 3;
    memcpy(tmp, what, wl);
    tmp[wl] = ':';
    tmp[wl + 1] = ' ';
    size_t rest = sizeof tmp - wl - 2;
    size_t ml = strnlen(err->msg, rest - 1);
    memcpy(tmp + wl + 2, err->msg, ml);
    tmp[wl + 2 + ml] = '\0';
    memcpy(err->msg, tmp, sizeof tmp);
    return err->code;
}

void
lb_err_clear(lb_err *err)
{
    if (err != NULL) {
        err->code = LB_OK;
        err->msg[0] = '\0';
        err->field[0] = '\0';
    }
}

int64_t
lb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
lb_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
lb_time_format(char *out, size_t n, int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03dZ", base, (int)(ms % 1000));
}

lb_status
lb_fmt(char *out, size_t n, lb_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= n)
        return lb_err_set(err, LB_ERR_INVALID, "value too long (%d > %zu)", w, n - 1);
    return LB_OK;
}

bool
lb_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        size_t n;
        unsigned min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (p[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

size_t
lb_utf8_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xc0) != 0x80)
            n++;
    return n;
}

/* Reads "+hh:mm", "-hh:mm" or "Z" into seconds east of UTC. */
static bool
zone_parse(int64_t *out_s, const char *p)
{
    int hh = 0, mm = 0, used = 0;
    if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
        *out_s = 0;
        return true;
    }
    if ((p[0] != '+' && p[0] != '-') || sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &used) != 2 ||
        p[1 + used] != '\0' || hh > 23 || mm > 59)
        return false;
    *out_s = (p[0] == '-' ? -1 : 1) * (int64_t)(hh * 3600 + mm * 60);
    return true;
}

lb_status
lb_time_parse(int64_t *out_ms, const char *s, lb_err *err)
{
    struct tm tm = { 0 };
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    int64_t frac_ms = 0, zone_s = 0;
    if (p != NULL && *p == '.') {
        int64_t scale = 100;
        for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
            frac_ms += (*p - '0') * scale;
    }
    if (p == NULL || !zone_parse(&zone_s, p))
        return lb_err_set(err, LB_ERR_CONFIG,
                          "'%s' is not RFC 3339 (2025-01-31T09:30:00Z or +09:00)", s);
    *out_ms = ((int64_t)timegm(&tm) - zone_s) * 1000 + frac_ms;
    return LB_OK;
}
