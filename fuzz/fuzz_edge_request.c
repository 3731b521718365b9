/* fuzz_edge_request.c - the edge's request handling, from the request line
 * to the message it would send: route lookup (404/405), the auth column,
 * body limits and decoding, path / query / token binds, Idempotency-Key,
 * the rows' hooks, and the answer, for every row of the route table.
 *
 * Without NATS: the bus is a capture bus (bus_capture_new(), test builds
 * only), so a command or query the edge sends is handed to this file, which
 * checks it and answers as the input says (time-out, no responders, a
 * Failure, an empty success, a throttle). civetweb's own request parser is
 * not layby's code and is not instrumented; this file stands in for the
 * connection (mg_get_request_info, mg_get_header, mg_read, mg_write, which
 * the executable's definitions interpose) and hands edge_dispatch() what
 * civetweb would: method, decoded path, query string, headers, body.
 *
 * Input, like an HTTP/1.1 request:
 *   METHOD PATH[?QUERY]
 *   Name: value            (header lines, up to an empty line)
 *
 *   body
 * "Authorization: @user" / "@admin" / "@other" stands for a valid bearer
 * token of a member, an admin, or another member (minted here, so the
 * fuzzer reaches past the signature). "Content-Length: @" is the body's
 * length. "X-Fuzz-Reply: M N" picks the bus's answer (M: 0 time-out,
 * 1 no responders, 2 Failure with status N, 3 empty success, 4 throttled).
 *
 * Invariants:
 * (1) exactly one response, with a status from 100 to 599;
 * (2) every 4xx/5xx body is the DESIGN error shape, and a 5xx names no field;
 * (3) a message is sent for a row that is not PUBLIC only with a valid token,
 *     for an ADMIN row only with the admin's, and Layby-Actor is the token's;
 * (4) every field a row binds from the token (EDGE_SUB) holds the token's
 *     sub, whatever the body, path or query said;
 * (5) what is sent packs and unpacks as its Layby-Type.
 */
#include <civetweb.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "edge_app.h"
#include "edge_auth.h"
#include "edge_http.h"
#include "edge_routes.h"
#include "fuzz.h"
#include "id.h"
#include "layby/v1/common.pb-c.h"
#include "log.h"

#define OUT_MAX 65536

struct mg_connection {
    struct mg_request_info ri;
    const char *body;
    size_t body_len, body_off;
    char out[OUT_MAX];
    size_t out_len;
    int heads; /* responses started */
};

/* ---- the connection civetweb would hand the edge ---------------------------- */

const struct mg_request_info *
mg_get_request_info(const struct mg_connection *conn)
{
    return &conn->ri;
}

const char *
mg_get_header(const struct mg_connection *conn, const char *name)
{
    for (int i = 0; i < conn->ri.num_headers; i++)
        if (strcasecmp(conn->ri.http_headers[i].name, name) == 0)
            return conn->ri.http_headers[i].value;
    return NULL;
}

int
mg_read(struct mg_connection *conn, void *buf, size_t len)
{
    size_t left = conn->body_len - conn->body_off;
    size_t n = len < left ? len : left;
    memcpy(buf, conn->body + conn->body_off, n);
    conn->body_off += n;
    return (int)n;
}

int
mg_write(struct mg_connection *conn, const void *buf, size_t len)
{
    if (len >= 9 && memcmp(buf, "HTTP/1.1 ", 9) == 0)
        conn->heads++;
    size_t n = len < OUT_MAX - 1 - conn->out_len ? len : OUT_MAX - 1 - conn->out_len;
    memcpy(conn->out + conn->out_len, buf, n);
    conn->out_len += n;
    conn->out[conn->out_len] = '\0';
    return (int)len;
}

const char *
mg_get_response_code_text(const struct mg_connection *conn, int response_code)
{
    (void)conn;
    (void)response_code;
    return "Status";
}

/* ---- tokens ------------------------------------------------------------------ */

typedef struct who {
    const char *alias;
    const char *role;
    char sub[ID_STR_LEN];
    char header[2048]; /* "Bearer <token>" */
} who;

static who people[] = {
    { .alias = "@user", .role = "USER" },
    { .alias = "@admin", .role = "ADMIN" },
    { .alias = "@other", .role = "USER" },
};

