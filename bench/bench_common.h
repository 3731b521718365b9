/* bench_common.h - what the load generators in bench/ share: connecting as the
 * admin NATS user from the stack's environment, percentiles, and printing one
 * result line a run ("name key=value ...") that bench/run.sh collects.
 *
 * Ownership: bench_open() returns a bus freed with bus_close().
 * Threads:   bench_lat_* is not thread-safe; each generator owns its samples.
 */
#ifndef LAYBY_BENCH_BENCH_COMMON_H
#define LAYBY_BENCH_BENCH_COMMON_H

#include "engine/bus.h"

/* Connects with LAYBY_NATS_URL and LAYBY_CTL_NATS_USER/PASSWORD. */
lb_status bench_open(bus **out, lb_err *err);

typedef struct bench_lat {
    int64_t *us;
    size_t n, cap;
} bench_lat;

void bench_lat_add(bench_lat *l, int64_t us);
/* p in [0,100]; sorts the samples. */
double bench_lat_pct_ms(bench_lat *l, double p);
void bench_lat_free(bench_lat *l);

/* Parses "--name value" pairs into int64 settings; unknown flags are an error. */
typedef struct bench_flag {
    const char *name;
    int64_t *value;
    const char *help;
} bench_flag;
int bench_flags(int argc, char **argv, const bench_flag *flags, size_t n);

#endif
