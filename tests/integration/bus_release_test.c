/* bus_release_test.c - nats.c 3.4.1's reader thread and a subscription freed
 * under it (engine/bus_libnats.c, natsSub_release).
 *
 * nats.c 3.4.1 (Debian 12's libnats) takes a message's subscription from the
 * connection's table, lets go of the table's lock, builds the message and
 * only then locks the subscription. A thread that removes the subscription
 * and drops its last reference in that gap frees the memory the reader is
 * about to lock: natsConnection_Close() releasing the request mux while
 * replies arrive (seen as a SEGV in bus_command_test's teardown under load),
 * or a reply inbox destroyed as its reply comes in (the edge's 202 after its
 * wait). Upstream fixed it in nats.c 3.6.1. layby defers every release of a
 * subscription, so the memory outlives that gap.
 *
 * Both tests make the race as often as they can: messages stream to the
 * subscription while it goes. Under ASan the freed memory reads as garbage
 * and the reader crashes (the test process dies, Criterion reports it); with
 * the deferral they pass. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>

#include "engine/bus.h"
#include "tsupport.h"

#define RACE_SUBJECT    "layby.test.release.race"
#define RACE_REQUEST    "layby.test.release.request"
#define RACE_REQUESTERS 8 /* requests in flight on one connection */

static atomic_bool streaming;

/* Publishes to RACE_SUBJECT as fast as the connection takes it. */
static void *
stream_run(void *arg)
{
    natsConnection *nc = arg;
    while (atomic_load(&streaming))
        natsConnection_PublishString(nc, RACE_SUBJECT, "x");
    return NULL;
}

static void
on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)sub;
    (void)arg;
    natsConnection_PublishString(nc, natsMsg_GetReply(msg), "y");
    natsMsg_Destroy(msg);
}

/* Asks RACE_REQUEST again and again: each reply arrives on the connection's
 * request mux. Stops when the connection closes under it. */
static void *
request_run(void *arg)
{
    natsConnection *nc = arg;
    for (;;) {
        natsMsg *reply = NULL;
        natsStatus s = natsConnection_RequestString(&reply, nc, RACE_REQUEST, "x", 200);
        natsMsg_Destroy(reply);
        if (s == NATS_CONNECTION_CLOSED || natsConnection_IsClosed(nc))
            return NULL;
    }
}

static void
setup(void)
{
    tsupport_reset();
    lb_err err = { 0 };
    cr_assert_eq(bus_libnats_init(&err), LB_OK, "%s", err.msg);
}

TestSuite(bus_release, .init = setup, .timeout = 120);

Test(bus_release, a_subscription_destroyed_while_its_messages_arrive_is_not_freed_under_the_reader)
{
    natsConnection *pub = NULL, *nc = NULL;
    cr_assert_eq(tsupport_nats_connect(&pub, "CTL", NULL, NULL), NATS_OK);
    cr_assert_eq(tsupport_nats_connect(&nc, "CTL", NULL, NULL), NATS_OK);
    atomic_store(&streaming, true);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, stream_run, pub), 0);
    int got = 0, n = 0;
    /* 5 s of subscriptions: under ASan nats.c 3.4.1 crashed within the
     * first second here without the deferral. */
    for (int64_t until = lb_mono_us() + 5000000; n < 3000 && lb_mono_us() < until; n++) {
        natsSubscription *sub = NULL;
        cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, RACE_SUBJECT), NATS_OK);
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, 200) == NATS_OK)
            got++;
        natsMsg_Destroy(m);
        /* Messages are still arriving for it: the reader may hold it now. */
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
    }
    atomic_store(&streaming, false);
    pthread_join(t, NULL);
    cr_expect_gt(bus_libnats_releases_pending(), 0, "the releases were not deferred");
    cr_expect_gt(n, 20, "only %d subscriptions in 5 s", n);
    cr_expect_gt(got, n * 9 / 10,
                 "the subscriptions were not in the stream's way: %d of %d had a message", got, n);
    natsConnection_Destroy(nc);
    natsConnection_Destroy(pub);
}

Test(bus_release, a_connection_closed_while_replies_arrive_is_not_freed_under_the_reader)
{
    natsConnection *responder = NULL;
    cr_assert_eq(tsupport_nats_connect(&responder, "CTL", NULL, NULL), NATS_OK);
    natsSubscription *serve = NULL;
    cr_assert_eq(natsConnection_Subscribe(&serve, responder, RACE_REQUEST, on_request, NULL),
                 NATS_OK);
    cr_assert_eq(natsConnection_Flush(responder), NATS_OK);
    int n = 0;
    for (int64_t until = lb_mono_us() + 5000000; lb_mono_us() < until; n++) {
        natsConnection *nc = NULL;
        cr_assert_eq(tsupport_nats_connect(&nc, "CTL", NULL, NULL), NATS_OK);
        pthread_t t[RACE_REQUESTERS];
        for (int i = 0; i < RACE_REQUESTERS; i++)
            cr_assert_eq(pthread_create(&t[i], NULL, request_run, nc), 0);
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        /* Close releases every subscription, the request mux too, while its
         * replies keep coming. */
        natsConnection_Close(nc);
        for (int i = 0; i < RACE_REQUESTERS; i++)
            pthread_join(t[i], NULL);
        natsConnection_Destroy(nc);
    }
    cr_expect_gt(n, 20, "only %d connections in 5 s", n);
    natsSubscription_Destroy(serve);
    natsConnection_Destroy(responder);
}
