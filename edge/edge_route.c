/* edge_route.c - matching a request line against a route table.
 *
 * Kept apart from the table and the handlers (edge_routes.c) so it stays a
 * pure function that unit tests drive with tables of their own. Rows are
 * tried in order and the first match wins, so a literal segment
 * ("/products/search") must come before a {param} row that would swallow it.
 */
#include "edge_routes.h"

#include <stdio.h>
#include <string.h>

/* Matches path against pat segment by segment, capturing {name} segments. */
static bool
pattern_match(const char *pat, const char *path, edge_param *params, size_t *n_params)
{
    size_t np = 0;
    while (*pat == '/' && *path == '/') {
        pat++;
        path++;
        size_t pl = strcspn(pat, "/");
        size_t sl = strcspn(path, "/");
        if (pl >= 2 && pat[0] == '{' && pat[pl - 1] == '}') {
            if (sl == 0 || np == EDGE_PARAMS_MAX)
                return false;
            params[np++] =
                (edge_param){ .name = pat + 1, .name_len = pl - 2, .val = path, .len = sl };
        } else if (pl != sl || memcmp(pat, path, pl) != 0) {
            return false;
        }
        pat += pl;
        path += sl;
    }
    if (*pat != '\0' || *path != '\0')
        return false;
    *n_params = np;
    return true;
}

static void
allow_add(char allow[EDGE_ALLOW_MAX], const char *method)
{
    /* a method listed twice (two rows for one path) is named once */
    size_t ml = strlen(method);
    for (const char *p = allow; (p = strstr(p, method)) != NULL; p += ml)
        if ((p == allow || p[-1] == ' ') && (p[ml] == '\0' || p[ml] == ','))
            return;
    size_t used = strlen(allow);
    snprintf(allow + used, EDGE_ALLOW_MAX - used, "%s%s", used ? ", " : "", method);
}

lb_status
edge_route_find(const edge_route **out, edge_param params[EDGE_PARAMS_MAX], size_t *n_params,
                char allow[EDGE_ALLOW_MAX], const edge_route *routes, size_t n, const char *method,
                const char *path)
{
    allow[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        edge_param found[EDGE_PARAMS_MAX];
        size_t nf = 0;
        if (!pattern_match(routes[i].path, path, found, &nf))
            continue;
        if (strcmp(routes[i].method, method) != 0) {
            allow_add(allow, routes[i].method);
            continue;
        }
        memcpy(params, found, nf * sizeof found[0]);
        *n_params = nf;
        *out = &routes[i];
        return LB_OK;
    }
    return allow[0] != '\0' ? LB_ERR_METHOD : LB_ERR_NOT_FOUND;
}
