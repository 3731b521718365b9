/* tchaos.c - the faults of the chaos run and its timeline (tchaos.h). */
#include "tchaos.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lb.h"
#include "tsupport.h"

uint64_t
tchaos_mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int
tchaos_pick(uint64_t *s, int n)
{
    return n <= 1 ? 0 : (int)(tchaos_mix64(s) % (uint64_t)n);
}

/* --- the plan ------------------------------------------------------------------ */

/* clang-format off */
/* The special faults and where in the window each goes (per mille). */
static const struct {
    tchaos_kind kind;
    int share;
} specials[] = {
    { TCHAOS_PG_CUT,     150 },
    { TCHAOS_TWIN_KILL,  220 },
    { TCHAOS_NATS_KILL,  300 },
    { TCHAOS_PG_CUT,     420 },
    { TCHAOS_PG_CRASH,   520 },
    { TCHAOS_NATS_KILL,  700 },
    { TCHAOS_PG_CUT,     850 },
};
static const char *const kind_names[] = {
    [TCHAOS_KILL]      = "kill",
    [TCHAOS_TWIN_KILL] = "twin-kill",
    [TCHAOS_NATS_KILL] = "nats-kill",
    [TCHAOS_PG_CRASH]  = "pg-immediate",
    [TCHAOS_PG_CUT]    = "pg-cut",
};
/* clang-format on */

const char *
tchaos_kind_name(tchaos_kind k)
{
    return (size_t)k < LB_COUNTOF(kind_names) ? kind_names[k] : "?";
}

size_t
tchaos_plan(tchaos_event *out, size_t cap, uint64_t *rng, int64_t start_ms, int64_t end_ms,
            int gap_min_ms, int gap_max_ms, int n_targets, int n_roles)
{
    size_t n = 0;
    bool taken[TCHAOS_EVENTS_MAX] = { false };
    if (cap > TCHAOS_EVENTS_MAX)
        cap = TCHAOS_EVENTS_MAX;
    for (int64_t t = start_ms; t <= end_ms && n < cap;
         t += gap_min_ms + tchaos_pick(rng, gap_max_ms - gap_min_ms + 1))
        out[n++] = (tchaos_event){ .at_ms = t, .kind = TCHAOS_KILL };
    for (size_t s = 0; s < LB_COUNTOF(specials); s++) {
        int64_t want = start_ms + (end_ms - start_ms) * specials[s].share / 1000;
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (!taken[i] &&
                (best == n || llabs(out[i].at_ms - want) < llabs(out[best].at_ms - want)))
                best = i;
        if (best == n)
            break; /* fewer slots than specials: tchaos_plan_complete() says so */
        taken[best] = true;
        out[best].kind = specials[s].kind;
    }
    for (size_t i = 0; i < n; i++) {
        switch (out[i].kind) {
        case TCHAOS_KILL:
            out[i].target = tchaos_pick(rng, n_targets);
            break;
        case TCHAOS_TWIN_KILL:
            out[i].target = tchaos_pick(rng, 2);
            break;
        case TCHAOS_PG_CUT:
            out[i].target = tchaos_pick(rng, n_roles);
            break;
        default:
            break;
        }
    }
    return n;
}

bool
tchaos_plan_complete(const tchaos_event *ev, size_t n)
{
    unsigned seen = 0;
    for (size_t i = 0; i < n; i++)
        seen |= 1u << ev[i].kind;
    return seen == (1u << LB_COUNTOF(kind_names)) - 1;
}

/* --- the faults that are no daemon's ---------------------------------------------- */

static bool
pid_gone(void *arg)
{
    pid_t pid = *(pid_t *)arg;
    char path[64], buf[512];
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    const char *paren = strrchr(buf, ')'); /* a zombie nobody reaped yet is gone too */
    return paren != NULL && paren[1] == ' ' && paren[2] == 'Z';
}

void
tchaos_nats_kill(void)
{
    FILE *f = fopen(tsupport_env_req("LAYBY_TEST_NATS_PID_FILE"), "r");
    int pid = 0;
    cr_assert_not_null(f, "no nats-server pid file");
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    cr_assert(pid > 0, "no pid in the nats-server pid file");
    pid_t p = pid;
    cr_assert(kill(p, SIGKILL) == 0, "kill nats-server %d: %s", pid, strerror(errno));
    cr_assert(tsupport_poll_until(pid_gone, &p, 10000), "nats-server %d outlived SIGKILL", pid);
}

void
tchaos_pg_crash(void)
{
    const char *data = tsupport_env_req("LAYBY_TEST_PG_DATA");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd / && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D '%s' -w -t 60 "
             "-m immediate stop >/dev/null 2>&1",
             data);
    int rc = system(cmd);
    cr_assert(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "pg_ctl stop -m immediate (%d)",
              rc);
}

int
tchaos_pg_cut(const char *role)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE usename = '%s') t",
             role);
    return (int)tsupport_sql_int(sql);
}

/* --- the timeline ------------------------------------------------------------------ */

void
tchaos_rate_init(tchaos_rate *r, int64_t t0_ms, int n_secs)
{
    r->t0_ms = t0_ms;
    r->n_secs = n_secs;
    r->answered = calloc((size_t)n_secs, sizeof *r->answered);
    r->accepted = calloc((size_t)n_secs, sizeof *r->accepted);
    cr_assert(r->answered != NULL && r->accepted != NULL);
}

void
tchaos_rate_free(tchaos_rate *r)
{
    free(r->answered);
    free(r->accepted);
    r->answered = r->accepted = NULL;
}

static int64_t
rate_sec(const tchaos_rate *r)
{
    int64_t s = (lb_now_ms() - r->t0_ms) / 1000;
    return s < 0 ? 0 : s >= r->n_secs ? r->n_secs - 1 : s;
}

void
tchaos_rate_answered(tchaos_rate *r)
{
    if (r->answered != NULL)
        atomic_fetch_add(&r->answered[rate_sec(r)], 1);
}

void
tchaos_rate_accepted(tchaos_rate *r)
{
    if (r->accepted != NULL)
        atomic_fetch_add(&r->accepted[rate_sec(r)], 1);
}

bool
tchaos_rate_write(const tchaos_rate *r, int upto_s, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return false;
    fprintf(f, "sec,answered,accepted\n");
    for (int s = 0; s < upto_s && s < r->n_secs; s++)
        fprintf(f, "%d,%d,%d\n", s, atomic_load(&r->answered[s]), atomic_load(&r->accepted[s]));
    return fclose(f) == 0;
}
