/* edge_run_test.c - the route runner against a real nats-server: rows made
 * for the purpose, served by civetweb in this process, answered by a
 * responder thread of this test on the same subjects a service would read.
 *
 * What the e2e product suite cannot reach with two rows: query parameters,
 * the token's member id and constants arriving in the message, Layby-Actor
 * and traceparent on the wire, a Failure remapped, a reply_status hook, 204,
 * Location from the reply, 202 PENDING for an unanswered command, 504 and
 * 503 for queries, a body that tries to set a bound field, and the
 * Idempotency-Key replay sending the message once.
 */
#include <arpa/inet.h>
#include <civetweb.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <jwt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus.h"
#include "codec.h"
#include "codectest.pb-c.h"
#include "edge_app.h"
#include "edge_routes.h"
#include "engine/log.h"
#include "fault.h"
#include "layby/v1/common.pb-c.h"
#include "tsupport.h"

#define SUBJ_Q      "layby.qry.edgetest.get"
#define SUBJ_SILENT "layby.qry.edgetest.silent"
#define SUBJ_NONE   "layby.qry.edgetest.nobody"
#define SUBJ_CMD    "layby.cmd.edgetest.put"
#define SUBJ_LOST   "layby.cmd.edgetest.lost"

static const char uuid[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4aff";
static const char member[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"; /* tsupport_jwt_mint()'s */

/* Marks the reply with f_int32 = 7 as still deciding. */
static int
deciding(const ProtobufCMessage *reply, const edge_req *r)
{
    (void)r;
    return ((const Layby__Test__Everything *)reply)->f_int32 == 7 ? 202 : 0;
}
static const edge_hooks deciding_hooks = { .reply_status = deciding };

/* clang-format off */
static const edge_route rows[] = {
    { .method = "GET", .path = "/t/{id}", .who = EDGE_MEMBER, .kind = EDGE_KIND_QUERY,
      .summary = "q", .operation = "q", .subject = SUBJ_Q,
      .request = &layby__test__everything__descriptor,
      .reply = &layby__test__everything__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "f_string"), EDGE_QUERY("limit", "f_int32", NULL),
                          EDGE_QUERY("q", "note", NULL), EDGE_SUB("choice_text"),
                          EDGE_CONST("f_sint32", "-3")),
      .errors = EDGE_ERRORS(LB_ERR_STATE),
      .remap = EDGE_REMAP({ LB_ERR_STATE, LB_ERR_NOT_CANCELLABLE }) },
    { .method = "GET", .path = "/silent", .who = EDGE_PUBLIC, .kind = EDGE_KIND_QUERY,
      .summary = "s", .operation = "s", .subject = SUBJ_SILENT,
      .request = &layby__test__everything__descriptor,
      .reply = &layby__test__everything__descriptor, .status = 200 },
    { .method = "GET", .path = "/nobody", .who = EDGE_PUBLIC, .kind = EDGE_KIND_QUERY,
      .summary = "n", .operation = "n", .subject = SUBJ_NONE,
      .request = &layby__test__everything__descriptor,
      .reply = &layby__test__everything__descriptor, .status = 200 },
    { .method = "PUT", .path = "/t/{id}", .who = EDGE_MEMBER, .kind = EDGE_KIND_COMMAND,
      .summary = "p", .operation = "p", .subject = SUBJ_CMD,
      .request = &layby__test__everything__descriptor,
      .body = &layby__test__everything__descriptor,
      .reply = &layby__test__everything__descriptor, .status = 201,
      .location = "/t/{fString}", .idempotent = true,
      .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "f_string"), EDGE_SUB("choice_text")),
      .hooks = &deciding_hooks },
    { .method = "DELETE", .path = "/t/{id}", .who = EDGE_MEMBER, .kind = EDGE_KIND_SIGNAL,
      .summary = "d", .operation = "d", .subject = SUBJ_CMD,
      .request = &layby__test__everything__descriptor,
      .reply = &layby__test__everything__descriptor, .status = 204,
      .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "f_string")) },
    { .method = "POST", .path = "/lost", .who = EDGE_MEMBER, .kind = EDGE_KIND_SAGA_START,
      .summary = "l", .operation = "l", .subject = SUBJ_LOST,
      .request = &layby__test__everything__descriptor,
      .body = &layby__test__inner__descriptor, .body_field = "inner",
      .reply = &layby__test__everything__descriptor, .status = 201,
      .location = "/t/{fString}", .idempotent = true,
      .binds = EDGE_BINDS(EDGE_NEW_ID("t", "f_string")) },
};
/* clang-format on */

