#!/usr/bin/python3
"""openapi_check.py DOC.json - validates an OpenAPI 3.0 document.

Two checks, exit status 0 only when both pass:
1. the document against the OpenAPI Initiative's JSON Schema for 3.0
   (Debian package openapi-specification), with python3-jsonschema;
2. every local "$ref" resolves (the schema cannot see that).
Used by tests/unit/edge_openapi_test.c on the edge's generated document.
"""
import json
import sys

import jsonschema

SPEC = "/usr/share/openapi-specification/schemas/v3.0/schema.json"


def refs(node, path="#"):
    if isinstance(node, dict):
        for key, val in node.items():
            if key == "$ref" and isinstance(val, str):
                yield path, val
            else:
                yield from refs(val, path + "/" + key)
    elif isinstance(node, list):
        for i, val in enumerate(node):
            yield from refs(val, "%s/%d" % (path, i))


def resolve(doc, ref):
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    with open(SPEC, encoding="utf-8") as f:
        spec = json.load(f)
    errors = sorted(jsonschema.Draft4Validator(spec).iter_errors(doc), key=lambda e: list(e.path))
    for e in errors:
        print("schema: /%s: %s" % ("/".join(map(str, e.path)), e.message))
    bad = [(p, r) for p, r in refs(doc) if not r.startswith("#/") or not resolve(doc, r)]
    for p, r in bad:
        print("unresolved $ref %s at %s" % (r, p))
    return 1 if errors or bad else 0


if __name__ == "__main__":
    sys.exit(main())
