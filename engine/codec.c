/* codec.c - the generic JSON <-> protobuf codec (see codec.h).
 *
 * Nothing here knows a message: everything is driven by protobuf-c's
 * descriptors (fields[], offset, quantifier_offset, label, type, flags). One
 * table, type_rows[], holds what differs per protobuf type; the walkers for
 * messages, repeated fields and oneofs are shared.
 *
 * Decisions the header leaves open (docs/ should quote them):
 * - Error kinds. LB_ERR_TYPE: the JSON kind is not one the field accepts (a
 *   string for an int32, 1.5 for an int64, 1 for a bool, an array element that
 *   is null, a top level that is not an object). LB_ERR_INVALID: the kind is
 *   accepted but the value is not (out of range, a negative unsigned, a string
 *   that is not a decimal integer, an unknown enum name or number, bad base64,
 *   a string holding NUL, two members of one oneof, nesting too deep).
 *   LB_ERR_UNKNOWN_FIELD: a key that is not the lowerCamelCase name of a field;
 *   the proto spelling (stock_available) is refused too, so there is one way
 *   to write each field. LB_ERR_BAD_JSON: the text does not parse, including
 *   duplicate keys and integers beyond the int64 range (jansson refuses them:
 *   send such uint64 values as strings).
 * - null for a field means "not set": the field keeps its proto3 default and a
 *   oneof member stays unselected. null inside an array is LB_ERR_TYPE.
 * - 32-bit integers must be JSON integers; 64-bit ones may also be decimal
 *   strings ("-12", no sign '+', no spaces). Encoding writes 64-bit values as
 *   JSON integers, except uint64/fixed64 above INT64_MAX, written as strings.
 * - float/double accept any JSON number and the strings "NaN", "Infinity" and
 *   "-Infinity", which is also how non-finite values are encoded (JSON has no
 *   literal for them). A finite double outside float's range is LB_ERR_INVALID.
 * - bytes are standard base64 with padding (RFC 4648 section 4, libsodium's
 *   ORIGINAL variant); URL-safe base64 is refused.
 * - Enums encode as their name; a number with no name (a newer sender) is
 *   encoded as the number. Decoding accepts names and known numbers only.
 * - Encoding writes every field in field-number order: proto3 defaults, [] for
 *   an empty repeated field, null for an absent message; a oneof member only
 *   when it is the selected one (even if its value is the default).
 * - Depth: a message may nest at most CODEC_DEPTH_MAX messages below the top
 *   one. Deeper JSON is LB_ERR_INVALID; deeper wire bytes are refused by
 *   codec_unpack() with LB_ERR_DECODE before protobuf-c's own unbounded
 *   recursion runs, so hostile input cannot exhaust the stack.
 *
 * Memory: decoded messages follow the layout protobuf_c_message_unpack()
 * produces, so protobuf_c_message_free_unpacked(msg, NULL) frees them:
 * everything comes from malloc; a singular empty string may be the field's
 * default pointer (protobuf_c_empty_string), which free_unpacked skips, while
 * repeated strings are always malloc'd (free_unpacked frees every element);
 * empty bytes are {0, NULL}; a oneof's case is set only once its member holds a
 * value, and a repeated field's count only covers filled elements, so a
 * half-built message is always safe to free.
 *
 * Size: over 800 lines because the dec_/enc_ pairs are the rows of type_rows[]
 * and share codec_ctx and the path helpers with the walkers; the wire part at
 * the bottom (codec_pack, codec_unpack and its depth check) is the piece to
 * move out first if this grows.
 */
#include "codec.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stack room for a JSON field name; longer names are malloc'd. */
#define CODEC_NAME_STACK 64

typedef struct codec_ctx {
    lb_err *err;                 /* caller's, may be NULL */
    unsigned depth;              /* message levels below the top one */
    size_t path_len;             /* strlen(path) */
    char path[LB_ERR_FIELD_MAX]; /* JSON path of the value being handled */
} codec_ctx;

typedef struct type_row type_row;
/* JSON value (never null) -> the field's slot in a message or repeated array. */
typedef lb_status (*value_decode_fn)(void *slot, const ProtobufCFieldDescriptor *f,
                                     const type_row *t, const json_t *v, codec_ctx *c);
/* A slot -> a new JSON value. */
typedef lb_status (*value_encode_fn)(json_t **out, const void *slot,
                                     const ProtobufCFieldDescriptor *f, const type_row *t,
                                     codec_ctx *c);

