/* bus_libnats.c - two functions of libnats 3.4.1 (Debian 12's nats.c) that
 * layby takes the place of, to mend two bugs fixed upstream after it. libnats
 * calls both through its PLT, so a definition in the executable takes the
 * library's place, as natsGC_collect() does in bus.c; each finds the
 * library's own with dlsym(RTLD_NEXT). bus_open() calls bus_libnats_init(),
 * which also links this file into every program that opens a bus.
 *
 * 1. natsSub_release(): every subscription nats.c lets go of is freed
 *    BUS_RELEASE_GRACE_MS later, not at once. nats.c's reader thread
 *    (natsConn_processMsg; fixed in 3.6.1, nats.c PR #638) takes an incoming
 *    message's subscription from the connection's table, lets go of the
 *    table's lock, builds the message, and only then locks the
 *    subscription. A thread that removes the subscription and drops its
 *    last reference inside that gap frees the memory the reader is about
 *    to lock:
 *      - natsConnection_Close() releases every subscription, and the
 *        request mux, while replies may still be arriving (bus_close; seen
 *        as a SEGV in bus_command_test's teardown under load);
 *      - natsSubscription_Destroy() of a reply inbox as its reply comes in
 *        (bus_command: the edge answering 202 just as the saga answers).
 *    libnats drops every reference through natsSub_release() (22 call
 *    sites, all through the PLT). Here it queues the subscription; a reaper
 *    thread hands it to the library's function once the grace has passed.
 *    The reader's gap is a few microseconds. Deferring a release that is not
 *    the last one only keeps a count higher for that long; the subscription
 *    holds its connection, so the connection's memory waits too.
 *    tests/integration/bus_release_test.c makes both races.
 *
 * 2. natsSock_Read(): a connect that never ends. Connecting, nats.c reads
 *    the answer to its first PING a byte at a time (_readProto, the one
 *    caller that passes n == NULL) and leaves that loop only on '\n' or
 *    NATS_CONNECTION_CLOSED: a read that times out (a server that sent its
 *    INFO and then said nothing within the connect timeout) or fails
 *    appends the old byte again, forever; the thread spins on a core, its
 *    buffer grows, the connection never comes (fixed in 3.8.0, nats.c PR
 *    #707). For that caller any failure reads as a closed connection: the
 *    attempt fails, and the next reconnect tries again. Every other call is
 *    the library's own. tests/integration/bus_connect_test.c holds it.
 *
 * Threads: the release queue is guarded by rel_lock. The reaper starts on
 * the first release in a process (again in a forked child: Criterion forks
 * its tests) and calls the library without any lock of ours held. Whatever
 * is still queued at exit stays reachable from the queue: nothing is freed
 * under a thread that may still run. */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "lb.h"

#define BUS_RELEASE_GRACE_MS 500
#define BUS_RELEASE_BATCH_MS 200 /* the reaper wakes at most every this long while busy */

typedef void (*release_fn)(natsSubscription *sub);
/* The library's natsSockCtx is internal: the pointer passes through. */
typedef natsStatus (*sock_read_fn)(void *ctx, char *buffer, size_t max, int *n);

typedef struct release_node {
    struct release_node *next;
    natsSubscription *sub;
    int64_t due_ms;
} release_node;

static pthread_once_t libnats_once = PTHREAD_ONCE_INIT;
static release_fn rel_real;    /* libnats's natsSub_release, set once */
static sock_read_fn read_real; /* libnats's natsSock_Read, set once */
static pthread_mutex_t rel_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rel_cond;           /* CLOCK_MONOTONIC; new work for an idle reaper */
static release_node *rel_head, *rel_tail; /* guarded by rel_lock; due_ms only grows */
static bool rel_running;                  /* guarded by rel_lock: this process's reaper is up */
static size_t rel_pending;                /* guarded by rel_lock */

/* lb_mono_us() reads CLOCK_MONOTONIC, the clock rel_cond waits on. */
static int64_t
mono_ms(void)
{
    return lb_mono_us() / 1000;
}

/* fork(): the child has the queue but not the reaper. */
static void
atfork_prepare(void)
{
    pthread_mutex_lock(&rel_lock);
}

static void
atfork_parent(void)
{
    pthread_mutex_unlock(&rel_lock);
}

static void
atfork_child(void)
{
    rel_running = false;
    pthread_mutex_unlock(&rel_lock);
}

