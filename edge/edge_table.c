/* edge_table.c - every HTTP route of the shop, one row each (DESIGN §5).
 *
 * The rows drive dispatch (edge_routes.c), the runner (edge_run.c) and the
 * OpenAPI document (edge_openapi.c); edge_routes_check() and
 * tests/unit/edge_openapi_test.c refuse a malformed row. How to write one:
 * docs/ARCHITECTURE.md, "Adding a route". Rows are tried in order and the
 * first match wins: a literal segment ("/products/search") must come before
 * a {param} row that would swallow it. Each area keeps its rows in its own
 * section so parallel additions do not collide.
 */
#include "edge_admin.h"
#include "edge_catalog.h"
#include "edge_console.h"
#include "edge_member.h"
#include "edge_ops.h"
#include "edge_orders.h"
#include "edge_overview.h"
#include "edge_routes.h"
#include "engine/saga.h"
#include "engine/subjects.h"
#include "layby/v1/admin.pb-c.h"
#include "layby/v1/catalog.pb-c.h"
#include "layby/v1/member.pb-c.h"
#include "layby/v1/order.pb-c.h"
#include "layby/v1/payment.pb-c.h"
#include "layby/v1/saga.pb-c.h"

/* JSON Schemas of the operational answers, which are not protobuf messages. */
#define SCHEMA_STATUS  "{\"type\":\"object\",\"properties\":{\"status\":{\"type\":\"string\"}}}"
#define SCHEMA_METRICS "{\"type\":\"string\",\"description\":\"Prometheus text format 0.0.4\"}"
#define SCHEMA_PAGE    "{\"type\":\"string\",\"description\":\"a file of the console\"}"
#define SCHEMA_OPENAPI "{\"type\":\"object\",\"description\":\"this OpenAPI 3.0 document\"}"
/* The admin reads' documents (engine/orchestrator/saga_view.h renders them,
 * the same JSON `layby-ctl saga list|show --json` prints). */
#define SCHEMA_SAGA_PAGE                                                                           \
    "{\"type\":\"object\",\"properties\":{\"items\":{\"type\":\"array\",\"items\":"                \
    "{\"type\":\"object\",\"properties\":{\"sagaId\":{\"type\":\"string\"},\"type\":{\"type\":"    \
    "\"string\"},\"version\":{\"type\":\"integer\"},\"state\":{\"type\":\"string\"},\"step\":"     \
    "{\"type\":\"integer\"},\"stepName\":{\"type\":\"string\"},\"created\":{\"type\":\"string\"}," \
    "\"updated\":{\"type\":\"string\"}}}},\"nextCursor\":{\"type\":\"string\",\"nullable\":true}}" \
    "}"
#define SCHEMA_SAGA                                                                               \
    "{\"type\":\"object\",\"description\":\"the saga as `layby-ctl saga show --json` prints it: " \
    "sagaId, type, version, state, step, stepName, created, updated, timer, failure, "            \
    "lastError, resolved, record, steps[], timeline[] (id, at, kind, msgId, input with the "      \
    "decoded event, verdict, from, to, line, commands[]): one page of the timeline from "         \
    "position timelineFrom, and timelineNextCursor when more entries follow\"}"
/* A dead letter as engine/bus_dlq.c renders it (`layby-ctl dlq show`'s object
 * plus the Layby-Dlq-* headers by name and the redrive command). */
#define SCHEMA_DEAD_LETTER_PROPS                                                                   \
    "\"seq\":{\"type\":\"integer\"},\"time\":{\"type\":\"string\"},\"subject\":{\"type\":"         \
    "\"string\"},\"headers\":{\"type\":\"object\"},\"type\":{\"type\":\"string\",\"nullable\":"    \
    "true},"                                                                                       \
    "\"body\":{\"type\":\"object\",\"description\":\"decoded by its Layby-Type (proto3 JSON)\"},"  \
    "\"bodyBase64\":{\"type\":\"string\",\"description\":\"when it cannot be decoded\"},"          \
    "\"error\":{\"type\":\"string\"},\"originalSubject\":{\"type\":\"string\",\"nullable\":true}," \
    "\"consumer\":{\"type\":\"string\",\"nullable\":true},\"lastError\":{\"type\":\"string\","     \
    "\"nullable\":true},\"deliveries\":{\"type\":\"string\",\"nullable\":true},\"redrive\":"       \
    "{\"type\":\"string\",\"description\":\"the layby-ctl command that puts it back\"}"