static edge_app app;
static struct mg_context *http;
static int port;
static natsSubscription *subs[2];
static atomic_int calls;
static char user_auth[2048];

/* The responder: echoes the request, with Layby-Actor and traceparent in
 * r_string; limit 1 answers a Failure invalid_state, limit 2 nothing. */
static void
on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc;
    (void)sub;
    (void)closure;
    atomic_fetch_add(&calls, 1);
    bus_envelope in;
    lb_err err;
    ProtobufCMessage *req = NULL;
    if (bus_envelope_read(&in, m, &err) != LB_OK ||
        codec_unpack(&req, &layby__test__everything__descriptor,
                     (const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
                     &err) != LB_OK)
        goto out;
    Layby__Test__Everything *e = (Layby__Test__Everything *)req;
    const char *to = in.reply[0] ? in.reply : natsMsg_GetReply(m);
    if (e->f_int32 == 2 || to == NULL)
        goto out;
    char *strs[2] = { in.actor, in.traceparent };
    Layby__V1__Failure f = LAYBY__V1__FAILURE__INIT;
    f.code = (char *)"invalid_state";
    f.message = (char *)"not now";
    const ProtobufCMessage *answer = e->f_int32 == 1 ? &f.base : req;
    if (e->f_int32 != 1) {
        e->n_r_string = 2;
        e->r_string = strs;
    }
    bus_envelope out;
    bus_envelope_init(&out, answer->descriptor, &in);
    bus_publish_core(app.bus, to, &out, answer, &err);
    e->n_r_string = 0; /* borrowed: not for free_unpacked */
    e->r_string = NULL;
out:
    if (req != NULL)
        protobuf_c_message_free_unpacked(req, NULL);
    natsMsg_Destroy(m);
}

static void
setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    log_init("edge-run-test", "t", LOG_ERROR);
    tsupport_reset();
    memset(&app, 0, sizeof app);
    app.cfg.max_body = 4096;
    app.cfg.command_timeout_ms = 2000;
    app.cfg.query_timeout_ms = 500;
    app.routes = rows;
    app.n_routes = LB_COUNTOF(rows);
    lb_err err;
    cr_assert_eq(edge_routes_check(rows, LB_COUNTOF(rows), &err), LB_OK, "%s", err.msg);
    char priv[4096], pub[1024];
    tsupport_es256_keys(priv, sizeof priv, pub, sizeof pub);
    cr_assert_eq(edge_auth_new(&app.auth, pub, strlen(pub), NULL, &err), LB_OK);
    tsupport_jwt_mint(user_auth, sizeof user_auth, "USER", JWT_ALG_ES256, priv, TSUPPORT_JWT_NO_IAT,
                      lb_now_ms() / 1000 + 600);
    pthread_mutex_init(&app.ready_lock, NULL);
    pthread_mutex_init(&app.kv_lock, NULL);
    app.bus = tsupport_admin_bus("edge-run-test");
    atomic_store(&calls, 0);
    cr_assert_eq(natsConnection_Subscribe(&subs[0], bus_conn(app.bus), SUBJ_Q, on_msg, NULL),
                 NATS_OK);
    cr_assert_eq(natsConnection_Subscribe(&subs[1], bus_conn(app.bus), SUBJ_CMD, on_msg, NULL),
                 NATS_OK);
    cr_assert_eq(natsConnection_Flush(bus_conn(app.bus)), NATS_OK);

    /* civetweb as the edge starts it (edge_listen), on a port of its choosing */
    mg_init_library(0);
    app.cfg.host = "127.0.0.1";
    app.cfg.port = 0;
    app.cfg.threads = 4;
    app.cfg.request_timeout_ms = 30000;
    cr_assert_eq(edge_listen(&http, &app, &err), LB_OK, "%s", err.msg);
    struct mg_server_port ports[2];
    cr_assert_eq(mg_get_server_ports(http, 2, ports), 1);
    port = ports[0].port;
}

