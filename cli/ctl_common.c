/* ctl_common.c - flag parsing and connections shared by the layby-ctl commands. */
#include "ctl.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"

ctl_output ctl_out;

#define CTL_ROWS_MAX 32

/* clang-format off */
static const cfg_opt ctl_nats_rows[] = {
    { "nats-url",      "LAYBY_NATS_URL",          CFG_STR, "nats://127.0.0.1:14222", offsetof(ctl_conn, nats_url),      0, 0, "NATS server URL, or a comma-separated list of a cluster's nodes" },
    { "nats-user",     "LAYBY_CTL_NATS_USER",     CFG_STR, "",                       offsetof(ctl_conn, nats_user),     0, 0, "NATS user (the admin user of etc/nats-users.tsv)" },
    { "nats-password", "LAYBY_CTL_NATS_PASSWORD", CFG_STR, "",                       offsetof(ctl_conn, nats_password), 0, 0, "its password" },
};
static const cfg_opt ctl_pg_rows[] = {
    { "db-url",        "LAYBY_CTL_DATABASE_URL",  CFG_STR, "",                       offsetof(ctl_conn, db_url),        0, 0, "PostgreSQL URL" },
};
static const cfg_opt ctl_timeout_rows[] = {
    { "timeout",       "LAYBY_CTL_TIMEOUT",       CFG_MS,  "5s",                     offsetof(ctl_conn, timeout_ms),    100, 600000, "connect and request timeout" },
};
/* clang-format on */

static size_t
rows_add(cfg_opt *dst, size_t n, const cfg_opt *src, size_t k)
{
    for (size_t i = 0; i < k && n < CTL_ROWS_MAX; i++)
        dst[n++] = src[i];
    return n;
}

int
ctl_args(void *conf, const ctl_cmd *cmd, const cfg_opt *opts, size_t n, int argc, char **argv)
{
    cfg_opt rows[CTL_ROWS_MAX];
    size_t k = rows_add(rows, 0, opts, n);
    char prog[128];
    bool help = false;
    lb_err err;

    if (cmd->needs & CTL_NEEDS_NATS)
        k = rows_add(rows, k, ctl_nats_rows, LB_COUNTOF(ctl_nats_rows));
    if (cmd->needs & CTL_NEEDS_PG)
        k = rows_add(rows, k, ctl_pg_rows, LB_COUNTOF(ctl_pg_rows));
    if (cmd->needs != 0)
        k = rows_add(rows, k, ctl_timeout_rows, LB_COUNTOF(ctl_timeout_rows));
    snprintf(prog, sizeof prog, "layby-ctl %s%s%s", cmd->name, cmd->usage ? " " : "",
             cmd->usage ? cmd->usage : "");
    if (cfg_load(conf, rows, k, argc, argv, &help, &err) != LB_OK)
        return ctl_usage_error(cmd, "%s", err.msg);
    if (help) {
        cfg_help_write(stdout, prog, cmd->help, rows, k);
        printf("  --json  one JSON document (JSON lines for lists and streams); LAYBY_CTL_JSON=1\n"
               "exit: 0 ok, 1 failure or unhealthy, 2 wrong arguments\n");
        return CTL_EXIT_OK;
    }
    return -1;
}

int
ctl_parse(void *conf, const ctl_cmd *cmd, int argc, char **argv)
{
    return ctl_args(conf, cmd, cmd->flags ? cmd->flags->rows : NULL, cmd->flags ? cmd->flags->n : 0,
                    argc, argv);
}

int
ctl_usage_error(const ctl_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "layby-ctl %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: layby-ctl %s%s%s [--flag value]...   (layby-ctl %s --help)\n",
            cmd->name, cmd->usage ? " " : "", cmd->usage ? cmd->usage : "", cmd->name);
    return CTL_EXIT_USAGE;
}

void
ctl_progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* Status words and their colours; anything else stays plain. */
static const struct {
    const char *word;
    const char *ansi;
} ctl_colors[] = {
    { "ok", "\033[32m" },           { "COMPLETED", "\033[32m" }, { "RUNNING", "\033[36m" },
    { "COMPENSATING", "\033[33m" }, { "FAILED", "\033[31m" },    { "STUCK", "\033[1;31m" },
    { "FAIL", "\033[1;31m" },       { "MISSING", "\033[1;31m" }, { "DOWN", "\033[1;31m" },
    { "RESOLVED", "\033[35m" },     { "CANCELLED", "\033[33m" }, { "UNHEALTHY", "\033[1;31m" },
};