static void
people_mint(void)
{
    int64_t exp = lb_now_ms() / 1000 + 10LL * 365 * 86400;
    static const char header[] = "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";
    for (size_t i = 0; i < LB_COUNTOF(people); i++) {
        who *p = &people[i];
        id_new(p->sub);
        char payload[512], jti[ID_STR_LEN], sid[ID_STR_LEN];
        id_new(jti);
        id_new(sid);
        snprintf(payload, sizeof payload,
                 "{\"iss\":\"layby\",\"sub\":\"%s\",\"role\":\"%s\",\"exp\":%lld,\"jti\":\"%s\","
                 "\"sid\":\"%s\"}",
                 p->sub, p->role, (long long)exp, jti, sid);
        strcpy(p->header, "Bearer ");
        if (fuzz_es256_sign(p->header + 7, sizeof p->header - 7, header, sizeof header - 1, payload,
                            strlen(payload)) != 0)
            fuzz_fail("token does not fit");
    }
}

/* ---- the capture bus ------------------------------------------------------------ */

typedef struct request_state {
    const edge_route *route; /* the row the request line names, or NULL */
    const who *caller;       /* the alias token used, or NULL */
    int reply_mode, reply_n;
    int sent; /* messages captured */
} request_state;

static request_state cur;

static natsMsg *
reply_new(const ProtobufCMessage *m)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (codec_pack(&buf, &len, m, NULL) != LB_OK)
        fuzz_fail("reply does not pack");
    natsMsg *msg = NULL;
    if (natsMsg_Create(&msg, "_INBOX.fuzz", NULL, (const char *)buf, (int)len) != NATS_OK ||
        natsMsgHeader_Set(msg, "Layby-Type", m->descriptor->name) != NATS_OK)
        fuzz_fail("reply message");
    free(buf);
    return msg;
}

/* Invariant (4): fields bound from the token hold its sub. */
static void
check_sub_binds(const ProtobufCMessage *msg)
{
    for (const edge_bind *b = cur.route->binds; b != NULL && b->from != EDGE_FROM_END; b++) {
        if (b->from != EDGE_FROM_SUB)
            continue;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, b->field);
        if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING)
            fuzz_fail("%s %s: token bind %s is not a string field", cur.route->method,
                      cur.route->path, b->field);
        const char *v = *(const char *const *)((const char *)msg + f->offset);
        if (v == NULL || strcmp(v, cur.caller->sub) != 0)
            fuzz_fail("%s %s: %s is \"%s\", not the token's sub %s", cur.route->method,
                      cur.route->path, b->field, v ? v : "(null)", cur.caller->sub);
    }
}

static lb_status
capture(natsMsg **reply, void *ctx, const char *subject, const bus_envelope *env,
        const ProtobufCMessage *msg, bool command, lb_err *err)
{
    (void)ctx;
    (void)command;
    cur.sent++;
    if (cur.route == NULL)
        fuzz_fail("sent %s with no route matched", subject);
    /* (5) */
    if (strcmp(env->type, msg->descriptor->name) != 0)
        fuzz_fail("Layby-Type %s for a %s", env->type, msg->descriptor->name);
    uint8_t *buf = NULL;
    size_t len = 0;
    ProtobufCMessage *back = NULL;
    if (codec_pack(&buf, &len, msg, NULL) != LB_OK ||
        codec_unpack(&back, codec_type_find(env->type), buf, len, NULL) != LB_OK)
        fuzz_fail("%s on %s does not pack and unpack", env->type, subject);
    protobuf_c_message_free_unpacked(back, NULL);
    free(buf);
    /* (3) */
    if (cur.route->who != EDGE_PUBLIC) {
        if (cur.caller == NULL)
            fuzz_fail("%s %s sent %s without a valid token", cur.route->method, cur.route->path,
                      subject);
        if (cur.route->who == EDGE_ADMIN && strcmp(cur.caller->role, "ADMIN") != 0)
            fuzz_fail("%s %s sent %s for a non-admin", cur.route->method, cur.route->path, subject);
        char actor[BUS_ACTOR_MAX];
        snprintf(actor, sizeof actor, "%s %s", cur.caller->sub, cur.caller->role);
        if (strcmp(env->actor, actor) != 0)
            fuzz_fail("Layby-Actor \"%s\", token says \"%s\"", env->actor, actor);
        if (strcmp(subject, cur.route->subject) == 0)
            check_sub_binds(msg);
    }

    switch (cur.reply_mode) {
    case 1:
        return lb_err_set(err, LB_ERR_UNAVAILABLE, "%s: no responders", subject);
    case 2: {
        Layby__V1__Failure f = LAYBY__V1__FAILURE__INIT;
        f.code = (char *)lb_status_code((lb_status)((unsigned)cur.reply_n % LB__STATUS_COUNT));
        f.message = (char *)"fuzz failure";
        f.field = (char *)"";
        *reply = reply_new(&f.base);
        return LB_OK;
    }
    case 3: {
        if (strcmp(subject, cur.route->subject) != 0)
            break; /* a hook's own query: its reply type is the hook's business */
        ProtobufCMessage *m = malloc(cur.route->reply->sizeof_message);
        if (m == NULL)
            fuzz_fail("out of memory");
        protobuf_c_message_init(cur.route->reply, m);
        *reply = reply_new(m);
        free(m); /* init'ed defaults only: nothing of its own to free */
        return LB_OK;
    }
    case 4: {
        Layby__V1__Throttled t = LAYBY__V1__THROTTLED__INIT;
        t.retry_after_s = cur.reply_n;
        *reply = reply_new(&t.base);
        return LB_OK;
    }
    default:
        break;
    }
    return lb_err_set(err, LB_ERR_TIMEOUT, "%s: timed out", subject);
}

