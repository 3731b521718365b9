/* codec_test.c - the generic JSON <-> protobuf codec (engine/codec.h).
 *
 * Uses tests/proto/codectest.proto, whose Everything message has every scalar
 * type, an enum, nested, repeated and oneof fields, and whose Inner message is
 * recursive for the depth limits. Tables drive the accepted-value and the
 * refused-input cases; each row goes through decode, encode and the wire.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "codectest.pb-c.h"
#include "layby/v1/catalog.pb-c.h"

/* codec.c's CODEC_DEPTH_MAX: messages allowed below the top-level one. */
#define DEPTH_MAX 32

extern const ProtobufCMessageDescriptor *const msg_registry[];
extern const size_t msg_registry_len;

static const ProtobufCMessageDescriptor *const everything = &layby__test__everything__descriptor;

/* ---- helpers ------------------------------------------------------------- */

static Layby__Test__Everything *
decode_ok(const char *text)
{
    ProtobufCMessage *m = NULL;
    lb_err err = { 0 };
    lb_status st = codec_json_decode_text(&m, everything, text, strlen(text), &err);
    cr_assert_eq(st, LB_OK, "decode %s: %s (%s) at '%s'", text, lb_status_name(st), err.msg,
                 err.field);
    cr_assert_not_null(m);
    return (Layby__Test__Everything *)m;
}

static json_t *
encode_ok(const void *msg)
{
    json_t *j = NULL;
    lb_err err = { 0 };
    lb_status st = codec_json_encode(&j, msg, &err);
    cr_assert_eq(st, LB_OK, "encode: %s (%s) at '%s'", lb_status_name(st), err.msg, err.field);
    cr_assert(json_is_object(j));
    return j;
}

static json_t *
parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    cr_assert_not_null(j, "test JSON %s: %s", text, je.text);
    return j;
}

static void
assert_json_equal(const json_t *got, const char *want_text)
{
    json_t *want = parse(want_text);
    char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
    cr_assert(json_equal(got, want), "got %s\nwant %s", g, want_text);
    free(g);
    json_decref(want);
}

/* msg -> codec_pack -> codec_unpack -> new message of the same type. */
static ProtobufCMessage *
wire_round_trip(const ProtobufCMessage *msg)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    lb_err err = { 0 };
    cr_assert_eq(codec_pack(&buf, &len, msg, &err), LB_OK, "pack: %s", err.msg);
    ProtobufCMessage *back = NULL;
    lb_status st = codec_unpack(&back, msg->descriptor, buf, len, &err);
    free(buf);
    cr_assert_eq(st, LB_OK, "unpack: %s", err.msg);
    return back;
}

static void
free_msg(void *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
}

/* {"inner":{"child":{"child":...{}}}} with `levels` messages below the top. */
static char *
nested_json(int levels)
{
    size_t cap = (size_t)levels * 16 + 16;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    size_t n = 0;
    for (int i = 0; i < levels; i++)
        n += (size_t)snprintf(s + n, cap - n, "{\"%s\":", i == 0 ? "inner" : "child");
    n += (size_t)snprintf(s + n, cap - n, "{}");
    for (int i = 0; i < levels; i++)
        s[n++] = '}';
    s[n] = '\0';
    return s;
}

/* Every field set, with values whose encoding is exactly the input. */
static const char full_json[] =
    "{\"fInt32\":-7,\"fInt64\":-9000000000,\"fUint32\":4000000000,\"fUint64\":9000000000,"
    "\"fSint32\":-300,\"fSint64\":-5000000000,\"fFixed32\":123,\"fFixed64\":1234567890123,"
    "\"fSfixed32\":-456,\"fSfixed64\":-9876543210,\"fFloat\":1.5,\"fDouble\":-0.25,"
    "\"fBool\":true,\"fString\":\"h\xc3\xa9"
    "llo \\\"q\\\"\",\"fBytes\":\"AAEC/w==\",\"color\":\"COLOR_GREEN\","
    "\"inner\":{\"label\":\"in\",\"count\":3,"
    "\"child\":{\"label\":\"leaf\",\"count\":0,\"child\":null}},"
    "\"rInt32\":[1,-2,3],\"rInt64\":[9000000000,-1],\"rDouble\":[0.5,2.0],"
    "\"rBool\":[true,false],\"rString\":[\"a\",\"\",\"c\"],\"rBytes\":[\"aGk=\",\"\"],"
    "\"rInner\":[{\"label\":\"x\",\"count\":1,\"child\":null},"
    "{\"label\":\"\",\"count\":0,\"child\":null}],"
    "\"rColor\":[\"COLOR_RED\",\"COLOR_BLUE\"],"
    "\"limit\":0,\"note\":\"\",\"choiceInner\":{\"label\":\"ci\",\"count\":2,\"child\":null}}";

/* ---- round trips --------------------------------------------------------- */

