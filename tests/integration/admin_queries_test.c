/* admin_queries_test.c - the orchestrator's admin reads (layby.qry.orchestrator.saga_list
 * and .show, issue 24), which the console's endpoints ask, against real
 * nats-server, PostgreSQL, layby-orchestrator and the test participant: a
 * STUCK saga's document is the one `layby-ctl saga show --json` prints (one
 * piece of code renders both), the list filters by state and order id and
 * pages by keyset, and bad filters are refused naming the field; a saga with
 * a long log answers its timeline a page at a time, each in under a second;
 * the edge's Overview counts the sagas, letters and audit the test made;
 * dead letters through the edge; and an order's admin page through the edge
 * (the whole order stack): every ledger line and delivery status is a stored
 * row, the delivery is layby-ctl order show's. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/bus.h"
#include "engine/id.h"
#include "engine/lb.h"
#include "engine/subjects.h"
#include "layby/v1/admin.pb-c.h"
#include "layby/v1/saga.pb-c.h"
#include "sagas_test.h"
#include "tsupport.h"

#define WAIT_MS 30000

static bus *admin;
static tsupport_proc procs[6];

static void
setup(void)
{
    admin = tsupport_sagatest_open("admin-queries-test");
}

static void
teardown(void)
{
    tsupport_stack_close(&admin, procs, LB_COUNTOF(procs));
}

TestSuite(admin_queries, .init = setup, .fini = teardown, .timeout = 180);

/* Asks subject with req: the document (LB_OK) or the Failure in err. */
static lb_status
ask(json_t **doc, const char *subject, const ProtobufCMessage *req, lb_err *err)
{
    bus_envelope env;
    bus_envelope_init(&env, req->descriptor, NULL);
    natsMsg *reply = NULL;
    ProtobufCMessage *m = NULL;
    lb_status s = bus_request(&reply, admin, subject, &env, req, 10000, err);
    if (s == LB_OK)
        s = bus_reply_decode(&m, reply, &layby__v1__admin_document__descriptor, err);
    natsMsg_Destroy(reply);
    if (s != LB_OK)
        return s;
    json_error_t je;
    *doc = json_loads(((Layby__V1__AdminDocument *)m)->json, 0, &je);
    cr_assert_not_null(*doc, "not JSON: %s", je.text);
    protobuf_c_message_free_unpacked(m, NULL);
    return LB_OK;
}

static json_t *
list(const char *state, const char *order_id, const char *cursor, int limit, lb_err *err,
     lb_status want)
{
    Layby__V1__AdminSagaList l = LAYBY__V1__ADMIN_SAGA_LIST__INIT;
    l.state = (char *)state;
    l.order_id = (char *)order_id;
    l.cursor = (char *)cursor;
    l.limit = limit;
    json_t *doc = NULL;
    lb_status s = ask(&doc, SUBJ_SAGA_ADMIN_LIST, &l.base, err);
    cr_assert_eq(s, want, "list %s: %s %s", state, lb_status_code(s), err->msg);
    return doc;
}

static const char *
item_id(json_t *doc, size_t i)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(doc, "items"), i), "sagaId"));
}

Test(admin_queries, a_stuck_sagas_document_is_the_ctl_one_and_the_list_pages_by_keyset)
{
    tsupport_sagatest_start(&procs[0], NULL);
    tsupport_daemon_start(&procs[1], "layby-orchestrator", 0, NULL, NULL);
    char a[ID_STR_LEN], b[ID_STR_LEN], done[ID_STR_LEN];
    tsupport_test_saga_start(admin, a, "2:fail 1:undofail=99");
    tsupport_test_saga_start(admin, b, "2:fail 1:undofail=99");
    tsupport_test_saga_start(admin, done, "");
    tsupport_saga_wait_status(WAIT_MS, a, "STUCK");
    tsupport_saga_wait_status(WAIT_MS, b, "STUCK");
    tsupport_saga_wait_status(WAIT_MS, done, "COMPLETED");
    lb_err err;

    /* show: the same document as layby-ctl's, timeline, decoded bodies and all */
    Layby__V1__AdminSagaShow sh = LAYBY__V1__ADMIN_SAGA_SHOW__INIT;
    sh.saga_id = a;
    json_t *got = NULL;
    cr_assert_eq(ask(&got, SUBJ_SAGA_ADMIN_SHOW, &sh.base, &err), LB_OK, "%s", err.msg);
    char *out = NULL;
    cr_assert_eq(tsupport_ctl_run(&out, false, NULL,
                                  (const char *const[]){ "saga", "show", a, "--json", NULL }),
                 0, "%s", out);
    json_error_t je;
    json_t *want = json_loads(out, 0, &je);
    cr_assert_not_null(want, "ctl printed no JSON: %s", out);
    free(out);
    /* the query pages the timeline (layby-ctl prints it whole): one page here */
    cr_assert_eq(json_integer_value(json_object_get(got, "timelineFrom")), 0);
    cr_assert_null(json_object_get(got, "timelineNextCursor"), "a short timeline is one page");
    json_object_del(got, "timelineFrom");
    cr_assert(json_equal(got, want), "the query's document differs from layby-ctl's");
    cr_assert_str_eq(json_string_value(json_object_get(got, "state")), "STUCK");
    json_t *tl = json_object_get(got, "timeline");
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s'", a);
    cr_assert_eq((long long)json_array_size(tl), (long long)tsupport_sql_int(sql),
                 "one timeline entry per logged input");
    cr_assert_gt(json_array_size(tl), 3, "a STUCK saga has more than start and one event");
    /* decoded inputs (the test saga's events carry empty bodies, so their
     * decoding is checked by the equality above and by ctl_test) */
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(tl, 1), "input"), "eventType")),
                     "layby.v1.TestStepDone");
    json_decref(got);
    json_decref(want);

    /* list: STUCK only, one per page, two pages, then none */
    json_t *p1 = list("STUCK", "", "", 1, &err, LB_OK);
    cr_assert_eq(json_array_size(json_object_get(p1, "items")), 1);
    const char *cur = json_string_value(json_object_get(p1, "nextCursor"));
    cr_assert_not_null(cur, "a first page of two has a next one");
    json_t *p2 = list("STUCK", "", cur, 1, &err, LB_OK);
    cr_assert_eq(json_array_size(json_object_get(p2, "items")), 1);
    cr_assert_null(json_object_get(p2, "nextCursor"), "the last page has no next cursor");
    char seen[2][ID_STR_LEN];
    snprintf(seen[0], ID_STR_LEN, "%s", item_id(p1, 0));
    snprintf(seen[1], ID_STR_LEN, "%s", item_id(p2, 0));
    cr_assert_str_neq(seen[0], seen[1]);
    cr_assert((strcmp(seen[0], a) == 0 && strcmp(seen[1], b) == 0) ||
                  (strcmp(seen[0], b) == 0 && strcmp(seen[1], a) == 0),
              "pages hold the two STUCK sagas: %s %s", seen[0], seen[1]);
    json_decref(p1);
    json_decref(p2);

    /* by order id (the saga of that flow), whatever its state */
    json_t *one = list("", done, "", 0, &err, LB_OK);
    cr_assert_eq(json_array_size(json_object_get(one, "items")), 1);
    cr_assert_str_eq(item_id(one, 0), done);
    json_decref(one);

    /* refusals name the field; an unknown saga is not_found */
    cr_assert_null(list("NOPE", "", "", 0, &err, LB_ERR_INVALID));
    cr_assert_str_eq(err.field, "state");
    cr_assert_null(list("", "not-an-id", "", 0, &err, LB_ERR_INVALID));
    cr_assert_str_eq(err.field, "orderId");
    cr_assert_null(list("", "", "12_nope", 0, &err, LB_ERR_INVALID));
    cr_assert_str_eq(err.field, "cursor");
    cr_assert_null(list("", "", "", 101, &err, LB_ERR_INVALID));
    cr_assert_str_eq(err.field, "limit");
    char other[ID_STR_LEN];
    id_new(other);
    sh.saga_id = other;
    cr_assert_eq(ask(&got, SUBJ_SAGA_ADMIN_SHOW, &sh.base, &err), LB_ERR_NOT_FOUND, "%s", err.msg);
}

