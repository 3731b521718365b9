/* codec_proto3_test.c - the proto3 JSON writer (engine/codec_proto3.c)
 * against protobuf's own library.
 *
 * Each message below is packed, handed as bytes to tests/tools/proto_json.py
 * (python3-protobuf's json_format.MessageToDict over descriptors protoc-c
 * made from tests/proto), and the writer's text must parse to the same JSON:
 * every scalar type at its edges, strings needing escapes, bytes, oneofs set
 * to defaults, nested and repeated messages, enums by name and unknown enum
 * numbers as numbers, google.protobuf.Timestamp with 0, 3, 6 and 9
 * fractional digits at both ends of its range. Also: what neither can write
 * (a string not UTF-8, a Timestamp out of range) is refused with nothing
 * written, and strings are escaped exactly as jansson escapes them, so
 * layby-ctl's lines read as they did when jansson wrote them. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "codecjson.pb-c.h"

typedef Layby__Test__Everything Everything;
typedef Layby__Test__Stamped Stamped;
typedef Google__Protobuf__Timestamp Timestamp;

#define EVERYTHING_INIT LAYBY__TEST__EVERYTHING__INIT
#define STAMPED_INIT    LAYBY__TEST__STAMPED__INIT
#define TS(s, n)                                                                             \
    ((Timestamp){ .base = PROTOBUF_C_MESSAGE_INIT(&google__protobuf__timestamp__descriptor), \
                  .seconds = (s),                                                            \
                  .nanos = (n) })

/* The writer's text for m, parsed; NULL when it refuses (err says why). */
static json_t *
mine(const ProtobufCMessage *m, lb_err *err)
{
    codec_buf b = { 0 };
    json_t *j = NULL;
    if (codec_proto3_write(&b, m, err) == LB_OK) {
        json_error_t je;
        j = json_loadb(b.data, b.len, JSON_DECODE_ANY, &je);
        cr_assert_not_null(j, "not JSON (%s): %.*s", je.text, (int)b.len, b.data);
    }
    codec_buf_free(&b);
    return j;
}

/* protobuf's JSON for each message (an {"error"} object where it refuses). */
static json_t *
theirs(const ProtobufCMessage *const *msgs, size_t n)
{
    char dir[] = "/tmp/codec-proto3-XXXXXX", cmd[2048], path[600];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd,
             "protoc-c -I%s/tests/proto --include_imports --descriptor_set_out=%s/t.desc "
             "%s/tests/proto/codecjson.proto",
             LAYBY_SOURCE_DIR, dir, LAYBY_SOURCE_DIR);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/in.jsonl", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (size_t i = 0; i < n; i++) {
        uint8_t *wire = NULL;
        size_t len = 0;
        cr_assert_eq(codec_pack(&wire, &len, msgs[i], NULL), LB_OK);
        size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(cap);
        sodium_bin2base64(b64, cap, wire, len, sodium_base64_VARIANT_ORIGINAL);
        fprintf(f, "{\"type\":\"%s\",\"b64\":\"%s\"}\n", msgs[i]->descriptor->name, b64);
        free(b64);
        free(wire);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/tools/proto_json.py %s/t.desc < %s",
             LAYBY_SOURCE_DIR, dir, path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    json_t *out = json_array();
    char line[1 << 16];
    while (fgets(line, sizeof line, p) != NULL) {
        json_error_t je;
        json_t *j = json_loads(line, JSON_DECODE_ANY, &je);
        cr_assert_not_null(j, "proto_json.py: %s", line);
        json_array_append_new(out, j);
    }
    cr_assert_eq(pclose(p), 0, "proto_json.py failed (python3-protobuf installed?)");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(json_array_size(out), n, "one answer per message");
    return out;
}

/* Every message here must come out as protobuf prints it, or be refused by
 * both. */