/* What differs per protobuf type. */
struct type_row {
    const char *name;  /* proto type name, for error text */
    size_t size;       /* one value's bytes, in the struct and in a repeated array */
    unsigned int_bits; /* 32 or 64 for integer types, 0 otherwise */
    bool int_signed;   /* integer types: signed range */
    value_decode_fn decode;
    value_encode_fn encode;
};

/* ---- paths and errors ---------------------------------------------------- */

/* Moves past w characters snprintf wrote, keeping to the buffer: a path too
 * long for lb_err.field is cut there anyway. */
static void
path_advance(codec_ctx *c, int w)
{
    size_t room = sizeof c->path - c->path_len;
    if (w > 0)
        c->path_len += (size_t)w < room ? (size_t)w : room - 1;
}

static void
path_push_key(codec_ctx *c, const char *key)
{
    path_advance(c, snprintf(c->path + c->path_len, sizeof c->path - c->path_len, "%s%s",
                             c->path_len > 0 ? "." : "", key));
}

static void
path_push_index(codec_ctx *c, size_t index)
{
    path_advance(c, snprintf(c->path + c->path_len, sizeof c->path - c->path_len, "[%zu]", index));
}

static void
path_pop(codec_ctx *c, size_t len)
{
    c->path_len = len;
    c->path[len] = '\0';
}

static lb_status
type_error(codec_ctx *c, const char *want)
{
    return lb_err_field(c->err, LB_ERR_TYPE, c->path, "%s: expected %s", c->path, want);
}

static lb_status
nomem(codec_ctx *c)
{
    return lb_err_field(c->err, LB_ERR_NOMEM, c->path, "out of memory");
}

/* ---- JSON names ---------------------------------------------------------- */

/* protoc's ToJsonName: drop each '_' and upper-case the character after it. */
void
codec_json_name(char *out, size_t n, const char *proto_name)
{
    if (n == 0)
        return;
    size_t o = 0;
    bool upper = false;
    for (const char *p = proto_name; *p != '\0' && o + 1 < n; p++) {
        if (*p == '_') {
            upper = true;
            continue;
        }
        out[o++] = upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        upper = false;
    }
    out[o] = '\0';
}

/* Same rule as codec_json_name(), compared on the fly. */
static bool
json_name_eq(const char *proto_name, const char *key)
{
    bool upper = false;
    for (const char *p = proto_name; *p != '\0'; p++) {
        if (*p == '_') {
            upper = true;
            continue;
        }
        char want = upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        upper = false;
        if (*key++ != want)
            return false;
    }
    return *key == '\0';
}

static const ProtobufCFieldDescriptor *
field_by_json_name(const ProtobufCMessageDescriptor *desc, const char *key)
{
    for (unsigned i = 0; i < desc->n_fields; i++)
        if (json_name_eq(desc->fields[i].name, key))
            return &desc->fields[i];
    return NULL;
}

/* ---- integers ------------------------------------------------------------ */

/* "-?[0-9]+" into sign and magnitude; false when malformed or above UINT64_MAX. */
static bool
decimal_parse(bool *neg, uint64_t *mag, const char *s, size_t len)
{
    size_t i = 0;
    *neg = len > 0 && s[0] == '-';
    if (*neg)
        i++;
    if (i == len)
        return false;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *mag = v;
    return true;
}

static lb_status
dec_int(void *slot, const ProtobufCFieldDescriptor *f, const type_row *t, const json_t *v,
        codec_ctx *c)
{
    (void)f;
    bool neg;
    uint64_t mag;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        neg = i < 0;
        mag = neg ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
    } else if (t->int_bits == 64 && json_is_string(v)) {
        if (!decimal_parse(&neg, &mag, json_string_value(v), json_string_length(v)))
            return lb_err_field(c->err, LB_ERR_INVALID, c->path,
                                "%s: expected a decimal %s in range", c->path, t->name);
    } else {
        return type_error(c, t->int_bits == 64 ? "an integer or a decimal string" : "an integer");
    }

    uint64_t max = t->int_bits == 64 ? UINT64_MAX : UINT32_MAX;
    if (t->int_signed)
        max >>= 1;
    bool fits = neg ? mag == 0 || (t->int_signed && mag <= max + 1) : mag <= max;
    if (!fits)
        return lb_err_field(c->err, LB_ERR_INVALID, c->path, "%s: out of range for %s", c->path,
                            t->name);
    /* Two's complement by unsigned negation; memcpy stores it into either signedness. */
    uint64_t bits = neg ? (uint64_t)0 - mag : mag;
    if (t->int_bits == 64) {
        memcpy(slot, &bits, sizeof bits);
    } else {
        uint32_t b32 = (uint32_t)bits;
        memcpy(slot, &b32, sizeof b32);
    }
    return LB_OK;
}

