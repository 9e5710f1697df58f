"""Checks stamp's OpenAPI document (used by tests/api/openapi.rs).

    check.py DOCUMENT                 validate DOCUMENT with openapi-spec-validator
    check.py DOCUMENT OBSERVATIONS    also hold real answers against it

OBSERVATIONS is a JSON array of answers the issuer gave: {"method", "path" (the documented
template), "status", "headers" (lower-case names), "content_type", "body"}. Each status must be
documented for its operation; documented headers marked `required` must be sent, and every
documented header sent must match its schema; a body must be of a documented media type and, for
JSON, valid against the documented schema (OpenAPI 3.1 dialect); a documented answer without
content must have an empty body. Prints one line per problem and exits 1 if there is any.
"""

import json
import sys

from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE = "urn:stamp:openapi"


def follow(doc, node):
    """Follows local `$ref`s (responses are often references)."""
    while isinstance(node, dict) and "$ref" in node:
        target = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def pointer(*parts):
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def check(doc, observations):
    registry = Registry().with_resource(
        BASE, Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    problems = []
    for seen in observations:
        method, path, status = seen["method"].lower(), seen["path"], str(seen["status"])
        what = f'{seen["method"]} {path} -> {status}'
        operation = doc["paths"].get(path, {}).get(method)
        if operation is None:
            problems.append(f"{what}: operation not documented")
            continue
        responses = operation["responses"]
        key = status if status in responses else status[0] + "XX"
        if key not in responses:
            problems.append(f"{what}: status not documented (documented: {sorted(responses)})")
            continue
        response = follow(doc, responses[key])
        for name, header in response.get("headers", {}).items():
            header = follow(doc, header)
            value = seen["headers"].get(name.lower())
            if value is None:
                if header.get("required"):
                    problems.append(f"{what}: required header {name} missing")
                continue
            schema = header.get("schema", {})
            if schema.get("type") == "integer":
                value = int(value) if value.isdigit() else value
            for error in OAS31Validator(schema).iter_errors(value):
                problems.append(f"{what}: header {name}: {error.message}")
        content = response.get("content", {})
        body = seen["body"]
        if not content:
            if body:
                problems.append(f"{what}: documented without a body, answered {body[:80]!r}")
            continue
        media = (seen["content_type"] or "").split(";")[0].strip()
        if media not in content:
            problems.append(f"{what}: content type {media!r} not documented ({sorted(content)})")
            continue
        if media != "application/json":
            continue
        at = pointer("paths", path, method, "responses", key)
        if "$ref" in responses[key]:
            at = responses[key]["$ref"]
        schema = {"$ref": BASE + at + "/content/" + media.replace("/", "~1") + "/schema"}
        validator = OAS31Validator(schema, registry=registry)
        for error in validator.iter_errors(json.loads(body)):
            problems.append(f"{what}: body does not match the schema: {error.message}")
    return problems


def main():
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    validate(doc)
    print("document: valid OpenAPI", doc["openapi"])
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            observations = json.load(f)
        problems = check(doc, observations)
        for problem in problems:
            print(problem)
        print(f"answers: {len(observations)} checked, {len(problems)} problems")
        if problems:
            sys.exit(1)


if __name__ == "__main__":
    main()
