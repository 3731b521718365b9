/* outbox.c - inbox claims and outbox writes inside a service transaction.
 *
 * Both work on whole batches: one statement marks every id of a batch in the
 * inbox and one statement writes every row a batch produced, so a batch of 64
 * messages costs two round trips here, not 128 (PLATFORM.md: round trips and
 * commits are what limit throughput). Arrays travel as text array literals
 * (store_array). */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* clang-format off */
static const char OUTBOX_SQL_INBOX_CLAIM[] =
    "INSERT INTO inbox (msg_id) SELECT unnest($1::text[]) "
    "ON CONFLICT DO NOTHING RETURNING msg_id";
/* The claim of a speculative batch (svc.h svc_speculate_fn): a duplicate
 * fails the transaction, which then runs again the ordinary way. */
static const char OUTBOX_SQL_INBOX_CLAIM_ALL[] =
    "INSERT INTO inbox (msg_id) SELECT unnest($1::text[])";
static const char OUTBOX_SQL_INSERT[] =
    "INSERT INTO outbox (id, subject, msg_type, correlation, causation, actor, reply, traceparent, body) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::text[], $8::text[], $9::bytea[])";

const store_stmt outbox_stmts[] = {
    { "outbox_inbox_claim", OUTBOX_SQL_INBOX_CLAIM },
    { "outbox_inbox_claim_all", OUTBOX_SQL_INBOX_CLAIM_ALL },
    { "outbox_insert",      OUTBOX_SQL_INSERT },
};
/* clang-format on */
const size_t outbox_stmts_len = LB_COUNTOF(outbox_stmts);

/* ticket NULL: the strict claim, sent without keeping its (empty) result. */
static lb_status
claim_send(store *s, const char *const *ids, size_t n, int *ticket, lb_err *err)
{
    store_array a = { 0 };
    store_array_begin(&a);
    for (size_t i = 0; i < n; i++)
        store_array_text(&a, ids[i]);
    store_array_end(&a);
    if (a.oom) {
        store_array_free(&a);
        return lb_err_set(err, LB_ERR_NOMEM, "inbox ids");
    }
    const char *params[] = { a.p };
    lb_status st = ticket != NULL ? store_send(s, ticket, "outbox_inbox_claim", 1, params, 0, err)
                                  : store_exec(s, NULL, "outbox_inbox_claim_all", 1, params, err);
    store_array_free(&a);
    return st;
}

lb_status
inbox_claim_send(store *s, const char *const *ids, size_t n, int *ticket, lb_err *err)
{
    return claim_send(s, ids, n, ticket, err);
}

lb_status
inbox_claim_all_send(store *s, const char *const *ids, size_t n, lb_err *err)
{
    return claim_send(s, ids, n, NULL, err);
}

lb_status
inbox_claim_fresh(store *s, int ticket, const char *const *ids, size_t n, bool *fresh, lb_err *err)
{
    for (size_t i = 0; i < n; i++)
        fresh[i] = false;
    PGresult *r = store_take(s, ticket);
    if (r == NULL)
        return lb_err_set(err, LB_ERR_INTERNAL, "inbox claim result missing");
    /* RETURNING lists each new id once; the first occurrence in the batch wins. */
    int rows = PQntuples(r);
    for (int k = 0; k < rows; k++) {
        const char *id = PQgetvalue(r, k, 0);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(ids[i], id) == 0) {
                fresh[i] = true;
                break;
            }
        }
    }
    PQclear(r);
    return LB_OK;
}

void
outbox_buf_init(outbox_buf *b)
{
    memset(b, 0, sizeof *b);
}

void
outbox_buf_reset(outbox_buf *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->rows[i].body);
    b->n = 0;
}

void
outbox_buf_truncate(outbox_buf *b, size_t n)
{
    for (size_t i = n; i < b->n; i++)
        free(b->rows[i].body);
    if (n < b->n)
        b->n = n;
}

void
outbox_buf_destroy(outbox_buf *b)
{
    outbox_buf_reset(b);
    free(b->rows);
    memset(b, 0, sizeof *b);
}

lb_status
outbox_buf_add(outbox_buf *b, const char *subject, const bus_envelope *env,
               const ProtobufCMessage *msg, lb_err *err)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        outbox_row *nr = realloc(b->rows, cap * sizeof *nr);
        if (nr == NULL)
            return lb_err_set(err, LB_ERR_NOMEM, "outbox row");
        b->rows = nr;
        b->cap = cap;
    }
    outbox_row *row = &b->rows[b->n];
    if (lb_fmt(row->subject, sizeof row->subject, err, "%s", subject) != LB_OK)
        return LB_ERR_INVALID;
    row->env = *env;
    row->len = protobuf_c_message_get_packed_size(msg);
    row->body = malloc(row->len ? row->len : 1);
    if (row->body == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "outbox body");
    protobuf_c_message_pack(msg, row->body);
    b->n++;
    return LB_OK;
}

