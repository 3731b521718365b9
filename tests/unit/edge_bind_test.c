/* edge_bind_test.c - the declarative parts of the route runner: text from
 * the path, the query string and the token into typed request fields (with
 * errors naming the parameter), and Location patterns filled from a reply.
 */
#include <civetweb.h>
#include <criterion/criterion.h>
#include <string.h>

#include "codectest.pb-c.h"
#include "edge_bind.h"
#include "edge_outcome.h"
#include "edge_routes.h"
#include "edge_run.h"
#include "id.h"
#include "layby/v1/catalog.pb-c.h"

typedef struct set_case {
    const char *field, *text;
    bool ok;
} set_case;

/* clang-format off */
static const set_case set_cases[] = {
    { "f_int32",  "-2147483648", true  }, { "f_int32",  "2147483648", false },
    { "f_int32",  "12abc",       false }, { "f_int32",  "",           false },
    { "f_int32",  "+5",          false }, { "f_int32",  " 5",         false },
    { "f_int64",  "-9223372036854775808", true }, { "f_int64", "9223372036854775808", false },
    { "f_uint32", "4294967295",  true  }, { "f_uint32", "4294967296", false },
    { "f_uint32", "-1",          false }, { "f_uint64", "18446744073709551615", true },
    { "f_bool",   "true",        true  }, { "f_bool",   "1",          false },
    { "color",    "COLOR_BLUE",  true  }, { "color",    "BLUE",       false },
    { "f_string", "tv set",      true  }, { "f_string", "\xff",       false },
    { "limit",    "7",           true  },
};
/* clang-format on */

Test(edge_bind, field_set_reads_each_type_and_refuses_misfits)
{
    for (size_t i = 0; i < LB_COUNTOF(set_cases); i++) {
        const set_case *c = &set_cases[i];
        Layby__Test__Everything m = LAYBY__TEST__EVERYTHING__INIT;
        lb_err err;
        lb_err_clear(&err);
        lb_status s = edge_field_set(&m.base, c->field, c->text, "p", &err);
        cr_assert_eq(s == LB_OK, c->ok, "%s = \"%s\": %s", c->field, c->text, err.msg);
        if (!c->ok) {
            cr_assert_eq(s, LB_ERR_INVALID);
            cr_assert_str_eq(err.field, "p", "the parameter is named");
        }
        if (m.f_string != protobuf_c_empty_string)
            free(m.f_string);
    }
    Layby__Test__Everything m = LAYBY__TEST__EVERYTHING__INIT;
    edge_field_set(&m.base, "f_int32", "-42", "p", NULL);
    edge_field_set(&m.base, "f_uint64", "18446744073709551615", "p", NULL);
    edge_field_set(&m.base, "color", "COLOR_BLUE", "p", NULL);
    edge_field_set(&m.base, "limit", "7", "p", NULL);
    cr_assert_eq(m.f_int32, -42);
    cr_assert_eq(m.f_uint64, UINT64_MAX);
    cr_assert_eq(m.color, LAYBY__TEST__COLOR__COLOR_BLUE);
    cr_assert_eq(m.limit_present_case, LAYBY__TEST__EVERYTHING__LIMIT_PRESENT_LIMIT,
                 "a oneof member is selected");
    cr_assert_eq(m.limit, 7);
    lb_err err;
    cr_assert_eq(edge_field_set(&m.base, "inner", "x", "p", &err), LB_ERR_CONFIG,
                 "a message field is not settable from text");
    cr_assert_eq(edge_field_set(&m.base, "r_int32", "1", "p", &err), LB_ERR_CONFIG);
    cr_assert_eq(edge_field_set(&m.base, "nope", "1", "p", &err), LB_ERR_CONFIG);
}

Test(edge_bind, repeated_sets_free_the_old_string)
{
    ProtobufCMessage *m = malloc(layby__test__everything__descriptor.sizeof_message);
    protobuf_c_message_init(&layby__test__everything__descriptor, m);
    cr_assert_eq(edge_field_set(m, "f_string", "one", "p", NULL), LB_OK);
    cr_assert_eq(edge_field_set(m, "f_string", "two", "p", NULL), LB_OK); /* ASan: no leak */
    cr_assert_str_eq(((Layby__Test__Everything *)m)->f_string, "two");
    protobuf_c_message_free_unpacked(m, NULL);
}