/* ---- set-up ------------------------------------------------------------------- */

static edge_app app;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    lb_err err;
    if (id_init(&err) != LB_OK)
        fuzz_fail("id_init: %s", err.msg);
    if (nats_Open(-1) != NATS_OK) /* the replies are natsMsg: the library must be up */
        fuzz_fail("nats_Open");
    log_init("edge-fuzz", "fuzz", LOG_ERROR);
    app.cfg.max_body = 4096;
    app.cfg.command_timeout_ms = 1;
    app.cfg.saga_wait_ms = 1;
    app.cfg.query_timeout_ms = 1;
    const char *pem = fuzz_es256_public_pem();
    edge_auth_opts o = EDGE_AUTH_OPTS_INIT;
    if (edge_auth_new(&app.auth, pem, strlen(pem), &o, &err) != LB_OK)
        fuzz_fail("edge_auth_new: %s", err.msg);
    if (bus_capture_new(&app.bus, capture, NULL, &err) != LB_OK)
        fuzz_fail("bus_capture_new: %s", err.msg);
    pthread_mutex_init(&app.ready_lock, NULL);
    pthread_mutex_init(&app.kv_lock, NULL);
    size_t n;
    edge_routes_table(&n);
    if (edge_routes_check(edge_routes_table(&n), n, &err) != LB_OK)
        fuzz_fail("route table: %s", err.msg);
    edge_routes_metrics_init();
    people_mint();
    return 0;
}

/* ---- one request ---------------------------------------------------------------- */

/* Invariants (1) and (2) on what the edge wrote. */
static void
check_response(const struct mg_connection *c, int status)
{
    if (c->heads != 1)
        fuzz_fail("%d responses to one request", c->heads);
    int st = 0;
    if (sscanf(c->out, "HTTP/1.1 %d ", &st) != 1 || st < 100 || st > 599 || st != status)
        fuzz_fail("response status %d, dispatch said %d", st, status);
    if (st < 400 || strcmp(c->ri.request_method, "HEAD") == 0)
        return;
    const char *body = strstr(c->out, "\r\n\r\n");
    if (body == NULL)
        fuzz_fail("a %d without an end of headers", st);
    json_t *j = json_loads(body + 4, 0, NULL);
    json_t *e = json_object_get(j, "error");
    if (!json_is_string(json_object_get(e, "code")) ||
        !json_is_string(json_object_get(e, "message")))
        fuzz_fail("a %d whose body is not the error shape: %s", st, body + 4);
    if (st >= 500 && json_object_get(e, "field") != NULL)
        fuzz_fail("a %d names a field: %s", st, body + 4);
    json_decref(j);
}

