/* console_test.c - the operations console (issue 24) in headless Chromium.
 *
 * This suite makes the data and runs the browser: the real stack (layby-edge,
 * layby-member, layby-orchestrator and the test saga's participant), an admin
 * made by `layby-ctl member grant-admin`, a member without the role, a STUCK
 * saga and one with a 1,000-entry log made by the test, and the saga's
 * document as `layby-ctl saga show --json` prints it. Then it runs
 * tests/browser/console.mjs (puppeteer-core driving Debian's /usr/bin/chromium
 * through the DevTools protocol), which signs in, walks the pages, compares
 * what they show with layby-ctl's document and keeps a screenshot of each page
 * at 1280 and 390 px in BUILD/Testing/console/. Its node_modules come from
 * `npm ci --prefix tests/browser` (scripts/dev test runs it).
 *
 * The order pages need the whole order stack (catalog, order, payment,
 * delivery, fast delivery steps): a real order declined once, then paid and
 * delivered, with `layby-ctl order show --json` and its ledger rows as
 * PostgreSQL holds them for the browser to compare with; and two dead letters
 * planted in the catalog's commands as ctl_test does (an unknown Layby-Type,
 * and one without Nats-Msg-Id whose body decodes), with `layby-ctl dlq show`
 * of each. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/bus.h"
#include "engine/id.h"
#include "engine/subjects.h"
#include "layby/v1/catalog.pb-c.h"
#include "tsupport.h"

#define WAIT_MS  60000
#define PW       "correct horse battery"
/* A STUCK saga's log grows only by what the test adds: this many repeats. */
#define LONG_LOG 1000

extern char **environ;

static struct bus *admin;
static tsupport_proc procs[8];

static void
setup(void)
{
    admin = tsupport_sagatest_open("console-test");
}

static void
teardown(void)
{
    tsupport_stack_close(&admin, procs, LB_COUNTOF(procs));
}

TestSuite(console, .init = setup, .fini = teardown, .timeout = 480);

/* A member `user` (password PW) who can sign in. The verification mail's
 * round trip is members_test's; here the row is marked verified directly. */
static void
member_make(const char *user, const char *phone)
{
    char body[300], id[ID_STR_LEN] = "";
    snprintf(body, sizeof body,
             "{\"username\":\"%s\",\"password\":\"%s\",\"email\":\"%s@example.com\","
             "\"phone\":\"%s\"}",
             user, PW, user, phone);
    tsupport_resp r;
    const char *const h[] = { "Content-Type: application/json", NULL };
    tsupport_http_call(&r, procs[3].port, "POST", "/api/v1/members", h, body, false);
    cr_assert_eq(r.status, 201, "sign-up %s: %ld %s", user, r.status, r.body);
    json_t *j = tsupport_http_json(&r);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "memberId")));
    json_decref(j);
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE member.members SET status = 'ACTIVE' WHERE member_id = '%s'",
             id);
    tsupport_sql(sql);
}

/* Writes text to path. */
static void
file_put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* --- an order, paid and delivered ---------------------------------------------- */

/* POST path as auth with body, wanting `want`; its string field key into out. */
static void
http_make(const char *path, const char *auth, const char *body, long want, const char *key,
          char out[ID_STR_LEN])
{
    static tsupport_resp r;
    const char *const h[] = { "Content-Type: application/json", auth, NULL };
    tsupport_http_call(&r, procs[3].port, "POST", path, h, body, false);
    cr_assert_eq(r.status, want, "POST %s: %ld %s", path, r.status, r.body);
    if (key == NULL)
        return;
    json_t *j = tsupport_http_json(&r);
    snprintf(out, ID_STR_LEN, "%s", json_string_value(json_object_get(j, key)));
    json_decref(j);
}

typedef struct delivered_arg {
    const char *order, *auth;
} delivered_arg;

static bool
delivered(void *arg)
{
    const delivered_arg *a = arg;
    char path[128];
    snprintf(path, sizeof path, "/api/v1/orders/%s", a->order);
    static tsupport_resp r;
    tsupport_http_call(&r, procs[3].port, "GET", path, (const char *const[]){ a->auth, NULL }, NULL,
                       false);
    json_t *j = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    const char *ds = json_string_value(json_object_get(json_object_get(j, "delivery"), "status"));
    bool ok = ds != NULL && strcmp(ds, "DELIVERED") == 0;
    json_decref(j);
    return ok;
}

/* An order of 2 laptops declined once, then paid, then DELIVERED; its id
 * into order and its total into *total. */
