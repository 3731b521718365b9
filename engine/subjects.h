/* subjects.h - every NATS subject layby uses (DESIGN §2), in one place, so a
 * sender and its receiver can never disagree on a spelling.
 *   commands  layby.cmd.<service>.<verb>      (LAYBY_CMD)
 *   events    layby.evt.<aggregate>.<event>   (LAYBY_EVT)
 *   queries   layby.qry.<service>.<name>      (request/reply)
 *   dead letters layby.dlq.<service>          (LAYBY_DLQ)
 * The saga engine's own subjects are in saga.h beside its types.
 *
 * Ownership: string literals.  Threads: n/a.
 */
#ifndef LAYBY_ENGINE_SUBJECTS_H
#define LAYBY_ENGINE_SUBJECTS_H

/* catalog */
#define SUBJ_CATALOG_CREATE_PRODUCT "layby.cmd.catalog.create_product"
#define SUBJ_CATALOG_GET_PRODUCT    "layby.qry.catalog.get_product"
#define SUBJ_PRODUCT_CREATED        "layby.evt.product.created"

#endif
