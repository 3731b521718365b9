/* cfg.c - one table per daemon drives flags, environment, defaults and --help. */
#include "cfg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct unit_row {
    const char *suffix;
    int64_t ms;
} unit_row;

static const unit_row duration_units[] = {
    { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 }, { "", 1 },
};

lb_status
cfg_duration_parse(int64_t *out_ms, const char *s, lb_err *err)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno != 0 || v < 0)
        return lb_err_set(err, LB_ERR_CONFIG, "'%s' is not a duration (e.g. 250ms, 30s, 5m)", s);
    for (size_t i = 0; i < LB_COUNTOF(duration_units); i++) {
        if (strcmp(end, duration_units[i].suffix) == 0) {
            if (v > INT64_MAX / duration_units[i].ms)
                return lb_err_set(err, LB_ERR_CONFIG, "duration '%s' is too large", s);
            *out_ms = v * duration_units[i].ms;
            return LB_OK;
        }
    }
    return lb_err_set(err, LB_ERR_CONFIG, "'%s' has an unknown unit (ms, s, m, h, d)", s);
}

static lb_status
parse_bool(bool *out, const char *s)
{
    static const char *const yes[] = { "1", "true", "yes", "on" };
    static const char *const no[] = { "0", "false", "no", "off" };
    for (size_t i = 0; i < LB_COUNTOF(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return LB_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return LB_OK;
        }
    }
    return LB_ERR_CONFIG;
}

/* Stores text value v for row o into conf, validating it. */
static lb_status
apply(void *conf, const cfg_opt *o, const char *v, const char *from, lb_err *err)
{
    char *dst = (char *)conf + o->offset;
    int64_t n = 0;
    switch (o->kind) {
    case CFG_STR:
        memcpy(dst, &v, sizeof v);
        return LB_OK;
    case CFG_BOOL: {
        bool b;
        if (parse_bool(&b, v) != LB_OK)
            return lb_err_set(err, LB_ERR_CONFIG, "--%s (%s): '%s' is not true or false", o->flag,
                              from, v);
        memcpy(dst, &b, sizeof b);
        return LB_OK;
    }
    case CFG_INT: {
        char *end = NULL;
        errno = 0;
        long long ll = strtoll(v, &end, 10);
        if (end == v || *end != '\0' || errno != 0)
            return lb_err_set(err, LB_ERR_CONFIG, "--%s (%s): '%s' is not an integer", o->flag,
                              from, v);
        n = ll;
        break;
    }
    case CFG_MS: {
        lb_err e2;
        if (cfg_duration_parse(&n, v, &e2) != LB_OK)
            return lb_err_set(err, LB_ERR_CONFIG, "--%s (%s): %s", o->flag, from, e2.msg);
        break;
    }
    }
    if (n < o->min || n > o->max)
        return lb_err_set(err, LB_ERR_CONFIG,
                          "--%s (%s): %s is out of range [%" PRId64 ", %" PRId64 "]", o->flag, from,
                          v, o->min, o->max);
    memcpy(dst, &n, sizeof n);
    return LB_OK;
}

/* First set variable of an env list "A|B". */
static const char *
env_lookup(const char *list, char *name, size_t cap)
{
    const char *p = list;
    while (p != NULL && *p != '\0') {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len < cap) {
            memcpy(name, p, len);
            name[len] = '\0';
            const char *v = getenv(name);
            if (v != NULL && v[0] != '\0')
                return v;
        }
        p = bar ? bar + 1 : NULL;
    }
    return NULL;
}

/* Finds the row of flag name[0..len) among all groups. */
static const cfg_opt *
find_flag(const cfg_group *groups, size_t ng, const char *name, size_t len, void **conf)
{
    for (size_t g = 0; g < ng; g++) {
        for (size_t i = 0; i < groups[g].n; i++) {
            const cfg_opt *o = &groups[g].opts[i];
            if (strlen(o->flag) == len && strncmp(o->flag, name, len) == 0) {
                *conf = groups[g].conf;
                return o;
            }
        }
    }
    return NULL;
}