static lb_status
enc_int(json_t **out, const void *slot, const ProtobufCFieldDescriptor *f, const type_row *t,
        codec_ctx *c)
{
    (void)f;
    json_int_t v;
    if (t->int_bits == 32 && t->int_signed) {
        int32_t x;
        memcpy(&x, slot, sizeof x);
        v = x;
    } else if (t->int_bits == 32) {
        uint32_t x;
        memcpy(&x, slot, sizeof x);
        v = x;
    } else if (t->int_signed) {
        int64_t x;
        memcpy(&x, slot, sizeof x);
        v = x;
    } else {
        uint64_t x;
        memcpy(&x, slot, sizeof x);
        if (x > (uint64_t)INT64_MAX) {
            /* json_int_t is long long: a bigger value can only travel as text. */
            char buf[24];
            snprintf(buf, sizeof buf, "%" PRIu64, x);
            *out = json_string(buf);
            return *out != NULL ? LB_OK : nomem(c);
        }
        v = (json_int_t)x;
    }
    *out = json_integer(v);
    return *out != NULL ? LB_OK : nomem(c);
}

/* ---- floating point ------------------------------------------------------ */

/* JSON has no literals for these; proto3 JSON spells them as strings. */
static const struct {
    const char *name;
    int sign; /* 0 for NaN */
} float_specials[] = {
    { "NaN", 0 },
    { "Infinity", 1 },
    { "-Infinity", -1 },
};

static lb_status
dec_float(void *slot, const ProtobufCFieldDescriptor *f, const type_row *t, const json_t *v,
          codec_ctx *c)
{
    (void)t;
    double d;
    if (json_is_number(v)) {
        d = json_number_value(v);
    } else if (json_is_string(v)) {
        size_t i = 0;
        while (i < LB_COUNTOF(float_specials) &&
               strcmp(json_string_value(v), float_specials[i].name) != 0)
            i++;
        if (i == LB_COUNTOF(float_specials))
            return lb_err_field(c->err, LB_ERR_INVALID, c->path,
                                "%s: expected a number, \"NaN\", \"Infinity\" or \"-Infinity\"",
                                c->path);
        d = float_specials[i].sign == 0 ? (double)NAN : float_specials[i].sign * (double)INFINITY;
    } else {
        return type_error(c, "a number");
    }

    if (f->type == PROTOBUF_C_TYPE_DOUBLE) {
        memcpy(slot, &d, sizeof d);
        return LB_OK;
    }
    if (isfinite(d) && fabs(d) > FLT_MAX)
        return lb_err_field(c->err, LB_ERR_INVALID, c->path, "%s: out of range for float", c->path);
    float x = (float)d;
    memcpy(slot, &x, sizeof x);
    return LB_OK;
}

static lb_status
enc_float(json_t **out, const void *slot, const ProtobufCFieldDescriptor *f, const type_row *t,
          codec_ctx *c)
{
    (void)t;
    double d;
    if (f->type == PROTOBUF_C_TYPE_DOUBLE) {
        memcpy(&d, slot, sizeof d);
    } else {
        float x;
        memcpy(&x, slot, sizeof x);
        d = x;
    }
    if (isnan(d))
        *out = json_string(float_specials[0].name);
    else if (isinf(d))
        *out = json_string(float_specials[d > 0 ? 1 : 2].name);
    else
        *out = json_real(d);
    return *out != NULL ? LB_OK : nomem(c);
}

/* ---- bool, string, bytes, enum ------------------------------------------- */

static lb_status
dec_bool(void *slot, const ProtobufCFieldDescriptor *f, const type_row *t, const json_t *v,
         codec_ctx *c)
{
    (void)f;
    (void)t;
    if (!json_is_boolean(v))
        return type_error(c, "true or false");
    protobuf_c_boolean b = json_is_true(v);
    memcpy(slot, &b, sizeof b);
    return LB_OK;
}

static lb_status
enc_bool(json_t **out, const void *slot, const ProtobufCFieldDescriptor *f, const type_row *t,
         codec_ctx *c)
{
    (void)f;
    (void)t;
    protobuf_c_boolean b;
    memcpy(&b, slot, sizeof b);
    *out = json_boolean(b);
    return *out != NULL ? LB_OK : nomem(c);
}