static void
teardown(void)
{
    mg_stop(http);
    mg_exit_library();
    for (size_t i = 0; i < LB_COUNTOF(subs); i++)
        natsSubscription_Destroy(subs[i]);
    if (app.kv != NULL)
        kvStore_Destroy(app.kv);
    bus_close(app.bus);
    edge_auth_free(app.auth);
    curl_global_cleanup();
}

TestSuite(edge_run, .init = setup, .fini = teardown, .timeout = 60);

static json_t *
call(tsupport_resp *r, const char *method, const char *path, const char *body, const char *extra)
{
    const char *h[5] = { user_auth, "Content-Type: application/json" };
    size_t n = 2;
    if (extra != NULL)
        h[n++] = extra;
    h[n] = NULL;
    tsupport_http_call(r, port, method, path, h, body, false);
    return r->body_len > 0 ? json_loads(r->body, 0, NULL) : NULL;
}

static const char *
str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    cr_assert_not_null(s, "no %s", k);
    return s;
}

Test(edge_run, a_query_carries_path_query_token_and_constant)
{
    tsupport_resp r;
    char path[128];
    snprintf(path, sizeof path, "/t/%s?limit=25&q=oled%%20tv&other=ignored", uuid);
    const char *tp = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    json_t *j = call(&r, "GET", path, NULL, tp);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(str(j, "fString"), uuid);
    cr_assert_eq(json_integer_value(json_object_get(j, "fInt32")), 25);
    cr_assert_str_eq(str(j, "note"), "oled tv");
    cr_assert_str_eq(str(j, "choiceText"), member, "the token's sub");
    cr_assert_eq(json_integer_value(json_object_get(j, "fSint32")), -3);
    json_t *seen = json_object_get(j, "rString");
    char actor[128];
    snprintf(actor, sizeof actor, "%s USER", member);
    cr_assert_str_eq(json_string_value(json_array_get(seen, 0)), actor, "Layby-Actor");
    cr_assert_str_eq(json_string_value(json_array_get(seen, 1)), tp + strlen("traceparent: "));
    json_decref(j);

    snprintf(path, sizeof path, "/t/%s?limit=ten", uuid);
    json_decref(call(&r, "GET", path, NULL, NULL));
    tsupport_http_assert_error(&r, 400, "invalid_argument", "limit");
    cr_assert_eq(atomic_load(&calls), 1, "a refused request sends nothing");
}

Test(edge_run, failures_are_remapped_and_silence_is_504_or_503)
{
    tsupport_resp r;
    char path[128];
    snprintf(path, sizeof path, "/t/%s?limit=1", uuid);
    json_decref(call(&r, "GET", path, NULL, NULL));
    tsupport_http_assert_error(&r, 409, "not_cancellable", NULL);
    snprintf(path, sizeof path, "/t/%s?limit=2", uuid);
    json_decref(call(&r, "GET", path, NULL, NULL));
    tsupport_http_assert_error(&r, 504, "timeout", NULL);
    json_decref(call(&r, "GET", "/nobody", NULL, NULL));
    tsupport_http_assert_error(&r, 503, "unavailable", NULL);
}

Test(edge_run, commands_answer_201_with_location_or_the_hooks_status)
{
    tsupport_resp r;
    char path[128];
    snprintf(path, sizeof path, "/t/%s", uuid);
    json_t *j = call(&r, "PUT", path, "{\"fInt32\":5}", NULL);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(j, "fInt32")), 5);
    char loc[128], want[128];
    snprintf(want, sizeof want, "/t/%s", uuid);
    cr_assert(tsupport_http_header(&r, "Location", loc, sizeof loc), "%s", r.headers);
    cr_assert_str_eq(loc, want);
    json_decref(j);

    j = call(&r, "PUT", path, "{\"fInt32\":7}", NULL);
    cr_assert_eq(r.status, 202, "the hook's status: %s", r.body);
    json_decref(j);

    json_decref(call(&r, "PUT", path, "{\"fInt32\":5,\"choiceText\":\"someone-else\"}", NULL));
    tsupport_http_assert_error(&r, 400, "unknown_field", "choiceText");

    json_decref(call(&r, "DELETE", path, NULL, NULL));
    cr_assert_eq(r.status, 204, "%s", r.body);
    cr_assert_eq(r.body_len, 0);
    cr_assert_eq(atomic_load(&calls), 3);
}

