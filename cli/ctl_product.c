/* ctl_product.c - `layby-ctl product list|show|add|stock`: the catalog for
 * operators, through the same bus queries and commands the edge sends (the
 * catalog validates; this tool only shapes the request and prints the answer
 * as JSON, one object a line for list). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "codec.h"
#include "ctl.h"
#include "id.h"
#include "layby/v1/catalog.pb-c.h"
#include "subjects.h"

typedef struct product_conf {
    ctl_conn conn;
    int64_t limit;
    const char *cursor;
    const char *category;
    const char *q;
    const char *name;
    int64_t price;
    const char *details;
    int64_t stock;
    int64_t delta;
} product_conf;

#define OFF(f) offsetof(product_conf, f)
/* clang-format off */
static const cfg_opt list_opts[] = {
    { "limit",    NULL, CFG_INT, "20", OFF(limit),    1, 100, "products per page" },
    { "cursor",   NULL, CFG_STR, "",   OFF(cursor),   0, 0,   "nextCursor of the previous page" },
    { "category", NULL, CFG_STR, "",   OFF(category), 0, 0,   "only this category" },
    { "q",        NULL, CFG_STR, "",   OFF(q),        0, 0,   "part of the name, any case" },
};
static const cfg_opt add_opts[] = {
    { "name",     NULL, CFG_STR, NULL, OFF(name),     0, 0, "product name (required)" },
    { "price",    NULL, CFG_INT, NULL, OFF(price),    1, 1000000000000LL, "price in won (required)" },
    { "details",  NULL, CFG_STR, "",   OFF(details),  0, 0, "description" },
    { "category", NULL, CFG_STR, NULL, OFF(category), 0, 0, "category (required)" },
    { "stock",    NULL, CFG_INT, "0",  OFF(stock),    0, 1000000000LL, "initial units" },
};
static const cfg_opt stock_opts[] = {
    { "delta",    NULL, CFG_INT, NULL, OFF(delta), -1000000000LL, 1000000000LL, "units to add (negative to correct; required)" },
};
/* clang-format on */
const ctl_flags ctl_product_list_flags = CTL_FLAGS(list_opts);
const ctl_flags ctl_product_add_flags = CTL_FLAGS(add_opts);
const ctl_flags ctl_product_stock_flags = CTL_FLAGS(stock_opts);

/* Prints msg as one line of JSON. */
static lb_status
json_print(const ProtobufCMessage *msg, lb_err *err)
{
    char *text = NULL;
    lb_status s = codec_json_encode_text(&text, msg, err);
    if (s == LB_OK)
        printf("%s\n", text);
    free(text);
    return s;
}

/* Sends req (a query when !command, else a JetStream command) and prints the
 * reply of type want. */
static lb_status
ask(const product_conf *c, const char *subject, const ProtobufCMessage *req, bool command,
    const ProtobufCMessageDescriptor *want, ProtobufCMessage **keep, lb_err *err)
{
    bus *b = NULL;
    natsMsg *reply = NULL;
    ProtobufCMessage *out = NULL;
    bus_envelope env;
    bus_envelope_init(&env, req->descriptor, NULL);
    lb_status s = ctl_bus_open(&b, &c->conn, err);
    if (s == LB_OK)
        s = command ? bus_command(&reply, b, subject, &env, req, c->conn.timeout_ms, err)
                    : bus_request(&reply, b, subject, &env, req, c->conn.timeout_ms, err);
    if (s == LB_OK)
        s = bus_reply_decode(&out, reply, want, err);
    if (s == LB_OK && keep == NULL)
        s = json_print(out, err);
    if (keep != NULL && s == LB_OK)
        *keep = out;
    else if (out != NULL)
        protobuf_c_message_free_unpacked(out, NULL);
    natsMsg_Destroy(reply);
    bus_close(b);
    return s;
}

