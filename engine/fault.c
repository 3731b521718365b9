/* fault.c - see fault.h. */
#include "fault.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char fault_name[64];
static long fault_at = 1;
static atomic_long fault_hits;
static atomic_bool fault_armed;

void
fault_init(void)
{
    const char *v = getenv("LAYBY_FAULT");
    if (v == NULL || v[0] == '\0')
        return;
    snprintf(fault_name, sizeof fault_name, "%s", v);
    char *colon = strchr(fault_name, ':');
    if (colon != NULL) {
        *colon = '\0';
        fault_at = strtol(colon + 1, NULL, 10);
        if (fault_at < 1)
            fault_at = 1;
    }
    atomic_store(&fault_armed, true);
}

void
fault_point(const char *name)
{
    if (!atomic_load_explicit(&fault_armed, memory_order_relaxed))
        return;
    if (strcmp(name, fault_name) != 0)
        return;
    if (atomic_fetch_add(&fault_hits, 1) + 1 >= fault_at) {
        fprintf(stderr, "{\"event\":\"fault.kill\",\"point\":\"%s\"}\n", name);
        raise(SIGKILL);
    }
}

bool
fault_held(const char *name)
{
    return atomic_load_explicit(&fault_armed, memory_order_relaxed) &&
           strcmp(name, fault_name) == 0;
}
