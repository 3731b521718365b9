/* bus_topology.c - the streams, durables and buckets layby runs on, and the
 * idempotent code that makes the server match them (see bus_topology.h).
 *
 * Applying twice changes nothing the second time; applying after a row
 * changed updates the object in place, so messages and consumer positions
 * survive a `layby-ctl bus setup` on a running system. */
#include "bus_topology.h"

#include <stdio.h>
#include <string.h>

/* clang-format off */
const bus_topology_stream bus_topology_streams[] = {
    /* name         subject        about */
    { "LAYBY_CMD", "layby.cmd.>", "layby commands, one durable per service" },
    { "LAYBY_EVT", "layby.evt.>", "layby events: the history replay reads" },
    { "LAYBY_DLQ", "layby.dlq.>", "layby dead letters, with Layby-Dlq-* headers" },
};
const size_t bus_topology_n_streams = LB_COUNTOF(bus_topology_streams);

/* The durables (bus_topology_consumers) are rows of the service table
 * etc/services.tsv, compiled into gen/svc_table.c at build time. */

/* Durables an earlier layby created and no daemon reads any more: `bus setup`
 * deletes them after creating the rows above, or they would keep every
 * message they match pending for nobody. */
const bus_topology_consumer bus_topology_retired[] = {
    /* stream       durable         filter         why */
    { "LAYBY_EVT", "orchestrator", "layby.evt.>", "replaced by orchestrator-<aggregate>" },
};
const size_t bus_topology_n_retired = LB_COUNTOF(bus_topology_retired);

const bus_topology_bucket bus_topology_buckets[] = {
    /* name                 ttl                   history  about */
    { "LAYBY_IDEMPOTENCY", 24LL * 3600 * 1000,   1,       "edge Idempotency-Key outcomes" },
    /* member: values carry their own times (PLATFORM.md: an expiry makes no
     * watch event), the TTL only bounds what is kept */
    { "LAYBY_MEMBER_CODES",  10LL * 60 * 1000,   1,       "verification code hashes and tries" },
    { "LAYBY_MEMBER_LIMITS", 3600LL * 1000,      1,       "resend and failed-login times" },
    { "LAYBY_REVOKED",       3600LL * 1000,      1,       "revoked access-token ids (edges watch it); >= the access-token lifetime" },
    /* layby-ctl audit's last result (key audit.last), the console's Overview reads it */
    { "LAYBY_OPS",           30LL * 24 * 3600 * 1000, 1,   "operations: the last layby-ctl audit" },
};
const size_t bus_topology_n_buckets = LB_COUNTOF(bus_topology_buckets);
/* clang-format on */

#define NS_PER_MS 1000000LL

/* Server error codes nats.c passes through in jsErrCode. */
#define JS_ERR_STREAM_NOT_FOUND   10059
#define JS_ERR_CONSUMER_NOT_FOUND 10014

static const char *const change_names[] = {
    [BUS_TOPOLOGY_CREATED] = "created",
    [BUS_TOPOLOGY_UPDATED] = "updated",
    [BUS_TOPOLOGY_UNCHANGED] = "unchanged",
    [BUS_TOPOLOGY_DELETED] = "deleted",
};
_Static_assert(LB_COUNTOF(change_names) == BUS_TOPOLOGY_DELETED + 1, "change_names");

const char *
bus_topology_change_name(bus_topology_change c)
{
    return (c >= 0 && (size_t)c < LB_COUNTOF(change_names)) ? change_names[c] : "?";
}

bool
bus_topology_filter_matches(const char *filter, const char *subject)
{
    const char *f = filter, *s = subject;
    for (;;) {
        size_t fl = strcspn(f, "."), sl = strcspn(s, ".");
        if (fl == 1 && f[0] == '>')
            return sl > 0; /* '>' takes one token or more */
        if (sl == 0 || fl == 0)
            return false;
        if (!(fl == 1 && f[0] == '*') && (fl != sl || memcmp(f, s, fl) != 0))
            return false;
        f += fl;
        s += sl;
        if (*f == '\0' || *s == '\0')
            return *f == '\0' && *s == '\0';
        f++;
        s++;
    }
}