/* Defaults, then the environment: flags come later and win. */
static lb_status
load_defaults_env(const cfg_group *grp, lb_err *err)
{
    for (size_t i = 0; i < grp->n; i++) {
        const cfg_opt *o = &grp->opts[i];
        if (o->def != NULL) {
            lb_status s = apply(grp->conf, o, o->def, "default", err);
            if (s != LB_OK)
                return s;
        }
        char name[128];
        const char *v = o->env ? env_lookup(o->env, name, sizeof name) : NULL;
        if (v != NULL) {
            lb_status s = apply(grp->conf, o, v, name, err);
            if (s != LB_OK)
                return s;
        }
    }
    return LB_OK;
}

static lb_status
check_required(const cfg_group *grp, lb_err *err)
{
    for (size_t i = 0; i < grp->n; i++) {
        const cfg_opt *o = &grp->opts[i];
        if (o->kind != CFG_STR || o->def != NULL)
            continue;
        const char *v;
        memcpy(&v, (char *)grp->conf + o->offset, sizeof v);
        if (v == NULL || v[0] == '\0')
            return lb_err_set(err, LB_ERR_CONFIG, "--%s is required (or set %s)", o->flag,
                              o->env ? o->env : "the flag");
    }
    return LB_OK;
}

lb_status
cfg_load_groups(const cfg_group *groups, size_t ng, int argc, char **argv, bool *help, lb_err *err)
{
    *help = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            *help = true;
            return LB_OK;
        }
    }
    lb_status s;
    for (size_t g = 0; g < ng; g++)
        if ((s = load_defaults_env(&groups[g], err)) != LB_OK)
            return s;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0)
            return lb_err_set(err, LB_ERR_CONFIG, "unexpected argument '%s' (see --help)", a);
        a += 2;
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        void *conf = NULL;
        const cfg_opt *o = find_flag(groups, ng, a, len, &conf);
        if (o == NULL)
            return lb_err_set(err, LB_ERR_CONFIG, "unknown flag '--%.*s' (see --help)", (int)len,
                              a);
        const char *v = eq ? eq + 1 : NULL;
        if (v == NULL) {
            if (o->kind == CFG_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0))
                v = "true";
            else if (i + 1 < argc)
                v = argv[++i];
            else
                return lb_err_set(err, LB_ERR_CONFIG, "--%s needs a value", o->flag);
        }
        if ((s = apply(conf, o, v, "flag", err)) != LB_OK)
            return s;
    }
    for (size_t g = 0; g < ng; g++)
        if ((s = check_required(&groups[g], err)) != LB_OK)
            return s;
    return LB_OK;
}

lb_status
cfg_load(void *conf, const cfg_opt *opts, size_t n, int argc, char **argv, bool *help, lb_err *err)
{
    const cfg_group g = { conf, opts, n };
    return cfg_load_groups(&g, 1, argc, argv, help, err);
}

static void
help_row(FILE *f, const cfg_opt *o)
{
    static const char *const kind_names[] = {
        [CFG_STR] = "TEXT", [CFG_INT] = "N", [CFG_BOOL] = "BOOL", [CFG_MS] = "DURATION"
    };
    fprintf(f, "  --%-22s %-8s %s\n", o->flag, kind_names[o->kind], o->help);
    fprintf(f, "  %-33s env %s, default %s\n", "", o->env ? o->env : "-",
            o->def == NULL ? "(required)" : (o->def[0] ? o->def : "(none)"));
}

void
cfg_help_write_groups(FILE *f, const char *prog, const char *about, const cfg_group *groups,
                      size_t ng)
{
    fprintf(f, "usage: %s [--flag value]...\n%s\n\nflags (environment variable, default):\n", prog,
            about);
    for (size_t g = 0; g < ng; g++)
        for (size_t i = 0; i < groups[g].n; i++)
            help_row(f, &groups[g].opts[i]);
}

void
cfg_help_write(FILE *f, const char *prog, const char *about, const cfg_opt *opts, size_t n)
{
    const cfg_group g = { NULL, opts, n };
    cfg_help_write_groups(f, prog, about, &g, 1);
}
