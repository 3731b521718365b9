/* security_test.c - the checks a shop is audited on, through the whole stack
 * and derived from the edge's route table (edge_table.c), so a new route is
 * covered the day it is added (issue 22):
 *   - every protected route refuses a missing, forged or foreign-key token
 *     with 401 (and WWW-Authenticate), before anything is sent;
 *   - every ADMIN route refuses a member's token with 403;
 *   - every member route that names a resource in its path answers another
 *     member 404 (DESIGN §5: never 403) and leaves the owner's data as it was;
 *   - afterwards, no log line of any daemon of the suite holds a secret or a
 *     personal datum the suite used: tokens, card token, address, phone,
 *     name, the NATS and database passwords, the key files' contents.
 * The rate limits (failed-login throttling, the resend gap, too many code
 * tries) are e2e/members_test.c's; NATS users and database roles are
 * integration/security_test.c's. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_routes.h"
#include "id.h"
#include "lb.h"
#include "tsupport.h"

#define AUTH_MAX    2048
#define NEEDLES_MAX 64

static tsupport_proc procs[8];
static tsupport_proc *edge = &procs[0];
static char alice[ID_STR_LEN], bob[ID_STR_LEN], admin[ID_STR_LEN];
static char alice_auth[AUTH_MAX], bob_auth[AUTH_MAX], admin_auth[AUTH_MAX];

/* Personal data and secrets this suite sends; none may reach a log. */
#define CARD_TOKEN "tok_sec_9f3c1a77"
#define RECIPIENT  "Seo Hyunwoo Secret"
#define PHONE      "010-5555-7311"
#define STREET     "77 Hidden-gil"
#define DETAIL     "Room 4242-b"

static void
setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tsupport_reset();
    id_new(alice);
    id_new(bob);
    id_new(admin);
    tsupport_jwt_member(alice_auth, sizeof alice_auth, alice, "USER");
    tsupport_jwt_member(bob_auth, sizeof bob_auth, bob, "USER");
    tsupport_jwt_member(admin_auth, sizeof admin_auth, admin, "ADMIN");
    tsupport_daemon_start(&procs[1], "layby-catalog", 0, NULL, NULL);
    tsupport_daemon_start(&procs[2], "layby-order", 0, NULL, NULL);
    tsupport_daemon_start(&procs[3], "layby-payment", 0, NULL, NULL);
    tsupport_daemon_start(&procs[4], "layby-delivery", 0, NULL, NULL);
    tsupport_daemon_start(&procs[5], "layby-orchestrator", 0, NULL, NULL);
    tsupport_daemon_start(&procs[6], "layby-member", 0, NULL, NULL);
    tsupport_daemon_start(edge, "layby-edge", 0, NULL, NULL);
}

static void
teardown(void)
{
    tsupport_daemons_finish(procs, LB_COUNTOF(procs));
}

TestSuite(security, .init = setup, .fini = teardown, .timeout = 240);

static void
call(tsupport_resp *r, const char *method, const char *path, const char *auth, const char *body)
{
    const char *h[3] = { "Content-Type: application/json", auth, NULL };
    tsupport_http_call(r, edge->port, method, path, h, body, false);
}

/* The row's path with every {param} replaced by value(param name). */
static void
path_fill(char *out, size_t n, const char *pattern, const char *(*value)(const char *, size_t))
{
    size_t used = 0;
    out[0] = '\0';
    for (const char *p = pattern; *p != '\0' && used + 1 < n;) {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (close != NULL) {
            used +=
                (size_t)snprintf(out + used, n - used, "%s", value(p + 1, (size_t)(close - p - 1)));
            p = close + 1;
        } else {
            out[used++] = *p++;
            out[used] = '\0';
        }
    }
    cr_assert_lt(used, n, "path %s too long", pattern);
}

static char any_id[ID_STR_LEN];

static const char *
fresh_id(const char *name, size_t len)
{
    (void)name;
    (void)len;
    return any_id;
}

