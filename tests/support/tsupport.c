/* tsupport.c - servers, clean state and daemons for the suites (see tsupport.h).
 *
 * Everything here fails the running test through Criterion rather than
 * returning errors: a test should read as the behaviour it checks. */
#include "tsupport.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/svc_table.h"

#define POLL_STEP_MS    20
#define DAEMON_READY_MS 30000
#define NATS_STOP_MS    15000
#define NATS_START_MS   15000
#define DAEMON_ARGS_MAX 32
#define DAEMON_LOGS_MAX 1000

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
pause_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

bool
tsupport_poll_until(bool (*cond)(void *), void *arg, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        if (cond(arg))
            return true;
        if (mono_ms() >= deadline)
            return false;
        pause_ms(POLL_STEP_MS);
    }
}

/* --- environment ----------------------------------------------------------- */

const char *
tsupport_env(const char *name)
{
    const char *v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

const char *
tsupport_env_req(const char *name)
{
    const char *v = tsupport_env(name);
    if (v == NULL)
        cr_assert_fail("%s is not set: run the suite through scripts/dev test "
                       "(tests/support/harness.sh)",
                       name);
    return v;
}

/* --- PostgreSQL ------------------------------------------------------------- */

static PGconn *admin_pg;

PGconn *
tsupport_pg(void)
{
    if (admin_pg != NULL && PQstatus(admin_pg) == CONNECTION_OK)
        return admin_pg;
    PQfinish(admin_pg);
    admin_pg = PQconnectdb(tsupport_env_req("LAYBY_TEST_PG_ADMIN_URL"));
    if (PQstatus(admin_pg) != CONNECTION_OK)
        cr_assert_fail("connect to PostgreSQL as admin: %s", PQerrorMessage(admin_pg));
    return admin_pg;
}

void
tsupport_sql(const char *sql)
{
    PGresult *r = PQexec(tsupport_pg(), sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        cr_assert_fail("SQL failed: %s\n%s", msg, sql);
    }
    PQclear(r);
}

int64_t
tsupport_sql_int(const char *sql)
{
    PGresult *r = PQexec(tsupport_pg(), sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 1 ||
        PQgetisnull(r, 0, 0)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s (%d rows)", PQresultErrorMessage(r), PQntuples(r));
        PQclear(r);
        cr_assert_fail("expected one integer from: %s\n%s", sql, msg);
    }
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

tsupport_table_stats
tsupport_table_stats_get(const char *table)
{
    char sql[512];
    tsupport_table_stats s;
    /* This session's own counts (a CREATE INDEX reads its table) are
     * reported at the end of this statement, before the reads below. */
    tsupport_sql("SELECT pg_stat_force_next_flush()");
    snprintf(sql, sizeof sql,
             "SELECT coalesce(seq_scan, 0) FROM pg_stat_user_tables WHERE relid = '%s'::regclass",
             table);
    s.seq_scans = tsupport_sql_int(sql);
    snprintf(sql, sizeof sql,
             "SELECT n_tup_del FROM pg_stat_user_tables WHERE relid = '%s'::regclass", table);
    s.deleted = tsupport_sql_int(sql);
    return s;
}

tsupport_table_stats
tsupport_table_stats_wait(const char *table, int64_t deleted, int timeout_ms)
{
    tsupport_table_stats s = tsupport_table_stats_get(table);
    for (int waited = 0; s.deleted < deleted && waited < timeout_ms; waited += 100) {
        usleep(100 * 1000);
        s = tsupport_table_stats_get(table);
    }
    return s;
}

/* --- NATS ------------------------------------------------------------------- */

natsStatus
tsupport_nats_connect(natsConnection **out, const char *who, natsErrHandler errh, void *errh_arg)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetURL(o, tsupport_env_req("LAYBY_NATS_URL"));
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(o, false);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, 5000);
    if (s == NATS_OK && errh != NULL)
        s = natsOptions_SetErrorHandler(o, errh, errh_arg);
    if (s == NATS_OK && who != NULL) {
        char user[96], pass[96];
        snprintf(user, sizeof user, "LAYBY_%s_NATS_USER", who);
        snprintf(pass, sizeof pass, "LAYBY_%s_NATS_PASSWORD", who);
        s = natsOptions_SetUserInfo(o, tsupport_env_req(user), tsupport_env_req(pass));
    }
    if (s == NATS_OK)
        s = natsConnection_Connect(out, o);
    natsOptions_Destroy(o);
    return s;
}

