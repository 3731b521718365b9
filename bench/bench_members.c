/* bench_members.c - members and tokens through the edge (issue 18's figures).
 * One figure per run, chosen by its flag; each prints one result line:
 *
 *   --argon-threads T   a bare Argon2id verify loop on T threads with the
 *                       member service's parameters (the ceiling of logins):
 *                       "members_argon threads= seconds= verifies= per_s="
 *   --login-clients C   logins through the edge by C clients in a loop:
 *                       "members_login clients= seconds= ok= throttled= failed= per_s="
 *   --me-rate R         GET /api/v1/me paced at R/s by one client, while
 *                       --storm C clients log in as fast as they can (0 = idle):
 *                       "members_me rate= storm= count= failed= p50_ms= p99_ms= storm_per_s="
 *   --token 1           prints a fresh member's access token (for wrk) and exits
 *   --auth-micro N      the edge's token check in this process, no HTTP: a
 *                       cached check, a first-seen one (OpenSSL with the key
 *                       parsed once) and libjwt's decode for comparison; and
 *                       the member service's signing (engine/es256.h, key
 *                       parsed once) against libjwt's encode:
 *                       "members_auth cached_us= first_seen_us= libjwt_us=
 *                        sign_us= libjwt_sign_us="
 *
 * Members are made through the real routes: sign-up, the code read from the
 * dev mailbox (LAYBY_MAILBOX, the mailer's .eml files), confirm, login. The
 * edge is http://127.0.0.1:$LAYBY_EDGE_PORT (8080).
 */
#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "edge/edge_auth.h"
#include "services/member/member.h"

#define BODY_MAX  8192
#define TOKEN_MAX 2048

static const char PASSWORD[] = "bench password 123";
static char edge_base[64];

typedef struct resp {
    long status;
    char body[BODY_MAX];
    size_t len;
} resp;

static size_t
on_body(char *p, size_t sz, size_t n, void *arg)
{
    resp *r = arg;
    size_t k = sz * n, room = sizeof r->body - 1 - r->len, c = k < room ? k : room;
    memcpy(r->body + r->len, p, c);
    r->len += c;
    r->body[r->len] = '\0';
    return k;
}

/* One request on handle c (kept alive between calls): a POST when body is
 * given, else a GET. Returns the status, 0 when no answer came. */
static long
http(CURL *c, const char *path, const char *token, const char *body, resp *r)
{
    char url[256], auth[TOKEN_MAX + 32];
    snprintf(url, sizeof url, "%s%s", edge_base, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (token != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    r->status = 0;
    r->len = 0;
    r->body[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    else
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    return r->status;
}

static bool
json_field(const resp *r, const char *key, char *out, size_t n)
{
    json_t *j = json_loads(r->body, 0, NULL);
    const char *v = json_string_value(json_object_get(j, key));
    if (v != NULL)
        snprintf(out, n, "%s", v);
    json_decref(j);
    return v != NULL;
}

/* --- a member through the routes ------------------------------------------- */

/* The code of the newest mail to `email` in the mailbox, or false. */
static bool
mailbox_code(const char *dir, const char *email, char code[8])
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return false;
    char to[300];
    snprintf(to, sizeof to, "To: %s\r\n", email);
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".eml") != 0)
            continue;
        char path[1024], text[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        const char *c = strstr(text, "code is ");
        if (strstr(text, to) != NULL && c != NULL) {
            snprintf(code, 8, "%.6s", c + 8);
            found = true;
        }
    }
    closedir(d);
    return found;
}

/* Signs a new member up, confirms it with the mailed code and logs it in:
 * its username into user, its access token into token. */
