/* bus_topology_test.c - the subject filter rule the services check their
 * durables against (tokens, `*`, a last `>`), the table's own consistency
 * (every row of a daemon's svc_consumer exists, nothing retired is still a
 * row), and svc_new() refusing a handler that no durable delivers. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/bus_topology.h"
#include "engine/svc.h"

typedef struct match_case {
    const char *filter, *subject;
    bool match;
} match_case;

/* clang-format off */
static const match_case cases[] = {
    { "layby.evt.>",          "layby.evt.product.created",  true  },
    { "layby.evt.sagatest.>", "layby.evt.sagatest.done",    true  },
    { "layby.evt.sagatest.>", "layby.evt.saga.completed",   false },
    { "layby.evt.sagatest.>", "layby.evt.sagatest",         false }, /* > needs a token */
    { "layby.evt.sagatest.>", "layby.evt.sagatestx.done",   false }, /* whole tokens */
    { "layby.evt.*.done",     "layby.evt.sagatest.done",    true  },
    { "layby.evt.*.done",     "layby.evt.sagatest.failed",  false },
    { "layby.evt.*",          "layby.evt.sagatest.done",    false }, /* * is one token */
    { "layby.cmd.saga.>",     "layby.cmd.saga.start.x",     true  },
    { "layby.cmd.saga.retry", "layby.cmd.saga.retry",       true  },
    { "layby.cmd.saga.retry", "layby.cmd.saga.retryx",      false },
    { "layby.cmd.saga.retry", "layby.cmd.saga",             false },
    { "layby.cmd.saga",       "layby.cmd.saga.retry",       false },
    { ">",                    "anything.at.all",            true  },
    { "layby..x",             "layby..x",                   false }, /* empty tokens never match */
    { "layby.x",              "",                           false },
};
/* clang-format on */

Test(bus_topology, filters_match_as_the_server_does)
{
    for (size_t i = 0; i < LB_COUNTOF(cases); i++)
        cr_expect_eq(bus_topology_filter_matches(cases[i].filter, cases[i].subject), cases[i].match,
                     "%s vs %s: want %d", cases[i].filter, cases[i].subject, cases[i].match);
}

Test(bus_topology, the_orchestrator_reads_no_event_of_its_own_or_of_the_catalog)
{
    static const char *const not_for_it[] = { "layby.evt.saga.running", "layby.evt.saga.completed",
                                              "layby.evt.product.created" };
    for (size_t i = 0; i < bus_topology_n_consumers; i++) {
        const bus_topology_consumer *c = &bus_topology_consumers[i];
        if (strcmp(c->reader, "layby-orchestrator") != 0)
            continue;
        for (size_t k = 0; k < LB_COUNTOF(not_for_it); k++)
            cr_expect(!bus_topology_filter_matches(c->filter, not_for_it[k]), "%s/%s reads %s",
                      c->stream, c->durable, not_for_it[k]);
    }
}

Test(bus_topology, retired_durables_are_no_longer_rows)
{
    cr_assert_gt(bus_topology_n_retired, 0);
    for (size_t i = 0; i < bus_topology_n_retired; i++)
        cr_expect_null(bus_topology_consumer_find(bus_topology_retired[i].stream,
                                                  bus_topology_retired[i].durable),
                       "%s/%s is both retired and a row", bus_topology_retired[i].stream,
                       bus_topology_retired[i].durable);
    cr_expect_not_null(bus_topology_consumer_find("LAYBY_CMD", "catalog"));
    cr_expect_null(bus_topology_consumer_find("LAYBY_EVT", "catalog"));
}

static lb_status
noop_handler(svc_batch *b, svc_item *items, size_t n, lb_err *err)
{
    (void)b;
    (void)items;
    (void)n;
    (void)err;
    return LB_OK;
}