Test(security, every_protected_route_refuses_a_missing_forged_or_foreign_token_with_401)
{
    char other_priv[4096], other_pub[1024], foreign[AUTH_MAX];
    tsupport_es256_keys(other_priv, sizeof other_priv, other_pub, sizeof other_pub);
    tsupport_jwt_mint(foreign, sizeof foreign, "ADMIN", JWT_ALG_ES256, other_priv,
                      TSUPPORT_JWT_NO_IAT, lb_now_ms() / 1000 + 600);
    const char *bad[] = {
        NULL,                                /* no Authorization */
        "Authorization: Bearer not.a.token", /* garbage */
        "Authorization: Basic YWxpY2U6cHc=", /* another scheme */
        foreign,                             /* valid shape, another key */
    };
    id_new(any_id);
    size_t n, checked = 0;
    const edge_route *routes = edge_routes_table(&n);
    for (size_t i = 0; i < n; i++) {
        const edge_route *rt = &routes[i];
        if (rt->who == EDGE_PUBLIC)
            continue;
        char path[256];
        path_fill(path, sizeof path, rt->path, fresh_id);
        for (size_t k = 0; k < LB_COUNTOF(bad); k++) {
            tsupport_resp r;
            call(&r, rt->method, path, bad[k], rt->body ? "{}" : NULL);
            cr_expect_eq(r.status, 401, "%s %s with token case %zu: %ld %s", rt->method, path, k,
                         r.status, r.body);
            if (r.status == 401) {
                tsupport_http_assert_error(&r, 401, "unauthorized", NULL);
                char h[64];
                cr_expect(tsupport_http_header(&r, "WWW-Authenticate", h, sizeof h),
                          "%s %s: no WWW-Authenticate", rt->method, path);
            }
        }
        checked++;
    }
    cr_assert_gt(checked, 10, "only %zu protected routes in the table?", checked);
}

Test(security, every_admin_route_refuses_a_member_token_with_403)
{
    /* the console's reads (issue 24) must be among them: each is ADMIN */
    static const char *const console_reads[] = { "adminListSagas", "adminGetSaga", "adminGetOrder",
                                                 "adminListDeadLetters", "adminGetDeadLetter" };
    unsigned console_seen = 0;
    id_new(any_id);
    size_t n, checked = 0;
    const edge_route *routes = edge_routes_table(&n);
    for (size_t i = 0; i < n; i++) {
        const edge_route *rt = &routes[i];
        if (rt->who != EDGE_ADMIN)
            continue;
        char path[256];
        path_fill(path, sizeof path, rt->path, fresh_id);
        tsupport_resp r;
        call(&r, rt->method, path, alice_auth, rt->body ? "{}" : NULL);
        cr_expect_eq(r.status, 403, "%s %s as a member: %ld %s", rt->method, path, r.status,
                     r.body);
        if (r.status == 403)
            tsupport_http_assert_error(&r, 403, "forbidden", NULL);
        for (size_t k = 0; k < LB_COUNTOF(console_reads); k++)
            if (strcmp(rt->operation, console_reads[k]) == 0)
                console_seen |= 1u << k;
        checked++;
    }
    cr_assert_gt(checked, 0, "no ADMIN route in the table?");
    cr_assert_eq(console_seen, (1u << LB_COUNTOF(console_reads)) - 1,
                 "a console read is not an ADMIN row (seen mask %x)", console_seen);
}

/* ---- another member's resources ------------------------------------------ */

static const char *
jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    cr_assert(json_is_string(v), "%s is not a string", k);
    return json_string_value(v);
}

/* POST/PUT as auth, wanting `want`; the answer's string field `key` into out. */
static void
make(const char *method, const char *path, const char *auth, const char *body, long want,
     const char *key, char out[ID_STR_LEN])
{
    tsupport_resp r;
    call(&r, method, path, auth, body);
    cr_assert_eq(r.status, want, "%s %s: %ld %s", method, path, r.status, r.body);
    if (key != NULL) {
        json_t *j = tsupport_http_json(&r);
        snprintf(out, ID_STR_LEN, "%s", jstr(j, key));
        json_decref(j);
    }
}

/* Alice's resources, one per kind of path that names one. */
static char alice_order[ID_STR_LEN], alice_address[ID_STR_LEN], product[ID_STR_LEN];

/* The first path segments that say whose resource a {param} is, and whether
 * the resource belongs to a member (another one gets 404) or is shared (a
 * product: the member's own list is changed, never the owner's). A member
 * route naming a resource under another prefix fails the test: add it here. */
typedef struct resource_kind {
    const char *prefix;
    const char *id; /* alice's */
    bool members_own;
} resource_kind;

static const resource_kind kinds[] = {
    { "/api/v1/orders/", alice_order, true },
    { "/api/v1/me/addresses/", alice_address, true },
    { "/api/v1/me/wishlist/items/", product, false },
};

static const resource_kind *cur_kind;

static const char *
kind_id(const char *name, size_t len)
{
    (void)name;
    (void)len;
    return cur_kind->id;
}

/* A body the row's service accepts, so the answer is about ownership, not the
 * body (400 would hide a missing check). By body type. */