static int
member_new(CURL *c, char user[40], char token[TOKEN_MAX])
{
    const char *mailbox = getenv("LAYBY_MAILBOX");
    if (mailbox == NULL) {
        fprintf(stderr, "bench: LAYBY_MAILBOX is not set (scripts/dev env)\n");
        return -1;
    }
    uint8_t rnd[6];
    randombytes_buf(rnd, sizeof rnd);
    char hex[16], email[96], body[512], code[8] = "";
    sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
    snprintf(user, 40, "bench%s", hex);
    snprintf(email, sizeof email, "%s@bench.example", user);
    resp r = { .status = 0 };
    snprintf(
        body, sizeof body,
        "{\"username\":\"%s\",\"password\":\"%s\",\"email\":\"%s\",\"phone\":\"010-0000-0000\"}",
        user, PASSWORD, email);
    if (http(c, "/api/v1/members", NULL, body, &r) != 201)
        goto fail;
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"email\":\"%s\"}", user, email);
    if (http(c, "/api/v1/members/verification", NULL, body, &r) != 202)
        goto fail;
    int64_t deadline = lb_mono_us() + 20 * 1000000;
    while (!mailbox_code(mailbox, email, code) && lb_mono_us() < deadline)
        nats_Sleep(20);
    if (code[0] == '\0') {
        fprintf(stderr, "bench: no verification mail for %s in %s\n", user, mailbox);
        return -1;
    }
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"code\":\"%s\"}", user, code);
    if (http(c, "/api/v1/members/verification/confirm", NULL, body, &r) != 200)
        goto fail;
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"}", user, PASSWORD);
    if (http(c, "/api/v1/auth/login", NULL, body, &r) != 200 ||
        !json_field(&r, "accessToken", token, TOKEN_MAX))
        goto fail;
    return 0;
fail:
    fprintf(stderr, "bench: member set-up failed: %ld %s\n", r.status, r.body);
    return -1;
}

/* --- the bare Argon2id loop ---------------------------------------------------- */

typedef struct argon_run {
    const char *hash;
    int64_t until_us;
    atomic_long verifies;
} argon_run;

static void *
argon_worker(void *arg)
{
    argon_run *a = arg;
    while (lb_mono_us() < a->until_us) {
        if (crypto_pwhash_str_verify(a->hash, PASSWORD, strlen(PASSWORD)) == 0)
            atomic_fetch_add(&a->verifies, 1);
    }
    return NULL;
}

static int
argon_bench(int64_t threads, int64_t seconds)
{
    char hash[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str_alg(hash, PASSWORD, strlen(PASSWORD), MEMBER_ARGON_OPSLIMIT,
                              MEMBER_ARGON_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13) != 0)
        return 1;
    argon_run a = { .hash = hash };
    pthread_t th[64];
    threads = threads > 64 ? 64 : threads;
    int64_t t0 = lb_mono_us();
    a.until_us = t0 + seconds * 1000000;
    for (int64_t i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, argon_worker, &a);
    for (int64_t i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(lb_mono_us() - t0) / 1e6;
    long n = atomic_load(&a.verifies);
    printf("members_argon threads=%lld seconds=%.1f verifies=%ld per_s=%.1f\n", (long long)threads,
           secs, n, (double)n / secs);
    return 0;
}

/* --- logins through the edge ------------------------------------------------- */

typedef struct storm {
    const char *user;
    atomic_bool stop;
    atomic_long ok, throttled, failed;
} storm;

static void *
login_worker(void *arg)
{
    storm *s = arg;
    CURL *c = curl_easy_init();
    char body[256];
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"}", s->user, PASSWORD);
    resp *r = malloc(sizeof *r);
    while (c != NULL && r != NULL && !atomic_load(&s->stop)) {
        long st = http(c, "/api/v1/auth/login", NULL, body, r);
        atomic_fetch_add(st == 200 ? &s->ok : st == 429 ? &s->throttled : &s->failed, 1);
        if (st == 429)
            nats_Sleep(5); /* the pool is full: the answer came at once, do not spin */
    }
    free(r);
    curl_easy_cleanup(c);
    return NULL;
}

typedef struct storm_threads {
    pthread_t th[64];
    int64_t n;
} storm_threads;

static void
storm_start(storm_threads *t, storm *s, int64_t clients)
{
    t->n = clients > 64 ? 64 : clients;
    for (int64_t i = 0; i < t->n; i++)
        pthread_create(&t->th[i], NULL, login_worker, s);
}

static void
storm_stop(storm_threads *t, storm *s)
{
    atomic_store(&s->stop, true);
    for (int64_t i = 0; i < t->n; i++)
        pthread_join(t->th[i], NULL);
}

