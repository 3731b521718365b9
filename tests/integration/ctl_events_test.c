/* ctl_events_test.c - layby-ctl across the shop (issue 21), the real binary
 * against real nats-server, PostgreSQL, layby-orchestrator, the test
 * participant and layby-catalog:
 *   - wrong arguments anywhere exit 2, --help exits 0, for every command row;
 *   - `status` and `bus info`: healthy, then unhealthy with a STUCK saga and
 *     with daemons down;
 *   - `events replay` of a known flow in text and JSON, filtered by
 *     correlation and type; its JSON equals protobuf's own decoding of the
 *     same bytes (tests/tools/proto_json.py); corrupt and unknown messages are
 *     shown as such and the replay goes on; `events tail` sees new messages;
 *   - `events replay --check` passes on real history and reports a changed
 *     step table (LAYBY_CTL_TEST_CHANGED_STEPS);
 *   - `saga retry` brings a STUCK saga to completion, recorded with who and
 *     why; `saga list` filters and pages;
 *   - `dlq redrive` re-processes a dead letter once its cause is fixed;
 *     `dlq purge` by filter. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/bus.h"
#include "engine/bus_topology.h"
#include "engine/id.h"
#include "engine/svc_table.h"
#include "layby/v1/catalog.pb-c.h"
#include "layby/v1/saga.pb-c.h"
#include "sagas_test.h"
#include "tsupport.h"

#define WAIT_MS 30000

static bus *admin;
static tsupport_proc procs[3]; /* killed in teardown whatever happened */

static void
setup(void)
{
    admin = tsupport_sagatest_open("ctl-events-test");
}

/* Sets LAYBY_CMD's duplicate window, 0 = the default (tsupport_reset() leaves
 * streams' own settings as they are). */
static void
cmd_duplicates(int64_t ms)
{
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    bus_topology_change ch;
    lb_err err;
    if (ms > 0)
        o.duplicates_ms = ms;
    const bus_topology_stream *stream = NULL;
    for (size_t i = 0; i < bus_topology_n_streams; i++)
        if (strcmp(bus_topology_streams[i].name, BUS_STREAM_CMD) == 0)
            stream = &bus_topology_streams[i];
    cr_assert_not_null(stream);
    cr_assert_eq(bus_topology_stream_apply(&ch, bus_js(admin), stream, &o, &err), LB_OK, "%s",
                 err.msg);
}

static void
teardown(void)
{
    if (admin != NULL) /* the default window back, whatever a test set */
        cmd_duplicates(0);
    tsupport_stack_close(&admin, procs, LB_COUNTOF(procs));
}

TestSuite(ctl_events, .init = setup, .fini = teardown, .timeout = 240);

#define ARGS(...)      ((const char *const[]){ __VA_ARGS__, NULL })
#define CTL(out, ...)  tsupport_ctl_run(out, true, NULL, ARGS(__VA_ARGS__))
#define CTL1(out, ...) tsupport_ctl_run(out, false, NULL, ARGS(__VA_ARGS__))

/* --- helpers --------------------------------------------------------------- */

/* Starts a test saga with the id given. */
static void
saga_start_id(const char *id, const char *script)
{
    Layby__V1__StartTestSaga m = LAYBY__V1__START_TEST_SAGA__INIT;
    m.saga_id = (char *)id;
    m.key = "key";
    m.script = (char *)script;
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__start_test_saga__descriptor, NULL);
    snprintf(env.correlation, sizeof env.correlation, "%s", id);
    lb_err err;
    cr_assert_eq(bus_publish(admin, SAGA_SUBJ_START_TEST, &env, &m.base, &err), LB_OK, "%s",
                 err.msg);
}

static void
saga_start(char id[ID_STR_LEN], const char *script)
{
    id_new(id);
    saga_start_id(id, script);
}

static void
wait_status(const char *id, const char *status)
{
    tsupport_wait_count(WAIT_MS, 1,
                        "SELECT count(*) FROM saga.sagas WHERE saga_id = '%s' AND status = '%s'",
                        id, status);
}

static void
daemons_start(void)
{
    tsupport_sagatest_start(&procs[0], NULL);
    tsupport_daemon_start(&procs[1], "layby-orchestrator", 0, NULL, NULL);
}

static json_t *
json_parse(const char *text)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    cr_assert_not_null(o, "not one JSON document (%s): %s", je.text, text);
    return o;
}

/* The JSON lines of text as an array. */
static json_t *
json_lines(const char *text)
{
    json_t *arr = json_array();
    for (const char *p = text; *p != '\0';) {
        size_t n = strcspn(p, "\n");
        json_error_t je;
        json_t *o = json_loadb(p, n, 0, &je);
        cr_assert_not_null(o, "not a JSON line (%s): %.*s", je.text, (int)n, p);
        json_array_append_new(arr, o);
        p += n + (p[n] == '\n');
    }
    return arr;
}