#define SCHEMA_DEAD_LETTER "{\"type\":\"object\",\"properties\":{" SCHEMA_DEAD_LETTER_PROPS "}}"
#define SCHEMA_DEAD_LETTER_PAGE                                                                   \
    "{\"type\":\"object\",\"properties\":{\"total\":{\"type\":\"integer\",\"description\":"       \
    "\"letters in the stream\"},\"items\":{\"type\":\"array\",\"items\":" SCHEMA_DEAD_LETTER "}," \
    "\"nextCursor\":{\"type\":\"string\",\"nullable\":true}}}"

/* The Overview (edge/edge_overview.h gathers it). */
#define SCHEMA_OVERVIEW                                                                            \
    "{\"type\":\"object\",\"properties\":{\"at\":{\"type\":\"string\"},\"servers\":{\"type\":"     \
    "\"array\",\"items\":{\"type\":\"object\",\"description\":\"url, ok, connected, name, "        \
    "version, jetstream, cluster, or "                                                             \
    "error\"}},\"streams\":{\"type\":\"array\",\"items\":{\"type\":"                               \
    "\"object\",\"description\":\"name, ok, messages, bytes, lastSeq, replicas, leader, "          \
    "consumers[] (stream, name, ok, pending, ackPending, redelivered)\"}},\"deadLetters\":{"       \
    "\"type\":\"integer\"},\"daemons\":{\"type\":\"array\",\"items\":{\"type\":\"object\","        \
    "\"description\":\"name, port, ok, outboxBacklog (null: no outbox), or error\"}},\"sagas\":{"  \
    "\"type\":\"array\",\"nullable\":true,\"items\":{\"type\":\"object\",\"description\":\"type, " \
    "state, count, finished (finished ones: since finishedSince "                                  \
    "only)\"}},\"sagasError\":{\"type\":"                                                          \
    "\"string\"},\"finishedSince\":{\"type\":\"string\"},\"bucketSeconds\":{\"type\":"             \
    "\"integer\"},\"throughput\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"description" \
    "\":\"at, started, finished, completed: sagas per bucket, oldest first\"}},\"lastAudit\":{"    \
    "\"type\":\"object\",\"nullable\":true,\"description\":\"layby-ctl audit --json's document "   \
    "with at, violationCount (the first 20 violations) and error when it did not finish\"}}}"

