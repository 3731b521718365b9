/* member_pool_test.c - the Argon2id pool of issue 18 (services/member/member_pool.c):
 * it admits threads + queue jobs and refuses the next one at once, and its
 * threads hash at a priority that leaves the core to any other thread
 * (SCHED_IDLE by default), so a login storm does not slow the requests. */
#define _GNU_SOURCE /* sched_setaffinity, sched_getcpu */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
 * CPU; other processes on it slow both alike). -1 when the hash ended
 * within the window, which then measured nothing: the passes were counted
 * while other work slowed them (CI runs two suites at once), and ran
 * faster after. */
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
    bool measured = member_pool_in_flight(ctx.pool) == 1;
    pthread_join(a.th, NULL);
    cr_assert_eq(a.st, LB_OK);
    if (!measured) {
        /* stderr, not cr_log_warn(): Criterion 2.4 exits 1 after any warning,
         * which would fail the suite on the retry meant to spare it. */
        fprintf(stderr,
                "member_pool: the hash (%lld passes) ended within the window (%s: %lld us vs %lld "
                "us)\n",
                (long long)member_conf.argon_opslimit, priority, (long long)others, (long long)me);
        return -1.0;
    }
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
    for (int i = 0; i < 5 && share >= 0.2; i++) {
        double s = pool_share_while_spinning("idle", 200000);
        share = s >= 0 && s < share ? s : share;
    }
    cr_assert_lt(share, 0.2, "the hashing thread took %.2f x the CPU of a normal thread", share);
}

/* The control: at normal priority the two threads share the core, so the
 * measurement above can tell the two apart. */
Test(member_pool, a_normal_priority_pool_shares_the_core)
{
    double share = -1.0;
    for (int i = 0; i < 5 && share < 0; i++) /* until a window measured something */
        share = pool_share_while_spinning("normal", 200000);
    cr_assert_gt(share, 0.5, "the hashing thread got only %.2f x the CPU of the other", share);
}

/* The cpu cgroup v1 folder the tests' pool threads join (cgroup v1's cpu
 * controller with cpu.idle, writable: this machine as root). */
#define TEST_CGROUP_PARENT "/sys/fs/cgroup/cpu"
#define TEST_CGROUP        TEST_CGROUP_PARENT "/layby-test-hash"
#define TEST_CGROUP_GRACE  TEST_CGROUP_PARENT "/layby-test-grace" /* tests run at once */
#define TEST_CGROUP_IDLE   TEST_CGROUP_PARENT "/layby-test-idle"
#define TEST_WEIGHT_SHARES 32 /* the weighted mode's figure (DECISIONS §9) */

/* Moves this process's threads out of dir, back to the root group: in a
 * low-weight or idle group, on a loaded machine, the hash could wait for
 * minutes. */
