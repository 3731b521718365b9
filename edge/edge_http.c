/* edge_http.c - request bodies within limits, JSON decoding through the
 * generic codec, and every response the edge writes.
 *
 * Only edge_reply() writes to the socket, and only edge_error_body() builds an
 * error body, so status, headers and the error shape cannot drift between
 * routes. Responses always carry Content-Length; when a body may still be on
 * the wire (refused before reading), the connection is closed after the
 * reply instead of parsing the leftover bytes as the next request.
 */
#include "edge_http.h"

#include <civetweb.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"

#define EDGE_HEAD_MAX (1024 + EDGE_HEADERS_MAX)

void
edge_req_destroy(edge_req *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    if (r->held != NULL)
        protobuf_c_message_free_unpacked(r->held, NULL);
    r->held = NULL;
}

const char *
edge_header(const edge_req *r, const char *name)
{
    return mg_get_header(r->conn, name);
}

bool
edge_param_copy(const edge_req *r, const char *name, char *out, size_t n)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < r->n_params; i++) {
        const edge_param *p = &r->params[i];
        if (p->name_len != name_len || memcmp(p->name, name, name_len) != 0)
            continue;
        if (p->len >= n)
            return false;
        memcpy(out, p->val, p->len);
        out[p->len] = '\0';
        return true;
    }
    return false;
}

lb_status
edge_error_body(char **out, lb_status code, const char *message, const char *field, lb_err *err)
{
    if (message == NULL || message[0] == '\0')
        message = lb_status_text(code);
    json_t *inner = json_pack("{s:s, s:s}", "code", lb_status_code(code), "message", message);
    if (inner != NULL && field != NULL && field[0] != '\0')
        json_object_set_new(inner, "field", json_string(field));
    json_t *root = inner ? json_pack("{s:o}", "error", inner) : NULL;
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (text == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "error body (message not UTF-8?)");
    *out = text;
    return LB_OK;
}

bool
edge_json_type_ok(const char *content_type)
{
    static const char want[] = "application/json";
    if (content_type == NULL)
        return false;
    while (*content_type == ' ')
        content_type++;
    if (strncasecmp(content_type, want, sizeof want - 1) != 0)
        return false;
    char next = content_type[sizeof want - 1];
    return next == '\0' || next == ';' || next == ' ';
}

lb_status
edge_body_check(long long content_length, const char *content_type, int64_t max_body, lb_err *err)
{
    if (content_length < 0)
        return lb_err_set(err, LB_ERR_LENGTH, "a Content-Length is required (no chunked bodies)");
    if (content_length > max_body)
        return lb_err_set(err, LB_ERR_TOO_LARGE, "request body over %lld bytes",
                          (long long)max_body);
    if (!edge_json_type_ok(content_type))
        return lb_err_set(err, LB_ERR_MEDIA_TYPE, "Content-Type must be application/json");
    return LB_OK;
}

static bool
has_token_ci(const char *s, const char *tok)
{
    size_t n = strlen(tok);
    for (; s != NULL && *s != '\0'; s++)
        if (strncasecmp(s, tok, n) == 0)
            return true;
    return false;
}

static bool
body_pending(const edge_req *r)
{
    if (r->body != NULL)
        return false;
    if (r->body_unread || r->ri->content_length > 0)
        return true;
    return has_token_ci(mg_get_header(r->conn, "Transfer-Encoding"), "chunked");
}

void
edge_reply(edge_req *r, int status, const char *content_type, const char *body, size_t len,
           const char *extra_headers)
{
    char head[EDGE_HEAD_MAX];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "traceparent: %s\r\n"
                     "%s%s\r\n",
                     status, mg_get_response_code_text(r->conn, status), content_type, len,
                     r->traceparent, body_pending(r) ? "Connection: close\r\n" : "",
                     extra_headers ? extra_headers : "");
    /* Extra headers are bounded by our own callers; a truncated head would be
     * a malformed response, so send a bare 500 instead. */
    if (n < 0 || (size_t)n >= sizeof head) {
        static const char fail[] = "HTTP/1.1 500 Internal Server Error\r\n"
                                   "Content-Length: 0\r\nConnection: close\r\n\r\n";
        mg_write(r->conn, fail, sizeof fail - 1);
        r->status = 500;
        return;
    }
    mg_write(r->conn, head, (size_t)n);
    /* HEAD gets the headers of the answer, never its body (RFC 9110 9.3.2):
     * bytes after them would be read as the next response. */
    bool head_only = r->ri->request_method && strcmp(r->ri->request_method, "HEAD") == 0;
    if (len > 0 && !head_only)
        mg_write(r->conn, body, len);
    r->status = status;
}

