/* main.c - layby-order: loads the data key, then the svc runtime runs order_def. */
#include <stdio.h>

#include "order.h"

int
main(int argc, char **argv)
{
    lb_err err;
    /* Before any thread: handlers only read the keys. --help needs none. */
    bool help = false;
    for (int i = 1; i < argc; i++)
        help |= argv[i][0] == '-' && argv[i][1] == '-' && argv[i][2] == 'h';
    if (!help && seal_keys_load(&order_keys, "ORDER", &err) != LB_OK) {
        fprintf(stderr, "layby-order: %s\n", err.msg);
        return 2;
    }
    int rc = svc_main(argc, argv, &order_def,
                      "The order service: orders driven by the order sagas and the members' "
                      "address books (commands on LAYBY_CMD, queries on layby.qry.order.>).");
    seal_keys_wipe(&order_keys);
    return rc;
}
