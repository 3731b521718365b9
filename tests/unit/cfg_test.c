/* cfg_test.c - settings from a table: defaults, environment (with fallbacks),
 * flags (which win), ranges, durations, required values, several groups and
 * the clear errors for bad values. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cfg.h"

typedef struct conf {
    const char *url;
    const char *name;
    int64_t batch;
    int64_t wait_ms;
    bool verbose;
} conf;

/* clang-format off */
static const cfg_opt rows[] = {
    { "url",     "T_URL",            CFG_STR,  NULL,    offsetof(conf, url),     0, 0,      "required" },
    { "name",    "T_NAME|T_FALLBACK", CFG_STR, "anon",  offsetof(conf, name),    0, 0,      "with fallback" },
    { "batch",   "T_BATCH",          CFG_INT,  "128",   offsetof(conf, batch),   1, 4096,   "range" },
    { "wait",    "T_WAIT",           CFG_MS,   "500ms", offsetof(conf, wait_ms), 1, 60000,  "duration" },
    { "verbose", "T_VERBOSE",        CFG_BOOL, "false", offsetof(conf, verbose), 0, 0,      "bool" },
};
/* clang-format on */

static void
clean_env(void)
{
    static const char *const vars[] = { "T_URL",   "T_NAME", "T_FALLBACK",
                                        "T_BATCH", "T_WAIT", "T_VERBOSE" };
    for (size_t i = 0; i < LB_COUNTOF(vars); i++)
        unsetenv(vars[i]);
}

TestSuite(cfg, .init = clean_env);

static lb_status
load(conf *c, int argc, char **argv, lb_err *err)
{
    bool help = false;
    memset(c, 0, sizeof *c);
    return cfg_load(c, rows, LB_COUNTOF(rows), argc, argv, &help, err);
}

Test(cfg, defaults_then_environment_then_flags)
{
    conf c;
    lb_err err;
    setenv("T_BATCH", "64", 1);
    setenv("T_FALLBACK", "from-fallback", 1);
    char *argv[] = { "prog", "--url", "nats://x", "--batch=32", "--verbose", NULL };
    cr_assert_eq(load(&c, 5, argv, &err), LB_OK, "%s", err.msg);
    cr_assert_str_eq(c.url, "nats://x");
    cr_assert_str_eq(c.name, "from-fallback", "the second env name is a fallback");
    cr_assert_eq(c.batch, 32, "a flag beats the environment");
    cr_assert_eq(c.wait_ms, 500, "default duration");
    cr_assert(c.verbose, "a bare boolean flag is true");
    setenv("T_NAME", "first", 1);
    cr_assert_eq(load(&c, 5, argv, &err), LB_OK);
    cr_assert_str_eq(c.name, "first", "the first env name wins over its fallback");
}

Test(cfg, durations_take_units)
{
    static const struct {
        const char *in;
        int64_t ms;
    } ok[] = { { "250ms", 250 },  { "30s", 30000 },    { "5m", 300000 },
               { "2h", 7200000 }, { "7d", 604800000 }, { "1500", 1500 } };
    for (size_t i = 0; i < LB_COUNTOF(ok); i++) {
        int64_t ms = -1;
        cr_assert_eq(cfg_duration_parse(&ms, ok[i].in, NULL), LB_OK, "%s", ok[i].in);
        cr_assert_eq(ms, ok[i].ms, "%s", ok[i].in);
    }
    int64_t ms;
    cr_assert_eq(cfg_duration_parse(&ms, "5 minutes", NULL), LB_ERR_CONFIG);
    cr_assert_eq(cfg_duration_parse(&ms, "-1s", NULL), LB_ERR_CONFIG);
    cr_assert_eq(cfg_duration_parse(&ms, "s", NULL), LB_ERR_CONFIG);
}

typedef struct bad_case {
    char args[3][32];
    char env_batch[16];
    char want[64]; /* the message must mention this */
} bad_case;

ParameterizedTestParameters(cfg, bad_values_are_refused_with_a_clear_message)
{
    static bad_case cases[] = {
        { { "--url", "u", "--batch=abc" }, "", "'abc' is not an integer" },
        { { "--url", "u", "--batch=0" }, "", "out of range" },
        { { "--url", "u", "--batch=5000" }, "", "out of range" },
        { { "--url", "u", "--wait=5x" }, "", "unknown unit" },
        { { "--url", "u", "--verbose=maybe" }, "", "not true or false" },
        { { "--url", "u", "--nope=1" }, "", "unknown flag '--nope'" },
        { { "--url", "u", "stray" }, "", "unexpected argument 'stray'" },
        { { "--batch=1", "", "" }, "", "--url is required" },
        { { "--url", "u", "" }, "99999", "T_BATCH" },
    };
    return cr_make_param_array(bad_case, cases, LB_COUNTOF(cases));
}

ParameterizedTest(bad_case *bc, cfg, bad_values_are_refused_with_a_clear_message)
{
    clean_env();
    if (bc->env_batch[0])
        setenv("T_BATCH", bc->env_batch, 1);
    char *argv[5] = { "prog" };
    int argc = 1;
    for (int i = 0; i < 3; i++)
        if (bc->args[i][0])
            argv[argc++] = bc->args[i];
    conf c;
    lb_err err;
    cr_assert_eq(load(&c, argc, argv, &err), LB_ERR_CONFIG);
    cr_assert(strstr(err.msg, bc->want) != NULL, "'%s' lacks '%s'", err.msg, bc->want);
}

Test(cfg, help_is_noticed_before_anything_is_checked)
{
    conf c;
    bool help = false;
    char *argv[] = { "prog", "--batch=abc", "--help", NULL };
    cr_assert_eq(cfg_load(&c, rows, LB_COUNTOF(rows), 3, argv, &help, NULL), LB_OK);
    cr_assert(help);
}

typedef struct extra {
    int64_t keep_ms;
} extra;

Test(cfg, two_groups_share_one_command_line)
{
    static const cfg_opt extra_rows[] = {
        { "keep", "T_KEEP", CFG_MS, "30d", offsetof(extra, keep_ms), 60000, INT64_MAX, "keep" },
    };
    conf c;
    extra e;
    memset(&c, 0, sizeof c);
    memset(&e, 0, sizeof e);
    const cfg_group groups[] = { { &c, rows, LB_COUNTOF(rows) },
                                 { &e, extra_rows, LB_COUNTOF(extra_rows) } };
    char *argv[] = { "prog", "--keep", "2h", "--url", "u", NULL };
    bool help = false;
    lb_err err;
    cr_assert_eq(cfg_load_groups(groups, 2, 5, argv, &help, &err), LB_OK, "%s", err.msg);
    cr_assert_eq(e.keep_ms, 7200000);
    cr_assert_str_eq(c.url, "u");
    char *bad[] = { "prog", "--keep", "1s", "--url", "u", NULL };
    cr_assert_eq(cfg_load_groups(groups, 2, 5, bad, &help, &err), LB_ERR_CONFIG,
                 "below the group's minimum");
}
