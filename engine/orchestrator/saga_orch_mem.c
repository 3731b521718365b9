/* saga_orch_mem.c - the rows this orchestrator last wrote, so that an input
 * for a saga it advanced a moment ago is decided without reading the row
 * first (svc.h svc_speculate_fn: one round trip a batch instead of two).
 *
 * Nothing here is trusted: a batch decided from memory sends saga_unchanged
 * (saga_orch_sql.c) before its writes, which locks the rows in id order and
 * fails the transaction unless each row's state and status are the bytes
 * remembered, so a row another orchestrator, a timer of this one or an
 * operator moved since is only a failed speculation that runs again the
 * ordinary way. The state names the saga (id, type, creation time), so equal
 * bytes are the same saga in the same state; the start command never changes
 * after the row is inserted.
 *
 * A direct-mapped table: a saga's id picks one slot, a newer saga with the
 * same slot replaces it (the older one then takes the ordinary way). Rows go
 * in only after their transaction committed (saga_orch_mem_batch_commit(),
 * an svc_batch_on_commit() hook), finished sagas leave it.
 *
 * Threads: every consumer thread and the tick thread; one mutex, held only
 * to copy an entry's bytes in or out. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "saga_orch.h"

#define SAGA_MEM_SLOTS 16384 /* a power of two; about 10 s of the checkout peak's sagas */

typedef struct mem_entry {
    char id[ID_STR_LEN]; /* "" = empty */
    saga_mem_row row;
} mem_entry;

static mem_entry saga_mem_table[SAGA_MEM_SLOTS];
static pthread_mutex_t saga_mem_lock = PTHREAD_MUTEX_INITIALIZER;

static mem_entry *
slot_of(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return &saga_mem_table[h & (SAGA_MEM_SLOTS - 1)];
}

void
saga_orch_mem_row_free(saga_mem_row *r)
{
    free(r->state);
    free(r->start);
    memset(r, 0, sizeof *r);
}

static lb_status
row_copy(saga_mem_row *dst, const saga_mem_row *src, lb_err *err)
{
    memset(dst, 0, sizeof *dst);
    dst->status = src->status;
    dst->start_type = src->start_type;
    dst->state = malloc(src->state_len ? src->state_len : 1);
    dst->start = malloc(src->start_len ? src->start_len : 1);
    if (dst->state == NULL || dst->start == NULL) {
        saga_orch_mem_row_free(dst);
        return lb_err_set(err, LB_ERR_NOMEM, "remembered saga row");
    }
    memcpy(dst->state, src->state, src->state_len);
    memcpy(dst->start, src->start, src->start_len);
    dst->state_len = src->state_len;
    dst->start_len = src->start_len;
    return LB_OK;
}

bool
saga_orch_mem_has(const char *id)
{
    pthread_mutex_lock(&saga_mem_lock);
    bool has = strcmp(slot_of(id)->id, id) == 0;
    pthread_mutex_unlock(&saga_mem_lock);
    return has;
}

lb_status
saga_orch_mem_get(const char *id, saga_mem_row *out, bool *found, lb_err *err)
{
    lb_status s = LB_OK;
    pthread_mutex_lock(&saga_mem_lock);
    mem_entry *e = slot_of(id);
    *found = strcmp(e->id, id) == 0;
    if (*found)
        s = row_copy(out, &e->row, err);
    pthread_mutex_unlock(&saga_mem_lock);
    return s;
}

/* Takes r's buffers (r is left empty); a finished saga is forgotten. */
static void
mem_put(const char *id, saga_mem_row *r)
{
    pthread_mutex_lock(&saga_mem_lock);
    mem_entry *e = slot_of(id);
    bool finished = saga_status_terminal(r->status);
    if (e->id[0] != '\0' && (!finished || strcmp(e->id, id) == 0)) {
        saga_orch_mem_row_free(&e->row);
        e->id[0] = '\0';
    }
    if (!finished) {
        memcpy(e->id, id, ID_STR_LEN);
        e->row = *r;
        memset(r, 0, sizeof *r);
    }
    pthread_mutex_unlock(&saga_mem_lock);
    saga_orch_mem_row_free(r);
}

/* --- what one batch wrote ------------------------------------------------- */

struct saga_mem_batch {
    size_t n, cap;
    char (*ids)[ID_STR_LEN];
    saga_mem_row *rows;
};

lb_status
saga_orch_mem_batch_add(saga_mem_batch **mb, const char *id, saga_mem_row *r, lb_err *err)
{
    if (*mb == NULL && (*mb = calloc(1, sizeof **mb)) == NULL) {
        saga_orch_mem_row_free(r);
        return lb_err_set(err, LB_ERR_NOMEM, "remembered rows");
    }
    saga_mem_batch *b = *mb;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        char(*ids)[ID_STR_LEN] = realloc(b->ids, cap * ID_STR_LEN);
        if (ids != NULL)
            b->ids = ids;
        saga_mem_row *rows = ids != NULL ? realloc(b->rows, cap * sizeof *rows) : NULL;
        if (rows == NULL) {
            saga_orch_mem_row_free(r);
            return lb_err_set(err, LB_ERR_NOMEM, "remembered rows");
        }
        b->rows = rows;
        b->cap = cap;
    }
    memcpy(b->ids[b->n], id, ID_STR_LEN);
    b->rows[b->n++] = *r;
    memset(r, 0, sizeof *r);
    return LB_OK;
}

void
saga_orch_mem_batch_commit(void *arg, bool committed)
{
    saga_mem_batch *b = arg;
    for (size_t i = 0; i < b->n; i++) {
        if (committed)
            mem_put(b->ids[i], &b->rows[i]);
        else
            saga_orch_mem_row_free(&b->rows[i]);
    }
    free(b->ids);
    free(b->rows);
    free(b);
}
