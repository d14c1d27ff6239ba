#!/usr/bin/env bash
# Writes docs/json/<schema>.json from the binary's own schemas (adfdr schema),
# one file per --json output; the test suite fails when they are stale.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p adfdr
mkdir -p docs/json
rm -f docs/json/*.json
./target/debug/adfdr schema | python3 -c '
import json, sys
for name, schema in json.load(sys.stdin).items():
    with open(f"docs/json/{name}.json", "w") as f:
        json.dump(schema, f, indent=2, sort_keys=True)
        f.write("\n")
'
ls docs/json