static int
product_list(const ctl_cmd *cmd, int argc, char **argv)
{
    product_conf c = { 0 };
    int rc = ctl_args(&c, cmd, list_opts, LB_COUNTOF(list_opts), argc, argv);
    if (rc >= 0)
        return rc;
    Layby__V1__ListProducts l = LAYBY__V1__LIST_PRODUCTS__INIT;
    l.limit = (int32_t)c.limit;
    l.cursor = (char *)c.cursor;
    l.category = (char *)c.category;
    l.q = (char *)c.q;
    ProtobufCMessage *out = NULL;
    lb_err err;
    if (ask(&c, SUBJ_CATALOG_LIST_PRODUCTS, &l.base, false, &layby__v1__product_page__descriptor,
            &out, &err) != LB_OK)
        return ctl_fail(cmd, &err);
    const Layby__V1__ProductPage *pg = (const Layby__V1__ProductPage *)out;
    lb_status s = LB_OK;
    for (size_t i = 0; i < pg->n_items && s == LB_OK; i++)
        s = json_print(&pg->items[i]->base, &err);
    if (s == LB_OK && pg->next_cursor[0] != '\0')
        fprintf(stderr, "next page: layby-ctl product list --cursor %s\n", pg->next_cursor);
    protobuf_c_message_free_unpacked(out, NULL);
    return s == LB_OK ? CTL_EXIT_OK : ctl_fail(cmd, &err);
}

static int
product_show(const ctl_cmd *cmd, int argc, char **argv)
{
    product_conf c = { 0 };
    const char *id = NULL;
    int rc = ctl_positional(&id, cmd, "product id", &argc, argv);
    if (rc < 0)
        rc = ctl_args(&c, cmd, NULL, 0, argc, argv);
    if (rc >= 0)
        return rc;
    Layby__V1__GetProduct g = LAYBY__V1__GET_PRODUCT__INIT;
    g.product_id = (char *)id;
    lb_err err;
    return ask(&c, SUBJ_CATALOG_GET_PRODUCT, &g.base, false, &layby__v1__product__descriptor, NULL,
               &err) == LB_OK
               ? CTL_EXIT_OK
               : ctl_fail(cmd, &err);
}

static int
product_add(const ctl_cmd *cmd, int argc, char **argv)
{
    product_conf c = { 0 };
    int rc = ctl_args(&c, cmd, add_opts, LB_COUNTOF(add_opts), argc, argv);
    if (rc >= 0)
        return rc;
    char pid[ID_STR_LEN];
    id_new(pid);
    Layby__V1__ProductDraft d = LAYBY__V1__PRODUCT_DRAFT__INIT;
    d.name = (char *)c.name;
    d.price = c.price;
    d.details = (char *)c.details;
    d.category = (char *)c.category;
    d.stock = c.stock;
    Layby__V1__CreateProduct cp = LAYBY__V1__CREATE_PRODUCT__INIT;
    cp.product_id = pid;
    cp.draft = &d;
    lb_err err;
    return ask(&c, SUBJ_CATALOG_CREATE_PRODUCT, &cp.base, true, &layby__v1__product__descriptor,
               NULL, &err) == LB_OK
               ? CTL_EXIT_OK
               : ctl_fail(cmd, &err);
}

static int
product_stock(const ctl_cmd *cmd, int argc, char **argv)
{
    product_conf c = { 0 };
    const char *id = NULL;
    int rc = ctl_positional(&id, cmd, "product id", &argc, argv);
    if (rc < 0)
        rc = ctl_args(&c, cmd, stock_opts, LB_COUNTOF(stock_opts), argc, argv);
    if (rc >= 0)
        return rc;
    Layby__V1__AdjustStock a = LAYBY__V1__ADJUST_STOCK__INIT;
    a.product_id = (char *)id;
    a.delta = c.delta;
    lb_err err;
    return ask(&c, SUBJ_CATALOG_ADJUST_STOCK, &a.base, true, &layby__v1__product__descriptor, NULL,
               &err) == LB_OK
               ? CTL_EXIT_OK
               : ctl_fail(cmd, &err);
}

/* The four commands share one entry (main.c's row), picked by name. */
typedef struct product_sub {
    const char *name;
    int (*fn)(const ctl_cmd *, int, char **);
} product_sub;

static const product_sub product_subs[] = {
    { "product list", product_list },
    { "product show", product_show },
    { "product add", product_add },
    { "product stock", product_stock },
};

int
ctl_product(const ctl_cmd *cmd, int argc, char **argv)
{
    for (size_t i = 0; i < LB_COUNTOF(product_subs); i++)
        if (strcmp(product_subs[i].name, cmd->name) == 0)
            return product_subs[i].fn(cmd, argc, argv);
    fprintf(stderr, "layby-ctl: no command %s\n", cmd->name);
    return CTL_EXIT_USAGE;
}
