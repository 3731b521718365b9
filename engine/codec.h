/* codec.h - one generic JSON <-> protobuf codec driven by protobuf-c descriptors.
 *
 * The edge turns HTTP bodies into commands with it and `layby-ctl replay` turns
 * any stored message back into JSON; nothing is hand-written per message.
 * JSON names are the lowerCamelCase form of the proto field names
 * (stock_available -> stockAvailable). Mapping (proto3 JSON style):
 *   int32/sint32/sfixed32/uint32/fixed32 : JSON integer (range-checked)
 *   int64/sint64/sfixed64/uint64/fixed64 : JSON integer, or a decimal string
 *   float/double : JSON number;  bool : true/false;  string : JSON string (UTF-8)
 *   bytes : base64 string;  enum : its name (numbers accepted on input)
 *   message : object;  repeated : array;  oneof : whichever member is set
 * Decoding refuses unknown fields, wrong types, out-of-range numbers and null
 * for required shapes, naming the offending field as a JSON path
 * ("items[2].quantity") in lb_err.field. Encoding writes every field, including
 * proto3 defaults, so clients see a stable shape (oneof members only when set).
 *
 * Ownership: codec_json_decode() returns a message the caller frees with
 *            protobuf_c_message_free_unpacked(msg, NULL); codec_json_encode()
 *            returns a jansson reference the caller json_decref()s; a
 *            codec_buf is the caller's (codec_buf_free()).
 * Threads:   all functions are reentrant.
 */
#ifndef LAYBY_ENGINE_CODEC_H
#define LAYBY_ENGINE_CODEC_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "lb.h"

/* Message levels allowed below the top-level one, in JSON and on the wire. */
#define CODEC_DEPTH_MAX 32

/* Builds a message of type desc from a parsed JSON object. On error *out is
 * untouched and err names the field. */
lb_status codec_json_decode(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                            const json_t *json, lb_err *err);
/* Same, from text (at most len bytes, not necessarily NUL-terminated). */
lb_status codec_json_decode_text(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                                 const char *text, size_t len, lb_err *err);
/* On LB_OK *out is a new JSON object owned by the caller. */
lb_status codec_json_encode(json_t **out, const ProtobufCMessage *msg, lb_err *err);
/* The canonical proto3 JSON mapping, as protobuf's own tools print a message
 * (python's json_format.MessageToDict with its defaults): fields holding
 * their proto3 default are left out (a set oneof member is kept), 64-bit
 * integers are decimal strings, enums by name, google.protobuf.Timestamp as
 * RFC 3339 (codec_proto3.c has the whole mapping). layby-ctl's output; the
 * edge's API keeps codec_json_encode(). This one parses
 * codec_proto3_write()'s text, so both always agree. */
lb_status codec_json_encode_proto3(json_t **out, const ProtobufCMessage *msg, lb_err *err);

/* A growing byte buffer the text writers append to; { 0 } is an empty one.
 * data is malloc'd; codec_buf_free() releases it (len and cap back to 0). */
typedef struct codec_buf {
    char *data;
    size_t len, cap;
} codec_buf;
/* Room for more bytes after len: LB_ERR_NOMEM (nothing changed) or LB_OK. */
lb_status codec_buf_reserve(codec_buf *b, size_t more);
lb_status codec_buf_add(codec_buf *b, const void *p, size_t n);
/* A decimal integer. */
lb_status codec_buf_int(codec_buf *b, int64_t v);
/* s (len bytes) as a JSON string, quoted and escaped as jansson escapes:
 * LB_ERR_INVALID when s is not UTF-8 (nothing appended). */
lb_status codec_buf_string(codec_buf *b, const char *s, size_t len);
void codec_buf_free(codec_buf *b);
/* Appends msg as codec_json_encode_proto3() maps it, as compact JSON text,
 * with no allocation once b has room: layby-ctl's replay writes hundreds of
 * thousands in a row. On error nothing is appended and err names the field
 * (a string not UTF-8, a Timestamp out of range, nesting too deep). */
lb_status codec_proto3_write(codec_buf *b, const ProtobufCMessage *msg, lb_err *err);
/* Encodes to compact text; *out is malloc'd, caller free()s it. */
lb_status codec_json_encode_text(char **out, const ProtobufCMessage *msg, lb_err *err);

/* Packs msg into a new malloc'd buffer. */
lb_status codec_pack(uint8_t **out, size_t *out_len, const ProtobufCMessage *msg, lb_err *err);
/* Unpacks wire bytes; garbage gives LB_ERR_DECODE. Free with protobuf_c_message_free_unpacked. */
lb_status codec_unpack(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                       const uint8_t *buf, size_t len, lb_err *err);
/* Same, taking its memory from alloc (NULL = malloc); free the message with
 * protobuf_c_message_free_unpacked(msg, alloc). */
lb_status codec_unpack_with(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                            const uint8_t *buf, size_t len, ProtobufCAllocator *alloc, lb_err *err);

/* The Layby-Type registry: full type name ("layby.v1.Product") -> descriptor,
 * covering every message in proto/. NULL when unknown. */
const ProtobufCMessageDescriptor *codec_type_find(const char *full_name);
/* proto field name -> lowerCamelCase JSON name; out needs strlen(name)+1 bytes. */
void codec_json_name(char *out, size_t n, const char *proto_name);

#endif