static const char *
jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Publishes raw bytes with a Layby-Type on a subject of LAYBY_EVT nobody reads. */
static void
publish_raw(const char *subject, const char *type, const char *corr, const void *data, int len)
{
    natsMsg *m = NULL;
    char msgid[ID_STR_LEN];
    id_new(msgid);
    cr_assert_eq(natsMsg_Create(&m, subject, NULL, data, len), NATS_OK);
    natsMsgHeader_Set(m, BUS_H_MSG_ID, msgid);
    natsMsgHeader_Set(m, BUS_H_TYPE, type);
    natsMsgHeader_Set(m, BUS_H_CORRELATION, corr);
    jsPubAck *ack = NULL;
    cr_assert_eq(js_PublishMsg(&ack, bus_js(admin), m, NULL, NULL), NATS_OK);
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(m);
}

/* --- arguments --------------------------------------------------------------- */

Test(ctl_events, wrong_arguments_exit_2_and_help_exits_0)
{
    char id[ID_STR_LEN];
    id_new(id);
    /* clang-format off */
    static const char *const bad[][8] = {
        { "nope" },
        { "saga" },
        { "saga", "show" },
        { "saga", "show", "not-a-uuid" },
        { "saga", "list", "--state", "NOPE" },
        { "saga", "list", "--bogus", "x" },
        { "saga", "list", "--after", "zzz" },
        { "saga", "list", "--since", "yesterday" },
        { "saga", "list", "--correlation", "42" },
        { "saga", "retry", "not-a-uuid", "--reason", "x" },
        { "saga", "cancel" },
        { "events", "replay", "--stream", "NOPE" },
        { "events", "replay", "--since", "yesterday" },
        { "events", "replay", "--since", "2025-01-01T00:00:00Z", "--from-seq", "3" },
        { "events", "replay", "--until", "soon" },
        { "events", "replay", "--check", "maybe" },
        { "events", "tail", "--count", "-1" },
        { "dlq", "redrive" },
        { "dlq", "purge" },
        { "dlq", "purge", "7", "--all" },
        { "dlq", "show", "zero" },
        { "status", "--limit", "3" },
        { "bus", "info", "extra" },
        { "token", "mint", "--sub", "x", "--role", "KING", "--key", "/dev/null" },
        { "replay" },
    };
    /* clang-format on */
    char *out = NULL;
    for (size_t i = 0; i < LB_COUNTOF(bad); i++) {
        const char *args[10] = { 0 };
        for (size_t k = 0; k < 8 && bad[i][k] != NULL; k++)
            args[k] = bad[i][k];
        int rc = tsupport_ctl_run(&out, true, NULL, args);
        cr_expect_eq(rc, 2, "%s %s %s: exit %d, want 2: %s", args[0], args[1] ? args[1] : "",
                     args[2] ? args[2] : "", rc, out);
        cr_expect_not_null(strstr(out, "usage: layby-ctl"), "%s: no usage line: %s", args[0], out);
        free(out);
    }
    cr_assert_eq(CTL(&out, "saga", "retry", id), 2, "--reason is required: %s", out);
    free(out);

    /* --help lists every row; each row's --help exits 0 and names its usage. */
    cr_assert_eq(CTL1(&out, "--help"), 0, "%s", out);
    static const char *const rows[][2] = {
        { "status", NULL },   { "saga", "list" },     { "saga", "show" },   { "saga", "retry" },
        { "saga", "cancel" }, { "events", "replay" }, { "events", "tail" }, { "dlq", "redrive" },
        { "dlq", "purge" },   { "bus", "info" },      { "bus", "setup" },   { "order", "show" },
    };
    for (size_t i = 0; i < LB_COUNTOF(rows); i++) {
        char name[64], *h = NULL;
        snprintf(name, sizeof name, "%s%s%s", rows[i][0], rows[i][1] ? " " : "",
                 rows[i][1] ? rows[i][1] : "");
        cr_expect_not_null(strstr(out, name), "--help lacks %s", name);
        int rc = rows[i][1] ? CTL1(&h, rows[i][0], rows[i][1], "--help")
                            : CTL1(&h, rows[i][0], "--help");
        cr_expect_eq(rc, 0, "%s --help: %s", name, h);
        cr_expect_not_null(strstr(h, "--json"), "%s --help: %s", name, h);
        free(h);
    }
    free(out);
}

/* --- status and bus info ----------------------------------------------------- */