/* A JSON string that C can hold: jansson strings may carry NUL when built
 * with JSON_ALLOW_NUL or json_stringn(); a char * cannot. */
static lb_status
c_string(const char **s, size_t *len, const json_t *v, codec_ctx *c)
{
    if (!json_is_string(v))
        return type_error(c, "a string");
    *s = json_string_value(v);
    *len = json_string_length(v);
    if (strlen(*s) != *len)
        return lb_err_field(c->err, LB_ERR_INVALID, c->path, "%s: contains a NUL character",
                            c->path);
    return LB_OK;
}

static lb_status
dec_string(void *slot, const ProtobufCFieldDescriptor *f, const type_row *t, const json_t *v,
           codec_ctx *c)
{
    (void)t;
    const char *s = NULL;
    size_t len = 0;
    lb_status st = c_string(&s, &len, v, c);
    if (st != LB_OK)
        return st;
    char *copy;
    /* free_unpacked() skips a singular string equal to the field's default
     * pointer but frees every element of a repeated one; pack() drops a oneof
     * member equal to its default, which would lose the member's presence. */
    if (len == 0 && f->label != PROTOBUF_C_LABEL_REPEATED &&
        (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) == 0 &&
        f->default_value == protobuf_c_empty_string) {
        copy = (char *)protobuf_c_empty_string;
    } else {
        copy = malloc(len + 1);
        if (copy == NULL)
            return nomem(c);
        memcpy(copy, s, len + 1);
    }
    memcpy(slot, &copy, sizeof copy);
    return LB_OK;
}

static lb_status
enc_string(json_t **out, const void *slot, const ProtobufCFieldDescriptor *f, const type_row *t,
           codec_ctx *c)
{
    (void)f;
    (void)t;
    const char *s;
    memcpy(&s, slot, sizeof s);
    if (s == NULL) /* protobuf-c packs NULL as empty too */
        s = "";
    *out = json_string(s);
    if (*out != NULL)
        return LB_OK;
    /* json_string() fails on bad UTF-8 and on allocation; tell them apart. */
    json_t *probe = json_string_nocheck(s);
    if (probe == NULL)
        return nomem(c);
    json_decref(probe);
    return lb_err_field(c->err, LB_ERR_INVALID, c->path, "%s: string is not valid UTF-8", c->path);
}

static lb_status
dec_bytes(void *slot, const ProtobufCFieldDescriptor *f, const type_row *t, const json_t *v,
          codec_ctx *c)
{
    (void)f;
    (void)t;
    if (!json_is_string(v))
        return type_error(c, "a base64 string");
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    ProtobufCBinaryData bd = { 0, NULL };
    if (len > 0) {
        size_t max = len / 4 * 3 + 3;
        bd.data = malloc(max);
        if (bd.data == NULL)
            return nomem(c);
        /* b64_end NULL: refuse unless every character was consumed. */
        if (sodium_base642bin(bd.data, max, s, len, NULL, &bd.len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0) {
            free(bd.data);
            return lb_err_field(c->err, LB_ERR_INVALID, c->path,
                                "%s: expected standard base64 with padding", c->path);
        }
        if (bd.len == 0) {
            free(bd.data);
            bd.data = NULL;
        }
    }
    memcpy(slot, &bd, sizeof bd);
    return LB_OK;
}

static lb_status
enc_bytes(json_t **out, const void *slot, const ProtobufCFieldDescriptor *f, const type_row *t,
          codec_ctx *c)
{
    (void)f;
    (void)t;
    ProtobufCBinaryData bd;
    memcpy(&bd, slot, sizeof bd);
    if (bd.len == 0) {
        *out = json_string("");
        return *out != NULL ? LB_OK : nomem(c);
    }
    size_t n = sodium_base64_encoded_len(bd.len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(n);
    if (b64 == NULL)
        return nomem(c);
    sodium_bin2base64(b64, n, bd.data, bd.len, sodium_base64_VARIANT_ORIGINAL);
    *out = json_stringn_nocheck(b64, n - 1); /* base64 is ASCII */
    free(b64);
    return *out != NULL ? LB_OK : nomem(c);
}

static lb_status
dec_enum(void *slot, const ProtobufCFieldDescriptor *f, const type_row *t, const json_t *v,
         codec_ctx *c)
{
    (void)t;
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    const ProtobufCEnumValue *ev = NULL;
    if (json_is_string(v)) {
        const char *s;
        size_t len;
        lb_status st = c_string(&s, &len, v, c);
        if (st != LB_OK)
            return st;
        ev = protobuf_c_enum_descriptor_get_value_by_name(ed, s);
    } else if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i >= INT32_MIN && i <= INT32_MAX)
            ev = protobuf_c_enum_descriptor_get_value(ed, (int)i);
    } else {
        return type_error(c, "an enum name or number");
    }
    if (ev == NULL)
        return lb_err_field(c->err, LB_ERR_INVALID, c->path, "%s: not a value of %s", c->path,
                            ed->name);
    int32_t x = ev->value;
    memcpy(slot, &x, sizeof x);
    return LB_OK;
}

