/* ctl_bus.c - `layby-ctl bus setup`: makes the server's streams, durable
 * consumers and buckets match engine/bus_topology.c. Safe to run any time:
 * what exists is updated in place, nothing is deleted or purged. */
#include <stddef.h>
#include <stdio.h>

#include "bus_topology.h"
#include "ctl.h"

typedef struct bus_setup_conf {
    ctl_conn conn; /* first: the shared rows point into it */
    int64_t max_age_ms;
    int64_t duplicates_ms;
    int64_t ack_wait_ms;
    int64_t max_deliver;
    int64_t max_ack_pending;
} bus_setup_conf;
_Static_assert(offsetof(bus_setup_conf, conn) == 0, "ctl_conn first");

#define DAY_MS (24LL * 3600 * 1000)

/* clang-format off */
static const cfg_opt bus_setup_opts[] = {
    { "max-age",         "LAYBY_BUS_MAX_AGE",         CFG_MS,  "7d",   offsetof(bus_setup_conf, max_age_ms),      60000, 3650 * DAY_MS, "how long streams keep messages" },
    { "duplicates",      "LAYBY_BUS_DUPLICATES",      CFG_MS,  "2m",   offsetof(bus_setup_conf, duplicates_ms),   120000, DAY_MS,       "Nats-Msg-Id de-duplication window (>= 2m)" },
    { "ack-wait",        "LAYBY_BUS_ACK_WAIT",        CFG_MS,  "30s",  offsetof(bus_setup_conf, ack_wait_ms),     1000, 3600000,        "redelivery after an unacked message" },
    { "max-deliver",     "LAYBY_BUS_MAX_DELIVER",     CFG_INT, "5",    offsetof(bus_setup_conf, max_deliver),     1, 1000,              "deliveries per message before the server stops" },
    { "max-ack-pending", "LAYBY_BUS_MAX_ACK_PENDING", CFG_INT, "4096", offsetof(bus_setup_conf, max_ack_pending), 1, 1000000,           "unacked messages per durable" },
};
/* clang-format on */

static void
report(void *arg, const char *kind, const char *name, bus_topology_change change)
{
    (void)arg;
    printf("%-9s %-28s %s\n", kind, name, bus_topology_change_name(change));
}

int
ctl_bus_setup(const ctl_cmd *cmd, int argc, char **argv)
{
    bus_setup_conf conf = { 0 };
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    lb_err err;
    int rc = ctl_args(&conf, cmd, bus_setup_opts, LB_COUNTOF(bus_setup_opts), argc, argv);
    if (rc >= 0)
        return rc;

    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    o.max_age_ms = conf.max_age_ms;
    o.duplicates_ms = conf.duplicates_ms;
    o.ack_wait_ms = conf.ack_wait_ms;
    o.max_deliver = conf.max_deliver;
    o.max_ack_pending = conf.max_ack_pending;
    if (ctl_nats_open(&nc, &js, &conf.conn, &err) != LB_OK ||
        bus_topology_apply(js, &o, report, NULL, &err) != LB_OK)
        rc = ctl_fail(cmd, &err);
    else
        rc = CTL_EXIT_OK;
    ctl_nats_close(nc, js);
    return rc;
}