Test(bus_topology, a_service_whose_durables_miss_a_handler_does_not_start)
{
    static const svc_consumer consumers[] = { { "LAYBY_EVT", "orchestrator-sagatest" } };
    static const svc_handler handlers[] = {
        { "layby.evt.sagatest.done", NULL, noop_handler, NULL },
        { "layby.evt.product.created", NULL, noop_handler, NULL },
    };
    svc_def def = {
        .name = "orchestrator", .consumers = consumers, .n_consumers = 1, .handlers = handlers
    };
    svc_cfg cfg = { 0 };
    svc *s = NULL;
    lb_err err;

    def.n_handlers = 1; /* covered by layby.evt.sagatest.> */
    cr_assert_eq(svc_new(&s, &def, &cfg, &err), LB_OK, "%s", err.msg);
    svc_free(s);
    s = NULL;

    def.n_handlers = 2;
    cr_assert_eq(svc_new(&s, &def, &cfg, &err), LB_ERR_CONFIG);
    cr_expect_null(s);
    cr_expect(strstr(err.msg, "layby.evt.product.created") != NULL, "%s", err.msg);
}

Test(bus_topology, a_durable_missing_from_the_service_table_reads_nothing)
{
    static const svc_consumer unknown[] = { { "LAYBY_CMD", "nobody" } };
    static const svc_handler handlers[] = { { "layby.cmd.nobody.x", NULL, noop_handler, NULL } };
    svc_def def = { .name = "nobody", .consumers = unknown, .n_consumers = 1 };
    svc_cfg cfg = { 0 };
    svc *s = NULL;
    lb_err err;

    /* not even with no handler at all: the durable itself is refused */
    cr_assert_eq(svc_new(&s, &def, &cfg, &err), LB_ERR_CONFIG);
    cr_expect_null(s);
    cr_expect(strstr(err.msg, "LAYBY_CMD/nobody") != NULL, "%s", err.msg);

    def.handlers = handlers;
    def.n_handlers = 1;
    cr_assert_eq(svc_new(&s, &def, &cfg, &err), LB_ERR_CONFIG);
    cr_expect_null(s);
}

Test(bus_topology, a_service_cannot_read_another_services_durable)
{
    static const svc_consumer theirs[] = { { "LAYBY_CMD", "catalog" } };
    static const svc_handler handlers[] = { { "layby.cmd.catalog.create_product", NULL,
                                              noop_handler, NULL } };
    svc_def def = { .name = "member",
                    .consumers = theirs,
                    .n_consumers = 1,
                    .handlers = handlers,
                    .n_handlers = 1 };
    svc_cfg cfg = { 0 };
    svc *s = NULL;
    lb_err err;

    cr_assert_eq(svc_new(&s, &def, &cfg, &err), LB_ERR_CONFIG);
    cr_expect_null(s);
    cr_expect(strstr(err.msg, "layby-catalog") != NULL, "%s", err.msg);
    def.name = "catalog";
    cr_assert_eq(svc_new(&s, &def, &cfg, &err), LB_OK, "%s", err.msg);
    svc_free(s);
}

/* The table's durables are consistent with the streams: each reads a stream
 * of the topology, within that stream's subjects. */
Test(bus_topology, every_durable_reads_within_its_stream)
{
    for (size_t i = 0; i < bus_topology_n_consumers; i++) {
        const bus_topology_consumer *c = &bus_topology_consumers[i];
        const bus_topology_stream *stream = NULL;
        for (size_t k = 0; k < bus_topology_n_streams; k++)
            if (strcmp(bus_topology_streams[k].name, c->stream) == 0)
                stream = &bus_topology_streams[k];
        cr_assert_not_null(stream, "durable %s on unknown stream %s", c->durable, c->stream);
        /* a filter inside the stream: its first tokens are the stream's prefix */
        size_t prefix = strlen(stream->subject) - 1; /* "layby.cmd." of "layby.cmd.>" */
        cr_expect(strncmp(c->filter, stream->subject, prefix) == 0, "%s/%s reads %s outside %s",
                  c->stream, c->durable, c->filter, stream->subject);
    }
}
