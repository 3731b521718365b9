/* cfg.h - configuration from flags and environment variables, declared as a table.
 *
 * Each daemon lists its settings once (cfg_opt rows); the same rows parse
 * `--flag value` / `--flag=value`, read the environment, apply defaults,
 * validate ranges and generate `--help`. A flag beats the environment, which
 * beats the default. `env` may list fallbacks: "LAYBY_CATALOG_DATABASE_URL|LAYBY_DATABASE_URL".
 * Durations accept "250ms", "30s", "5m", "2h", "7d" or plain milliseconds.
 *
 * Ownership: string values are borrowed from argv, environ or the defaults,
 *            which outlive main(); nothing is allocated.
 * Threads:   call from main() before starting threads (getenv).
 */
#ifndef LAYBY_ENGINE_CFG_H
#define LAYBY_ENGINE_CFG_H

#include <stdio.h>

#include "lb.h"

typedef enum cfg_kind {
    CFG_STR,  /* const char * */
    CFG_INT,  /* int64_t, range-checked */
    CFG_BOOL, /* bool: true|false|1|0|yes|no */
    CFG_MS    /* int64_t milliseconds, range-checked */
} cfg_kind;

typedef struct cfg_opt {
    const char *flag; /* "nats-url" for --nats-url */
    const char *env;  /* "LAYBY_NATS_URL", '|' separates fallbacks; NULL for flag only */
    cfg_kind kind;
    const char *def; /* default as text; NULL = required for CFG_STR, "" = optional */
    size_t offset;   /* where the value goes in the caller's struct */
    int64_t min, max;
    const char *help;
} cfg_opt;

/* Rows whose offsets point into one struct; a program may load several groups
 * at once (a service's common settings and its own). */
typedef struct cfg_group {
    void *conf;
    const cfg_opt *opts;
    size_t n;
} cfg_group;

/* Fills conf from argv and the environment. LB_ERR_CONFIG names the flag and
 * the bad value. When --help is given, *help is set and nothing else is checked. */
lb_status cfg_load(void *conf, const cfg_opt *opts, size_t n, int argc, char **argv, bool *help,
                   lb_err *err);
/* Same for several groups: a flag belongs to whichever group has its row. */
lb_status cfg_load_groups(const cfg_group *groups, size_t n_groups, int argc, char **argv,
                          bool *help, lb_err *err);
/* Writes the usage text generated from the table. */
void cfg_help_write(FILE *f, const char *prog, const char *about, const cfg_opt *opts, size_t n);
void cfg_help_write_groups(FILE *f, const char *prog, const char *about, const cfg_group *groups,
                           size_t n_groups);
/* Parses a duration ("30s") into milliseconds. */
lb_status cfg_duration_parse(int64_t *out_ms, const char *s, lb_err *err);

#endif