Test(ctl_events, status_says_healthy_then_names_what_is_wrong)
{
    char *out = NULL;
    cr_assert_eq(CTL1(&out, "status", "--daemons=false", "--json"), 0, "%s", out);
    json_t *doc = json_parse(out);
    free(out);
    cr_assert(json_is_true(json_object_get(doc, "healthy")));
    cr_assert_eq(json_array_size(json_object_get(doc, "streams")), bus_topology_n_streams);
    cr_assert_eq(json_array_size(json_object_get(doc, "durables")), bus_topology_n_consumers);
    json_t *first = json_array_get(json_object_get(doc, "durables"), 0);
    cr_assert(json_is_integer(json_object_get(first, "pending")));
    cr_assert(json_is_integer(json_object_get(first, "ackPending")));
    cr_assert(json_is_integer(json_object_get(first, "redelivered")));
    json_decref(doc);

    /* Daemons not running: unhealthy, each named. */
    cr_assert_eq(CTL(&out, "status"), 1, "%s", out);
    cr_assert_not_null(strstr(out, "daemon layby-catalog does not answer"), "%s", out);
    cr_assert_not_null(strstr(out, "status    UNHEALTHY"), "%s", out);
    free(out);

    /* A STUCK saga: unhealthy; sagas by type and state. The orchestrator's
     * outbox backlog comes from its /metrics. */
    daemons_start();
    char id[ID_STR_LEN];
    saga_start(id, "2:fail 1:undofail=99");
    wait_status(id, "STUCK");
    cr_assert_eq(CTL1(&out, "status", "--json"), 1, "%s", out);
    doc = json_parse(out);
    free(out);
    char *problems = json_dumps(json_object_get(doc, "problems"), 0);
    cr_assert_not_null(strstr(problems, "STUCK"), "%s", problems);
    free(problems);
    size_t i;
    json_t *o;
    bool stuck = false, orch = false;
    json_array_foreach(json_object_get(doc, "sagas"), i, o)
    {
        stuck |= strcmp(jstr(o, "type"), "sagatest") == 0 &&
                 strcmp(jstr(o, "state"), "STUCK") == 0 &&
                 json_integer_value(json_object_get(o, "count")) == 1;
    }
    json_array_foreach(json_object_get(doc, "daemons"), i, o)
    {
        if (strcmp(jstr(o, "name"), "layby-orchestrator") == 0)
            orch = json_is_true(json_object_get(o, "ok")) &&
                   json_is_integer(json_object_get(o, "outboxBacklog"));
    }
    cr_assert(stuck, "sagas by type and state");
    cr_assert(orch, "the orchestrator answers with its outbox backlog");
    json_decref(doc);

    cr_assert_eq(CTL1(&out, "bus", "info", "--json"), 0, "%s", out);
    doc = json_parse(out);
    free(out);
    cr_assert_eq(json_array_size(json_object_get(doc, "streams")), bus_topology_n_streams);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(doc, "streams"), 0), "storage"), "file");
    json_decref(doc);
}

/* The daemon named name (instance 1 keeps the bare name) in status's list. */
static json_t *
status_daemon(json_t *doc, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(doc, "daemons"), i, o)
    {
        if (strcmp(jstr(o, "name"), name) == 0)
            return o;
    }
    return NULL;
}

/* Issue 23: scripts/dev's clustered stack runs LAYBY_INSTANCES of each daemon,
 * instance 2's port in <port variable>_2; status asks every one. */
Test(ctl_events, status_asks_every_instance_of_every_daemon)
{
    int port2 = tsupport_port_free();
    char port_env[64], *out = NULL;
    snprintf(port_env, sizeof port_env, "LAYBY_ORCHESTRATOR_METRICS_PORT_2=%d", port2);
    char run_env[64];
    snprintf(run_env, sizeof run_env, "LAYBY_ORCHESTRATOR_METRICS_PORT=%d", port2);
    const char *env2[] = { run_env, "LAYBY_INSTANCE=2", NULL };
    tsupport_daemon_start(&procs[1], "layby-orchestrator", 0, NULL, NULL);
    tsupport_daemon_start(&procs[2], "layby-orchestrator", port2, NULL, env2);

    const char *ctl_env[] = { "LAYBY_INSTANCES=2", port_env, NULL };
    const char *args[] = { "status", "--json", NULL };
    cr_assert_eq(tsupport_ctl_run(&out, false, ctl_env, args), 1, "%s", out);
    json_t *doc = json_parse(out);
    free(out);
    /* Two of every daemon; the others are not running here. */
    cr_assert_eq(json_array_size(json_object_get(doc, "daemons")), 2 * svc_table_n_daemons);
    json_t *one = status_daemon(doc, "layby-orchestrator"),
           *two = status_daemon(doc, "layby-orchestrator-2");
    cr_assert(one != NULL && json_is_true(json_object_get(one, "ok")), "instance 1");
    cr_assert(two != NULL && json_is_true(json_object_get(two, "ok")), "instance 2");
    cr_assert_eq(json_integer_value(json_object_get(two, "port")), port2);
    cr_assert_eq(json_integer_value(json_object_get(two, "instance")), 2);
    json_decref(doc);

    /* Instance 2 gone: named as a problem while instance 1 still answers. */
    tsupport_daemon_kill(&procs[2]);
    const char *targs[] = { "status", NULL };
    cr_assert_eq(tsupport_ctl_run(&out, true, ctl_env, targs), 1, "%s", out);
    char want[160];
    snprintf(want, sizeof want,
             "daemon layby-orchestrator-2 does not answer on "
             "http://127.0.0.1:%d/metrics",
             port2);
    cr_assert_not_null(strstr(out, want), "%s", out);
    cr_assert_null(strstr(out, "daemon layby-orchestrator does not answer"), "%s", out);
    free(out);
}

