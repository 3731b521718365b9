/* edge_member.c - prepare hooks of the member routes (edge_member.h). */
#include "edge_member.h"

#include <civetweb.h>
#include <stdlib.h>
#include <string.h>

#include "layby/v1/member.pb-c.h"

/* Replaces a string field of a protobuf-c message with a copy of v. */
static lb_status
str_set(char **field, const char *v, lb_err *err)
{
    char *copy = strdup(v != NULL ? v : "");
    if (copy == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "request field");
    if (*field != NULL && *field != protobuf_c_empty_string)
        free(*field);
    *field = copy;
    return LB_OK;
}

static lb_status
login_prepare(ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    Layby__V1__Login *l = (Layby__V1__Login *)req;
    return str_set(&l->client_addr, r->ri->remote_addr, err);
}

static lb_status
logout_prepare(ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    Layby__V1__Logout *l = (Layby__V1__Logout *)req;
    l->exp = r->claims.exp_s;
    lb_status st = str_set(&l->session_id, r->claims.sid, err);
    return st == LB_OK ? str_set(&l->jti, r->claims.jti, err) : st;
}

static lb_status
password_prepare(ProtobufCMessage *req, edge_req *r, lb_err *err)
{
    Layby__V1__ChangePassword *c = (Layby__V1__ChangePassword *)req;
    return str_set(&c->session_id, r->claims.sid, err);
}

/* Each hook names the fields it sets, so the body may not and OpenAPI does not show them. */
const edge_hooks edge_member_login_hooks = { .prepare = login_prepare,
                                             .fills = EDGE_FILLS("client_addr") };
const edge_hooks edge_member_logout_hooks = { .prepare = logout_prepare,
                                              .fills = EDGE_FILLS("session_id", "jti", "exp") };
const edge_hooks edge_member_password_hooks = { .prepare = password_prepare,
                                                .fills = EDGE_FILLS("session_id") };
