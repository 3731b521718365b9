/* edge_console.c - serves the console's static files (edge_console.h).
 *
 * A strict Content-Security-Policy (scripts, styles and requests to this
 * origin only, no inline script, no framing) so that a datum shown by the
 * console (a product name, a dead letter's body) can never run as code, and
 * Referrer-Policy no-referrer: nothing of a console URL leaves the page. */
#include "edge_console.h"

#include <string.h>

/* Content types by file extension. */
static const struct {
    const char *ext, *type;
} types[] = {
    { ".html", "text/html; charset=utf-8" },
    { ".css", "text/css; charset=utf-8" },
    { ".js", "text/javascript; charset=utf-8" },
    { ".svg", "image/svg+xml" },
};

#define CONSOLE_HEADERS                                                                  \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; " \
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "    \
    "frame-ancestors 'none'\r\n"                                                         \
    "Referrer-Policy: no-referrer\r\nX-Content-Type-Options: nosniff\r\n"                \
    "Cache-Control: no-cache\r\n"

static const char *
type_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t k = strlen(types[i].ext);
        if (n > k && strcmp(name + n - k, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

static void
serve(edge_req *r, const char *name)
{
    for (size_t i = 0; i < edge_console_n_assets; i++) {
        const edge_console_asset *a = &edge_console_assets[i];
        if (strcmp(a->name, name) == 0) {
            edge_reply(r, 200, type_of(name), (const char *)a->data, a->len, CONSOLE_HEADERS);
            return;
        }
    }
    edge_reply_status(r, LB_ERR_NOT_FOUND, NULL, "no such console file", NULL);
}

void
edge_console_index(edge_req *r)
{
    serve(r, "index.html");
}

void
edge_console_file(edge_req *r)
{
    char name[128];
    if (!edge_param_copy(r, "file", name, sizeof name))
        edge_reply_status(r, LB_ERR_NOT_FOUND, NULL, "no such console file", NULL);
    else
        serve(r, name);
}
