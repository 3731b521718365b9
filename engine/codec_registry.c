/* codec_registry.c - codec_type_find(): the Layby-Type registry.
 *
 * Every message header names its body's full protobuf type, and protobuf-c
 * has no lookup by that name. The build writes msg_registry[] (see
 * cmake/gen-registry.sh) with every message descriptor generated from proto/,
 * ordered by C symbol, not by full name. The first lookup sorts a copy by
 * descriptor->name once (pthread_once); later lookups are a bsearch with no
 * locking. The copy lives until exit. If it cannot be allocated, lookups fall
 * back to a linear scan of msg_registry[], which is slower but still right.
 */
#include "codec.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

extern const ProtobufCMessageDescriptor *const msg_registry[];
extern const size_t msg_registry_len;

/* Written once under by_name_once, read-only afterwards. */
static const ProtobufCMessageDescriptor **by_name;
static pthread_once_t by_name_once = PTHREAD_ONCE_INIT;

static int
desc_cmp(const void *a, const void *b)
{
    const ProtobufCMessageDescriptor *const *da = a;
    const ProtobufCMessageDescriptor *const *db = b;
    return strcmp((*da)->name, (*db)->name);
}

static int
name_cmp(const void *key, const void *elem)
{
    const ProtobufCMessageDescriptor *const *d = elem;
    return strcmp(key, (*d)->name);
}

static void
by_name_build(void)
{
    if (msg_registry_len == 0)
        return;
    const ProtobufCMessageDescriptor **idx = malloc(msg_registry_len * sizeof *idx);
    if (idx == NULL)
        return;
    memcpy(idx, msg_registry, msg_registry_len * sizeof *idx);
    qsort(idx, msg_registry_len, sizeof *idx, desc_cmp);
    by_name = idx;
}

const ProtobufCMessageDescriptor *
codec_type_find(const char *full_name)
{
    if (full_name == NULL)
        return NULL;
    pthread_once(&by_name_once, by_name_build);
    if (by_name != NULL) {
        const ProtobufCMessageDescriptor **hit =
            bsearch(full_name, by_name, msg_registry_len, sizeof *by_name, name_cmp);
        return hit != NULL ? *hit : NULL;
    }
    for (size_t i = 0; i < msg_registry_len; i++)
        if (strcmp(msg_registry[i]->name, full_name) == 0)
            return msg_registry[i];
    return NULL;
}
