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
#define SUBJ_CATALOG_LIST_PRODUCTS  "layby.qry.catalog.list_products"
#define SUBJ_CATALOG_ADJUST_STOCK   "layby.cmd.catalog.adjust_stock"
#define SUBJ_PRODUCT_STOCK_CHANGED  "layby.evt.product.stock_changed"
#define SUBJ_CATALOG_AUDIT          "layby.qry.catalog.audit"
/* every product with its stock version: the edge read model's start */
#define SUBJ_CATALOG_PRODUCT_STATES "layby.qry.catalog.product_states"

/* catalog: stock reservations, sent by the order sagas */
#define SUBJ_CATALOG_RESERVE_STOCK    "layby.cmd.catalog.reserve_stock"
#define SUBJ_CATALOG_RELEASE_STOCK    "layby.cmd.catalog.release_stock"
#define SUBJ_CATALOG_CONFIRM_STOCK    "layby.cmd.catalog.confirm_stock"
#define SUBJ_CATALOG_RESTOCK_RETURNED "layby.cmd.catalog.restock_returned"
#define SUBJ_STOCK_RESERVED           "layby.evt.stock.reserved"
#define SUBJ_STOCK_REJECTED           "layby.evt.stock.rejected"
#define SUBJ_STOCK_RELEASED           "layby.evt.stock.released"
#define SUBJ_STOCK_RELEASE_FAILED     "layby.evt.stock.release_failed"
#define SUBJ_STOCK_CONFIRMED          "layby.evt.stock.confirmed"
#define SUBJ_STOCK_CONFIRM_FAILED     "layby.evt.stock.confirm_failed"
#define SUBJ_STOCK_RETURNED           "layby.evt.stock.returned"
#define SUBJ_STOCK_RETURN_FAILED      "layby.evt.stock.return_failed"

/* catalog: the member's wishlist */
#define SUBJ_CATALOG_WISHLIST_PUT     "layby.cmd.catalog.wishlist_put"
#define SUBJ_CATALOG_WISHLIST_REMOVE  "layby.cmd.catalog.wishlist_remove"
#define SUBJ_CATALOG_WISHLIST_ORDERED "layby.cmd.catalog.wishlist_ordered"
#define SUBJ_CATALOG_WISHLIST_GET     "layby.qry.catalog.wishlist"
#define SUBJ_WISHLIST_ORDERED         "layby.evt.wishlist.ordered"

/* order (services/order) */
#define SUBJ_ORDER_CREATE_ADDRESS   "layby.cmd.order.create_address"
#define SUBJ_ORDER_UPDATE_ADDRESS   "layby.cmd.order.update_address"
#define SUBJ_ORDER_DELETE_ADDRESS   "layby.cmd.order.delete_address"
#define SUBJ_ORDER_CREATE           "layby.cmd.order.create"
#define SUBJ_ORDER_SET_STATUS       "layby.cmd.order.set_status"
#define SUBJ_ORDER_LIST_ADDRESSES   "layby.qry.order.list_addresses"
#define SUBJ_ORDER_GET_ORDER        "layby.qry.order.get_order"
#define SUBJ_ORDER_LIST_ORDERS      "layby.qry.order.list_orders"
#define SUBJ_ORDER_AUDIT            "layby.qry.order.audit"
#define SUBJ_ORDER_CREATED          "layby.evt.order.created"
#define SUBJ_ORDER_STATUS_SET       "layby.evt.order.status_set"
#define SUBJ_ORDER_REFUSED          "layby.evt.order.refused"
#define SUBJ_ORDER_PAID             "layby.evt.order.paid"
/* the order sagas' start subjects (sagas/order_place.c, order_pay.c): the
 * edge starts them (etc/nats-users.tsv) */
#define SUBJ_SAGA_START_ORDER_PLACE "layby.cmd.saga.start.order_place"
#define SUBJ_SAGA_START_ORDER_PAY   "layby.cmd.saga.start.order_pay"

/* the orchestrator's admin reads (engine/orchestrator/saga_orch_admin.c): the
 * console's saga pages (GET /api/v1/admin/sagas...), answered as JSON text */
#define SUBJ_SAGA_ADMIN_LIST     "layby.qry.orchestrator.saga_list"
#define SUBJ_SAGA_ADMIN_SHOW     "layby.qry.orchestrator.saga_show"
/* the Overview's sagas by type and state and their throughput */
#define SUBJ_SAGA_ADMIN_OVERVIEW "layby.qry.orchestrator.saga_overview"
/* Answered in the edge from LAYBY_DLQ (edge_admin.c's local hooks): nobody
 * subscribes; the rows need a subject all the same. */
