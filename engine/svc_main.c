/* svc_main.c - the main() every service daemon shares, so a daemon's own
 * main.c is one line of wiring and all of them parse, log and stop alike. */
#include <stdio.h>
#include <stdlib.h>

#include "cfg.h"
#include "fault.h"
#include "id.h"
#include "log.h"
#include "svc.h"

int
svc_main(int argc, char **argv, const svc_def *def, const char *about)
{
    cfg_opt opts[32];
    size_t n = svc_cfg_opts(opts, LB_COUNTOF(opts), def->name, 0);
    svc_cfg conf = { 0 };
    bool help = false;
    lb_err err;
    char prog[64];
    snprintf(prog, sizeof prog, "layby-%s", def->name);
    const cfg_group groups[] = { { &conf, opts, n }, def->opts };
    size_t ng = def->opts.n > 0 ? 2 : 1;
    if (cfg_load_groups(groups, ng, argc, argv, &help, &err) != LB_OK) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 2;
    }
    if (help) {
        cfg_help_write_groups(stdout, prog, about, groups, ng);
        return 0;
    }
    log_level lvl;
    if (log_level_parse(&lvl, conf.log_level, &err) != LB_OK) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 2;
    }
    log_init(def->name, conf.instance, lvl);
    fault_init();
    svc *s = NULL;
    if (id_init(&err) != LB_OK || svc_new(&s, def, &conf, &err) != LB_OK) {
        log_error(NULL, "svc.start_failed", "cannot start", LOG_ERR(&err));
        return 1;
    }
    svc_signals_install(s);
    lb_status st = svc_run(s, &err);
    if (st != LB_OK)
        log_error(NULL, "svc.stopped", "stopped with an error", LOG_ERR(&err));
    else
        log_info(NULL, "svc.stopped", "stopped");
    svc_free(s);
    nats_Close();
    return st == LB_OK ? 0 : 1;
}