const bus_topology_consumer *
bus_topology_consumer_find(const char *stream, const char *durable)
{
    for (size_t i = 0; i < bus_topology_n_consumers; i++)
        if (strcmp(bus_topology_consumers[i].stream, stream) == 0 &&
            strcmp(bus_topology_consumers[i].durable, durable) == 0)
            return &bus_topology_consumers[i];
    return NULL;
}

static lb_status
nats_fail(lb_err *err, natsStatus s, jsErrCode jerr, const char *what, const char *name)
{
    const char *last = nats_GetLastError(NULL);
    return lb_err_set(err, LB_ERR_BUS, "%s %s: %s (jetstream error %d)%s%s", what, name,
                      natsStatus_GetText(s), (int)jerr, (last && last[0]) ? ": " : "",
                      last ? last : "");
}

static bool
is_not_found(natsStatus s, jsErrCode jerr, int code)
{
    return s == NATS_NOT_FOUND || (int)jerr == code;
}

/* 0 (a zeroed opts) means one copy, as the server reads it. */
static int64_t
replicas_of(const bus_topology_opts *opts)
{
    return opts->replicas > 0 ? opts->replicas : 1;
}

static bool
str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

lb_status
bus_topology_stream_apply(bus_topology_change *out, jsCtx *js, const bus_topology_stream *stream,
                          const bus_topology_opts *opts, lb_err *err)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    const char *subjects[] = { stream->subject };
    natsStatus s = js_GetStreamInfo(&si, js, stream->name, NULL, &jerr);

    if (is_not_found(s, jerr, JS_ERR_STREAM_NOT_FOUND)) {
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        cfg.Name = stream->name;
        cfg.Description = stream->about;
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.Retention = js_LimitsPolicy;
        cfg.Storage = js_FileStorage;
        cfg.MaxAge = opts->max_age_ms * NS_PER_MS;
        cfg.Duplicates = opts->duplicates_ms * NS_PER_MS;
        cfg.Replicas = replicas_of(opts);
        jerr = 0;
        s = js_AddStream(NULL, js, &cfg, NULL, &jerr);
        if (s != NATS_OK)
            return nats_fail(err, s, jerr, "create stream", stream->name);
        *out = BUS_TOPOLOGY_CREATED;
        return LB_OK;
    }
    if (s != NATS_OK)
        return nats_fail(err, s, jerr, "look up stream", stream->name);

    jsStreamConfig *cur = si->Config;
    lb_status rc = LB_OK;
    if (cur->Storage != js_FileStorage || cur->Retention != js_LimitsPolicy) {
        rc = lb_err_set(err, LB_ERR_CONFIG,
                        "stream %s exists with other storage or retention; delete it to recreate",
                        stream->name);
        goto out;
    }
    bool same = cur->SubjectsLen == 1 && str_eq(cur->Subjects[0], stream->subject) &&
                cur->MaxAge == opts->max_age_ms * NS_PER_MS &&
                cur->Duplicates == opts->duplicates_ms * NS_PER_MS &&
                cur->Replicas == replicas_of(opts) && str_eq(cur->Description, stream->about);
    if (same) {
        *out = BUS_TOPOLOGY_UNCHANGED;
        goto out;
    }
    /* Start from the server's config so settings we do not manage survive;
     * put its own pointers back afterwards so jsStreamInfo_Destroy frees them. */
    const char **own_subjects = cur->Subjects;
    int own_len = cur->SubjectsLen;
    const char *own_about = cur->Description;
    cur->Subjects = subjects;
    cur->SubjectsLen = 1;
    cur->MaxAge = opts->max_age_ms * NS_PER_MS;
    cur->Duplicates = opts->duplicates_ms * NS_PER_MS;
    cur->Replicas = replicas_of(opts);
    cur->Description = stream->about;
    jerr = 0;
    s = js_UpdateStream(NULL, js, cur, NULL, &jerr);
    cur->Subjects = own_subjects;
    cur->SubjectsLen = own_len;
    cur->Description = own_about;
    if (s != NATS_OK) {
        rc = nats_fail(err, s, jerr, "update stream", stream->name);
        goto out;
    }
    *out = BUS_TOPOLOGY_UPDATED;
