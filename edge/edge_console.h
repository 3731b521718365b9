/* edge_console.h - the operations console's static pages under /console
 * (issue 24): plain HTML, CSS and JavaScript modules from edge/console/,
 * built into the edge (cmake/gen-console.sh). The pages are public; every
 * datum they show comes from the /api/v1/admin/... routes, which need an
 * admin's token, kept in the page's memory only.
 *
 * Ownership: the assets are static.  Threads: any civetweb worker.
 */
#ifndef LAYBY_EDGE_EDGE_CONSOLE_H
#define LAYBY_EDGE_EDGE_CONSOLE_H

#include <stddef.h>

#include "edge_http.h"

typedef struct edge_console_asset {
    const char *name; /* "app.js" */
    const unsigned char *data;
    size_t len;
} edge_console_asset;

/* Generated from edge/console/ at build time. */
extern const edge_console_asset edge_console_assets[];
extern const size_t edge_console_n_assets;

/* GET /console: the page (index.html). */
void edge_console_index(edge_req *r);
/* GET /console/{file}: one asset by name, 404 for another. */
void edge_console_file(edge_req *r);

#endif
