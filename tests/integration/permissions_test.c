/* permissions_test.c - each daemon's NATS user may do what its role needs and
 * nothing else (DESIGN §3; the rows derive from etc/services.tsv, plus
 * tests/support/services-test.tsv for the test participant, and
 * etc/nats-users.tsv for admin).
 *
 * A refused publish or subscription is not an error at the call: the server
 * answers "-ERR Permissions Violation" later. The server handles a
 * connection's protocol in order, so once natsConnection_Flush() has seen the
 * PONG, the -ERR (if any) was already read and natsConnection_GetLastError()
 * reports NATS_NOT_PERMITTED; the async error handler must see it too. Every
 * case uses a fresh connection, because that last error sticks. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdatomic.h>
#include <string.h>

#include "bus_topology.h"
#include "tsupport.h"

/* Arrays, not pointers: Criterion runs each case in a fresh process where
 * pointers into the parent's memory are not valid. */
typedef struct perm_case {
    char who[16];     /* LAYBY_<who>_NATS_USER */
    char subject[64]; /* what it tries */
    bool allowed;
} perm_case;

typedef struct async_err {
    atomic_int status; /* last natsStatus the error handler saw, 0 = none */
} async_err;

static void
on_async_err(natsConnection *nc, natsSubscription *sub, natsStatus s, void *arg)
{
    (void)nc;
    (void)sub;
    atomic_store(&((async_err *)arg)->status, (int)s);
}

static bool
async_err_seen(void *arg)
{
    return atomic_load(&((async_err *)arg)->status) == NATS_NOT_PERMITTED;
}

static natsConnection *
connect_as(const char *who, async_err *ae)
{
    natsConnection *nc = NULL;
    natsStatus s = tsupport_nats_connect(&nc, who, ae ? on_async_err : NULL, ae);
    cr_assert_eq(s, NATS_OK, "connect as %s: %s %s", who, natsStatus_GetText(s),
                 nats_GetLastError(NULL));
    return nc;
}

/* Flushes and says whether the server refused something on nc. */
static bool
refused_after_flush(natsConnection *nc, async_err *ae, const char *what)
{
    const char *text = NULL;
    natsStatus fs = natsConnection_FlushTimeout(nc, 5000);
    cr_assert(fs == NATS_OK || fs == NATS_NOT_PERMITTED, "flush after %s: %s", what,
              natsStatus_GetText(fs));
    natsStatus last = natsConnection_GetLastError(nc, &text);
    if (last != NATS_NOT_PERMITTED) {
        cr_assert_eq(last, NATS_OK, "%s: unexpected error %s", what, natsStatus_GetText(last));
        return false;
    }
    cr_assert(strstr(text, "Permissions Violation") != NULL, "%s: error text '%s'", what, text);
    cr_assert(tsupport_poll_until(async_err_seen, ae, 5000),
              "%s: refused, but the error handler never heard of it", what);
    return true;
}

/* clang-format off */
static perm_case publish_cases[] = {
    /* who            subject                          allowed */
    { "CATALOG",      "layby.cmd.catalog.x",           true },
    { "CATALOG",      "layby.evt.product.created",     true },
    { "CATALOG",      "layby.evt.stock.reserved",      true },
    { "CATALOG",      "layby.dlq.catalog",             true },
    { "CATALOG",      "layby.evt.order.created",       false },
    { "CATALOG",      "layby.cmd.member.x",            false },
    { "CATALOG",      "layby.dlq.orchestrator",        false },
    { "CATALOG",      "$JS.API.STREAM.DELETE.LAYBY_CMD", false },
    { "CATALOG",      "$JS.API.CONSUMER.MSG.NEXT.LAYBY_EVT.orchestrator-sagatest", false },
    { "EDGE",         "layby.cmd.member.x",            true },
    { "EDGE",         "layby.qry.catalog.product",     true },
    { "EDGE",         "layby.cmd.saga.retry",          false },
    { "EDGE",         "layby.cmd.saga.resolve",        false },
    { "EDGE",         "layby.cmd.saga.signal",         true },  /* a member's cancel, return */
    { "EDGE",         "layby.cmd.saga.start.sagatest", false }, /* only the types it starts */
    { "EDGE",         "layby.cmd.saga.start.sagaflow", false },
    { "EDGE",         "layby.evt.product.created",     false },
    { "EDGE",         "$JS.API.CONSUMER.MSG.NEXT.LAYBY_CMD.catalog", false },
    { "EDGE",         "$JS.ACK.LAYBY_CMD.catalog.1.1.1.1.1", false },
    { "ORCHESTRATOR", "layby.cmd.payment.charge",      true },
    { "ORCHESTRATOR", "layby.evt.saga.completed",      true },
    { "ORCHESTRATOR", "layby.evt.order.created",       false },
    { "ORCHESTRATOR", "layby.qry.catalog.product",     false },
    /* the test participant: its own least-privilege user, not admin */
    { "SAGATEST",     "layby.evt.sagatest.done",       true },
    { "SAGATEST",     "layby.dlq.sagatest",            true },
    { "SAGATEST",     "$JS.API.CONSUMER.MSG.NEXT.LAYBY_CMD.sagatest", true },
    { "SAGATEST",     "layby.cmd.sagatest.do",         false },
    { "SAGATEST",     "layby.cmd.saga.start.sagatest", false },
    { "SAGATEST",     "layby.evt.saga.completed",      false },
    { "SAGATEST",     "layby.evt.product.created",     false },
    { "SAGATEST",     "$JS.API.CONSUMER.MSG.NEXT.LAYBY_CMD.catalog", false },
    { "SAGATEST",     "$JS.API.CONSUMER.CREATE.LAYBY_CMD", false },
};

