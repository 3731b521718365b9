/* bench_http.c - see bench_http.h. */
#include "bench_http.h"

#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/id.h"
#include "engine/lb.h"

static char bench_http_base[512] = "http://127.0.0.1:8080";

void
bench_http_base_set(const char *url)
{
    snprintf(bench_http_base, sizeof bench_http_base, "%s", url);
}

static size_t
on_body(char *p, size_t sz, size_t n, void *arg)
{
    bench_call *c = arg;
    size_t add = sz * n;
    if (c->len + add + 1 > c->cap) {
        size_t cap = (c->len + add + 1) * 2;
        char *nr = realloc(c->resp, cap);
        if (nr == NULL)
            return 0;
        c->resp = nr;
        c->cap = cap;
    }
    memcpy(c->resp + c->len, p, add);
    c->len += add;
    c->resp[c->len] = '\0';
    return add;
}

int
bench_call_init(bench_call *c)
{
    memset(c, 0, sizeof *c);
    c->h = curl_easy_init();
    if (c->h == NULL)
        return -1;
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
    curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)BENCH_CALL_MS);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    return 0;
}

void
bench_call_free(bench_call *c)
{
    if (c->h != NULL)
        curl_easy_cleanup(c->h);
    curl_slist_free_all(c->hdrs);
    free(c->resp);
    memset(c, 0, sizeof *c);
}

/* Prepares method path with an optional bearer token, JSON body and key. */
void
bench_call_set(bench_call *c, const char *method, const char *path, const char *token,
               const char *body, const char *idem)
{
    char url[768], h[300];
    snprintf(url, sizeof url, "%s%s", bench_http_base, path);
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
    curl_slist_free_all(c->hdrs);
    c->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (token != NULL) {
        snprintf(c->auth, sizeof c->auth, "Authorization: Bearer %s", token);
        c->hdrs = curl_slist_append(c->hdrs, c->auth);
    }
    if (idem != NULL) {
        snprintf(h, sizeof h, "Idempotency-Key: %s", idem);
        c->hdrs = curl_slist_append(c->hdrs, h);
    }
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
    if (body != NULL) {
        snprintf(c->body, sizeof c->body, "%s", body);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, (long)strlen(c->body));
    } else {
        curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
    }
    c->status = 0;
    c->len = 0;
    if (c->resp != NULL)
        c->resp[0] = '\0';
}

void
bench_call_start(CURLM *m, bench_call *c)
{
    c->sent_us = lb_mono_us();
    curl_multi_add_handle(m, c->h);
}

/* Runs the multi until at least one call finished or wait_ms passed; calls
 * done(c, arg) for each finished one (removed from the multi first). */
void
bench_multi_step(CURLM *m, int wait_ms, void (*done)(bench_call *c, void *arg), void *arg)
{
    int running = 0;
    curl_multi_perform(m, &running);
    CURLMsg *msg;
    int left;
    bool any = false;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        bench_call *c = (bench_call *)priv;
        c->done_us = lb_mono_us();
        if (msg->data.result == CURLE_OK)
            curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
        else
            c->status = 0;
        curl_multi_remove_handle(m, c->h);
        any = true;
        done(c, arg);
    }
    if (!any)
        curl_multi_poll(m, NULL, 0, wait_ms, NULL);
}

/* A string field of the answer's JSON into out; false when absent. */
bool
bench_resp_str(const bench_call *c, const char *key, char *out, size_t n)
{
    json_t *j = c->resp != NULL ? json_loads(c->resp, 0, NULL) : NULL;
    const char *v = json_string_value(json_object_get(j, key));
    bool ok = v != NULL && (size_t)snprintf(out, n, "%s", v) < n;
    json_decref(j);
    return ok;
}

/* The error code of an error answer, "" otherwise. */
void
bench_resp_error_code(const bench_call *c, char *out, size_t n)
{
    json_t *j = c->resp != NULL ? json_loads(c->resp, 0, NULL) : NULL;
    const char *v = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    snprintf(out, n, "%s", v != NULL ? v : "");
    json_decref(j);
}

/* --- a batch of independent calls (setup) ----------------------------------------- */