static void
order_delivered(char order[ID_STR_LEN], long long *total)
{
    char adm[2048], buyer[2048], product[ID_STR_LEN], address[ID_STR_LEN], body[256], path[128];
    tsupport_jwt_member(adm, sizeof adm, "11111111-1111-4111-8111-111111111111", "ADMIN");
    tsupport_jwt_member(buyer, sizeof buyer, "33333333-3333-4333-8333-333333333333", "USER");
    http_make("/api/v1/products", adm,
              "{\"name\":\"Laptop 14\",\"price\":1500000,\"details\":\"\","
              "\"category\":\"laptops\",\"stock\":5}",
              201, "productId", product);
    http_make("/api/v1/me/addresses", buyer,
              "{\"recipient\":\"Kim Minji\",\"phone\":\"010-1234-5678\",\"zipcode\":\"06236\","
              "\"city\":\"Seoul\",\"street\":\"12 Teheran-ro\"}",
              201, "addressId", address);
    snprintf(body, sizeof body,
             "{\"items\":[{\"productId\":\"%s\",\"quantity\":2}],\"addressId\":\"%s\"}", product,
             address);
    http_make("/api/v1/orders", buyer, body, 201, "orderId", order);
    snprintf(path, sizeof path, "/api/v1/orders/%s/payment", order);
    http_make(path, buyer, "{\"method\":\"card\",\"cardToken\":\"tok_decline\"}", 402, NULL, NULL);
    http_make(path, buyer, "{\"method\":\"card\",\"cardToken\":\"tok_visa\"}", 200, NULL, NULL);
    delivered_arg a = { order, buyer };
    cr_assert(tsupport_poll_until(delivered, &a, WAIT_MS), "order %s never DELIVERED", order);
    *total = 3000000;
}

/* The order's ledger rows as PostgreSQL holds them, oldest first, as JSON
 * text (the caller frees it). */
static char *
ledger_rows(const char *order)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(json_agg(l ORDER BY at, kind, id), '[]')::text FROM ("
             "SELECT 'CHARGE' AS kind, charge_id::text AS id, status, amount_won AS amount,"
             " created_at AS at FROM payment.charges WHERE order_id = '%s' UNION ALL "
             "SELECT 'REFUND', refund_id::text, CASE WHEN charge_id IS NULL THEN 'VOID'"
             " ELSE 'REFUNDED' END, amount_won, created_at FROM payment.refunds"
             " WHERE order_id = '%s') l",
             order, order);
    PGresult *res = PQexec(tsupport_pg(), sql);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(tsupport_pg()));
    char *text = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return text;
}

/* --- dead letters ------------------------------------------------------------- */

static uint64_t
dlq_msgs(void)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(js_GetStreamInfo(&si, bus_js(admin), BUS_STREAM_DLQ, NULL, &jerr), NATS_OK);
    uint64_t n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

static bool
dlq_holds(void *arg)
{
    return dlq_msgs() >= *(uint64_t *)arg;
}

/* A CreateProduct to the catalog with Layby-Type type, without Nats-Msg-Id
 * when drop_id: the catalog dead-letters both kinds (ctl_test's poison). */
static void
poison_publish(const char *type, bool drop_id)
{
    char pid[ID_STR_LEN];
    id_new(pid);
    Layby__V1__ProductDraft d;
    Layby__V1__CreateProduct c;
    tsupport_create_product(&c, &d, pid, "Poison laptop");
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__create_product__descriptor, NULL);
    snprintf(env.type, sizeof env.type, "%s", type);
    natsMsg *m = NULL;
    lb_err err;
    cr_assert_eq(bus_msg_new(&m, SUBJ_CATALOG_CREATE_PRODUCT, &env, &c.base, &err), LB_OK, "%s",
                 err.msg);
    if (drop_id)
        cr_assert_eq(natsMsgHeader_Delete(m, BUS_H_MSG_ID), NATS_OK);
    jsPubAck *ack = NULL;
    cr_assert_eq(js_PublishMsg(&ack, bus_js(admin), m, NULL, NULL), NATS_OK);
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(m);
}

/* Two dead letters (undecodable, then decodable) and `layby-ctl dlq show`
 * of each, as a JSON array written to path. */
