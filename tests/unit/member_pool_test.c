/* member_pool_test.c - the Argon2id pool of issue 18 (services/member/member_pool.c):
 * it admits threads + queue jobs and refuses the next one at once, and its
 * threads hash at a priority that leaves the core to any other thread
 * (SCHED_IDLE by default), so a login storm does not slow the requests. */
#define _GNU_SOURCE /* sched_setaffinity, sched_getcpu */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "member.h"

static member_ctx ctx;
static const char PW[] = "pool test password";

static void
setup(void)
{
    cr_assert_geq(sodium_init(), 0);
    memset(&ctx, 0, sizeof ctx);
    member_app = &ctx;
    member_conf.argon_memlimit = MEMBER_ARGON_MEMLIMIT;
    member_conf.argon_opslimit = MEMBER_ARGON_OPSLIMIT;
}

static void
teardown(void)
{
    member_pool_free(ctx.pool);
    member_app = NULL;
}

TestSuite(member_pool, .init = setup, .fini = teardown, .timeout = 120);

static void
pool_start_in(size_t threads, size_t queue, const char *priority, const member_pool_cgroup *cg)
{
    lb_err err;
    cr_assert_eq(member_pool_new(&ctx.pool, threads, queue, priority, cg, &err), LB_OK, "%s",
                 err.msg);
}

static void
pool_start(size_t threads, size_t queue, const char *priority)
{
    pool_start_in(threads, queue, priority, NULL);
}