const char *
ctl_color(const char *word)
{
    if (!ctl_out.color || word == NULL)
        return "";
    for (size_t i = 0; i < LB_COUNTOF(ctl_colors); i++)
        if (strcmp(ctl_colors[i].word, word) == 0)
            return ctl_colors[i].ansi;
    return "";
}

const char *
ctl_color_end(void)
{
    return ctl_out.color ? "\033[0m" : "";
}

static void
json_write(json_t *o, size_t flags)
{
    char *text = json_dumps(o, flags | JSON_PRESERVE_ORDER);
    if (text != NULL) {
        puts(text);
        free(text);
    }
    json_decref(o);
}

void
ctl_json_line(json_t *o)
{
    json_write(o, JSON_COMPACT);
}

void
ctl_json_doc(json_t *o)
{
    json_write(o, JSON_INDENT(2));
}

lb_status
ctl_nats_err(lb_err *err, natsStatus s, const char *what)
{
    const char *last = nats_GetLastError(NULL);
    return lb_err_set(err, s == NATS_TIMEOUT ? LB_ERR_TIMEOUT : LB_ERR_BUS, "%s: %s%s%s", what,
                      natsStatus_GetText(s), (last && last[0]) ? ": " : "", last ? last : "");
}

lb_status
ctl_nats_open(natsConnection **nc, jsCtx **js, const ctl_conn *c, lb_err *err)
{
    natsOptions *o = NULL;
    natsStatus s;
    lb_status rc = LB_OK;

    *nc = NULL;
    if (js != NULL)
        *js = NULL;
    if ((s = natsOptions_Create(&o)) != NATS_OK) {
        rc = ctl_nats_err(err, s, "NATS options");
        goto out;
    }
    /* The daemons' rule: LAYBY_NATS_URL may list a cluster's nodes. */
    if ((rc = bus_servers_set(o, c->nats_url, err)) != LB_OK)
        goto out;
    if ((s = natsOptions_SetName(o, "layby-ctl")) != NATS_OK ||
        (s = natsOptions_SetTimeout(o, c->timeout_ms)) != NATS_OK ||
        (s = natsOptions_SetAllowReconnect(o, false)) != NATS_OK) {
        rc = ctl_nats_err(err, s, "NATS options");
        goto out;
    }
    if (c->nats_user != NULL && c->nats_user[0] != '\0' &&
        (s = natsOptions_SetUserInfo(o, c->nats_user, c->nats_password)) != NATS_OK) {
        rc = ctl_nats_err(err, s, "NATS options");
        goto out;
    }
    if ((s = natsConnection_Connect(nc, o)) != NATS_OK) {
        rc = ctl_nats_err(err, s, c->nats_url);
        goto out;
    }
    if (js != NULL) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = c->timeout_ms;
        if ((s = natsConnection_JetStream(js, *nc, &jo)) != NATS_OK) {
            rc = ctl_nats_err(err, s, "JetStream context");
            natsConnection_Destroy(*nc);
            *nc = NULL;
        }
    }
out:
    natsOptions_Destroy(o);
    return rc;
}

void
ctl_nats_close(natsConnection *nc, jsCtx *js)
{
    jsCtx_Destroy(js);
    if (nc != NULL) {
        natsConnection_Close(nc);
        natsConnection_Destroy(nc);
    }
}

lb_status
ctl_pg_open(PGconn **out, const ctl_conn *c, lb_err *err)
{
    char secs[24];
    if (c->db_url == NULL || c->db_url[0] == '\0')
        return lb_err_set(err, LB_ERR_CONFIG,
                          "no database URL (--db-url or LAYBY_CTL_DATABASE_URL)");
    snprintf(secs, sizeof secs, "%lld", (long long)(c->timeout_ms + 999) / 1000);
    const char *const keys[] = { "dbname", "connect_timeout", "application_name", NULL };
    const char *const vals[] = { c->db_url, secs, "layby-ctl", NULL };
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (pg == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "PostgreSQL connection");
    if (PQstatus(pg) != CONNECTION_OK) {
        const char *m = PQerrorMessage(pg);
        lb_err_set(err, LB_ERR_DB, "PostgreSQL: %.*s", (int)strcspn(m, "\n"), m);
        PQfinish(pg);
        return LB_ERR_DB;
    }
    *out = pg;
    return LB_OK;
}

int
ctl_fail(const ctl_cmd *cmd, const lb_err *err)
{
    fprintf(stderr, "layby-ctl %s: %s\n", cmd->name, err->msg);
    return CTL_EXIT_FAIL;
}
