/* bench_floor_test.c - the disk baseline's floor model (bench/bench_common.c,
 * used by bench_fsync): which stall holds an instant, and how much a flow of
 * k synchronous commits waits for the stalls it meets. */
#include <criterion/criterion.h>

#include "bench_common.h"

static bench_stalls
two_stalls(void)
{
    bench_stalls s = { 0 };
    cr_assert_eq(bench_stalls_add(&s, 1000, 3000), 0);   /* 2 ms stall at 1 ms */
    cr_assert_eq(bench_stalls_add(&s, 10000, 60000), 0); /* 50 ms stall at 10 ms */
    return s;
}

Test(bench_floor, an_instant_inside_a_stall_waits_for_its_end)
{
    bench_stalls s = two_stalls();
    cr_expect_eq(bench_stalls_end_at(&s, 0), 0);
    cr_expect_eq(bench_stalls_end_at(&s, 1000), 3000); /* its first instant */
    cr_expect_eq(bench_stalls_end_at(&s, 2999), 3000);
    cr_expect_eq(bench_stalls_end_at(&s, 3000), 3000); /* over: no wait */
    cr_expect_eq(bench_stalls_end_at(&s, 5000), 5000);
    cr_expect_eq(bench_stalls_end_at(&s, 30000), 60000);
    cr_expect_eq(bench_stalls_end_at(&s, 70000), 70000);
    bench_stalls_free(&s);
    cr_expect_eq(bench_stalls_end_at(&s, 1500), 1500); /* no stalls at all */
}

Test(bench_floor, a_flow_waits_only_for_the_stalls_its_commits_meet)
{
    bench_stalls s = two_stalls();
    /* 4 commits over 8 ms from t0: at t0 + 2, 4, 6, 8 ms. */
    cr_expect_eq(bench_stalls_flow_us(&s, 61000, 4, 8000), 8000, "no stall in [63, 69] ms");
    /* From 0: the first commit (2 ms) is in the 1-3 ms stall, waits 1 ms, and
     * moves the others to 5, 7, 9 ms: clear of the second stall. */
    cr_expect_eq(bench_stalls_flow_us(&s, 0, 4, 8000), 9000);
    /* From 3 ms: commits at 5, 7, 9 and 11 ms; the last meets the 50 ms stall. */
    cr_expect_eq(bench_stalls_flow_us(&s, 3000, 4, 8000), 8000 + 49000);
    /* A stall moves every later commit: from 7 ms the second one (11 ms)
     * waits to 60 ms and the next two follow at 62 and 64 ms. */
    cr_expect_eq(bench_stalls_flow_us(&s, 7000, 4, 8000), 57000);
    /* One commit over no time: only a start inside a stall waits. */
    cr_expect_eq(bench_stalls_flow_us(&s, 59000, 1, 0), 1000);
    bench_stalls_free(&s);
}
