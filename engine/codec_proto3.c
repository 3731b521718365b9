/* codec_proto3.c - the canonical proto3 JSON mapping, written as text
 * straight from a protobuf-c message into one growing buffer (codec.h:
 * codec_proto3_write, codec_json_encode_proto3).
 *
 * Why text and not a jansson tree: `layby-ctl events replay --json` writes
 * one of these per stored message, hundreds of thousands in a row, and a
 * tree per message (an allocation per value, a hash table per object, then
 * dumping it) cost several times the raw read of the stream (issue 21 asks
 * for at least half its rate). Here a message costs no allocation once the
 * buffer has grown to fit a line.
 *
 * The mapping is the one protobuf's own library prints (python's
 * json_format.MessageToDict with its defaults; tests/unit/codec_proto3_test.c
 * compares the two over every field shape):
 * - fields in field-number order, by their lowerCamelCase JSON name; a field
 *   holding its proto3 default (0, false, "", no bytes, no message, an empty
 *   repeated field) is left out; a oneof member is written when selected,
 *   even when its value is the default;
 * - int64, uint64, sint64, fixed64, sfixed64 as decimal strings; 32-bit
 *   integers as numbers;
 * - float and double as the shortest text that reads back to the same value
 *   (float: as a 32-bit float), with ".0" on integral values so every
 *   reader keeps them real; NaN and infinities as "NaN", "Infinity",
 *   "-Infinity";
 * - enums by name, a number with no name (a newer sender's) as the number;
 * - bytes as standard base64 with padding;
 * - google.protobuf.Timestamp as RFC 3339 in UTC with "Z" and 0, 3, 6 or 9
 *   fractional digits ("2025-01-31T09:30:00.250Z"); one outside
 *   0001-01-01..9999-12-31 or with nanos outside 0..999,999,999 cannot be
 *   written (LB_ERR_INVALID), as protobuf's C++ library refuses it;
 * - strings escaped as jansson escapes them (", \, control characters);
 *   a string that is not UTF-8 cannot be written (LB_ERR_INVALID).
 * Messages nest at most CODEC_DEPTH_MAX levels below the top one, as
 * everywhere in the codec. */
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define TIMESTAMP_NAME  "google.protobuf.Timestamp"
/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in seconds since the epoch. */
#define TIMESTAMP_MIN_S (-62135596800LL)
#define TIMESTAMP_MAX_S 253402300799LL

/* ---- the buffer ------------------------------------------------------------ */

lb_status
codec_buf_reserve(codec_buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return LB_OK;
    size_t cap = b->cap > 0 ? b->cap : 4096;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            return LB_ERR_NOMEM;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return LB_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return LB_OK;
}

lb_status
codec_buf_add(codec_buf *b, const void *p, size_t n)
{
    if (codec_buf_reserve(b, n) != LB_OK)
        return LB_ERR_NOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return LB_OK;
}

void
codec_buf_free(codec_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Most appends are a few bytes after a reserve; these skip the checks. */
static inline void
put_c(codec_buf *b, char c)
{
    b->data[b->len++] = c;
}

static inline void
put_n(codec_buf *b, const char *p, size_t n)
{
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

/* Decimal digits of v, most significant first, into out (room for 20). */
static size_t
u64_digits(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

lb_status
codec_buf_int(codec_buf *b, int64_t v)
{
    if (codec_buf_reserve(b, 21) != LB_OK)
        return LB_ERR_NOMEM;
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    if (v < 0)
        put_c(b, '-');
    b->len += u64_digits(b->data + b->len, mag);
    return LB_OK;
}

/* ---- strings ------------------------------------------------------------- */

/* Length of the UTF-8 sequence at p (at most end - p bytes), 0 if invalid:
 * overlong forms, surrogates and code points above U+10FFFF are refused, as
 * jansson and protobuf refuse them. */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], min;
    size_t n;
    if ((c & 0xe0) == 0xc0)
        n = 2, min = 0x80, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0)
        n = 3, min = 0x800, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0)
        n = 4, min = 0x10000, c &= 0x07;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    return c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) ? 0 : n;
}

