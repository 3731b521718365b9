/* bench_common.c - see bench_common.h. */
#include "bench_common.h"

#include <dirent.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/id.h"

lb_status
bench_open(bus **out, lb_err *err)
{
    bus_opts o = BUS_OPTS_INIT;
    o.url = getenv("LAYBY_NATS_URL");
    o.user = getenv("LAYBY_CTL_NATS_USER");
    o.password = getenv("LAYBY_CTL_NATS_PASSWORD");
    o.name = "layby-bench";
    o.max_pending = 65536;
    if (o.url == NULL)
        return lb_err_set(err, LB_ERR_CONFIG,
                          "LAYBY_NATS_URL is not set (eval \"$(scripts/dev env)\")");
    lb_status st = id_init(err); /* every bench names its messages */
    return st != LB_OK ? st : bus_open(out, &o, err);
}

void
bench_lat_add(bench_lat *l, int64_t us)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        int64_t *p = realloc(l->us, cap * sizeof *p);
        if (p == NULL)
            return;
        l->us = p;
        l->cap = cap;
    }
    l->us[l->n++] = us;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

double
bench_lat_pct_ms(bench_lat *l, double p)
{
    if (l->n == 0)
        return 0;
    qsort(l->us, l->n, sizeof *l->us, cmp_i64);
    size_t i = (size_t)(p / 100.0 * (double)(l->n - 1) + 0.5);
    return (double)l->us[i] / 1000.0;
}

void
bench_lat_free(bench_lat *l)
{
    free(l->us);
    memset(l, 0, sizeof *l);
}

int
bench_stalls_add(bench_stalls *s, int64_t start_us, int64_t end_us)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        bench_stall *nv = realloc(s->v, cap * sizeof *nv);
        if (nv == NULL)
            return -1;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = (bench_stall){ start_us, end_us };
    return 0;
}

void
bench_stalls_free(bench_stalls *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

int64_t
bench_stalls_end_at(const bench_stalls *s, int64_t t)
{
    size_t lo = 0, hi = s->n; /* the first stall ending after t */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->v[mid].end_us <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo < s->n && s->v[lo].start_us <= t) ? s->v[lo].end_us : t;
}

int64_t
bench_stalls_flow_us(const bench_stalls *s, int64_t t0, int64_t k, int64_t base_us)
{
    int64_t shift = 0;
    for (int64_t i = 1; i <= k; i++) {
        int64_t at = t0 + base_us * i / k + shift;
        shift += bench_stalls_end_at(s, at) - at;
    }
    return base_us + shift;
}

int
bench_flags(int argc, char **argv, const bench_flag *flags, size_t n)
{
    for (int i = 1; i < argc; i++) {
        bool found = false;
        for (size_t k = 0; k < n && !found; k++) {
            if (strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i] + 2, flags[k].name) == 0 &&
                i + 1 < argc) {
                *flags[k].value = atoll(argv[++i]);
                found = true;
            }
        }
        if (!found) {
            fprintf(stderr, "usage: %s", argv[0]);
            for (size_t k = 0; k < n; k++)
                fprintf(stderr, " [--%s N (%lld): %s]", flags[k].name, (long long)*flags[k].value,
                        flags[k].help);
            fprintf(stderr, "\n");
            return -1;
        }
    }
    return 0;
}

void
bench_pace(int64_t t0_us, int64_t i, int64_t rate)
{
    if (rate <= 0)
        return;
    int64_t due = t0_us + i * 1000000 / rate, now;
    while ((now = lb_mono_us()) < due) {
        struct timespec ts = { 0, (due - now) * 1000 };
        nanosleep(&ts, NULL);
    }
}