Test(edge_run, a_repeat_with_the_same_key_is_sent_once)
{
    tsupport_resp a, b, c;
    char path[128];
    snprintf(path, sizeof path, "/t/%s", uuid);
    json_decref(call(&a, "PUT", path, "{\"fInt32\":5}", "Idempotency-Key: k-1"));
    cr_assert_eq(a.status, 201, "%s", a.body);
    json_decref(call(&b, "PUT", path, "{\"fInt32\":5}", "Idempotency-Key: k-1"));
    cr_assert_eq(b.status, 201);
    cr_assert_str_eq(a.body, b.body);
    cr_assert_eq(atomic_load(&calls), 1, "the repeat was answered from the bucket");
    json_decref(call(&c, "PUT", path, "{\"fInt32\":6}", "Idempotency-Key: k-1"));
    tsupport_http_assert_error(&c, 422, "unprocessable", NULL);
}

/* The outcome is recorded before the answer is sent: with the record made
 * 200 ms late (hold point edge.idem_slow, test builds), a repeat sent the
 * moment the answer arrives is still answered from the bucket, not run
 * again. Sent first, the repeat found only the claim (CI once hit that). */
Test(edge_run, a_repeat_right_after_the_answer_finds_the_outcome)
{
#ifndef LAYBY_TEST_HOOKS
    cr_skip_test("needs the test hooks (edge.idem_slow)");
#else
    setenv("LAYBY_FAULT", "edge.idem_slow", 1); /* this test's process only */
    fault_init();
    tsupport_resp a, b;
    char path[128];
    snprintf(path, sizeof path, "/t/%s", uuid);
    json_decref(call(&a, "PUT", path, "{\"fInt32\":5}", "Idempotency-Key: k-slow"));
    cr_assert_eq(a.status, 201, "%s", a.body);
    json_decref(call(&b, "PUT", path, "{\"fInt32\":5}", "Idempotency-Key: k-slow"));
    cr_assert_eq(b.status, 201, "%s", b.body);
    cr_assert_str_eq(a.body, b.body, "the repeat ran the route again");
    cr_assert_eq(atomic_load(&calls), 1, "the repeat was answered from the bucket");
#endif
}

/* A 202 leaves only the claim (what an edge that died before the outcome
 * leaves too): the key is taken, so another body with it is 422 and the
 * route is not run for it; the first body is run again. */
Test(edge_run, a_claim_without_an_outcome_refuses_another_body)
{
    app.cfg.command_timeout_ms = 20000;
    app.cfg.saga_wait_ms = 200;
    tsupport_resp r, s;
    json_decref(call(&r, "POST", "/lost", "{\"label\":\"x\"}", "Idempotency-Key: lost-2"));
    cr_assert_eq(r.status, 202, "%s", r.body);
    json_decref(call(&s, "POST", "/lost", "{\"label\":\"y\"}", "Idempotency-Key: lost-2"));
    tsupport_http_assert_error(&s, 422, "unprocessable", NULL);
    json_decref(call(&s, "POST", "/lost", "{\"label\":\"x\"}", "Idempotency-Key: lost-2"));
    cr_assert_eq(s.status, 202, "the claim's own body goes on: %s", s.body);
}

