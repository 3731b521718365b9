/* stack_test.c - layby-ctl against the harness's servers: bus setup is
 * idempotent and updates in place, health sees the streams and notices an
 * outage, dlq list shows dead letters, minted tokens verify with the public key. */
#include <criterion/criterion.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bus_topology.h"
#include "id.h"
#include "tsupport.h"

#define OUT_MAX 16384

/* Runs layby-ctl with args; returns its exit code and its stdout in out. */
static int
ctl(char *out, size_t cap, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/layby-ctl %s", tsupport_env_req("LAYBY_BUILD_DIR"), args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen %s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Number of lines of out containing both a and b. */
static int
lines_with(const char *out, const char *a, const char *b)
{
    int n = 0;
    for (const char *l = out; l != NULL && *l != '\0';) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)len, l);
        if (strstr(line, a) != NULL && strstr(line, b) != NULL)
            n++;
        l = end ? end + 1 : NULL;
    }
    return n;
}

static jsCtx *
admin_js(natsConnection **nc)
{
    jsCtx *js = NULL;
    cr_assert_eq(tsupport_nats_connect(nc, "CTL", NULL, NULL), NATS_OK);
    cr_assert_eq(natsConnection_JetStream(&js, *nc, NULL), NATS_OK);
    return js;
}

static int64_t
stream_max_age_ms(const char *stream)
{
    natsConnection *nc = NULL;
    jsCtx *js = admin_js(&nc);
    jsStreamInfo *si = NULL;
    cr_assert_eq(js_GetStreamInfo(&si, js, stream, NULL, NULL), NATS_OK);
    int64_t ms = si->Config->MaxAge / 1000000;
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return ms;
}

Test(stack, bus_setup_is_idempotent_and_updates_in_place, .init = tsupport_reset)
{
    static char out[OUT_MAX];
    size_t objects = bus_topology_n_streams + bus_topology_n_consumers + bus_topology_n_buckets;

    cr_assert_eq(ctl(out, sizeof out, "bus setup"), 0, "%s", out);
    cr_assert_eq(ctl(out, sizeof out, "bus setup"), 0, "%s", out);
    cr_expect_eq(lines_with(out, " ", "unchanged"), (int)objects,
                 "second run changed something:\n%s", out);

    cr_assert_eq(ctl(out, sizeof out, "bus setup --max-age 3d"), 0, "%s", out);
    cr_expect_eq(lines_with(out, "stream", "updated"), (int)bus_topology_n_streams, "%s", out);
    cr_expect_eq(lines_with(out, "consumer", "unchanged"), (int)bus_topology_n_consumers, "%s",
                 out);
    cr_expect_eq(stream_max_age_ms("LAYBY_EVT"), 3LL * 86400000);

    cr_assert_eq(ctl(out, sizeof out, "bus setup"), 0, "%s", out);
    cr_expect_eq(stream_max_age_ms("LAYBY_EVT"), 7LL * 86400000);
}

/* A durable an earlier release made (the orchestrator's old one on all of
 * layby.evt.>) is deleted by bus setup, once; the rows stay as they were. */