/* True when pid is gone (or a zombie waiting for a parent that is not us). */
static bool
proc_gone(pid_t pid)
{
    char path[64], buf[512];
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren != NULL && paren[1] == ' ' && paren[2] == 'Z';
}

static pid_t
nats_pid(void)
{
    FILE *f = fopen(tsupport_env_req("LAYBY_TEST_NATS_PID_FILE"), "r");
    int pid = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid > 0 && !proc_gone(pid)) ? pid : 0;
}

static bool
port_listening(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static bool
nats_down(void *arg)
{
    pid_t pid = *(pid_t *)arg;
    return proc_gone(pid) && !port_listening(atoi(tsupport_env_req("LAYBY_TEST_NATS_PORT")));
}

static bool
nats_up(void *arg)
{
    (void)arg;
    return port_listening(atoi(tsupport_env_req("LAYBY_TEST_NATS_PORT")));
}

void
tsupport_nats_stop(void)
{
    pid_t pid = nats_pid();
    if (pid == 0)
        return;
    kill(pid, SIGTERM);
    if (!tsupport_poll_until(nats_down, &pid, NATS_STOP_MS))
        cr_assert_fail("nats-server (pid %d) did not stop in %d ms", (int)pid, NATS_STOP_MS);
}

/* Every thread of pid stopped (state T or t in /proc/pid/task/N/stat): kill()
 * only queues SIGSTOP, and nats-server's threads on the other core go on
 * until each takes it (CI once saw a publish acked 30 ms after the signal). */
static bool
nats_frozen(void *arg)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)*(pid_t *)arg);
    DIR *d = opendir(dir);
    if (d == NULL)
        return false;
    bool all = true;
    struct dirent *e;
    while (all && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[sizeof dir + sizeof e->d_name + 8], line[512];
        snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue; /* a thread that just ended */
        const char *rp = fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
        fclose(f);
        all = rp != NULL && (rp[2] == 'T' || rp[2] == 't');
    }
    closedir(d);
    return all;
}

void
tsupport_nats_signal(int sig)
{
    pid_t pid = nats_pid();
    if (pid == 0)
        return;
    kill(pid, sig);
    if (sig == SIGKILL && !tsupport_poll_until(nats_down, &pid, NATS_STOP_MS))
        cr_assert_fail("nats-server (pid %d) did not die in %d ms", (int)pid, NATS_STOP_MS);
    if (sig == SIGSTOP && !tsupport_poll_until(nats_frozen, &pid, NATS_STOP_MS))
        cr_assert_fail("nats-server (pid %d) did not stop in %d ms", (int)pid, NATS_STOP_MS);
}

void
tsupport_nats_start(void)
{
    const char *conf = tsupport_env_req("LAYBY_TEST_NATS_CONF");
    if (nats_pid() != 0)
        return;
    /* Double fork: the server is nobody's child here, so a test process that
     * ends early leaves no zombie and the harness stops it by its pid file. */
    pid_t mid = fork();
    if (mid < 0)
        cr_assert_fail("fork: %s", strerror(errno));
    if (mid == 0) {
        setsid();
        if (fork() == 0) {
            int null = open("/dev/null", O_RDWR);
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2); /* the config names the log file */
            execlp("nats-server", "nats-server", "-c", conf, (char *)NULL);
            _exit(127);
        }
        _exit(0);
    }
    waitpid(mid, NULL, 0);
    if (!tsupport_poll_until(nats_up, NULL, NATS_START_MS))
        cr_assert_fail("nats-server did not come back in %d ms", NATS_START_MS);
}

/* --- clean state --------------------------------------------------------------- */

/* One statement: TRUNCATE every table outside public and the system schemas. */
static const char truncate_sql[] =
    "DO $$ DECLARE t text; BEGIN "
    "SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') INTO t FROM pg_tables "
    "WHERE schemaname NOT IN ('public', 'pg_catalog', 'information_schema'); "
    "IF t IS NOT NULL THEN EXECUTE 'TRUNCATE ' || t || ' RESTART IDENTITY CASCADE'; END IF; "
    "END $$";

static void
purge(jsCtx *js, const char *stream)
{
    jsErrCode jerr = 0;
    natsStatus s = js_PurgeStream(js, stream, NULL, &jerr);
    if (s != NATS_OK)
        cr_assert_fail("purge %s: %s (%d) %s", stream, natsStatus_GetText(s), (int)jerr,
                       nats_GetLastError(NULL));
}