static void
batch_done(bench_call *c, void *arg)
{
    bench_batch *b = arg;
    size_t s = (size_t)(c - b->slots);
    int rc = b->check(c, b->item[s], b->arg);
    if (rc == 1) {
        b->wake[s] = lb_mono_us() + BENCH_RETRY_US;
        return;
    }
    if (rc < 0)
        b->failed++;
    b->done++;
    b->item[s] = SIZE_MAX;
    b->wake[s] = 1;
}

/* Returns the number of items that failed (-1 when it could not run). */
int
bench_batch_run(bench_batch *b, const char *what, int64_t timeout_s)
{
    b->m = curl_multi_init();
    b->slots = calloc(b->conc, sizeof *b->slots);
    b->item = calloc(b->conc, sizeof *b->item);
    b->wake = calloc(b->conc, sizeof *b->wake);
    if (b->m == NULL || b->slots == NULL || b->item == NULL || b->wake == NULL)
        return -1;
    for (size_t s = 0; s < b->conc; s++) {
        if (bench_call_init(&b->slots[s]) != 0)
            return -1;
        b->item[s] = SIZE_MAX;
        b->wake[s] = 1;
    }
    int64_t deadline = lb_mono_us() + timeout_s * 1000000;
    while (b->done < b->n && lb_mono_us() < deadline) {
        int64_t now = lb_mono_us();
        for (size_t s = 0; s < b->conc; s++) {
            if (b->wake[s] == 0 || b->wake[s] > now)
                continue;
            if (b->item[s] == SIZE_MAX) {
                if (b->next == b->n)
                    continue;
                b->item[s] = b->next++;
            }
            b->wake[s] = 0;
            b->build(&b->slots[s], b->item[s], b->arg);
            bench_call_start(b->m, &b->slots[s]);
        }
        bench_multi_step(b->m, 20, batch_done, b);
    }
    int failed = b->failed + (int)(b->n - b->done);
    if (b->done < b->n)
        fprintf(stderr, "bench: %s: %zu of %zu not done in %lld s\n", what, b->n - b->done, b->n,
                (long long)timeout_s);
    for (size_t s = 0; s < b->conc; s++) {
        curl_multi_remove_handle(b->m, b->slots[s].h);
        bench_call_free(&b->slots[s]);
    }
    curl_multi_cleanup(b->m); /* closes the connections: each holds an edge worker */
    free(b->slots);
    free(b->item);
    free(b->wake);
    return failed;
}

/* An ES256 access token as the member service (and `layby-ctl token mint`)
 * signs them. */
int
bench_token_mint(char *out, size_t n, const char *sub, const char *role, const unsigned char *key,
                 size_t key_len)
{
    jwt_t *jwt = NULL;
    char jti[ID_STR_LEN];
    id_new(jti);
    long now = (long)(lb_now_ms() / 1000);
    const char *iss = getenv("LAYBY_JWT_ISSUER");
    int rc = -1;
    if (jwt_new(&jwt) != 0)
        return -1;
    if (jwt_add_grant(jwt, "sub", sub) == 0 && jwt_add_grant(jwt, "role", role) == 0 &&
        jwt_add_grant(jwt, "iss", iss != NULL ? iss : "layby") == 0 &&
        jwt_add_grant(jwt, "jti", jti) == 0 && jwt_add_grant_int(jwt, "iat", now) == 0 &&
        jwt_add_grant_int(jwt, "exp", now + 3600) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_ES256, key, (int)key_len) == 0) {
        char *t = jwt_encode_str(jwt);
        if (t != NULL && strlen(t) < n) {
            snprintf(out, n, "%s", t);
            rc = 0;
        }
        free(t);
    }
    jwt_free(jwt);
    return rc;
}

int
bench_key_load(unsigned char *key, size_t cap, size_t *key_len)
{
    const char *path = getenv("LAYBY_JWT_PRIVATE_KEY_FILE");
    FILE *f = path != NULL ? fopen(path, "rb") : NULL;
    if (f == NULL) {
        fprintf(stderr, "bench: LAYBY_JWT_PRIVATE_KEY_FILE is not readable "
                        "(eval \"$(scripts/dev env)\")\n");
        return -1;
    }
    *key_len = fread(key, 1, cap - 1, f);
    fclose(f);
    return *key_len > 0 ? 0 : -1;
}