static lb_status
enc_enum(json_t **out, const void *slot, const ProtobufCFieldDescriptor *f, const type_row *t,
         codec_ctx *c)
{
    (void)t;
    int32_t x;
    memcpy(&x, slot, sizeof x);
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, x);
    /* proto3 enums are open: a value a newer sender added has no name here. */
    *out = ev != NULL ? json_string(ev->name) : json_integer(x);
    return *out != NULL ? LB_OK : nomem(c);
}

/* ---- messages ------------------------------------------------------------ */

static lb_status message_decode(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                                const json_t *obj, codec_ctx *c);
static lb_status message_encode(json_t **out, const ProtobufCMessage *msg, codec_ctx *c);

static lb_status
dec_message(void *slot, const ProtobufCFieldDescriptor *f, const type_row *t, const json_t *v,
            codec_ctx *c)
{
    (void)t;
    if (!json_is_object(v))
        return type_error(c, "an object");
    ProtobufCMessage *sub = NULL;
    c->depth++;
    lb_status st = message_decode(&sub, f->descriptor, v, c);
    c->depth--;
    if (st == LB_OK)
        memcpy(slot, &sub, sizeof sub);
    return st;
}

static lb_status
enc_message(json_t **out, const void *slot, const ProtobufCFieldDescriptor *f, const type_row *t,
            codec_ctx *c)
{
    (void)f;
    (void)t;
    const ProtobufCMessage *sub;
    memcpy(&sub, slot, sizeof sub);
    if (sub == NULL) {
        *out = json_null();
        return LB_OK;
    }
    c->depth++;
    lb_status st = message_encode(out, sub, c);
    c->depth--;
    return st;
}

/* clang-format off */
static const type_row type_rows[] = {
    /*                          name        size                        bits signed decode      encode */
    [PROTOBUF_C_TYPE_INT32]    = { "int32",    sizeof(int32_t),            32, true,  dec_int,    enc_int },
    [PROTOBUF_C_TYPE_SINT32]   = { "sint32",   sizeof(int32_t),            32, true,  dec_int,    enc_int },
    [PROTOBUF_C_TYPE_SFIXED32] = { "sfixed32", sizeof(int32_t),            32, true,  dec_int,    enc_int },
    [PROTOBUF_C_TYPE_INT64]    = { "int64",    sizeof(int64_t),            64, true,  dec_int,    enc_int },
    [PROTOBUF_C_TYPE_SINT64]   = { "sint64",   sizeof(int64_t),            64, true,  dec_int,    enc_int },
    [PROTOBUF_C_TYPE_SFIXED64] = { "sfixed64", sizeof(int64_t),            64, true,  dec_int,    enc_int },
    [PROTOBUF_C_TYPE_UINT32]   = { "uint32",   sizeof(uint32_t),           32, false, dec_int,    enc_int },
    [PROTOBUF_C_TYPE_FIXED32]  = { "fixed32",  sizeof(uint32_t),           32, false, dec_int,    enc_int },
    [PROTOBUF_C_TYPE_UINT64]   = { "uint64",   sizeof(uint64_t),           64, false, dec_int,    enc_int },
    [PROTOBUF_C_TYPE_FIXED64]  = { "fixed64",  sizeof(uint64_t),           64, false, dec_int,    enc_int },
    [PROTOBUF_C_TYPE_FLOAT]    = { "float",    sizeof(float),               0, false, dec_float,  enc_float },
    [PROTOBUF_C_TYPE_DOUBLE]   = { "double",   sizeof(double),              0, false, dec_float,  enc_float },
    [PROTOBUF_C_TYPE_BOOL]     = { "bool",     sizeof(protobuf_c_boolean),  0, false, dec_bool,   enc_bool },
    [PROTOBUF_C_TYPE_ENUM]     = { "enum",     sizeof(int32_t),             0, false, dec_enum,   enc_enum },
    [PROTOBUF_C_TYPE_STRING]   = { "string",   sizeof(char *),              0, false, dec_string, enc_string },
    [PROTOBUF_C_TYPE_BYTES]    = { "bytes",    sizeof(ProtobufCBinaryData), 0, false, dec_bytes,  enc_bytes },
    [PROTOBUF_C_TYPE_MESSAGE]  = { "message",  sizeof(ProtobufCMessage *),  0, false, dec_message, enc_message },
};
/* clang-format on */
_Static_assert(LB_COUNTOF(type_rows) == PROTOBUF_C_TYPE_MESSAGE + 1, "one row per protobuf type");

