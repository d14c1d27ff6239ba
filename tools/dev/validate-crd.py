#!/usr/bin/env python3
"""Validates custom resources against their CustomResourceDefinitions'
OpenAPI schemas, strictly: a field the schema does not name fails (as
`kubectl apply --validate=strict` does on a server with the CRD), unless
the schema keeps unknown fields (x-kubernetes-preserve-unknown-fields).

  validate-crd.py --crd A.yaml --crd B.yaml MANIFEST.yaml

Prints "passed for resource KIND/NAME" per object of a kind the CRDs define
(other kinds are not its business), and exits 1 on the first that fails.
Needs PyYAML and jsonschema (tools/venv, installed by scripts/setup).
"""

import argparse
import sys

import jsonschema
import yaml


def strict(schema):
    """The schema with additionalProperties false wherever it names the
    properties an object may have (and does not keep unknown ones)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        # Kubernetes matches patterns with Go's regexp, where a flag group
        # may follow `^`; Python's takes global flags first only.
        pattern = out.get("pattern")
        if isinstance(pattern, str) and "(?i)" in pattern and not pattern.startswith("(?i)"):
            out["pattern"] = "(?i)" + pattern.replace("(?i)", "", 1)
        if out.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def schemas(paths):
    """(apiVersion, kind) -> the strict schema of each served version."""
    out = {}
    for path in paths:
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group = crd["spec"]["group"]
                kind = crd["spec"]["names"]["kind"]
                for v in crd["spec"]["versions"]:
                    if v.get("served"):
                        schema = strict(v["schema"]["openAPIV3Schema"])
                        # metadata is the API server's: ObjectMeta, not the CRD's.
                        schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                        out[(f"{group}/{v['name']}", kind)] = schema
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--crd", action="append", required=True)
    parser.add_argument("manifest")
    args = parser.parse_args()
    known = schemas(args.crd)
    checked = 0
    with open(args.manifest) as f:
        for obj in yaml.safe_load_all(f):
            if not obj:
                continue
            key = (obj.get("apiVersion"), obj.get("kind"))
            if key not in known:
                continue
            name = f"{obj['kind'].lower()}/{obj.get('metadata', {}).get('name', '?')}"
            # OpenAPI v3's schema object is JSON Schema draft 4's, near enough.
            errors = list(jsonschema.Draft4Validator(known[key]).iter_errors(obj))
            if errors:
                for e in errors:
                    path = "/".join(str(p) for p in e.absolute_path)
                    print(f"{args.manifest}: {name} at /{path}: {e.message}")
                return 1
            print(f"{args.manifest} passed for resource {name}")
            checked += 1
    if checked == 0:
        print(f"{args.manifest}: no object of a kind the CRDs define")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