static perm_case subscribe_cases[] = {
    { "CATALOG",      "layby.qry.catalog.>",           true },
    { "CATALOG",      "_INBOX.>",                      true },
    { "CATALOG",      "layby.qry.member.>",            false },
    { "CATALOG",      "layby.evt.>",                   false },
    { "EDGE",         "_INBOX.>",                      true },
    { "EDGE",         "layby.cmd.>",                   false },
    { "EDGE",         "layby.qry.catalog.>",           false },
    { "ORCHESTRATOR", "layby.qry.orchestrator.>",      true },
    { "ORCHESTRATOR", "layby.qry.catalog.>",           false },
    { "SAGATEST",     "_INBOX.>",                      true },
    { "SAGATEST",     "layby.cmd.>",                   false },
    { "SAGATEST",     "layby.qry.>",                   false },
};
/* clang-format on */

ParameterizedTestParameters(permissions, core_publish)
{
    return cr_make_param_array(perm_case, publish_cases,
                               sizeof publish_cases / sizeof publish_cases[0]);
}

ParameterizedTest(perm_case *c, permissions, core_publish)
{
    async_err ae = { 0 };
    natsConnection *nc = connect_as(c->who, &ae);
    natsStatus s = natsConnection_PublishString(nc, c->subject, "x");
    cr_assert_eq(s, NATS_OK, "publish is buffered locally: %s", natsStatus_GetText(s));
    bool refused = refused_after_flush(nc, &ae, c->subject);
    cr_expect_eq(refused, !c->allowed, "%s publishing to %s: %s, expected %s", c->who, c->subject,
                 refused ? "refused" : "allowed", c->allowed ? "allowed" : "refused");
    natsConnection_Destroy(nc);
}

ParameterizedTestParameters(permissions, subscribe)
{
    return cr_make_param_array(perm_case, subscribe_cases,
                               sizeof subscribe_cases / sizeof subscribe_cases[0]);
}

ParameterizedTest(perm_case *c, permissions, subscribe)
{
    async_err ae = { 0 };
    natsSubscription *sub = NULL;
    natsConnection *nc = connect_as(c->who, &ae);
    cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, c->subject), NATS_OK);
    bool refused = refused_after_flush(nc, &ae, c->subject);
    cr_expect_eq(refused, !c->allowed, "%s subscribing to %s: %s, expected %s", c->who, c->subject,
                 refused ? "refused" : "allowed", c->allowed ? "allowed" : "refused");
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
}

Test(permissions, anonymous_connection_is_refused)
{
    natsConnection *nc = NULL;
    natsStatus s = tsupport_nats_connect(&nc, NULL, NULL, NULL);
    cr_expect_neq(s, NATS_OK, "an anonymous client got in");
    natsConnection_Destroy(nc);
}

Test(permissions, wrong_password_is_refused)
{
    natsConnection *nc = NULL;
    natsOptions *o = NULL;
    cr_assert_eq(natsOptions_Create(&o), NATS_OK);
    natsOptions_SetURL(o, tsupport_env_req("LAYBY_NATS_URL"));
    natsOptions_SetAllowReconnect(o, false);
    natsOptions_SetUserInfo(o, tsupport_env_req("LAYBY_CATALOG_NATS_USER"), "not-the-password");
    cr_expect_neq(natsConnection_Connect(&nc, o), NATS_OK);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
}

static uint64_t
stream_last_seq(jsCtx *js, const char *stream)
{
    jsStreamInfo *si = NULL;
    natsStatus s = js_GetStreamInfo(&si, js, stream, NULL, NULL);
    cr_assert_eq(s, NATS_OK, "stream %s: %s", stream, natsStatus_GetText(s));
    uint64_t seq = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return seq;
}