/* The uint32 case of f's oneof (protobuf-c's layout: an int-sized enum). */
static uint32_t *
oneof_case(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return (uint32_t *)((char *)m + f->quantifier_offset);
}

static lb_status
repeated_decode(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v,
                codec_ctx *c)
{
    if (!json_is_array(v))
        return type_error(c, "an array");
    size_t n = json_array_size(v);
    if (n == 0)
        return LB_OK;
    const type_row *t = &type_rows[f->type];
    char *arr = calloc(n, t->size);
    if (arr == NULL)
        return nomem(c);
    size_t *count = (size_t *)((char *)m + f->quantifier_offset);
    memcpy((char *)m + f->offset, &arr, sizeof arr);
    size_t saved = c->path_len;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        path_push_index(c, i);
        lb_status st = json_is_null(e) ? type_error(c, "a value, not null")
                                       : t->decode(arr + i * t->size, f, t, e, c);
        path_pop(c, saved);
        if (st != LB_OK)
            return st;
        *count = i + 1; /* free_unpacked() frees exactly the filled elements */
    }
    return LB_OK;
}

static lb_status
field_decode(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v, codec_ctx *c)
{
    if (json_is_null(v))
        return LB_OK; /* proto3 JSON: null means default / not set */
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return repeated_decode(m, f, v, c);

    void *slot = (char *)m + f->offset;
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0) {
        uint32_t *which = oneof_case(m, f);
        if (*which != 0) {
            /* A JSON object has unique keys, so this is another member. */
            const ProtobufCFieldDescriptor *other =
                protobuf_c_message_descriptor_get_field(m->descriptor, *which);
            char name[CODEC_NAME_STACK];
            codec_json_name(name, sizeof name, other != NULL ? other->name : "?");
            return lb_err_field(c->err, LB_ERR_INVALID, c->path,
                                "%s: only one of a oneof may be set, %s already is", c->path, name);
        }
        lb_status st = type_rows[f->type].decode(slot, f, &type_rows[f->type], v, c);
        if (st == LB_OK)
            *which = f->id;
        return st;
    }
    lb_status st = type_rows[f->type].decode(slot, f, &type_rows[f->type], v, c);
    /* proto2 optional scalars carry a has_ flag; strings and messages do not. */
    if (st == LB_OK && f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
        f->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
    return st;
}

static lb_status
message_decode(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc, const json_t *obj,
               codec_ctx *c)
{
    if (c->depth > CODEC_DEPTH_MAX)
        return lb_err_field(c->err, LB_ERR_INVALID, c->path,
                            "%s: messages nest deeper than %d levels", c->path, CODEC_DEPTH_MAX);
    ProtobufCMessage *m = malloc(desc->sizeof_message);
    if (m == NULL)
        return nomem(c);
    protobuf_c_message_init(desc, m);

    lb_status st = LB_OK;
    size_t saved = c->path_len;
    const char *key;
    json_t *v;
    /* jansson has no const iteration; nothing below modifies obj. */
    json_object_foreach((json_t *)obj, key, v)
    {
        path_push_key(c, key);
        const ProtobufCFieldDescriptor *f = field_by_json_name(desc, key);
        if (f == NULL)
            st = lb_err_field(c->err, LB_ERR_UNKNOWN_FIELD, c->path, "unknown field %s in %s",
                              c->path, desc->name);
        else
            st = field_decode(m, f, v, c);
        path_pop(c, saved);
        if (st != LB_OK)
            goto out_free;
    }
    *out = m;
    return LB_OK;

out_free:
    protobuf_c_message_free_unpacked(m, NULL);
    return st;
}