/* --- events replay ------------------------------------------------------------ */

/* Runs tests/tools/proto_json.py over (type, bytes) of each message of lines
 * (read again from LAYBY_EVT by seq) and returns its answers, one a message. */
static json_t *
independent_decode(json_t *lines)
{
    char dir[] = "/tmp/ctl-events-XXXXXX", cmd[2048], path[600];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd,
             "protoc-c -I%s/proto --include_imports --descriptor_set_out=%s/layby.desc "
             "%s/proto/layby/v1/*.proto",
             LAYBY_SOURCE_DIR, dir, LAYBY_SOURCE_DIR);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/in.jsonl", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    size_t i;
    json_t *o;
    json_array_foreach(lines, i, o)
    {
        natsMsg *m = NULL;
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
        cr_assert_eq(js_GetMsg(&m, bus_js(admin), BUS_STREAM_EVT, seq, NULL, NULL), NATS_OK);
        int len = natsMsg_GetDataLength(m);
        size_t cap = sodium_base64_ENCODED_LEN((size_t)len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(cap);
        sodium_bin2base64(b64, cap, (const unsigned char *)(len ? natsMsg_GetData(m) : ""),
                          (size_t)len, sodium_base64_VARIANT_ORIGINAL);
        json_t *in =
            json_pack("{s:s,s:s}", "type", jstr(o, "type") ? jstr(o, "type") : "", "b64", b64);
        char *text = json_dumps(in, JSON_COMPACT);
        fprintf(f, "%s\n", text);
        free(text);
        json_decref(in);
        free(b64);
        natsMsg_Destroy(m);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/tools/proto_json.py %s/layby.desc < %s",
             LAYBY_SOURCE_DIR, dir, path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    size_t k;
    while ((k = fread(buf + len, 1, cap - len - 1, p)) > 0)
        len += k;
    buf[len] = '\0';
    cr_assert_eq(pclose(p), 0, "proto_json.py failed (python3-protobuf installed?): %s", buf);
    json_t *out = json_lines(buf);
    free(buf);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    return out;
}

Test(ctl_events, replay_prints_a_known_flow_as_protobuf_itself_decodes_it)
{
    daemons_start();
    char id[ID_STR_LEN], *out = NULL, *text = NULL;
    id_new(id);
    /* Before the flow, on subjects nobody reads: corrupt bytes under a known
     * type, and a type nobody knows. The replay shows them and goes on. */
    static const unsigned char garbage[] = { 0x0a, 0xff, 0xff, 0xff, 0x7f };
    publish_raw("layby.evt.ctltest.corrupt", "layby.v1.TestStepDone", id, garbage, sizeof garbage);
    publish_raw("layby.evt.ctltest.unknown", "layby.v1.NoSuchType", id, "\x08\x01", 2);
    saga_start_id(id, "");
    wait_status(id, "COMPLETED");
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM saga.outbox");

    cr_assert_eq(CTL1(&out, "events", "replay", "--correlation", id, "--json"), 0, "%s", out);
    json_t *lines = json_lines(out);
    free(out);
    cr_assert_eq(CTL1(&text, "events", "replay", "--correlation", id), 0, "%s", text);

    /* The expected sequence: the two bad ones, three steps done, and the
     * saga's changes RUNNING then COMPLETED. (A step timeout under load
     * resends a command; the participant answers it again with the same
     * outcome, so a step may be done twice in a row.) */
    size_t i;
    json_t *o;
    char steps[64] = "", changes[64] = "";
    json_int_t last_step = -1;
    cr_assert_geq(json_array_size(lines), 2 + 3 + 2, "%s", text);
    const char *prev_time = "";
    json_array_foreach(lines, i, o)
    {
        json_t *body = json_object_get(o, "body");
        cr_assert_str_eq(jstr(json_object_get(o, "headers"), BUS_H_CORRELATION), id);
        /* When the stream stored it, to the microsecond (the hops of a flow
         * are told apart by it: bench/saga_timeline.py), in sequence order. */
        const char *t = jstr(o, "time");
        cr_assert(t != NULL && strlen(t) == 27 && t[19] == '.' && t[26] == 'Z',
                  "time is RFC 3339 UTC with microseconds: %s", t ? t : "(none)");
        cr_assert_geq(strcmp(t, prev_time), 0, "times in sequence order: %s after %s", t,
                      prev_time);
        prev_time = t;
        if (i < 2) {
            cr_assert_null(body, "undecodable: no body");
            cr_assert_not_null(jstr(o, "bodyBase64"));
            cr_assert_not_null(jstr(o, "error"));
            continue;
        }
        cr_assert_not_null(body, "line %zu", i);
        if (strcmp(jstr(o, "type"), "layby.v1.TestStepDone") == 0) {
            json_int_t step = json_integer_value(json_object_get(body, "step"));
            if (step != last_step)
                snprintf(steps + strlen(steps), sizeof steps - strlen(steps), "%lld,",
                         (long long)step);
            last_step = step;
        } else {
            cr_assert_str_eq(jstr(o, "type"), "layby.v1.SagaChanged");
            snprintf(changes + strlen(changes), sizeof changes - strlen(changes), "%s,",
                     jstr(body, "status"));
        }
        /* In text, the same message on a line of its own, by its sequence. */
        char seq[32];
        snprintf(seq, sizeof seq, "%lld  ",
                 (long long)json_integer_value(json_object_get(o, "seq")));
        cr_assert_not_null(strstr(text, seq), "text lacks %s: %s", seq, text);
    }
    /* step 0 is the proto3 default: left out, so it reads as 0 */
    cr_assert_str_eq(steps, "0,1,2,", "%s", text);
    cr_assert_str_eq(changes, "RUNNING,COMPLETED,", "%s", text);
    cr_assert_not_null(strstr(text, "UNDECODABLE"), "%s", text);

    /* The JSON form is protobuf's own proto3 JSON mapping of the same bytes. */
    json_t *ref = independent_decode(lines);
    cr_assert_eq(json_array_size(ref), json_array_size(lines));
    json_array_foreach(lines, i, o)
    {
        json_t *mine = json_object_get(o, "body"), *theirs = json_array_get(ref, i);
        if (mine == NULL) {
            cr_assert_not_null(json_object_get(theirs, "error"), "line %zu: protobuf decodes it",
                               i);
            continue;
        }
        char *a = json_dumps(mine, JSON_SORT_KEYS), *b = json_dumps(theirs, JSON_SORT_KEYS);
        cr_assert(json_equal(mine, theirs), "line %zu differs:\n layby-ctl %s\n protobuf  %s", i, a,
                  b);
        free(a);
        free(b);
    }
    json_decref(ref);
    json_decref(lines);
    free(text);

    /* Filters: --type (short or full name), the command stream, --until. */
    cr_assert_eq(
        CTL1(&out, "events", "replay", "--correlation", id, "--type", "SagaChanged", "--json"), 0,
        "%s", out);
    lines = json_lines(out);
    free(out);
    cr_assert_eq(json_array_size(lines), 2);
    uint64_t first_seq =
        (uint64_t)json_integer_value(json_object_get(json_array_get(lines, 0), "seq"));
    json_decref(lines);
    char until[24];
    snprintf(until, sizeof until, "%llu", (unsigned long long)first_seq);
    cr_assert_eq(CTL1(&out, "events", "replay", "--correlation", id, "--type",
                      "layby.v1.SagaChanged", "--until", until, "--json"),
                 0, "%s", out);
    lines = json_lines(out);
    free(out);
    cr_assert_eq(json_array_size(lines), 1, "--until stops at that sequence");
    json_decref(lines);
    cr_assert_eq(CTL1(&out, "events", "replay", "--stream", "LAYBY_CMD", "--correlation", id,
                      "--type", "TestStepDo", "--json"),
                 0, "%s", out);
    lines = json_lines(out);
    free(out);
    cr_assert_geq(json_array_size(lines), 3, "three commands sent (or more after a timeout)");
    cr_assert_str_eq(jstr(json_array_get(lines, 0), "subject"), SAGA_SUBJ_TEST_DO);
    json_decref(lines);
}

Test(ctl_events, tail_follows_new_messages)
{
    char cmd[1024], line[4096], id[ID_STR_LEN];
    id_new(id);
    snprintf(
        cmd, sizeof cmd,
        "%s/layby-ctl events tail --subject 'layby.evt.ctltest.>' --count 2 --for 30s --json 2>&1",
        tsupport_env_req("LAYBY_BUILD_DIR"));
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert_not_null(fgets(line, sizeof line, p));
    cr_assert_not_null(strstr(line, "following"), "%s", line);
    publish_raw("layby.evt.ctltest.one", "layby.v1.NoSuchType", id, "x", 1);
    Layby__V1__TestStepDone d = LAYBY__V1__TEST_STEP_DONE__INIT;
    d.saga_id = id;
    d.step = 2;
    uint8_t buf[128];
    size_t n = protobuf_c_message_pack(&d.base, buf);
    publish_raw("layby.evt.ctltest.two", "layby.v1.TestStepDone", id, buf, (int)n);
    cr_assert_not_null(fgets(line, sizeof line, p));
    cr_assert_not_null(strstr(line, "layby.evt.ctltest.one"), "%s", line);
    cr_assert_not_null(strstr(line, "\"error\""), "%s", line);
    cr_assert_not_null(fgets(line, sizeof line, p));
    json_t *o = json_parse(line);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "body"), "step")), 2, "%s",
                 line);
    json_decref(o);
    cr_assert_eq(pclose(p), 0, "tail stops after --count");
}

