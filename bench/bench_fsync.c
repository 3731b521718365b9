/* bench_fsync.c - the disk baseline: what a durable commit costs on this
 * machine's disk, and the floor its flush stalls put under a flow's p99.
 *
 * Writes 8 kB into a preallocated 16 MB file (a WAL segment's shape) and
 * fdatasync()s it, --rate times a second for --seconds, in the folder named
 * by LAYBY_BENCH_FSYNC_DIR (default var/, where the stack keeps PostgreSQL's
 * and JetStream's files). Every flush slower than STALL_US is kept as a stall
 * [start, end].
 *
 * The floor: a flow of --commits synchronous commits spread over --base-ms
 * (a saga of the benchmark: 4 orchestrator commits) started at a random
 * instant. A commit issued inside a stall waits until it ends; later commits
 * move by that wait. Everything but those waits is free, so the p99 printed
 * is what any engine committing that often in sequence would get at best on
 * this disk in this minute; it says nothing about layby's own code.
 *
 * Prints one line: "fsync per_s= p50_ms= p99_ms= max_ms= stalled_pct=
 * stalls_20ms_per_min= floor_p50_ms= floor_p99_ms=". */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"

#define BLOCK      8192
#define FILE_BYTES (16 * 1024 * 1024)
#define STALL_US   2000 /* a flush this slow is a stall (idle p99 is ~0.2 ms) */
#define FLOWS      200000

int
main(int argc, char **argv)
{
    int64_t seconds = 20, rate = 500, commits = 4, base_ms = 6;
    const bench_flag flags[] = {
        { "seconds", &seconds, "how long to flush" },
        { "rate", &rate, "flushes per second (0 = back to back)" },
        { "commits", &commits, "synchronous commits in sequence per flow (the floor)" },
        { "base-ms", &base_ms, "a flow's latency without stalls (the floor)" },
    };
    if (bench_flags(argc, argv, flags, LB_COUNTOF(flags)) != 0)
        return 2;
    if (seconds < 1 || commits < 1 || base_ms < 0) {
        fprintf(stderr, "bench: --seconds and --commits must be >= 1, --base-ms >= 0\n");
        return 2;
    }
    const char *dir = getenv("LAYBY_BENCH_FSYNC_DIR") ? getenv("LAYBY_BENCH_FSYNC_DIR") : "var";
    char path[4096];
    snprintf(path, sizeof path, "%s/bench_fsync.%ld", dir, (long)getpid());
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0) {
        fprintf(stderr, "bench: cannot create %s: %m\n", path);
        return 1;
    }
    static char block[BLOCK];
    memset(block, 'w', sizeof block);
    for (off_t off = 0; off < FILE_BYTES; off += BLOCK)
        if (pwrite(fd, block, BLOCK, off) != BLOCK) {
            fprintf(stderr, "bench: cannot fill %s: %m\n", path);
            goto fail;
        }
    if (fdatasync(fd) != 0) {
        fprintf(stderr, "bench: cannot flush %s: %m\n", path);
        goto fail;
    }

    bench_stalls st = { 0 };
    bench_lat lat = { 0 };
    int64_t stalled_us = 0, over20 = 0, n = 0;
    int64_t t0 = lb_mono_us(), end = t0 + seconds * 1000000;
    for (off_t off = 0; lb_mono_us() < end; off = (off + BLOCK) % FILE_BYTES) {
        bench_pace(t0, n, rate);
        int64_t a = lb_mono_us();
        if (pwrite(fd, block, BLOCK, off) != BLOCK || fdatasync(fd) != 0) {
            fprintf(stderr, "bench: write or flush failed: %m\n");
            goto fail;
        }
        int64_t b = lb_mono_us();
        n++;
        bench_lat_add(&lat, b - a);
        if (b - a >= STALL_US) {
            stalled_us += b - a;
            over20 += b - a >= 20000;
            if (bench_stalls_add(&st, a - t0, b - t0) != 0) {
                fprintf(stderr, "bench: out of memory\n");
                goto fail;
            }
        }
    }
    close(fd);
    unlink(path);
    double secs = (double)(lb_mono_us() - t0) / 1e6;

    /* Flows start evenly over the run (not in its last base + 1 s, so their
     * commits fall inside what was measured). */
    bench_lat floor = { 0 };
    int64_t base_us = base_ms * 1000, span = seconds * 1000000 - base_us - 1000000;
    for (int64_t i = 0; span > 0 && i < FLOWS; i++)
        bench_lat_add(&floor, bench_stalls_flow_us(&st, span * i / FLOWS, commits, base_us));
    printf("fsync per_s=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.1f stalled_pct=%.2f "
           "stalls_20ms_per_min=%.1f floor_commits=%lld floor_p50_ms=%.2f floor_p99_ms=%.2f\n",
           (double)n / secs, bench_lat_pct_ms(&lat, 50), bench_lat_pct_ms(&lat, 99),
           bench_lat_pct_ms(&lat, 100), 100.0 * (double)stalled_us / (secs * 1e6),
           (double)over20 * 60.0 / secs, (long long)commits, bench_lat_pct_ms(&floor, 50),
           bench_lat_pct_ms(&floor, 99));
    bench_lat_free(&lat);
    bench_lat_free(&floor);
    bench_stalls_free(&st);
    return 0;
fail:
    close(fd);
    unlink(path);
    return 1;
}
