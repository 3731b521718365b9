/* main.c - layby-payment: the svc runtime running payment_def (payment_handlers.c). */
#include "payment.h"

int
main(int argc, char **argv)
{
    return svc_main(argc, argv, &payment_def,
                    "The payment service: a simulated card gateway and the ledger of charges "
                    "and refunds (commands on LAYBY_CMD, queries on layby.qry.payment.>).");
}