static void
libnats_once_run(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rel_cond, &ca);
    pthread_condattr_destroy(&ca);
    rel_real = (release_fn)dlsym(RTLD_NEXT, "natsSub_release");
    read_real = (sock_read_fn)dlsym(RTLD_NEXT, "natsSock_Read");
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* --- 1. subscriptions freed later ---------------------------------------------- */

static void
wait_until_ms(int64_t at_ms)
{
    struct timespec ts = { (time_t)(at_ms / 1000), (long)(at_ms % 1000) * 1000000L };
    pthread_cond_timedwait(&rel_cond, &rel_lock, &ts);
}

/* The reaper: sleeps until the oldest entry is due (and a batch's worth
 * longer, so a stream of releases costs a few wake-ups a second, not one
 * each), then hands every due entry to the library outside the lock. */
static void *
reaper_run(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&rel_lock);
    for (;;) {
        if (rel_head == NULL) {
            pthread_cond_wait(&rel_cond, &rel_lock);
            continue;
        }
        int64_t now = mono_ms();
        if (rel_head->due_ms > now) {
            wait_until_ms(rel_head->due_ms + BUS_RELEASE_BATCH_MS);
            continue;
        }
        release_node *due = rel_head, *last = NULL;
        size_t n = 0;
        for (release_node *p = rel_head; p != NULL && p->due_ms <= now; p = p->next) {
            last = p;
            n++;
        }
        rel_head = last->next;
        if (rel_head == NULL)
            rel_tail = NULL;
        last->next = NULL;
        rel_pending -= n;
        pthread_mutex_unlock(&rel_lock);
        while (due != NULL) {
            release_node *next = due->next;
            rel_real(due->sub);
            free(due);
            due = next;
        }
        pthread_mutex_lock(&rel_lock);
    }
    return NULL;
}

/* Called with rel_lock held. */
static bool
reaper_ensure(void)
{
    if (rel_running)
        return true;
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    rel_running = pthread_create(&t, &a, reaper_run, NULL) == 0;
    pthread_attr_destroy(&a);
    return rel_running;
}

/* Takes libnats's place (above): the library's natsSub_release, later. */
void natsSub_release(natsSubscription *sub);

void
natsSub_release(natsSubscription *sub)
{
    if (sub == NULL)
        return;
    pthread_once(&libnats_once, libnats_once_run);
    if (rel_real == NULL)
        return; /* no library function to defer to: keep the memory */
    release_node *n = malloc(sizeof *n);
    pthread_mutex_lock(&rel_lock);
    if (n == NULL || !reaper_ensure()) {
        /* Out of memory or threads: keeping the memory is the safe side. */
        pthread_mutex_unlock(&rel_lock);
        free(n);
        return;
    }
    n->next = NULL;
    n->sub = sub;
    n->due_ms = mono_ms() + BUS_RELEASE_GRACE_MS;
    if (rel_tail != NULL)
        rel_tail->next = n;
    else
        rel_head = n;
    rel_tail = n;
    if (rel_pending++ == 0)
        pthread_cond_signal(&rel_cond); /* an idle reaper waits for work */
    pthread_mutex_unlock(&rel_lock);
}

/* --- 2. the connect's byte-by-byte read -------------------------------------- */

natsStatus natsSock_Read(void *ctx, char *buffer, size_t max, int *n);

natsStatus
natsSock_Read(void *ctx, char *buffer, size_t max, int *n)
{
    pthread_once(&libnats_once, libnats_once_run);
    if (read_real == NULL)
        return NATS_CONNECTION_CLOSED; /* bus_libnats_init() refuses to open a bus */
    natsStatus s = read_real(ctx, buffer, max, n);
    if (n == NULL && s != NATS_OK && s != NATS_CONNECTION_CLOSED)
        return NATS_CONNECTION_CLOSED; /* _readProto: end its loop (above) */
    return s;
}

lb_status
bus_libnats_init(lb_err *err)
{
    pthread_once(&libnats_once, libnats_once_run);
    if (rel_real == NULL || read_real == NULL)
        return lb_err_set(err, LB_ERR_INTERNAL,
                          "libnats without natsSub_release or natsSock_Read: cannot mend it");
    return LB_OK;
}

size_t
bus_libnats_releases_pending(void)
{
    pthread_mutex_lock(&rel_lock);
    size_t n = rel_pending;
    pthread_mutex_unlock(&rel_lock);
    return n;
}
