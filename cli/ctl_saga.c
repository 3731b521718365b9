/* ctl_saga.c - `layby-ctl saga list|show`: sagas as schema saga holds them.
 *
 * Both only read (LAYBY_CTL_DATABASE_URL connects as the saga role). The
 * documents come from engine/orchestrator/saga_view.h, which the
 * orchestrator also answers the console's admin reads with; this file adds
 * the flags and the text output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ctl_saga_int.h"
#include "id.h"
#include "layby/v1/saga.pb-c.h"
#include "saga_orch.h"
#include "saga_view.h"

/* --- saga list ------------------------------------------------------------- */

typedef struct saga_list_conf {
    ctl_conn conn;
    const char *state;
    const char *type;
    const char *since;
    const char *correlation;
    const char *after;
    int64_t limit;
} saga_list_conf;

/* clang-format off */
static const cfg_opt saga_list_opts[] = {
    { "state",       NULL, CFG_STR, "",   offsetof(saga_list_conf, state),       0, 0,      "only sagas in this state (RUNNING, COMPENSATING, COMPLETED, FAILED, STUCK, RESOLVED, CANCELLED)" },
    { "type",        NULL, CFG_STR, "",   offsetof(saga_list_conf, type),        0, 0,      "only sagas of this type (order_place)" },
    { "since",       NULL, CFG_STR, "",   offsetof(saga_list_conf, since),       0, 0,      "only sagas changed at or after this time (RFC 3339)" },
    { "correlation", NULL, CFG_STR, "",   offsetof(saga_list_conf, correlation), 0, 0,      "only the sagas of this flow (Layby-Correlation: an order's place and pay sagas)" },
    { "after",       NULL, CFG_STR, "",   offsetof(saga_list_conf, after),       0, 0,      "the next page: the cursor the previous page ended with" },
    { "limit",       NULL, CFG_INT, "50", offsetof(saga_list_conf, limit),       1, 100000, "sagas per page, newest first" },
};
/* clang-format on */
const ctl_flags ctl_saga_list_flags = CTL_FLAGS(saga_list_opts);

static void
list_text(json_t *items, const char *next)
{
    size_t i;
    json_t *o;
    printf("%-36s  %-12s %3s  %-12s %-14s %s\n", "ID", "TYPE", "VER", "STATE", "STEP", "UPDATED");
    json_array_foreach(items, i, o)
    {
        const char *st = json_string_value(json_object_get(o, "state"));
        char step[48];
        snprintf(step, sizeof step, "%d %s", (int)json_integer_value(json_object_get(o, "step")),
                 json_string_value(json_object_get(o, "stepName")));
        printf("%-36s  %-12s %3d  %s%-12s%s %-14s %s\n",
               json_string_value(json_object_get(o, "sagaId")),
               json_string_value(json_object_get(o, "type")),
               (int)json_integer_value(json_object_get(o, "version")), ctl_color(st), st,
               ctl_color_end(), step, json_string_value(json_object_get(o, "updated")));
    }
    printf("%zu saga%s\n", json_array_size(items), json_array_size(items) == 1 ? "" : "s");
    if (next != NULL)
        printf("more: --after %s\n", next);
}

static lb_status
list_run(PGconn *pg, const saga_view_filter *f, lb_err *err)
{
    json_t *doc = NULL;
    lb_status s = saga_view_list(&doc, pg, f, err);
    if (s != LB_OK)
        return s;
    if (ctl_out.json) {
        ctl_json_doc(doc);
        return LB_OK;
    }
    list_text(json_object_get(doc, "items"), json_string_value(json_object_get(doc, "nextCursor")));
    json_decref(doc);
    return LB_OK;
}

