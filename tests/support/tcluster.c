/* tcluster.c - a suite's own three-node NATS cluster (tcluster.h). */
#include "tcluster.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tsupport.h"

#define NODE_START_MS 15000

static bool
port_open(void *arg)
{
    const tcluster_node *n = arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)n->port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A node's config: the shared one's lines (its users and permissions) with
 * the node's store folder for the shared one's store_dir line. */
static void
conf_write(const char *path, const char *from, const char *store)
{
    FILE *in = fopen(from, "r");
    cr_assert_not_null(in, "%s: %s", from, strerror(errno));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600); /* it holds passwords */
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    cr_assert_not_null(out, "%s: %s", path, strerror(errno));
    char line[4096];
    while (fgets(line, sizeof line, in) != NULL) {
        const char *p = line + strspn(line, " \t");
        if (strncmp(p, "store_dir", 9) == 0)
            fprintf(out, "  store_dir: \"%s\"\n", store);
        else
            fputs(line, out);
    }
    fclose(in);
    cr_assert_eq(fclose(out), 0);
}

void
tcluster_node_start(tcluster *c, int i)
{
    tcluster_node *n = &c->nodes[i];
    const char *tmp = tsupport_env_req("LAYBY_TEST_TMP");
    char store[512], log[512], listen[16], cluster[64], routes[256] = "";
    snprintf(store, sizeof store, "%s/%s-%s", tmp, c->files, n->name);
    snprintf(log, sizeof log, "%s/%s-%s.log", tmp, c->files, n->name);
    snprintf(listen, sizeof listen, "%d", n->port);
    snprintf(cluster, sizeof cluster, "nats://127.0.0.1:%d", n->route);
    for (int k = 0; k < TCLUSTER_NODES; k++)
        if (k != i)
            snprintf(routes + strlen(routes), sizeof routes - strlen(routes),
                     "%snats://127.0.0.1:%d", routes[0] ? "," : "", c->nodes[k].route);
    char run[512], pid_file[sizeof n->pid_file];
    snprintf(run, sizeof run, "%s/run", tmp);
    mkdir(run, 0755);
    snprintf(pid_file, sizeof pid_file, "%s/%s-%s.pid", run, c->files, n->name);
    memcpy(n->pid_file, pid_file, sizeof pid_file);

    /* Flags win over the config file's settings (nats-server merges them
     * so), but for the store folder, which may be named only once. */
    char conf[700];
    const char *argv[40];
    int k = 0;
    argv[k++] = "nats-server";
    if (c->conf[0] != '\0') {
        snprintf(conf, sizeof conf, "%s/%s-%s.conf", tmp, c->files, n->name);
        conf_write(conf, c->conf, store);
        argv[k++] = "-c";
        argv[k++] = conf;
    } else {
        argv[k++] = "-sd";
        argv[k++] = store;
    }
    const char *rest[] = { "-js",   "-a",        "127.0.0.1", "-p",       listen, "-n",
                           n->name, "-P",        n->pid_file, "-l",       log,    "--cluster_name",
                           c->name, "--cluster", cluster,     "--routes", routes, NULL };
    for (int r = 0; rest[r] != NULL; r++)
        argv[k++] = rest[r];
    argv[k] = NULL;

    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        /* One Go processor each, as scripts/lib/nats.sh gives the single node. */
        setenv("GOMAXPROCS", "1", 1);
        execvp("nats-server", (char *const *)argv);
        _exit(127);
    }
    n->pid = pid;
    cr_assert(tsupport_poll_until(port_open, n, NODE_START_MS), "node %s did not start (log %s)",
              n->name, log);
}

void
tcluster_start(tcluster *c, const char *name, const char *conf)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->files, sizeof c->files, "%s-%d", c->name, (int)getpid());
    snprintf(c->conf, sizeof c->conf, "%s", conf != NULL ? conf : "");
    int taken[2 * TCLUSTER_NODES], k = 0;
    for (int i = 0; i < TCLUSTER_NODES; i++) {
        tcluster_node *n = &c->nodes[i];
        snprintf(n->name, sizeof n->name, "n%d", i + 1);
        /* tsupport_port_free() answers a port free now: ask until all differ. */
        for (int *want = &n->port; want != NULL; want = (want == &n->port) ? &n->route : NULL) {
            int p;
            bool dup;
            do {
                p = tsupport_port_free();
                dup = false;
                for (int j = 0; j < k; j++)
                    dup = dup || taken[j] == p;
            } while (dup);
            taken[k++] = *want = p;
        }
        snprintf(c->urls + strlen(c->urls), sizeof c->urls - strlen(c->urls),
                 "%snats://127.0.0.1:%d", i ? ", " : "", n->port);
    }
    for (int i = 0; i < TCLUSTER_NODES; i++)
        tcluster_node_start(c, i);
}

void
tcluster_node_kill(tcluster *c, int i)
{
    tcluster_node *n = &c->nodes[i];
    if (n->pid <= 0)
        return;
    kill(n->pid, SIGKILL);
    waitpid(n->pid, NULL, 0);
    unlink(n->pid_file);
    n->pid = 0;
}

void
tcluster_stop(tcluster *c)
{
    for (int i = 0; i < TCLUSTER_NODES; i++)
        tcluster_node_kill(c, i);
}

int
tcluster_leader(const tcluster *c, jsCtx *js, const char *stream)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    int found = -1;
    if (js_GetStreamInfo(&si, js, stream, NULL, &jerr) == NATS_OK && si->Cluster &&
        si->Cluster->Leader)
        for (int i = 0; i < TCLUSTER_NODES; i++)
            if (strcmp(si->Cluster->Leader, c->nodes[i].name) == 0)
                found = i;
    jsStreamInfo_Destroy(si);
    return found;
}