static jsCtx *
js_for(natsConnection *nc)
{
    jsCtx *js = NULL;
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = 1500; /* a refused publish is never acked: fail fast */
    cr_assert_eq(natsConnection_JetStream(&js, nc, &o), NATS_OK);
    return js;
}

Test(permissions, jetstream_publish_outside_own_subjects_is_not_stored)
{
    natsConnection *admin = connect_as("CTL", NULL);
    natsConnection *cat = connect_as("CATALOG", NULL);
    jsCtx *ajs = js_for(admin), *cjs = js_for(cat);
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;

    /* control: its own event subject is stored */
    uint64_t before = stream_last_seq(ajs, "LAYBY_EVT");
    natsStatus s = js_Publish(&ack, cjs, "layby.evt.product.created", "p", 1, NULL, &jerr);
    cr_assert_eq(s, NATS_OK, "catalog publishing its own event: %s %s", natsStatus_GetText(s),
                 nats_GetLastError(NULL));
    cr_expect_str_eq(ack->Stream, "LAYBY_EVT");
    cr_expect_eq(ack->Sequence, before + 1);
    jsPubAck_Destroy(ack);
    ack = NULL;

    /* another aggregate's event is refused and never stored */
    before = stream_last_seq(ajs, "LAYBY_EVT");
    s = js_Publish(&ack, cjs, "layby.evt.order.created", "o", 1, NULL, &jerr);
    cr_expect_neq(s, NATS_OK, "catalog stored an order event");
    cr_expect_null(ack);
    cr_expect_eq(stream_last_seq(ajs, "LAYBY_EVT"), before, "LAYBY_EVT grew");
    jsPubAck_Destroy(ack);

    jsCtx_Destroy(ajs);
    jsCtx_Destroy(cjs);
    natsConnection_Destroy(cat);
    natsConnection_Destroy(admin);
}

/* Binds to an existing durable (as the services do: Stream + Consumer set). */
static natsStatus
bind_durable(natsSubscription **sub, jsCtx *js, const char *stream, const char *durable,
             const char *filter)
{
    jsSubOptions so;
    jsErrCode jerr = 0;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Consumer = durable;
    return js_PullSubscribe(sub, js, filter, durable, NULL, &so, &jerr);
}

Test(permissions, only_the_catalog_consumes_the_catalog_durable, .init = tsupport_reset)
{
    natsConnection *edge = connect_as("EDGE", NULL);
    natsConnection *cat = connect_as("CATALOG", NULL);
    jsCtx *ejs = js_for(edge), *cjs = js_for(cat);
    natsSubscription *sub = NULL;
    natsMsgList list = { 0 };
    jsErrCode jerr = 0;

    /* the edge sends the catalog a command ... */
    natsStatus s = js_Publish(NULL, ejs, "layby.cmd.catalog.ping", "hi", 2, NULL, &jerr);
    cr_assert_eq(s, NATS_OK, "edge command: %s %s", natsStatus_GetText(s), nats_GetLastError(NULL));

    /* ... but cannot read the catalog's durable */
    s = bind_durable(&sub, ejs, "LAYBY_CMD", "catalog", "layby.cmd.catalog.>");
    if (s == NATS_OK) {
        s = natsSubscription_Fetch(&list, sub, 1, 1500, &jerr);
        natsMsgList_Destroy(&list);
    }
    cr_expect_neq(s, NATS_OK, "the edge read the catalog durable");
    natsSubscription_Destroy(sub);
    sub = NULL;

    /* the catalog can: bind, fetch, ack synchronously (the ack subject is allowed) */
    s = bind_durable(&sub, cjs, "LAYBY_CMD", "catalog", "layby.cmd.catalog.>");
    cr_assert_eq(s, NATS_OK, "catalog bind: %s %s", natsStatus_GetText(s), nats_GetLastError(NULL));
    s = natsSubscription_Fetch(&list, sub, 1, 5000, &jerr);
    cr_assert_eq(s, NATS_OK, "catalog fetch: %s %s", natsStatus_GetText(s),
                 nats_GetLastError(NULL));
    cr_assert_eq(list.Count, 1);
    cr_expect_str_eq(natsMsg_GetSubject(list.Msgs[0]), "layby.cmd.catalog.ping");
    cr_expect_eq(natsMsg_AckSync(list.Msgs[0], NULL, &jerr), NATS_OK, "ack: %s",
                 nats_GetLastError(NULL));
    natsMsgList_Destroy(&list);
    natsSubscription_Destroy(sub);

    jsCtx_Destroy(ejs);
    jsCtx_Destroy(cjs);
    natsConnection_Destroy(cat);
    natsConnection_Destroy(edge);
}