out:
    jsStreamInfo_Destroy(si);
    return rc;
}

static void
consumer_config(jsConsumerConfig *cfg, const bus_topology_consumer *c,
                const bus_topology_opts *opts)
{
    jsConsumerConfig_Init(cfg);
    cfg->Durable = c->durable;
    cfg->Description = c->reader;
    cfg->DeliverPolicy = js_DeliverAll;
    cfg->AckPolicy = js_AckExplicit;
    cfg->AckWait = opts->ack_wait_ms * NS_PER_MS;
    cfg->MaxDeliver = opts->max_deliver;
    cfg->MaxAckPending = opts->max_ack_pending;
    cfg->FilterSubject = c->filter;
    cfg->ReplayPolicy = js_ReplayInstant;
}

lb_status
bus_topology_consumer_apply(bus_topology_change *out, jsCtx *js, const bus_topology_consumer *c,
                            const bus_topology_opts *opts, lb_err *err)
{
    char name[256];
    jsConsumerInfo *ci = NULL;
    jsConsumerConfig want;
    jsErrCode jerr = 0;
    lb_status rc = LB_OK;

    snprintf(name, sizeof name, "%s/%s", c->stream, c->durable);
    consumer_config(&want, c, opts);
    natsStatus s = js_GetConsumerInfo(&ci, js, c->stream, c->durable, NULL, &jerr);
    if (is_not_found(s, jerr, JS_ERR_CONSUMER_NOT_FOUND)) {
        jerr = 0;
        s = js_AddConsumer(NULL, js, c->stream, &want, NULL, &jerr);
        if (s != NATS_OK)
            return nats_fail(err, s, jerr, "create consumer", name);
        *out = BUS_TOPOLOGY_CREATED;
        return LB_OK;
    }
    if (s != NATS_OK)
        return nats_fail(err, s, jerr, "look up consumer", name);

    const jsConsumerConfig *cur = ci->Config;
    if (!str_eq(cur->FilterSubject, c->filter) || cur->AckPolicy != js_AckExplicit) {
        rc = lb_err_set(err, LB_ERR_CONFIG,
                        "consumer %s exists with filter %s (want %s) or another ack policy; "
                        "delete it to recreate (its position is lost)",
                        name, cur->FilterSubject ? cur->FilterSubject : "(none)", c->filter);
        goto out;
    }
    if (cur->AckWait == want.AckWait && cur->MaxDeliver == want.MaxDeliver &&
        cur->MaxAckPending == want.MaxAckPending && cur->BackOffLen == 0 &&
        str_eq(cur->Description, want.Description)) {
        *out = BUS_TOPOLOGY_UNCHANGED;
        goto out;
    }
    /* Delivery policy and start position stay the server's: an update must
     * not move where the durable is. */
    want.DeliverPolicy = cur->DeliverPolicy;
    want.OptStartSeq = cur->OptStartSeq;
    want.OptStartTime = cur->OptStartTime;
    want.MaxWaiting = cur->MaxWaiting;
    jerr = 0;
    s = js_UpdateConsumer(NULL, js, c->stream, &want, NULL, &jerr);
    if (s != NATS_OK) {
        rc = nats_fail(err, s, jerr, "update consumer", name);
        goto out;
    }
    *out = BUS_TOPOLOGY_UPDATED;
out:
    jsConsumerInfo_Destroy(ci);
    return rc;
}