lb_status
codec_buf_string(codec_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF"; /* as jansson writes them */
    /* The worst case, every byte a control character: \u00XX. */
    if (len > (SIZE_MAX - 2) / 6 || codec_buf_reserve(b, len * 6 + 2) != LB_OK)
        return LB_ERR_NOMEM;
    size_t start = b->len;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    put_c(b, '"');
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        put_n(b, (const char *)run, (size_t)(p - run));
        if (p == end)
            break;
        unsigned c = *p;
        if (c >= 0x80) {
            size_t n = utf8_len(p, end);
            if (n == 0) {
                b->len = start;
                return LB_ERR_INVALID;
            }
            put_n(b, (const char *)p, n);
            p += n;
            continue;
        }
        put_c(b, '\\');
        switch (c) {
        case '"':
        case '\\':
            put_c(b, (char)c);
            break;
        case '\b':
            put_c(b, 'b');
            break;
        case '\f':
            put_c(b, 'f');
            break;
        case '\n':
            put_c(b, 'n');
            break;
        case '\r':
            put_c(b, 'r');
            break;
        case '\t':
            put_c(b, 't');
            break;
        default:
            put_n(b, "u00", 3);
            put_c(b, hex[c >> 4]);
            put_c(b, hex[c & 0xf]);
        }
        p++;
    }
    put_c(b, '"');
    return LB_OK;
}

/* ---- values ---------------------------------------------------------------- */

typedef struct writer {
    codec_buf *b;
    lb_err *err;
    unsigned depth; /* message levels below the top one */
} writer;

static lb_status
nomem(writer *w)
{
    return lb_err_set(w->err, LB_ERR_NOMEM, "out of memory writing JSON");
}

static lb_status
bad_value(writer *w, const ProtobufCFieldDescriptor *f, const char *what)
{
    return lb_err_field(w->err, LB_ERR_INVALID, f->name, "%s: %s", f->name, what);
}

/* "jsonName": straight from the proto name (protoc's ToJsonName). */
static lb_status
put_key(writer *w, const char *proto_name)
{
    size_t n = strlen(proto_name);
    if (codec_buf_reserve(w->b, n + 4) != LB_OK)
        return nomem(w);
    codec_buf *b = w->b;
    put_c(b, '"');
    bool upper = false;
    for (const char *p = proto_name; *p != '\0'; p++) {
        if (*p == '_') {
            upper = true;
            continue;
        }
        put_c(b, upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p);
        upper = false;
    }
    put_n(b, "\":", 2);
    return LB_OK;
}

/* The shortest %g text that reads back to d (as a float when is_float),
 * with ".0" when it reads as an integer. */
static lb_status
put_real(writer *w, double d, bool is_float)
{
    const char *special = isnan(d)   ? "\"NaN\""
                          : isinf(d) ? (d > 0 ? "\"Infinity\"" : "\"-Infinity\"")
                                     : NULL;
    if (special != NULL)
        return codec_buf_add(w->b, special, strlen(special)) == LB_OK ? LB_OK : nomem(w);
    char text[40];
    int n = 0;
    for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
        n = snprintf(text, sizeof text - 2, "%.*g", prec, d);
        if (is_float ? strtof(text, NULL) == (float)d : strtod(text, NULL) == d)
            break;
    }
    if (strpbrk(text, ".e") == NULL) {
        text[n++] = '.';
        text[n++] = '0';
        text[n] = '\0';
    }
    return codec_buf_add(w->b, text, (size_t)n) == LB_OK ? LB_OK : nomem(w);
}