static const char *
body_for(const edge_route *rt)
{
    static const struct {
        const char *type, *json;
    } bodies[] = {
        { "layby.v1.AddressDraft", "{\"city\":\"Busan\"}" },
        { "layby.v1.PaymentDraft", "{\"method\":\"card\",\"cardToken\":\"" CARD_TOKEN "\"}" },
        { "layby.v1.PutWishlistItem", "{\"quantity\":5}" },
    };
    if (rt->body == NULL)
        return NULL;
    for (size_t i = 0; i < LB_COUNTOF(bodies); i++)
        if (strcmp(bodies[i].type, rt->body->name) == 0)
            return bodies[i].json;
    cr_assert_fail("%s %s: add a valid %s body to body_for()", rt->method, rt->path,
                   rt->body->name);
    return NULL;
}

static bool
order_payable(void *arg)
{
    (void)arg;
    char path[160];
    snprintf(path, sizeof path, "/api/v1/orders/%s", alice_order);
    tsupport_resp r;
    call(&r, "GET", path, alice_auth, NULL);
    json_t *j = r.status == 200 ? tsupport_http_json(&r) : NULL;
    bool ok = j != NULL && strcmp(jstr(j, "status"), "PAYMENT_PENDING") == 0;
    json_decref(j);
    return ok;
}

static void
alice_resources(void)
{
    make("POST", "/api/v1/products", admin_auth,
         "{\"name\":\"Tablet 11\",\"price\":450000,\"details\":\"\",\"category\":\"tablets\","
         "\"stock\":10}",
         201, "productId", product);
    make("POST", "/api/v1/me/addresses", alice_auth,
         "{\"recipient\":\"" RECIPIENT "\",\"phone\":\"" PHONE "\",\"zipcode\":\"06236\","
         "\"city\":\"Seoul\",\"street\":\"" STREET "\",\"detail\":\"" DETAIL "\"}",
         201, "addressId", alice_address);
    char path[160], body[256];
    snprintf(path, sizeof path, "/api/v1/me/wishlist/items/%s", product);
    make("PUT", path, alice_auth, "{\"quantity\":2}", 200, NULL, NULL);
    snprintf(body, sizeof body,
             "{\"items\":[{\"productId\":\"%s\",\"quantity\":1}],\"addressId\":\"%s\"}", product,
             alice_address);
    tsupport_resp r;
    call(&r, "POST", "/api/v1/orders", alice_auth, body);
    cr_assert(r.status == 201 || r.status == 202, "place: %ld %s", r.status, r.body);
    json_t *j = tsupport_http_json(&r);
    snprintf(alice_order, sizeof alice_order, "%s", jstr(j, "orderId"));
    json_decref(j);
    cr_assert(tsupport_poll_until(order_payable, NULL, 30000), "order %s never PAYMENT_PENDING",
              alice_order);
}

/* Alice's data after bob tried every route: all of it as she left it. */
static void
alice_unchanged(void)
{
    tsupport_resp r;
    char path[160];
    snprintf(path, sizeof path, "/api/v1/orders/%s", alice_order);
    call(&r, "GET", path, alice_auth, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = tsupport_http_json(&r);
    cr_expect_str_eq(jstr(j, "status"), "PAYMENT_PENDING", "bob changed alice's order");
    json_decref(j);

    call(&r, "GET", "/api/v1/me/addresses", alice_auth, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = tsupport_http_json(&r);
    json_t *items = json_object_get(j, "items");
    cr_expect_eq(json_array_size(items), 1, "alice's address book: %s", r.body);
    cr_expect_str_eq(jstr(json_array_get(items, 0), "city"), "Seoul", "bob changed her address");
    json_decref(j);

    call(&r, "GET", "/api/v1/me/wishlist", alice_auth, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = tsupport_http_json(&r);
    items = json_object_get(j, "items");
    cr_expect_eq(json_array_size(items), 1, "alice's wishlist: %s", r.body);
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(items, 0), "quantity")), 2,
                 "bob changed her wishlist: %s", r.body);
    json_decref(j);
}

Test(security, another_members_resources_are_404_on_every_route_that_names_one)
{
    alice_resources();
    size_t n, checked = 0;
    const edge_route *routes = edge_routes_table(&n);
    for (size_t i = 0; i < n; i++) {
        const edge_route *rt = &routes[i];
        if (rt->who != EDGE_MEMBER || strchr(rt->path, '{') == NULL)
            continue;
        cur_kind = NULL;
        for (size_t k = 0; k < LB_COUNTOF(kinds); k++)
            if (strncmp(rt->path, kinds[k].prefix, strlen(kinds[k].prefix)) == 0)
                cur_kind = &kinds[k];
        cr_assert_not_null(cur_kind, "%s %s names a resource of no kind in kinds[]: add it",
                           rt->method, rt->path);
        char path[256];
        path_fill(path, sizeof path, rt->path, kind_id);
        tsupport_resp r;
        call(&r, rt->method, path, bob_auth, body_for(rt));
        if (cur_kind->members_own) {
            cr_expect_eq(r.status, 404, "%s %s as another member: %ld %s", rt->method, path,
                         r.status, r.body);
            if (r.status == 404)
                tsupport_http_assert_error(&r, 404, "not_found", NULL);
        } else {
            cr_expect_lt(r.status, 300, "%s %s on bob's own list: %ld %s", rt->method, path,
                         r.status, r.body);
        }
        checked++;
    }
    cr_assert_gt(checked, 5, "only %zu member routes name a resource?", checked);
    alice_unchanged();
}