lb_status
bus_topology_bucket_apply(bus_topology_change *out, jsCtx *js, const bus_topology_bucket *b,
                          const bus_topology_opts *opts, lb_err *err)
{
    char stream[128];
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    lb_status rc = LB_OK;

    snprintf(stream, sizeof stream, "KV_%s", b->name);
    natsStatus s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
    if (is_not_found(s, jerr, JS_ERR_STREAM_NOT_FOUND)) {
        kvConfig cfg;
        kvStore *kv = NULL;
        kvConfig_Init(&cfg);
        cfg.Bucket = b->name;
        cfg.Description = b->about;
        cfg.History = (uint8_t)b->history;
        cfg.TTL = b->ttl_ms * NS_PER_MS; /* nanoseconds (PLATFORM.md) */
        cfg.StorageType = js_FileStorage;
        cfg.Replicas = (int)replicas_of(opts);
        s = js_CreateKeyValue(&kv, js, &cfg);
        if (s != NATS_OK)
            return nats_fail(err, s, 0, "create bucket", b->name);
        kvStore_Destroy(kv);
        *out = BUS_TOPOLOGY_CREATED;
        return LB_OK;
    }
    if (s != NATS_OK)
        return nats_fail(err, s, jerr, "look up bucket", b->name);

    /* A bucket is the stream KV_<name>: TTL is its MaxAge, history its
     * MaxMsgsPerSubject. nats.c 3.4 has no bucket update, so update the stream. */
    jsStreamConfig *cur = si->Config;
    if (cur->MaxAge == b->ttl_ms * NS_PER_MS && cur->MaxMsgsPerSubject == b->history &&
        cur->Replicas == replicas_of(opts)) {
        *out = BUS_TOPOLOGY_UNCHANGED;
        goto out;
    }
    cur->MaxAge = b->ttl_ms * NS_PER_MS;
    cur->MaxMsgsPerSubject = b->history;
    cur->Replicas = replicas_of(opts);
    jerr = 0;
    s = js_UpdateStream(NULL, js, cur, NULL, &jerr);
    if (s != NATS_OK) {
        rc = nats_fail(err, s, jerr, "update bucket", b->name);
        goto out;
    }
    *out = BUS_TOPOLOGY_UPDATED;
out:
    jsStreamInfo_Destroy(si);
    return rc;
}

lb_status
bus_topology_apply(jsCtx *js, const bus_topology_opts *opts, bus_topology_report_fn report,
                   void *arg, lb_err *err)
{
    bus_topology_change ch;
    char name[256];
    lb_status rc;

    for (size_t i = 0; i < bus_topology_n_streams; i++) {
        const bus_topology_stream *stream = &bus_topology_streams[i];
        if ((rc = bus_topology_stream_apply(&ch, js, stream, opts, err)) != LB_OK)
            return rc;
        if (report != NULL)
            report(arg, "stream", stream->name, ch);
    }
    for (size_t i = 0; i < bus_topology_n_consumers; i++) {
        const bus_topology_consumer *c = &bus_topology_consumers[i];
        if ((rc = bus_topology_consumer_apply(&ch, js, c, opts, err)) != LB_OK)
            return rc;
        snprintf(name, sizeof name, "%s/%s", c->stream, c->durable);
        if (report != NULL)
            report(arg, "consumer", name, ch);
    }
    /* After the rows that replace them exist: nothing is unread in between. */
    for (size_t i = 0; i < bus_topology_n_retired; i++) {
        const bus_topology_consumer *c = &bus_topology_retired[i];
        jsErrCode jerr = 0;
        natsStatus s = js_DeleteConsumer(js, c->stream, c->durable, NULL, &jerr);
        snprintf(name, sizeof name, "%s/%s", c->stream, c->durable);
        if (is_not_found(s, jerr, JS_ERR_CONSUMER_NOT_FOUND))
            continue;
        if (s != NATS_OK)
            return nats_fail(err, s, jerr, "delete retired consumer", name);
        if (report != NULL)
            report(arg, "consumer", name, BUS_TOPOLOGY_DELETED);
    }
    for (size_t i = 0; i < bus_topology_n_buckets; i++) {
        const bus_topology_bucket *b = &bus_topology_buckets[i];
        if ((rc = bus_topology_bucket_apply(&ch, js, b, opts, err)) != LB_OK)
            return rc;
        if (report != NULL)
            report(arg, "bucket", b->name, ch);
    }
    return LB_OK;
}