/* clang-format off */
static const edge_route edge_routes[] = {
    /* --- operations ---------------------------------------------------------------------- */
    { .method = "GET", .path = "/healthz", .who = EDGE_PUBLIC, .kind = EDGE_KIND_LOCAL,
      .fn = edge_ops_healthz, .schema = SCHEMA_STATUS,
      .summary = "Liveness: the process answers", .operation = "healthz" },
    { .method = "GET", .path = "/readyz", .who = EDGE_PUBLIC, .kind = EDGE_KIND_LOCAL,
      .fn = edge_ops_readyz, .schema = SCHEMA_STATUS, .errors = EDGE_ERRORS(LB_ERR_UNAVAILABLE),
      .summary = "Readiness: NATS connected and JetStream answering", .operation = "readyz" },
    { .method = "GET", .path = "/metrics", .who = EDGE_PUBLIC, .kind = EDGE_KIND_LOCAL,
      .fn = edge_ops_metrics, .schema = SCHEMA_METRICS,
      .produces = "text/plain; version=0.0.4; charset=utf-8",
      .summary = "Prometheus metrics", .operation = "metrics" },
    { .method = "GET", .path = "/api/v1/openapi.json", .who = EDGE_PUBLIC, .kind = EDGE_KIND_LOCAL,
      .fn = edge_ops_openapi, .schema = SCHEMA_OPENAPI,
      .summary = "This document", .operation = "openapi" },

    /* --- the operations console: static pages, its data from the admin rows below ------ */
    { .method = "GET", .path = "/console", .who = EDGE_PUBLIC, .kind = EDGE_KIND_LOCAL,
      .fn = edge_console_index, .schema = SCHEMA_PAGE, .produces = "text/html",
      .summary = "The operations console (sign in as an admin)", .operation = "console" },
    { .method = "GET", .path = "/console/", .who = EDGE_PUBLIC, .kind = EDGE_KIND_LOCAL,
      .fn = edge_console_index, .schema = SCHEMA_PAGE, .produces = "text/html",
      .summary = "The operations console, as /console", .operation = "consoleSlash" },
    { .method = "GET", .path = "/console/{file}", .who = EDGE_PUBLIC, .kind = EDGE_KIND_LOCAL,
      .fn = edge_console_file, .schema = SCHEMA_PAGE, .produces = "text/javascript",
      .summary = "A file of the console (its scripts and styles)", .operation = "consoleFile" },

    /* --- admin: the operations console's reads (issue 24; changes stay in layby-ctl) ----- */
    { .method = "GET", .path = "/api/v1/admin/sagas", .who = EDGE_ADMIN, .kind = EDGE_KIND_QUERY,
      .summary = "Sagas, newest first, a page at a time (keyset cursor) (admin)",
      .operation = "adminListSagas", .subject = SUBJ_SAGA_ADMIN_LIST,
      .request = &layby__v1__admin_saga_list__descriptor,
      .reply = &layby__v1__admin_document__descriptor, .reply_json = "json",
      .schema = SCHEMA_SAGA_PAGE, .status = 200,
      .binds = EDGE_BINDS(EDGE_QUERY("state", "state", "only sagas in this state (STUCK...)"),
                          EDGE_QUERY("type", "type", "only sagas of this type (order_place)"),
                          EDGE_QUERY("since", "since", "only sagas changed at or after (RFC 3339)"),
                          EDGE_QUERY("orderId", "order_id", "only the sagas of this order"),
                          EDGE_QUERY("cursor", "cursor", "nextCursor of the previous page"),
                          EDGE_QUERY("limit", "limit", "page size 1-100, default 50")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID) },
    { .method = "GET", .path = "/api/v1/admin/sagas/{id}", .who = EDGE_ADMIN,
      .kind = EDGE_KIND_QUERY,
      .summary = "A saga: record, steps and timeline with decoded bodies (admin)",
      .operation = "adminGetSaga", .subject = SUBJ_SAGA_ADMIN_SHOW,
      .request = &layby__v1__admin_saga_show__descriptor,
      .reply = &layby__v1__admin_document__descriptor, .reply_json = "json",
      .schema = SCHEMA_SAGA, .status = 200,
      .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "saga_id"),
                          EDGE_QUERY("timelineCursor", "timeline_cursor",
                                     "timelineNextCursor of the previous page"),
                          EDGE_QUERY("timelineLimit", "timeline_limit",
                                     "timeline entries per page 1-500, default 200")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_NOT_FOUND) },
    { .method = "GET", .path = "/api/v1/admin/overview", .who = EDGE_ADMIN,
      .kind = EDGE_KIND_QUERY,
      .summary = "The shop at a glance: NATS servers, streams and durables, outbox backlogs, "
                 "sagas by type and state, throughput, dead letters, the last audit (admin)",
      .operation = "adminOverview", .subject = SUBJ_EDGE_OVERVIEW,
      .request = &layby__v1__admin_overview__descriptor,
      .reply = &layby__v1__admin_document__descriptor, .reply_json = "json",
      .schema = SCHEMA_OVERVIEW, .status = 200, .hooks = &edge_overview_hooks },
    { .method = "GET", .path = "/api/v1/admin/orders/{id}", .who = EDGE_ADMIN,
      .kind = EDGE_KIND_QUERY,
      .summary = "An order of any member with its payment ledger (charges, declines, outages, "
                 "refunds) and its delivery history (admin)",
      .operation = "adminGetOrder", .subject = SUBJ_ORDER_GET_ORDER,
      .request = &layby__v1__get_order__descriptor,
      .reply = &layby__v1__order__descriptor, .answer = &layby__v1__admin_order__descriptor,
      .status = 200, .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "order_id")),
      .errors = EDGE_ERRORS(LB_ERR_NOT_FOUND), .hooks = &edge_orders_admin_get_hooks },
    { .method = "GET", .path = "/api/v1/admin/dead-letters", .who = EDGE_ADMIN,
      .kind = EDGE_KIND_QUERY,
      .summary = "Dead letters (LAYBY_DLQ), oldest first, a page at a time; a page looks at "
                 "1,000 letters at most, so a filtered page may hold fewer (admin)",
      .operation = "adminListDeadLetters", .subject = SUBJ_EDGE_DLQ_LIST,
      .request = &layby__v1__admin_dead_letter_list__descriptor,
      .reply = &layby__v1__admin_document__descriptor, .reply_json = "json",
      .schema = SCHEMA_DEAD_LETTER_PAGE, .status = 200,
      .binds = EDGE_BINDS(EDGE_QUERY("cursor", "cursor", "nextCursor of the previous page"),
                          EDGE_QUERY("limit", "limit", "page size 1-100, default 20"),
                          EDGE_QUERY("consumer", "consumer", "only this durable's (LAYBY_CMD/catalog)"),
                          EDGE_QUERY("type", "type", "only this Layby-Type"),
                          EDGE_QUERY("correlation", "correlation", "only this flow (an order id)")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID), .hooks = &edge_admin_dlq_list_hooks },
    { .method = "GET", .path = "/api/v1/admin/dead-letters/{seq}", .who = EDGE_ADMIN,
      .kind = EDGE_KIND_QUERY,
      .summary = "A dead letter: decoded body, headers, consumer, last error and the "
                 "layby-ctl dlq redrive command (admin)",
      .operation = "adminGetDeadLetter", .subject = SUBJ_EDGE_DLQ_SHOW,
      .request = &layby__v1__admin_dead_letter_show__descriptor,
      .reply = &layby__v1__admin_document__descriptor, .reply_json = "json",
      .schema = SCHEMA_DEAD_LETTER, .status = 200,
      .binds = EDGE_BINDS(EDGE_PATH("seq", "seq")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_NOT_FOUND), .hooks = &edge_admin_dlq_show_hooks },

    /* --- catalog: products, stock, wishlist ------------------------------------------------ */
    { .method = "POST", .path = "/api/v1/products", .who = EDGE_ADMIN, .kind = EDGE_KIND_COMMAND,
      .summary = "Create a product (admin)", .operation = "createProduct",
      .subject = SUBJ_CATALOG_CREATE_PRODUCT,
      .request = &layby__v1__create_product__descriptor,
      .body = &layby__v1__product_draft__descriptor, .body_field = "draft",
      .reply = &layby__v1__product__descriptor, .status = 201,
      .location = "/api/v1/products/{productId}", .idempotent = true,
      .binds = EDGE_BINDS(EDGE_NEW_ID("product", "product_id")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID), .hooks = &edge_catalog_create_hooks },
    { .method = "GET", .path = "/api/v1/products", .who = EDGE_PUBLIC, .kind = EDGE_KIND_QUERY,
      .summary = "List products, a page at a time (keyset cursor)", .operation = "listProducts",
      .subject = SUBJ_CATALOG_LIST_PRODUCTS,
      .request = &layby__v1__list_products__descriptor,
      .reply = &layby__v1__product_page__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_QUERY("limit", "limit", "page size 1-100, default 20"),
                          EDGE_QUERY("cursor", "cursor", "nextCursor of the previous page"),
                          EDGE_QUERY("category", "category", "only this category"),
                          EDGE_QUERY("q", "q", "case-insensitive part of the name")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID), .hooks = &edge_catalog_list_hooks },
    { .method = "GET", .path = "/api/v1/products/{id}", .who = EDGE_PUBLIC, .kind = EDGE_KIND_QUERY,
      .summary = "Read a product", .operation = "getProduct",
      .subject = SUBJ_CATALOG_GET_PRODUCT,
      .request = &layby__v1__get_product__descriptor,
      .reply = &layby__v1__product__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "product_id")),
      .errors = EDGE_ERRORS(LB_ERR_NOT_FOUND), .hooks = &edge_catalog_get_hooks },
    { .method = "PATCH", .path = "/api/v1/products/{id}/stock", .who = EDGE_ADMIN,
      .kind = EDGE_KIND_COMMAND, .summary = "Restock or correct a product's stock (admin)",
      .operation = "adjustStock", .subject = SUBJ_CATALOG_ADJUST_STOCK,
      .request = &layby__v1__adjust_stock__descriptor,
      .body = &layby__v1__adjust_stock__descriptor,
      .reply = &layby__v1__product__descriptor, .status = 200, .idempotent = true,
      /* with Idempotency-Key, a retried restock applies once (the catalog
       * keeps the adjustment id derived from the key) */
      .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "product_id"),
                          EDGE_NEW_ID("adjustment", "adjustment_id")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_NOT_FOUND, LB_ERR_STOCK_NEGATIVE) },
    { .method = "GET", .path = "/api/v1/me/wishlist", .who = EDGE_MEMBER, .kind = EDGE_KIND_QUERY,
      .summary = "The caller's wishlist with current prices", .operation = "getWishlist",
      .subject = SUBJ_CATALOG_WISHLIST_GET,
      .request = &layby__v1__get_wishlist__descriptor,
      .reply = &layby__v1__wishlist__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_SUB("member_id")) },
    { .method = "PUT", .path = "/api/v1/me/wishlist/items/{productId}", .who = EDGE_MEMBER,
      .kind = EDGE_KIND_COMMAND, .summary = "Add a product to the wishlist or set its quantity",
      .operation = "putWishlistItem", .subject = SUBJ_CATALOG_WISHLIST_PUT,
      .request = &layby__v1__put_wishlist_item__descriptor,
      .body = &layby__v1__put_wishlist_item__descriptor,
      .reply = &layby__v1__wishlist__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_SUB("member_id"), EDGE_PATH_UUID("productId", "product_id")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_NOT_FOUND) },
    { .method = "DELETE", .path = "/api/v1/me/wishlist/items/{productId}", .who = EDGE_MEMBER,
      .kind = EDGE_KIND_COMMAND, .summary = "Remove a product from the wishlist",
      .operation = "removeWishlistItem", .subject = SUBJ_CATALOG_WISHLIST_REMOVE,
      .request = &layby__v1__remove_wishlist_item__descriptor,
      .reply = &layby__v1__wishlist__descriptor, .status = 204,
      .binds = EDGE_BINDS(EDGE_SUB("member_id"), EDGE_PATH_UUID("productId", "product_id")),
      .errors = EDGE_ERRORS(LB_ERR_NOT_FOUND) },

    /* --- member: sign-up, verification, auth, me ------------------------------------------- */
    /* Request/reply, never stored (docs/DECISIONS.md §9). A Throttled reply is 429 + Retry-After. */
    { .method = "POST", .path = "/api/v1/members/username-check", .who = EDGE_PUBLIC, .kind = EDGE_KIND_QUERY,
      .summary = "Is a username free (in any case)?", .operation = "checkUsername",
      .subject = SUBJ_MEMBER_USERNAME_CHECK,
      .request = &layby__v1__username_check__descriptor, .body = &layby__v1__username_check__descriptor,
      .reply = &layby__v1__username_availability__descriptor, .status = 200,
      .errors = EDGE_ERRORS(LB_ERR_INVALID) },
    { .method = "POST", .path = "/api/v1/members", .who = EDGE_PUBLIC, .kind = EDGE_KIND_QUERY,
      .summary = "Sign up: the member waits for email verification", .operation = "signUp",
      .subject = SUBJ_MEMBER_SIGN_UP,
      .request = &layby__v1__sign_up__descriptor, .body = &layby__v1__sign_up__descriptor,
      .reply = &layby__v1__member_status__descriptor, .status = 201,
      .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_USERNAME_TAKEN, LB_ERR_THROTTLED) },
    { .method = "POST", .path = "/api/v1/members/verification", .who = EDGE_PUBLIC, .kind = EDGE_KIND_QUERY,
      .summary = "Mail a 6-digit code, valid 10 minutes (same answer for unknown members)",
      .operation = "sendVerificationCode",
      .subject = SUBJ_MEMBER_VERIFICATION_SEND,
      .request = &layby__v1__verification_send__descriptor, .body = &layby__v1__verification_send__descriptor,
      .reply = &layby__v1__verification_accepted__descriptor, .status = 202,
      .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_THROTTLED) },
    { .method = "POST", .path = "/api/v1/members/verification/confirm", .who = EDGE_PUBLIC, .kind = EDGE_KIND_QUERY,
      .summary = "Confirm the code: the member becomes ACTIVE", .operation = "confirmVerificationCode",
      .subject = SUBJ_MEMBER_VERIFICATION_CONFIRM,
      .request = &layby__v1__verification_confirm__descriptor, .body = &layby__v1__verification_confirm__descriptor,
      .reply = &layby__v1__member_status__descriptor, .status = 200,
      .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_CODE, LB_ERR_THROTTLED) },
    { .method = "POST", .path = "/api/v1/auth/login", .who = EDGE_PUBLIC, .kind = EDGE_KIND_QUERY,
      .summary = "Log in: an access token (15 min) and a refresh token", .operation = "login",
      .subject = SUBJ_MEMBER_LOGIN,
      .request = &layby__v1__login__descriptor, .body = &layby__v1__login__descriptor,
      .reply = &layby__v1__token_pair__descriptor, .status = 200, .hooks = &edge_member_login_hooks,
      .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_CREDENTIALS, LB_ERR_NOT_VERIFIED, LB_ERR_LOCKED,
                            LB_ERR_THROTTLED) },
    { .method = "POST", .path = "/api/v1/auth/refresh", .who = EDGE_PUBLIC, .kind = EDGE_KIND_QUERY,
      .summary = "Rotate the token pair; a spent refresh token revokes its login", .operation = "refresh",
      .subject = SUBJ_MEMBER_REFRESH,
      .request = &layby__v1__refresh__descriptor, .body = &layby__v1__refresh__descriptor,
      .reply = &layby__v1__token_pair__descriptor, .status = 200,
      .errors = EDGE_ERRORS(LB_ERR_UNAUTHORIZED) },
    { .method = "POST", .path = "/api/v1/auth/logout", .who = EDGE_MEMBER, .kind = EDGE_KIND_QUERY,
      .summary = "Revoke this login and its access token", .operation = "logout",
      .subject = SUBJ_MEMBER_LOGOUT, .request = &layby__v1__logout__descriptor,
      .reply = &layby__v1__done__descriptor, .status = 204, .hooks = &edge_member_logout_hooks,
      .binds = EDGE_BINDS(EDGE_SUB("member_id")) },
    { .method = "GET", .path = "/api/v1/me", .who = EDGE_MEMBER, .kind = EDGE_KIND_QUERY,
      .summary = "My member record, decrypted", .operation = "getMe",
      .subject = SUBJ_MEMBER_GET_ME, .request = &layby__v1__get_me__descriptor,
      .reply = &layby__v1__me__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_SUB("member_id")), .errors = EDGE_ERRORS(LB_ERR_NOT_FOUND) },
    { .method = "PATCH", .path = "/api/v1/me/password", .who = EDGE_MEMBER, .kind = EDGE_KIND_QUERY,
      .summary = "Change my password (the current one is needed); ends my other logins",
      .operation = "changePassword",
      .subject = SUBJ_MEMBER_CHANGE_PASSWORD,
      .request = &layby__v1__change_password__descriptor, .body = &layby__v1__change_password__descriptor,
      .reply = &layby__v1__done__descriptor, .status = 204, .hooks = &edge_member_password_hooks,
      .binds = EDGE_BINDS(EDGE_SUB("member_id")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_CREDENTIALS, LB_ERR_NOT_FOUND, LB_ERR_THROTTLED) },
    { .method = "PATCH", .path = "/api/v1/me/phone", .who = EDGE_MEMBER, .kind = EDGE_KIND_QUERY,
      .summary = "Change my phone number", .operation = "changePhone",
      .subject = SUBJ_MEMBER_CHANGE_PHONE,
      .request = &layby__v1__change_phone__descriptor, .body = &layby__v1__change_phone__descriptor,
      .reply = &layby__v1__me__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_SUB("member_id")), .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_NOT_FOUND) },

    /* --- orders: orders, payment, addresses ------------------------------------------------ */
    { .method = "GET", .path = "/api/v1/orders", .who = EDGE_MEMBER, .kind = EDGE_KIND_QUERY,
      .summary = "The member's orders, newest first", .operation = "listOrders",
      .subject = SUBJ_ORDER_LIST_ORDERS,
      .request = &layby__v1__list_orders__descriptor,
      .reply = &layby__v1__order_list__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_SUB("member_id"),
                          EDGE_QUERY("limit", "limit", "page size, 1-100 (20)"),
                          EDGE_QUERY("cursor", "cursor", "nextCursor of the previous page"),
                          EDGE_QUERY("status", "status", "only orders in this status")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID) },
    { .method = "POST", .path = "/api/v1/orders", .who = EDGE_MEMBER, .kind = EDGE_KIND_SAGA_START,
      .summary = "Place an order: 201 PAYMENT_PENDING with paymentDeadline, 409 out_of_stock, "
                 "202 while still deciding", .operation = "placeOrder",
      .subject = SUBJ_SAGA_START_ORDER_PLACE,
      .request = &layby__v1__place_order__descriptor,
      .body = &layby__v1__place_order_draft__descriptor, .body_field = "draft",
      .reply = &layby__v1__saga_outcome__descriptor,
      .step_answer = { &layby__v1__order__descriptor, &layby__v1__order_status_set__descriptor },
      .answer = &layby__v1__order__descriptor,
      .status = 201, .location = "/api/v1/orders/{orderId}", .idempotent = true,
      .binds = EDGE_BINDS(EDGE_NEW_ID("order", "order_id"), EDGE_SUB("member_id")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_NOT_FOUND, LB_ERR_STOCK),
      .hooks = &edge_orders_place_hooks },
    { .method = "POST", .path = "/api/v1/orders/{id}/payment", .who = EDGE_MEMBER,
      .kind = EDGE_KIND_SAGA_START,
      .summary = "Pay an order: 200 PAID, 402 payment_declined (it stays PAYMENT_PENDING), "
                 "202 while still deciding",
      .operation = "payOrder",
      .subject = SUBJ_SAGA_START_ORDER_PAY,
      .request = &layby__v1__pay_order__descriptor,
      .body = &layby__v1__payment_draft__descriptor, .body_field = "draft",
      .reply = &layby__v1__saga_outcome__descriptor,
      .step_answer = { &layby__v1__order_status_set__descriptor },
      .answer = &layby__v1__order__descriptor,
      .status = 200, .location = "/api/v1/orders/{orderId}", .idempotent = true,
      .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "order_id"), EDGE_SUB("member_id"),
                          EDGE_NEW_ID("payment", "saga_id")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_NOT_FOUND, LB_ERR_STATE,
                            LB_ERR_PAYMENT_DECLINED),
      .hooks = &edge_orders_pay_hooks },
    { .method = "POST", .path = "/api/v1/orders/{id}/cancel", .who = EDGE_MEMBER,
      .kind = EDGE_KIND_SIGNAL,
      .summary = "Cancel an order (until it ships): 200 CANCELLED, 409 not_cancellable",
      .operation = "cancelOrder",
      .subject = SAGA_SUBJ_SIGNAL,
      .request = &layby__v1__signal_saga__descriptor,
      .reply = &layby__v1__saga_outcome__descriptor,
      .answer = &layby__v1__order_signalled__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "saga_id"), EDGE_CONST("name", "cancel")),
      .errors = EDGE_ERRORS(LB_ERR_NOT_FOUND, LB_ERR_NOT_CANCELLABLE),
      .hooks = &edge_orders_cancel_hooks },
    { .method = "POST", .path = "/api/v1/orders/{id}/return", .who = EDGE_MEMBER,
      .kind = EDGE_KIND_SIGNAL,
      .summary = "Return a delivered order (within the window): 200 RETURN_REQUESTED, "
                 "409 not_returnable", .operation = "returnOrder",
      .subject = SAGA_SUBJ_SIGNAL,
      .request = &layby__v1__signal_saga__descriptor,
      .reply = &layby__v1__saga_outcome__descriptor,
      .answer = &layby__v1__order_signalled__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "saga_id"), EDGE_CONST("name", "return")),
      .errors = EDGE_ERRORS(LB_ERR_NOT_FOUND, LB_ERR_NOT_RETURNABLE),
      .hooks = &edge_orders_return_hooks },
    { .method = "GET", .path = "/api/v1/orders/{id}", .who = EDGE_MEMBER, .kind = EDGE_KIND_QUERY,
      .summary = "One of the member's orders: items, totals, delivery, timeline",
      .operation = "getOrder",
      .subject = SUBJ_ORDER_GET_ORDER,
      .request = &layby__v1__get_order__descriptor,
      .reply = &layby__v1__order__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "order_id"), EDGE_SUB("member_id")),
      .errors = EDGE_ERRORS(LB_ERR_NOT_FOUND), .hooks = &edge_orders_get_hooks },
    { .method = "GET", .path = "/api/v1/me/addresses", .who = EDGE_MEMBER, .kind = EDGE_KIND_QUERY,
      .summary = "The member's address book", .operation = "listAddresses",
      .subject = SUBJ_ORDER_LIST_ADDRESSES,
      .request = &layby__v1__list_addresses__descriptor,
      .reply = &layby__v1__address_list__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_SUB("member_id")) },
    { .method = "POST", .path = "/api/v1/me/addresses", .who = EDGE_MEMBER, .kind = EDGE_KIND_COMMAND,
      .summary = "Add an address (the first one is the default)", .operation = "createAddress",
      .subject = SUBJ_ORDER_CREATE_ADDRESS,
      .request = &layby__v1__create_address__descriptor,
      .body = &layby__v1__address_draft__descriptor, .body_field = "draft",
      .reply = &layby__v1__address__descriptor, .status = 201,
      .location = "/api/v1/me/addresses/{addressId}", .idempotent = true,
      .binds = EDGE_BINDS(EDGE_SUB("member_id"), EDGE_NEW_ID("address", "address_id")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_CONFLICT) },
    { .method = "PATCH", .path = "/api/v1/me/addresses/{id}", .who = EDGE_MEMBER,
      .kind = EDGE_KIND_COMMAND,
      .summary = "Change an address (fields left out or empty keep their value)",
      .operation = "updateAddress",
      .subject = SUBJ_ORDER_UPDATE_ADDRESS,
      .request = &layby__v1__update_address__descriptor,
      .body = &layby__v1__address_draft__descriptor, .body_field = "draft",
      .reply = &layby__v1__address__descriptor, .status = 200,
      .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "address_id"), EDGE_SUB("member_id")),
      .errors = EDGE_ERRORS(LB_ERR_INVALID, LB_ERR_NOT_FOUND) },
    { .method = "DELETE", .path = "/api/v1/me/addresses/{id}", .who = EDGE_MEMBER,
      .kind = EDGE_KIND_COMMAND,
      .summary = "Delete an address (the newest other one becomes the default)",
      .operation = "deleteAddress",
      .subject = SUBJ_ORDER_DELETE_ADDRESS,
      .request = &layby__v1__delete_address__descriptor,
      .reply = &layby__v1__address_deleted__descriptor, .status = 204,
      .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "address_id"), EDGE_SUB("member_id")),
      .errors = EDGE_ERRORS(LB_ERR_NOT_FOUND) },
};
/* clang-format on */
_Static_assert(LB_COUNTOF(edge_routes) <= EDGE_ROUTES_MAX, "raise EDGE_ROUTES_MAX");

const edge_route *
edge_routes_table(size_t *n)
{
    *n = LB_COUNTOF(edge_routes);
    return edge_routes;
}