static int
login_bench(const char *user, int64_t clients, int64_t seconds)
{
    storm s = { .user = user };
    storm_threads t;
    storm_start(&t, &s, clients);
    nats_Sleep(1000); /* the pool fills */
    long ok0 = atomic_load(&s.ok), thr0 = atomic_load(&s.throttled), f0 = atomic_load(&s.failed);
    int64_t t0 = lb_mono_us();
    nats_Sleep(seconds * 1000);
    long ok = atomic_load(&s.ok) - ok0, thr = atomic_load(&s.throttled) - thr0;
    long failed = atomic_load(&s.failed) - f0;
    double secs = (double)(lb_mono_us() - t0) / 1e6;
    storm_stop(&t, &s);
    printf("members_login clients=%lld seconds=%.1f ok=%ld throttled=%ld failed=%ld per_s=%.1f\n",
           (long long)clients, secs, ok, thr, failed, (double)ok / secs);
    return failed > 0 ? 1 : 0;
}

/* --- GET /me, idle or under a login storm ------------------------------------- */

static int
me_bench(CURL *c, const char *user, const char *token, int64_t rate, int64_t seconds,
         int64_t storm_clients)
{
    storm s = { .user = user };
    storm_threads t = { .n = 0 };
    if (storm_clients > 0) {
        storm_start(&t, &s, storm_clients);
        nats_Sleep(1000);
    }
    resp *r = malloc(sizeof *r);
    bench_lat lat = { 0 };
    long failed = 0, ok0 = atomic_load(&s.ok);
    int64_t count = rate * seconds, t0 = lb_mono_us();
    for (int64_t i = 0; i < count && r != NULL; i++) {
        bench_pace(t0, i, rate);
        int64_t a = lb_mono_us();
        if (http(c, "/api/v1/me", token, NULL, r) != 200)
            failed++;
        bench_lat_add(&lat, lb_mono_us() - a);
    }
    double secs = (double)(lb_mono_us() - t0) / 1e6;
    long logins = atomic_load(&s.ok) - ok0;
    if (storm_clients > 0)
        storm_stop(&t, &s);
    printf("members_me rate=%lld storm=%lld count=%lld failed=%ld p50_ms=%.2f p99_ms=%.2f "
           "storm_per_s=%.1f\n",
           (long long)rate, (long long)storm_clients, (long long)count, failed,
           bench_lat_pct_ms(&lat, 50), bench_lat_pct_ms(&lat, 99), (double)logins / secs);
    bench_lat_free(&lat);
    free(r);
    return failed > 0 ? 1 : 0;
}

/* --- the token check alone ------------------------------------------------------ */

static char *
pem_of(EVP_PKEY *k, bool priv)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (priv)
        PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    else
        PEM_write_bio_PUBKEY(b, k);
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    char *out = strndup(p, (size_t)n);
    BIO_free(b);
    return out;
}