/* One page of saga id's timeline (cursor "" = the first), and how long the
 * query took in *ms. */
static json_t *
timeline_page(const char *id, const char *cursor, int limit, int64_t *ms, lb_err *err,
              lb_status want)
{
    Layby__V1__AdminSagaShow sh = LAYBY__V1__ADMIN_SAGA_SHOW__INIT;
    sh.saga_id = (char *)id;
    sh.timeline_cursor = (char *)cursor;
    sh.timeline_limit = limit;
    json_t *doc = NULL;
    int64_t t0 = lb_mono_us();
    lb_status s = ask(&doc, SUBJ_SAGA_ADMIN_SHOW, &sh.base, err);
    if (ms != NULL)
        *ms = (lb_mono_us() - t0) / 1000;
    cr_assert_eq(s, want, "show %s from %s: %s %s", id, cursor, lb_status_code(s), err->msg);
    return doc;
}

#define LONG_LOG 1000

Test(admin_queries, a_saga_with_a_thousand_log_entries_answers_its_timeline_a_page_at_a_time)
{
    tsupport_sagatest_start(&procs[0], NULL);
    tsupport_daemon_start(&procs[1], "layby-orchestrator", 0, NULL, NULL);
    char a[ID_STR_LEN];
    tsupport_test_saga_start(admin, a, "2:fail 1:undofail=99");
    tsupport_saga_wait_status(WAIT_MS, a, "STUCK");
    /* A STUCK saga stays put, so its log grows only by what we add: its last
     * input repeated, as a flood of redelivered events would leave it. */
    char sql[640];
    snprintf(sql, sizeof sql,
             "INSERT INTO saga.saga_log (saga_id, at, msg_id, input_kind, input, verdict,"
             " from_status, to_status, line)"
             " SELECT saga_id, at + g * interval '1 ms', msg_id || '-' || g, input_kind, input,"
             " 'IGNORED', to_status, to_status, 'a repeat' FROM saga.saga_log,"
             " generate_series(1, %d) g WHERE saga_id = '%s'"
             " AND id = (SELECT max(id) FROM saga.saga_log WHERE saga_id = '%s')",
             LONG_LOG, a, a);
    tsupport_sql(sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM saga.saga_log WHERE saga_id = '%s'", a);
    int64_t total = tsupport_sql_int(sql);
    cr_assert_gt(total, LONG_LOG);
    lb_err err;

    /* the first page by default: 200 entries, and where the next starts */
    int64_t ms = 0;
    json_t *first = timeline_page(a, "", 0, &ms, &err, LB_OK);
    cr_assert_eq(json_array_size(json_object_get(first, "timeline")), 200);
    cr_assert_str_eq(json_string_value(json_object_get(first, "timelineNextCursor")), "200");
    cr_assert_lt(ms, 1000, "the first page of a %lld-entry saga took %lld ms", (long long)total,
                 (long long)ms);
    json_decref(first);

    /* every page, 500 at a time: each bounded in time (2.5 times the entries
     * of the page the console opens, and CI runs two suite groups at once
     * under ASan) and under NATS's 1 MB, together the log in order, each
     * entry once */
    char cursor[32] = "";
    int64_t seen = 0, last_id = 0;
    int pages = 0;
    do {
        json_t *p = timeline_page(a, cursor, 500, &ms, &err, LB_OK);
        pages++;
        cr_assert_lt(ms, 3000, "page %d took %lld ms", pages, (long long)ms);
        char *text = json_dumps(p, JSON_COMPACT);
        cr_assert_lt(strlen(text), 1024 * 1024, "page %d is %zu bytes", pages, strlen(text));
        free(text);
        cr_assert_eq(json_integer_value(json_object_get(p, "timelineFrom")), seen);
        json_t *tl = json_object_get(p, "timeline");
        cr_assert_leq(json_array_size(tl), 500, "a page holds at most its limit");
        for (size_t i = 0; i < json_array_size(tl); i++) {
            int64_t id = json_integer_value(json_object_get(json_array_get(tl, i), "id"));
            cr_assert_gt(id, last_id, "entries in log order, each once");
            last_id = id;
        }
        seen += (int64_t)json_array_size(tl);
        const char *next = json_string_value(json_object_get(p, "timelineNextCursor"));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        json_decref(p);
    } while (cursor[0] != '\0' && pages < 10);
    cr_assert_eq(seen, total, "the pages hold the whole log");
    cr_assert_eq(pages, (int)((total + 499) / 500));

    /* refusals name the field */
    cr_assert_null(timeline_page(a, "", 501, NULL, &err, LB_ERR_INVALID));
    cr_assert_str_eq(err.field, "timelineLimit");
    cr_assert_null(timeline_page(a, "x1", 0, NULL, &err, LB_ERR_INVALID));
    cr_assert_str_eq(err.field, "timelineCursor");
    cr_assert_null(timeline_page(a, "-1", 0, NULL, &err, LB_ERR_INVALID));
    cr_assert_str_eq(err.field, "timelineCursor");
}

/* --- dead letters, read by the edge itself (edge_admin.c) ------------------ */

/* Publishes a dead letter as a service's DLQ step would: the original message
 * (an AdminSagaShow naming saga, or bytes no type decodes when saga is NULL)
 * under layby.dlq.<service> with the Layby-Dlq-* headers. */
static void
dead_letter_put(const char *service, const char *consumer, const char *saga)
{
    char subject[64], id[ID_STR_LEN];
    snprintf(subject, sizeof subject, "layby.dlq.%s", service);
    uint8_t buf[128];
    size_t len = 3;
    memcpy(buf, "\xff\xff\xff", 3);
    if (saga != NULL) {
        Layby__V1__AdminSagaShow sh = LAYBY__V1__ADMIN_SAGA_SHOW__INIT;
        sh.saga_id = (char *)saga;
        len = protobuf_c_message_pack(&sh.base, buf);
    }
    natsMsg *m = NULL;
    cr_assert_eq(natsMsg_Create(&m, subject, NULL, (const char *)buf, (int)len), NATS_OK);
    id_new(id);
    natsMsgHeader_Set(m, BUS_H_MSG_ID, id);
    natsMsgHeader_Set(m, BUS_H_TYPE, "layby.v1.AdminSagaShow");
    natsMsgHeader_Set(m, BUS_H_CORRELATION, saga != NULL ? saga : id);
    natsMsgHeader_Set(m, BUS_H_DLQ_SUBJECT, "layby.cmd.catalog.reserve_stock");
    natsMsgHeader_Set(m, BUS_H_DLQ_CONSUMER, consumer);
    natsMsgHeader_Set(m, BUS_H_DLQ_ERROR, "bad_message: cannot decode");
    natsMsgHeader_Set(m, BUS_H_DLQ_DELIVERIES, "1");
    jsPubAck *ack = NULL;
    cr_assert_eq(js_PublishMsg(&ack, bus_js(admin), m, NULL, NULL), NATS_OK);
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(m);
}

static json_t *
edge_get(int port, const char *hdr, const char *path, long want)
{
    static tsupport_resp r;
    tsupport_http_call(&r, port, "GET", path, (const char *const[]){ hdr, NULL }, NULL, false);
    cr_assert_eq(r.status, want, "GET %s: %ld %s", path, r.status, r.body);
    return want == 200 ? tsupport_http_json(&r) : NULL;
}

static const char *
jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

Test(admin_queries, dead_letters_page_by_sequence_and_show_what_layby_ctl_shows)
{
    tsupport_daemon_start(&procs[0], "layby-edge", 0, NULL, NULL);
    int port = procs[0].port;
    char adm[2048], member[2048], path[256], saga[ID_STR_LEN], other[ID_STR_LEN];
    tsupport_jwt_member(adm, sizeof adm, "11111111-1111-4111-8111-111111111111", "ADMIN");
    tsupport_jwt_member(member, sizeof member, "22222222-2222-4222-8222-222222222222", "USER");
    id_new(saga);
    id_new(other);
    dead_letter_put("catalog", "LAYBY_CMD/catalog", saga);
    dead_letter_put("catalog", "LAYBY_CMD/catalog", NULL);
    dead_letter_put("orchestrator", "LAYBY_EVT/orchestrator-order", other);

    /* two per page: two pages, oldest first, the whole stream once */
    json_t *p1 = edge_get(port, adm, "/api/v1/admin/dead-letters?limit=2", 200);
    cr_assert_eq(json_integer_value(json_object_get(p1, "total")), 3);
    json_t *items = json_object_get(p1, "items");
    cr_assert_eq(json_array_size(items), 2, "a page holds at most its limit");
    const char *cur = jstr(p1, "nextCursor");
    cr_assert_not_null(cur, "a first page of three by two has a next one");
    snprintf(path, sizeof path, "/api/v1/admin/dead-letters?limit=2&cursor=%s", cur);
    json_t *p2 = edge_get(port, adm, path, 200);
    cr_assert_eq(json_array_size(json_object_get(p2, "items")), 1);
    cr_assert_null(json_object_get(p2, "nextCursor"), "the last page has no next cursor");
    json_t *first = json_array_get(items, 0);
    json_int_t seq1 = json_integer_value(json_object_get(first, "seq"));
    json_int_t seq3 =
        json_integer_value(json_object_get(json_array_get(json_object_get(p2, "items"), 0), "seq"));
    cr_assert_gt(seq3, seq1, "oldest first");

    /* a letter: what layby-ctl dlq show prints, plus its headers by name
     * and the command that puts it back */
    snprintf(path, sizeof path, "/api/v1/admin/dead-letters/%lld", (long long)seq1);
    json_t *one = edge_get(port, adm, path, 200);
    cr_assert(json_equal(one, first), "the page's letter is the one shown alone");
    cr_assert_str_eq(jstr(json_object_get(one, "body"), "sagaId"), saga, "the body is decoded");
    cr_assert_str_eq(jstr(one, "consumer"), "LAYBY_CMD/catalog");
    cr_assert_str_eq(jstr(one, "lastError"), "bad_message: cannot decode");
    cr_assert_str_eq(jstr(one, "originalSubject"), "layby.cmd.catalog.reserve_stock");
    char cmd[64], arg[24];
    snprintf(cmd, sizeof cmd, "layby-ctl dlq redrive %lld", (long long)seq1);
    cr_assert_str_eq(jstr(one, "redrive"), cmd);
    snprintf(arg, sizeof arg, "%lld", (long long)seq1);
    char *out = NULL;
    cr_assert_eq(
        tsupport_ctl_run(&out, false, NULL, (const char *const[]){ "dlq", "show", arg, NULL }), 0,
        "%s", out);
    json_t *ctl = json_loads(out, 0, NULL);
    cr_assert_not_null(ctl, "ctl printed no JSON: %s", out);
    free(out);
    const char *key;
    json_t *v;
    json_object_foreach(ctl, key, v)
    {
        cr_assert(json_equal(json_object_get(one, key), v), "%s differs from layby-ctl's", key);
    }
    json_decref(ctl);
    /* the undecodable one: raw bytes and why */
    json_t *raw = json_array_get(items, 1);
    cr_assert_not_null(jstr(raw, "bodyBase64"));
    cr_assert_not_null(jstr(raw, "error"));

    /* a filter: the orchestrator's only */
    json_t *f = edge_get(port, adm,
                         "/api/v1/admin/dead-letters?consumer=LAYBY_EVT/orchestrator-order", 200);
    cr_assert_eq(json_array_size(json_object_get(f, "items")), 1);
    cr_assert_str_eq(
        jstr(json_object_get(json_array_get(json_object_get(f, "items"), 0), "body"), "sagaId"),
        other);
    json_decref(f);
    json_decref(one);
    json_decref(p1);
    json_decref(p2);

    /* refusals in the edge's error shape; admins only */
    static tsupport_resp r;
    const char *bad[][3] = {
        { "/api/v1/admin/dead-letters?limit=101", "invalid_argument", "limit" },
        { "/api/v1/admin/dead-letters?cursor=x", "invalid_argument", "cursor" },
        { "/api/v1/admin/dead-letters/0", "invalid_argument", "seq" },
    };
    for (size_t i = 0; i < LB_COUNTOF(bad); i++) {
        tsupport_http_call(&r, port, "GET", bad[i][0], (const char *const[]){ adm, NULL }, NULL,
                           false);
        tsupport_http_assert_error(&r, 400, bad[i][1], bad[i][2]);
    }
    snprintf(path, sizeof path, "/api/v1/admin/dead-letters/%lld", (long long)seq3 + 100);
    tsupport_http_call(&r, port, "GET", path, (const char *const[]){ adm, NULL }, NULL, false);
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
    tsupport_http_call(&r, port, "GET", "/api/v1/admin/dead-letters",
                       (const char *const[]){ member, NULL }, NULL, false);
    tsupport_http_assert_error(&r, 403, "forbidden", NULL);
    snprintf(path, sizeof path, "/api/v1/admin/dead-letters/%lld", (long long)seq1);
    tsupport_http_call(&r, port, "GET", path, (const char *const[]){ member, NULL }, NULL, false);
    tsupport_http_assert_error(&r, 403, "forbidden", NULL);
}

/* --- the Overview (edge_overview.c + the orchestrator's saga_overview) ------- */

/* The {type, state} row of the overview's sagas, or NULL. */
static json_t *
saga_count_row(json_t *ov, const char *type, const char *state)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(ov, "sagas"), i, o)
    {
        if (strcmp(jstr(o, "type"), type) == 0 && strcmp(jstr(o, "state"), state) == 0)
            return o;
    }
    return NULL;
}

