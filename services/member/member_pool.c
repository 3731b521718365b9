/* member_pool.c - the Argon2id pool: threads of its own, at a low CPU
 * priority, behind an admission limit.
 *
 * A hash takes a whole core for 50 ms (idle machine) to 500 ms (loaded).
 * While it runs at the priority of everything else, a GET /me woken on that
 * core (the edge, nats-server, PostgreSQL, a responder) waits for the
 * scheduler to share the core out; on 2 cores that is what made /me's p99
 * grow during a login storm. So the hashing runs on the pool's own threads,
 * which lower their own priority once at start (--hash-priority, default
 * "idle" = SCHED_IDLE): a thread of normal priority that wakes on their core
 * preempts them at once, and they get whatever CPU nothing else wants, so
 * logins lose nothing while the machine has no other work. The measured
 * trade is in docs/DECISIONS.md §9. A thread cannot raise its priority again
 * without CAP_SYS_NICE, which is why the responders do not lower their own
 * for the length of a hash.
 *
 * Groups: Linux schedules groups before threads (an autogroup per session, or
 * a cgroup), and whether a waking thread preempts at once is decided where
 * the two threads' groups meet: SCHED_IDLE wins only against threads of its
 * own group. A PostgreSQL backend (a session of its own) waking on the
 * hashing core waits for the member's group's turn like any other group's
 * thread, and shares the core with the hash half and half. With --hash-cgroup
 * each pool thread is moved into a cpu cgroup, by default an idle one
 * (--hash-cgroup-shares 0: cpu.idle = 1): any other group's thread waking on
 * the hashing core preempts the hash at once, and the hash gets only CPU no
 * other group wants (the grace below bounds the wait). Shares above 0 make
 * it a group of that weight instead (32: cgroup v1 cpu.shares, v2
 * cpu.weight 3, against 1024 for a busy session): a hash keeps ~3 % of a core
 * each busy group wants, but EEVDF lets it finish its protected slice before
 * a waking thread runs, which on a quiet machine made a /me wait a whole hash
 * now and then (docs/DECISIONS.md §9 has both modes' figures). A job's
 * submitter moves the thread that took the job into it (cgroup v1 takes one
 * thread in `tasks`; v2 a threaded cgroup's `cgroup.threads`), never the
 * thread itself: the kernel reschedules a thread the moment it lands in the
 * group, and a worker that moved itself there while holding the pool's lock
 * was left holding it until the group's next turn (~1 s beside one busy
 * session, longer the busier the core), with every login and the grace
 * waiting behind it. The pool sets the cgroup's weight each time it starts;
 * every member process that names the folder shares that weight. It needs
 * the right to write there (root, or a delegated subtree); without it the
 * threads stay where they were and member.hash_cgroup_failed says so once.
 * The folder is left behind (empty once the threads end).
 *
 * Grace: a weight is a share only against the groups busy on that core; on a
 * machine other work saturates (other sessions: builds, a second stack: load
 * 11 here) 32 shares against ~5 busy groups a core is ~0.6 % and a 50 ms
 * hash waits ~8 s (bench/members_ab.sh: sign-ups 504 at 64 shares, at
 * load 11). So a login waits in the cgroup at most
 * --hash-cgroup-grace (default 100 ms, 2 x a quiet hash): its submitter then
 * moves the hashing thread to the cgroup's parent (the process's own group,
 * where SCHED_IDLE still yields to the member's session) for the rest of that
 * job, and the thread goes back into the cgroup when it takes the next one.
 * Under a storm on a quiet machine a hash ends well within the grace; under
 * saturation logins go on at the speed they had without the cgroup.
 *
 * A thread that cannot leave (the parent refuses the move: not writable, not a
 * cgroup any more) would hash at the low weight for good. So the cgroup gets
 * a busy group's weight at once (its current hash then ends as without the
 * cgroup), every thread in the cgroup is replaced by one its submitter starts
 * (a new thread is born in its creator's group, outside the cgroup) and leaves
 * after its current hash, and no thread joins again: the pool ends up hashing
 * as without the cgroup, and member.hash_cgroup_leave_failed says so once,
 * with whether the weight could be raised (if not, that one hash ends at the
 * low weight).
 *
 * Admission: at most threads + queue jobs are in flight; a further one is
 * refused at once (LB_ERR_THROTTLED -> 429), so a login storm ties up at most
 * that many responder threads, each blocked (no CPU) until its job is done.
 *
 * Threads: member_pw_hash() and member_pw_verify() may be called from any
 *          thread; the pool's own threads run only the jobs.
 * Ownership: a job lives on its submitter's stack until the worker marks it
 *          done; member_pool_free() is called after the last submitter left. */
