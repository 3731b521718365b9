/* bus_command_test.c - bus_command() (engine/bus.h) when its publish is not
 * acknowledged: nats-server is gone, so the command may never have been
 * stored. That must not read as "sent, outcome not in yet" (LB_ERR_TIMEOUT,
 * which the edge answers 202 PENDING with the new order's id), but as
 * unavailable (the edge answers 503 and the client repeats with its key).
 * Found by the chaos run (tests/e2e/chaos_test.c): an order answered 202
 * while nats-server was killed did not exist. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/bus.h"
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
