/* main.c - layby-delivery: the svc runtime running delivery_def (delivery_handlers.c). */
#include "delivery.h"

int
main(int argc, char **argv)
{
    return svc_main(argc, argv, &delivery_def,
                    "The delivery service: deliveries and their status history, advanced by "
                    "the order sagas (commands on LAYBY_CMD, queries on layby.qry.delivery.>).");
}
