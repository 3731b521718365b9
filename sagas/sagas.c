/* sagas.c - the list of the shop's saga types, and how their durations are
 * read from the environment.
 *
 * The orchestrator registers every type listed here: its start subject
 * (layby.cmd.saga.start.<name>), the durables and handler rows of the events
 * it waits for, are derived from the type's table (saga_orch_handlers.c), so
 * a new saga type is its file plus its line below. */
#include "sagas.h"

#include "order.h"

#include <stdlib.h>
#include <string.h>

#include "engine/cfg.h"

/* clang-format off */
const saga_type *const sagas_all[] = {
    &saga_order_place_v1, /* until no order placed before v2 is unfinished */
    &saga_order_place_v2, /* until no order placed before v3 is unfinished */
    &saga_order_place_v3, /* until no order placed before v4 is unfinished */
    &saga_order_place_v4, /* until no order placed before v5 is unfinished */
    &saga_order_place_v5,
    &saga_order_pay_v1, /* until no pay saga started before v2 is unfinished */
    &saga_order_pay_v2, /* until no pay saga started before v3 is unfinished */
    &saga_order_pay_v3,
    NULL,
};
/* clang-format on */
const size_t sagas_n_all = LB_COUNTOF(sagas_all) - 1;

int64_t
sagas_duration_ms(const char *env, int64_t normal_ms, int64_t fast_ms)
{
    const char *v = env != NULL ? getenv(env) : NULL;
    int64_t ms = 0;
    if (v != NULL && v[0] != '\0' && cfg_duration_parse(&ms, v, NULL) == LB_OK && ms > 0)
        return ms;
    const char *fast = getenv("LAYBY_FAST");
    return (fast != NULL && strcmp(fast, "1") == 0) ? fast_ms : normal_ms;
}