/* ---- the log scan -------------------------------------------------------- */

typedef struct needles {
    char *v[NEEDLES_MAX];
    const char *why[NEEDLES_MAX];
    size_t n;
} needles;

static void
needle_add(needles *nd, const char *v, size_t len, const char *why)
{
    if (len < 8 || nd->n == NEEDLES_MAX) /* shorter ones match by chance */
        return;
    nd->v[nd->n] = strndup(v, len);
    nd->why[nd->n++] = why;
}

/* Every secret of the environment: NATS passwords, database passwords, and
 * the lines of the key files (not the public key). */
static void
env_secrets(needles *nd)
{
    extern char **environ;
    for (char **e = environ; *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (strncmp(*e, "LAYBY_", 6) != 0 || eq == NULL)
            continue;
        size_t name_len = (size_t)(eq - *e);
        const char *val = eq + 1;
        if (name_len > 9 && strncmp(eq - 9, "_PASSWORD", 9) == 0) {
            needle_add(nd, val, strlen(val), *e);
        } else if (name_len > 13 && strncmp(eq - 13, "_DATABASE_URL", 13) == 0) {
            /* postgresql://role:password@host:port/db */
            const char *colon = strchr(strstr(val, "://") ? strstr(val, "://") + 3 : val, ':');
            const char *at = colon ? strchr(colon, '@') : NULL;
            if (at != NULL)
                needle_add(nd, colon + 1, (size_t)(at - colon - 1), "a database password");
        } else if (name_len > 9 && strncmp(eq - 9, "_KEY_FILE", 9) == 0 &&
                   strstr(*e, "PUBLIC") == NULL) {
            FILE *f = fopen(val, "r");
            char line[256];
            while (f != NULL && fgets(line, sizeof line, f) != NULL) {
                line[strcspn(line, "\r\n")] = '\0';
                if (strncmp(line, "-----", 5) != 0)
                    needle_add(nd, line, strlen(line), "a key file's line");
            }
            if (f != NULL)
                fclose(f);
        }
    }
}

static void
token_of(needles *nd, const char *auth_header)
{
    const char *t = strstr(auth_header, "Bearer ");
    cr_assert_not_null(t);
    t += 7;
    needle_add(nd, t, strlen(t), "an access token");
    /* its signature alone: a log that cut the token would still leak it */
    const char *sig = strrchr(t, '.');
    if (sig != NULL)
        needle_add(nd, sig + 1, strlen(sig + 1), "an access token's signature");
}

Test(security, no_log_line_holds_a_secret_or_personal_datum_the_suite_used)
{
    alice_resources();
    char path[160];
    snprintf(path, sizeof path, "/api/v1/orders/%s/payment", alice_order);
    tsupport_resp r;
    call(&r, "POST", path, alice_auth, "{\"method\":\"card\",\"cardToken\":\"" CARD_TOKEN "\"}");
    cr_assert(r.status == 200 || r.status == 202, "pay: %ld %s", r.status, r.body);

    needles nd = { .n = 0 };
    const char *personal[] = { CARD_TOKEN, RECIPIENT, PHONE, STREET, DETAIL };
    for (size_t i = 0; i < LB_COUNTOF(personal); i++)
        needle_add(&nd, personal[i], strlen(personal[i]), "a datum the test sent");
    token_of(&nd, alice_auth);
    token_of(&nd, bob_auth);
    token_of(&nd, admin_auth);
    env_secrets(&nd);
    cr_assert_gt(nd.n, 10, "the test should know more secrets than %zu", nd.n);

    size_t logs = 0;
    for (size_t p = 0; p < LB_COUNTOF(procs); p++) {
        if (procs[p].log[0] == '\0')
            continue;
        FILE *f = fopen(procs[p].log, "r");
        cr_assert_not_null(f, "%s", procs[p].log);
        logs++;
        char line[16384];
        int line_no = 0;
        while (fgets(line, sizeof line, f) != NULL) {
            line_no++;
            for (size_t k = 0; k < nd.n; k++)
                cr_expect(strstr(line, nd.v[k]) == NULL, "%s line %d holds %s", procs[p].log,
                          line_no, nd.why[k]);
        }
        fclose(f);
    }
    cr_assert_eq(logs, 7, "every daemon's log was read");
    for (size_t k = 0; k < nd.n; k++)
        free(nd.v[k]);
}