static lb_status
repeated_encode(json_t **out, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                codec_ctx *c)
{
    const type_row *t = &type_rows[f->type];
    size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
    const char *arr;
    memcpy(&arr, (const char *)m + f->offset, sizeof arr);
    json_t *a = json_array();
    if (a == NULL)
        return nomem(c);
    size_t saved = c->path_len;
    for (size_t i = 0; i < n; i++) {
        json_t *e = NULL;
        path_push_index(c, i);
        lb_status st = t->encode(&e, arr + i * t->size, f, t, c);
        if (st == LB_OK && json_array_append_new(a, e) != 0)
            st = nomem(c);
        path_pop(c, saved);
        if (st != LB_OK) {
            json_decref(a);
            return st;
        }
    }
    *out = a;
    return LB_OK;
}

static lb_status
field_encode(json_t *obj, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
             codec_ctx *c)
{
    char stack_name[CODEC_NAME_STACK];
    size_t need = strlen(f->name) + 1;
    char *name = need <= sizeof stack_name ? stack_name : malloc(need);
    if (name == NULL)
        return nomem(c);
    codec_json_name(name, need, f->name);

    json_t *v = NULL;
    size_t saved = c->path_len;
    path_push_key(c, name);
    lb_status st =
        f->label == PROTOBUF_C_LABEL_REPEATED
            ? repeated_encode(&v, m, f, c)
            : type_rows[f->type].encode(&v, (const char *)m + f->offset, f, &type_rows[f->type], c);
    /* json_object_set_new() drops v even when it fails. */
    if (st == LB_OK && json_object_set_new(obj, name, v) != 0)
        st = nomem(c);
    path_pop(c, saved);
    if (name != stack_name)
        free(name);
    return st;
}

static lb_status
message_encode(json_t **out, const ProtobufCMessage *m, codec_ctx *c)
{
    if (c->depth > CODEC_DEPTH_MAX)
        return lb_err_field(c->err, LB_ERR_INVALID, c->path,
                            "%s: messages nest deeper than %d levels", c->path, CODEC_DEPTH_MAX);
    const ProtobufCMessageDescriptor *desc = m->descriptor;
    json_t *obj = json_object();
    if (obj == NULL)
        return nomem(c);
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        bool oneof = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
        if (oneof && *oneof_case(m, f) != f->id)
            continue;
        lb_status st = field_encode(obj, m, f, c);
        if (st != LB_OK) {
            json_decref(obj);
            return st;
        }
    }
    *out = obj;
    return LB_OK;
}

/* ---- public JSON entry points -------------------------------------------- */

lb_status
codec_json_decode(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                  const json_t *json, lb_err *err)
{
    if (desc == NULL)
        return lb_err_set(err, LB_ERR_INVALID, "no message type given");
    if (!json_is_object(json))
        return lb_err_set(err, LB_ERR_TYPE, "expected a JSON object for %s", desc->name);
    codec_ctx c = { .err = err };
    return message_decode(out, desc, json, &c);
}

lb_status
codec_json_decode_text(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                       const char *text, size_t len, lb_err *err)
{
    json_error_t je;
    /* JSON_DECODE_ANY so a top-level array is reported as the wrong type. */
    json_t *root = json_loadb(text != NULL ? text : "", text != NULL ? len : 0,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (root == NULL)
        return lb_err_set(err, LB_ERR_BAD_JSON, "malformed JSON at line %d column %d: %s", je.line,
                          je.column, je.text);
    lb_status st = codec_json_decode(out, desc, root, err);
    json_decref(root);
    return st;
}

lb_status
codec_json_encode(json_t **out, const ProtobufCMessage *msg, lb_err *err)
{
    if (msg == NULL || msg->descriptor == NULL)
        return lb_err_set(err, LB_ERR_INVALID, "no message given");
    codec_ctx c = { .err = err };
    return message_encode(out, msg, &c);
}

lb_status
codec_json_encode_text(char **out, const ProtobufCMessage *msg, lb_err *err)
{
    json_t *obj;
    lb_status st = codec_json_encode(&obj, msg, err);
    if (st != LB_OK)
        return st;
    /* json_dumps() uses jansson's allocator, which a caller may replace;
     * json_dumpb() into our own buffer keeps the free() promise. */
    size_t n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
    char *text = n > 0 ? malloc(n + 1) : NULL;
    if (text == NULL || json_dumpb(obj, text, n, JSON_COMPACT) != n) {
        free(text);
        json_decref(obj);
        return lb_err_set(err, LB_ERR_NOMEM, "cannot serialize JSON");
    }
    text[n] = '\0';
    json_decref(obj);
    *out = text;
    return LB_OK;
}

/* ---- wire format --------------------------------------------------------- */

lb_status
codec_pack(uint8_t **out, size_t *out_len, const ProtobufCMessage *msg, lb_err *err)
{
    if (msg == NULL || msg->descriptor == NULL)
        return lb_err_set(err, LB_ERR_INVALID, "no message given");
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n > 0 ? n : 1); /* an empty message is 0 bytes */
    if (buf == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "out of memory packing %s", msg->descriptor->name);
    size_t w = protobuf_c_message_pack(msg, buf);
    if (w != n) {
        free(buf);
        return lb_err_set(err, LB_ERR_INTERNAL, "%s packed to %zu bytes, expected %zu",
                          msg->descriptor->name, w, n);
    }
    *out = buf;
    *out_len = n;
    return LB_OK;
}

