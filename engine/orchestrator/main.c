/* main.c - layby-orchestrator: checks the saga type tables, then the svc
 * runtime runs saga_orch_def (saga_orch_handlers.c). */
#include <stdio.h>

#include "saga_orch.h"

int
main(int argc, char **argv)
{
    lb_err err;
    if (saga_orch_init(&err) != LB_OK) {
        fprintf(stderr, "layby-orchestrator: saga types: %s\n", err.msg);
        return 1;
    }
    return svc_main(argc, argv, &saga_orch_def,
                    "The saga orchestrator: runs sagas from starts and participant events "
                    "(LAYBY_EVT, layby.cmd.saga.>), with durable timers.");
}