static void
dead_letters_plant(const char *path)
{
    poison_publish("layby.v1.NoSuchType", false);
    poison_publish(layby__v1__create_product__descriptor.name, true);
    uint64_t want = 2;
    cr_assert(tsupport_poll_until(dlq_holds, &want, WAIT_MS), "LAYBY_DLQ never held 2 letters");
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(js_GetStreamInfo(&si, bus_js(admin), BUS_STREAM_DLQ, NULL, &jerr), NATS_OK);
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    json_t *all = json_array();
    for (uint64_t seq = first; seq <= last; seq++) {
        char arg[24], *out = NULL;
        snprintf(arg, sizeof arg, "%llu", (unsigned long long)seq);
        cr_assert_eq(
            tsupport_ctl_run(&out, false, NULL, (const char *const[]){ "dlq", "show", arg, NULL }),
            0, "%s", out);
        json_t *doc = json_loads(out, 0, NULL);
        cr_assert_not_null(doc, "dlq show printed no JSON: %s", out);
        free(out);
        json_array_append_new(all, doc);
    }
    cr_assert_eq(json_dump_file(all, path, 0), 0, "cannot write %s", path);
    json_decref(all);
}

/* Runs node on the browser script with env ("NAME=value", NULL-terminated)
 * added; its output goes to the test's. Returns node's exit status. */