/* clang-format off */
static const edge_route row = {
    .method = "GET", .path = "/t/{id}", .who = EDGE_MEMBER, .kind = EDGE_KIND_QUERY,
    .summary = "t", .operation = "t", .subject = "s",
    .request = &layby__test__everything__descriptor,
    .reply = &layby__test__everything__descriptor, .status = 200,
    .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "f_string"),
                        EDGE_QUERY("limit", "f_int32", NULL),
                        EDGE_QUERY("q", "note", NULL),
                        EDGE_QUERY("color", "color", NULL),
                        EDGE_SUB("choice_text"),
                        EDGE_NEW_ID("thing", "f_bytes_never")),
};
static const edge_route row_ok = {
    .method = "GET", .path = "/t/{id}", .who = EDGE_MEMBER, .kind = EDGE_KIND_QUERY,
    .summary = "t", .operation = "t", .subject = "s",
    .request = &layby__test__everything__descriptor,
    .reply = &layby__test__everything__descriptor, .status = 200,
    .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "f_string"),
                        EDGE_QUERY("limit", "f_int32", NULL),
                        EDGE_QUERY("q", "note", NULL),
                        EDGE_QUERY("color", "color", NULL),
                        EDGE_SUB("choice_text"),
                        EDGE_NEW_ID("thing", "choice_text"),
                        EDGE_CONST("f_sint32", "-3")),
};
/* clang-format on */

