/* edge_catalog.c - hooks of the catalog's route rows (edge_catalog.h). */
#include "edge_catalog.h"

#include <civetweb.h>
#include <string.h>

#include "layby/v1/catalog.pb-c.h"

static lb_status
list_prepare(ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    const Layby__V1__ListProducts *l = (const Layby__V1__ListProducts *)req;
    const char *qs = r->ri ? r->ri->query_string : NULL;
    char v[32];
    if (l->limit == 0 && qs != NULL && mg_get_var(qs, strlen(qs), "limit", v, sizeof v) >= 0)
        return lb_err_field(err, LB_ERR_INVALID, "limit", "limit must be between 1 and 100");
    return LB_OK;
}

const edge_hooks edge_catalog_list_hooks = { .prepare = list_prepare };