static void
test_cgroup_leave(const char *dir)
{
    char tasks[256];
    snprintf(tasks, sizeof tasks, "%s/tasks", dir);
    FILE *f = fopen(tasks, "r");
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

static int
file_read_int(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    int v = -1;
    if (f == NULL || fscanf(f, "%d", &v) != 1)
        v = -1;
    if (f != NULL)
        fclose(f);
    return v;
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
        test_cgroup_leave(cg->dir); /* the rest of the hash at full speed */
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
    const int64_t shares = TEST_WEIGHT_SHARES;
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

/* The default (MEMBER_HASH_CGROUP_SHARES 0): an idle cgroup. Beside another
 * session spinning on its core the hash gets only what that session leaves
 * (0.0007-0.006 x here), less than a third of what 32 shares keep (0.031 x),
 * so /me's threads, whichever group they are in, never wait for it. Best of
 * three 1 s windows, as above. */
Test(member_pool, the_default_idle_cgroup_leaves_the_core_to_other_sessions)
{
    test_cgroup_require();
    cr_assert_eq(MEMBER_HASH_CGROUP_SHARES, 0, "the default is no longer the idle cgroup");
    const member_pool_cgroup cg = { .dir = TEST_CGROUP_IDLE, .shares = MEMBER_HASH_CGROUP_SHARES };
    const double below = (double)TEST_WEIGHT_SHARES / 1024.0 / 3.0;
    double best = 1e9;
    for (int i = 0; i < 3 && best >= below; i++) {
        double got = pool_share_beside_another_session(&cg, 1000000, 300000);
        best = got < best ? got : best;
    }
    cr_assert_lt(best, below, "the idle cgroup's hash took %.4f x another session's CPU", best);
    cr_assert_eq(file_read_int(TEST_CGROUP_IDLE, "cpu.idle"), 1, "cpu.idle of the default");
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

/* The grace: a hash the cgroup would keep waiting (another session spins on
 * the core for as long as the test lasts) leaves the cgroup after the grace
 * and ends at the speed it has without the cgroup; the thread is back in the
 * cgroup for the next job. The cgroup is the default, idle (it gets only CPU
 * nobody wants), so without the grace the same hash (50 ms of CPU) would wait
 * for the spinner to end. */
Test(member_pool, a_hash_leaves_the_cgroup_after_the_grace_and_comes_back)
{
    test_cgroup_require();
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);
    member_conf.argon_opslimit = passes_for(50000);
    const member_pool_cgroup cg = { .dir = TEST_CGROUP_GRACE,
                                    .shares = MEMBER_HASH_CGROUP_SHARES,
                                    .grace_ms = 200 };
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
    /* The next hash waits its grace like the first. A worker that moved itself
     * back in under the pool's lock held the lock until the cgroup's next
     * turn, and the grace with it: 1.3 s against 0.3 here, 5.5 s against 2 s
     * beside three more sessions a core (member_pool.c, pool_place). */
    cr_assert_lt(took2, 2 * took + 300000,
                 "the next hash took %lld ms against the first's %lld: its grace waited",
                 (long long)took2 / 1000, (long long)took / 1000);
    cr_log_info("grace: hashes took %lld and %lld ms beside a spinning session",
                (long long)took / 1000, (long long)took2 / 1000);
}

/* --- a thread that can join the cgroup but not leave it ------------------- */

/* The leave's target: a cgroup of its own (the member's group in OPERATIONS
 * §2's v1 recipe) whose `tasks` the test makes read-only; the hashing cgroup
 * is its child. One pair a test: tests run at once. */
typedef struct leave_dirs {
    char parent[128], dir[160];
} leave_dirs;

static void
leave_dirs_init(leave_dirs *d, const char *name)
{
    snprintf(d->parent, sizeof d->parent, "%s/layby-test-%s", TEST_CGROUP_PARENT, name);
    snprintf(d->dir, sizeof d->dir, "%s/hash", d->parent);
}

static int
file_chmod(const char *dir, const char *name, mode_t mode)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return chmod(path, mode) == 0 ? 0 : errno;
}

/* Threads listed in a cgroup's `tasks` (v1) or `cgroup.threads` (v2). */
static int
cgroup_thread_count(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    long tid;
    int n = 0;
    while (f != NULL && fscanf(f, "%ld", &tid) == 1)
        n++;
    if (f != NULL)
        fclose(f);
    return n;
}

static void
cgroup_threads_gone_wait(const char *dir, const char *name)
{
    const struct timespec ms = { .tv_nsec = 10000000 };
    for (int i = 0; i < 6000 && cgroup_thread_count(dir, name) > 0; i++)
        nanosleep(&ms, NULL);
}

/* A left-over of an earlier run that failed half-way: writable again and gone. */
static void
test_leave_reset(const leave_dirs *d)
{
    file_chmod(d->parent, "tasks", 0644);
    file_chmod(d->dir, "cpu.shares", 0644);
    file_chmod(d->dir, "cpu.idle", 0644);
    rmdir(d->dir);
    rmdir(d->parent);
}

/* This thread's CAP_DAC_OVERRIDE on or off (effective only; it stays
 * permitted): root writes a read-only file only with it. Capabilities are a
 * thread's own, and the pool's threads were made before it went. */
static void
dac_override_set(bool on)
{
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct d[2];
    cr_assert_eq(syscall(SYS_capget, &h, d), 0, "capget: %s", strerror(errno));
    if (on)
        d[0].effective |= 1u << CAP_DAC_OVERRIDE;
    else
        d[0].effective &= ~(1u << CAP_DAC_OVERRIDE);
    cr_assert_eq(syscall(SYS_capset, &h, d), 0, "capset: %s", strerror(errno));
}

/* The daemon's log (this process's stderr) goes to a file meanwhile. */
typedef struct log_catch {
    char path[64];
    int saved;
} log_catch;

static void
log_catch_start(log_catch *lc)
{
    snprintf(lc->path, sizeof lc->path, "/tmp/layby-pool-log-XXXXXX");
    int fd = mkstemp(lc->path);
    cr_assert(fd >= 0);
    fflush(stderr);
    lc->saved = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Puts stderr back (and what was caught on it); returns the lines of `event`
 * and the first one's integer `key` in *value. */
static int
log_catch_end(log_catch *lc, const char *event, const char *key, json_int_t *value)
{
    fflush(stderr);
    dup2(lc->saved, 2);
    close(lc->saved);
    FILE *f = fopen(lc->path, "r");
    cr_assert_not_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        fputs(line, stderr);
        json_t *o = json_loads(line, 0, NULL);
        const char *ev = json_string_value(json_object_get(o, "event"));
        if (ev != NULL && strcmp(ev, event) == 0 && n++ == 0 && value != NULL)
            *value = json_integer_value(json_object_get(o, key));
        json_decref(o);
    }
    fclose(f);
    unlink(lc->path);
    return n;
}

/* Threads of this process at SCHED_IDLE: the pool's (the test's are normal). */
static int
idle_thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.' && sched_getscheduler((pid_t)atol(e->d_name)) == SCHED_IDLE)
            n++;
    closedir(d);
    return n;
}