static char *
trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
    return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    char *text = fuzz_strndup(data, size);
    /* static: a fresh 64 KB block per run cost more than the edge itself */
    static struct mg_connection conn;
    struct mg_connection *c = &conn;
    memset(&c->ri, 0, sizeof c->ri);
    c->body_off = c->out_len = 0;
    c->out[0] = '\0';
    c->heads = 0;
    memset(&cur, 0, sizeof cur);

    /* request line */
    char *line_end = strchr(text, '\n');
    char *rest = line_end ? line_end + 1 : text + strlen(text);
    if (line_end)
        *line_end = '\0';
    char *sp = strchr(text, ' ');
    if (sp == NULL)
        goto out;
    *sp = '\0';
    char *uri = trim(sp + 1);
    char *q = strchr(uri, '?');
    if (q != NULL)
        *q++ = '\0';
    c->ri.request_method = text;
    c->ri.request_uri = c->ri.local_uri = c->ri.local_uri_raw = uri;
    c->ri.query_string = q;
    c->ri.http_version = "1.1";
    snprintf(c->ri.remote_addr, sizeof c->ri.remote_addr, "127.0.0.1");

    /* headers, then the body */
    const char *cl = NULL;
    bool seen_auth = false;
    while (*rest != '\0' && *rest != '\n' && !(rest[0] == '\r' && rest[1] == '\n')) {
        char *eol = strchr(rest, '\n');
        char *next = eol ? eol + 1 : rest + strlen(rest);
        if (eol)
            *eol = '\0';
        char *colon = strchr(rest, ':');
        if (colon != NULL && c->ri.num_headers < MG_MAX_HEADERS) {
            *colon = '\0';
            char *value = trim(colon + 1);
            /* the first Authorization header is the one the edge reads */
            bool first_auth = strcasecmp(rest, "Authorization") == 0 && !seen_auth;
            seen_auth |= strcasecmp(rest, "Authorization") == 0;
            for (size_t i = 0; i < LB_COUNTOF(people); i++)
                if (strcasecmp(rest, "Authorization") == 0 && strcmp(value, people[i].alias) == 0) {
                    value = people[i].header;
                    if (first_auth)
                        cur.caller = &people[i];
                }
            if (strcasecmp(rest, "X-Fuzz-Reply") == 0)
                sscanf(value, "%d %d", &cur.reply_mode, &cur.reply_n);
            if (strcasecmp(rest, "Content-Length") == 0)
                cl = value;
            c->ri.http_headers[c->ri.num_headers].name = rest;
            c->ri.http_headers[c->ri.num_headers++].value = value;
        }
        rest = next;
    }
    if (*rest == '\r')
        rest++;
    if (*rest == '\n')
        rest++;
    c->body = rest;
    c->body_len = strlen(rest);
    if (cl != NULL && strcmp(cl, "@") == 0) {
        c->ri.content_length = (long long)c->body_len;
    } else if (cl != NULL) {
        char *end;
        long long v = strtoll(cl, &end, 10);
        if (*cl == '\0' || *end != '\0' || v < 0)
            goto out; /* civetweb answers a bad Content-Length itself */
        c->ri.content_length = v;
    } else {
        c->ri.content_length = mg_get_header(c, "Transfer-Encoding") ? -1 : 0;
    }

    /* the row the request line names, for the capture's checks */
    edge_param params[EDGE_PARAMS_MAX];
    size_t n_params = 0, n;
    char allow[EDGE_ALLOW_MAX];
    const edge_route *table = edge_routes_table(&n);
    if (edge_route_find(&cur.route, params, &n_params, allow, table, n, c->ri.request_method,
                        c->ri.local_uri) != LB_OK)
        cur.route = NULL;

    int status = edge_dispatch(c, &app);
    check_response(c, status);
    /* A service may refuse the caller itself (layby-member: a token that
     * names no login, a spent refresh token, wrong credentials): a 401 from
     * any Failure the service answered is the service's. */
    bool service_401 = cur.reply_mode == 2 &&
                       lb_status_http((lb_status)((unsigned)cur.reply_n % LB__STATUS_COUNT)) == 401;
    if (cur.sent > 0 && cur.route != NULL && cur.route->who != EDGE_PUBLIC && status == 401 &&
        !service_401)
        fuzz_fail("sent a message, then answered 401");
out:
    free(text);
    return 0;
}