Test(permissions, orchestrator_consumes_both_of_its_durables, .init = tsupport_reset)
{
    static const struct {
        const char *stream, *durable, *filter, *subject;
    } rows[] = {
        { "LAYBY_EVT", "orchestrator-sagatest", "layby.evt.sagatest.>", "layby.evt.sagatest.done" },
        { "LAYBY_CMD", "orchestrator", "layby.cmd.saga.>", "layby.cmd.saga.place_order" },
    };
    natsConnection *admin = connect_as("CTL", NULL);
    natsConnection *orc = connect_as("ORCHESTRATOR", NULL);
    jsCtx *ajs = js_for(admin), *ojs = js_for(orc);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        natsSubscription *sub = NULL;
        natsMsgList list = { 0 };
        jsErrCode jerr = 0;
        cr_assert_eq(js_Publish(NULL, ajs, rows[i].subject, "m", 1, NULL, &jerr), NATS_OK);
        natsStatus s = bind_durable(&sub, ojs, rows[i].stream, rows[i].durable, rows[i].filter);
        cr_assert_eq(s, NATS_OK, "bind %s: %s %s", rows[i].stream, natsStatus_GetText(s),
                     nats_GetLastError(NULL));
        s = natsSubscription_Fetch(&list, sub, 1, 5000, &jerr);
        cr_assert_eq(s, NATS_OK, "fetch %s: %s", rows[i].stream, nats_GetLastError(NULL));
        cr_expect_str_eq(natsMsg_GetSubject(list.Msgs[0]), rows[i].subject);
        cr_expect_eq(natsMsg_AckSync(list.Msgs[0], NULL, &jerr), NATS_OK);
        natsMsgList_Destroy(&list);
        natsSubscription_Destroy(sub);
    }
    jsCtx_Destroy(ajs);
    jsCtx_Destroy(ojs);
    natsConnection_Destroy(orc);
    natsConnection_Destroy(admin);
}

Test(permissions, only_admin_changes_the_topology)
{
    natsConnection *cat = connect_as("CATALOG", NULL);
    jsCtx *js = js_for(cat);
    jsConsumerConfig cc;
    jsErrCode jerr = 0;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "intruder";
    cc.AckPolicy = js_AckExplicit;
    cr_expect_neq(js_AddConsumer(NULL, js, "LAYBY_CMD", &cc, NULL, &jerr), NATS_OK,
                  "catalog created a consumer");
    cr_expect_neq(js_PurgeStream(js, "LAYBY_EVT", NULL, &jerr), NATS_OK, "catalog purged events");
    jsCtx_Destroy(js);
    natsConnection_Destroy(cat);
}

Test(permissions, edge_uses_the_idempotency_bucket, .init = tsupport_reset)
{
    natsConnection *edge = connect_as("EDGE", NULL);
    jsCtx *js = js_for(edge);
    kvStore *kv = NULL;
    kvEntry *e = NULL;
    uint64_t rev = 0;

    natsStatus s = js_KeyValue(&kv, js, "LAYBY_IDEMPOTENCY");
    cr_assert_eq(s, NATS_OK, "open bucket: %s %s", natsStatus_GetText(s), nats_GetLastError(NULL));
    s = kvStore_CreateString(&rev, kv, "k1", "first outcome");
    cr_assert_eq(s, NATS_OK, "create: %s %s", natsStatus_GetText(s), nats_GetLastError(NULL));
    cr_expect_neq(kvStore_CreateString(&rev, kv, "k1", "second"), NATS_OK,
                  "create is set-if-absent");
    s = kvStore_Get(&e, kv, "k1");
    cr_assert_eq(s, NATS_OK, "get: %s %s", natsStatus_GetText(s), nats_GetLastError(NULL));
    cr_expect_str_eq(kvEntry_ValueString(e), "first outcome");
    kvEntry_Destroy(e);
    kvStore_Destroy(kv);

    /* the catalog has no business there */
    natsConnection *cat = connect_as("CATALOG", NULL);
    jsCtx *cjs = js_for(cat);
    kv = NULL;
    s = js_KeyValue(&kv, cjs, "LAYBY_IDEMPOTENCY");
    if (s == NATS_OK)
        s = kvStore_PutString(&rev, kv, "k2", "x");
    cr_expect_neq(s, NATS_OK, "catalog wrote an idempotency key");
    kvStore_Destroy(kv);

    jsCtx_Destroy(cjs);
    natsConnection_Destroy(cat);
    jsCtx_Destroy(js);
    natsConnection_Destroy(edge);
}
