/* console_test.c - the operations console (issue 24) in headless Chromium.
 *
 * This suite makes the data and runs the browser: the real stack (layby-edge,
 * layby-member, layby-orchestrator and the test saga's participant), an admin
 * made by `layby-ctl member grant-admin`, a member without the role, a STUCK
 * saga and one with a 1,000-entry log made by the test, and the saga's
 * document as `layby-ctl saga show --json` prints it. Then it runs
 * tests/browser/console.mjs (puppeteer-core driving Debian's /usr/bin/chromium
 * through the DevTools protocol), which signs in, walks the pages, compares
 * what they show with layby-ctl's document and keeps a screenshot of each page
 * at 1280 and 390 px in BUILD/Testing/console/. Its node_modules come from
 * `npm ci --prefix tests/browser` (scripts/dev test runs it). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/bus.h"
#include "engine/id.h"
#include "tsupport.h"

#define WAIT_MS  30000
#define PW       "correct horse battery"
/* A STUCK saga's log grows only by what the test adds: this many repeats. */
#define LONG_LOG 1000

extern char **environ;

static struct bus *admin;
static tsupport_proc procs[4];

static void
setup(void)
{
    admin = tsupport_sagatest_open("console-test");
}

static void
teardown(void)
{
    tsupport_stack_close(&admin, procs, LB_COUNTOF(procs));
}

TestSuite(console, .init = setup, .fini = teardown, .timeout = 480);

/* A member `user` (password PW) who can sign in. The verification mail's
 * round trip is members_test's; here the row is marked verified directly. */
static void
member_make(const char *user, const char *phone)
{
    char body[300], id[ID_STR_LEN] = "";
    snprintf(body, sizeof body,
             "{\"username\":\"%s\",\"password\":\"%s\",\"email\":\"%s@example.com\","
             "\"phone\":\"%s\"}",
             user, PW, user, phone);
    tsupport_resp r;
    const char *const h[] = { "Content-Type: application/json", NULL };
    tsupport_http_call(&r, procs[3].port, "POST", "/api/v1/members", h, body, false);
    cr_assert_eq(r.status, 201, "sign-up %s: %ld %s", user, r.status, r.body);
    json_t *j = tsupport_http_json(&r);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "memberId")));
    json_decref(j);
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE member.members SET status = 'ACTIVE' WHERE member_id = '%s'",
             id);
    tsupport_sql(sql);
}

/* Writes text to path. */
static void
file_put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* Runs node on the browser script with env ("NAME=value", NULL-terminated)
 * added; its output goes to the test's. Returns node's exit status. */