/* The hash's thread joins the cgroup (of `shares`; 0: idle), its grace
 * (1 ms) ends and the move back to the parent is refused (the parent's
 * `tasks` read-only, this thread without CAP_DAC_OVERRIDE). What must hold:
 * the login is answered, and so are the next ones; the failure is logged
 * once; the cgroup takes a busy group's weight (not idle, 1024 shares) while
 * the stuck hash ends; the stuck thread ends after it and the pool hashes
 * outside the cgroup from then on (at SCHED_IDLE, as without the cgroup), so
 * no thread is left at the low weight. With raise_blocked the cgroup's
 * `cpu.shares` and `cpu.idle` are read-only too: the stuck hash ends at the
 * low weight, and the log line says so. */
static void
leave_refused(const char *name, int64_t shares, bool raise_blocked)
{
    test_cgroup_require();
    leave_dirs d;
    leave_dirs_init(&d, name);
    test_leave_reset(&d);
    cr_assert(mkdir(d.parent, 0755) == 0 || errno == EEXIST, "%s", strerror(errno));
    const member_pool_cgroup cg = { .dir = d.dir, .shares = shares, .grace_ms = 1 };
    log_catch lc;
    log_catch_start(&lc);
    pool_start_in(1, 0, "idle", &cg);
    cr_assert_eq(file_chmod(d.parent, "tasks", 0444), 0);
    if (raise_blocked) {
        cr_assert_eq(file_chmod(d.dir, "cpu.shares", 0444), 0);
        cr_assert_eq(file_chmod(d.dir, "cpu.idle", 0444), 0);
    }
    dac_override_set(false);

    char h[crypto_pwhash_STRBYTES];
    lb_err err;
    lb_status st[4];
    st[0] = member_pw_hash(h, PW, &err);
    int weight = file_read_int(d.dir, "cpu.shares"), idle = file_read_int(d.dir, "cpu.idle");
    cgroup_threads_gone_wait(d.dir, "tasks"); /* the stuck thread ends */
    int stuck = cgroup_thread_count(d.dir, "tasks");
    st[1] = member_pw_verify(h, PW, &err);
    st[2] = member_pw_hash(h, PW, &err);
    st[3] = member_pw_verify(h, PW, &err);
    int rejoined = cgroup_thread_count(d.dir, "tasks");
    int idle_threads = idle_thread_count();
    size_t left = member_pool_cgroup_left(ctx.pool);
    member_pool_free(ctx.pool);
    ctx.pool = NULL;
    dac_override_set(true);
    json_int_t weight_errno = -1;
    int lines =
        log_catch_end(&lc, "member.hash_cgroup_leave_failed", "weight_errno", &weight_errno);
    test_leave_reset(&d);

    for (size_t i = 0; i < LB_COUNTOF(st); i++)
        cr_assert_eq(st[i], LB_OK, "login %zu after the refused leave: %s", i, err.msg);
    cr_assert_eq(lines, 1, "member.hash_cgroup_leave_failed logged %d times, not once", lines);
    cr_assert_eq(stuck, 0, "%d thread(s) still in the cgroup after their hash", stuck);
    cr_assert_eq(rejoined, 0, "%d thread(s) joined the cgroup again", rejoined);
    cr_assert_eq(idle_threads, 1, "%d hashing threads at SCHED_IDLE (one replacement expected)",
                 idle_threads);
    cr_assert_eq(left, 0, "a grace counted as taken: %zu", left);
    if (raise_blocked) {
        cr_assert(shares == 0 ? idle == 1 : weight == shares,
                  "read-only, yet cpu.idle %d, cpu.shares %d", idle, weight);
        cr_assert_eq(weight_errno, EACCES, "the log line's weight_errno: %lld",
                     (long long)weight_errno);
    } else {
        cr_assert(idle == 0 && weight == 1024,
                  "the stuck hash's cgroup kept cpu.idle %d, cpu.shares %d (shares %lld)", idle,
                  weight, (long long)shares);
        cr_assert_eq(weight_errno, 0, "the log line's weight_errno: %lld", (long long)weight_errno);
    }
}