Test(codec, json_round_trip_keeps_every_field)
{
    Layby__Test__Everything *m = decode_ok(full_json);
    cr_expect_eq(m->f_int64, -9000000000LL);
    cr_expect_eq(m->f_uint32, 4000000000u);
    cr_expect_str_eq(m->f_string, "h\xc3\xa9llo \"q\"");
    cr_expect_eq(m->f_bytes.len, 4);
    cr_expect_eq(memcmp(m->f_bytes.data, "\x00\x01\x02\xff", 4), 0);
    cr_expect_eq(m->color, LAYBY__TEST__COLOR__COLOR_GREEN);
    cr_assert_not_null(m->inner);
    cr_assert_not_null(m->inner->child);
    cr_expect_str_eq(m->inner->child->label, "leaf");
    cr_expect_eq(m->n_r_string, 3);
    cr_expect_str_eq(m->r_string[1], "");
    cr_expect_eq(m->n_r_inner, 2);
    cr_expect_eq(m->r_color[1], LAYBY__TEST__COLOR__COLOR_BLUE);
    cr_expect_eq(m->limit_present_case, LAYBY__TEST__EVERYTHING__LIMIT_PRESENT_LIMIT);
    cr_expect_eq(m->note_present_case, LAYBY__TEST__EVERYTHING__NOTE_PRESENT_NOTE);
    cr_expect_eq(m->choice_case, LAYBY__TEST__EVERYTHING__CHOICE_CHOICE_INNER);

    json_t *j = encode_ok(m);
    assert_json_equal(j, full_json);
    json_decref(j);
    free_msg(m);
}

Test(codec, wire_round_trip_keeps_every_field)
{
    Layby__Test__Everything *m = decode_ok(full_json);
    ProtobufCMessage *back = wire_round_trip(&m->base);
    json_t *j = encode_ok(back);
    /* presence of limit = 0 and note = "" survives the wire too */
    assert_json_equal(j, full_json);
    json_decref(j);
    free_msg(back);
    free_msg(m);
}

Test(codec, encode_writes_every_default_in_field_order)
{
    Layby__Test__Everything m = LAYBY__TEST__EVERYTHING__INIT;
    char *text = NULL;
    lb_err err = { 0 };
    cr_assert_eq(codec_json_encode_text(&text, &m.base, &err), LB_OK, "%s", err.msg);
    cr_expect_str_eq(text, "{\"fInt32\":0,\"fInt64\":0,\"fUint32\":0,\"fUint64\":0,\"fSint32\":0,"
                           "\"fSint64\":0,\"fFixed32\":0,\"fFixed64\":0,\"fSfixed32\":0,"
                           "\"fSfixed64\":0,\"fFloat\":0.0,\"fDouble\":0.0,\"fBool\":false,"
                           "\"fString\":\"\",\"fBytes\":\"\",\"color\":\"COLOR_UNSPECIFIED\","
                           "\"inner\":null,\"rInt32\":[],\"rInt64\":[],\"rDouble\":[],\"rBool\":[],"
                           "\"rString\":[],\"rBytes\":[],\"rInner\":[],\"rColor\":[]}");
    free(text);
}

Test(codec, encode_text_is_compact_and_malloced)
{
    Layby__Test__Inner in = LAYBY__TEST__INNER__INIT;
    in.label = "a";
    in.count = 1;
    char *text = NULL;
    cr_assert_eq(codec_json_encode_text(&text, &in.base, NULL), LB_OK);
    cr_expect_str_eq(text, "{\"label\":\"a\",\"count\":1,\"child\":null}");
    free(text);
}

Test(codec, catalog_create_product_round_trips)
{
    static const char text[] = "{\"productId\":\"p-1\",\"draft\":{\"name\":\"Phone\",\"price\":"
                               "990000,\"details\":\"\",\"category\":\"mobile\",\"stock\":12}}";
    ProtobufCMessage *m = NULL;
    lb_err err = { 0 };
    cr_assert_eq(codec_json_decode_text(&m, &layby__v1__create_product__descriptor, text,
                                        strlen(text), &err),
                 LB_OK, "%s", err.msg);
    Layby__V1__CreateProduct *cp = (Layby__V1__CreateProduct *)m;
    cr_expect_str_eq(cp->product_id, "p-1");
    cr_assert_not_null(cp->draft);
    cr_expect_eq(cp->draft->price, 990000);
    cr_expect_eq(cp->draft->stock, 12);
    ProtobufCMessage *back = wire_round_trip(m);
    json_t *j = encode_ok(back);
    assert_json_equal(j, text);
    json_decref(j);
    free_msg(back);
    free_msg(m);
}

/* ---- accepted values: one field at a time -------------------------------- */

typedef struct good_case {
    char field[16]; /* JSON name in Everything */
    char in[48];    /* JSON value sent */
    char out[48];   /* JSON value the encoder writes back */
} good_case;

