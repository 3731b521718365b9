/* tsupport_http.c - the HTTP client and token minter of the edge suites (see
 * tsupport.h).
 *
 * The unit suite (edge_dispatch in-process) and the e2e suite (layby-edge
 * under the harness) check the same wire behaviour, so they speak HTTP and
 * sign tokens through this one piece of code. Nothing here touches a server
 * of the harness: a unit suite can use it without NATS or PostgreSQL.
 * Failures fail the running test through Criterion, like the rest of tsupport.
 */
#define _GNU_SOURCE /* strcasestr */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb.h"
#include "tsupport.h"

/* Longer than any answer the edge owes (its own timeouts are a few seconds),
 * short enough that a hung server fails the test rather than the run. */
#define HTTP_TIMEOUT_S 20L

/* The subject of every minted token: a fixed member id the suites never look up. */
static const char jwt_sub[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

/* --- HTTP ------------------------------------------------------------------------- */

/* Appends what fits of p to dst (cap bytes, NUL-terminated), and claims all
 * of it: curl aborts a transfer whose callback takes less. */
static size_t
take_data(const char *p, size_t sz, size_t n, char *dst, size_t cap, size_t *len)
{
    size_t got = sz * n;
    size_t take = got < cap - 1 - *len ? got : cap - 1 - *len;
    memcpy(dst + *len, p, take);
    *len += take;
    dst[*len] = '\0';
    return got;
}

size_t
tsupport_http_on_body(char *p, size_t sz, size_t n, void *resp)
{
    tsupport_resp *r = resp;
    return take_data(p, sz, n, r->body, sizeof r->body, &r->body_len);
}

size_t
tsupport_http_on_header(char *p, size_t sz, size_t n, void *resp)
{
    tsupport_resp *r = resp;
    return take_data(p, sz, n, r->headers, sizeof r->headers, &r->headers_len);
}

/* Where tsupport_http_try() puts a body. */
typedef struct sink {
    char *p;
    size_t cap, len;
} sink;

static size_t
on_sink(char *p, size_t sz, size_t n, void *ud)
{
    sink *s = ud;
    return take_data(p, sz, n, s->p, s->cap, &s->len);
}

long
tsupport_http_try(void *curl, int port, const char *method, const char *path, const char *auth,
                  const char *idem, const char *body, char *out, size_t cap)
{
    char url[256], key[160];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (auth != NULL)
        h = curl_slist_append(h, auth);
    if (idem != NULL) {
        snprintf(key, sizeof key, "Idempotency-Key: %s", idem);
        h = curl_slist_append(h, key);
    }
    sink s = { out, cap, 0 };
    out[0] = '\0';
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_sink);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, HTTP_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    return status;
}

typedef struct upload {
    const char *data;
    size_t left;
} upload;

static size_t
on_read(char *buf, size_t sz, size_t n, void *ud)
{
    upload *u = ud;
    size_t take = u->left < sz * n ? u->left : sz * n;
    memcpy(buf, u->data, take);
    u->data += take;
    u->left -= take;
    return take;
}

