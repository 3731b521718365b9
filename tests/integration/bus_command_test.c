/* bus_command_test.c - bus_command() (engine/bus.h) when its publish is not
 * acknowledged: nats-server is gone, so the command may never have been
 * stored. That must not read as "sent, outcome not in yet" (LB_ERR_TIMEOUT,
 * which the edge answers 202 PENDING with the new order's id), but as
 * unavailable (the edge answers 503 and the client repeats with its key).
 * Found by the chaos run (tests/e2e/chaos_test.c): an order answered 202
 * while nats-server was killed did not exist. And an outbox publisher whose
 * publish is never acknowledged (the server died before reading it) starts
 * over instead of waiting for that ack in every later publish. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/outbox.h"
#include "layby/v1/catalog.pb-c.h"
#include "tsupport.h"

static bus *admin;

static void
setup(void)
{
    tsupport_reset();
    admin = tsupport_admin_bus("bus-command-test");
}

static void
teardown(void)
{
    tsupport_nats_signal(SIGCONT); /* a test that failed while it was frozen */
    tsupport_nats_start();
    bus_close(admin);
    admin = NULL;
}

TestSuite(bus_command, .init = setup, .fini = teardown, .timeout = 60);

Test(bus_command, an_unacknowledged_publish_is_unavailable_not_a_pending_outcome)
{
    tsupport_nats_stop();
    Layby__V1__GetWishlist g = LAYBY__V1__GET_WISHLIST__INIT;
    g.member_id = "01a239de-90f0-7a2f-8cea-49d3cfddbae9";
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__get_wishlist__descriptor, NULL);
    natsMsg *reply = NULL;
    lb_err err = { 0 };
    lb_status s = bus_command(&reply, admin, "layby.cmd.bustest.x", &env, &g.base, 1500, &err);
    natsMsg_Destroy(reply);
    cr_expect_neq(s, LB_OK);
    cr_expect_neq(s, LB_ERR_TIMEOUT, "a publish without an ack read as a pending outcome: %s",
                  err.msg);
    cr_expect_eq(err.code, s, "err.code %d, returned %d", (int)err.code, (int)s);
}

/* One row of a GetWishlist (any message will do) on a subject LAYBY_CMD keeps. */
static void
row_add(outbox_buf *b)
{
    Layby__V1__GetWishlist g = LAYBY__V1__GET_WISHLIST__INIT;
    g.member_id = "01a239de-90f0-7a2f-8cea-49d3cfddbae9";
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__get_wishlist__descriptor, NULL);
    lb_err err;
    cr_assert_eq(outbox_buf_add(b, "layby.cmd.bustest.x", &env, &g.base, &err), LB_OK, "%s",
                 err.msg);
}

static bool
admin_connected(void *arg)
{
    (void)arg;
    return natsConnection_Status(bus_conn(admin)) == NATS_CONN_STATUS_CONNECTED;
}

/* A publish whose ack never comes (a stream leader that died holding it;
 * here a frozen server killed before it read the publish) must not keep the
 * publisher waiting for it for good: nats.c 3.4 keeps such a publish pending,
 * and every later wait would time out on it (outbox_pub.c context_reset). */
Test(bus_command, an_outbox_publisher_whose_ack_never_comes_publishes_again_once_back)
{
    lb_err err;
    outbox_pub *p = NULL;
    cr_assert_eq(outbox_pub_new(&p, admin, NULL, &err), LB_OK, "%s", err.msg);
    outbox_buf b;
    outbox_buf_init(&b);
    row_add(&b);
    tsupport_nats_signal(SIGSTOP);
    cr_assert_neq(outbox_pub_rows(p, &b, &err), LB_OK, "a frozen server acked");
    tsupport_nats_signal(SIGKILL); /* the publish dies unread with it */
    tsupport_nats_start();
    cr_assert(tsupport_poll_until(admin_connected, NULL, 15000), "the bus did not reconnect");
    outbox_buf_reset(&b);
    row_add(&b);
    lb_status s = outbox_pub_rows(p, &b, &err);
    cr_expect_eq(s, LB_OK, "the publisher still waits for the dead server's ack: %s", err.msg);
    cr_expect_eq(outbox_pub_settle(p, &err), LB_OK, "%s", err.msg);
    outbox_buf_destroy(&b);
    outbox_pub_free(p);
}
