/* store_array.c - array parameters as text literals: one statement per batch.
 * Elements are always quoted, with " and \ escaped, as array_in expects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static void
reserve(store_array *a, size_t more)
{
    if (a->oom || a->len + more + 1 <= a->cap)
        return;
    size_t cap = a->cap ? a->cap : 1024;
    while (cap < a->len + more + 1)
        cap *= 2;
    char *np = realloc(a->p, cap);
    if (np == NULL) {
        a->oom = true;
        return;
    }
    a->p = np;
    a->cap = cap;
}

static void
putc_(store_array *a, char c)
{
    reserve(a, 1);
    if (!a->oom) {
        a->p[a->len++] = c;
        a->p[a->len] = '\0';
    }
}

/* A comma before every element but the first ("{" is at len 1). */
static void
sep(store_array *a)
{
    if (a->len > 1)
        putc_(a, ',');
}

void
store_array_begin(store_array *a)
{
    a->len = 0;
    putc_(a, '{');
}

void
store_array_text(store_array *a, const char *s)
{
    sep(a);
    reserve(a, strlen(s) * 2 + 2);
    putc_(a, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putc_(a, '\\');
        putc_(a, *s);
    }
    putc_(a, '"');
}

void
store_array_int(store_array *a, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    sep(a);
    for (const char *p = buf; *p; p++)
        putc_(a, *p);
}

void
store_array_null(store_array *a)
{
    sep(a);
    for (const char *p = "NULL"; *p; p++)
        putc_(a, *p);
}

/* bytea element "\\x<hex>": the array parser turns \\ into \, bytea_in reads hex. */
void
store_array_bytea(store_array *a, const uint8_t *b, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    sep(a);
    reserve(a, 5 + 2 * n);
    if (a->oom)
        return;
    char *p = a->p + a->len;
    *p++ = '"';
    *p++ = '\\';
    *p++ = '\\';
    *p++ = 'x';
    for (size_t i = 0; i < n; i++) {
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p++ = '"';
    *p = '\0';
    a->len = (size_t)(p - a->p);
}

void
store_array_end(store_array *a)
{
    putc_(a, '}');
}

bool
store_arrays_end(store_array *const *arrays, size_t n, const char **params)
{
    bool oom = false;
    for (size_t i = 0; i < n; i++) {
        store_array_end(arrays[i]);
        oom |= arrays[i]->oom;
        params[i] = arrays[i]->p;
    }
    return !oom;
}

void
store_array_free(store_array *a)
{
    free(a->p);
    memset(a, 0, sizeof *a);
}