static void
same_as_protobuf(const ProtobufCMessage *const *msgs, size_t n)
{
    json_t *ref = theirs(msgs, n);
    for (size_t i = 0; i < n; i++) {
        lb_err err = { 0 };
        json_t *a = mine(msgs[i], &err), *b = json_array_get(ref, i);
        char *bt = json_dumps(b, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (a == NULL) {
            cr_expect(json_is_object(b) && json_object_get(b, "error") != NULL,
                      "message %zu: layby refuses (%s), protobuf prints %s", i, err.msg, bt);
        } else {
            char *at = json_dumps(a, JSON_SORT_KEYS | JSON_ENCODE_ANY);
            cr_expect(json_equal(a, b), "message %zu differs:\n layby    %s\n protobuf %s", i, at,
                      bt);
            free(at);
        }
        free(bt);
        json_decref(a);
    }
    json_decref(ref);
}

Test(codec_proto3, every_field_shape_prints_as_protobuf_prints_it)
{
    static uint8_t bin[] = { 0, 1, 0xfe, 0xff, 'x' };
    static char *strs[] = { "", "plain", "tab\there \"quoted\" back\\slash\x01\x1f\x7f",
                            "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 /slash" };
    static int32_t r32[] = { INT32_MIN, -1, 0, INT32_MAX };
    static int64_t r64[] = { INT64_MIN, -1, 0, INT64_MAX };
    static double rd[] = { 0.1, -2.5, 1e300, 5e-324, 3.0, 1e16, 123456789.125 };
    static protobuf_c_boolean rb[] = { 1, 0, 1 };
    static ProtobufCBinaryData rby[] = { { 0, NULL }, { sizeof bin, bin } };
    static int rc[] = { 1, 100, 0, 7 }; /* 7 has no name */

    Everything none = EVERYTHING_INIT;
    Layby__Test__Inner leaf = LAYBY__TEST__INNER__INIT, mid = LAYBY__TEST__INNER__INIT,
                       empty = LAYBY__TEST__INNER__INIT;
    leaf.label = "leaf";
    leaf.count = -3;
    mid.child = &leaf;
    Layby__Test__Inner *inners[] = { &mid, &empty };

    Everything all = EVERYTHING_INIT;
    all.f_int32 = INT32_MIN;
    all.f_int64 = INT64_MIN;
    all.f_uint32 = UINT32_MAX;
    all.f_uint64 = UINT64_MAX;
    all.f_sint32 = -7;
    all.f_sint64 = -9007199254740993LL; /* not a double */
    all.f_fixed32 = 42;
    all.f_fixed64 = 18446744073709551000ULL;
    all.f_sfixed32 = -1;
    all.f_sfixed64 = INT64_MAX;
    all.f_float = 0.1f;
    all.f_double = -1.0 / 3.0;
    all.f_bool = 1;
    all.f_string = strs[2];
    all.f_bytes = (ProtobufCBinaryData){ sizeof bin, bin };
    all.color = LAYBY__TEST__COLOR__COLOR_BLUE;
    all.inner = &mid;
    all.n_r_int32 = LB_COUNTOF(r32);
    all.r_int32 = r32;
    all.n_r_int64 = LB_COUNTOF(r64);
    all.r_int64 = r64;
    all.n_r_double = LB_COUNTOF(rd);
    all.r_double = rd;
    all.n_r_bool = LB_COUNTOF(rb);
    all.r_bool = rb;
    all.n_r_string = LB_COUNTOF(strs);
    all.r_string = strs;
    all.n_r_bytes = LB_COUNTOF(rby);
    all.r_bytes = rby;
    all.n_r_inner = LB_COUNTOF(inners);
    all.r_inner = inners;
    all.n_r_color = LB_COUNTOF(rc);
    all.r_color = (Layby__Test__Color *)rc;
    /* oneof members at their defaults are still written */
    all.limit_present_case = LAYBY__TEST__EVERYTHING__LIMIT_PRESENT_LIMIT;
    all.limit = 0;
    all.note_present_case = LAYBY__TEST__EVERYTHING__NOTE_PRESENT_NOTE;
    all.note = "";
    all.choice_case = LAYBY__TEST__EVERYTHING__CHOICE_CHOICE_INNER;
    all.choice_inner = &empty;

    Everything odd = EVERYTHING_INIT; /* specials and the other oneof members */
    odd.f_float = INFINITY;
    odd.f_double = NAN;
    odd.color = (Layby__Test__Color)-5;
    odd.f_string = strs[3];
    odd.choice_case = LAYBY__TEST__EVERYTHING__CHOICE_CHOICE_NUM;
    odd.choice_num = 0;
    Everything odd2 = EVERYTHING_INIT;
    odd2.f_float = -INFINITY;
    odd2.f_double = 1e-7;
    odd2.choice_case = LAYBY__TEST__EVERYTHING__CHOICE_CHOICE_BYTES;
    odd2.choice_bytes = (ProtobufCBinaryData){ 0, NULL };
    Everything odd3 = EVERYTHING_INIT;
    odd3.f_float = 16777216.0f;
    odd3.f_double = -0.0001;
    odd3.choice_case = LAYBY__TEST__EVERYTHING__CHOICE_CHOICE_TEXT;
    odd3.choice_text = "text";

    const ProtobufCMessage *msgs[] = { &none.base, &all.base, &odd.base, &odd2.base, &odd3.base };
    same_as_protobuf(msgs, LB_COUNTOF(msgs));
}

Test(codec_proto3, enums_by_name_and_unknown_numbers_as_numbers)
{
    static int colors[] = { 1, 2, 100, 0, 42, -1 };
    Stamped named = STAMPED_INIT, unnamed = STAMPED_INIT, zero = STAMPED_INIT;
    named.color = LAYBY__TEST__COLOR__COLOR_GREEN;
    named.n_colors = LB_COUNTOF(colors);
    named.colors = (Layby__Test__Color *)colors;
    unnamed.color = (Layby__Test__Color)42;
    zero.color = LAYBY__TEST__COLOR__COLOR_UNSPECIFIED; /* the default: left out */
    const ProtobufCMessage *msgs[] = { &named.base, &unnamed.base, &zero.base };
    same_as_protobuf(msgs, LB_COUNTOF(msgs));

    lb_err err;
    json_t *j = mine(&named.base, &err);
    cr_assert_str_eq(json_string_value(json_object_get(j, "color")), "COLOR_GREEN");
    json_t *cs = json_object_get(j, "colors");
    cr_assert_str_eq(json_string_value(json_array_get(cs, 2)), "COLOR_BLUE");
    cr_assert_eq(json_integer_value(json_array_get(cs, 4)), 42);
    cr_assert_eq(json_integer_value(json_array_get(cs, 5)), -1);
    json_decref(j);
    j = mine(&zero.base, &err);
    cr_assert_eq(json_object_size(j), 0, "a default enum is left out");
    json_decref(j);
}

Test(codec_proto3, timestamps_are_rfc3339_utc_with_0_3_6_or_9_digits)
{
    static const struct {
        int64_t s;
        int32_t n;
        const char *want;
    } cases[] = {
        { 0, 0, "1970-01-01T00:00:00Z" },
        { 1, 5000000, "1970-01-01T00:00:01.005Z" },
        { 1738315800, 250000000, "2025-01-31T09:30:00.250Z" },
        { 1700000000, 1000, "2023-11-14T22:13:20.000001Z" },
        { 1700000000, 123456789, "2023-11-14T22:13:20.123456789Z" },
        { 1709164800, 0, "2024-02-29T00:00:00Z" },
        { 951782400, 0, "2000-02-29T00:00:00Z" },
        { -1, 500000000, "1969-12-31T23:59:59.500Z" },
        { -86400 * 365, 0, "1969-01-01T00:00:00Z" },
        { -2208988800, 0, "1900-01-01T00:00:00Z" },
        { -62135596800, 0, "0001-01-01T00:00:00Z" },
        { 253402300799, 999999999, "9999-12-31T23:59:59.999999999Z" },
    };
    Timestamp ts[LB_COUNTOF(cases)];
    Timestamp *hist[LB_COUNTOF(cases)];
    for (size_t i = 0; i < LB_COUNTOF(cases); i++) {
        ts[i] = TS(cases[i].s, cases[i].n);
        hist[i] = &ts[i];
    }
    Timestamp epoch = TS(0, 0);
    Stamped one = STAMPED_INIT, when = STAMPED_INIT;
    one.at = &ts[2];
    one.n_history = LB_COUNTOF(cases);
    one.history = hist;
    when.when_present_case = LAYBY__TEST__STAMPED__WHEN_PRESENT_WHEN;
    when.when = &epoch; /* set, though all zero: written */
    const ProtobufCMessage *msgs[] = { &one.base, &when.base };
    same_as_protobuf(msgs, LB_COUNTOF(msgs));

    lb_err err;
    json_t *j = mine(&one.base, &err);
    cr_assert_str_eq(json_string_value(json_object_get(j, "at")), cases[2].want);
    for (size_t i = 0; i < LB_COUNTOF(cases); i++)
        cr_expect_str_eq(json_string_value(json_array_get(json_object_get(j, "history"), i)),
                         cases[i].want, "seconds %lld nanos %d", (long long)cases[i].s,
                         (int)cases[i].n);
    json_decref(j);
    /* A Timestamp on its own is a string. */
    j = mine(&ts[3].base, &err);
    cr_assert_str_eq(json_string_value(j), cases[3].want);
    json_decref(j);
}

Test(codec_proto3, what_cannot_be_written_is_refused_with_nothing_written)
{
    static const struct {
        int64_t s;
        int32_t n;
    } bad_ts[] = {
        { -62135596801, 0 }, { 253402300800, 0 }, { 0, -1 }, { 0, 1000000000 }, { INT64_MIN, 0 },
    };
    codec_buf b = { 0 };
    cr_assert_eq(codec_buf_add(&b, "x", 1), LB_OK);
    for (size_t i = 0; i < LB_COUNTOF(bad_ts); i++) {
        Timestamp t = TS(bad_ts[i].s, bad_ts[i].n);
        Stamped m = STAMPED_INIT;
        m.color = LAYBY__TEST__COLOR__COLOR_RED; /* written before the bad field */
        m.at = &t;
        lb_err err = { 0 };
        cr_expect_eq(codec_proto3_write(&b, &m.base, &err), LB_ERR_INVALID, "case %zu", i);
        cr_expect_not_null(strstr(err.msg, "Timestamp out of range"), "%s", err.msg);
        cr_expect_eq(b.len, 1, "case %zu: nothing written", i);
    }
    static char *bad_utf8[] = { "\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80" };
    for (size_t i = 0; i < LB_COUNTOF(bad_utf8); i++) {
        Everything m = EVERYTHING_INIT;
        m.f_int32 = 1;
        m.f_string = bad_utf8[i];
        lb_err err = { 0 };
        cr_expect_eq(codec_proto3_write(&b, &m.base, &err), LB_ERR_INVALID, "string %zu", i);
        cr_expect_not_null(strstr(err.msg, "UTF-8"), "%s", err.msg);
        cr_expect_eq(b.len, 1, "string %zu: nothing written", i);
    }
    codec_buf_free(&b);

    /* protobuf refuses them too (the string ones as bytes it cannot parse). */
    Everything s = EVERYTHING_INIT;
    s.f_string = bad_utf8[0];
    Timestamp late = TS(253402300800, 0);
    Stamped t = STAMPED_INIT;
    t.at = &late;
    const ProtobufCMessage *msgs[] = { &s.base, &t.base };
    same_as_protobuf(msgs, LB_COUNTOF(msgs));
}

Test(codec_proto3, strings_are_escaped_as_jansson_escapes_them)
{
    static const char *const strs[] = {
        "",
        "plain",
        "\"\\/",
        "\b\f\n\r\t",
        "\x01\x1f\x7f",
        "caf\xc3\xa9 \xf0\x9f\x98\x80",
        "\xe2\x80\xa8 line separator",
    };
    for (size_t i = 0; i < LB_COUNTOF(strs); i++) {
        codec_buf b = { 0 };
        cr_assert_eq(codec_buf_string(&b, strs[i], strlen(strs[i])), LB_OK);
        json_t *j = json_string(strs[i]);
        char *want = json_dumps(j, JSON_ENCODE_ANY);
        cr_expect(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0,
                  "string %zu: %.*s, jansson %s", i, (int)b.len, b.data, want);
        free(want);
        json_decref(j);
        codec_buf_free(&b);
    }
}

Test(codec_proto3, tree_form_is_the_text_parsed)
{
    Everything m = EVERYTHING_INIT;
    m.f_int64 = 5;
    m.f_string = "s";
    json_t *tree = NULL;
    cr_assert_eq(codec_json_encode_proto3(&tree, &m.base, NULL), LB_OK);
    cr_assert_str_eq(json_string_value(json_object_get(tree, "fInt64")), "5");
    cr_assert_str_eq(json_string_value(json_object_get(tree, "fString")), "s");
    cr_assert_eq(json_object_size(tree), 2);
    json_decref(tree);
}
