/* tsupport_ctl.c - running the real layby-ctl binary from a suite
 * (tsupport.h tsupport_ctl_run). */
#include <criterion/criterion.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tsupport.h"

extern char **environ;

int
tsupport_ctl_run(char **out, bool err_too, const char *const *env, const char *const *args)
{
    static char bin[512];
    snprintf(bin, sizeof bin, "%s/layby-ctl", tsupport_env_req("LAYBY_BUILD_DIR"));
    const char *argv[40] = { bin };
    size_t n = 1;
    while (args[n - 1] != NULL && n + 1 < LB_COUNTOF(argv)) {
        argv[n] = args[n - 1];
        n++;
    }
    /* environ plus the extra entries */
    size_t ne = 0, nx = 0;
    while (environ[ne] != NULL)
        ne++;
    while (env != NULL && env[nx] != NULL)
        nx++;
    const char **envp = calloc(ne + nx + 1, sizeof *envp);
    cr_assert_not_null(envp);
    for (size_t i = 0; i < nx; i++)
        envp[i] = env[i];
    for (size_t i = 0; i < ne; i++)
        envp[nx + i] = environ[i]; /* the extra entries come first: getenv finds them */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    if (err_too)
        posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    pid_t pid;
    cr_assert_eq(posix_spawn(&pid, bin, &fa, NULL, (char *const *)argv, (char *const *)envp), 0,
                 "%s", bin);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    close(fds[1]);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t k;
    while (buf != NULL && (k = read(fds[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t)k;
        if (cap - len < 4096)
            buf = realloc(buf, cap *= 2);
    }
    close(fds[0]);
    cr_assert_not_null(buf);
    buf[len] = '\0';
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "layby-ctl died: %s", buf);
    cr_assert_null(strstr(buf, "Sanitizer"), "%s", buf);
    cr_assert_null(strstr(buf, "runtime error"), "%s", buf);
    *out = buf;
    return WEXITSTATUS(status);
}
