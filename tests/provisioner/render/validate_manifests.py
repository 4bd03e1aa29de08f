#!/usr/bin/python3
"""JSON Schema checks for the provisioner tests (run with Debian's python3-jsonschema).

  validate_manifests.py objects SCHEMA_DIR STREAM.yaml
      Every document of the YAML stream against ../shared/k8s-schemas (draft-07): built-in kinds
      from v1.31.0-standalone-strict/, prometheus-operator kinds from monitoring.coreos.com/.
      The CRD schemas are not strict at the root and leave metadata open, so root keys are
      limited to apiVersion/kind/metadata/spec and metadata is checked against the built-in
      ObjectMeta schema (taken from configmap-v1.json).

  validate_manifests.py values VALUES_SCHEMA CHART_VALUES [FILE...]
      The chart's values.yaml with the FILEs merged over it in order (as Helm merges -f files)
      against values.schema.json, as Helm validates values before rendering.

Prints one line per problem ("<document>: <path>: <message>") and exits 1 if there was any.
"""
import base64
import binascii
import json
import os
import sys

import jsonschema
import yaml


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# The OpenAPI formats the Kubernetes schemas use that matter for what the chart renders: Secret
# `data` is "byte" (standard base64, padded), ports and counts are int32. A validator without a
# format checker ignores "format" altogether.
FORMAT_CHECKER = jsonschema.FormatChecker()


@FORMAT_CHECKER.checks("byte", raises=(binascii.Error, ValueError))
def is_byte(value):
    if not isinstance(value, str):
        return True
    if len(value) % 4 != 0:
        raise ValueError("base64 of a length that is not a multiple of 4")
    base64.b64decode(value, validate=True)
    return True


@FORMAT_CHECKER.checks("int32")
def is_int32(value):
    return not isinstance(value, int) or -2**31 <= value < 2**31


@FORMAT_CHECKER.checks("int64")
def is_int64(value):
    return not isinstance(value, int) or -2**63 <= value < 2**63


def schema_file(schema_dir, api_version, kind):
    group, _, version = api_version.rpartition("/")
    if group.endswith("monitoring.coreos.com"):
        return os.path.join(schema_dir, group, f"{kind.lower()}_{version}.json")
    suffix = f"-{group.split('.')[0]}" if group else ""
    return os.path.join(schema_dir, "v1.31.0-standalone-strict", f"{kind.lower()}{suffix}-{version}.json")


def errors_of(validator, document):
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path) or "(root)"
        yield f"{path}: {error.message}"


def check_objects(schema_dir, stream_path):
    object_meta = load_json(os.path.join(schema_dir, "v1.31.0-standalone-strict",
                                         "configmap-v1.json"))["properties"]["metadata"]
    meta_validator = jsonschema.Draft7Validator(object_meta, format_checker=FORMAT_CHECKER)
    problems = []
    with open(stream_path, encoding="utf-8") as f:
        documents = [d for d in yaml.safe_load_all(f) if d is not None]
    if not documents:
        problems.append(f"{stream_path}: no documents")
    for index, document in enumerate(documents):
        name = f"document {index}"
        if not isinstance(document, dict) or "apiVersion" not in document or "kind" not in document:
            problems.append(f"{name}: not a Kubernetes object")
            continue
        name = f"{document['kind']}/{document.get('metadata', {}).get('name', '?')}"
        path = schema_file(schema_dir, document["apiVersion"], document["kind"])
        if not os.path.exists(path):
            problems.append(f"{name}: no schema for {document['apiVersion']} {document['kind']} ({path})")
            continue
        validator = jsonschema.Draft7Validator(load_json(path), format_checker=FORMAT_CHECKER)
        problems += [f"{name}: {e}" for e in errors_of(validator, document)]
        if "monitoring.coreos.com" in document["apiVersion"]:
            extra = set(document) - {"apiVersion", "kind", "metadata", "spec"}
            problems += [f"{name}: unknown top-level key {k}" for k in sorted(extra)]
            problems += [f"{name}: metadata.{e}" for e in errors_of(meta_validator, document.get("metadata"))]
    return problems, len(documents)


def merge(base, override):
    for key, value in override.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def check_values(schema_path, chart_values, files):
    validator = jsonschema.Draft7Validator(load_json(schema_path))
    with open(chart_values, encoding="utf-8") as f:
        values = yaml.safe_load(f) or {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            merge(values, yaml.safe_load(f) or {})
    name = " + ".join([os.path.basename(chart_values)] + files)
    return [f"{name}: {e}" for e in errors_of(validator, values)], 1 + len(files)


def main(argv):
    if len(argv) >= 3 and argv[1] == "objects":
        problems, count = check_objects(argv[2], argv[3])
    elif len(argv) >= 4 and argv[1] == "values":
        problems, count = check_values(argv[2], argv[3], argv[4:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    if not problems:
        print(f"ok: {count} checked")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