void
edge_reply_json(edge_req *r, int status, const char *json, const char *extra_headers)
{
    edge_reply(r, status, "application/json", json, strlen(json), extra_headers);
}

void
edge_reply_msg(edge_req *r, int status, const ProtobufCMessage *msg, const char *extra_headers)
{
    char *text = NULL;
    lb_err err;
    if (codec_json_encode_text(&text, msg, &err) != LB_OK) {
        edge_reply_error(r, &err, NULL);
        return;
    }
    edge_reply_json(r, status, text, extra_headers);
    free(text);
}

char *
edge_error_text(int *status, lb_status code, const char *field, const char *message)
{
    if (code == LB_OK) /* a caller's bug: never send an error body with 200 */
        code = LB_ERR_INTERNAL;
    *status = lb_status_http(code);
    if (*status >= 500) {
        message = NULL; /* internals are logged by the caller, never sent */
        field = NULL;
    }
    char *body = NULL;
    /* message may echo client input that is not UTF-8: then the generic text */
    if (edge_error_body(&body, code, message, field, NULL) != LB_OK &&
        edge_error_body(&body, code, NULL, NULL, NULL) != LB_OK)
        return NULL;
    return body;
}

void
edge_reply_status(edge_req *r, lb_status code, const char *field, const char *message,
                  const char *extra_headers)
{
    char extra[EDGE_HEADERS_MAX];
    snprintf(extra, sizeof extra, "%s%s",
             code == LB_ERR_UNAUTHORIZED ? "WWW-Authenticate: Bearer\r\n" : "",
             extra_headers ? extra_headers : "");
    int status;
    char *body = edge_error_text(&status, code, field, message);
    if (body == NULL) {
        edge_reply(r, 500, "application/json", "", 0, NULL);
        return;
    }
    edge_reply_json(r, status, body, extra);
    free(body);
}

void
edge_reply_error(edge_req *r, const lb_err *e, const char *extra_headers)
{
    edge_reply_status(r, e->code, e->field, e->msg, extra_headers);
}

lb_status
edge_body_read_or_reply(edge_req *r)
{
    lb_err err;
    long long cl = r->ri->content_length;
    if (edge_body_check(cl, mg_get_header(r->conn, "Content-Type"), r->max_body, &err) != LB_OK) {
        r->body_unread = cl != 0;
        edge_reply_error(r, &err, NULL);
        return err.code;
    }
    /* Allocated only after the limit check: the client chose this size. */
    char *buf = malloc((size_t)cl + 1);
    if (buf == NULL) {
        r->body_unread = true;
        edge_reply_status(r, LB_ERR_NOMEM, NULL, NULL, NULL);
        return LB_ERR_NOMEM;
    }
    size_t got = 0;
    while (got < (size_t)cl) {
        int n = mg_read(r->conn, buf + got, (size_t)cl - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < (size_t)cl) {
        free(buf);
        r->body_unread = true;
        edge_reply_status(r, LB_ERR_INVALID, NULL, "request body shorter than Content-Length",
                          NULL);
        return LB_ERR_INVALID;
    }
    buf[got] = '\0';
    r->body = buf;
    r->body_len = got;
    return LB_OK;
}

ProtobufCMessage *
edge_body_decode_or_reply(edge_req *r, const ProtobufCMessageDescriptor *desc)
{
    if (edge_body_read_or_reply(r) != LB_OK)
        return NULL;
    ProtobufCMessage *msg = NULL;
    lb_err err;
    lb_err_clear(&err);
    if (codec_json_decode_text(&msg, desc, r->body, r->body_len, &err) != LB_OK) {
        edge_reply_error(r, &err, NULL);
        return NULL;
    }
    return msg;
}

void
edge_envelope_init(edge_req *r, bus_envelope *env, const ProtobufCMessageDescriptor *desc)
{
    bus_envelope_init(env, desc, NULL);
    snprintf(env->actor, sizeof env->actor, "%s", r->actor);
    snprintf(env->traceparent, sizeof env->traceparent, "%s", r->traceparent);
    /* Everything one HTTP request causes shares one correlation id. */
    if (r->correlation[0] != '\0')
        memcpy(env->correlation, r->correlation, sizeof env->correlation);
    else
        memcpy(r->correlation, env->correlation, sizeof r->correlation);
}
