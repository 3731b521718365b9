/* fuzz_proto_decode.c - protobuf decoding of every registered message type.
 *
 * Every daemon decodes the body of whatever arrives on its subjects by the
 * type it expects, and layby-ctl decodes any stored message by its
 * Layby-Type through the registry (codec_type_find()); both end in
 * codec_unpack(). The types are the registry itself (msg_registry[], written
 * by cmake/gen-registry.sh from proto/), so a new message is fuzzed without a
 * change here.
 *
 * Input: two bytes choose the type (index modulo the registry's size), the
 * rest is the wire bytes.
 *
 * Invariants, on every input that unpacks:
 * (1) the registry finds the type by its own name;
 * (2) packing is stable: pack(unpack(pack(m))) == pack(m);
 * (3) when the message has a JSON form (it may not: a proto3 string field
 *     is not checked for UTF-8 by protobuf-c, and JSON text must be UTF-8),
 *     decoding that JSON and encoding it again gives the same JSON, in both
 *     mappings.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"

extern const ProtobufCMessageDescriptor *const msg_registry[];
extern const size_t msg_registry_len;

static void
pack(uint8_t **out, size_t *len, const ProtobufCMessage *m, const char *what)
{
    lb_err err;
    if (codec_pack(out, len, m, &err) != LB_OK)
        fuzz_fail("%s: %s does not pack: %s", what, m->descriptor->name, err.msg);
}

/* JSON text of m in one mapping, or NULL when it has none. */
static char *
json_text(const ProtobufCMessage *m, bool proto3)
{
    json_t *j = NULL;
    lb_status s = proto3 ? codec_json_encode_proto3(&j, m, NULL) : codec_json_encode(&j, m, NULL);
    if (s != LB_OK)
        return NULL;
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (text == NULL)
        fuzz_fail("%s: JSON encoded but cannot be written", m->descriptor->name);
    return text;
}

/* Invariant (3). Compared as JSON, not as bytes: protobuf-c keeps unknown
 * fields and packs them again, and JSON has no place for them. */
static void
json_round_trip(const ProtobufCMessage *m, bool proto3)
{
    char *text = json_text(m, proto3);
    if (text == NULL)
        return; /* no JSON form (e.g. a string that is not UTF-8): refused cleanly */
    ProtobufCMessage *back = NULL;
    lb_err err;
    if (codec_json_decode_text(&back, m->descriptor, text, strlen(text), &err) != LB_OK)
        fuzz_fail("%s: own JSON refused (%s) at %s: %s; JSON %s", m->descriptor->name,
                  proto3 ? "proto3" : "edge", err.field, err.msg, text);
    char *again = json_text(back, proto3);
    if (again == NULL || strcmp(again, text) != 0)
        fuzz_fail("%s: JSON round trip (%s) changed the message: %s -> %s", m->descriptor->name,
                  proto3 ? "proto3" : "edge", text, again ? again : "(none)");
    free(again);
    free(text);
    protobuf_c_message_free_unpacked(back, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || msg_registry_len == 0)
        return 0;
    const ProtobufCMessageDescriptor *desc =
        msg_registry[(((size_t)data[0] << 8) | data[1]) % msg_registry_len];
    if (codec_type_find(desc->name) != desc)
        fuzz_fail("registry does not find %s by its name", desc->name);
    ProtobufCMessage *m = NULL;
    lb_err err;
    if (codec_unpack(&m, desc, data + 2, size - 2, &err) != LB_OK)
        return 0;
    uint8_t *once, *twice;
    size_t n1, n2;
    pack(&once, &n1, m, "unpacked");
    ProtobufCMessage *again = NULL;
    if (codec_unpack(&again, desc, once, n1, &err) != LB_OK)
        fuzz_fail("%s: its own packed bytes do not unpack: %s", desc->name, err.msg);
    pack(&twice, &n2, again, "repacked");
    if (n1 != n2 || memcmp(once, twice, n1) != 0)
        fuzz_fail("%s: packing is not stable", desc->name);
    json_round_trip(m, false);
    json_round_trip(m, true);
    free(once);
    free(twice);
    protobuf_c_message_free_unpacked(again, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
