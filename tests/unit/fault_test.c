/* fault_test.c - crash points (engine/fault.h): in a test build the named
 * point kills with SIGKILL on its n-th pass and says so on stderr; other
 * points and unset LAYBY_FAULT do nothing. A build without LAYBY_TEST_HOOKS
 * (Release) has no crash points: LAYBY_FAULT is ignored. A hold point never
 * kills; it is held only when named, and never in Release. Each case runs in a
 * child process, since a firing point kills whoever passes it. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/fault.h"

/* Runs fault_init() with LAYBY_FAULT = spec (NULL = unset) in a child, passes
 * `point` `passes` times, then exits 1 if `point` is held (fault_held()), else
 * 0. Returns the child's wait status. */
static int
run_child(const char *spec, const char *point, int passes)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (spec != NULL)
            setenv("LAYBY_FAULT", spec, 1);
        else
            unsetenv("LAYBY_FAULT");
        fault_init();
        (void)point; /* fault_point() is empty, fault_held() false, without LAYBY_TEST_HOOKS */
        for (int i = 0; i < passes; i++)
            fault_point(point);
        _exit(fault_held(point) ? 1 : 0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

/* 1 when `point` is held under LAYBY_FAULT = spec, 0 when not; never killed. */
static int
held_in_child(const char *spec, const char *point)
{
    int status = run_child(spec, point, 0);
    cr_assert(WIFEXITED(status), "a hold point must never kill");
    return WEXITSTATUS(status);
}

#ifdef LAYBY_TEST_HOOKS

Test(fault, a_hold_point_is_held_only_when_named)
{
    cr_assert_eq(held_in_child("relay.hold", "relay.hold"), 1);
    cr_assert_eq(held_in_child("svc.after_commit", "relay.hold"), 0);
}

static bool
killed(int status)
{
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

Test(fault, the_named_point_kills_on_its_nth_pass)
{
    cr_assert(!killed(run_child("svc.after_commit:3", "svc.after_commit", 2)), "fired early");
    cr_assert(killed(run_child("svc.after_commit:3", "svc.after_commit", 3)));
    cr_assert(killed(run_child("svc.after_commit", "svc.after_commit", 1)), "default: first");
}

Test(fault, other_points_and_no_setting_do_nothing)
{
    int rc = run_child("svc.after_commit", "relay.after_publish", 5);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    rc = run_child(NULL, "svc.after_commit", 5);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
}

#else

Test(fault, a_build_without_test_hooks_ignores_layby_fault)
{
    int rc = run_child("svc.after_commit", "svc.after_commit", 3);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "a crash point fired in a release build");
    cr_assert_eq(held_in_child("relay.hold", "relay.hold"), 0, "a hold point in a release build");
}

#endif