/* --- the replay check ---------------------------------------------------------- */

/* The step commands in LAYBY_CMD of one saga ("" = of every saga): what
 * --check compares (not the commands that start sagas). */
static size_t
cmd_count(const char *corr)
{
    char *out = NULL;
    int rc = CTL1(&out, "events", "replay", "--stream", "LAYBY_CMD", "--subject",
                  "layby.cmd.sagatest.>", "--correlation", corr, "--json");
    cr_assert_eq(rc, 0, "%s", out);
    json_t *lines = json_lines(out);
    free(out);
    size_t n = json_array_size(lines);
    json_decref(lines);
    return n;
}

/* The summary line of a --check --json run that passes. */
static json_t *
check_summary(const char *const *args)
{
    char *out = NULL;
    cr_assert_eq(tsupport_ctl_run(&out, false, NULL, args), 0, "%s", out);
    json_t *lines = json_lines(out), *sum = NULL;
    free(out);
    size_t i;
    json_t *o;
    json_array_foreach(lines, i, o)
    {
        if (json_object_get(o, "summary") != NULL)
            sum = json_incref(json_object_get(o, "summary"));
    }
    json_decref(lines);
    cr_assert_not_null(sum, "a summary line");
    return sum;
}

Test(ctl_events, check_passes_on_history_and_reports_a_changed_step_table)
{
    daemons_start();
    char done[ID_STR_LEN], stuck[ID_STR_LEN], *out = NULL;
    saga_start(done, "1:flaky=1");
    saga_start(stuck, "2:fail 1:undofail=99");
    wait_status(done, "COMPLETED");
    wait_status(stuck, "STUCK");
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM saga.outbox");

    cr_assert_eq(CTL(&out, "events", "replay", "--check"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "2 sagas re-decided, 0 differ"), "%s", out);
    free(out);

    /* The read of LAYBY_CMD starts at the earliest creation among the sagas
     * picked (less ctl_check.c's 5 s for clocks): with --since after these
     * two, only a later saga's commands are read. */
    sleep(6);
    char since[40], later[ID_STR_LEN];
    lb_time_format(since, sizeof since, lb_now_ms());
    saga_start(later, "");
    wait_status(later, "COMPLETED");
    tsupport_wait_count(WAIT_MS, 0, "SELECT count(*) FROM saga.outbox");
    size_t all_cmds = cmd_count(""), later_cmds = cmd_count(later);
    cr_assert_geq(later_cmds, 3);
    cr_assert_gt(all_cmds, later_cmds);
    json_t *summary =
        check_summary(ARGS("events", "replay", "--check", "--since", since, "--json"));
    cr_assert_eq(json_integer_value(json_object_get(summary, "checked")), 1);
    cr_assert_eq(json_integer_value(json_object_get(summary, "differ")), 0);
    cr_assert_eq((size_t)json_integer_value(json_object_get(summary, "commandsRead")), later_cmds,
                 "only the later saga's commands are read (%zu of %zu)", later_cmds, all_cmds);
    json_decref(summary);
    summary = check_summary(ARGS("events", "replay", "--check", "--json"));
    cr_assert_eq(json_integer_value(json_object_get(summary, "checked")), 3);
    cr_assert_eq((size_t)json_integer_value(json_object_get(summary, "commandsRead")), all_cmds);
    json_decref(summary);

    const char *const changed[] = { "LAYBY_CTL_TEST_CHANGED_STEPS=1", NULL };
    cr_assert_eq(
        tsupport_ctl_run(&out, false, changed, ARGS("events", "replay", "--check", "--json")), 1,
        "%s", out);
    json_t *lines = json_lines(out);
    free(out);
    size_t i;
    json_t *o;
    bool seen_done = false, seen_stuck = false;
    json_array_foreach(lines, i, o)
    {
        const char *sid = jstr(o, "sagaId");
        if (sid == NULL) {
            json_t *sum = json_object_get(o, "summary");
            cr_assert_eq(json_integer_value(json_object_get(sum, "checked")), 3);
            cr_assert_eq(json_integer_value(json_object_get(sum, "differ")), 3);
            continue;
        }
        /* step b (command #1, or #2 after a's retry) goes elsewhere in the changed build */
        json_int_t at = json_integer_value(json_object_get(o, "firstDifference"));
        json_t *dec = json_array_get(json_object_get(o, "decided"), (size_t)at);
        json_t *sent = json_array_get(json_object_get(o, "sent"), (size_t)at);
        cr_assert_str_eq(jstr(dec, "subject"), "layby.cmd.sagatest.changed");
        cr_assert_str_eq(jstr(sent, "subject"), SAGA_SUBJ_TEST_DO);
        seen_done |= strcmp(sid, done) == 0;
        seen_stuck |= strcmp(sid, stuck) == 0;
    }
    cr_assert(seen_done && seen_stuck, "both sagas reported");
    json_decref(lines);

    cr_assert_eq(tsupport_ctl_run(&out, true, changed,
                                  ARGS("events", "replay", "--check", "--correlation", done)),
                 1, "%s", out);
    cr_assert_not_null(strstr(out, "DIFFERS saga"), "%s", out);
    cr_assert_not_null(strstr(out, "1 sagas re-decided, 1 differ"), "%s", out);
    free(out);
}