/* The named element (key = want) of the overview's array arr. */
static json_t *
named(json_t *arr, const char *key, const char *want)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        if (jstr(o, key) != NULL && strcmp(jstr(o, key), want) == 0)
            return o;
    }
    return NULL;
}

static json_int_t
jint_of(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

Test(admin_queries, the_overview_shows_the_sagas_letters_audit_and_bus_the_test_made)
{
    tsupport_proc *p = procs;
    tsupport_sagatest_start(&p[0], NULL);
    tsupport_daemon_start(&p[1], "layby-orchestrator", 0, NULL, NULL);
    tsupport_daemon_start(&p[2], "layby-edge", 0, NULL, NULL);
    int port = p[2].port;
    char adm[2048], member[2048], stuck[2][ID_STR_LEN], done[3][ID_STR_LEN];
    tsupport_jwt_member(adm, sizeof adm, "11111111-1111-4111-8111-111111111111", "ADMIN");
    tsupport_jwt_member(member, sizeof member, "22222222-2222-4222-8222-222222222222", "USER");

    /* before: no audit kept yet, no letter */
    json_t *ov = edge_get(port, adm, "/api/v1/admin/overview", 200);
    cr_assert(json_is_null(json_object_get(ov, "lastAudit")), "no audit ran since the reset");
    cr_assert_eq(jint_of(ov, "deadLetters"), 0);
    json_decref(ov);

    for (int i = 0; i < 2; i++)
        tsupport_test_saga_start(admin, stuck[i], "2:fail 1:undofail=99");
    for (int i = 0; i < 3; i++)
        tsupport_test_saga_start(admin, done[i], "");
    for (int i = 0; i < 2; i++)
        tsupport_saga_wait_status(WAIT_MS, stuck[i], "STUCK");
    for (int i = 0; i < 3; i++)
        tsupport_saga_wait_status(WAIT_MS, done[i], "COMPLETED");
    char type[64];
    cr_assert_eq(tsupport_sql_int("SELECT count(DISTINCT saga_type) FROM saga.sagas"), 1,
                 "one saga type made by this test");
    static tsupport_resp r;
    dead_letter_put("catalog", "LAYBY_CMD/catalog", stuck[0]);
    dead_letter_put("catalog", "LAYBY_CMD/catalog", NULL);
    /* an audit that cannot finish (no service answers here) is kept too, with why */
    char *out = NULL;
    cr_assert_eq(tsupport_ctl_run(&out, true, NULL,
                                  (const char *const[]){ "audit", "--timeout", "300ms", NULL }),
                 1, "%s", out);
    free(out);

    ov = edge_get(port, adm, "/api/v1/admin/overview", 200);
    char *text = json_dumps(ov, JSON_COMPACT);
    cr_log_info("overview: %.3000s", text);
    free(text);

    /* sagas by type and state: what the table holds */
    json_t *row = json_array_get(json_object_get(ov, "sagas"), 0);
    cr_assert_not_null(row, "sagas listed: %s", jstr(ov, "sagasError"));
    snprintf(type, sizeof type, "%s", jstr(row, "type"));
    json_t *st = saga_count_row(ov, type, "STUCK"), *co = saga_count_row(ov, type, "COMPLETED");
    cr_assert_not_null(st, "the STUCK sagas are listed");
    cr_assert_not_null(co, "the COMPLETED sagas are listed");
    cr_assert_eq(jint_of(st, "count"), 2, "two STUCK sagas");
    cr_assert(json_is_false(json_object_get(st, "finished")));
    cr_assert_eq(jint_of(co, "count"), 3, "three COMPLETED sagas");
    cr_assert(json_is_true(json_object_get(co, "finished")));
    cr_assert_eq(json_array_size(json_object_get(ov, "sagas")), 2, "nothing else");

    /* throughput: 30 buckets of 10 s, oldest first; the five starts and
     * three completions of the last seconds in them */
    json_t *tp = json_object_get(ov, "throughput");
    cr_assert_eq(json_array_size(tp), 30);
    cr_assert_eq(jint_of(ov, "bucketSeconds"), 10);
    json_int_t started = 0, completed = 0, finished = 0;
    int64_t prev = 0;
    for (size_t i = 0; i < json_array_size(tp); i++) {
        json_t *b = json_array_get(tp, i);
        int64_t at = 0;
        cr_assert_eq(lb_time_parse(&at, jstr(b, "at"), NULL), LB_OK);
        cr_assert(i == 0 || at - prev == 10000, "buckets 10 s apart");
        prev = at;
        started += jint_of(b, "started");
        completed += jint_of(b, "completed");
        finished += jint_of(b, "finished");
    }
    cr_assert_geq(lb_now_ms() - prev, 0, "the last bucket is the current one");
    cr_assert_lt(lb_now_ms() - prev, 20000, "the last bucket is the current one");
    cr_assert_eq(started, 5, "five sagas started in the window");
    cr_assert_eq(completed, 3);
    cr_assert_eq(finished, 3, "STUCK is not finished");

    /* dead letters, streams and their durables */
    cr_assert_eq(jint_of(ov, "deadLetters"), 2, "the two planted letters");
    json_t *dlq = named(json_object_get(ov, "streams"), "name", BUS_STREAM_DLQ);
    cr_assert_eq(jint_of(dlq, "messages"), 2);
    json_t *cmd = named(json_object_get(ov, "streams"), "name", BUS_STREAM_CMD);
    cr_assert(json_is_true(json_object_get(cmd, "ok")));
    cr_assert_eq(jint_of(cmd, "replicas"), 1);
    cr_assert_geq(jint_of(cmd, "messages"), 5, "the five starts at least");
    json_t *orch = named(json_object_get(cmd, "consumers"), "name", "orchestrator");
    cr_assert_not_null(orch, "LAYBY_CMD's durables under it");
    cr_assert(json_is_true(json_object_get(orch, "ok")));
    cr_assert_eq(jint_of(orch, "pending"), 0, "the orchestrator took every start");
    cr_assert_not_null(json_object_get(orch, "redelivered"));
    cr_assert_not_null(json_object_get(orch, "ackPending"));

    /* the server the edge is connected to: its name and version from INFO */
    json_t *servers = json_object_get(ov, "servers");
    cr_assert_eq(json_array_size(servers), 1);
    json_t *srv = json_array_get(servers, 0);
    cr_assert(json_is_true(json_object_get(srv, "ok")), "%s", jstr(srv, "error"));
    cr_assert(json_is_true(json_object_get(srv, "connected")));
    cr_assert(json_is_true(json_object_get(srv, "jetstream")));
    cr_assert_eq(strncmp(jstr(srv, "version"), "2.", 2), 0, "version %s", jstr(srv, "version"));
    cr_assert_not_null(jstr(srv, "name"));

    /* the daemons' outbox backlogs: the orchestrator answers, with a gauge */
    json_t *od = named(json_object_get(ov, "daemons"), "name", "layby-orchestrator");
    cr_assert(json_is_true(json_object_get(od, "ok")), "%s", jstr(od, "error"));
    cr_assert(json_is_integer(json_object_get(od, "outboxBacklog")));
    json_t *cat = named(json_object_get(ov, "daemons"), "name", "layby-catalog");
    cr_assert(json_is_false(json_object_get(cat, "ok")), "the catalog does not run here");

    /* the audit just run: kept with its time and why it did not finish */
    json_t *au = json_object_get(ov, "lastAudit");
    cr_assert(json_is_object(au), "the audit is kept");
    cr_assert(json_is_false(json_object_get(au, "ok")));
    cr_assert_not_null(strstr(jstr(au, "error"), "audit"), "%s", jstr(au, "error"));
    int64_t at = 0;
    cr_assert_eq(lb_time_parse(&at, jstr(au, "at"), NULL), LB_OK);
    cr_assert_lt(lb_now_ms() - at, 120000, "kept just now");
    json_decref(ov);

    /* the orchestrator away: the rest is still answered, and why sagas are not */
    cr_assert_eq(tsupport_daemon_stop(&p[1], 10000), 0);
    ov = edge_get(port, adm, "/api/v1/admin/overview", 200);
    cr_assert(json_is_null(json_object_get(ov, "sagas")));
    cr_assert_not_null(jstr(ov, "sagasError"));
    cr_assert_eq(jint_of(ov, "deadLetters"), 2);
    json_decref(ov);

    /* admins only, in the edge's error shape */
    tsupport_http_call(&r, port, "GET", "/api/v1/admin/overview",
                       (const char *const[]){ member, NULL }, NULL, false);
    tsupport_http_assert_error(&r, 403, "forbidden", NULL);
    tsupport_http_call(&r, port, "GET", "/api/v1/admin/overview", (const char *const[]){ NULL },
                       NULL, false);
    tsupport_http_assert_error(&r, 401, "unauthorized", NULL);
}

/* The Overview's count of the sagas in flight reads the partial index
 * sagas_active alone (sql/0960), never the table: in a shop every order
 * until its return window closes is a RUNNING saga, and the page asks every
 * 5 s. 20,000 RUNNING and 20,000 long-finished sagas, vacuumed and analyzed
 * as a table that has lived is: with saga_type only in the heap PostgreSQL
 * read each saga's row (in the dev stack's 150,000, the whole table, in
 * parallel) at every refresh. */
#define SAGAS_HEAP_READS                                               \
    "SELECT heap_blks_hit + heap_blks_read FROM pg_statio_user_tables" \
    " WHERE relid = 'saga.sagas'::regclass"

Test(admin_queries, the_overview_counts_the_sagas_in_flight_from_the_index_alone)
{
    tsupport_daemon_start(&procs[1], "layby-orchestrator", 0, NULL, NULL);
    tsupport_sql(
        "INSERT INTO saga.sagas (saga_id, saga_type, version, status, state, start_type,"
        " start, created_at, updated_at, finished_at)"
        " SELECT gen_random_uuid(), 'sagatest', 1, s, '\\x00', 'layby.v1.TestSagaStart',"
        " '\\x00', t, t, CASE WHEN s = 'COMPLETED' THEN t END FROM (SELECT CASE WHEN"
        " i % 2 = 0 THEN 'RUNNING' ELSE 'COMPLETED' END AS s, now() - interval '1 day' AS t"
        " FROM generate_series(1, 40000) i) x");
    tsupport_sql("VACUUM ANALYZE saga.sagas");
    /* The orchestrator's session flushes its statistics at most every second:
     * what it read of the table before is counted before. */
    struct timespec ts = { 2, 0 };
    nanosleep(&ts, NULL);
    tsupport_table_stats before = tsupport_table_stats_get("saga.sagas");
    int64_t heap = tsupport_sql_int(SAGAS_HEAP_READS);
    Layby__V1__AdminOverview req = LAYBY__V1__ADMIN_OVERVIEW__INIT;
    json_t *doc = NULL;
    lb_err err;
    cr_assert_eq(ask(&doc, SUBJ_SAGA_ADMIN_OVERVIEW, &req.base, &err), LB_OK, "%s", err.msg);
    json_t *running = saga_count_row(doc, "sagatest", "RUNNING");
    cr_assert_not_null(running, "the RUNNING sagas are listed");
    cr_assert_eq(jint_of(running, "count"), 20000);
    cr_assert_null(saga_count_row(doc, "sagatest", "COMPLETED"), "finished a day ago: not listed");
    json_decref(doc);
    nanosleep(&ts, NULL);
    tsupport_table_stats after = tsupport_table_stats_get("saga.sagas");
    cr_assert_eq(after.seq_scans, before.seq_scans, "the overview read saga.sagas whole");
    heap = tsupport_sql_int(SAGAS_HEAP_READS) - heap;
    cr_assert_lt(heap, 100, "the overview read %lld pages of saga.sagas: not from the index alone",
                 (long long)heap);
}

/* --- an order's page: the order, its payment ledger, its delivery ------------- */

/* method path as auth (a header line) with body; the answer in r. */
static void
order_call(tsupport_resp *r, int port, const char *method, const char *path, const char *auth,
           const char *body)
{
    const char *const h[] = { "Content-Type: application/json", auth, NULL };
    tsupport_http_call(r, port, method, path, h, body, false);
}

/* POST or PUT that must answer want; its string field key into out (or NULL). */
static void
order_make(int port, const char *path, const char *auth, const char *body, long want,
           const char *key, char out[ID_STR_LEN])
{
    static tsupport_resp r;
    order_call(&r, port, "POST", path, auth, body);
    cr_assert_eq(r.status, want, "POST %s: %ld %s", path, r.status, r.body);
    if (key == NULL)
        return;
    json_t *j = tsupport_http_json(&r);
    snprintf(out, ID_STR_LEN, "%s", jstr(j, key));
    json_decref(j);
}

typedef struct admin_order_want {
    int port;
    const char *auth, *order, *delivery_status;
    char seen[64];
} admin_order_want;

/* The admin's order page shows the delivery in w->delivery_status. */
static bool
admin_order_is(void *arg)
{
    admin_order_want *w = arg;
    char path[128];
    snprintf(path, sizeof path, "/api/v1/admin/orders/%s", w->order);
    static tsupport_resp r;
    order_call(&r, w->port, "GET", path, w->auth, NULL);
    json_t *j = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    const char *ds = jstr(json_object_get(j, "delivery"), "status");
    snprintf(w->seen, sizeof w->seen, "%ld %s", r.status, ds ? ds : "-");
    bool ok = ds != NULL && strcmp(ds, w->delivery_status) == 0;
    json_decref(j);
    return ok;
}

/* Asserts that line, a ledger line of the admin's page, is one row of
 * payment.charges or payment.refunds of order, field for field. */
static void
ledger_line_is_a_row(json_t *line, const char *order)
{
    const char *kind = jstr(line, "kind");
    cr_assert_not_null(kind, "a ledger line without kind");
    json_int_t amount = json_integer_value(json_object_get(line, "amount"));
    json_int_t refunded = json_integer_value(json_object_get(line, "refunded"));
    const char *key = jstr(line, "key"), *at = jstr(line, "at");
    char sql[1024];
    if (strcmp(kind, "CHARGE") == 0)
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM payment.charges WHERE order_id = '%s' AND charge_id = '%s'"
                 " AND saga_id = '%s' AND status = '%s' AND amount_won = %lld"
                 " AND refunded_won = %lld AND attempt_key = '%s' AND method = '%s'"
                 " AND created_at = '%s'::timestamptz",
                 order, jstr(line, "id"), jstr(line, "sagaId"), jstr(line, "status"),
                 (long long)amount, (long long)refunded, key, jstr(line, "method"), at);
    else
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM payment.refunds WHERE order_id = '%s' AND refund_id = '%s'"
                 " AND saga_id = '%s' AND amount_won = %lld AND refund_key = '%s'"
                 " AND charge_id = '%s' AND created_at = '%s'::timestamptz",
                 order, jstr(line, "id"), jstr(line, "sagaId"), (long long)amount, key,
                 jstr(line, "chargeId"), at);
    cr_assert_eq(tsupport_sql_int(sql), 1, "no such ledger row: %s", json_dumps(line, 0));
}