/* What the last reset gave the durables: a suite's own durables (the test
 * participant's) take the same, so a crash test's short AckWait holds for
 * every consumer without each suite passing it along. */
static bus_topology_opts reset_opts = BUS_TOPOLOGY_OPTS_INIT;

const bus_topology_opts *
tsupport_reset_opts(void)
{
    return &reset_opts;
}

void
tsupport_reset_with(const bus_topology_opts *opts)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    lb_err err;

    reset_opts = *opts;
    tsupport_sql(truncate_sql);
    if (nats_pid() == 0) /* an outage test that failed half-way */
        tsupport_nats_start();
    natsStatus s = tsupport_nats_connect(&nc, "CTL", NULL, NULL);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, NULL);
    if (s != NATS_OK)
        cr_assert_fail("connect to NATS as admin: %s %s", natsStatus_GetText(s),
                       nats_GetLastError(NULL));
    for (size_t i = 0; i < bus_topology_n_streams; i++)
        purge(js, bus_topology_streams[i].name);
    for (size_t i = 0; i < bus_topology_n_consumers; i++) {
        const bus_topology_consumer *c = &bus_topology_consumers[i];
        bus_topology_change ch;
        js_DeleteConsumer(js, c->stream, c->durable, NULL, NULL); /* absent is fine */
        if (bus_topology_consumer_apply(&ch, js, c, opts, &err) != LB_OK)
            cr_assert_fail("recreate consumer: %s", err.msg);
    }
    for (size_t i = 0; i < bus_topology_n_buckets; i++) {
        char stream[128];
        snprintf(stream, sizeof stream, "KV_%s", bus_topology_buckets[i].name);
        purge(js, stream);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

void
tsupport_reset(void)
{
    bus_topology_opts o = BUS_TOPOLOGY_OPTS_INIT;
    tsupport_reset_with(&o);
}

/* --- daemons ------------------------------------------------------------------ */

static size_t
discard_body(void *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

bool
tsupport_http_ok(int port, const char *path)
{
    static bool curl_ready;
    char url[256];
    long code = 0;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = true;
    }
    CURL *c = curl_easy_init();
    if (c == NULL)
        return false;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
    bool ok = curl_easy_perform(c) == CURLE_OK &&
              curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200;
    curl_easy_cleanup(c);
    return ok;
}

int
tsupport_port_free(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0, "bind: %s", strerror(errno));
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int
default_port(const char *name)
{
    /* which variable names a daemon's /healthz port: the service table's */
    for (size_t i = 0; i < svc_table_n_daemons; i++)
        if (strcmp(svc_table_daemons[i].binary, name) == 0)
            return atoi(tsupport_env_req(svc_table_daemons[i].port_env));
    cr_assert_fail("no default port known for %s: pass one", name);
    return 0;
}

/* Opens a new LAYBY_TEST_TMP/<name>-<n>.log (first free n) and names the pid file. */
static int
log_open(tsupport_proc *p, const char *tmp)
{
    snprintf(p->pid_file, sizeof p->pid_file, "%s/run", tmp);
    mkdir(p->pid_file, 0755);
    for (int n = 1; n <= DAEMON_LOGS_MAX; n++) {
        snprintf(p->log, sizeof p->log, "%s/%s-%d.log", tmp, p->name, n);
        int fd = open(p->log, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            snprintf(p->pid_file, sizeof p->pid_file, "%s/run/%s-%d.pid", tmp, p->name, n);
            return fd;
        }
        if (errno != EEXIST)
            break;
    }
    cr_assert_fail("cannot create a log file for %s in %s: %s", p->name, tmp, strerror(errno));
    return -1;
}

/* With LAYBY_TEST_CORE_DIR set (bench/chaos.sh), the daemon whose log is
 * <name>-<n>.log runs in <LAYBY_TEST_CORE_DIR>/<name>-<n>/, which the
 * parent creates here, so that a crash leaves its core file there (with
 * the usual core_pattern "core", relative to the crashing process's
 * folder; bench/chaos.sh lists them and says where they go otherwise).
 * out is "" when unset or when the folder cannot be made. */
static void
core_dir_make(char *out, size_t cap, const tsupport_proc *p)
{
    const char *root = getenv("LAYBY_TEST_CORE_DIR");
    out[0] = '\0';
    if (root == NULL || root[0] == '\0')
        return;
    const char *base = strrchr(p->log, '/');
    base = base != NULL ? base + 1 : p->log;
    int n = snprintf(out, cap, "%s/%.*s", root, (int)(strlen(base) - strlen(".log")), base);
    mkdir(root, 0755);
    if (n < 0 || (size_t)n >= cap || (mkdir(out, 0755) != 0 && errno != EEXIST))
        out[0] = '\0';
}

static void
child_exec(const char *path, char **argv, const char *const *env, int log_fd, const char *core_dir)
{
    if (core_dir[0] != '\0') {
        /* as large a core as the hard limit allows, written where we run */
        struct rlimit rl;
        if (getrlimit(RLIMIT_CORE, &rl) == 0) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_CORE, &rl);
        }
        if (chdir(core_dir) != 0)
            _exit(126);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    for (size_t i = 0; env != NULL && env[i] != NULL; i++)
        putenv(strdup(env[i]));
    execv(path, argv);
    _exit(127);
}