/* The default cgroup, then both modes by name (the default is one of them). */
Test(member_pool, a_thread_that_cannot_leave_the_cgroup_is_replaced_and_logins_go_on)
{
    leave_refused("leave", MEMBER_HASH_CGROUP_SHARES, false);
}

Test(member_pool, a_thread_that_cannot_leave_nor_raise_the_weight_is_logged_and_replaced)
{
    leave_refused("leave-raise", MEMBER_HASH_CGROUP_SHARES, true);
}

Test(member_pool, a_thread_that_cannot_leave_an_idle_cgroup_gets_a_busy_weight)
{
    leave_refused("leave-idle", 0, false);
}

Test(member_pool, a_thread_that_cannot_leave_a_32_share_cgroup_gets_a_busy_weight)
{
    leave_refused("leave-32", 32, false);
}

/* --- cgroup v2 ------------------------------------------------------------ */

/* A cgroup v2 hierarchy for the test: mounted in a mount namespace of this
 * thread's own (threads it starts later share it), so nothing outside sees
 * the mount. The folder the member uses there is a child of its own cgroup
 * (a thread moves only inside its process's threaded subtree). */
typedef struct v2_tree {
    char mnt[64];
    char own[320];  /* this process's cgroup: where a grace moves a thread */
    char dir[384];  /* the hashing cgroup, a threaded child of it */
    char ctrl[256]; /* the hierarchy's controllers (cgroup.controllers) */
    bool cpu;       /* the cpu controller is among them and can be enabled */
} v2_tree;