void
tsupport_http_call(tsupport_resp *r, int port, const char *method, const char *path,
                   const char *const *hdrs, const char *body, bool chunked)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tsupport_http_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, tsupport_http_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, HTTP_TIMEOUT_S);
    struct curl_slist *list = NULL;
    for (size_t i = 0; hdrs != NULL && hdrs[i] != NULL; i++)
        list = curl_slist_append(list, hdrs[i]);
    upload up = { body, body ? strlen(body) : 0 };
    if (chunked) {
        /* an explicit Transfer-Encoding keeps curl from sending a length */
        list = curl_slist_append(list, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
    } else if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    CURLcode rc = curl_easy_perform(c);
    cr_assert_eq(rc, CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
}

bool
tsupport_http_header(const tsupport_resp *r, const char *name, char *out, size_t n)
{
    /* headers start with the status line, so every header line follows a \n */
    char pat[128];
    snprintf(pat, sizeof pat, "\n%s: ", name);
    const char *p = strcasestr(r->headers, pat);
    if (p == NULL)
        return false;
    p += strlen(pat);
    size_t len = strcspn(p, "\r\n");
    if (len >= n)
        return false;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

json_t *
tsupport_http_json(const tsupport_resp *r)
{
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);
    cr_assert_not_null(j, "status %ld, body not JSON: %s", r->status, r->body);
    return j;
}

void
tsupport_http_assert_error(const tsupport_resp *r, long status, const char *code, const char *field)
{
    cr_assert_eq(r->status, status, "want %ld got %ld: %s", status, r->status, r->body);
    json_t *root = tsupport_http_json(r);
    json_t *e = json_object_get(root, "error");
    cr_assert_str_eq(json_string_value(json_object_get(e, "code")), code, "%s", r->body);
    cr_assert(json_is_string(json_object_get(e, "message")), "%s", r->body);
    const char *f = json_string_value(json_object_get(e, "field"));
    if (field == NULL)
        cr_assert_null(f, "unexpected field: %s", r->body);
    else
        cr_assert(f != NULL && strcmp(f, field) == 0, "want field %s: %s", field, r->body);
    json_decref(root);
}

/* --- tokens ------------------------------------------------------------------------- */

void
tsupport_jwt_mint(char *out, size_t n, const char *role, jwt_alg_t alg, const char *key_pem,
                  int64_t iat, int64_t exp)
{
    jwt_t *j = NULL;
    cr_assert_eq(jwt_new(&j), 0);
    jwt_add_grant(j, "sub", jwt_sub);
    jwt_add_grant(j, "role", role);
    jwt_add_grant(j, "iss", "layby");
    if (iat != TSUPPORT_JWT_NO_IAT)
        jwt_add_grant_int(j, "iat", (long)iat);
    jwt_add_grant_int(j, "exp", (long)exp);
    cr_assert_eq(jwt_set_alg(j, alg, (const unsigned char *)key_pem, (int)strlen(key_pem)), 0);
    char *t = jwt_encode_str(j);
    jwt_free(j);
    cr_assert_not_null(t);
    snprintf(out, n, "Authorization: Bearer %s", t);
    free(t);
}

void
tsupport_jwt_member(char *out, size_t n, const char *sub, const char *role)
{
    tsupport_jwt_member_for(out, n, sub, role, 600);
}

void
tsupport_jwt_member_for(char *out, size_t n, const char *sub, const char *role, int valid_s)
{
    FILE *f = fopen(tsupport_env_req("LAYBY_JWT_PRIVATE_KEY_FILE"), "rb");
    cr_assert_not_null(f, "cannot open the JWT private key");
    char key[16384];
    size_t len = fread(key, 1, sizeof key - 1, f);
    fclose(f);
    key[len] = '\0';
    int64_t now = lb_now_ms() / 1000;
    jwt_t *j = NULL;
    cr_assert_eq(jwt_new(&j), 0);
    jwt_add_grant(j, "sub", sub);
    jwt_add_grant(j, "role", role);
    jwt_add_grant(j, "iss", "layby");
    jwt_add_grant_int(j, "iat", (long)now);
    jwt_add_grant_int(j, "exp", (long)(now + valid_s));
    cr_assert_eq(jwt_set_alg(j, JWT_ALG_ES256, (const unsigned char *)key, (int)len), 0);
    char *t = jwt_encode_str(j);
    jwt_free(j);
    cr_assert_not_null(t);
    snprintf(out, n, "Authorization: Bearer %s", t);
    free(t);
}

static void
pem_of(EVP_PKEY *k, bool priv, char *out, size_t n)
{
    BIO *b = BIO_new(BIO_s_mem());
    cr_assert(priv ? PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)
                   : PEM_write_bio_PUBKEY(b, k));
    char *data;
    long len = BIO_get_mem_data(b, &data);
    cr_assert(len > 0 && (size_t)len < n);
    memcpy(out, data, (size_t)len);
    out[len] = '\0';
    BIO_free(b);
}

void
tsupport_es256_keys(char *priv, size_t priv_n, char *pub, size_t pub_n)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    cr_assert_not_null(k);
    pem_of(k, true, priv, priv_n);
    if (pub != NULL)
        pem_of(k, false, pub, pub_n);
    EVP_PKEY_free(k);
}