/* --- sagas ------------------------------------------------------------------------ */

Test(ctl_events, saga_retry_brings_a_stuck_saga_to_completion)
{
    daemons_start();
    char id[ID_STR_LEN], *out = NULL;
    /* Step c fails for good; b's undo fails 3 times, which is its whole
     * budget: STUCK. The 4th undo (after the retry) works: the cause is gone. */
    saga_start(id, "2:fail 1:undofail=3");
    wait_status(id, "STUCK");
    cr_assert_eq(CTL(&out, "saga", "cancel", id, "--reason", "x"), 1, "no signals: %s", out);
    free(out);
    cr_assert_eq(CTL(&out, "saga", "retry", id, "--reason", "undo fixed", "--actor", "ops-bo"), 0,
                 "%s", out);
    free(out);
    wait_status(id, "FAILED");

    cr_assert_eq(CTL1(&out, "saga", "show", id, "--json"), 0, "%s", out);
    json_t *doc = json_parse(out);
    free(out);
    cr_assert_str_eq(jstr(doc, "state"), "FAILED");
    size_t i;
    json_t *e;
    bool retry_seen = false, undo_after = false;
    json_array_foreach(json_object_get(doc, "timeline"), i, e)
    {
        json_t *in = json_object_get(e, "input");
        if (strcmp(jstr(e, "kind"), "RETRY") == 0) {
            cr_assert_str_eq(jstr(in, "actor"), "ops-bo");
            cr_assert_str_eq(jstr(in, "reason"), "undo fixed");
            cr_assert_str_eq(jstr(e, "verdict"), "APPLIED");
            json_t *c = json_array_get(json_object_get(e, "commands"), 0);
            undo_after = c != NULL && json_is_true(json_object_get(c, "compensate")) &&
                         strcmp(jstr(c, "subject"), SAGA_SUBJ_TEST_UNDO) == 0;
            retry_seen = true;
        }
        cr_assert_not_null(jstr(e, "at"));
        cr_assert_not_null(json_object_get(e, "commands"), "entry %zu re-decided", i);
    }
    cr_assert(retry_seen, "the retry is in the timeline with who and why");
    cr_assert(undo_after, "the retry sent the undo again");
    json_decref(doc);
    cr_assert_eq(CTL(&out, "saga", "show", id), 0, "%s", out);
    cr_assert_not_null(strstr(out, "by        ops-bo: undo fixed"), "%s", out);
    cr_assert_not_null(strstr(out, "undo  -> " SAGA_SUBJ_TEST_UNDO), "%s", out);
    free(out);
}