#define CODEC_FIELD_NUMBER_MAX 536870911u /* 2^29 - 1, protobuf's limit */

static bool
varint_read(uint64_t *v, const uint8_t *p, size_t len, size_t *i)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64 && *i < len; shift += 7) {
        uint8_t b = p[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0)
            return true;
    }
    return false;
}

/* Walks wire bytes the way protobuf_c_message_unpack() will, only to measure
 * how deep messages nest; its own recursion has no limit. Recursion here is
 * bounded by CODEC_DEPTH_MAX. Anything it cannot walk is garbage protobuf-c
 * would refuse too (truncation, group or reserved wire types). Field numbers
 * outside 1..2^29-1 are garbage as well: protobuf-c 1.4 keeps a field 0
 * written as a two-byte varint (0x82 0x00) as an unknown field and packs it
 * as 0x02, which it then refuses, so such a message, once relayed, could
 * never be read again (found by fuzz/fuzz_proto_decode.c). */
static lb_status
wire_depth_check(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t len,
                 unsigned depth, lb_err *err)
{
    if (depth > CODEC_DEPTH_MAX)
        return lb_err_set(err, LB_ERR_DECODE, "%s: messages nest deeper than %d levels", desc->name,
                          CODEC_DEPTH_MAX);
    size_t i = 0;
    while (i < len) {
        uint64_t key, n = 0;
        if (!varint_read(&key, p, len, &i) || key >> 3 == 0 || key >> 3 > CODEC_FIELD_NUMBER_MAX)
            goto out_garbage;
        switch (key & 7) {
        case 0: /* varint */
            if (!varint_read(&n, p, len, &i))
                goto out_garbage;
            continue;
        case 1: /* 64-bit */
            n = 8;
            break;
        case 5: /* 32-bit */
            n = 4;
            break;
        case 2: { /* length-delimited: the only kind that can hold a message */
            if (!varint_read(&n, p, len, &i) || n > len - i)
                goto out_garbage;
            uint64_t id = key >> 3;
            const ProtobufCFieldDescriptor *f =
                id <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(desc, (unsigned)id)
                                 : NULL;
            if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                lb_status st = wire_depth_check(f->descriptor, p + i, (size_t)n, depth + 1, err);
                if (st != LB_OK)
                    return st;
            }
            break;
        }
        default:
            goto out_garbage;
        }
        if (n > len - i)
            goto out_garbage;
        i += (size_t)n;
    }
    return LB_OK;

out_garbage:
    return lb_err_set(err, LB_ERR_DECODE, "cannot decode %s: malformed wire data", desc->name);
}

lb_status
codec_unpack(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc, const uint8_t *buf,
             size_t len, lb_err *err)
{
    return codec_unpack_with(out, desc, buf, len, NULL, err);
}

lb_status
codec_unpack_with(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                  const uint8_t *buf, size_t len, ProtobufCAllocator *alloc, lb_err *err)
{
    if (desc == NULL)
        return lb_err_set(err, LB_ERR_INVALID, "no message type given");
    if (buf == NULL && len > 0)
        return lb_err_set(err, LB_ERR_INVALID, "no buffer given");
    static const uint8_t empty[1];
    if (buf == NULL)
        buf = empty;
    lb_status st = wire_depth_check(desc, buf, len, 0, err);
    if (st != LB_OK)
        return st;
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, alloc, len, buf);
    if (m == NULL)
        return lb_err_set(err, LB_ERR_DECODE, "cannot decode %zu bytes as %s", len, desc->name);
    *out = m;
    return LB_OK;
}
