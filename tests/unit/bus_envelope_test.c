/* bus_envelope_test.c - the DESIGN §2 headers: what a new message and a
 * caused message carry, the round trip through a natsMsg, refusals of messages
 * that cannot be handled exactly once, and W3C traceparent checks. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/bus.h"
#include "layby/v1/catalog.pb-c.h"

static void
setup(void)
{
    cr_assert_eq(id_init(NULL), LB_OK);
    cr_assert_eq(nats_Open(-1), NATS_OK); /* messages work without a connection */
}

static void
teardown(void)
{
    nats_Close();
}

TestSuite(bus_envelope, .init = setup, .fini = teardown);

Test(bus_envelope, a_new_flow_is_its_own_correlation)
{
    bus_envelope e;
    bus_envelope_init(&e, &layby__v1__create_product__descriptor, NULL);
    cr_assert(id_valid(e.msg_id));
    cr_assert_str_eq(e.type, "layby.v1.CreateProduct");
    cr_assert_str_eq(e.correlation, e.msg_id);
    cr_assert_str_empty(e.causation);
    cr_assert_str_empty(e.reply);
}

Test(bus_envelope, a_caused_message_carries_the_flow_but_not_the_reply)
{
    bus_envelope cause, e;
    bus_envelope_init(&cause, &layby__v1__create_product__descriptor, NULL);
    snprintf(cause.actor, sizeof cause.actor, "admin-1 ADMIN");
    snprintf(cause.reply, sizeof cause.reply, "_INBOX.waiting");
    bus_traceparent_new(cause.traceparent);
    bus_envelope_init(&e, &layby__v1__product_created__descriptor, &cause);
    cr_assert_str_neq(e.msg_id, cause.msg_id);
    cr_assert_str_eq(e.correlation, cause.correlation);
    cr_assert_str_eq(e.causation, cause.msg_id);
    cr_assert_str_eq(e.actor, "admin-1 ADMIN");
    cr_assert_str_eq(e.traceparent, cause.traceparent, "passed through unchanged");
    cr_assert_str_empty(e.reply, "a reply inbox is never inherited");
}

Test(bus_envelope, headers_round_trip_through_a_message)
{
    bus_envelope in, out;
    bus_envelope_init(&in, &layby__v1__create_product__descriptor, NULL);
    snprintf(in.actor, sizeof in.actor, "m-7 USER");
    snprintf(in.reply, sizeof in.reply, "_INBOX.abc.1");
    snprintf(in.causation, sizeof in.causation, "%s", in.msg_id);
    bus_traceparent_new(in.traceparent);
    natsMsg *m = NULL;
    cr_assert_eq(bus_msg_new_raw(&m, "layby.cmd.catalog.create_product", &in, "x", 1, NULL), LB_OK);
    const char *v = NULL;
    cr_assert_eq(natsMsgHeader_Get(m, "Nats-Msg-Id", &v), NATS_OK);
    cr_assert_str_eq(v, in.msg_id);
    cr_assert_eq(natsMsgHeader_Get(m, "Layby-Type", &v), NATS_OK);
    cr_assert_str_eq(v, "layby.v1.CreateProduct");
    cr_assert_eq(bus_envelope_read(&out, m, NULL), LB_OK);
    cr_assert_eq(memcmp(&in, &out, sizeof in), 0);
    natsMsg_Destroy(m);
}

Test(bus_envelope, empty_fields_are_not_sent)
{
    bus_envelope in;
    bus_envelope_init(&in, &layby__v1__create_product__descriptor, NULL);
    natsMsg *m = NULL;
    cr_assert_eq(bus_msg_new_raw(&m, "s", &in, "", 0, NULL), LB_OK);
    const char *v = NULL;
    cr_assert_eq(natsMsgHeader_Get(m, "Layby-Reply", &v), NATS_NOT_FOUND);
    cr_assert_eq(natsMsgHeader_Get(m, "Layby-Actor", &v), NATS_NOT_FOUND);
    natsMsg_Destroy(m);
}

Test(bus_envelope, a_message_without_id_or_type_cannot_be_handled_once)
{
    natsMsg *m = NULL;
    bus_envelope e;
    lb_err err;
    cr_assert_eq(natsMsg_Create(&m, "s", NULL, "", 0), NATS_OK);
    natsMsgHeader_Set(m, "Layby-Type", "layby.v1.CreateProduct");
    cr_assert_eq(bus_envelope_read(&e, m, &err), LB_ERR_DECODE);
    cr_assert(strstr(err.msg, "Nats-Msg-Id") != NULL, "%s", err.msg);
    natsMsgHeader_Set(m, "Nats-Msg-Id", "abc");
    natsMsgHeader_Delete(m, "Layby-Type");
    cr_assert_eq(bus_envelope_read(&e, m, &err), LB_ERR_DECODE);
    cr_assert(strstr(err.msg, "Layby-Type") != NULL, "%s", err.msg);
    char longval[400];
    memset(longval, 'a', sizeof longval - 1);
    longval[sizeof longval - 1] = '\0';
    natsMsgHeader_Set(m, "Layby-Type", longval);
    cr_assert_eq(bus_envelope_read(&e, m, &err), LB_ERR_DECODE, "an oversized header is refused");
    natsMsg_Destroy(m);
}

Test(bus_envelope, traceparent_is_checked_as_w3c_says)
{
    char tp[BUS_TRACE_MAX];
    bus_traceparent_new(tp);
    cr_assert_eq(bus_traceparent_check(tp, NULL), LB_OK, "%s", tp);
    cr_assert_eq(
        bus_traceparent_check("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", NULL),
        LB_OK);
    static const char *const bad[] = {
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* zero parent id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* forbidden version */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* upper case */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",    /* no flags */
        "",
    };
    for (size_t i = 0; i < LB_COUNTOF(bad); i++)
        cr_assert_eq(bus_traceparent_check(bad[i], NULL), LB_ERR_INVALID, "%s", bad[i]);
}