Test(ctl_events, saga_list_filters_and_pages)
{
    daemons_start();
    char ids[3][ID_STR_LEN], *out = NULL;
    for (int i = 0; i < 3; i++)
        saga_start(ids[i], "");
    for (int i = 0; i < 3; i++)
        wait_status(ids[i], "COMPLETED");

    cr_assert_eq(CTL1(&out, "saga", "list", "--type", "sagatest", "--limit", "2", "--json"), 0,
                 "%s", out);
    json_t *p1 = json_parse(out);
    free(out);
    const char *cursor = jstr(p1, "nextCursor");
    cr_assert_not_null(cursor);
    cr_assert_eq(json_array_size(json_object_get(p1, "items")), 2);
    cr_assert_eq(CTL1(&out, "saga", "list", "--type", "sagatest", "--limit", "2", "--after", cursor,
                      "--json"),
                 0, "%s", out);
    json_t *p2 = json_parse(out);
    free(out);
    cr_assert_eq(json_array_size(json_object_get(p2, "items")), 1);
    cr_assert_null(json_object_get(p2, "nextCursor"));
    int found = 0;
    for (int i = 0; i < 3; i++)
        for (size_t k = 0; k < 3; k++) {
            json_t *pg = k < 2 ? p1 : p2;
            json_t *it = json_array_get(json_object_get(pg, "items"), k < 2 ? k : 0);
            found += strcmp(jstr(it, "sagaId"), ids[i]) == 0;
        }
    cr_assert_eq(found, 3, "the two pages hold each saga once");
    json_decref(p1);
    json_decref(p2);

    cr_assert_eq(CTL1(&out, "saga", "list", "--correlation", ids[1], "--json"), 0, "%s", out);
    p1 = json_parse(out);
    free(out);
    cr_assert_eq(json_array_size(json_object_get(p1, "items")), 1);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(p1, "items"), 0), "sagaId"), ids[1]);
    json_decref(p1);
    cr_assert_eq(CTL1(&out, "saga", "list", "--since", "2200-01-01T00:00:00Z"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "0 sagas"), "%s", out);
    free(out);
    cr_assert_eq(CTL1(&out, "saga", "list", "--type", "order_place"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "0 sagas"), "%s", out);
    free(out);
}

