#!/usr/bin/env bash
# Agent footprint (issue 5): idle RSS and CPU between jobs. adf-emulator serves
# the sample factory; the agent (release) runs a caught-up backup at start-up,
# then idles until its next (yearly) run. Prints RSS after the backup and the
# CPU time used over IDLE seconds of idling.
# With N, the factory is a generated one of N resources (peak RSS while backing it up).
# The shipped unit sets MIMALLOC_ARENA_RESERVE=0 MIMALLOC_PURGE_DELAY=0: run with them to
# measure what systemd runs.
# Usage: [MIMALLOC_ARENA_RESERVE=0 MIMALLOC_PURGE_DELAY=0] bench/agent-idle.sh [IDLE=30] [N]
set -euo pipefail
IDLE=${1:-30}
N=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/adfdr-idle-XXXXXX)
trap 'kill "${EMU_PID:-0}" "${AGENT_PID:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
cargo build --release -q -p adfdr-agent -p adfdr -p adf-emulator --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release"
SUB=00000000-0000-0000-0000-000000000000
FACTORY="$ROOT/fixtures/sample-factory"
if [ -n "$N" ]; then
  "$BIN/adf-emulator" --tls-cert "$ROOT/fixtures/tls/server.pem" --tls-key "$ROOT/fixtures/tls/server.key" \
    --generate "$N:$WORK/factory" >/dev/null
  FACTORY="$WORK/factory"
fi
"$BIN/adf-emulator" --tls-cert "$ROOT/fixtures/tls/server.pem" --tls-key "$ROOT/fixtures/tls/server.key" \
  --seed "$SUB/rg/adf-sample=$FACTORY" >"$WORK/emu.out" 2>"$WORK/emu.err" &
EMU_PID=$!
for _ in $(seq 100); do grep -q "ready" "$WORK/emu.out" 2>/dev/null && break; sleep 0.1; done
READY=$(grep ready "$WORK/emu.out")
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$READY"; }
export IDENTITY_ENDPOINT=$(field identity_endpoint) IDENTITY_HEADER=$(field identity_header)
mkdir -p "$WORK/weu" "$WORK/neu"
"$BIN/adfdr" key generate --out "$WORK/bg.key" >/dev/null
cat >"$WORK/adfdr.toml" <<TOML
[agent]
state_dir = "$WORK/state"
socket = "$WORK/adfdr.sock"
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
name = "sample"
subscription = "$SUB"
resource_group = "rg"
factory = "adf-sample"
backup = "0 0 1 1 *"
TOML
"$BIN/adfdr-agent" --config "$WORK/adfdr.toml" 2>"$WORK/agent.log" &
AGENT_PID=$!
for _ in $(seq 600); do grep -q '"done"' "$WORK/agent.log" 2>/dev/null && break; sleep 0.2; done
grep -q '"done"' "$WORK/agent.log" || { echo "the start-up backup did not finish"; cat "$WORK/agent.log"; exit 1; }
sleep 1
if [ -n "${SMAPS:-}" ]; then awk '/^[0-9a-f]/ {name=$6} /^Rss:/ {rss[name]+=$2} END {for (n in rss) if (rss[n] > 1000) print rss[n] " kB " n}' /proc/$AGENT_PID/smaps | sort -rn | head; fi
ticks() { awk '{print $14 + $15}' "/proc/$AGENT_PID/stat"; }
HZ=$(getconf CLK_TCK)
BEFORE=$(ticks)
sleep "$IDLE"
AFTER=$(ticks)
RSS=$(awk '/VmRSS/ {print $2}' "/proc/$AGENT_PID/status")
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$AGENT_PID/status")
echo "idle RSS after a backup: $((RSS / 1024)) MB (peak so far $((HWM / 1024)) MB)"
echo "CPU over ${IDLE} s idle: $(( (AFTER - BEFORE) * 1000 / HZ )) ms"