/* seconds and nanos as RFC 3339 (python's Timestamp.ToJsonString). */
static lb_status
put_timestamp(writer *w, const ProtobufCFieldDescriptor *f, const ProtobufCMessage *ts)
{
    int64_t secs = 0;
    int32_t nanos = 0;
    const ProtobufCMessageDescriptor *d = ts->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const char *slot = (const char *)ts + d->fields[i].offset;
        if (d->fields[i].id == 1)
            memcpy(&secs, slot, sizeof secs);
        else if (d->fields[i].id == 2)
            memcpy(&nanos, slot, sizeof nanos);
    }
    if (secs < TIMESTAMP_MIN_S || secs > TIMESTAMP_MAX_S || nanos < 0 || nanos > 999999999)
        return bad_value(w, f,
                         "Timestamp out of range (0001-01-01 to 9999-12-31, nanos 0 to 999999999)");
    /* Days since 1970-01-01 to a civil date (Howard Hinnant's days_from_civil
     * inverse): gmtime's time_t and year range differ between platforms. */
    int64_t days = (secs >= 0 ? secs : secs - 86399) / 86400, sod = secs - days * 86400;
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int64_t day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);
    char text[48];
    int n = snprintf(text, sizeof text, "\"%04d-%02d-%02dT%02d:%02d:%02d", (int)year, (int)month,
                     (int)day, (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
    if (nanos % 1000000000 == 0)
        n += snprintf(text + n, sizeof text - (size_t)n, "Z\"");
    else if (nanos % 1000000 == 0)
        n += snprintf(text + n, sizeof text - (size_t)n, ".%03dZ\"", (int)(nanos / 1000000));
    else if (nanos % 1000 == 0)
        n += snprintf(text + n, sizeof text - (size_t)n, ".%06dZ\"", (int)(nanos / 1000));
    else
        n += snprintf(text + n, sizeof text - (size_t)n, ".%09dZ\"", (int)nanos);
    return codec_buf_add(w->b, text, (size_t)n) == LB_OK ? LB_OK : nomem(w);
}

static lb_status put_message(writer *w, const ProtobufCMessage *m);

/* One value of field f at slot (a singular field, or one element). */
static lb_status
put_value(writer *w, const ProtobufCFieldDescriptor *f, const void *slot)
{
    union {
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
        float f32;
        double f64;
        protobuf_c_boolean bool_;
        const char *str;
        ProtobufCBinaryData bytes;
        const ProtobufCMessage *msg;
    } v;
    char num[24];
    size_t n;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        memcpy(&v.i32, slot, sizeof v.i32);
        return codec_buf_int(w->b, v.i32) == LB_OK ? LB_OK : nomem(w);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        memcpy(&v.u32, slot, sizeof v.u32);
        return codec_buf_int(w->b, v.u32) == LB_OK ? LB_OK : nomem(w);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        memcpy(&v.i64, slot, sizeof v.i64);
        if (codec_buf_reserve(w->b, 24) != LB_OK)
            return nomem(w);
        put_c(w->b, '"');
        codec_buf_int(w->b, v.i64); /* room reserved */
        put_c(w->b, '"');
        return LB_OK;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        memcpy(&v.u64, slot, sizeof v.u64);
        num[0] = '"';
        n = 1 + u64_digits(num + 1, v.u64);
        num[n++] = '"';
        return codec_buf_add(w->b, num, n) == LB_OK ? LB_OK : nomem(w);
    case PROTOBUF_C_TYPE_FLOAT:
        memcpy(&v.f32, slot, sizeof v.f32);
        return put_real(w, v.f32, true);
    case PROTOBUF_C_TYPE_DOUBLE:
        memcpy(&v.f64, slot, sizeof v.f64);
        return put_real(w, v.f64, false);
    case PROTOBUF_C_TYPE_BOOL:
        memcpy(&v.bool_, slot, sizeof v.bool_);
        return codec_buf_add(w->b, v.bool_ ? "true" : "false", v.bool_ ? 4 : 5) == LB_OK ? LB_OK
                                                                                         : nomem(w);
    case PROTOBUF_C_TYPE_ENUM: {
        memcpy(&v.i32, slot, sizeof v.i32);
        /* proto3 enums are open: a value a newer sender added has no name here. */
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v.i32);
        lb_status s = ev != NULL ? codec_buf_string(w->b, ev->name, strlen(ev->name))
                                 : codec_buf_int(w->b, v.i32);
        return s == LB_OK ? LB_OK : nomem(w);
    }
    case PROTOBUF_C_TYPE_STRING: {
        memcpy(&v.str, slot, sizeof v.str);
        const char *s = v.str != NULL ? v.str : ""; /* protobuf-c packs NULL as "" */
        lb_status st = codec_buf_string(w->b, s, strlen(s));
        return st == LB_ERR_INVALID ? bad_value(w, f, "string is not valid UTF-8")
               : st != LB_OK        ? nomem(w)
                                    : LB_OK;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        memcpy(&v.bytes, slot, sizeof v.bytes);
        size_t b64 = sodium_base64_encoded_len(v.bytes.len, sodium_base64_VARIANT_ORIGINAL);
        if (codec_buf_reserve(w->b, b64 + 2) != LB_OK)
            return nomem(w);
        put_c(w->b, '"');
        if (v.bytes.len > 0)
            sodium_bin2base64(w->b->data + w->b->len, b64, v.bytes.data, v.bytes.len,
                              sodium_base64_VARIANT_ORIGINAL);
        w->b->len += b64 - 1; /* not its NUL */
        put_c(w->b, '"');
        return LB_OK;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        memcpy(&v.msg, slot, sizeof v.msg);
        if (v.msg == NULL) /* only in a repeated field: proto3 has no null element */
            return bad_value(w, f, "a repeated message element is missing");
        if (strcmp(v.msg->descriptor->name, TIMESTAMP_NAME) == 0)
            return put_timestamp(w, f, v.msg);
        w->depth++;
        lb_status s = put_message(w, v.msg);
        w->depth--;
        return s;
    }
    }
    return bad_value(w, f, "unknown protobuf type");
}