Test(stack, bus_setup_deletes_a_retired_durable, .init = tsupport_reset)
{
    static char out[OUT_MAX];
    const bus_topology_consumer *old = &bus_topology_retired[0];
    natsConnection *nc = NULL;
    jsCtx *js = admin_js(&nc);
    jsConsumerConfig cfg;
    jsConsumerConfig_Init(&cfg);
    cfg.Durable = old->durable;
    cfg.AckPolicy = js_AckExplicit;
    cfg.FilterSubject = old->filter;
    cr_assert_eq(js_AddConsumer(NULL, js, old->stream, &cfg, NULL, NULL), NATS_OK);

    char name[128];
    snprintf(name, sizeof name, "%s/%s", old->stream, old->durable);
    cr_assert_eq(ctl(out, sizeof out, "bus setup"), 0, "%s", out);
    cr_expect_eq(lines_with(out, name, "deleted"), 1, "%s", out);
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    cr_expect_neq(js_GetConsumerInfo(&ci, js, old->stream, old->durable, NULL, &jerr), NATS_OK);
    jsConsumerInfo_Destroy(ci);

    cr_assert_eq(ctl(out, sizeof out, "bus setup"), 0, "%s", out);
    cr_expect_eq(lines_with(out, name, "deleted"), 0, "deleted twice:\n%s", out);
    cr_expect_eq(lines_with(out, "consumer", "unchanged"), (int)bus_topology_n_consumers, "%s",
                 out);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

/* Events no saga waits for (another service's, the orchestrator's own
 * SagaChanged) are never delivered to, nor held for, the orchestrator. */
Test(stack, the_orchestrators_durables_hold_only_saga_inputs, .init = tsupport_reset)
{
    static const char *const others[] = { "layby.evt.product.created", "layby.evt.saga.running",
                                          "layby.evt.saga.completed" };
    natsConnection *nc = NULL;
    jsCtx *js = admin_js(&nc);
    for (size_t i = 0; i < LB_COUNTOF(others); i++)
        cr_assert_eq(js_Publish(NULL, js, others[i], "x", 1, NULL, NULL), NATS_OK);
    cr_assert_eq(js_Publish(NULL, js, "layby.evt.sagatest.done", "x", 1, NULL, NULL), NATS_OK);
    uint64_t waiting = 0;
    for (size_t i = 0; i < bus_topology_n_consumers; i++) {
        const bus_topology_consumer *c = &bus_topology_consumers[i];
        if (strcmp(c->reader, "layby-orchestrator") != 0 || strcmp(c->stream, "LAYBY_EVT") != 0)
            continue;
        jsConsumerInfo *ci = NULL;
        cr_assert_eq(js_GetConsumerInfo(&ci, js, c->stream, c->durable, NULL, NULL), NATS_OK);
        waiting += ci->NumPending;
        jsConsumerInfo_Destroy(ci);
    }
    cr_expect_eq(waiting, 1, "the orchestrator's LAYBY_EVT durables hold %llu messages, want 1",
                 (unsigned long long)waiting);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

Test(stack, health_sees_streams_and_an_outage, .init = tsupport_reset, .fini = tsupport_nats_start)
{
    static char out[OUT_MAX];
    cr_assert_eq(ctl(out, sizeof out, "health"), 0, "%s", out);
    for (size_t i = 0; i < bus_topology_n_streams; i++) {
        char name[64]; /* "LAYBY_CMD " and not the "LAYBY_CMD/catalog" consumer line */
        snprintf(name, sizeof name, "%s ", bus_topology_streams[i].name);
        cr_expect_eq(lines_with(out, name, " ok "), 1, "%s", out);
    }
    cr_expect_eq(lines_with(out, "postgres", " ok "), 1, "%s", out);

    tsupport_nats_stop();
    cr_expect_eq(ctl(out, sizeof out, "health --timeout 1s"), 1, "%s", out);
    cr_expect_eq(lines_with(out, "nats", "FAIL"), 1, "%s", out);
    cr_expect_eq(lines_with(out, "postgres", " ok "), 1, "%s", out);

    tsupport_nats_start();
    cr_expect_eq(ctl(out, sizeof out, "health"), 0, "streams survive a restart:\n%s", out);
}

Test(stack, dlq_list_shows_dead_letter_headers, .init = tsupport_reset)
{
    static char out[OUT_MAX];
    natsConnection *nc = NULL;
    jsCtx *js = admin_js(&nc);
    natsMsg *m = NULL;
    cr_assert_eq(natsMsg_Create(&m, "layby.dlq.catalog", NULL, "body", 4), NATS_OK);
    natsMsgHeader_Set(m, "Layby-Dlq-Subject", "layby.cmd.catalog.create_product");
    natsMsgHeader_Set(m, "Layby-Dlq-Error", "decode: truncated message");
    natsMsgHeader_Set(m, "Layby-Type", "layby.v1.CreateProduct");
    cr_assert_eq(js_PublishMsg(NULL, js, m, NULL, NULL), NATS_OK);
    natsMsg_Destroy(m);

    cr_assert_eq(ctl(out, sizeof out, "dlq list"), 0, "%s", out);
    cr_expect_eq(lines_with(out, "LAYBY_DLQ", "1 messages"), 1, "%s", out);
    cr_expect_eq(lines_with(out, "seq ", "layby.dlq.catalog"), 1, "%s", out);
    cr_expect_eq(lines_with(out, "Layby-Dlq-Subject", "layby.cmd.catalog.create_product"), 1, "%s",
                 out);
    cr_expect_eq(lines_with(out, "Layby-Dlq-Error", "decode: truncated message"), 1, "%s", out);
    cr_expect_eq(lines_with(out, "Layby-Type", "layby.v1.CreateProduct"), 1, "%s", out);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    char *buf = malloc(8192);
    *len = fread(buf, 1, 8191, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

Test(stack, minted_token_verifies_with_the_public_key)
{
    static char out[OUT_MAX];
    size_t klen = 0;
    jwt_t *jwt = NULL;

    cr_assert_eq(ctl(out, sizeof out, "token mint --sub member-7 --role ADMIN --ttl 15m"), 0);
    out[strcspn(out, "\n")] = '\0';
    char *key = read_file(tsupport_env_req("LAYBY_JWT_PUBLIC_KEY_FILE"), &klen);
    cr_assert_eq(jwt_decode(&jwt, out, (unsigned char *)key, (int)klen), 0, "token: %s", out);
    cr_expect_eq(jwt_get_alg(jwt), JWT_ALG_ES256);
    cr_expect_str_eq(jwt_get_grant(jwt, "sub"), "member-7");
    cr_expect_str_eq(jwt_get_grant(jwt, "role"), "ADMIN");
    cr_expect_str_eq(jwt_get_grant(jwt, "iss"), "layby");
    cr_expect_eq(jwt_get_grant_int(jwt, "exp") - jwt_get_grant_int(jwt, "iat"), 15 * 60);
    const char *jti = jwt_get_grant(jwt, "jti");
    cr_assert_not_null(jti);
    cr_expect(id_valid(jti) && id_time_ms(jti) > 0, "jti %s is not a UUIDv7", jti);
    jwt_free(jwt);

    /* a tampered payload no longer verifies */
    char *dot = strchr(out, '.');
    cr_assert_not_null(dot);
    dot[1] = dot[1] == 'A' ? 'B' : 'A';
    jwt = NULL;
    cr_expect_neq(jwt_decode(&jwt, out, (unsigned char *)key, (int)klen), 0);
    jwt_free(jwt);
    free(key);

    cr_expect_eq(ctl(out, sizeof out, "token mint --sub x --role BOSS 2>/dev/null"), 2);
    cr_expect_eq(ctl(out, sizeof out, "token mint --role USER 2>/dev/null"), 2,
                 "--sub is required");
}
