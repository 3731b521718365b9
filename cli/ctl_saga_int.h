/* ctl_saga_int.h - what the saga commands' files share (ctl_saga.c: list and
 * show; ctl_saga_ops.c: operator commands and replay; ctl_check.c: the
 * replay check): reading schema saga and re-deciding a saga's log, which
 * live in engine/orchestrator/saga_view.h since the orchestrator answers the
 * console's admin reads with the same code.
 *
 * Ownership: PGresults are the caller's (PQclear).
 * Threads:   single-threaded tool.
 */
#ifndef LAYBY_CLI_CTL_SAGA_INT_H
#define LAYBY_CLI_CTL_SAGA_INT_H

#include "ctl.h"
#include "saga.h"
#include "saga_view.h"

#endif