void
tsupport_daemon_spawn(tsupport_proc *p, const char *name, int port, const char *const *args,
                      const char *const *env)
{
    char path[PATH_MAX];
    char *argv[DAEMON_ARGS_MAX + 2];
    size_t argc = 0;

    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(path, sizeof path, "%s/%s", tsupport_env_req("LAYBY_BUILD_DIR"), name);
    if (access(path, X_OK) != 0)
        cr_assert_fail("%s is not built", path);
    p->port = port > 0 ? port : default_port(name);
    argv[argc++] = path;
    for (size_t i = 0; args != NULL && args[i] != NULL && argc <= DAEMON_ARGS_MAX; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;

    int fd = log_open(p, tsupport_env_req("LAYBY_TEST_TMP"));
    char core_dir[PATH_MAX];
    core_dir_make(core_dir, sizeof core_dir, p);
    pid_t pid = fork();
    if (pid < 0)
        cr_assert_fail("fork: %s", strerror(errno));
    if (pid == 0)
        child_exec(path, argv, env, fd, core_dir);
    close(fd);
    p->pid = pid;
    FILE *pf = fopen(p->pid_file, "w");
    if (pf != NULL) {
        fprintf(pf, "%d\n", (int)pid);
        fclose(pf);
    }
}

void
tsupport_daemon_wait_ready(tsupport_proc *p, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    while (!tsupport_http_ok(p->port, "/healthz")) {
        if (!tsupport_daemon_alive(p))
            cr_assert_fail("%s exited before it was ready; log: %s", p->name, p->log);
        if (mono_ms() >= deadline) {
            tsupport_daemon_kill(p);
            cr_assert_fail("%s not healthy on port %d after %d ms; log: %s", p->name, p->port,
                           timeout_ms, p->log);
        }
        pause_ms(POLL_STEP_MS);
    }
}

int64_t
tsupport_daemon_start_within(tsupport_proc *p, const char *name, int port, const char *const *args,
                             const char *const *env, int ready_ms)
{
    int64_t t0 = mono_ms();
    tsupport_daemon_spawn(p, name, port, args, env);
    tsupport_daemon_wait_ready(p, ready_ms);
    return mono_ms() - t0;
}

void
tsupport_daemon_start(tsupport_proc *p, const char *name, int port, const char *const *args,
                      const char *const *env)
{
    tsupport_daemon_start_within(p, name, port, args, env, DAEMON_READY_MS);
}

static int
exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

static void
forget(tsupport_proc *p)
{
    unlink(p->pid_file);
    p->pid = 0;
}

bool
tsupport_daemon_alive(tsupport_proc *p)
{
    int status;
    if (p->pid == 0)
        return false;
    if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
        p->status = exit_code(status);
        forget(p);
        return false;
    }
    return true;
}

int
tsupport_daemon_stop(tsupport_proc *p, int timeout_ms)
{
    int status = 0;
    if (p->pid == 0)
        return -1;
    kill(p->pid, SIGTERM);
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            break;
        if (r < 0) { /* not our child any more */
            forget(p);
            return -1;
        }
        if (mono_ms() >= deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            break;
        }
        pause_ms(POLL_STEP_MS);
    }
    forget(p);
    p->status = exit_code(status);
    return p->status;
}

void
tsupport_daemon_kill(tsupport_proc *p)
{
    if (p->pid == 0)
        return;
    int status = 0;
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->status = exit_code(status);
    forget(p);
}