#define _GNU_SOURCE /* SCHED_IDLE, SCHED_BATCH */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine/log.h"
#include "member.h"

/* How the pool's threads are scheduled; the rows are what --hash-priority
 * accepts. SCHED_BATCH and nice 19 keep CFS/EEVDF's time sharing (a request
 * still waits for a slice to end); only SCHED_IDLE makes a waking thread of
 * normal priority preempt at once. */
typedef struct pool_priority {
    const char *name;
    int policy;
    int nice;
} pool_priority;

/* clang-format off */
static const pool_priority pool_priorities[] = {
    /* name      policy       nice */
    { "normal",  SCHED_OTHER, 0  }, /* like every other thread */
    { "low",     SCHED_OTHER, 19 }, /* weight 15 against 1024 */
    { "batch",   SCHED_BATCH, 19 }, /* and no wakeup preemption of others */
    { "idle",    SCHED_IDLE,  0  }, /* preempted by any other thread at once */
};
/* clang-format on */

typedef struct member_pool member_pool;

/* A hashing thread and where it hashes. */
typedef struct pool_thread {
    member_pool *p;
    pthread_t id;
    char tid[24]; /* its kernel thread id, as cgroup files take it */
    bool joined;  /* in the cgroup (not taken out by a grace) */
    bool retire;  /* stuck in the cgroup: ends after its current job */
} pool_thread;

typedef struct pool_job {
    const char *hash; /* verify against it; NULL: hash pw into out */
    const char *pw;
    char *out;
    int rc; /* libsodium's */
    bool done;
    bool to_place;      /* `by` waits for its submitter to move it into the cgroup */
    bool placed;        /* that submitter is done with it (pool_place) */
    pool_thread *by;    /* the thread hashing it; NULL while queued */
    int64_t started_us; /* when that thread took it */
    struct pool_job *next;
} pool_job;

struct member_pool {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job queued, a thread started, or stopping */
    pthread_cond_t done; /* a job finished */
    pool_job *head, *tail;
    size_t in_flight, max_in_flight;
    bool stopping;
    const pool_priority *prio;
    char cgroup[PATH_MAX];        /* "": none */
    char cgroup_parent[PATH_MAX]; /* where a grace moves a thread */
    bool cgroup_v1;               /* `tasks`, else v2's `cgroup.threads` */
    int64_t grace_us;             /* 0: never */
    int cgroup_errno;             /* the first failure to use it (logged); no joins after */
    size_t cgroup_left;           /* hashes a grace took out */
    size_t started;               /* threads that applied prio (or failed to) */
    int start_errno;              /* the first failure to apply it */
    pool_thread *threads;         /* max_threads slots: a replacement per thread at most */
    size_t n_threads, max_threads;
};

static const pool_priority *
priority_find(const char *name)
{
    for (size_t i = 0; i < LB_COUNTOF(pool_priorities); i++)
        if (name != NULL && strcmp(pool_priorities[i].name, name) == 0)
            return &pool_priorities[i];
    return NULL;
}

/* On Linux a policy and a nice value are the calling thread's own. */
static int
priority_apply(const pool_priority *pr)
{
    struct sched_param sp = { .sched_priority = 0 };
    int rc = pthread_setschedparam(pthread_self(), pr->policy, &sp);
    if (rc == 0 && pr->nice != 0 && setpriority(PRIO_PROCESS, 0, pr->nice) != 0)
        rc = errno;
    return rc;
}

static int
cgroup_file_write(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return ENAMETOOLONG;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    size_t len = strlen(text);
    int rc = write(fd, text, len) == (ssize_t)len ? 0 : errno;
    close(fd);
    return rc;
}

/* Makes p->cgroup (if missing) a group of the pool's weight. shares 0: an
 * idle group instead. cpu.idle is written either way, so a folder an idle
 * run left behind takes a weight again (the kernel refuses cpu.shares while a
 * group is idle); a kernel before 5.15 has no cpu.idle, which only matters
 * when idle is asked for. */
