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

/* Seeds the id generator (id_init) and connects with LAYBY_NATS_URL and
 * LAYBY_CTL_NATS_USER/PASSWORD. */
lb_status bench_open(bus **out, lb_err *err);

typedef struct bench_lat {
    int64_t *us;
    size_t n, cap;
} bench_lat;

void bench_lat_add(bench_lat *l, int64_t us);
/* p in [0,100]; sorts the samples. */
double bench_lat_pct_ms(bench_lat *l, double p);
void bench_lat_free(bench_lat *l);

/* Sleeps until item i of a run paced at rate per second, started at t0_us, is
 * due (rate 0: returns at once). */
void bench_pace(int64_t t0_us, int64_t i, int64_t rate);

/* Waits until *seen reaches count (or timeout_s passed), then prints one result
 * line "<name> count= seen= rate_target= elapsed_s= per_s= p50_ms= p99_ms=<extra>"
 * from the per-item send and receive times (0 = never received). Returns seen. */
long bench_finish(const char *name, int64_t count, int64_t rate, int64_t t0_us,
                  const int64_t *sent_us, const int64_t *recv_us, const _Atomic long *seen,
                  int64_t timeout_s, const char *extra);

/* Flush stalls of a disk, [start, end] from a run's start, in time order and
 * not overlapping (bench_fsync.c measures them one flush at a time). */
typedef struct bench_stall {
    int64_t start_us, end_us;
} bench_stall;
typedef struct bench_stalls {
    bench_stall *v;
    size_t n, cap;
} bench_stalls;

int bench_stalls_add(bench_stalls *s, int64_t start_us, int64_t end_us); /* -1: no memory */
void bench_stalls_free(bench_stalls *s);
/* The end of the stall that holds instant t, or t when none does. */
int64_t bench_stalls_end_at(const bench_stalls *s, int64_t t_us);
/* The latency stalls alone give a flow of k synchronous commits spread evenly
 * over base_us, started at t0: a commit issued inside a stall waits until it
 * ends and moves the later ones; everything else is free (a floor). */
int64_t bench_stalls_flow_us(const bench_stalls *s, int64_t t0_us, int64_t k, int64_t base_us);

/* Parses "--name value" pairs into int64 settings; unknown flags are an error. */
typedef struct bench_flag {
    const char *name;
    int64_t *value;
    const char *help;
} bench_flag;
int bench_flags(int argc, char **argv, const bench_flag *flags, size_t n);

/* CPU seconds (utime + stime from /proc/<pid>/stat) of the stack's
 * processes, summed per name (layby-* without the prefix, postgres,
 * nats-server, bench_checkout), and PostgreSQL's commits (pg_stat_database)
 * and WAL syncs (pg_stat_wal) when LAYBY_PG_ADMIN_URL is set: two reads
 * around a run say which process was busy and what each unit of work cost. */
#define BENCH_PROCS_MAX 32
typedef struct bench_usage {
    char name[BENCH_PROCS_MAX][24];
    double cpu_s[BENCH_PROCS_MAX];
    size_t n;
    long long commits, wal_syncs;
} bench_usage;
void bench_usage_read(bench_usage *u);
/* One line "checkout_cpu <label> seconds=S <name>=<cores> ... [checkouts=N
 * stack_ms_per_checkout= commits_per_checkout= wal_syncs_per_checkout=]": cores
 * used between a and b over secs, and per unit of work when units > 0. */
void bench_usage_print(const char *label, const bench_usage *a, const bench_usage *b, double secs,
                       long units);
/* The stack's CPU between a and b in ms per unit of work: every process read
 * but the load generator (bench_checkout). 0 when units <= 0. */
double bench_usage_stack_ms(const bench_usage *a, const bench_usage *b, long units);

#endif
