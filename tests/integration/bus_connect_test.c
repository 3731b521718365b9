/* bus_connect_test.c - a connect to a server that goes quiet ends and is
 * tried again (engine/bus_libnats.c, natsSock_Read).
 *
 * nats.c 3.4.1 reads the answer to its first PING a byte at a time and
 * leaves that loop only on a newline or a closed connection: when the read
 * times out instead (the server sent its INFO, then nothing), it appends the
 * old byte again, forever, on the connecting thread, and the connection
 * never comes. Here a listener on loopback plays such a server: it sends an
 * INFO, reads the client's CONNECT and PING, and answers nothing, twice. A
 * client whose attempt ends at its connect timeout (2 s) tries again (bus_open
 * retries until it is connected), and the third time the listener answers
 * PONG, so bus_open returns. A spinning client never comes back from its first
 * attempt, and burns a core meanwhile. No nats-server is needed. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/bus.h"

#define QUIET_CONNS_MAX 16
#define QUIET_TIMES     2 /* connections left unanswered before one is answered */

static int listen_fd = -1;
static atomic_int accepted;
static atomic_bool opened;
static int conns[QUIET_CONNS_MAX]; /* held open, silent, until the test ends */

/* Accepts, sends an INFO, reads until the client's PING; answers PONG from the
 * QUIET_TIMES + 1st connection on, nothing before. */
static void *
quiet_server_run(void *arg)
{
    (void)arg;
    static const char info[] = "INFO {\"server_id\":\"quiet\",\"version\":\"2.9.10\",\"proto\":1,"
                               "\"headers\":true,\"max_payload\":1048576}\r\n";
    for (;;) {
        int c = accept(listen_fd, NULL, NULL);
        if (c < 0)
            return NULL; /* the listener was shut down */
        int k = atomic_fetch_add(&accepted, 1);
        if (k < QUIET_CONNS_MAX)
            conns[k] = c;
        if (write(c, info, sizeof info - 1) < 0)
            continue;
        char buf[4096];
        size_t have = 0;
        ssize_t r;
        while (have < sizeof buf - 1 && (r = read(c, buf + have, sizeof buf - 1 - have)) > 0) {
            have += (size_t)r;
            buf[have] = '\0';
            if (strstr(buf, "PING\r\n") != NULL)
                break;
        }
        if (k >= QUIET_TIMES && write(c, "PONG\r\n", 6) < 0)
            continue;
    }
}

static bus *opened_bus;

/* bus_open() returns only once it is connected. */
static void *
open_run(void *arg)
{
    lb_err err = { 0 };
    if (bus_open(&opened_bus, arg, &err) == LB_OK)
        atomic_store(&opened, true);
    return NULL;
}

static double
cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

Test(bus_connect, a_connect_to_a_server_gone_quiet_ends_and_is_tried_again, .timeout = 60)
{
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(listen_fd, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert_eq(bind(listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(listen_fd, 8), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(listen_fd, (struct sockaddr *)&a, &len), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, quiet_server_run, NULL), 0);

    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", ntohs(a.sin_port));
    bus_opts o = { .url = url, .name = "bus-connect-test" };
    double cpu0 = cpu_seconds();
    pthread_t opener;
    cr_assert_eq(pthread_create(&opener, NULL, open_run, &o), 0);
    for (int i = 0; i < 300 && !atomic_load(&opened); i++)
        usleep(50 * 1000);
    double cpu = cpu_seconds() - cpu0;
    /* A spinning first attempt never ends: the opener is left to the
     * process's exit. */
    cr_assert(atomic_load(&opened),
              "the first connect never ended: %d connection(s) in 15 s, %.2f s of CPU",
              atomic_load(&accepted), cpu);
    pthread_join(opener, NULL);
    cr_expect_eq(atomic_load(&accepted), QUIET_TIMES + 1);
    cr_expect_lt(cpu, 1.5, "%.2f s of CPU while connecting", cpu);
    shutdown(listen_fd, SHUT_RDWR);
    close(listen_fd);
    pthread_join(t, NULL);
    int n = atomic_load(&accepted);
    for (int i = 0; i < n && i < QUIET_CONNS_MAX; i++)
        close(conns[i]);
    bus_close(opened_bus);
}
