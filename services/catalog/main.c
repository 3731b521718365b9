/* main.c - layby-catalog: wiring only. Settings, logs, then the svc runtime
 * runs catalog_def (catalog_handlers.c) until SIGTERM. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "catalog.h"
#include "engine/cfg.h"
#include "engine/id.h"
#include "engine/log.h"

typedef struct catalog_cfg {
    svc_cfg svc;
} catalog_cfg;

int
main(int argc, char **argv)
{
    cfg_opt opts[32];
    size_t n = svc_cfg_opts(opts, LB_COUNTOF(opts), "catalog", offsetof(catalog_cfg, svc));
    catalog_cfg conf = { 0 };
    bool help = false;
    lb_err err;
    if (cfg_load(&conf, opts, n, argc, argv, &help, &err) != LB_OK) {
        fprintf(stderr, "layby-catalog: %s\n", err.msg);
        return 2;
    }
    if (help) {
        cfg_help_write(stdout, "layby-catalog",
                       "The catalog service: products and stock (commands on LAYBY_CMD, "
                       "queries on layby.qry.catalog.>).",
                       opts, n);
        return 0;
    }
    log_level lvl;
    if (log_level_parse(&lvl, conf.svc.log_level, &err) != LB_OK) {
        fprintf(stderr, "layby-catalog: %s\n", err.msg);
        return 2;
    }
    log_init("catalog", conf.svc.instance, lvl);
    if (id_init(&err) != LB_OK) {
        log_error(NULL, "catalog.start_failed", "cannot start", LOG_ERR(&err));
        return 1;
    }
    svc *s = NULL;
    if (svc_new(&s, &catalog_def, &conf.svc, &err) != LB_OK) {
        log_error(NULL, "catalog.start_failed", "cannot start", LOG_ERR(&err));
        return 1;
    }
    svc_signals_install(s);
    lb_status st = svc_run(s, &err);
    if (st != LB_OK)
        log_error(NULL, "catalog.stopped", "stopped with an error", LOG_ERR(&err));
    svc_free(s);
    nats_Close();
    return st == LB_OK ? 0 : 1;
}