static int
browser_run(const char *const *env)
{
    char script[512];
    snprintf(script, sizeof script, "%s/tests/browser/console.mjs", LAYBY_SOURCE_DIR);
    size_t ne = 0, nx = 0;
    while (environ[ne] != NULL)
        ne++;
    while (env[nx] != NULL)
        nx++;
    const char **envp = calloc(ne + nx + 1, sizeof *envp);
    cr_assert_not_null(envp);
    for (size_t i = 0; i < nx; i++)
        envp[i] = env[i];
    for (size_t i = 0; i < ne; i++)
        envp[nx + i] = environ[i];
    const char *argv[] = { "node", script, NULL };
    fflush(stdout);
    fflush(stderr);
    pid_t pid;
    int rc = posix_spawnp(&pid, "node", NULL, NULL, (char *const *)argv, (char *const *)envp);
    free(envp);
    cr_assert_eq(rc, 0, "cannot start node (is nodejs installed?)");
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Test(console, an_admin_reads_sagas_in_chromium_and_a_member_sees_nothing)
{
    char modules[600];
    snprintf(modules, sizeof modules, "%s/tests/browser/node_modules/puppeteer-core",
             LAYBY_SOURCE_DIR);
    cr_assert_eq(access(modules, R_OK), 0, "no %s: run npm ci --prefix tests/browser", modules);
    cr_assert_eq(access("/usr/bin/chromium", X_OK), 0, "no /usr/bin/chromium: apt-get chromium");

    tsupport_sagatest_start(&procs[0], NULL);
    tsupport_daemon_start(&procs[1], "layby-orchestrator", 0, NULL, NULL);
    tsupport_daemon_start(&procs[2], "layby-member", 0, NULL, NULL);
    tsupport_daemon_start(&procs[3], "layby-edge", 0, NULL, NULL);

    member_make("ada", "010-1111-2222");
    member_make("mel", "010-3333-4444");
    char *out = NULL;
    cr_assert_eq(tsupport_ctl_run(&out, true, NULL,
                                  (const char *const[]){ "member", "grant-admin", "ada", NULL }),
                 0, "%s", out);
    free(out);

    char stuck[ID_STR_LEN], long_log[ID_STR_LEN], done[ID_STR_LEN];
    tsupport_test_saga_start(admin, stuck, "2:fail 1:undofail=99");
    tsupport_test_saga_start(admin, long_log, "2:fail 1:undofail=99");
    tsupport_test_saga_start(admin, done, "");
    tsupport_saga_wait_status(WAIT_MS, stuck, "STUCK");
    tsupport_saga_wait_status(WAIT_MS, long_log, "STUCK");
    tsupport_saga_wait_status(WAIT_MS, done, "COMPLETED");
    /* its last input repeated, as a flood of redelivered events leaves it */
    char sql[640];
    snprintf(sql, sizeof sql,
             "INSERT INTO saga.saga_log (saga_id, at, msg_id, input_kind, input, verdict,"
             " from_status, to_status, line)"
             " SELECT saga_id, at + g * interval '1 ms', msg_id || '-' || g, input_kind, input,"
             " 'IGNORED', to_status, to_status, 'a repeat' FROM saga.saga_log,"
             " generate_series(1, %d) g WHERE saga_id = '%s'"
             " AND id = (SELECT max(id) FROM saga.saga_log WHERE saga_id = '%s')",
             LONG_LOG, long_log, long_log);
    tsupport_sql(sql);

    /* what the saga page must show: layby-ctl's document */
    const char *tmp = tsupport_env_req("LAYBY_TEST_TMP");
    char doc_path[600], shots[600];
    snprintf(doc_path, sizeof doc_path, "%s/console-saga.json", tmp);
    cr_assert_eq(tsupport_ctl_run(&out, false, NULL,
                                  (const char *const[]){ "saga", "show", stuck, "--json", NULL }),
                 0, "%s", out);
    file_put(doc_path, out);
    free(out);
    snprintf(shots, sizeof shots, "%s/Testing", tsupport_env_req("LAYBY_BUILD_DIR"));
    mkdir(shots, 0755);
    strcat(shots, "/console");
    mkdir(shots, 0755);

    char url[80], e_doc[640], e_shots[640], e_stuck[80], e_long[80], e_done[80];
    snprintf(url, sizeof url, "LAYBY_CONSOLE_URL=http://127.0.0.1:%d", procs[3].port);
    snprintf(e_doc, sizeof e_doc, "LAYBY_CONSOLE_SAGA_JSON=%s", doc_path);
    snprintf(e_shots, sizeof e_shots, "LAYBY_CONSOLE_SHOTS=%s", shots);
    snprintf(e_stuck, sizeof e_stuck, "LAYBY_CONSOLE_STUCK=%s", stuck);
    snprintf(e_long, sizeof e_long, "LAYBY_CONSOLE_LONG=%s", long_log);
    snprintf(e_done, sizeof e_done, "LAYBY_CONSOLE_DONE=%s", done);
    const char *const env[] = { url,
                                e_doc,
                                e_shots,
                                e_stuck,
                                e_long,
                                e_done,
                                "LAYBY_CONSOLE_ADMIN=ada",
                                "LAYBY_CONSOLE_MEMBER=mel",
                                "LAYBY_CONSOLE_PASSWORD=" PW,
                                NULL };
    cr_assert_eq(browser_run(env), 0, "the browser test failed (its output is above)");
}