static const char uuid[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

/* Applies row_ok's binds for path value `id` and query string qs. */
static lb_status
apply(Layby__Test__Everything **out, const char *id, const char *qs, bool new_ids, lb_err *err)
{
    static struct mg_request_info ri;
    memset(&ri, 0, sizeof ri);
    ri.query_string = qs;
    edge_req r = { .ri = &ri, .route = &row_ok, .n_params = 1 };
    r.params[0] = (edge_param){ .name = "id}", .name_len = 2, .val = id, .len = strlen(id) };
    snprintf(r.claims.sub, sizeof r.claims.sub, "member-7");
    ProtobufCMessage *m = malloc(layby__test__everything__descriptor.sizeof_message);
    protobuf_c_message_init(&layby__test__everything__descriptor, m);
    lb_err_clear(err);
    lb_status s = edge_binds_apply(m, &r, false, err);
    if (s == LB_OK && new_ids)
        s = edge_binds_apply(m, &r, true, err);
    *out = (Layby__Test__Everything *)m;
    return s;
}

Test(edge_bind, path_query_and_token_fill_the_request)
{
    lb_err err;
    cr_assert_eq(id_init(&err), LB_OK);
    Layby__Test__Everything *m;
    cr_assert_eq(apply(&m, uuid, "limit=25&q=oled%20tv&color=COLOR_RED", false, &err), LB_OK, "%s",
                 err.msg);
    cr_assert_str_eq(m->f_string, uuid);
    cr_assert_eq(m->f_int32, 25);
    cr_assert_str_eq(m->note, "oled tv", "query values are URL-decoded");
    cr_assert_eq(m->color, LAYBY__TEST__COLOR__COLOR_RED);
    cr_assert_str_eq(m->choice_text, "member-7", "the token's sub");
    cr_assert_eq(m->f_sint32, -3, "a constant, typed by its field");
    protobuf_c_message_free_unpacked(&m->base, NULL);

    cr_assert_eq(apply(&m, uuid, NULL, false, &err), LB_OK, "no query string at all");
    cr_assert_eq(m->f_int32, 0, "absent: the default");
    cr_assert_eq(m->note_present_case, LAYBY__TEST__EVERYTHING__NOTE_PRESENT__NOT_SET);
    protobuf_c_message_free_unpacked(&m->base, NULL);

    cr_assert_eq(apply(&m, uuid, "q=x", true, &err), LB_OK);
    cr_assert(id_valid(m->choice_text), "a new id replaces it: %s", m->choice_text);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

typedef struct bad_case {
    const char *id, *qs, *field;
} bad_case;

Test(edge_bind, misfits_are_400_naming_the_parameter)
{
    static const bad_case cases[] = {
        { "not-a-uuid", "", "id" },
        { uuid, "limit=ten", "limit" },
        { uuid, "limit=99999999999", "limit" },
        { uuid, "color=PURPLE", "color" },
        { uuid, "q=%ff", "q" },
    };
    for (size_t i = 0; i < LB_COUNTOF(cases); i++) {
        Layby__Test__Everything *m;
        lb_err err;
        cr_assert_eq(apply(&m, cases[i].id, cases[i].qs, false, &err), LB_ERR_INVALID, "%s %s",
                     cases[i].id, cases[i].qs);
        cr_assert_str_eq(err.field, cases[i].field);
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    char long_q[EDGE_QUERY_VALUE_MAX + 8] = "q=";
    memset(long_q + 2, 'a', EDGE_QUERY_VALUE_MAX + 4);
    long_q[sizeof long_q - 1] = '\0';
    Layby__Test__Everything *m;
    lb_err err;
    cr_assert_eq(apply(&m, uuid, long_q, false, &err), LB_ERR_INVALID, "too long is refused");
    cr_assert_str_eq(err.field, "q");
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

Test(edge_bind, a_bind_to_a_missing_field_is_a_bad_row)
{
    lb_err err;
    cr_assert_eq(edge_routes_check(&row, 1, &err), LB_ERR_CONFIG);
    cr_assert_not_null(strstr(err.msg, "f_bytes_never"), "%s", err.msg);
    cr_assert_eq(edge_routes_check(&row_ok, 1, &err), LB_OK, "%s", err.msg);
}

Test(edge_bind, location_from_the_reply)
{
    Layby__V1__Product p = LAYBY__V1__PRODUCT__INIT;
    p.product_id = (char *)uuid;
    edge_outcome o = { .status = 0 };
    cr_assert(edge_outcome_location(&o, "/api/v1/products/{productId}", &p.base));
    cr_assert_str_eq(o.location, "/api/v1/products/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    p.stock_available = 12;
    cr_assert(edge_outcome_location(&o, "/s/{stockAvailable}/p/{productId}", &p.base));
    cr_assert_str_eq(o.location, "/s/12/p/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    cr_assert_not(edge_outcome_location(&o, "/x/{nope}", &p.base));
    cr_assert_str_eq(o.location, "", "no Location rather than a wrong one");
    p.product_id = (char *)"";
    cr_assert_not(edge_outcome_location(&o, "/api/v1/products/{productId}", &p.base),
                  "an empty id makes no Location");
}

/* clang-format off */
/* rows live at file scope: EDGE_BINDS is a compound literal */
static const edge_route put = {
    .method = "PUT", .path = "/t/{id}", .who = EDGE_MEMBER, .kind = EDGE_KIND_COMMAND,
    .summary = "t", .operation = "t", .subject = "s",
    .request = &layby__test__everything__descriptor,
    .body = &layby__test__everything__descriptor,
    .reply = &layby__test__everything__descriptor, .status = 200,
    .binds = EDGE_BINDS(EDGE_PATH_UUID("id", "f_string"), EDGE_SUB("choice_text")),
};
/* clang-format on */

Test(edge_bind, a_body_cannot_set_a_bound_field)
{
    static const struct {
        const char *body;
        lb_status want;
        const char *field;
    } cases[] = {
        { "{\"fInt32\":5,\"note\":\"n\"}", LB_OK, "" },
        { "{\"fString\":\"mine\"}", LB_ERR_UNKNOWN_FIELD, "fString" },
        { "{\"fInt32\":5,\"choiceText\":\"someone-else\"}", LB_ERR_UNKNOWN_FIELD, "choiceText" },
        { "{\"fInt32\":", LB_ERR_BAD_JSON, "" },
        { "{\"a\":1,\"a\":2}", LB_ERR_BAD_JSON, "" },
        { "[1]", LB_ERR_TYPE, "" },
        { "{\"fInt32\":\"x\"}", LB_ERR_TYPE, "fInt32" },
    };
    for (size_t i = 0; i < LB_COUNTOF(cases); i++) {
        ProtobufCMessage *m = NULL;
        lb_err err;
        lb_err_clear(&err);
        lb_status s = edge_run_body_decode(&m, &put, cases[i].body, strlen(cases[i].body), &err);
        cr_assert_eq(s, cases[i].want, "%s: %s", cases[i].body, err.msg);
        cr_assert_str_eq(err.field, cases[i].field, "%s", cases[i].body);
        if (m != NULL)
            protobuf_c_message_free_unpacked(m, NULL);
    }
}
