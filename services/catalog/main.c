/* main.c - layby-catalog: the svc runtime running catalog_def (catalog_handlers.c). */
#include "catalog.h"

int
main(int argc, char **argv)
{
    return svc_main(argc, argv, &catalog_def,
                    "The catalog service: products and stock (commands on LAYBY_CMD, "
                    "queries on layby.qry.catalog.>).");
}