static int
auth_bench(int64_t n)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    char *priv = pem_of(k, true), *pub = pem_of(k, false);
    EVP_PKEY_free(k);
    int64_t now = lb_now_ms() / 1000;
    jwt_t *j = NULL;
    jwt_new(&j);
    jwt_add_grant(j, "sub", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    jwt_add_grant(j, "role", "USER");
    jwt_add_grant(j, "iss", "layby");
    jwt_add_grant(j, "jti", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c");
    jwt_add_grant(j, "sid", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d");
    jwt_add_grant_int(j, "iat", (long)now);
    jwt_add_grant_int(j, "exp", (long)now + 900);
    jwt_set_alg(j, JWT_ALG_ES256, (const unsigned char *)priv, (int)strlen(priv));
    char *tok = jwt_encode_str(j);
    jwt_free(j);
    edge_auth *cached = NULL, *fresh = NULL;
    edge_auth_opts o = EDGE_AUTH_OPTS_INIT;
    lb_err err;
    if (tok == NULL || edge_auth_new(&cached, pub, strlen(pub), &o, &err) != LB_OK)
        return 1;
    o.cache_cap = 0;
    if (edge_auth_new(&fresh, pub, strlen(pub), &o, &err) != LB_OK)
        return 1;
    edge_claims c;
    int bad = edge_auth_verify(&c, cached, tok, now, &err) != LB_OK; /* fills the cache */
    int64_t t0 = lb_mono_us();
    for (int64_t i = 0; i < n; i++)
        bad |= edge_auth_verify(&c, cached, tok, now, &err) != LB_OK;
    double cached_us = (double)(lb_mono_us() - t0) / (double)n;
    int64_t m = n / 100 > 0 ? n / 100 : 1; /* verifications are ~100x dearer */
    t0 = lb_mono_us();
    for (int64_t i = 0; i < m; i++)
        bad |= edge_auth_verify(&c, fresh, tok, now, &err) != LB_OK;
    double first_us = (double)(lb_mono_us() - t0) / (double)m;
    t0 = lb_mono_us();
    for (int64_t i = 0; i < m; i++) {
        jwt_t *d = NULL;
        bad |= jwt_decode(&d, tok, (const unsigned char *)pub, (int)strlen(pub)) != 0;
        jwt_free(d);
    }
    double libjwt_us = (double)(lb_mono_us() - t0) / (double)m;
    /* Signing, as the member service does per login, against libjwt's. */
    es256_key *signer = NULL;
    json_t *claims = NULL;
    bad |= es256_key_new(&signer, ES256_PRIVATE, priv, strlen(priv), &err) != LB_OK;
    if (signer != NULL) {
        claims = json_pack("{s:s, s:s, s:I, s:I}", "sub", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                           "iss", "layby", "iat", (json_int_t)now, "exp", (json_int_t)now + 900);
        t0 = lb_mono_us();
        for (int64_t i = 0; i < m; i++) {
            char *t = NULL;
            bad |= es256_jwt_sign(&t, signer, claims, &err) != LB_OK;
            free(t);
        }
    }
    double sign_us = (double)(lb_mono_us() - t0) / (double)m;
    t0 = lb_mono_us();
    for (int64_t i = 0; i < m; i++) {
        jwt_t *e = NULL;
        jwt_new(&e);
        jwt_add_grant(e, "sub", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
        jwt_add_grant(e, "iss", "layby");
        jwt_add_grant_int(e, "iat", (long)now);
        jwt_add_grant_int(e, "exp", (long)now + 900);
        jwt_set_alg(e, JWT_ALG_ES256, (const unsigned char *)priv, (int)strlen(priv));
        char *t = jwt_encode_str(e);
        bad |= t == NULL;
        free(t);
        jwt_free(e);
    }
    double libjwt_sign_us = (double)(lb_mono_us() - t0) / (double)m;
    json_decref(claims);
    es256_key_free(signer);
    printf("members_auth checks=%lld cached_us=%.3f first_seen_us=%.1f libjwt_us=%.1f "
           "sign_us=%.1f libjwt_sign_us=%.1f\n",
           (long long)n, cached_us, first_us, libjwt_us, sign_us, libjwt_sign_us);
    edge_auth_free(cached);
    edge_auth_free(fresh);
    free(tok);
    free(priv);
    free(pub);
    return bad;
}

int
main(int argc, char **argv)
{
    int64_t argon_threads = 0, login_clients = 0, me_rate = 0, storm_clients = 0, seconds = 10;
    int64_t token = 0, auth_micro = 0;
    const bench_flag flags[] = {
        { "argon-threads", &argon_threads, "bare Argon2id verify loop on this many threads" },
        { "login-clients", &login_clients, "logins through the edge by this many clients" },
        { "me-rate", &me_rate, "GET /api/v1/me paced at this rate per second" },
        { "storm", &storm_clients, "login clients running during --me-rate (0 = idle)" },
        { "seconds", &seconds, "length of the measurement" },
        { "token", &token, "1: print a fresh member's access token and exit" },
        { "auth-micro", &auth_micro, "this many cached token checks in-process" },
    };
    if (bench_flags(argc, argv, flags, LB_COUNTOF(flags)) != 0 || sodium_init() < 0)
        return 2;
    if (argon_threads > 0)
        return argon_bench(argon_threads, seconds);
    if (auth_micro > 0)
        return auth_bench(auth_micro);
    const char *port = getenv("LAYBY_EDGE_PORT");
    snprintf(edge_base, sizeof edge_base, "http://127.0.0.1:%s", port && port[0] ? port : "8080");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    char user[40], tok[TOKEN_MAX];
    int rc = member_new(c, user, tok);
    if (rc == 0 && token)
        printf("%s\n", tok);
    else if (rc == 0 && login_clients > 0)
        rc = login_bench(user, login_clients, seconds);
    else if (rc == 0 && me_rate > 0)
        rc = me_bench(c, user, tok, me_rate, seconds, storm_clients);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    return rc;
}
