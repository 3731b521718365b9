/* bus_servers_test.c - LAYBY_NATS_URL as a list of a cluster's nodes
 * (bus_servers_split/bus_servers_set, engine/bus.h): items, blanks, refusals. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/bus.h"

TestSuite(bus_servers);

Test(bus_servers, one_url_is_a_list_of_one)
{
    char buf[64];
    const char *l[BUS_SERVERS_MAX];
    int n = 0;
    lb_err err = { 0 };
    cr_assert_eq(bus_servers_split(buf, sizeof buf, "nats://127.0.0.1:4222", l, &n, &err), LB_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(l[0], "nats://127.0.0.1:4222");
}

Test(bus_servers, commas_separate_nodes_and_blanks_around_them_go)
{
    const char *in = "nats://a:1, nats://b:2 ,\tnats://u:p@c:3";
    char buf[128];
    const char *l[BUS_SERVERS_MAX];
    int n = 0;
    lb_err err = { 0 };
    cr_assert_eq(bus_servers_split(buf, sizeof buf, in, l, &n, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(l[0], "nats://a:1");
    cr_assert_str_eq(l[1], "nats://b:2");
    cr_assert_str_eq(l[2], "nats://u:p@c:3");
}

Test(bus_servers, an_empty_item_or_list_is_a_config_error)
{
    static const char *bad[] = {
        "", " ", "nats://a:1,", ",nats://a:1", "nats://a:1,,nats://b:2", "nats://a:1, ,nats://b:2"
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[64];
        const char *l[BUS_SERVERS_MAX];
        int n = 0;
        lb_err err = { 0 };
        cr_assert_eq(bus_servers_split(buf, sizeof buf, bad[i], l, &n, &err), LB_ERR_CONFIG,
                     "'%s' was accepted", bad[i]);
        cr_assert(strstr(err.msg, "NATS URL list") != NULL, "%s", err.msg);
    }
}

Test(bus_servers, more_nodes_than_the_cap_are_refused)
{
    char in[1024] = "", buf[1024];
    for (int i = 0; i <= BUS_SERVERS_MAX; i++)
        snprintf(in + strlen(in), sizeof in - strlen(in), "%snats://h:%d", i ? "," : "", 4000 + i);
    const char *l[BUS_SERVERS_MAX];
    int n = 0;
    lb_err err = { 0 };
    cr_assert_eq(bus_servers_split(buf, sizeof buf, in, l, &n, &err), LB_ERR_CONFIG);
}

Test(bus_servers, options_take_the_list)
{
    cr_assert_eq(nats_Open(-1), NATS_OK);
    natsOptions *o = NULL;
    cr_assert_eq(natsOptions_Create(&o), NATS_OK);
    lb_err err = { 0 };
    cr_assert_eq(bus_servers_set(o, "nats://127.0.0.1:1,nats://127.0.0.1:2", &err), LB_OK, "%s",
                 err.msg);
    cr_assert_eq(bus_servers_set(o, "nats://127.0.0.1:1,", &err), LB_ERR_CONFIG);
    natsOptions_Destroy(o);
    nats_Close();
}