static int
browser_run(const char *const *env)
{
    char script[512];
    snprintf(script, sizeof script, "%s/tests/browser/console.mjs", LAYBY_SOURCE_DIR);
    size_t ne = 0, nx = 0;
    while (environ[ne] != NULL)
        ne++;
    while (env[nx] != NULL)
        nx++;
    const char **envp = calloc(ne + nx + 1, sizeof *envp);
    cr_assert_not_null(envp);
    for (size_t i = 0; i < nx; i++)
        envp[i] = env[i];
    for (size_t i = 0; i < ne; i++)
        envp[nx + i] = environ[i];
    const char *argv[] = { "node", script, NULL };
    fflush(stdout);
    fflush(stderr);
    pid_t pid;
    int rc = posix_spawnp(&pid, "node", NULL, NULL, (char *const *)argv, (char *const *)envp);
    free(envp);
    cr_assert_eq(rc, 0, "cannot start node (is nodejs installed?)");
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Test(console, an_admin_reads_sagas_orders_and_dead_letters_in_chromium_and_a_member_sees_nothing)
{
    char modules[600];
    snprintf(modules, sizeof modules, "%s/tests/browser/node_modules/puppeteer-core",
             LAYBY_SOURCE_DIR);
    cr_assert_eq(access(modules, R_OK), 0, "no %s: run npm ci --prefix tests/browser", modules);
    cr_assert_eq(access("/usr/bin/chromium", X_OK), 0, "no /usr/bin/chromium: apt-get chromium");

    const char *orch_env[] = { "LAYBY_FAST=1", "LAYBY_SHIP_DELAY=300ms",
                               "LAYBY_DELIVER_DELAY=300ms", NULL };
    tsupport_sagatest_start(&procs[0], NULL);
    tsupport_daemon_start(&procs[1], "layby-orchestrator", 0, NULL, orch_env);
    tsupport_daemon_start(&procs[2], "layby-member", 0, NULL, NULL);
    tsupport_daemon_start(&procs[3], "layby-edge", 0, NULL, NULL);
    tsupport_daemon_start(&procs[4], "layby-catalog", 0, NULL, NULL);
    tsupport_daemon_start(&procs[5], "layby-order", 0, NULL, NULL);
    tsupport_daemon_start(&procs[6], "layby-payment", 0, NULL, NULL);
    tsupport_daemon_start(&procs[7], "layby-delivery", 0, NULL, NULL);

    member_make("ada", "010-1111-2222");
    member_make("mel", "010-3333-4444");
    char *out = NULL;
    cr_assert_eq(tsupport_ctl_run(&out, true, NULL,
                                  (const char *const[]){ "member", "grant-admin", "ada", NULL }),
                 0, "%s", out);
    free(out);

    char stuck[ID_STR_LEN], long_log[ID_STR_LEN], done[ID_STR_LEN];
    tsupport_test_saga_start(admin, stuck, "2:fail 1:undofail=99");
    tsupport_test_saga_start(admin, long_log, "2:fail 1:undofail=99");
    tsupport_test_saga_start(admin, done, "");
    tsupport_saga_wait_status(WAIT_MS, stuck, "STUCK");
    tsupport_saga_wait_status(WAIT_MS, long_log, "STUCK");
    tsupport_saga_wait_status(WAIT_MS, done, "COMPLETED");
    /* its last input repeated, as a flood of redelivered events leaves it */
    char sql[640];
    snprintf(sql, sizeof sql,
             "INSERT INTO saga.saga_log (saga_id, at, msg_id, input_kind, input, verdict,"
             " from_status, to_status, line)"
             " SELECT saga_id, at + g * interval '1 ms', msg_id || '-' || g, input_kind, input,"
             " 'IGNORED', to_status, to_status, 'a repeat' FROM saga.saga_log,"
             " generate_series(1, %d) g WHERE saga_id = '%s'"
             " AND id = (SELECT max(id) FROM saga.saga_log WHERE saga_id = '%s')",
             LONG_LOG, long_log, long_log);
    tsupport_sql(sql);

    /* what the saga page must show: layby-ctl's document */
    const char *tmp = tsupport_env_req("LAYBY_TEST_TMP");
    char doc_path[600], shots[600];
    snprintf(doc_path, sizeof doc_path, "%s/console-saga.json", tmp);
    cr_assert_eq(tsupport_ctl_run(&out, false, NULL,
                                  (const char *const[]){ "saga", "show", stuck, "--json", NULL }),
                 0, "%s", out);
    file_put(doc_path, out);
    free(out);

    /* an order declined once, paid and delivered; layby-ctl's view of it and
     * its ledger rows; two dead letters and layby-ctl's view of each */
    char order[ID_STR_LEN], order_path[600], ledger_path[600], dlq_path[600];
    long long total = 0;
    order_delivered(order, &total);
    snprintf(order_path, sizeof order_path, "%s/console-order.json", tmp);
    cr_assert_eq(tsupport_ctl_run(&out, false, NULL,
                                  (const char *const[]){ "order", "show", order, "--json", NULL }),
                 0, "%s", out);
    file_put(order_path, out);
    free(out);
    snprintf(ledger_path, sizeof ledger_path, "%s/console-ledger.json", tmp);
    out = ledger_rows(order);
    file_put(ledger_path, out);
    free(out);
    snprintf(dlq_path, sizeof dlq_path, "%s/console-dlq.json", tmp);
    dead_letters_plant(dlq_path);

    snprintf(shots, sizeof shots, "%s/Testing", tsupport_env_req("LAYBY_BUILD_DIR"));
    mkdir(shots, 0755);
    strcat(shots, "/console");
    mkdir(shots, 0755);

    char url[80], e_doc[640], e_shots[640], e_stuck[80], e_long[80], e_done[80];
    char e_order[80], e_order_doc[640], e_ledger[640], e_dlq[640], e_total[64];
    snprintf(e_order, sizeof e_order, "LAYBY_CONSOLE_ORDER=%s", order);
    snprintf(e_order_doc, sizeof e_order_doc, "LAYBY_CONSOLE_ORDER_JSON=%s", order_path);
    snprintf(e_ledger, sizeof e_ledger, "LAYBY_CONSOLE_LEDGER_JSON=%s", ledger_path);
    snprintf(e_dlq, sizeof e_dlq, "LAYBY_CONSOLE_DLQ_JSON=%s", dlq_path);
    snprintf(e_total, sizeof e_total, "LAYBY_CONSOLE_ORDER_TOTAL=%lld", total);
    snprintf(url, sizeof url, "LAYBY_CONSOLE_URL=http://127.0.0.1:%d", procs[3].port);
    snprintf(e_doc, sizeof e_doc, "LAYBY_CONSOLE_SAGA_JSON=%s", doc_path);
    snprintf(e_shots, sizeof e_shots, "LAYBY_CONSOLE_SHOTS=%s", shots);
    snprintf(e_stuck, sizeof e_stuck, "LAYBY_CONSOLE_STUCK=%s", stuck);
    snprintf(e_long, sizeof e_long, "LAYBY_CONSOLE_LONG=%s", long_log);
    snprintf(e_done, sizeof e_done, "LAYBY_CONSOLE_DONE=%s", done);
    const char *const env[] = { url,
                                e_doc,
                                e_shots,
                                e_stuck,
                                e_long,
                                e_done,
                                e_order,
                                e_order_doc,
                                e_ledger,
                                e_dlq,
                                e_total,
                                "LAYBY_CONSOLE_ADMIN=ada",
                                "LAYBY_CONSOLE_MEMBER=mel",
                                "LAYBY_CONSOLE_PASSWORD=" PW,
                                NULL };
    cr_assert_eq(browser_run(env), 0, "the browser test failed (its output is above)");
}
