/* bus_msg_test.c - destroying a message wakes no thread: engine/bus.c takes
 * the place of nats.c's natsGC_collect(), so natsMsg_Destroy() frees on the
 * caller's thread instead of waking the library's collector thread once a
 * message (a fifth of the checkout peak's context switches). */
#include <criterion/criterion.h>
#include <sys/resource.h>

#include "engine/bus.h"
#include "layby/v1/catalog.pb-c.h"

/* Voluntary context switches of every thread of this process so far. */
static long
switches(void)
{
    struct rusage ru;
    cr_assert_eq(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_nvcsw;
}

/* Busy for us microseconds without sleeping (a sleep is a switch itself). */
static void
spin_us(int64_t us)
{
    int64_t end = lb_mono_us() + us;
    while (lb_mono_us() < end)
        ;
}

Test(bus_msg, a_destroyed_message_wakes_no_collector_thread)
{
    enum {
        N = 2000
    };
    cr_assert_eq(id_init(NULL), LB_OK);
    cr_assert_eq(nats_Open(-1), NATS_OK);
    bus_envelope env;
    bus_envelope_init(&env, &layby__v1__create_product__descriptor, NULL);
    Layby__V1__CreateProduct cmd = LAYBY__V1__CREATE_PRODUCT__INIT;
    lb_err err;
    long before = switches();
    for (int i = 0; i < N; i++) {
        natsMsg *m = NULL;
        cr_assert_eq(bus_msg_new(&m, "layby.cmd.test", &env, &cmd.base, &err), LB_OK);
        natsMsg_Destroy(m);
        spin_us(50); /* a collector woken by the last one would be asleep again */
    }
    long woke = switches() - before;
    nats_Close();
    cr_assert_lt(woke, N / 10,
                 "%ld voluntary context switches for %d messages destroyed: each woke nats.c's "
                 "collector thread",
                 woke, N);
}
