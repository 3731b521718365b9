/* member_kv.c - the member service's short-lived state in JetStream key-value
 * buckets (DESIGN §3): lists of recent event times for rate limits, and
 * revoked access-token ids.
 *
 * A bucket's TTL is per bucket on nats-server 2.9 and an expiry produces no
 * watch event (PLATFORM.md), so every value carries its own times and
 * readers ignore what is past its window; the TTL only bounds storage.
 * Read-modify-write uses the entry's revision (kvStore_Update), so two
 * instances counting one failure at once both land (one retries). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "member.h"

#define TIMES_MAX  16  /* more events than any limit allows are not needed */
#define VALUE_MAX  512 /* 16 times of 13 digits and spaces */
#define KV_RETRIES 4

size_t
member_kv_times(int64_t *times, size_t cap, uint64_t *rev, kvStore *kv, const char *key,
                int64_t now_ms, int64_t window_ms)
{
    kvEntry *e = NULL;
    *rev = 0;
    if (kvStore_Get(&e, kv, key) != NATS_OK || e == NULL)
        return 0;
    *rev = kvEntry_Revision(e);
    char buf[VALUE_MAX];
    int len = kvEntry_ValueLen(e);
    if (len < 0 || (size_t)len >= sizeof buf)
        len = 0;
    memcpy(buf, kvEntry_Value(e), (size_t)len);
    buf[len] = '\0';
    kvEntry_Destroy(e);
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t != NULL && n < cap;
         t = strtok_r(NULL, " ", &save)) {
        int64_t v = strtoll(t, NULL, 10);
        if (v > now_ms - window_ms && v <= now_ms + window_ms)
            times[n++] = v;
    }
    return n;
}

lb_status
member_kv_times_add(kvStore *kv, const char *key, int64_t now_ms, int64_t window_ms, lb_err *err)
{
    natsStatus ns = NATS_OK;
    for (int attempt = 0; attempt < KV_RETRIES; attempt++) {
        int64_t times[TIMES_MAX];
        uint64_t rev = 0;
        size_t n = member_kv_times(times, TIMES_MAX, &rev, kv, key, now_ms, window_ms);
        size_t from = n == TIMES_MAX ? 1 : 0; /* keep the newest */
        char buf[VALUE_MAX];
        size_t off = 0;
        for (size_t i = from; i < n; i++)
            off += (size_t)snprintf(buf + off, sizeof buf - off, "%lld ", (long long)times[i]);
        snprintf(buf + off, sizeof buf - off, "%lld", (long long)now_ms);
        uint64_t out = 0;
        ns = rev == 0 ? kvStore_Create(&out, kv, key, buf, (int)strlen(buf))
                      : kvStore_Update(&out, kv, key, buf, (int)strlen(buf), rev);
        if (ns == NATS_OK)
            return LB_OK;
        /* NATS_ERR "wrong last sequence": someone wrote in between; read again. */
    }
    return bus__nats_err(err, ns, "rate limit update");
}

lb_status
member_kv_del(kvStore *kv, const char *key, lb_err *err)
{
    natsStatus ns = kvStore_Delete(kv, key);
    if (ns != NATS_OK && ns != NATS_NOT_FOUND)
        return bus__nats_err(err, ns, "key-value delete");
    return LB_OK;
}

lb_status
member_kv_revoke(const char *jti, int64_t exp_s, lb_err *err)
{
    if (jti == NULL || jti[0] == '\0')
        return LB_OK;
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)exp_s);
    uint64_t rev = 0;
    natsStatus ns = kvStore_Put(&rev, member_app->revoked, jti, v, (int)strlen(v));
    if (ns != NATS_OK)
        return bus__nats_err(err, ns, "revoke access token");
    return LB_OK;
}