#define SUBJ_EDGE_DLQ_LIST       "layby.qry.edge.dead_letters"
#define SUBJ_EDGE_DLQ_SHOW       "layby.qry.edge.dead_letter"
#define SUBJ_EDGE_OVERVIEW       "layby.qry.edge.overview"

/* payment (services/payment) */
#define SUBJ_PAYMENT_CHARGE        "layby.cmd.payment.charge"
#define SUBJ_PAYMENT_REFUND        "layby.cmd.payment.refund"
#define SUBJ_PAYMENT_GET           "layby.qry.payment.get"
#define SUBJ_PAYMENT_AUDIT         "layby.qry.payment.audit"
#define SUBJ_PAYMENT_LEDGER        "layby.qry.payment.ledger"
#define SUBJ_PAYMENT_CAPTURED      "layby.evt.payment.captured"
#define SUBJ_PAYMENT_FAILED        "layby.evt.payment.failed"
#define SUBJ_PAYMENT_REFUNDED      "layby.evt.payment.refunded"
#define SUBJ_PAYMENT_REFUND_FAILED "layby.evt.payment.refund_failed"

/* delivery (services/delivery) */
#define SUBJ_DELIVERY_ADVANCE       "layby.cmd.delivery.advance"
#define SUBJ_DELIVERY_CANCEL        "layby.cmd.delivery.cancel"
#define SUBJ_DELIVERY_GET           "layby.qry.delivery.get"
#define SUBJ_DELIVERY_AUDIT         "layby.qry.delivery.audit"
#define SUBJ_DELIVERY_ADVANCED      "layby.evt.delivery.advanced"
#define SUBJ_DELIVERY_REFUSED       "layby.evt.delivery.refused"
#define SUBJ_DELIVERY_CANCELLED     "layby.evt.delivery.cancelled"
#define SUBJ_DELIVERY_CANCEL_FAILED "layby.evt.delivery.cancel_failed"

/* member: requests carrying passwords or personal data are request/reply,
 * never stored in a stream (docs/DECISIONS.md, "member requests"). */
#define SUBJ_MEMBER_USERNAME_CHECK       "layby.qry.member.username_check"
#define SUBJ_MEMBER_SIGN_UP              "layby.qry.member.sign_up"
#define SUBJ_MEMBER_VERIFICATION_SEND    "layby.qry.member.verification_send"
#define SUBJ_MEMBER_VERIFICATION_CONFIRM "layby.qry.member.verification_confirm"
#define SUBJ_MEMBER_LOGIN                "layby.qry.member.login"
#define SUBJ_MEMBER_REFRESH              "layby.qry.member.refresh"
#define SUBJ_MEMBER_LOGOUT               "layby.qry.member.logout"
#define SUBJ_MEMBER_GET_ME               "layby.qry.member.get_me"
#define SUBJ_MEMBER_CHANGE_PASSWORD      "layby.qry.member.change_password"
#define SUBJ_MEMBER_CHANGE_PHONE         "layby.qry.member.change_phone"
#define SUBJ_MEMBER_ADMIN                "layby.qry.member.admin"
#define SUBJ_MEMBER_REKEY                "layby.qry.member.rekey"
#define SUBJ_MEMBER_SIGNED_UP            "layby.evt.member.signed_up"
#define SUBJ_MEMBER_ACTIVATED            "layby.evt.member.activated"
#define SUBJ_MEMBER_CHANGED              "layby.evt.member.changed"

/* mailer */
#define SUBJ_MAILER_SEND "layby.cmd.mailer.send"

/* Key-value buckets of the member service and the edge (engine/bus_topology.c). */
#define KV_MEMBER_CODES  "LAYBY_MEMBER_CODES"  /* verification code hashes, TTL 10 min */
#define KV_MEMBER_LIMITS "LAYBY_MEMBER_LIMITS" /* resend and login-failure times, TTL 1 h */
#define KV_REVOKED       "LAYBY_REVOKED"       /* revoked access-token ids, watched by edges */
/* operations: layby-ctl audit puts its result under KV_OPS_AUDIT, the
 * console's Overview shows it (docs/DECISIONS.md) */
#define KV_OPS           "LAYBY_OPS"
#define KV_OPS_AUDIT     "audit.last"

#endif