static lb_status
reserve(outbox_buf *b, size_t more, lb_err *err)
{
    if (b->n + more <= b->cap)
        return LB_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + more)
        cap *= 2;
    outbox_row *nr = realloc(b->rows, cap * sizeof *nr);
    if (nr == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "outbox rows");
    b->rows = nr;
    b->cap = cap;
    return LB_OK;
}

lb_status
outbox_buf_add_row(outbox_buf *b, const PGresult *res, int i, lb_err *err)
{
    if (reserve(b, 1, err) != LB_OK)
        return LB_ERR_NOMEM;
    outbox_row *row = &b->rows[b->n];
    memset(&row->env, 0, sizeof row->env);
    /* column -> envelope field; column 1 is the subject, 8 the body */
    static const struct {
        int col;
        size_t off, cap;
    } cols[] = {
        { 0, offsetof(bus_envelope, msg_id), ID_STR_LEN },
        { 2, offsetof(bus_envelope, type), BUS_TYPE_MAX },
        { 3, offsetof(bus_envelope, correlation), ID_STR_LEN },
        { 4, offsetof(bus_envelope, causation), ID_STR_LEN },
        { 5, offsetof(bus_envelope, actor), BUS_ACTOR_MAX },
        { 6, offsetof(bus_envelope, reply), BUS_SUBJECT_MAX },
        { 7, offsetof(bus_envelope, traceparent), BUS_TRACE_MAX },
    };
    for (size_t c = 0; c < LB_COUNTOF(cols); c++)
        snprintf((char *)&row->env + cols[c].off, cols[c].cap, "%s",
                 PQgetvalue(res, i, cols[c].col));
    snprintf(row->subject, sizeof row->subject, "%s", PQgetvalue(res, i, 1));
    row->len = (size_t)PQgetlength(res, i, 8);
    if ((row->body = malloc(row->len ? row->len : 1)) == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "outbox body");
    memcpy(row->body, PQgetvalue(res, i, 8), row->len);
    b->n++;
    return LB_OK;
}

void
outbox_buf_move(outbox_buf *dst, outbox_buf *src)
{
    if (reserve(dst, src->n, NULL) != LB_OK) {
        outbox_buf_reset(src); /* in the table still: the sweep publishes them */
        return;
    }
    memcpy(dst->rows + dst->n, src->rows, src->n * sizeof *src->rows);
    dst->n += src->n;
    src->n = 0; /* bodies belong to dst now */
}

static int
row_by_id(const void *a, const void *b)
{
    return strcmp(((const outbox_row *)a)->env.msg_id, ((const outbox_row *)b)->env.msg_id);
}

void
outbox_buf_sort(outbox_buf *b)
{
    qsort(b->rows, b->n, sizeof *b->rows, row_by_id);
}

lb_status
outbox_buf_write(store *s, const outbox_buf *b, lb_err *err)
{
    if (b->n == 0)
        return LB_OK;
    enum {
        COLS = 9
    };
    store_array a[COLS];
    memset(a, 0, sizeof a);
    for (int c = 0; c < COLS; c++)
        store_array_begin(&a[c]);
    for (size_t i = 0; i < b->n; i++) {
        const outbox_row *row = &b->rows[i];
        store_array_text(&a[0], row->env.msg_id);
        store_array_text(&a[1], row->subject);
        store_array_text(&a[2], row->env.type);
        store_array_text(&a[3], row->env.correlation);
        store_array_text(&a[4], row->env.causation);
        store_array_text(&a[5], row->env.actor);
        store_array_text(&a[6], row->env.reply);
        store_array_text(&a[7], row->env.traceparent);
        store_array_bytea(&a[8], row->body, row->len);
    }
    const char *params[COLS];
    store_array *ap[COLS];
    for (int c = 0; c < COLS; c++)
        ap[c] = &a[c];
    lb_status st = !store_arrays_end(ap, COLS, params)
                       ? lb_err_set(err, LB_ERR_NOMEM, "outbox arrays")
                       : store_exec(s, NULL, "outbox_insert", COLS, params, err);
    for (int c = 0; c < COLS; c++)
        store_array_free(&a[c]);
    return st;
}