/* The type's size in a message and in a repeated array. */
static size_t
type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default: /* 32-bit integers, float, enum */
        return sizeof(uint32_t);
    }
}

/* Whether a singular, non-oneof field holds its proto3 default (all-zero
 * bytes for numbers and bools, "" or NULL for strings, no bytes, no message),
 * or a repeated field is empty. */
static bool
field_is_default(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *slot = (const char *)m + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)((const char *)m + f->quantifier_offset) == 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: {
        const char *p;
        memcpy(&p, slot, sizeof p);
        return p == NULL || (f->type == PROTOBUF_C_TYPE_STRING && p[0] == '\0');
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData bd;
        memcpy(&bd, slot, sizeof bd);
        return bd.len == 0;
    }
    default: {
        static const char zero[sizeof(uint64_t)];
        return memcmp(slot, zero, type_size(f->type)) == 0;
    }
    }
}

static lb_status
put_field(writer *w, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    lb_status s = put_key(w, f->name);
    const char *slot = (const char *)m + f->offset;
    if (s != LB_OK || f->label != PROTOBUF_C_LABEL_REPEATED)
        return s != LB_OK ? s : put_value(w, f, slot);
    size_t n = *(const size_t *)((const char *)m + f->quantifier_offset), size = type_size(f->type);
    const char *arr;
    memcpy(&arr, slot, sizeof arr);
    if (codec_buf_add(w->b, "[", 1) != LB_OK)
        return nomem(w);
    for (size_t i = 0; i < n && s == LB_OK; i++) {
        if (i > 0 && codec_buf_add(w->b, ",", 1) != LB_OK)
            return nomem(w);
        s = put_value(w, f, arr + i * size);
    }
    if (s == LB_OK && codec_buf_add(w->b, "]", 1) != LB_OK)
        return nomem(w);
    return s;
}

static lb_status
put_message(writer *w, const ProtobufCMessage *m)
{
    if (w->depth > CODEC_DEPTH_MAX)
        return lb_err_set(w->err, LB_ERR_INVALID, "%s: messages nest deeper than %d levels",
                          m->descriptor->name, CODEC_DEPTH_MAX);
    const ProtobufCMessageDescriptor *desc = m->descriptor;
    bool first = true;
    if (codec_buf_add(w->b, "{", 1) != LB_OK)
        return nomem(w);
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0) {
            uint32_t which;
            memcpy(&which, (const char *)m + f->quantifier_offset, sizeof which);
            if (which != f->id)
                continue;
        } else if (field_is_default(m, f)) {
            continue;
        }
        if (!first && codec_buf_add(w->b, ",", 1) != LB_OK)
            return nomem(w);
        first = false;
        lb_status s = put_field(w, m, f);
        if (s != LB_OK)
            return s;
    }
    return codec_buf_add(w->b, "}", 1) == LB_OK ? LB_OK : nomem(w);
}

/* ---- entry points ------------------------------------------------------------ */

lb_status
codec_proto3_write(codec_buf *b, const ProtobufCMessage *msg, lb_err *err)
{
    if (msg == NULL || msg->descriptor == NULL)
        return lb_err_set(err, LB_ERR_INVALID, "no message given");
    writer w = { .b = b, .err = err };
    size_t start = b->len;
    static const ProtobufCFieldDescriptor top = { .name = "(message)" };
    lb_status s = strcmp(msg->descriptor->name, TIMESTAMP_NAME) == 0 ? put_timestamp(&w, &top, msg)
                                                                     : put_message(&w, msg);
    if (s != LB_OK)
        b->len = start;
    return s;
}

lb_status
codec_json_encode_proto3(json_t **out, const ProtobufCMessage *msg, lb_err *err)
{
    codec_buf b = { 0 };
    lb_status s = codec_proto3_write(&b, msg, err);
    if (s == LB_OK) {
        json_error_t je;
        /* Any value: a top-level Timestamp is a string. */
        *out = json_loadb(b.data, b.len, JSON_DECODE_ANY, &je);
        if (*out == NULL)
            s = lb_err_set(err, LB_ERR_INTERNAL, "proto3 JSON does not parse: %s", je.text);
    }
    codec_buf_free(&b);
    return s;
}