long
bench_finish(const char *name, int64_t count, int64_t rate, int64_t t0_us, const int64_t *sent_us,
             const int64_t *recv_us, const _Atomic long *seen, int64_t timeout_s, const char *extra)
{
    while (*seen < count && lb_mono_us() - t0_us < timeout_s * 1000000) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    int64_t last = 0;
    bench_lat lat = { 0 };
    for (int64_t i = 0; i < count; i++) {
        if (recv_us[i] == 0)
            continue;
        if (recv_us[i] > last)
            last = recv_us[i];
        bench_lat_add(&lat, recv_us[i] - sent_us[i]);
    }
    /* LAYBY_BENCH_SERIES=<file>: one line per message, "start_ms latency_ms",
     * to see whether a tail is a stall (a cluster in time) or spread out. */
    const char *series = getenv("LAYBY_BENCH_SERIES");
    FILE *sf = series != NULL ? fopen(series, "w") : NULL;
    for (int64_t i = 0; sf != NULL && i < count; i++)
        if (recv_us[i] != 0)
            fprintf(sf, "%.3f %.3f\n", (double)(sent_us[i] - t0_us) / 1e3,
                    (double)(recv_us[i] - sent_us[i]) / 1e3);
    if (sf != NULL)
        fclose(sf);
    long n = *seen;
    double secs = (double)(last - t0_us) / 1e6;
    printf("%s count=%lld seen=%ld rate_target=%lld elapsed_s=%.3f per_s=%.0f p50_ms=%.2f "
           "p99_ms=%.2f%s\n",
           name, (long long)count, n, (long long)rate, secs, secs > 0 ? (double)n / secs : 0,
           bench_lat_pct_ms(&lat, 50), bench_lat_pct_ms(&lat, 99), extra ? extra : "");
    bench_lat_free(&lat);
    return n;
}

/* CPU seconds (utime + stime) of the stack's processes, summed per name
 * (layby-*, postgres, nats-server, this bench). */
void
bench_usage_read(bench_usage *u)
{
    memset(u, 0, sizeof *u);
    DIR *d = opendir("/proc");
    long hz = sysconf(_SC_CLK_TCK);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], text[1024];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[len] = '\0';
        char *open = strchr(text, '('), *close = strrchr(text, ')');
        if (open == NULL || close == NULL)
            continue;
        char comm[24];
        snprintf(comm, sizeof comm, "%.*s", (int)(close - open - 1), open + 1);
        if (strncmp(comm, "layby-", 6) != 0 && strcmp(comm, "postgres") != 0 &&
            strcmp(comm, "nats-server") != 0 && strcmp(comm, "bench_checkout") != 0)
            continue;
        unsigned long ut = 0, st = 0;
        /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt
         * cmajflt utime stime (fields 3..15) */
        if (sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
            continue;
        const char *key = strncmp(comm, "layby-", 6) == 0 ? comm + 6 : comm;
        size_t k = 0;
        while (k < u->n && strcmp(u->name[k], key) != 0)
            k++;
        if (k == u->n) {
            if (u->n == BENCH_PROCS_MAX)
                continue;
            snprintf(u->name[u->n++], sizeof u->name[0], "%s", key);
        }
        u->cpu_s[k] += (double)(ut + st) / (double)hz;
    }
    if (d != NULL)
        closedir(d);
    const char *url = getenv("LAYBY_PG_ADMIN_URL");
    PGconn *pg = url != NULL ? PQconnectdb(url) : NULL;
    if (pg != NULL && PQstatus(pg) == CONNECTION_OK) {
        PGresult *r = PQexec(pg, "SELECT (SELECT sum(xact_commit) FROM pg_stat_database), "
                                 "(SELECT wal_sync FROM pg_stat_wal)");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            u->commits = atoll(PQgetvalue(r, 0, 0));
            u->wal_syncs = atoll(PQgetvalue(r, 0, 1));
        }
        PQclear(r);
    }
    PQfinish(pg);
}

static double
usage_before(const bench_usage *a, const char *name)
{
    for (size_t k = 0; k < a->n; k++)
        if (strcmp(a->name[k], name) == 0)
            return a->cpu_s[k];
    return 0;
}

double
bench_usage_stack_ms(const bench_usage *a, const bench_usage *b, long units)
{
    if (units <= 0)
        return 0;
    double s = 0;
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->name[i], "bench_checkout") != 0)
            s += b->cpu_s[i] - usage_before(a, b->name[i]);
    return s * 1000.0 / (double)units;
}

void
bench_usage_print(const char *label, const bench_usage *a, const bench_usage *b, double secs,
                  long units)
{
    printf("checkout_cpu %s seconds=%.1f", label, secs);
    for (size_t i = 0; i < b->n; i++)
        printf(" %s=%.2f", b->name[i], (b->cpu_s[i] - usage_before(a, b->name[i])) / secs);
    if (units > 0)
        printf(" checkouts=%ld stack_ms_per_checkout=%.2f", units,
               bench_usage_stack_ms(a, b, units));
    if (units > 0 && b->commits > 0)
        printf(" commits_per_checkout=%.1f wal_syncs_per_checkout=%.2f",
               (double)(b->commits - a->commits) / (double)units,
               (double)(b->wal_syncs - a->wal_syncs) / (double)units);
    printf("\n");
    fflush(stdout);
}
