#!/usr/bin/env bash
# Backup benchmark (design.md section 7): a generated factory of N resources
# behind adf-emulator with L ms of latency per request; adfdr backs it up to two
# local-directory locations with a break-glass key. Reports the wall time of
# `adfdr backup --force` (hyperfine, median), the list-paging lower bound, peak
# RSS (/usr/bin/time -v) and what an unchanged factory writes.
# Usage: bench/backup.sh [N=5000] [LATENCY_MS=50] [PAGE_SIZE=50]
set -euo pipefail
N=${1:-5000}
LATENCY=${2:-50}
PAGE=${3:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/adfdr-bench-XXXXXX)
trap 'kill "${EMU_PID:-0}" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT

cargo build --release -q -p adfdr -p adf-emulator --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release"
"$BIN/adf-emulator" --tls-cert "$ROOT/fixtures/tls/server.pem" --tls-key "$ROOT/fixtures/tls/server.key" \
  --generate "$N:$WORK/factory" >/dev/null
"$BIN/adf-emulator" --tls-cert "$ROOT/fixtures/tls/server.pem" --tls-key "$ROOT/fixtures/tls/server.key" \
  --seed "00000000-0000-0000-0000-000000000000/rg-bench/adf-big=$WORK/factory" \
  --latency-ms "$LATENCY" --page-size "$PAGE" >"$WORK/emu.out" 2>"$WORK/emu.err" &
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
name = "big"
subscription = "00000000-0000-0000-0000-000000000000"
resource_group = "rg-bench"
factory = "adf-big"
TOML
export ADFDR_CONFIG="$WORK/adfdr.toml"

# Lower bound: the factory GET, then the longest chain of list pages (kinds
# are listed concurrently; pages of one kind follow nextLink one by one).
KINDS=$(for d in "$WORK"/factory/*/; do ls "$d" | wc -l; done | sort -n | tail -1)
PAGES=$(( (KINDS + PAGE - 1) / PAGE ))
BOUND_MS=$(( (1 + PAGES) * LATENCY ))
echo "factory: $N resources, largest kind $KINDS -> $PAGES pages of $PAGE; latency ${LATENCY} ms"
echo "list-paging lower bound: $BOUND_MS ms"

"$BIN/adfdr" backup --force >/dev/null
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 1 --runs 7 --export-json "$WORK/h.json" "$BIN/adfdr backup --force" >/dev/null
  MEDIAN_MS=$(python3 -c "import json;print(round(json.load(open('$WORK/h.json'))['results'][0]['median']*1000))")
else
  MEDIAN_MS=$(python3 - "$BIN/adfdr" <<'PY'
import subprocess, sys, time, statistics
t = []
for _ in range(7):
    s = time.monotonic(); subprocess.run([sys.argv[1], "backup", "--force"], check=True, stdout=subprocess.DEVNULL); t.append(time.monotonic() - s)
print(round(statistics.median(t) * 1000))
PY
)
fi
echo "adfdr backup --force: median $MEDIAN_MS ms = $(python3 -c "print(round($MEDIAN_MS/$BOUND_MS, 3))")x the lower bound"
/usr/bin/time -v "$BIN/adfdr" backup --force 2>"$WORK/time.txt" >/dev/null
echo "peak RSS: $(awk '/Maximum resident/ {print $6}' "$WORK/time.txt") KiB"
BEFORE=$(find "$WORK/weu" "$WORK/neu" -type f | wc -l)
"$BIN/adfdr" backup
AFTER_FILES=$(find "$WORK/weu" "$WORK/neu" -type f -newer "$WORK/time.txt")
echo "unchanged backup wrote: $(echo "$AFTER_FILES" | grep -c . ) objects: $(echo "$AFTER_FILES" | sed 's|.*/||' | sed 's/.*\.//' | sort | uniq -c | tr '\n' ' ')"
echo "snapshot objects written when unchanged: $(echo "$AFTER_FILES" | grep -c -E '\.(manifest|payload)$' || true)"