static int
cgroup_setup(member_pool *p, int64_t shares)
{
    if (mkdir(p->cgroup, 0755) != 0 && errno != EEXIST)
        return errno;
    char probe[PATH_MAX + 8], weight[24];
    snprintf(probe, sizeof probe, "%s/tasks", p->cgroup);
    p->cgroup_v1 = access(probe, F_OK) == 0;
    if (!p->cgroup_v1)
        cgroup_file_write(p->cgroup, "cgroup.type", "threaded"); /* may already be */
#ifdef LAYBY_TEST_HOOKS
    if (shares == MEMBER_HASH_CGROUP_NO_WEIGHT)
        return 0; /* a v2 hierarchy without the cpu controller: the moves alone */
#endif
    int rc = cgroup_file_write(p->cgroup, "cpu.idle", shares == 0 ? "1" : "0");
    if (rc == ENOENT && shares > 0)
        rc = 0;
    if (rc == 0 && shares > 0) {
        /* v2's weight is v1's shares scaled from 1024 to 100, at least 1 */
        int64_t w = p->cgroup_v1 ? shares : (shares * 100 + 512) / 1024;
        snprintf(weight, sizeof weight, "%lld", (long long)(w < 1 ? 1 : w));
        rc = cgroup_file_write(p->cgroup, p->cgroup_v1 ? "cpu.shares" : "cpu.weight", weight);
    }
    return rc;
}

/* Moves thread t into dir (the cgroup or its parent). Under p->mu, by a
 * submitter, never by t itself (pool_place). */
static int
cgroup_move(member_pool *p, const char *dir, pool_thread *t)
{
    return cgroup_file_write(dir, p->cgroup_v1 ? "tasks" : "cgroup.threads", t->tid);
}

/* Under p->mu: logged once a pool, not once a thread or a job. */
static void
cgroup_failed(member_pool *p, int rc)
{
    if (rc == 0 || p->cgroup_errno != 0)
        return;
    p->cgroup_errno = rc;
    log_warn(NULL, "member.hash_cgroup_failed",
             "the hashing threads stay in their process's scheduling group",
             LOG_STR("cgroup", p->cgroup), LOG_INT("errno", rc));
}