/* false (and why in why) when no v2 hierarchy can be had here. */
static bool
v2_tree_mount(v2_tree *v, char *why, size_t why_len)
{
    memset(v, 0, sizeof *v);
    if (unshare(CLONE_NEWNS) != 0) {
        snprintf(why, why_len, "unshare(CLONE_NEWNS): %s", strerror(errno));
        return false;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        snprintf(why, why_len, "mount --make-rprivate /: %s", strerror(errno));
        return false;
    }
    snprintf(v->mnt, sizeof v->mnt, "/tmp/layby-cgroup2-XXXXXX");
    if (mkdtemp(v->mnt) == NULL || mount("none", v->mnt, "cgroup2", 0, NULL) != 0) {
        snprintf(why, why_len, "mount -t cgroup2 none %s: %s", v->mnt, strerror(errno));
        rmdir(v->mnt);
        return false;
    }
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[512], rel[256] = "";
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "0::", 3) == 0)
            sscanf(line + 3, "%255s", rel);
    if (f != NULL)
        fclose(f);
    snprintf(v->own, sizeof v->own, "%s%s", v->mnt, strcmp(rel, "/") == 0 ? "" : rel);
    snprintf(v->dir, sizeof v->dir, "%s/layby-test-v2-%ld", v->own, (long)getpid());
    char path[512];
    snprintf(path, sizeof path, "%s/cgroup.controllers", v->mnt);
    f = fopen(path, "r");
    if (f != NULL && fgets(v->ctrl, sizeof v->ctrl, f) != NULL)
        v->ctrl[strcspn(v->ctrl, "\n")] = '\0';
    if (f != NULL)
        fclose(f);
    /* a threaded child gets cpu.weight only with +cpu in its parent's
     * subtree_control (which the root of the hierarchy may take too) */
    char words[260];
    snprintf(words, sizeof words, " %s ", v->ctrl);
    if (strstr(words, " cpu ") != NULL) {
        snprintf(path, sizeof path, "%s/cgroup.subtree_control", v->own);
        int fd = open(path, O_WRONLY);
        v->cpu = fd >= 0 && write(fd, "+cpu", 4) == 4;
        if (fd >= 0)
            close(fd);
    }
    return true;
}

static void
v2_tree_unmount(v2_tree *v)
{
    rmdir(v->dir);
    umount(v->mnt);
    rmdir(v->mnt);
}

static void
file_read_line(const char *dir, const char *name, char *out, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    if (f != NULL && fgets(out, (int)len, f) != NULL)
        out[strcspn(out, "\n")] = '\0';
    if (f != NULL)
        fclose(f);
}

/* The member's cgroup v2 path (OPERATIONS §2): the folder is made a threaded
 * child of the member's own cgroup, each hash's thread joins it through
 * `cgroup.threads`, leaves it for the parent when its grace (1 ms) ends, and
 * joins again for the next hash; nothing is logged as failed. with_weight:
 * also cpu.weight = shares / 10.24 (3 for 32), which needs the cpu controller
 * in the v2 hierarchy; without it the moves are tried alone. */
