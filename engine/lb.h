/* lb.h - statuses, errors and small helpers shared by every layby module.
 *
 * Every fallible function returns an lb_status and fills an optional lb_err.
 * The status list is one X-macro so the enum, its names and the HTTP error
 * body the edge sends can never drift apart.
 *
 * Ownership: lb_err is caller memory, never allocated.
 * Threads:   everything here is reentrant.
 */
#ifndef LAYBY_ENGINE_LB_H
#define LAYBY_ENGINE_LB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LB_COUNTOF(a) (sizeof(a) / sizeof((a)[0]))

/* X(name, http status, snake_case code, default human text) */
/* clang-format off */
#define LB_STATUS_MAP(X)                                                              \
    X(OK,               200, "ok",                    "ok")                           \
    X(ERR_INVALID,      400, "invalid_argument",      "invalid input")                \
    X(ERR_BAD_JSON,     400, "malformed_json",        "request body is not valid JSON") \
    X(ERR_UNKNOWN_FIELD,400, "unknown_field",         "unknown field")                \
    X(ERR_TYPE,         400, "wrong_type",            "field has the wrong type")     \
    X(ERR_LENGTH,       411, "length_required",       "Content-Length is required")   \
    X(ERR_TOO_LARGE,    413, "payload_too_large",     "request body is too large")    \
    X(ERR_MEDIA_TYPE,   415, "unsupported_media_type","expected application/json")    \
    X(ERR_UNAUTHORIZED, 401, "unauthorized",          "missing or invalid token")     \
    X(ERR_FORBIDDEN,    403, "forbidden",             "not allowed")                  \
    X(ERR_NOT_FOUND,    404, "not_found",             "not found")                    \
    X(ERR_METHOD,       405, "method_not_allowed",    "method not allowed")           \
    X(ERR_CONFLICT,     409, "conflict",              "conflict")                     \
    X(ERR_STOCK,        409, "out_of_stock",          "not enough stock")             \
    X(ERR_STATE,        409, "invalid_state",         "not allowed in the current state") \
    X(ERR_UNPROCESSABLE,422, "unprocessable",         "request cannot be processed")  \
    X(ERR_THROTTLED,    429, "too_many_requests",     "too many requests")            \
    X(ERR_DECODE,       400, "bad_message",           "message cannot be decoded")    \
    X(ERR_CONFIG,       500, "config",                "bad configuration")            \
    X(ERR_NOMEM,        500, "internal",              "out of memory")                \
    X(ERR_INTERNAL,     500, "internal",              "internal error")               \
    X(ERR_DB,           503, "unavailable",           "database error")               \
    X(ERR_BUS,          503, "unavailable",           "message bus error")            \
    X(ERR_UNAVAILABLE,  503, "unavailable",           "service unavailable")          \
    X(ERR_TIMEOUT,      504, "timeout",               "timed out")                    \
    X(ERR_CRYPTO,       500, "internal",              "crypto error")                 \
    X(ERR_STOCK_NEGATIVE,409, "stock_negative",       "stock cannot go below zero")   \
    X(ERR_NOT_CANCELLABLE, 409, "not_cancellable",    "the order can no longer be cancelled") \
    X(ERR_NOT_RETURNABLE, 409, "not_returnable",      "the order cannot be returned") \
    X(ERR_PAYMENT_DECLINED, 402, "payment_declined",  "the card was declined") \
    X(ERR_USERNAME_TAKEN,   409, "username_taken",      "username is taken")          \
    X(ERR_CREDENTIALS,      401, "invalid_credentials", "wrong username or password") \
    X(ERR_NOT_VERIFIED,     403, "email_not_verified",  "email address not verified yet") \
    X(ERR_LOCKED,           403, "account_locked",      "account is locked")          \
    X(ERR_CODE,             422, "invalid_code",        "code is wrong or expired")
/* clang-format on */

typedef enum lb_status {
#define LB__ENUM(name, http, code, text) LB_##name,
    LB_STATUS_MAP(LB__ENUM)
#undef LB__ENUM
    LB__STATUS_COUNT
} lb_status;

#define LB_ERR_MSG_MAX   256
#define LB_ERR_FIELD_MAX 128

typedef struct lb_err {
    lb_status code;
    char msg[LB_ERR_MSG_MAX];     /* human text, safe to show a client for 4xx */
    char field[LB_ERR_FIELD_MAX]; /* JSON path of the bad field, "" if none */
} lb_err;

/* Fills err (if not NULL) and returns code, so `return lb_err_set(...)` reads well. */
lb_status lb_err_set(lb_err *err, lb_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, naming the offending field (a JSON path such as "items[2].quantity"). */
lb_status lb_err_field(lb_err *err, lb_status code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prepends "what: " to err->msg, keeping the code; returns err->code (LB_ERR_INTERNAL if NULL). */
lb_status lb_err_wrap(lb_err *err, const char *what);
void lb_err_clear(lb_err *err);

const char *lb_status_name(lb_status s); /* "ERR_STOCK" */
const char *lb_status_code(lb_status s); /* "out_of_stock" */
const char *lb_status_text(lb_status s); /* "not enough stock" */
int lb_status_http(lb_status s);         /* 409 */
/* Reverse of lb_status_code(); LB_ERR_INTERNAL when unknown. */
lb_status lb_status_from_code(const char *code);
/* True for errors worth retrying later (database, bus, timeout, unavailable). */
bool lb_status_transient(lb_status s);

/* Wall clock and monotonic clock. */
int64_t lb_now_ms(void);
int64_t lb_mono_us(void);
/* Formats ms since epoch as RFC 3339 UTC with milliseconds; out needs 32 bytes. */
void lb_time_format(char *out, size_t n, int64_t ms);
/* RFC 3339 ("2025-01-31T09:30:00.250Z", "...+09:00") to ms since the epoch;
 * LB_ERR_CONFIG naming the text otherwise. */
lb_status lb_time_parse(int64_t *out_ms, const char *s, lb_err *err);

/* True when s is well-formed UTF-8 (no overlongs, no surrogates). */
bool lb_utf8_valid(const char *s);
/* Number of code points in a valid UTF-8 string. */
size_t lb_utf8_len(const char *s);

/* snprintf that reports truncation as LB_ERR_INVALID. */
lb_status lb_fmt(char *out, size_t n, lb_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