static void *
pool_worker(void *arg)
{
    pool_thread *t = arg;
    member_pool *p = t->p;
    snprintf(t->tid, sizeof t->tid, "%ld", (long)syscall(SYS_gettid));
    int rc = priority_apply(p->prio);
    pthread_mutex_lock(&p->mu);
    if (rc != 0 && p->start_errno == 0)
        p->start_errno = rc;
    p->started++;
    pthread_cond_broadcast(&p->work);
    for (;;) {
        while (p->head == NULL && !p->stopping && !t->retire)
            pthread_cond_wait(&p->work, &p->mu);
        pool_job *j = t->retire ? NULL : p->head;
        if (j == NULL)
            break; /* stopping and nothing left, or replaced */
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        j->by = t;
        j->started_us = lb_mono_us();
        /* A thread to move into the cgroup hashes only once its submitter
         * moved it (pool_place), so the grace counts time in the cgroup. The
         * wait lets go of p->mu: the move may leave t waiting for the
         * cgroup's turn, and then t holds nothing. A thread still in the
         * cgroup from its last job goes on at once. */
        j->to_place = p->cgroup[0] != '\0' && !t->joined && p->cgroup_errno == 0;
        if (j->to_place) {
            pthread_cond_broadcast(&p->done);
            while (!j->placed)
                pthread_cond_wait(&p->work, &p->mu);
        }
        pthread_mutex_unlock(&p->mu);
        if (j->hash != NULL)
            j->rc = crypto_pwhash_str_verify(j->hash, j->pw, strlen(j->pw));
        else
            j->rc = crypto_pwhash_str_alg(
                j->out, j->pw, strlen(j->pw), (unsigned long long)member_conf.argon_opslimit,
                (size_t)member_conf.argon_memlimit, crypto_pwhash_ALG_ARGON2ID13);
        pthread_mutex_lock(&p->mu);
        j->done = true;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Where a grace moves a thread: the folder's parent (on cgroup v2 a threaded
 * cgroup is a child of the process's own; on v1 the hierarchy's root holds a
 * process autogroups still apply to). */
static void
cgroup_parent_set(member_pool *p)
{
    snprintf(p->cgroup_parent, sizeof p->cgroup_parent, "%s", p->cgroup);
    char *slash = strrchr(p->cgroup_parent, '/');
    while (slash != NULL && slash > p->cgroup_parent && slash[1] == '\0') {
        *slash = '\0'; /* a trailing slash */
        slash = strrchr(p->cgroup_parent, '/');
    }
    if (slash != NULL)
        *slash = '\0';
    else
        snprintf(p->cgroup_parent, sizeof p->cgroup_parent, ".");
}

/* Under p->mu (or before the pool is shared): a thread in the next free
 * slot. 0 or pthread_create's error (EAGAIN when the slots are used up). */
static int
pool_thread_start(member_pool *p)
{
    if (p->n_threads == p->max_threads)
        return EAGAIN;
    pool_thread *t = &p->threads[p->n_threads];
    t->p = p;
    int rc = pthread_create(&t->id, NULL, pool_worker, t);
    if (rc == 0)
        p->n_threads++;
    return rc;
}

lb_status
member_pool_new(member_pool **out, size_t threads, size_t queue, const char *priority,
                const member_pool_cgroup *cg, lb_err *err)
{
    const pool_priority *pr = priority_find(priority);
    if (pr == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "hash priority must be normal, low, batch or idle");
    if (threads == 0)
        return lb_err_set(err, LB_ERR_CONFIG, "hash pool needs a thread");
    member_pool *p = calloc(1, sizeof *p);
    if (p == NULL || (p->threads = calloc(2 * threads, sizeof *p->threads)) == NULL) {
        free(p);
        return lb_err_set(err, LB_ERR_NOMEM, "hash pool");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the grace's deadlines */
    pthread_cond_init(&p->done, &ca);
    pthread_condattr_destroy(&ca);
    p->prio = pr;
    p->max_in_flight = threads + queue;
    if (cg != NULL && cg->dir != NULL && cg->dir[0] != '\0') {
        if (snprintf(p->cgroup, sizeof p->cgroup, "%s", cg->dir) >= (int)sizeof p->cgroup)
            cgroup_failed(p, ENAMETOOLONG);
        else
            cgroup_failed(p, cgroup_setup(p, cg->shares));
        cgroup_parent_set(p);
        p->grace_us = cg->grace_ms * 1000;
    }
    p->max_threads = 2 * threads;
    pthread_mutex_lock(&p->mu);
    while (p->n_threads < threads && pool_thread_start(p) == 0)
        ;
    while (p->started < p->n_threads)
        pthread_cond_wait(&p->work, &p->mu);
    int e = p->start_errno;
    pthread_mutex_unlock(&p->mu);
    if (p->n_threads < threads || e != 0) {
        member_pool_free(p);
        if (e != 0)
            return lb_err_set(err, LB_ERR_CONFIG, "hash priority %s: %s", pr->name, strerror(e));
        return lb_err_set(err, LB_ERR_NOMEM, "hash pool thread");
    }
    *out = p;
    return LB_OK;
}

void
member_pool_free(member_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i].id, NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

size_t
member_pool_in_flight(member_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->in_flight;
    pthread_mutex_unlock(&p->mu);
    return n;
}

size_t
member_pool_cgroup_left(member_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->cgroup_left;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Under p->mu: thread t could not leave the cgroup (rc). The cgroup takes a
 * busy group's weight (not idle, 1024 shares), so the hashes running there end as they would
 * without it; every thread in it is replaced by one started here (this thread is not in the cgroup,
 * and a thread is born in its creator's group) and ends after its current job; cgroup_errno keeps
 * any thread from joining again. While a stuck thread finishes, threads + 1 may hash: the admission
 * limit is the same. Runs once a pool at most: no thread is in the cgroup after it, and none joins
 * again, so the line is logged once. */
static void
cgroup_stuck(member_pool *p, const pool_thread *t, int rc)
{
    /* an idle group first stops being one: the kernel refuses a weight till then */
    int weight_rc = cgroup_file_write(p->cgroup, "cpu.idle", "0");
    if (weight_rc == ENOENT)
        weight_rc = 0; /* before 5.15: never idle */
    if (weight_rc == 0)
        weight_rc = cgroup_file_write(p->cgroup, p->cgroup_v1 ? "cpu.shares" : "cpu.weight",
                                      p->cgroup_v1 ? "1024" : "100");
    if (p->cgroup_errno == 0)
        p->cgroup_errno = rc;
    size_t replaced = 0, stuck = 0;
    for (size_t i = 0, n = p->n_threads; i < n; i++) {
        pool_thread *in = &p->threads[i];
        if (!in->joined || in->retire)
            continue;
        stuck++;
        in->joined = false; /* no grace to take any more */
        if (pool_thread_start(p) == 0) {
            in->retire = true;
            replaced++;
        }
    }
    pthread_cond_broadcast(&p->work); /* an idle stuck thread ends now */
    log_warn(NULL, "member.hash_cgroup_leave_failed",
             weight_rc == 0 ? "a hashing thread could not leave the cgroup: its hash goes on at a "
                              "busy group's weight; the threads in it are replaced by threads "
                              "outside it and none joins again"
                            : "a hashing thread could not leave the cgroup nor raise its weight: "
                              "its hash goes on at the low weight; the threads in it are "
                              "replaced by threads outside it and none joins again",
             LOG_STR("cgroup", p->cgroup), LOG_STR("parent", p->cgroup_parent),
             LOG_STR("tid", t->tid), LOG_INT("errno", rc), LOG_INT("weight_errno", weight_rc),
             LOG_INT("stuck", stuck), LOG_INT("replaced", replaced));
}

/* Under p->mu: j's thread leaves the cgroup once j has hashed there for the
 * grace. The move is made while j is not done, so it is j's thread (the
 * worker marks done under the same lock). */
static void
pool_grace_check(member_pool *p, pool_job *j)
{
    pool_thread *t = j->by;
    if (t == NULL || !t->joined || lb_mono_us() - j->started_us < p->grace_us)
        return;
    int rc = cgroup_move(p, p->cgroup_parent, t);
    if (rc != 0) {
        cgroup_stuck(p, t, rc);
        return;
    }
    t->joined = false; /* the next job joins the cgroup again (if it can) */
    p->cgroup_left++;
}

/* Under p->mu: j's thread, which has just taken j and (to_place) waits to be
 * placed, joins the cgroup (at first, or after a grace took it out). The submitter
 * moves it while the thread waits on p->work, without p->mu, so a thread the
 * move leaves waiting for the cgroup's turn holds no lock anybody waits
 * for. */
static void
pool_place(member_pool *p, pool_job *j)
{
    pool_thread *t = j->by;
    if (t == NULL || j->placed)
        return;
    j->placed = true;
    if (!j->to_place)
        return;                 /* t did not wait */
    if (p->cgroup_errno == 0) { /* else another job's thread could not leave meanwhile */
        int rc = cgroup_move(p, p->cgroup, t);
        t->joined = rc == 0;
        cgroup_failed(p, rc);
        j->started_us = lb_mono_us(); /* the grace counts from here */
    }
    pthread_cond_broadcast(&p->work); /* t waits for this to hash */
}

/* Waits for j's worker to mark it done, placing its thread and watching the
 * grace. */
static void
pool_wait(member_pool *p, pool_job *j)
{
    while (!j->done) {
        pool_place(p, j);
        /* No grace to watch: none set, or j's thread hashes outside the cgroup
         * (its join failed, or its grace was taken) */
        if (p->grace_us == 0 || p->cgroup[0] == '\0' || (j->by != NULL && !j->by->joined)) {
            pthread_cond_wait(&p->done, &p->mu);
            continue;
        }
        int64_t until = (j->by != NULL ? j->started_us : lb_mono_us()) + p->grace_us;
        struct timespec now, ts;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t left = until - lb_mono_us();
        left = left < 1000 ? 1000 : left;
        ts.tv_sec = now.tv_sec + (time_t)(left / 1000000);
        ts.tv_nsec = now.tv_nsec + (long)(left % 1000000) * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&p->done, &p->mu, &ts) == ETIMEDOUT && !j->done)
            pool_grace_check(p, j);
    }
}

/* Runs j on the pool and waits for it; false when the pool is full. */
static bool
pool_run(member_pool *p, pool_job *j)
{
    pthread_mutex_lock(&p->mu);
    if (p->in_flight >= p->max_in_flight) {
        pthread_mutex_unlock(&p->mu);
        return false;
    }
    p->in_flight++;
    if (p->tail != NULL)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->work);
    pool_wait(p, j);
    p->in_flight--;
    pthread_mutex_unlock(&p->mu);
    return true;
}

lb_status
member_pw_hash(char out[crypto_pwhash_STRBYTES], const char *pw, lb_err *err)
{
    pool_job j = { .pw = pw, .out = out };
    if (!pool_run(member_app->pool, &j))
        return lb_err_set(err, LB_ERR_THROTTLED, "too many password checks at once; retry");
    if (j.rc != 0)
        return lb_err_set(err, LB_ERR_NOMEM, "argon2id hash");
    return LB_OK;
}

lb_status
member_pw_verify(const char *hash, const char *pw, lb_err *err)
{
    pool_job j = { .hash = hash, .pw = pw };
    if (!pool_run(member_app->pool, &j))
        return lb_err_set(err, LB_ERR_THROTTLED, "too many password checks at once; retry");
    if (j.rc != 0)
        return lb_err_set(err, LB_ERR_CREDENTIALS, "wrong username or password");
    return LB_OK;
}
