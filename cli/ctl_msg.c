/* ctl_msg.c - helpers the reading commands share (replay, dlq show, saga):
 * the positional arguments, and a stored message printed as JSON (bus_json.h). */
#define _XOPEN_SOURCE 700 /* strptime */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "bus_json.h"
#include "codec.h"
#include "ctl.h"
#include "id.h"

int
ctl_positional(const char **out, const ctl_cmd *cmd, const char *what, int *argc, char **argv)
{
    *out = NULL;
    for (int i = 1; i < *argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return -1; /* ctl_args() prints the help */
    if (*argc < 2 || strncmp(argv[1], "--", 2) == 0)
        return ctl_usage_error(cmd, "missing <%s>", what);
    *out = argv[1];
    /* Shift the rest down so argv[0] stays the command word. */
    for (int i = 1; i + 1 < *argc; i++)
        argv[i] = argv[i + 1];
    (*argc)--;
    argv[*argc] = NULL;
    return -1;
}

int
ctl_id_args(const char **id, void *conf, const ctl_cmd *cmd, const char *what, int argc,
            char **argv)
{
    int rc = ctl_positional(id, cmd, what, &argc, argv);
    if (rc < 0)
        rc = ctl_parse(conf, cmd, argc, argv);
    if (rc < 0 && !id_valid(*id))
        rc = ctl_usage_error(cmd, "'%s' is not a %s (a UUID)", *id, what);
    return rc;
}

int
ctl_u64_arg(uint64_t *out, const ctl_cmd *cmd, const char *what, const char *text)
{
    char *end = NULL;
    unsigned long long v = text[0] != '-' ? strtoull(text, &end, 10) : 0;
    if (end == NULL || end == text || *end != '\0' || v == 0)
        return ctl_usage_error(cmd, "<%s> must be a positive integer, not '%s'", what, text);
    *out = (uint64_t)v;
    return -1;
}

void
ctl_msg_print(natsMsg *m, uint64_t seq, int64_t time_ns, size_t flags)
{
    json_t *o = bus_json_tree(m, seq, time_ns);
    char *text = json_dumps(o, flags | JSON_PRESERVE_ORDER);
    if (text != NULL) {
        puts(text);
        free(text);
    }
    json_decref(o);
}