static void
v2_grace_round_trip(bool with_weight)
{
    v2_tree v;
    char why[256];
    if (!v2_tree_mount(&v, why, sizeof why))
        cr_skip_test("no cgroup v2 hierarchy here: %s", why);
    if (with_weight && !v.cpu) {
        v2_tree_unmount(&v);
        cr_skip_test("cgroup v2 mounts here, but without the cpu controller (its "
                     "cgroup.controllers: \"%s\"): cpu is bound to a cgroup v1 hierarchy, "
                     "and a controller serves one hierarchy at a time",
                     v.ctrl);
    }
#ifdef LAYBY_TEST_HOOKS
    const int64_t shares = with_weight ? TEST_WEIGHT_SHARES : MEMBER_HASH_CGROUP_NO_WEIGHT;
#else
    const int64_t shares = TEST_WEIGHT_SHARES;
    if (!with_weight) {
        v2_tree_unmount(&v);
        cr_skip_test("the moves alone need LAYBY_TEST_HOOKS");
    }
#endif
    const member_pool_cgroup cg = { .dir = v.dir, .shares = shares, .grace_ms = 1 };
    log_catch lc;
    log_catch_start(&lc);
    pool_start_in(1, 0, "idle", &cg);
    char h[crypto_pwhash_STRBYTES], type[32], weight[32];
    lb_err err;
    lb_status st = member_pw_hash(h, PW, &err);
    size_t left = member_pool_cgroup_left(ctx.pool);
    lb_status st2 = member_pw_verify(h, PW, &err);
    size_t left2 = member_pool_cgroup_left(ctx.pool);
    int in = cgroup_thread_count(v.dir, "cgroup.threads");
    file_read_line(v.dir, "cgroup.type", type, sizeof type);
    file_read_line(v.dir, "cpu.weight", weight, sizeof weight);
    member_pool_free(ctx.pool);
    ctx.pool = NULL;
    int failed = log_catch_end(&lc, "member.hash_cgroup_failed", "errno", NULL);
    v2_tree_unmount(&v);

    cr_assert_eq(st, LB_OK, "%s", err.msg);
    cr_assert_eq(st2, LB_OK, "%s", err.msg);
    cr_assert_eq(failed, 0, "member.hash_cgroup_failed logged for %s", v.dir);
    cr_assert_str_eq(type, "threaded", "the folder's cgroup.type");
    cr_assert_eq(left, 1, "the first hash left the cgroup %zu times (joined and left once)", left);
    cr_assert_eq(left2, 2, "the next hash: %zu in all (joined again?)", left2);
    cr_assert_eq(in, 0, "%d thread(s) still in the cgroup after their grace", in);
    if (with_weight)
        cr_assert_str_eq(weight, "3", "cpu.weight for %lld shares", (long long)shares);
    cr_log_info("cgroup v2 at %s (controllers \"%s\"): threaded folder joined and left twice%s",
                v.mnt, v.ctrl, with_weight ? ", cpu.weight 3" : ", no weight (no cpu controller)");
}

Test(member_pool, a_cgroup_v2_threaded_folder_is_joined_and_left_after_the_grace)
{
    v2_grace_round_trip(false);
}

Test(member_pool, a_cgroup_v2_folder_gets_the_weight_and_is_joined_and_left)
{
    v2_grace_round_trip(true);
}

/* The cgroup removed meanwhile (an operator's rmdir once it was empty: the
 * grace had taken the thread out): the next hash cannot join it, is answered
 * where the thread is, and member.hash_cgroup_failed is logged once, not once
 * a hash. */
Test(member_pool, a_cgroup_removed_meanwhile_is_logged_once_and_logins_go_on)
{
    test_cgroup_require();
    const char *dir = TEST_CGROUP_PARENT "/layby-test-removed";
    rmdir(dir);
    const member_pool_cgroup cg = { .dir = dir,
                                    .shares = MEMBER_HASH_CGROUP_SHARES,
                                    .grace_ms = 1 };
    log_catch lc;
    log_catch_start(&lc);
    pool_start_in(1, 0, "idle", &cg);
    char h[crypto_pwhash_STRBYTES];
    lb_err err;
    lb_status st[4];
    st[0] = member_pw_hash(h, PW, &err);
    size_t left = member_pool_cgroup_left(ctx.pool);
    int removed = rmdir(dir) == 0 ? 0 : errno;
    for (size_t i = 1; i < LB_COUNTOF(st); i++)
        st[i] = i % 2 ? member_pw_verify(h, PW, &err) : member_pw_hash(h, PW, &err);
    size_t left2 = member_pool_cgroup_left(ctx.pool);
    member_pool_free(ctx.pool);
    ctx.pool = NULL;
    json_int_t e = 0;
    int lines = log_catch_end(&lc, "member.hash_cgroup_failed", "errno", &e);
    rmdir(dir);

    cr_assert_eq(left, 1, "the first hash's thread was not taken out by the grace");
    cr_assert_eq(removed, 0, "rmdir %s: %s", dir, strerror(removed));
    for (size_t i = 0; i < LB_COUNTOF(st); i++)
        cr_assert_eq(st[i], LB_OK, "login %zu: %s", i, err.msg);
    cr_assert_eq(left2, 1, "a grace taken after the cgroup was gone: %zu", left2);
    cr_assert_eq(lines, 1, "member.hash_cgroup_failed logged %d times, not once", lines);
    cr_assert_eq(e, ENOENT, "the line's errno: %lld", (long long)e);
}
