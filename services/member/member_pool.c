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
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

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

typedef struct pool_job {
    const char *hash; /* verify against it; NULL: hash pw into out */
    const char *pw;
    char *out;
    int rc; /* libsodium's */
    bool done;
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
    size_t started;  /* threads that applied prio (or failed to) */
    int start_errno; /* the first failure to apply it */
    pthread_t *threads;
    size_t n_threads;
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

static void *
pool_worker(void *arg)
{
    member_pool *p = arg;
    int rc = priority_apply(p->prio);
    pthread_mutex_lock(&p->mu);
    if (rc != 0 && p->start_errno == 0)
        p->start_errno = rc;
    p->started++;
    pthread_cond_broadcast(&p->work);
    for (;;) {
        while (p->head == NULL && !p->stopping)
            pthread_cond_wait(&p->work, &p->mu);
        pool_job *j = p->head;
        if (j == NULL)
            break; /* stopping, and nothing left */
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
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

lb_status
member_pool_new(member_pool **out, size_t threads, size_t queue, const char *priority, lb_err *err)
{
    const pool_priority *pr = priority_find(priority);
    if (pr == NULL)
        return lb_err_set(err, LB_ERR_CONFIG, "hash priority must be normal, low, batch or idle");
    if (threads == 0)
        return lb_err_set(err, LB_ERR_CONFIG, "hash pool needs a thread");
    member_pool *p = calloc(1, sizeof *p);
    if (p == NULL || (p->threads = calloc(threads, sizeof *p->threads)) == NULL) {
        free(p);
        return lb_err_set(err, LB_ERR_NOMEM, "hash pool");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    p->prio = pr;
    p->max_in_flight = threads + queue;
    for (; p->n_threads < threads; p->n_threads++)
        if (pthread_create(&p->threads[p->n_threads], NULL, pool_worker, p) != 0)
            break;
    pthread_mutex_lock(&p->mu);
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
        pthread_join(p->threads[i], NULL);
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
    while (!j->done)
        pthread_cond_wait(&p->done, &p->mu);
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
