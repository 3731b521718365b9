/* catalog_handlers.c - the catalog's handler and query tables. The code lives
 * beside its data: catalog_product.c, catalog_stock.c, catalog_wishlist.c.
 *
 * Every stock command shares one handler function, so the runtime hands a
 * batch's reservations, releases, confirmations, returns and adjustments to
 * it together, in arrival order (catalog_stock.c). */
#include "catalog.h"

/* clang-format off */
static const svc_handler catalog_handlers[] = {
    /* subject                          body type                                     handler */
    { SUBJ_CATALOG_CREATE_PRODUCT,    &layby__v1__create_product__descriptor,       catalog_product_create, NULL },
    { SUBJ_CATALOG_RESERVE_STOCK,     &layby__v1__reserve_stock__descriptor,        catalog_stock_handle, NULL },
    { SUBJ_CATALOG_RELEASE_STOCK,     &layby__v1__release_stock__descriptor,        catalog_stock_handle, NULL },
    { SUBJ_CATALOG_CONFIRM_STOCK,     &layby__v1__confirm_stock__descriptor,        catalog_stock_handle, NULL },
    { SUBJ_CATALOG_RESTOCK_RETURNED,  &layby__v1__restock_returned__descriptor,     catalog_stock_handle, NULL },
    { SUBJ_CATALOG_ADJUST_STOCK,      &layby__v1__adjust_stock__descriptor,         catalog_stock_handle, NULL },
    { SUBJ_CATALOG_WISHLIST_PUT,      &layby__v1__put_wishlist_item__descriptor,    catalog_wishlist_handle, NULL },
    { SUBJ_CATALOG_WISHLIST_REMOVE,   &layby__v1__remove_wishlist_item__descriptor, catalog_wishlist_handle, NULL },
    { SUBJ_CATALOG_WISHLIST_ORDERED,  &layby__v1__order_wishlist__descriptor,       catalog_wishlist_handle, NULL },
};

static const svc_query_route catalog_queries[] = {
    { SUBJ_CATALOG_GET_PRODUCT,       &layby__v1__get_product__descriptor,          catalog_product_get, SVC_QUERY_READS },
    { SUBJ_CATALOG_LIST_PRODUCTS,     &layby__v1__list_products__descriptor,        catalog_product_list, SVC_QUERY_READS },
    { SUBJ_CATALOG_WISHLIST_GET,      &layby__v1__get_wishlist__descriptor,         catalog_wishlist_get, SVC_QUERY_READS },
    { SUBJ_CATALOG_PRODUCT_STATES,    &layby__v1__list_product_states__descriptor,  catalog_product_states, SVC_QUERY_READS },
    { SUBJ_CATALOG_AUDIT,             &layby__v1__get_stock_audit__descriptor,      catalog_stock_audit, SVC_QUERY_READS },
};

static const svc_consumer catalog_consumers[] = {
    { "LAYBY_CMD", "catalog" },
};
/* clang-format on */

const svc_def catalog_def = {
    .name = "catalog",
    .consumers = catalog_consumers,
    .n_consumers = LB_COUNTOF(catalog_consumers),
    .handlers = catalog_handlers,
    .n_handlers = LB_COUNTOF(catalog_handlers),
    .queries = catalog_queries,
    .n_queries = LB_COUNTOF(catalog_queries),
    .stmts = catalog_stmts,
    .n_stmts = CATALOG_STMTS_COUNT,
};
