/* edge_catalog.c - hooks of the catalog's route rows (edge_catalog.h). */
#include "edge_catalog.h"

#include <civetweb.h>
#include <string.h>

#include "edge_app.h"
#include "edge_model.h"
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

static lb_status
list_local(char **body, const ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    if (r->app->model == NULL)
        return LB_ERR_UNAVAILABLE;
    return edge_model_product_page(body, r->app->model, (const Layby__V1__ListProducts *)req, err);
}

static lb_status
get_local(char **body, const ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    if (r->app->model == NULL)
        return LB_ERR_UNAVAILABLE;
    return edge_model_product_get(body, r->app->model,
                                  ((const Layby__V1__GetProduct *)req)->product_id, err);
}

static void
create_seen(const ProtobufCMessage *reply, edge_req *r)
{
    /* a create's reply is the product as inserted: stock version 1 (a repeat's
     * reply may carry a later stock, which the version rule then ignores) */
    if (r->app->model != NULL)
        edge_model_product_put(r->app->model, (const Layby__V1__Product *)reply, 1, NULL);
}

const edge_hooks edge_catalog_list_hooks = { .prepare = list_prepare, .local = list_local };
const edge_hooks edge_catalog_get_hooks = { .local = get_local };
const edge_hooks edge_catalog_create_hooks = { .reply_seen = create_seen };