ParameterizedTestParameters(codec, value_is_accepted_and_encoded)
{
    /* Inline char arrays, not pointers: Criterion copies rows to its workers. */
    static good_case cases[] = {
        { "fInt32", "2147483647", "2147483647" },
        { "fInt32", "-2147483648", "-2147483648" },
        { "fUint32", "4294967295", "4294967295" },
        { "fUint32", "0", "0" },
        { "fSint32", "-2147483648", "-2147483648" },
        { "fSint32", "2147483647", "2147483647" },
        { "fFixed32", "4294967295", "4294967295" },
        { "fSfixed32", "-2147483648", "-2147483648" },
        { "fInt64", "\"9223372036854775807\"", "9223372036854775807" },
        { "fInt64", "\"-9223372036854775808\"", "-9223372036854775808" },
        { "fInt64", "-9223372036854775808", "-9223372036854775808" },
        { "fInt64", "\"007\"", "7" },
        { "fInt64", "\"-0\"", "0" },
        { "fSint64", "\"-9223372036854775808\"", "-9223372036854775808" },
        { "fSfixed64", "\"9223372036854775807\"", "9223372036854775807" },
        { "fUint64", "9223372036854775807", "9223372036854775807" },
        { "fUint64", "\"9223372036854775808\"", "\"9223372036854775808\"" },
        { "fUint64", "\"18446744073709551615\"", "\"18446744073709551615\"" },
        { "fFixed64", "\"18446744073709551615\"", "\"18446744073709551615\"" },
        { "fFloat", "3", "3.0" },
        { "fFloat", "-1.5", "-1.5" },
        { "fFloat", "\"NaN\"", "\"NaN\"" },
        { "fFloat", "\"-Infinity\"", "\"-Infinity\"" },
        { "fDouble", "1e300", "1e300" },
        { "fDouble", "-0.5", "-0.5" },
        { "fDouble", "\"Infinity\"", "\"Infinity\"" },
        { "fBool", "true", "true" },
        { "fBool", "false", "false" },
        { "fString", "\"\"", "\"\"" },
        { "fString", "\"a\\\"b\\\\c\"", "\"a\\\"b\\\\c\"" },
        { "fString", "\"\\u00e9\\u4e2d\"", "\"\\u00e9\\u4e2d\"" },
        { "fBytes", "\"aGVsbG8=\"", "\"aGVsbG8=\"" },
        { "fBytes", "\"/+/+\"", "\"/+/+\"" },
        { "fBytes", "\"\"", "\"\"" },
        { "color", "\"COLOR_BLUE\"", "\"COLOR_BLUE\"" },
        { "color", "2", "\"COLOR_GREEN\"" },
        { "color", "0", "\"COLOR_UNSPECIFIED\"" },
        { "rInt64", "[\"-1\",2]", "[-1,2]" },
        { "rColor", "[1,\"COLOR_GREEN\"]", "[\"COLOR_RED\",\"COLOR_GREEN\"]" },
        { "rBytes", "[\"\",\"AA==\"]", "[\"\",\"AA==\"]" },
        { "limit", "0", "0" },
        { "note", "\"\"", "\"\"" },
        { "choiceNum", "\"0\"", "0" },
        { "choiceText", "\"\"", "\"\"" },
        { "choiceBytes", "\"\"", "\"\"" },
        { "choiceInner", "{}", "{\"label\":\"\",\"count\":0,\"child\":null}" },
    };
    return cr_make_param_array(good_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(good_case *gc, codec, value_is_accepted_and_encoded)
{
    char text[128];
    snprintf(text, sizeof text, "{\"%s\":%s}", gc->field, gc->in);
    Layby__Test__Everything *m = decode_ok(text);

    json_t *j = encode_ok(m);
    json_t *got = json_object_get(j, gc->field);
    cr_assert_not_null(got, "%s: field %s not encoded", text, gc->field);
    assert_json_equal(got, gc->out);
    json_decref(j);

    ProtobufCMessage *back = wire_round_trip(&m->base);
    j = encode_ok(back);
    got = json_object_get(j, gc->field);
    cr_assert_not_null(got, "%s: field %s lost on the wire", text, gc->field);
    assert_json_equal(got, gc->out);
    json_decref(j);
    free_msg(back);
    free_msg(m);
}

Test(codec, int64_accepts_decimal_string)
{
    Layby__Test__Everything *m =
        decode_ok("{\"fInt64\":\"-9223372036854775808\",\"fUint64\":\"18446744073709551615\","
                  "\"fSint64\":\"123\",\"fSfixed64\":\"-5\",\"fFixed64\":\"42\"}");
    cr_expect_eq(m->f_int64, INT64_MIN);
    cr_expect_eq(m->f_uint64, UINT64_MAX);
    cr_expect_eq(m->f_sint64, 123);
    cr_expect_eq(m->f_sfixed64, -5);
    cr_expect_eq(m->f_fixed64, 42);
    free_msg(m);
}

Test(codec, int32_boundaries_land_in_the_struct)
{
    Layby__Test__Everything *m = decode_ok("{\"fInt32\":-2147483648,\"fUint32\":4294967295,"
                                           "\"fSint32\":2147483647,\"fSfixed32\":-1}");
    cr_expect_eq(m->f_int32, INT32_MIN);
    cr_expect_eq(m->f_uint32, UINT32_MAX);
    cr_expect_eq(m->f_sint32, INT32_MAX);
    cr_expect_eq(m->f_sfixed32, -1);
    free_msg(m);
}

Test(codec, enum_accepts_name_and_number)
{
    Layby__Test__Everything *m = decode_ok("{\"color\":\"COLOR_BLUE\",\"rColor\":[100,2]}");
    cr_expect_eq(m->color, LAYBY__TEST__COLOR__COLOR_BLUE);
    cr_assert_eq(m->n_r_color, 2);
    cr_expect_eq(m->r_color[0], LAYBY__TEST__COLOR__COLOR_BLUE);
    cr_expect_eq(m->r_color[1], LAYBY__TEST__COLOR__COLOR_GREEN);
    free_msg(m);
}

Test(codec, enum_without_a_name_encodes_as_number)
{
    Layby__Test__Everything m = LAYBY__TEST__EVERYTHING__INIT;
    m.color = (Layby__Test__Color)42; /* a value a newer sender added */
    json_t *j = encode_ok(&m);
    assert_json_equal(json_object_get(j, "color"), "42");
    json_decref(j);
}

Test(codec, null_means_default_and_unset)
{
    Layby__Test__Everything *m =
        decode_ok("{\"fInt32\":null,\"fString\":null,\"fBytes\":null,\"inner\":null,"
                  "\"rInt32\":null,\"limit\":null,\"note\":null,\"choiceText\":null,"
                  "\"choiceNum\":5}");
    cr_expect_eq(m->f_int32, 0);
    cr_expect_str_eq(m->f_string, "");
    cr_expect_eq(m->f_bytes.len, 0);
    cr_expect_null(m->inner);
    cr_expect_eq(m->n_r_int32, 0);
    cr_expect_eq(m->limit_present_case, LAYBY__TEST__EVERYTHING__LIMIT_PRESENT__NOT_SET);
    cr_expect_eq(m->note_present_case, LAYBY__TEST__EVERYTHING__NOTE_PRESENT__NOT_SET);
    /* a null member does not count as the oneof's choice */
    cr_expect_eq(m->choice_case, LAYBY__TEST__EVERYTHING__CHOICE_CHOICE_NUM);
    cr_expect_eq(m->choice_num, 5);
    free_msg(m);
}

Test(codec, oneof_writes_only_the_selected_member)
{
    Layby__Test__Everything *m = decode_ok("{\"choiceText\":\"hi\"}");
    json_t *j = encode_ok(m);
    assert_json_equal(json_object_get(j, "choiceText"), "\"hi\"");
    cr_expect_null(json_object_get(j, "choiceNum"));
    cr_expect_null(json_object_get(j, "choiceInner"));
    cr_expect_null(json_object_get(j, "choiceBytes"));
    cr_expect_null(json_object_get(j, "limit"));
    cr_expect_null(json_object_get(j, "note"));
    json_decref(j);
    free_msg(m);
}

Test(codec, bytes_decode_to_raw_bytes)
{
    Layby__Test__Everything *m = decode_ok("{\"fBytes\":\"aGVsbG8=\",\"rBytes\":[\"\",\"/w==\"]}");
    cr_assert_eq(m->f_bytes.len, 5);
    cr_expect_eq(memcmp(m->f_bytes.data, "hello", 5), 0);
    cr_assert_eq(m->n_r_bytes, 2);
    cr_expect_eq(m->r_bytes[0].len, 0);
    cr_assert_eq(m->r_bytes[1].len, 1);
    cr_expect_eq(m->r_bytes[1].data[0], 0xff);
    free_msg(m);
}

Test(codec, decode_text_reads_only_len_bytes)
{
    static const char text[] = "{\"fInt32\":5}trailing garbage";
    ProtobufCMessage *m = NULL;
    cr_assert_eq(codec_json_decode_text(&m, everything, text, 12, NULL), LB_OK);
    cr_expect_eq(((Layby__Test__Everything *)m)->f_int32, 5);
    free_msg(m);
}

Test(codec, decode_from_json_value)
{
    json_t *j = parse("{\"fString\":\"x\",\"rInt32\":[1,2]}");
    ProtobufCMessage *m = NULL;
    cr_assert_eq(codec_json_decode(&m, everything, j, NULL), LB_OK);
    Layby__Test__Everything *e = (Layby__Test__Everything *)m;
    cr_expect_str_eq(e->f_string, "x");
    cr_assert_eq(e->n_r_int32, 2);
    cr_expect_eq(e->r_int32[1], 2);
    free_msg(m);
    json_decref(j);
}

/* ---- refused input ------------------------------------------------------- */

typedef struct bad_case {
    char json[96];  /* request text */
    lb_status want; /* status */
    char field[32]; /* expected lb_err.field */
} bad_case;

ParameterizedTestParameters(codec, bad_input_is_refused)
{
    static bad_case cases[] = {
        /* text that is not JSON */
        { "", LB_ERR_BAD_JSON, "" },
        { "{\"fInt32\": }", LB_ERR_BAD_JSON, "" },
        { "{} x", LB_ERR_BAD_JSON, "" },
        { "{\"fInt32\":1,\"fInt32\":2}", LB_ERR_BAD_JSON, "" },
        { "{\"fString\":\"a\\u0000b\"}", LB_ERR_BAD_JSON, "" },
        { "{\"fString\":\"\xff\"}", LB_ERR_BAD_JSON, "" },
        { "{\"fUint64\":18446744073709551615}", LB_ERR_BAD_JSON, "" },
        /* top level */
        { "[1]", LB_ERR_TYPE, "" },
        { "\"x\"", LB_ERR_TYPE, "" },
        { "null", LB_ERR_TYPE, "" },
        /* unknown fields, one spelling only */
        { "{\"bogus\":1}", LB_ERR_UNKNOWN_FIELD, "bogus" },
        { "{\"f_int32\":1}", LB_ERR_UNKNOWN_FIELD, "f_int32" },
        { "{\"FInt32\":1}", LB_ERR_UNKNOWN_FIELD, "FInt32" },
        { "{\"inner\":{\"nope\":1}}", LB_ERR_UNKNOWN_FIELD, "inner.nope" },
        { "{\"rInner\":[{},{},{\"x\":1}]}", LB_ERR_UNKNOWN_FIELD, "rInner[2].x" },
        { "{\"fString\":\"a\",\"inner\":{\"label\":\"b\"},\"zz\":1}", LB_ERR_UNKNOWN_FIELD, "zz" },
        /* wrong JSON kinds */
        { "{\"fInt32\":\"1\"}", LB_ERR_TYPE, "fInt32" },
        { "{\"fInt32\":1.5}", LB_ERR_TYPE, "fInt32" },
        { "{\"fInt32\":1.0}", LB_ERR_TYPE, "fInt32" },
        { "{\"fUint32\":true}", LB_ERR_TYPE, "fUint32" },
        { "{\"fInt64\":{}}", LB_ERR_TYPE, "fInt64" },
        { "{\"fUint64\":[]}", LB_ERR_TYPE, "fUint64" },
        { "{\"fSfixed64\":2.5}", LB_ERR_TYPE, "fSfixed64" },
        { "{\"fFloat\":true}", LB_ERR_TYPE, "fFloat" },
        { "{\"fDouble\":[1]}", LB_ERR_TYPE, "fDouble" },
        { "{\"fBool\":1}", LB_ERR_TYPE, "fBool" },
        { "{\"fBool\":\"true\"}", LB_ERR_TYPE, "fBool" },
        { "{\"fString\":5}", LB_ERR_TYPE, "fString" },
        { "{\"fBytes\":5}", LB_ERR_TYPE, "fBytes" },
        { "{\"color\":true}", LB_ERR_TYPE, "color" },
        { "{\"color\":1.5}", LB_ERR_TYPE, "color" },
        { "{\"inner\":5}", LB_ERR_TYPE, "inner" },
        { "{\"inner\":[]}", LB_ERR_TYPE, "inner" },
        { "{\"inner\":{\"child\":{\"count\":\"x\"}}}", LB_ERR_TYPE, "inner.child.count" },
        { "{\"rInt32\":{}}", LB_ERR_TYPE, "rInt32" },
        { "{\"rInt32\":5}", LB_ERR_TYPE, "rInt32" },
        { "{\"rInt32\":[1,\"x\"]}", LB_ERR_TYPE, "rInt32[1]" },
        { "{\"rInt32\":[null]}", LB_ERR_TYPE, "rInt32[0]" },
        { "{\"rString\":[\"a\",\"b\",5]}", LB_ERR_TYPE, "rString[2]" },
        { "{\"rInner\":[{},null]}", LB_ERR_TYPE, "rInner[1]" },
        { "{\"rInner\":[{\"label\":\"a\"},{\"child\":{\"count\":\"x\"}}]}", LB_ERR_TYPE,
          "rInner[1].child.count" },
        /* right kind, wrong value */
        { "{\"fInt32\":2147483648}", LB_ERR_INVALID, "fInt32" },
        { "{\"fInt32\":-2147483649}", LB_ERR_INVALID, "fInt32" },
        { "{\"fSint32\":-2147483649}", LB_ERR_INVALID, "fSint32" },
        { "{\"fUint32\":-1}", LB_ERR_INVALID, "fUint32" },
        { "{\"fUint32\":4294967296}", LB_ERR_INVALID, "fUint32" },
        { "{\"fFixed32\":-1}", LB_ERR_INVALID, "fFixed32" },
        { "{\"fInt64\":\"9223372036854775808\"}", LB_ERR_INVALID, "fInt64" },
        { "{\"fInt64\":\"-9223372036854775809\"}", LB_ERR_INVALID, "fInt64" },
        { "{\"fInt64\":\"12a\"}", LB_ERR_INVALID, "fInt64" },
        { "{\"fInt64\":\"\"}", LB_ERR_INVALID, "fInt64" },
        { "{\"fInt64\":\"-\"}", LB_ERR_INVALID, "fInt64" },
        { "{\"fInt64\":\"+5\"}", LB_ERR_INVALID, "fInt64" },
        { "{\"fInt64\":\" 5\"}", LB_ERR_INVALID, "fInt64" },
        { "{\"fInt64\":\"1e3\"}", LB_ERR_INVALID, "fInt64" },
        { "{\"fUint64\":\"-1\"}", LB_ERR_INVALID, "fUint64" },
        { "{\"fUint64\":-1}", LB_ERR_INVALID, "fUint64" },
        { "{\"fUint64\":\"18446744073709551616\"}", LB_ERR_INVALID, "fUint64" },
        { "{\"fFixed64\":\"99999999999999999999\"}", LB_ERR_INVALID, "fFixed64" },
        { "{\"fFloat\":1e39}", LB_ERR_INVALID, "fFloat" },
        { "{\"fFloat\":\"1.5\"}", LB_ERR_INVALID, "fFloat" },
        { "{\"fDouble\":\"nan\"}", LB_ERR_INVALID, "fDouble" },
        { "{\"fBytes\":\"!!!!\"}", LB_ERR_INVALID, "fBytes" },
        { "{\"fBytes\":\"YQ\"}", LB_ERR_INVALID, "fBytes" },
        { "{\"fBytes\":\"YQ==x\"}", LB_ERR_INVALID, "fBytes" },
        { "{\"fBytes\":\"_-8=\"}", LB_ERR_INVALID, "fBytes" },
        { "{\"rBytes\":[\"AA==\",\"A\"]}", LB_ERR_INVALID, "rBytes[1]" },
        { "{\"color\":\"COLOR_PURPLE\"}", LB_ERR_INVALID, "color" },
        { "{\"color\":\"color_red\"}", LB_ERR_INVALID, "color" },
        { "{\"color\":7}", LB_ERR_INVALID, "color" },
        { "{\"color\":4294967297}", LB_ERR_INVALID, "color" },
        { "{\"rColor\":[\"COLOR_RED\",\"NOPE\"]}", LB_ERR_INVALID, "rColor[1]" },
        { "{\"choiceNum\":1,\"choiceText\":\"a\"}", LB_ERR_INVALID, "choiceText" },
        { "{\"choiceText\":\"abc\",\"choiceInner\":{}}", LB_ERR_INVALID, "choiceInner" },
    };
    return cr_make_param_array(bad_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(bad_case *bc, codec, bad_input_is_refused)
{
    ProtobufCMessage *sentinel = (ProtobufCMessage *)&sentinel;
    ProtobufCMessage *m = sentinel;
    lb_err err = { 0 };
    lb_status st = codec_json_decode_text(&m, everything, bc->json, strlen(bc->json), &err);
    cr_expect_eq(st, bc->want, "%s: got %s (%s), want %s", bc->json, lb_status_name(st), err.msg,
                 lb_status_name(bc->want));
    cr_expect_eq(err.code, bc->want, "%s: err.code %s", bc->json, lb_status_name(err.code));
    cr_expect_str_eq(err.field, bc->field, "%s: field '%s', want '%s'", bc->json, err.field,
                     bc->field);
    cr_expect_neq(err.msg[0], '\0', "%s: no message", bc->json);
    cr_expect_eq(m, sentinel, "%s: *out changed on error", bc->json);
}

Test(codec, oneof_conflict_names_the_member_already_set)
{
    static const char text[] = "{\"choiceNum\":1,\"choiceText\":\"a\"}";
    ProtobufCMessage *m = NULL;
    lb_err err = { 0 };
    cr_assert_eq(codec_json_decode_text(&m, everything, text, strlen(text), &err), LB_ERR_INVALID);
    cr_expect(strstr(err.msg, "choiceNum") != NULL, "%s", err.msg);
}

Test(codec, string_holding_nul_is_refused)
{
    json_t *j = json_pack("{s:s%}", "fString", "a\0b", (size_t)3);
    cr_assert_not_null(j);
    ProtobufCMessage *m = NULL;
    lb_err err = { 0 };
    cr_expect_eq(codec_json_decode(&m, everything, j, &err), LB_ERR_INVALID);
    cr_expect_str_eq(err.field, "fString");
    json_decref(j);
}

Test(codec, decode_json_value_must_be_object)
{
    json_t *j = json_array();
    ProtobufCMessage *m = NULL;
    lb_err err = { 0 };
    cr_expect_eq(codec_json_decode(&m, everything, j, &err), LB_ERR_TYPE);
    cr_expect_eq(codec_json_decode(&m, everything, NULL, &err), LB_ERR_TYPE);
    cr_expect_null(m);
    json_decref(j);
}

/* ---- depth limits -------------------------------------------------------- */

Test(codec, json_nesting_at_the_limit_is_accepted)
{
    char *text = nested_json(DEPTH_MAX);
    Layby__Test__Everything *m = decode_ok(text);
    int levels = 0;
    for (Layby__Test__Inner *in = m->inner; in != NULL; in = in->child)
        levels++;
    cr_expect_eq(levels, DEPTH_MAX);
    json_t *j = encode_ok(m);
    json_decref(j);
    free_msg(m);
    free(text);
}

Test(codec, json_nesting_beyond_the_limit_is_refused)
{
    char *text = nested_json(DEPTH_MAX + 1);
    ProtobufCMessage *m = NULL;
    lb_err err = { 0 };
    cr_expect_eq(codec_json_decode_text(&m, everything, text, strlen(text), &err), LB_ERR_INVALID);
    cr_expect_eq(strncmp(err.field, "inner.child.child", 17), 0, "field %s", err.field);
    cr_expect(strstr(err.msg, "deeper") != NULL, "%s", err.msg);
    cr_expect_null(m);
    free(text);
}

Test(codec, hostile_deep_json_is_refused_without_crashing)
{
    /* Far past any stack budget if recursion were unbounded. */
    char *text = nested_json(100000);
    ProtobufCMessage *m = NULL;
    lb_status st = codec_json_decode_text(&m, everything, text, strlen(text), NULL);
    /* jansson's own depth cap (2048) answers first: either way it is refused. */
    cr_expect(st == LB_ERR_BAD_JSON || st == LB_ERR_INVALID, "%s", lb_status_name(st));
    cr_expect_null(m);
    free(text);
}

/* An Everything whose inner chain is `levels` messages deep, on the stack. */
static void
deep_message(Layby__Test__Everything *top, Layby__Test__Inner *nodes, int levels)
{
    for (int i = 0; i < levels; i++) {
        layby__test__inner__init(&nodes[i]);
        if (i > 0)
            nodes[i - 1].child = &nodes[i];
    }
    top->inner = levels > 0 ? &nodes[0] : NULL;
}

Test(codec, wire_nesting_at_the_limit_unpacks)
{
    Layby__Test__Everything top = LAYBY__TEST__EVERYTHING__INIT;
    Layby__Test__Inner nodes[DEPTH_MAX];
    deep_message(&top, nodes, DEPTH_MAX);
    ProtobufCMessage *back = wire_round_trip(&top.base);
    free_msg(back);
}

Test(codec, wire_nesting_beyond_the_limit_is_refused)
{
    Layby__Test__Everything top = LAYBY__TEST__EVERYTHING__INIT;
    Layby__Test__Inner nodes[DEPTH_MAX + 1];
    deep_message(&top, nodes, DEPTH_MAX + 1);
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(codec_pack(&buf, &len, &top.base, NULL), LB_OK);
    ProtobufCMessage *m = NULL;
    lb_err err = { 0 };
    cr_expect_eq(codec_unpack(&m, everything, buf, len, &err), LB_ERR_DECODE);
    cr_expect(strstr(err.msg, "deeper") != NULL, "%s", err.msg);
    cr_expect_null(m);
    free(buf);

    json_t *j = NULL;
    cr_expect_eq(codec_json_encode(&j, &top.base, &err), LB_ERR_INVALID);
    cr_expect_null(j);
}

/* ---- encoding refusals --------------------------------------------------- */

Test(codec, string_not_utf8_cannot_be_encoded)
{
    Layby__Test__Everything m = LAYBY__TEST__EVERYTHING__INIT;
    m.f_string = "ok\xff";
    json_t *j = NULL;
    lb_err err = { 0 };
    cr_expect_eq(codec_json_encode(&j, &m.base, &err), LB_ERR_INVALID);
    cr_expect_str_eq(err.field, "fString");
    cr_expect_null(j);

    char *strs[] = { "fine", "\xc3" };
    m.f_string = "";
    m.n_r_string = 2;
    m.r_string = strs;
    cr_expect_eq(codec_json_encode(&j, &m.base, &err), LB_ERR_INVALID);
    cr_expect_str_eq(err.field, "rString[1]");
}

Test(codec, encode_nested_error_names_the_path)
{
    Layby__Test__Inner leaf = LAYBY__TEST__INNER__INIT;
    leaf.label = "\xfe";
    Layby__Test__Inner mid = LAYBY__TEST__INNER__INIT;
    mid.child = &leaf;
    Layby__Test__Inner *items[] = { &mid };
    Layby__Test__Everything m = LAYBY__TEST__EVERYTHING__INIT;
    m.n_r_inner = 1;
    m.r_inner = items;
    char *text = NULL;
    lb_err err = { 0 };
    cr_expect_eq(codec_json_encode_text(&text, &m.base, &err), LB_ERR_INVALID);
    cr_expect_str_eq(err.field, "rInner[0].child.label");
    cr_expect_null(text);
}

/* ---- wire ---------------------------------------------------------------- */

typedef struct wire_case {
    uint8_t bytes[8];
    size_t len;
} wire_case;

ParameterizedTestParameters(codec, unpack_garbage_is_decode_error)
{
    static wire_case cases[] = {
        { { 0xff }, 1 },                         /* truncated tag varint */
        { { 0x08 }, 1 },                         /* int32 tag, no value */
        { { 0x08, 0x80 }, 2 },                   /* value varint never ends */
        { { 0x72, 0x05, 'a' }, 3 },              /* string longer than the buffer */
        { { 0x8a, 0x01, 0x02, 0xff, 0xff }, 5 }, /* inner (field 17) holds garbage */
        { { 0x0b }, 1 },                         /* start-group wire type */
        { { 0x0f }, 1 },                         /* reserved wire type 7 */
        { { 0x11, 1, 2, 3 }, 4 },                /* 64-bit value cut short */
        /* field number 0 in a two-byte varint: protobuf-c kept it and packed
         * bytes it refuses (fuzz/corpus/proto_decode/crash-field-zero) */
        { { 0x82, 0x00, 0x00 }, 3 },
        { { 0x02, 0x00 }, 2 },                         /* field number 0 */
        { { 0x80, 0x80, 0x80, 0x80, 0x10, 0x00 }, 6 }, /* field number 2^29 */
    };
    return cr_make_param_array(wire_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(wire_case *wc, codec, unpack_garbage_is_decode_error)
{
    ProtobufCMessage *sentinel = (ProtobufCMessage *)&sentinel;
    ProtobufCMessage *m = sentinel;
    lb_err err = { 0 };
    cr_expect_eq(codec_unpack(&m, everything, wc->bytes, wc->len, &err), LB_ERR_DECODE,
                 "first byte 0x%02x", wc->bytes[0]);
    cr_expect_eq(err.code, LB_ERR_DECODE);
    cr_expect_eq(m, sentinel);
}

Test(codec, pack_of_empty_message_round_trips)
{
    Layby__Test__Everything m = LAYBY__TEST__EVERYTHING__INIT;
    uint8_t *buf = NULL;
    size_t len = 99;
    cr_assert_eq(codec_pack(&buf, &len, &m.base, NULL), LB_OK);
    cr_expect_eq(len, 0);
    cr_expect_not_null(buf);
    ProtobufCMessage *back = NULL;
    cr_assert_eq(codec_unpack(&back, everything, buf, len, NULL), LB_OK);
    cr_expect_eq(back->descriptor, everything);
    free_msg(back);
    free(buf);
    cr_assert_eq(codec_unpack(&back, everything, NULL, 0, NULL), LB_OK);
    free_msg(back);
}

/* ---- names and the registry ---------------------------------------------- */

Test(codec, json_name_is_lower_camel_case)
{
    static const struct {
        const char *proto, *json;
    } rows[] = {
        { "stock_available", "stockAvailable" },
        { "name", "name" },
        { "product_id", "productId" },
        { "f_int32", "fInt32" },
        { "a_b_c", "aBC" },
        { "field_1", "field1" },
        { "x__y", "xY" },
        { "trailing_", "trailing" },
        { "_leading", "Leading" },
        { "alreadyCamel", "alreadyCamel" },
        { "", "" },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[32];
        memset(out, 'z', sizeof out);
        codec_json_name(out, strlen(rows[i].proto) + 1, rows[i].proto);
        cr_expect_str_eq(out, rows[i].json, "%s -> %s, want %s", rows[i].proto, out, rows[i].json);
    }
}

Test(codec, json_name_truncates_to_the_buffer)
{
    char out[4] = "zzz";
    codec_json_name(out, sizeof out, "stock_available");
    cr_expect_str_eq(out, "sto");
    codec_json_name(out, 0, "stock_available"); /* writes nothing */
    cr_expect_str_eq(out, "sto");
}

Test(codec, type_find_knows_product)
{
    cr_expect_eq(codec_type_find("layby.v1.Product"), &layby__v1__product__descriptor);
    cr_expect_eq(codec_type_find("layby.v1.CreateProduct"), &layby__v1__create_product__descriptor);
}

Test(codec, type_find_unknown_is_null)
{
    cr_expect_null(codec_type_find("layby.v1.Nope"));
    cr_expect_null(codec_type_find("layby.v1.product"));
    cr_expect_null(codec_type_find("Product"));
    cr_expect_null(codec_type_find(""));
    cr_expect_null(codec_type_find(NULL));
    /* test-only protos are not part of the registry */
    cr_expect_null(codec_type_find("layby.test.Everything"));
}

Test(codec, type_find_finds_every_registered_type)
{
    cr_assert_gt(msg_registry_len, 0);
    for (size_t i = 0; i < msg_registry_len; i++)
        cr_expect_eq(codec_type_find(msg_registry[i]->name), msg_registry[i], "%s",
                     msg_registry[i]->name);
}

static void *
find_product(void *arg)
{
    (void)arg;
    return (void *)codec_type_find("layby.v1.Product");
}

Test(codec, type_find_first_use_is_thread_safe)
{
    /* Each Criterion test runs in a fresh process: these calls build the index. */
    pthread_t th[8];
    for (size_t i = 0; i < 8; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, find_product, NULL), 0);
    for (size_t i = 0; i < 8; i++) {
        void *got = NULL;
        pthread_join(th[i], &got);
        cr_expect_eq(got, (void *)&layby__v1__product__descriptor);
    }
}