static int64_t
cpu_us(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
hash_cpu_us(int64_t passes)
{
    char h[crypto_pwhash_STRBYTES];
    int64_t t0 = cpu_us(CLOCK_THREAD_CPUTIME_ID);
    cr_assert_eq(crypto_pwhash_str_alg(h, PW, strlen(PW), (unsigned long long)passes,
                                       MEMBER_ARGON_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13),
                 0);
    return cpu_us(CLOCK_THREAD_CPUTIME_ID) - t0;
}

/* Argon2id passes (19 MiB) that take about target_us of CPU here and now;
 * the difference of two lengths leaves out the memory's first touch. */
static int64_t
passes_for(int64_t target_us)
{
    int64_t per_pass = (hash_cpu_us(6) - hash_cpu_us(2)) / 4;
    int64_t n = target_us / (per_pass > 1 ? per_pass : 1) + 1;
    return n < 2 ? 2 : n;
}

typedef struct hasher {
    pthread_t th;
    lb_status st;
    char out[crypto_pwhash_STRBYTES];
} hasher;

static void *
hash_one(void *arg)
{
    hasher *h = arg;
    lb_err err;
    h->st = member_pw_hash(h->out, PW, &err);
    return NULL;
}

static void
in_flight_wait(size_t n)
{
    const struct timespec ms = { .tv_nsec = 1000000 };
    for (int i = 0; i < 30000 && member_pool_in_flight(ctx.pool) < n; i++)
        nanosleep(&ms, NULL);
    cr_assert_eq(member_pool_in_flight(ctx.pool), n, "the pool never held %zu jobs", n);
}

Test(member_pool, hashes_and_verifies)
{
    pool_start(1, 0, "idle");
    char h[crypto_pwhash_STRBYTES];
    lb_err err;
    cr_assert_eq(member_pw_hash(h, PW, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(member_pw_verify(h, PW, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(member_pw_verify(h, "another password", &err), LB_ERR_CREDENTIALS);
    cr_assert_eq(member_pool_in_flight(ctx.pool), 0);
}

Test(member_pool, admits_threads_plus_queue_and_refuses_the_next_at_once)
{
    member_conf.argon_opslimit = passes_for(300000);
    pool_start(1, 1, "normal");
    hasher a = { 0 }, b = { 0 };
    pthread_create(&a.th, NULL, hash_one, &a);
    pthread_create(&b.th, NULL, hash_one, &b);
    in_flight_wait(2); /* one hashing, one waiting for the thread */
    char h[crypto_pwhash_STRBYTES];
    lb_err err;
    int64_t t0 = lb_mono_us();
    cr_assert_eq(member_pw_hash(h, PW, &err), LB_ERR_THROTTLED, "a third job must be refused");
    cr_assert_lt(lb_mono_us() - t0, 100000, "refused at once, not after a wait");
    pthread_join(a.th, NULL);
    pthread_join(b.th, NULL);
    cr_assert_eq(a.st, LB_OK);
    cr_assert_eq(b.st, LB_OK);
    cr_assert_eq(member_pool_in_flight(ctx.pool), 0);
    member_conf.argon_opslimit = MEMBER_ARGON_OPSLIMIT;
    cr_assert_eq(member_pw_hash(h, PW, &err), LB_OK, "room again once they are done");
}

Test(member_pool, an_unknown_priority_is_a_config_error)
{
    member_pool *p = NULL;
    lb_err err;
    cr_assert_eq(member_pool_new(&p, 1, 1, "realtime", NULL, &err), LB_ERR_CONFIG);
    cr_assert_null(p);
    cr_assert_eq(member_pool_new(&p, 1, 1, NULL, NULL, &err), LB_ERR_CONFIG);
}

/* Without the right to make or join the cgroup (here a folder that cannot
 * exist) the pool hashes as before: no error, and no grace to take. */
Test(member_pool, a_cgroup_it_cannot_use_changes_nothing)
{
    const member_pool_cgroup cg = { .dir = "/nonexistent/layby-hash", .shares = 32, .grace_ms = 1 };
    pool_start_in(1, 0, "idle", &cg);
    char h[crypto_pwhash_STRBYTES];
    lb_err err;
    cr_assert_eq(member_pw_hash(h, PW, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(member_pw_verify(h, PW, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(member_pool_cgroup_left(ctx.pool), 0, "a grace on a thread that never joined");
}

/* CPU the pool's thread gets while this thread spins on the same core for
 * spin_us of its own CPU, over what this thread got (both pinned to one
 * CPU; other processes on it slow both alike). */
static double
pool_share_while_spinning(const char *priority, int64_t spin_us)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0); /* new threads inherit it */
    member_conf.argon_opslimit = passes_for(3 * spin_us);
    pool_start(1, 0, priority);
    hasher a = { 0 };
    pthread_create(&a.th, NULL, hash_one, &a);
    in_flight_wait(1);
    int64_t me0 = cpu_us(CLOCK_THREAD_CPUTIME_ID), all0 = cpu_us(CLOCK_PROCESS_CPUTIME_ID);
    volatile uint64_t x = 0;
    while (cpu_us(CLOCK_THREAD_CPUTIME_ID) - me0 < spin_us)
        for (int i = 0; i < 10000; i++)
            x = x + (uint64_t)i;
    int64_t me = cpu_us(CLOCK_THREAD_CPUTIME_ID) - me0;
    int64_t others = cpu_us(CLOCK_PROCESS_CPUTIME_ID) - all0 - me;
    cr_assert_eq(member_pool_in_flight(ctx.pool), 1,
                 "the hash (%lld passes) ended within the window (%s: %lld us vs %lld us)",
                 (long long)member_conf.argon_opslimit, priority, (long long)others, (long long)me);
    pthread_join(a.th, NULL);
    cr_assert_eq(a.st, LB_OK);
    cr_log_info("%s: pool thread %lld us, this one %lld us (%lld passes)", priority,
                (long long)others, (long long)me, (long long)member_conf.argon_opslimit);
    return (double)others / (double)me;
}

/* The best of three tries: the share is measured on a machine other work
 * shares, and one clean window proves the policy (at SCHED_OTHER every try is
 * about 1.0, so the best of three still fails; see the control below). */
Test(member_pool, an_idle_priority_pool_leaves_the_core_to_other_threads)
{
    double share = 1e9;
    for (int i = 0; i < 3 && share >= 0.2; i++) {
        double s = pool_share_while_spinning("idle", 200000);
        share = s < share ? s : share;
    }
    cr_assert_lt(share, 0.2, "the hashing thread took %.2f x the CPU of a normal thread", share);
}

/* The control: at normal priority the two threads share the core, so the
 * measurement above can tell the two apart. */
Test(member_pool, a_normal_priority_pool_shares_the_core)
{
    double share = pool_share_while_spinning("normal", 200000);
    cr_assert_gt(share, 0.5, "the hashing thread got only %.2f x the CPU of the other", share);
}

/* The cpu cgroup v1 folder the tests' pool threads join (cgroup v1's cpu
 * controller with cpu.idle, writable: this machine as root). */
#define TEST_CGROUP_PARENT "/sys/fs/cgroup/cpu"
#define TEST_CGROUP        TEST_CGROUP_PARENT "/layby-test-hash"
#define TEST_CGROUP_GRACE  TEST_CGROUP_PARENT "/layby-test-grace" /* tests run at once */

/* Moves this process's threads out of TEST_CGROUP, back to the root group:
 * in the idle group, on a loaded machine, the hash could wait for minutes. */
static void
test_cgroup_leave(void)
{
    FILE *f = fopen(TEST_CGROUP "/tasks", "r");
    long tid;
    while (f != NULL && fscanf(f, "%ld", &tid) == 1) {
        char mine[64];
        snprintf(mine, sizeof mine, "/proc/self/task/%ld", tid);
        FILE *root = access(mine, F_OK) == 0 ? fopen(TEST_CGROUP_PARENT "/tasks", "w") : NULL;
        if (root != NULL) {
            fprintf(root, "%ld", tid);
            fclose(root);
        }
    }
    if (f != NULL)
        fclose(f);
}

/* CPU the pool's SCHED_IDLE thread gets while a process of another session
 * (another autogroup, as a PostgreSQL backend is) spins on the same core for
 * spin_us of its own CPU, over spin_us. The hash takes hash_us of CPU: more
 * than the window can give it. */
static double
pool_share_beside_another_session(const member_pool_cgroup *cg, int64_t spin_us, int64_t hash_us)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0); /* threads and the child inherit it */
    member_conf.argon_opslimit = passes_for(hash_us);
    pool_start_in(1, 0, "idle", cg);
    hasher a = { 0 };
    pthread_create(&a.th, NULL, hash_one, &a);
    in_flight_wait(1);
    int64_t all0 = cpu_us(CLOCK_PROCESS_CPUTIME_ID), me0 = cpu_us(CLOCK_THREAD_CPUTIME_ID);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        setsid(); /* a session, so an autogroup, of its own */
        int64_t t0 = cpu_us(CLOCK_PROCESS_CPUTIME_ID);
        volatile uint64_t x = 0;
        while (cpu_us(CLOCK_PROCESS_CPUTIME_ID) - t0 < spin_us)
            for (int i = 0; i < 10000; i++)
                x = x + (uint64_t)i;
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    int64_t pool =
        cpu_us(CLOCK_PROCESS_CPUTIME_ID) - all0 - (cpu_us(CLOCK_THREAD_CPUTIME_ID) - me0);
    if (cg != NULL)
        test_cgroup_leave(); /* the rest of the hash at full speed */
    cr_assert_eq(member_pool_in_flight(ctx.pool), 1,
                 "the hash (%lld passes) ended within the window (pool %lld us vs %lld us)",
                 (long long)member_conf.argon_opslimit, (long long)pool, (long long)spin_us);
    pthread_join(a.th, NULL);
    cr_assert_eq(a.st, LB_OK);
    member_pool_free(ctx.pool);
    ctx.pool = NULL;
    cr_log_info("%s (shares %lld): pool thread %lld us beside another session's %lld us",
                cg != NULL ? cg->dir : "no cgroup", cg != NULL ? (long long)cg->shares : 0LL,
                (long long)pool, (long long)spin_us);
    return (double)pool / (double)spin_us;
}

static void
test_cgroup_require(void)
{
    if (access(TEST_CGROUP_PARENT "/cpu.idle", W_OK) != 0 &&
        access(TEST_CGROUP "/cpu.idle", W_OK) != 0)
        cr_skip_test("no writable cgroup v1 cpu controller with cpu.idle at %s",
                     TEST_CGROUP_PARENT);
}

/* Issue 18's /me under a login storm: SCHED_IDLE alone yields only inside its
 * own group, so a thread of another session shares the core with the hash
 * about half and half (the control below). In a cgroup of the member's
 * default weight (32 shares against the other session's 1024: 3 %) the hash
 * leaves the core to it, and still progresses: it keeps a share the size of
 * its weight, where an idle cgroup (shares 0, weight 3) gets less than a
 * third of it (0.0007-0.005 x here). Windows of 1 s of the other session's
 * CPU, since the low weight runs in slices ~30 slices apart. Of three tries the first inside the
 * bounds passes (the machine is shared: other work on the core slows both sides alike, but not
 * evenly in a short window). */
Test(member_pool, a_low_weight_cgroup_leaves_the_core_to_other_sessions_and_still_hashes)
{
    test_cgroup_require();
    const int64_t shares = MEMBER_HASH_CGROUP_SHARES;
    const member_pool_cgroup cg = { .dir = TEST_CGROUP, .shares = shares }; /* no grace */
    const double expect = (double)shares / 1024.0, lo = expect / 3.0, hi = 0.1;
    double got[3] = { 0 };
    int i = 0;
    for (bool in = false; i < 3 && !in; i++) {
        got[i] = pool_share_beside_another_session(&cg, 1000000, 300000);
        in = got[i] >= lo && got[i] < hi;
    }
    cr_assert(got[i - 1] >= lo && got[i - 1] < hi,
              "the hashing thread took %.4f, %.4f, %.4f x another session's CPU, not within "
              "[%.4f, %.2f) (weight %lld: %.4f)",
              got[0], got[1], got[2], lo, hi, (long long)shares, expect);
}

/* Sessions are scheduling groups only with autogroups on and this process in
 * the root cpu cgroup (a cgroup of its own, as under systemd, holds the
 * other session's process too). */
static bool
autogroups_apply(void)
{
    FILE *f = fopen("/proc/sys/kernel/sched_autogroup_enabled", "r");
    int on = 0;
    if (f != NULL) {
        on = fgetc(f) == '1';
        fclose(f);
    }
    f = fopen("/proc/self/cgroup", "r");
    char line[512];
    bool root = false;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strstr(line, ":cpu:") != NULL || strstr(line, ":cpu,") != NULL)
            root = strcmp(strrchr(line, ':'), ":/\n") == 0;
    if (f != NULL)
        fclose(f);
    return on && root;
}

/* The control: without the cgroup, SCHED_IDLE does not keep the hash from
 * another session's share of the core. */
Test(member_pool, sched_idle_alone_shares_the_core_with_other_sessions)
{
    test_cgroup_require(); /* the same machine as the test above */
    if (!autogroups_apply())
        cr_skip_test("sessions are not scheduling groups here (autogroups off or a cpu cgroup)");
    double share = pool_share_beside_another_session(NULL, 200000, 600000);
    cr_assert_gt(share, 0.5, "the hashing thread got only %.2f x another session's CPU", share);
}

/* The grace: a hash the cgroup's weight would keep waiting (another session
 * spins on the core for as long as the test lasts) leaves the cgroup after
 * the grace and ends at the speed it has without the cgroup; the thread is
 * back in the cgroup for the next job. The cgroup has the least weight (2
 * shares), so without the grace the same hash (50 ms of CPU at 0.2 %) would
 * take ~25 s of that session's CPU. */
Test(member_pool, a_hash_leaves_the_cgroup_after_the_grace_and_comes_back)
{
    test_cgroup_require();
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);
    member_conf.argon_opslimit = passes_for(50000);
    const member_pool_cgroup cg = { .dir = TEST_CGROUP_GRACE, .shares = 2, .grace_ms = 200 };
    pool_start_in(1, 0, "idle", &cg);
    pid_t parent = getpid(), child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        setsid(); /* spins until killed, the test gone, or 30 s */
        int64_t end = lb_mono_us() + 30000000;
        volatile uint64_t x = 0;
        while (getppid() == parent && lb_mono_us() < end)
            for (int i = 0; i < 100000; i++)
                x = x + (uint64_t)i;
        _exit(0);
    }
    usleep(50000); /* the spinner runs */
    char h[crypto_pwhash_STRBYTES];
    lb_err err;
    int64_t t0 = lb_mono_us();
    lb_status st = member_pw_hash(h, PW, &err);
    int64_t took = lb_mono_us() - t0;
    size_t left = member_pool_cgroup_left(ctx.pool);
    /* The next job: the thread went back into the cgroup (a grace counts only a
     * thread that is in it), and left it again after its grace. */
    int64_t t1 = lb_mono_us();
    lb_status st2 = member_pw_hash(h, PW, &err);
    int64_t took2 = lb_mono_us() - t1;
    size_t left2 = member_pool_cgroup_left(ctx.pool);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    cr_assert_eq(st, LB_OK, "%s", err.msg);
    cr_assert_eq(st2, LB_OK, "%s", err.msg);
    cr_assert_eq(left, 1, "the hash left the cgroup %zu times", left);
    cr_assert_eq(left2, 2, "the next hash: %zu times in all (not back in the cgroup?)", left2);
    /* 200 ms of grace, then ~100 ms at half the core: 0.6-7 s at load 10 (the
     * thread's autogroup against the spinner's); without the grace >= 25 s */
    cr_assert_lt(took, 15000000, "the hash took %lld ms beside a spinning session",
                 (long long)took / 1000);
    cr_assert_lt(took2, 15000000, "the next hash took %lld ms", (long long)took2 / 1000);
    cr_assert_geq(took, 200000, "the hash took only %lld ms: it never waited",
                  (long long)took / 1000);
    cr_log_info("grace: hashes took %lld and %lld ms beside a spinning session",
                (long long)took / 1000, (long long)took2 / 1000);
}
