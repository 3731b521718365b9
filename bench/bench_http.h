/* bench_http.h - HTTP calls for the load generators that go through the edge
 * (bench_checkout.c): one reusable libcurl handle per call slot, driven by a
 * libcurl multi; a batch runner for setup calls (sign-ups, addresses,
 * products) with bounded concurrency and retries of 429; and ES256 access
 * tokens signed with the stack's key as `layby-ctl token mint` signs them.
 *
 * Ownership: a bench_call owns its handle, headers and answer until
 *            bench_call_free(); bench_batch_run() frees what it made.
 * Threads:   one thread drives a multi and its calls.
 */
#ifndef LAYBY_BENCH_BENCH_HTTP_H
#define LAYBY_BENCH_BENCH_HTTP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_BODY_MAX 640
#define BENCH_AUTH_MAX 1200   /* "Authorization: Bearer <ES256 JWT>" */
#define BENCH_CALL_MS  30000  /* one HTTP call at most; longer counts as a timeout */
#define BENCH_RETRY_US 200000 /* before a batch item is tried again */

/* Where calls go: "http://127.0.0.1:8080" (no trailing slash). */
void bench_http_base_set(const char *url);

/* One HTTP call on a handle that keeps its connection (keep-alive). */
typedef struct bench_call {
    CURL *h;
    struct curl_slist *hdrs;
    char auth[BENCH_AUTH_MAX];
    char body[BENCH_BODY_MAX];
    /* the answer */
    long status; /* 0: none (a transport error or timeout) */
    char *resp;
    size_t len, cap;
    int64_t sent_us, done_us;
} bench_call;

int bench_call_init(bench_call *c); /* -1: no memory */
void bench_call_free(bench_call *c);
/* Prepares method path with an optional bearer token, JSON body and
 * Idempotency-Key (each NULL = none); clears the last answer. */
void bench_call_set(bench_call *c, const char *method, const char *path, const char *token,
                    const char *body, const char *idem);
/* Adds the prepared call to m; sent_us is now. */
void bench_call_start(CURLM *m, bench_call *c);
/* Drives m until a call finished or wait_ms passed; each finished call is
 * removed from m, gets done_us and status (0 for a transport error or
 * timeout), and is handed to done(c, arg). */
void bench_multi_step(CURLM *m, int wait_ms, void (*done)(bench_call *c, void *arg), void *arg);
/* A string field of the answer's JSON object into out; false when absent or too long. */
bool bench_resp_str(const bench_call *c, const char *key, char *out, size_t n);
/* error.code of an error answer into out, "" when it has none. */
void bench_resp_error_code(const bench_call *c, char *out, size_t n);

/* n independent calls, conc at a time. */
/* build(c, i, arg) prepares item i; check(c, i, arg) returns 0 when item i is
 * done, 1 to try it again shortly (429, not yet), -1 when it failed. */
typedef struct bench_batch {
    size_t n, conc;
    void (*build)(bench_call *c, size_t i, void *arg);
    int (*check)(bench_call *c, size_t i, void *arg);
    void *arg;
    /* state */
    bench_call *slots;
    size_t *item;  /* slot -> item */
    int64_t *wake; /* slot -> when to (re)send; 0 = in flight */
    size_t next, done;
    int failed;
    CURLM *m;
} bench_batch;

/* Runs b (n, conc, build, check, arg set; the rest zero) on its own multi,
 * whose connections are closed at the end (each holds an edge worker).
 * Returns how many items failed or were not done in timeout_s; -1 when it
 * could not run. */
int bench_batch_run(bench_batch *b, const char *what, int64_t timeout_s);

/* Reads the ES256 private key named by LAYBY_JWT_PRIVATE_KEY_FILE into key. */
int bench_key_load(unsigned char *key, size_t cap, size_t *key_len);
/* An access token (sub, role, iss = LAYBY_JWT_ISSUER or "layby", jti, iat,
 * exp in an hour) signed with key; -1 when it fails or does not fit in n. */
int bench_token_mint(char *out, size_t n, const char *sub, const char *role,
                     const unsigned char *key, size_t key_len);

#endif