int
ctl_saga_list(const ctl_cmd *cmd, int argc, char **argv)
{
    saga_list_conf conf = { 0 };
    PGconn *pg = NULL;
    lb_err err;
    int rc = ctl_parse(&conf, cmd, argc, argv);
    if (rc >= 0)
        return rc;
    saga_view_filter f = { .state = conf.state,
                           .type = conf.type,
                           .saga_id = conf.correlation,
                           .cursor = conf.after,
                           .limit = conf.limit };
    if (conf.since[0] != '\0') {
        int64_t ms = 0;
        if (lb_time_parse(&ms, conf.since, &err) != LB_OK)
            return ctl_usage_error(cmd, "--since: %s", err.msg);
        f.since_ms = ms > 0 ? ms : 1;
    }
    if (saga_view_filter_check(&f, &err) != LB_OK) /* names the flag's value */
        return ctl_usage_error(cmd, "%s", err.msg);
    rc = ctl_pg_open(&pg, &conf.conn, &err) == LB_OK && saga_view_registry(&err) != NULL &&
                 list_run(pg, &f, &err) == LB_OK
             ? CTL_EXIT_OK
             : ctl_fail(cmd, &err);
    PQfinish(pg);
    return rc;
}

static void
show_text(json_t *s)
{
    json_t *v, *o;
    size_t i;
    const char *state = json_string_value(json_object_get(s, "state"));
    printf("saga          %s\n", json_string_value(json_object_get(s, "sagaId")));
    printf("type          %s v%d (started by %s)\n", json_string_value(json_object_get(s, "type")),
           (int)json_integer_value(json_object_get(s, "version")),
           json_string_value(json_object_get(s, "startedBy")));
    printf("correlation   %s\n", json_string_value(json_object_get(s, "correlation")));
    json_t *start = json_object_get(s, "start");
    char *start_text =
        json_dumps(json_object_get(start, "message"), JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("start         %s %s\n", json_string_value(json_object_get(start, "type")),
           start_text ? start_text : "");
    free(start_text);
    printf("status        %s%s%s\n", ctl_color(state), state, ctl_color_end());
    printf("step          %d %s\n", (int)json_integer_value(json_object_get(s, "step")),
           json_string_value(json_object_get(s, "stepName")));
    printf("created       %s\n", json_string_value(json_object_get(s, "created")));
    printf("updated       %s\n", json_string_value(json_object_get(s, "updated")));
    if ((v = json_object_get(s, "actor")) != NULL && json_string_length(v) > 0)
        printf("actor         %s\n", json_string_value(v));
    v = json_object_get(s, "timer");
    if (json_is_object(v))
        printf("timer         %s step %d attempt %d due %s\n",
               json_string_value(json_object_get(v, "kind")),
               (int)json_integer_value(json_object_get(v, "step")),
               (int)json_integer_value(json_object_get(v, "attempt")),
               json_string_value(json_object_get(v, "due")));
    else
        printf("timer         none\n");
    if ((v = json_object_get(s, "failure")) != NULL)
        printf("fail reason   %s: %s\n", json_string_value(json_object_get(v, "code")),
               json_string_value(json_object_get(v, "reason")));
    if ((v = json_object_get(s, "lastError")) != NULL)
        printf("last error    %s\n", json_string_value(v));
    if ((v = json_object_get(s, "resolved")) != NULL)
        printf("resolved by   %s: %s\n", json_string_value(json_object_get(v, "by")),
               json_string_value(json_object_get(v, "reason")));
    if ((v = json_object_get(s, "signal")) != NULL)
        printf("signal        %s\n", json_string_value(v));
    v = json_object_get(s, "record");
    if (v != NULL && !json_is_null(v)) {
        char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("record        %s\n", text ? text : "");
        free(text);
    }
    printf("steps:\n  %-3s %-12s %-8s %-13s %-8s %-6s %-12s %-10s %s\n", "#", "NAME", "KIND",
           "STATUS", "ATTEMPT", "TRIES", "COMP ATTEMPT", "COMP TRIES", "DURATION");
    json_array_foreach(json_object_get(s, "steps"), i, o)
    {
        printf("  %-3zu %-12s %-8s %-13s %-8d %-6d %-12d %-10d %lldms", i,
               json_string_value(json_object_get(o, "name")),
               json_string_value(json_object_get(o, "kind")),
               json_string_value(json_object_get(o, "status")),
               (int)json_integer_value(json_object_get(o, "attempt")),
               (int)json_integer_value(json_object_get(o, "tries")),
               (int)json_integer_value(json_object_get(o, "compAttempt")),
               (int)json_integer_value(json_object_get(o, "compTries")),
               (long long)json_integer_value(json_object_get(o, "durationMs")));
        size_t k;
        json_t *f;
        json_array_foreach(json_object_get(o, "flags"), k, f) printf(" %s", json_string_value(f));
        printf("\n");
    }
}

/* One timeline entry: the input (who and why for operators and signals, the
 * event decoded), the decision, then each command it sent. */
static void
entry_text(json_t *e)
{
    json_t *in = json_object_get(e, "input"), *v;
    const char *to = json_string_value(json_object_get(e, "to"));
    printf("  %s  %-7s %-7s %s->%s%s%s  %s\n", json_string_value(json_object_get(e, "at")),
           json_string_value(json_object_get(e, "kind")),
           json_string_value(json_object_get(e, "verdict")),
           json_string_value(json_object_get(e, "from")), ctl_color(to), to, ctl_color_end(),
           json_string_value(json_object_get(e, "line")));
    const char *actor = json_string_value(json_object_get(in, "actor"));
    const char *reason = json_string_value(json_object_get(in, "reason"));
    if ((v = json_object_get(in, "signal")) != NULL)
        printf("      signal    %s\n", json_string_value(v));
    if (actor != NULL || reason != NULL)
        printf("      by        %s: %s\n", actor ? actor : "?", reason ? reason : "");
    if ((v = json_object_get(in, "event")) != NULL) {
        char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("      event     %s %s\n", json_string_value(json_object_get(in, "eventType")),
               text ? text : "");
        free(text);
    } else if ((v = json_object_get(in, "eventType")) != NULL) {
        printf("      event     %s\n", json_string_value(v));
    }
    size_t k;
    json_t *c;
    json_array_foreach(json_object_get(e, "commands"), k, c)
    {
        printf("      %s %s %s step %d attempt %d\n",
               json_is_true(json_object_get(c, "compensate")) ? "undo  ->" : "sent  ->",
               json_string_value(json_object_get(c, "subject")),
               json_string_value(json_object_get(c, "type")),
               (int)json_integer_value(json_object_get(c, "step")),
               (int)json_integer_value(json_object_get(c, "attempt")));
    }
    if ((v = json_object_get(e, "redecided")) != NULL)
        printf("      this build decides instead: %s\n", json_string_value(v));
    if ((v = json_object_get(e, "redecideError")) != NULL)
        printf("      (commands unknown: %s)\n", json_string_value(v));
}

static lb_status
show_run(PGconn *pg, const char *id, lb_err *err)
{
    json_t *doc = NULL;
    lb_status s = saga_view_show(&doc, pg, id, SAGA_VIEW_PAGE_ALL, err);
    if (s != LB_OK)
        return s;
    if (ctl_out.json) {
        ctl_json_doc(doc);
        return LB_OK;
    }
    json_t *tl = json_object_get(doc, "timeline");
    show_text(doc);
    printf("timeline (%zu entries):\n", json_array_size(tl));
    size_t i;
    json_t *e;
    json_array_foreach(tl, i, e) entry_text(e);
    json_decref(doc);
    return LB_OK;
}

int
ctl_saga_show(const ctl_cmd *cmd, int argc, char **argv)
{
    struct {
        ctl_conn conn;
    } conf = { 0 };
    const char *id = NULL;
    PGconn *pg = NULL;
    lb_err err;
    int rc = ctl_id_args(&id, &conf, cmd, "saga id", argc, argv);
    if (rc >= 0)
        return rc;
    rc = ctl_pg_open(&pg, &conf.conn, &err) == LB_OK && show_run(pg, id, &err) == LB_OK
             ? CTL_EXIT_OK
             : ctl_fail(cmd, &err);
    PQfinish(pg);
    return rc;
}

lb_status
ctl_saga_print(PGconn *pg, const char *id, lb_err *err)
{
    return show_run(pg, id, err);
}