/* --- dead letters --------------------------------------------------------------- */

static uint64_t
dlq_count(void)
{
    jsStreamInfo *si = NULL;
    cr_assert_eq(js_GetStreamInfo(&si, bus_js(admin), BUS_STREAM_DLQ, NULL, NULL), NATS_OK);
    uint64_t n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

static bool
dlq_is(void *arg)
{
    return dlq_count() == *(uint64_t *)arg;
}

static void
wait_dlq(uint64_t n)
{
    cr_assert(tsupport_poll_until(dlq_is, &n, WAIT_MS), "LAYBY_DLQ never held %llu",
              (unsigned long long)n);
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool
time_passed(void *arg)
{
    return now_ms() >= *(int64_t *)arg;
}

Test(ctl_events, dlq_redrive_reprocesses_a_dead_letter_once_its_cause_is_fixed)
{
    /* A 1.5 s duplicate window, so the original Nats-Msg-Id may come again
     * within the test (the default is 2 minutes). */
    cmd_duplicates(1500);
    tsupport_sql("DROP TRIGGER IF EXISTS ctl_test_refuse ON catalog.products");
    tsupport_sql("CREATE OR REPLACE FUNCTION catalog.ctl_test_refuse() RETURNS trigger"
                 " LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$");
    tsupport_sql("CREATE TRIGGER ctl_test_refuse BEFORE INSERT ON catalog.products"
                 " FOR EACH ROW EXECUTE FUNCTION catalog.ctl_test_refuse()");
    const char *const env[] = { "LAYBY_MAX_DELIVER=2", "LAYBY_NAK_DELAY=100ms", NULL };
    tsupport_daemon_start(&procs[2], "layby-catalog", 0, NULL, env);

    char pid[ID_STR_LEN], *out = NULL;
    id_new(pid);
    Layby__V1__ProductDraft d;
    Layby__V1__CreateProduct c;
    tsupport_create_product(&c, &d, pid, "Redriven laptop");
    bus_envelope envl;
    bus_envelope_init(&envl, &layby__v1__create_product__descriptor, NULL);
    lb_err err;
    int64_t sent_ms = now_ms();
    cr_assert_eq(bus_publish(admin, "layby.cmd.catalog.create_product", &envl, &c.base, &err),
                 LB_OK, "%s", err.msg);
    wait_dlq(1);
    cr_assert_eq(tsupport_sql_int("SELECT count(*) FROM catalog.products"), 0);
    cr_assert_eq(CTL1(&out, "dlq", "list", "--json", "--consumer", "LAYBY_CMD/catalog"), 0, "%s",
                 out);
    json_t *lines = json_lines(out);
    free(out);
    cr_assert_eq(json_array_size(lines), 1);
    cr_assert_str_eq(jstr(json_object_get(json_array_get(lines, 0), "body"), "productId"), pid);
    json_decref(lines);

    /* The cause is fixed. Until the duplicate window of the original has
     * passed (the server forgets ids on a timer), JetStream drops the
     * republish and the dead letter is kept: redrive until it goes through. */
    tsupport_sql("DROP TRIGGER ctl_test_refuse ON catalog.products");
    int64_t after = sent_ms + 1500;
    cr_assert(tsupport_poll_until(time_passed, &after, 5000));
    int rc = 1;
    for (int i = 0; i < 40 && rc != 0; i++) {
        rc = CTL(&out, "dlq", "redrive", "--subject", "layby.cmd.catalog.>");
        cr_assert(rc == 0 || strstr(out, "duplicate") != NULL, "%s", out);
        if (rc != 0) {
            cr_assert_eq(dlq_count(), 1, "kept while JetStream drops the republish");
            int64_t next = now_ms() + 500;
            cr_assert(tsupport_poll_until(time_passed, &next, 5000));
        }
        free(out);
    }
    cr_assert_eq(rc, 0, "redrive went through after the duplicate window");
    tsupport_wait_count(WAIT_MS, 1, "SELECT count(*) FROM catalog.products WHERE product_id = '%s'",
                        pid);
    wait_dlq(0);

    /* purge by filter: an unknown type is dead at once, and purged. */
    tsupport_create_product(&c, &d, pid, "Poison laptop");
    bus_envelope_init(&envl, &layby__v1__create_product__descriptor, NULL);
    snprintf(envl.type, sizeof envl.type, "layby.v1.NoSuchType");
    cr_assert_eq(bus_publish(admin, "layby.cmd.catalog.create_product", &envl, &c.base, &err),
                 LB_OK, "%s", err.msg);
    wait_dlq(1);
    cr_assert_eq(CTL(&out, "dlq", "purge", "--type", "layby.v1.Other"), 0, "%s", out);
    free(out);
    wait_dlq(1);
    cr_assert_eq(CTL(&out, "dlq", "purge", "--type", "layby.v1.NoSuchType"), 0, "%s", out);
    free(out);
    wait_dlq(0);
}
