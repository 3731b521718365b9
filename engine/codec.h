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
 *            returns a jansson reference the caller json_decref()s.
 * Threads:   all functions are reentrant.
 */
#ifndef LAYBY_ENGINE_CODEC_H
#define LAYBY_ENGINE_CODEC_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "lb.h"

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
 * (python's json_format.MessageToJson with its defaults): fields holding
 * their proto3 default are left out (a set oneof member is kept), 64-bit
 * integers are decimal strings. layby-ctl's output; the edge's API keeps
 * codec_json_encode(). */
lb_status codec_json_encode_proto3(json_t **out, const ProtobufCMessage *msg, lb_err *err);
/* Encodes to compact text; *out is malloc'd, caller free()s it. */
lb_status codec_json_encode_text(char **out, const ProtobufCMessage *msg, lb_err *err);

/* Packs msg into a new malloc'd buffer. */
lb_status codec_pack(uint8_t **out, size_t *out_len, const ProtobufCMessage *msg, lb_err *err);
/* Unpacks wire bytes; garbage gives LB_ERR_DECODE. Free with protobuf_c_message_free_unpacked. */
lb_status codec_unpack(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                       const uint8_t *buf, size_t len, lb_err *err);

/* The Layby-Type registry: full type name ("layby.v1.Product") -> descriptor,
 * covering every message in proto/. NULL when unknown. */
const ProtobufCMessageDescriptor *codec_type_find(const char *full_name);
/* proto field name -> lowerCamelCase JSON name; out needs strlen(name)+1 bytes. */
void codec_json_name(char *out, size_t n, const char *proto_name);

#endif