Test(edge_run, an_unanswered_command_is_202_pending_with_its_new_id)
{
    /* /lost starts a saga: it waits --saga-wait, not --command-timeout */
    app.cfg.command_timeout_ms = 20000;
    app.cfg.saga_wait_ms = 200;
    tsupport_resp r, s;
    int64_t t0 = lb_mono_us();
    json_t *j = call(&r, "POST", "/lost", "{\"label\":\"x\"}", "Idempotency-Key: lost-1");
    cr_assert_eq(r.status, 202, "%s", r.body);
    cr_assert_lt(lb_mono_us() - t0, 10 * 1000000, "waited the command timeout, not the saga wait");
    cr_assert_str_eq(str(j, "status"), "PENDING");
    const char *id = str(j, "fString");
    char loc[128], want[128];
    snprintf(want, sizeof want, "/t/%s", id);
    cr_assert(tsupport_http_header(&r, "Location", loc, sizeof loc), "%s", r.headers);
    cr_assert_str_eq(loc, want);
    json_t *k = call(&s, "POST", "/lost", "{\"label\":\"x\"}", "Idempotency-Key: lost-1");
    cr_assert_eq(s.status, 202, "a 202 is not remembered: tried again");
    cr_assert_str_eq(str(k, "fString"), id, "the same key names the same id");
    json_decref(k);
    json_decref(j);
}

/* --- start-up ---------------------------------------------------------------------- */

/* A client that connects the moment the port listens (as the chaos run's
 * clients do after an edge restart): its one request must be answered by the
 * edge (JSON), never by civetweb's own 404 before the handler was installed
 * (five chaos-run POSTs got that 404 after an edge restart, 18:38 UTC). */
typedef struct early_client {
    int port;
    atomic_bool *stop;
    bool answered, by_civetweb;
    char first_line[64];
} early_client;

static void *
early_client_run(void *arg)
{
    early_client *c = arg;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    while (!atomic_load(c->stop)) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            break;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            close(fd);
            continue; /* not listening yet: at once again */
        }
        static const char req[] = "GET /no/such/route HTTP/1.1\r\nHost: t\r\n"
                                  "Connection: close\r\n\r\n";
        char buf[4096];
        size_t len = 0;
        ssize_t n;
        if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1))
            while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
                len += (size_t)n;
        close(fd);
        buf[len] = 0;
        if (len == 0)
            continue;
        c->answered = true;
        /* the edge's answers are its error shape; civetweb's own are not JSON */
        c->by_civetweb = strstr(buf, "application/json") == NULL;
        snprintf(c->first_line, sizeof c->first_line, "%.*s", (int)strcspn(buf, "\r"), buf);
        break;
    }
    return NULL;
}

Test(edge_run, a_request_sent_while_the_edge_starts_is_answered_by_its_routes)
{
    enum {
        CLIENTS = 8,
        ROUNDS = 3
    };
    int civetweb = 0, answered = 0;
    char example[64] = "";
    for (int round = 0; round < ROUNDS; round++) {
        edge_app a = app; /* the suite's routes and bus, a listener of its own */
        a.cfg.host = "127.0.0.1";
        a.cfg.port = tsupport_port_free();
        a.cfg.threads = 256; /* the default: the more workers, the longer mg_start() takes */
        a.cfg.request_timeout_ms = 5000;
        atomic_bool stop = false;
        early_client cl[CLIENTS];
        pthread_t th[CLIENTS];
        for (int i = 0; i < CLIENTS; i++) {
            cl[i] = (early_client){ .port = (int)a.cfg.port, .stop = &stop };
            cr_assert_eq(pthread_create(&th[i], NULL, early_client_run, &cl[i]), 0);
        }
        usleep(5000); /* the clients are knocking */
        struct mg_context *ctx = NULL;
        lb_err err;
        cr_assert_eq(edge_listen_open(&ctx, &a, &err), LB_OK, "%s", err.msg);
        /* civetweb runs and the clients' requests are in; a loaded machine can
         * hold the starting thread here for milliseconds: here, 100 ms */
        usleep(100000);
        edge_listen_route(ctx, &a);
        usleep(200000);
        atomic_store(&stop, true);
        for (int i = 0; i < CLIENTS; i++) {
            pthread_join(th[i], NULL);
            answered += cl[i].answered;
            if (cl[i].answered && cl[i].by_civetweb && civetweb++ == 0)
                snprintf(example, sizeof example, "%s", cl[i].first_line);
        }
        mg_stop(ctx);
    }
    cr_assert_eq(answered, CLIENTS * ROUNDS, "every early client answered");
    cr_assert_eq(civetweb, 0, "%d of %d early requests answered by civetweb, not the edge (%s)",
                 civetweb, answered, example);
}
