/* saga_overview.c - the sagas part of the console's Overview
 * (saga_view.h: saga_view_overview), one statement that stays cheap on
 * millions of sagas:
 *   - unfinished sagas (RUNNING, COMPENSATING, STUCK) by type and state, all
 *     of them, an index-only scan of the partial index sagas_active, which
 *     carries saga_type (sql/0960): one index entry a saga in flight (in a
 *     shop, every order until its return window closes), never a finished
 *     one;
 *   - finished ones by type and state and by 10 s bucket for the last
 *     SAGA_OVERVIEW_BUCKETS buckets only, an index-only range scan of
 *     sagas_finished (finished_at) INCLUDE (saga_type, status) (sql/0930);
 *   - started ones per bucket, an index-only range of sagas_created.
 * So the cost follows the sagas in flight and the last five minutes' traffic,
 * never the table's size
 * (docs/BENCHMARKS.md "the Overview's saga counts": 2 M rows). All-time
 * totals of finished sagas are not counted (layby-ctl status does, by a
 * full scan); pruning removes them anyway. */
#include <stdlib.h>
#include <string.h>

#include "saga_view.h"

#define SAGA_OVERVIEW_BUCKET_S "10"
#define SAGA_OVERVIEW_BUCKETS  30

/* clang-format off */
/* The first bucket's start, written out in each WHERE rather than taken from a
 * CTE: the planner estimates a stable expression of now() (and then takes the
 * index), while a value from a sub-select is a guess of a third of the table,
 * which it scans (1.6 s on 2 M rows). */
#define SAGA_OVERVIEW_BUCKET_NOW "floor(extract(epoch FROM now()) / " SAGA_OVERVIEW_BUCKET_S ")::bigint"
#define SAGA_OVERVIEW_SINCE "to_timestamp((" SAGA_OVERVIEW_BUCKET_NOW " - 29) * " SAGA_OVERVIEW_BUCKET_S ")"
/* k: a = active (bucket 0), f = finished, s = started, n = now (its bucket). */
static const char overview_sql[] =
    "SELECT 'a', saga_type, status, 0::bigint, count(*) FROM saga.sagas"
    "  WHERE status IN ('RUNNING', 'COMPENSATING', 'STUCK') GROUP BY 2, 3"
    " UNION ALL"
    " SELECT 'f', saga_type, status, floor(extract(epoch FROM finished_at) / " SAGA_OVERVIEW_BUCKET_S ")::bigint,"
    "  count(*) FROM saga.sagas WHERE finished_at >= " SAGA_OVERVIEW_SINCE " GROUP BY 2, 3, 4"
    " UNION ALL"
    " SELECT 's', '', '', floor(extract(epoch FROM created_at) / " SAGA_OVERVIEW_BUCKET_S ")::bigint,"
    "  count(*) FROM saga.sagas WHERE created_at >= " SAGA_OVERVIEW_SINCE " GROUP BY 4"
    " UNION ALL SELECT 'n', '', '', " SAGA_OVERVIEW_BUCKET_NOW ", 0";
/* clang-format on */
_Static_assert(SAGA_OVERVIEW_BUCKETS == 30, "the SQL's 29 is SAGA_OVERVIEW_BUCKETS - 1");

enum {
    OV_KIND,
    OV_TYPE,
    OV_STATE,
    OV_BUCKET,
    OV_COUNT
};

typedef struct ov_bucket {
    json_int_t started, finished, completed;
} ov_bucket;

/* Adds n to the {type, state} row of arr (made when absent). */
static void
count_add(json_t *arr, const char *type, const char *state, json_int_t n, bool finished)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "type")), type) == 0 &&
            strcmp(json_string_value(json_object_get(o, "state")), state) == 0) {
            json_object_set_new(o, "count",
                                json_integer(json_integer_value(json_object_get(o, "count")) + n));
            return;
        }
    }
    json_array_append_new(arr, json_pack("{s:s,s:s,s:I,s:b}", "type", type, "state", state, "count",
                                         n, "finished", finished));
}

lb_status
saga_view_overview(json_t **out, PGconn *pg, lb_err *err)
{
    PGresult *r = saga_view_query(pg, overview_sql, 0, NULL, err);
    if (r == NULL)
        return err->code;
    long long now_b = 0;
    for (int i = 0; i < PQntuples(r); i++)
        if (PQgetvalue(r, i, OV_KIND)[0] == 'n')
            now_b = strtoll(PQgetvalue(r, i, OV_BUCKET), NULL, 10);
    long long first_b = now_b - (SAGA_OVERVIEW_BUCKETS - 1);
    ov_bucket b[SAGA_OVERVIEW_BUCKETS] = { 0 };
    json_t *sagas = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        char kind = PQgetvalue(r, i, OV_KIND)[0];
        long long at = strtoll(PQgetvalue(r, i, OV_BUCKET), NULL, 10) - first_b;
        json_int_t n = strtoll(PQgetvalue(r, i, OV_COUNT), NULL, 10);
        bool in = at >= 0 && at < SAGA_OVERVIEW_BUCKETS;
        if (kind == 'a' || kind == 'f')
            count_add(sagas, PQgetvalue(r, i, OV_TYPE), PQgetvalue(r, i, OV_STATE), n, kind == 'f');
        if (kind == 'f' && in) {
            b[at].finished += n;
            if (strcmp(PQgetvalue(r, i, OV_STATE), "COMPLETED") == 0)
                b[at].completed += n;
        } else if (kind == 's' && in)
            b[at].started += n;
    }
    PQclear(r);
    json_t *tp = json_array();
    for (int i = 0; i < SAGA_OVERVIEW_BUCKETS; i++) {
        char at[40];
        lb_time_format(at, sizeof at, (int64_t)(first_b + i) * 10 * 1000);
        json_array_append_new(tp,
                              json_pack("{s:s,s:I,s:I,s:I}", "at", at, "started", b[i].started,
                                        "finished", b[i].finished, "completed", b[i].completed));
    }
    char since[40];
    lb_time_format(since, sizeof since, (int64_t)first_b * 10 * 1000);
    *out = json_pack("{s:o,s:s,s:i,s:o}", "sagas", sagas, "finishedSince", since, "bucketSeconds",
                     10, "throughput", tp);
    return *out != NULL ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "overview");
}