Test(admin_queries, an_orders_page_holds_its_ledger_lines_and_delivery_history_from_the_services)
{
    const char *orch_env[] = { "LAYBY_FAST=1",
                               "LAYBY_SHIP_DELAY=300ms",
                               "LAYBY_DELIVER_DELAY=300ms",
                               "LAYBY_RETURN_WINDOW=60s",
                               "LAYBY_RETURN_DELAY=300ms",
                               NULL };
    tsupport_proc *stack = procs;
    tsupport_daemon_start(&stack[0], "layby-catalog", 0, NULL, NULL);
    tsupport_daemon_start(&stack[1], "layby-order", 0, NULL, NULL);
    tsupport_daemon_start(&stack[2], "layby-payment", 0, NULL, NULL);
    tsupport_daemon_start(&stack[3], "layby-delivery", 0, NULL, NULL);
    tsupport_daemon_start(&stack[4], "layby-orchestrator", 0, NULL, orch_env);
    tsupport_daemon_start(&stack[5], "layby-edge", 0, NULL, NULL);
    int port = stack[5].port;
    char adm[2048], buyer[2048], path[256], product[ID_STR_LEN], address[ID_STR_LEN];
    char order[ID_STR_LEN], unpaid[ID_STR_LEN], body[256];
    tsupport_jwt_member(adm, sizeof adm, "11111111-1111-4111-8111-111111111111", "ADMIN");
    tsupport_jwt_member(buyer, sizeof buyer, "22222222-2222-4222-8222-222222222222", "USER");

    /* an order declined once, paid, delivered and returned: a declined
     * attempt, a capture, a refund and five delivery statuses */
    order_make(port, "/api/v1/products", adm,
               "{\"name\":\"Laptop 14\",\"price\":1500000,\"details\":\"\","
               "\"category\":\"laptops\",\"stock\":5}",
               201, "productId", product);
    order_make(port, "/api/v1/me/addresses", buyer,
               "{\"recipient\":\"Kim Minji\",\"phone\":\"010-1234-5678\",\"zipcode\":\"06236\","
               "\"city\":\"Seoul\",\"street\":\"12 Teheran-ro\"}",
               201, "addressId", address);
    snprintf(body, sizeof body,
             "{\"items\":[{\"productId\":\"%s\",\"quantity\":2}],\"addressId\":\"%s\"}", product,
             address);
    order_make(port, "/api/v1/orders", buyer, body, 201, "orderId", order);
    order_make(port, "/api/v1/orders", buyer, body, 201, "orderId", unpaid);
    snprintf(path, sizeof path, "/api/v1/orders/%s/payment", order);
    order_make(port, path, buyer, "{\"method\":\"card\",\"cardToken\":\"tok_decline\"}", 402, NULL,
               NULL);
    order_make(port, path, buyer, "{\"method\":\"card\",\"cardToken\":\"tok_visa\"}", 200, NULL,
               NULL);
    admin_order_want w = { port, adm, order, "DELIVERED", "" };
    cr_assert(tsupport_poll_until(admin_order_is, &w, WAIT_MS), "never DELIVERED: %s", w.seen);
    snprintf(path, sizeof path, "/api/v1/orders/%s/return", order);
    order_make(port, path, buyer, NULL, 200, NULL, NULL);
    w.delivery_status = "RETURNED";
    cr_assert(tsupport_poll_until(admin_order_is, &w, WAIT_MS), "never RETURNED: %s", w.seen);
    tsupport_wait_count(WAIT_MS, 1, "SELECT count(*) FROM payment.refunds WHERE order_id = '%s'",
                        order);

    snprintf(path, sizeof path, "/api/v1/admin/orders/%s", order);
    json_t *doc = edge_get(port, adm, path, 200);
    json_t *o = json_object_get(doc, "order");
    cr_assert_str_eq(jstr(o, "orderId"), order);
    cr_assert_eq(json_integer_value(json_object_get(o, "total")), 3000000);

    /* the ledger: every row of both tables once, oldest first, as stored */
    json_t *lines = json_object_get(json_object_get(doc, "ledger"), "lines");
    const char *want[][2] = { { "CHARGE", "DECLINED" },
                              { "CHARGE", "CAPTURED" },
                              { "REFUND", "REFUNDED" } };
    cr_assert_eq(json_array_size(lines), LB_COUNTOF(want), "%s", json_dumps(lines, 0));
    char rows_sql[256];
    snprintf(rows_sql, sizeof rows_sql,
             "SELECT (SELECT count(*) FROM payment.charges WHERE order_id = '%s')"
             " + (SELECT count(*) FROM payment.refunds WHERE order_id = '%s')",
             order, order);
    cr_assert_eq(tsupport_sql_int(rows_sql), (int64_t)json_array_size(lines));
    const char *capture = NULL;
    for (size_t i = 0; i < LB_COUNTOF(want); i++) {
        json_t *l = json_array_get(lines, i);
        cr_assert_str_eq(jstr(l, "kind"), want[i][0], "line %zu", i);
        cr_assert_str_eq(jstr(l, "status"), want[i][1], "line %zu", i);
        cr_assert_eq(json_integer_value(json_object_get(l, "amount")), 3000000, "line %zu", i);
        ledger_line_is_a_row(l, order);
        if (i > 0)
            cr_assert(strcmp(jstr(json_array_get(lines, i - 1), "at"), jstr(l, "at")) <= 0,
                      "line %zu is older than the one before it", i);
        if (strcmp(want[i][1], "CAPTURED") == 0)
            capture = jstr(l, "id");
    }
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(lines, 1), "refunded")), 3000000,
                 "the capture says it was refunded");
    cr_assert_str_eq(jstr(json_array_get(lines, 2), "chargeId"), capture);
    cr_assert_not(json_is_true(json_object_get(json_object_get(doc, "ledger"), "truncated")));

    /* the delivery history: each status with its time, as layby-ctl shows it */
    json_t *d = json_object_get(doc, "delivery");
    json_t *tl = json_object_get(d, "timeline");
    const char *steps[] = { "PREPARING", "SHIPPING", "DELIVERED", "RETURN_PICKUP", "RETURNED" };
    cr_assert_eq(json_array_size(tl), LB_COUNTOF(steps), "%s", json_dumps(tl, 0));
    for (size_t i = 0; i < LB_COUNTOF(steps); i++) {
        json_t *e = json_array_get(tl, i);
        cr_assert_str_eq(jstr(e, "status"), steps[i]);
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM delivery.delivery_history h JOIN delivery.deliveries d"
                 " USING (delivery_id) WHERE d.order_id = '%s' AND h.status = '%s'"
                 " AND h.at = '%s'::timestamptz",
                 order, steps[i], jstr(e, "at"));
        cr_assert_eq(tsupport_sql_int(sql), 1, "%s at %s is not stored", steps[i], jstr(e, "at"));
    }
    char *out = NULL;
    cr_assert_eq(tsupport_ctl_run(&out, false, NULL,
                                  (const char *const[]){ "order", "show", order, "--json", NULL }),
                 0, "%s", out);
    json_t *ctl = json_loads(out, 0, NULL);
    cr_assert_not_null(ctl, "ctl printed no JSON: %s", out);
    free(out);
    cr_assert(json_equal(json_object_get(ctl, "delivery"), d), "the delivery differs from ctl's");
    json_decref(ctl);
    json_decref(doc);

    /* an order not paid: no line, no delivery */
    snprintf(path, sizeof path, "/api/v1/admin/orders/%s", unpaid);
    doc = edge_get(port, adm, path, 200);
    cr_assert_str_eq(jstr(json_object_get(doc, "order"), "status"), "PAYMENT_PENDING");
    cr_assert_eq(json_array_size(json_object_get(json_object_get(doc, "ledger"), "lines")), 0);
    cr_assert(!json_is_object(json_object_get(doc, "delivery")), "an unpaid order's delivery");
    json_decref(doc);

    /* refusals in the edge's error shape; admins only */
    static tsupport_resp r;
    char missing[ID_STR_LEN];
    id_new(missing);
    snprintf(path, sizeof path, "/api/v1/admin/orders/%s", missing);
    order_call(&r, port, "GET", path, adm, NULL);
    tsupport_http_assert_error(&r, 404, "not_found", NULL);
    order_call(&r, port, "GET", "/api/v1/admin/orders/not-a-uuid", adm, NULL);
    tsupport_http_assert_error(&r, 400, "invalid_argument", "id");
    snprintf(path, sizeof path, "/api/v1/admin/orders/%s", order);
    order_call(&r, port, "GET", path, buyer, NULL);
    tsupport_http_assert_error(&r, 403, "forbidden", NULL);
}
