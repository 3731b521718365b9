/* svc_table.h - the daemons of the service table (etc/services.tsv), compiled
 * in: gen/svc_table.c is generated from the table at build time by
 * scripts/lib/services.awk, together with the durables of the bus topology
 * (bus_topology_consumers, engine/bus_topology.h). Test builds
 * (LAYBY_TEST_HOOKS) add the rows of tests/support/services-test.tsv.
 *
 * Ownership: static tables.
 * Threads:   read-only.
 */
#ifndef LAYBY_ENGINE_SVC_TABLE_H
#define LAYBY_ENGINE_SVC_TABLE_H

#include <stddef.h>

typedef struct svc_table_daemon {
    const char *binary;   /* layby-catalog */
    const char *port_env; /* LAYBY_CATALOG_METRICS_PORT: where /healthz answers */
    int port_default;     /* 9101 (scripts/dev; the test harness draws free ports) */
} svc_table_daemon;

/* Every daemon with a port, in start order. */
extern const svc_table_daemon svc_table_daemons[];
extern const size_t svc_table_n_daemons;

typedef struct svc_table_schema {
    const char *schema;  /* catalog: the schema and the role owning it */
    const char *url_env; /* LAYBY_CATALOG_DATABASE_URL: where its service connects, so
                          * the PostgreSQL cluster holding it (OPERATIONS §6) */
} svc_table_schema;

/* Every service's schema, in start order. */
extern const svc_table_schema svc_table_schemas[];
extern const size_t svc_table_n_schemas;

#endif
