/* fuzz_codec_json.c - the JSON -> protobuf codec, for every request body the
 * edge decodes.
 *
 * The types come from the edge's route table (edge_table.c), the one place
 * that says which message an HTTP body becomes: a row's body type, decoded
 * like the runner does (edge_run_body_decode() when the body is the request
 * itself, so the fields binds fill are refused there too). A new route's
 * body is fuzzed without a change here.
 *
 * Input: the type's full name on the first line ("layby.v1.ProductDraft"),
 * then the JSON text. An unknown name picks a type by its first byte, so
 * every input decodes something.
 *
 * Invariants, on every body that decodes:
 * (1) it packs, and the bytes unpack as the same type;
 * (2) encoding it to JSON (both the edge's and the proto3 mapping) and
 *     decoding that again gives the same protobuf bytes: what the codec
 *     writes, it reads back unchanged.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "edge_routes.h"
#include "edge_run.h"
#include "fuzz.h"

static const edge_route *rows[EDGE_ROUTES_MAX];
static size_t n_rows;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    size_t n;
    const edge_route *table = edge_routes_table(&n);
    for (size_t i = 0; i < n; i++) {
        const edge_route *rt = &table[i];
        if (rt->body == NULL)
            continue;
        bool seen = false; /* one row per (body type, whether it is the request) */
        for (size_t j = 0; j < n_rows; j++)
            seen |= rows[j]->body == rt->body &&
                    (rows[j]->body_field == NULL) == (rt->body_field == NULL);
        if (!seen)
            rows[n_rows++] = rt;
    }
    if (n_rows == 0)
        fuzz_fail("no route has a body");
    return 0;
}

static void
pack(uint8_t **out, size_t *len, const ProtobufCMessage *m, const char *what)
{
    lb_err err;
    if (codec_pack(out, len, m, &err) != LB_OK)
        fuzz_fail("%s: %s does not pack: %s", what, m->descriptor->name, err.msg);
}

/* Invariant (2) for one of the two JSON mappings. */
static void
json_round_trip(const ProtobufCMessage *m, const uint8_t *want, size_t want_len, bool proto3)
{
    json_t *j = NULL;
    lb_err err;
    lb_status s = proto3 ? codec_json_encode_proto3(&j, m, &err) : codec_json_encode(&j, m, &err);
    if (s != LB_OK)
        fuzz_fail("%s decoded but does not encode (%s): %s", m->descriptor->name,
                  proto3 ? "proto3" : "edge", err.msg);
    ProtobufCMessage *back = NULL;
    if (codec_json_decode(&back, m->descriptor, j, &err) != LB_OK) {
        char *text = json_dumps(j, JSON_COMPACT);
        fuzz_fail("%s: own JSON refused (%s) at %s: %s; JSON %s", m->descriptor->name,
                  proto3 ? "proto3" : "edge", err.field, err.msg, text ? text : "?");
    }
    uint8_t *got;
    size_t got_len;
    pack(&got, &got_len, back, "round trip");
    if (got_len != want_len || memcmp(got, want, want_len) != 0)
        fuzz_fail("%s: JSON round trip (%s) changed the message", m->descriptor->name,
                  proto3 ? "proto3" : "edge");
    free(got);
    protobuf_c_message_free_unpacked(back, NULL);
    json_decref(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t name_len = nl ? (size_t)(nl - data) : 0;
    const edge_route *rt = rows[data[0] % n_rows];
    for (size_t i = 0; nl != NULL && i < n_rows; i++)
        if (strlen(rows[i]->body->name) == name_len &&
            memcmp(rows[i]->body->name, data, name_len) == 0)
            rt = rows[i];
    const char *text = nl ? (const char *)nl + 1 : (const char *)data;
    size_t len = size - (size_t)((const uint8_t *)text - data);

    ProtobufCMessage *m = NULL;
    lb_err err;
    lb_status s = rt->body_field == NULL ? edge_run_body_decode(&m, rt, text, len, &err)
                                         : codec_json_decode_text(&m, rt->body, text, len, &err);
    if (s != LB_OK) {
        if (m != NULL)
            fuzz_fail("%s: failed decode left a message", rt->body->name);
        return 0;
    }
    uint8_t *bytes;
    size_t n;
    pack(&bytes, &n, m, "decoded");
    ProtobufCMessage *again = NULL;
    if (codec_unpack(&again, m->descriptor, bytes, n, &err) != LB_OK)
        fuzz_fail("%s: packed bytes do not unpack: %s", m->descriptor->name, err.msg);
    protobuf_c_message_free_unpacked(again, NULL);
    json_round_trip(m, bytes, n, false);
    json_round_trip(m, bytes, n, true);
    free(bytes);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
