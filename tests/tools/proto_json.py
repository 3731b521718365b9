#!/usr/bin/python3
"""proto_json.py DESCRIPTOR_SET - decodes protobuf messages independently of
layby's C codec, for tests/integration/ctl_events_test.c.

stdin: JSON lines {"type": "layby.v1.SagaChanged", "b64": "<wire bytes>"}.
stdout: one JSON line per input, the message in the proto3 JSON mapping as
protobuf's own library prints it (google.protobuf.json_format.MessageToDict
with its defaults: lowerCamelCase, int64 as strings, defaults left out), or
{"error": "..."} when the bytes do not decode as that type.

DESCRIPTOR_SET comes from `protoc-c --descriptor_set_out --include_imports`
over proto/ (protoc-c is protoc's own front end). Debian's python3-protobuf
(docs/DEPENDENCIES.md)."""
import base64
import json
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


def main():
    fds = descriptor_pb2.FileDescriptorSet()
    with open(sys.argv[1], "rb") as f:
        fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        pool.Add(fd)
    factory = message_factory.MessageFactory(pool)
    for line in sys.stdin:
        item = json.loads(line)
        try:
            cls = factory.GetPrototype(pool.FindMessageTypeByName(item["type"]))
            msg = cls()
            msg.ParseFromString(base64.b64decode(item["b64"]))
            out = json_format.MessageToDict(msg)
        except Exception as e:  # an unknown type or corrupt bytes: say so, go on
            out = {"error": "%s: %s" % (type(e).__name__, e)}
        print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
