#!/usr/bin/env bash
# Memory benchmark (issue 25, item 9): a factory at Data Factory's size
# limits (N pipelines of KB kilobytes, one data flow of MB megabytes) behind
# adf-emulator; peak RSS of `adfdr backup --force` (/usr/bin/time -v), and of
# the agent's idle process is bench/agent-idle.sh's. Prints the definitions'
# canonical size and the peak, and their ratio (memory per MB of definitions).
# Usage: bench/memory.sh [N=1000] [KB=190] [MB=7] [PROFILE=release]
set -euo pipefail
N=${1:-1000}
KB=${2:-190}
MB=${3:-7}
PROFILE=${4:-release}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/adfdr-mem-XXXXXX)
trap 'kill "${EMU_PID:-0}" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT

if [ "$PROFILE" = release ]; then
  cargo build --release -q -p adfdr -p adf-emulator --manifest-path "$ROOT/Cargo.toml"
else
  cargo build -q -p adfdr -p adf-emulator --manifest-path "$ROOT/Cargo.toml"
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
"$BIN/adf-emulator" --tls-cert "$ROOT/fixtures/tls/server.pem" --tls-key "$ROOT/fixtures/tls/server.key" \
  --generate-heavy "$N:$KB:$MB:$WORK/factory" >/dev/null
"$BIN/adf-emulator" --tls-cert "$ROOT/fixtures/tls/server.pem" --tls-key "$ROOT/fixtures/tls/server.key" \
  --seed "00000000-0000-0000-0000-000000000000/rg-bench/adf-heavy=$WORK/factory" \
  >"$WORK/emu.out" 2>"$WORK/emu.err" &
EMU_PID=$!
for _ in $(seq 600); do grep -q "ready" "$WORK/emu.out" 2>/dev/null && break; sleep 0.1; done
READY=$(grep ready "$WORK/emu.out")
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$READY"; }
export IDENTITY_ENDPOINT=$(field identity_endpoint) IDENTITY_HEADER=$(field identity_header)
mkdir -p "$WORK/weu" "$WORK/neu"
"$BIN/adfdr" key generate --out "$WORK/bg.key" >/dev/null
cat >"$WORK/adfdr.toml" <<TOML
[agent]
state_dir = "$WORK/state"
[auth]
method = "managed-identity"
arm_endpoint = "$(field arm)"
ca_file = "$ROOT/fixtures/tls/ca.pem"
[[location]]
name = "weu"
url = "file://$WORK/weu"
[[location]]
name = "neu"
url = "file://$WORK/neu"
[[key]]
id = "breakglass"
file = "$WORK/bg.key"
[[factory]]
name = "heavy"
subscription = "00000000-0000-0000-0000-000000000000"
resource_group = "rg-bench"
factory = "adf-heavy"
TOML
export ADFDR_CONFIG="$WORK/adfdr.toml"
DEFS=$(python3 - "$WORK/factory" <<'PY'
import json, os, sys
total = 0
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        total += len(json.dumps(json.load(open(os.path.join(d, f))), separators=(",", ":")))
print(total)
PY
)
echo "factory: $N pipelines of ${KB} KB, a data flow of ${MB} MB: $((DEFS / 1048576)) MiB of definitions"
for run in 1 2 3; do
  /usr/bin/time -v "$BIN/adfdr" backup --force 2>"$WORK/time.txt" >/dev/null
  RSS=$(awk '/Maximum resident/ {print $6}' "$WORK/time.txt")
  WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")
  echo "run $run: peak RSS $((RSS / 1024)) MiB, wall $WALL, $(python3 -c "print(round($RSS*1024/$DEFS, 2))") bytes of RSS per byte of definitions"
done
