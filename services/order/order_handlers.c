/* order_handlers.c - the order service's handler, query and consumer tables. */
#include "order.h"

/* clang-format off */
static const svc_handler order_handlers[] = {
    /* subject                    body type                                   handler               prefetch */
    { SUBJ_ORDER_CREATE_ADDRESS, &layby__v1__create_address__descriptor,   order_address_create, NULL },
    { SUBJ_ORDER_UPDATE_ADDRESS, &layby__v1__update_address__descriptor,   order_address_update, NULL },
    { SUBJ_ORDER_DELETE_ADDRESS, &layby__v1__delete_address__descriptor,   order_address_delete, NULL },
    { SUBJ_ORDER_CREATE,         &layby__v1__create_order__descriptor,     order_create,         order_create_prefetch },
    { SUBJ_ORDER_SET_STATUS,     &layby__v1__set_order_status__descriptor, order_status_set,     order_status_prefetch },
};

static const svc_query_route order_queries[] = {
    { SUBJ_ORDER_LIST_ADDRESSES, &layby__v1__list_addresses__descriptor, order_addresses_list, SVC_QUERY_READS },
    { SUBJ_ORDER_GET_ORDER,      &layby__v1__get_order__descriptor,      order_get, SVC_QUERY_READS },
    { SUBJ_ORDER_LIST_ORDERS,    &layby__v1__list_orders__descriptor,    order_list, SVC_QUERY_READS },
    { SUBJ_ORDER_AUDIT,          &layby__v1__get_order_audit__descriptor, order_audit, SVC_QUERY_READS },
};

static const svc_consumer order_consumers[] = {
    { "LAYBY_CMD", "order" },
};
/* clang-format on */

const svc_def order_def = {
    .name = "order",
    .consumers = order_consumers,
    .n_consumers = LB_COUNTOF(order_consumers),
    .handlers = order_handlers,
    .n_handlers = LB_COUNTOF(order_handlers),
    .queries = order_queries,
    .n_queries = LB_COUNTOF(order_queries),
    .stmts = order_stmts,
    .n_stmts = ORDER_STMTS_COUNT,
};
