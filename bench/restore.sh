#!/usr/bin/env bash
# Restore benchmark (issue 4, design.md section 7): a generated factory of N
# resources (ExecutePipeline chains 12 deep) behind adf-emulator with L ms of
# latency and a write throttle (THROTTLE: "arm" = ARM's 200 burst + 10/s
# writes, or "off"), backed up once, then restored into a new, empty factory
# per run. Prints the lower bound max(depth x latency, writes over the
# throttle), hyperfine's median, and with COMPARE=1 the same restore done one
# resource at a time with Microsoft's Python SDK (bench/python_sequential_restore.py).
# Usage: [COMPARE=1] [RUNS=3] [RESTORE_ARGS=..] [TIME_SCALE=0.001] bench/restore.sh [N=1000] [LATENCY_MS=50] [THROTTLE=arm]
set -euo pipefail
N=${1:-1000}
LATENCY=${2:-50}
THROTTLE=${3:-arm}
RUNS=${RUNS:-3}
# RESTORE_ARGS="--runtimes stopped" measures the writes alone (like the
# Python baseline, which starts nothing); by default the restore runs to
# runnable: IR starts (an Azure-SSIS IR takes ~22 minutes on the service,
# scaled by TIME_SCALE) overlap the writes.
RESTORE_ARGS=${RESTORE_ARGS:-}
TIME_SCALE=${TIME_SCALE:-0.001}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v hyperfine >/dev/null || { echo "bench/restore.sh needs hyperfine (Debian: apt-get install hyperfine)" >&2; exit 2; }
WORK=$(mktemp -d /tmp/adfdr-restore-bench-XXXXXX)
trap 'kill "${EMU_PID:-0}" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT

cargo build --release -q -p adfdr -p adf-emulator --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release"
TLS=(--tls-cert "$ROOT/fixtures/tls/server.pem" --tls-key "$ROOT/fixtures/tls/server.key")
"$BIN/adf-emulator" "${TLS[@]}" --generate "$N:$WORK/factory" >/dev/null
SUB=00000000-0000-0000-0000-000000000000
# The backup is read without latency or throttle; both are switched on after it.
"$BIN/adf-emulator" "${TLS[@]}" --seed "$SUB/rg-bench/adf-big=$WORK/factory" \
  --page-size 50 --time-scale "$TIME_SCALE" >"$WORK/emu.out" 2>"$WORK/emu.err" &
EMU_PID=$!
for _ in $(seq 100); do grep -q "ready" "$WORK/emu.out" 2>/dev/null && break; sleep 0.1; done
READY=$(grep ready "$WORK/emu.out")
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$READY"; }
ARM=$(field arm)
export IDENTITY_ENDPOINT=$(field identity_endpoint) IDENTITY_HEADER=$(field identity_header)
mkdir -p "$WORK/weu"
"$BIN/adfdr" key generate --out "$WORK/bg.key" >/dev/null
cat >"$WORK/adfdr.toml" <<TOML
[agent]
state_dir = "$WORK/state"
[auth]
method = "managed-identity"
arm_endpoint = "$ARM"
ca_file = "$ROOT/fixtures/tls/ca.pem"
[[location]]
name = "weu"
url = "file://$WORK/weu"
[[key]]
id = "breakglass"
file = "$WORK/bg.key"
[[factory]]
name = "big"
subscription = "$SUB"
resource_group = "rg-bench"
factory = "adf-big"
TOML
export ADFDR_CONFIG="$WORK/adfdr.toml"
# The generated file shares keep their passwords in the source factory's
# credential store (encryptedCredential): a restore elsewhere gives them.
cat >"$WORK/overrides.toml" <<'TOML'
[[rule]]
kind = "linkedService"
name = "LS_Files_*"
set = { "/properties/typeProperties/password" = { type = "SecureString", value = "" } }
[rule.fill]
"/properties/typeProperties/password/value" = { env = "FILES_PASSWORD" }
TOML
export FILES_PASSWORD=bench
"$BIN/adfdr" backup big >/dev/null
admin() { curl -sS --cacert "$ROOT/fixtures/tls/ca.pem" -X POST -H 'content-type: application/json' -d "$2" "$ARM/_emulator/$1" >/dev/null; }
admin settings "{\"latency_ms\": $LATENCY, \"throttle\": \"$THROTTLE\"}"

# The plan of a restore into an empty factory gives writes and depth.
PLAN=$("$BIN/adfdr" restore latest --factory big --to "$SUB/rg-dr/adf-plan" --plan --json --overrides "$WORK/overrides.toml")
WRITES=$(jq '[(.plan.steps | length), (if .plan.factory.action == "unchanged" then 0 else 1 end), (if .plan.factory.second_write then 1 else 0 end)] | add' <<<"$PLAN")
DEPTH=$(jq '.plan.depth' <<<"$PLAN")
SKIPPED=$(jq '.plan.skipped | length' <<<"$PLAN")
DEPTH_MS=$(( (DEPTH + 1) * LATENCY ))   # the factory first, then the longest chain
THROTTLE_MS=0
if [ "$THROTTLE" = arm ]; then THROTTLE_MS=$(( (WRITES > 200 ? WRITES - 200 : 0) * 100 )); fi
BOUND_MS=$(( DEPTH_MS > THROTTLE_MS ? DEPTH_MS : THROTTLE_MS ))
echo "factory: $N resources -> $WRITES writes, dependency depth $DEPTH, $SKIPPED skipped; latency ${LATENCY} ms, throttle $THROTTLE"
echo "lower bound: max(depth: $DEPTH_MS ms, throttle: $THROTTLE_MS ms) = $BOUND_MS ms"

# Each run restores into a new factory (and waits for the write bucket to refill).
cat >"$WORK/run.sh" <<RUN
#!/usr/bin/env bash
set -e
"$BIN/adfdr" restore latest --factory big --to "$SUB/rg-dr/adf-dr-\$(date +%s%N)" --yes --json --overrides "$WORK/overrides.toml" $RESTORE_ARGS > "$WORK/last.json"
RUN
chmod +x "$WORK/run.sh"
REFILL=0
[ "$THROTTLE" = arm ] && REFILL=21
hyperfine --runs "$RUNS" --prepare "sleep $REFILL" --export-json "$WORK/hf.json" "$WORK/run.sh" >/dev/null
MEDIAN_MS=$(jq '.results[0].median * 1000 | floor' "$WORK/hf.json")
jq -e '.outcome == "restored" and (.applied.failures | length) == 0 and (.mismatches | length) == 0' "$WORK/last.json" >/dev/null \
  || { echo "the last restore did not verify:"; jq '{outcome, failures: .applied.failures, mismatches}' "$WORK/last.json"; exit 1; }
echo "adfdr restore --yes, median of $RUNS: $MEDIAN_MS ms = $(awk "BEGIN {printf \"%.3f\", $MEDIAN_MS / $BOUND_MS}")x the lower bound (verified after each run)"

if [ -n "${COMPARE:-}" ]; then
  [ -x "$ROOT/tools/venv/bin/python" ] || "$ROOT/scripts/setup"
  sleep "$REFILL"
  PY=$(ADFDR_ARM="$ARM" REQUESTS_CA_BUNDLE="$ROOT/fixtures/tls/ca.pem" \
    "$ROOT/tools/venv/bin/python" "$ROOT/bench/python_sequential_restore.py" "$WORK/factory" "$SUB" rg-py adf-py)
  PY_MS=$(jq '.seconds * 1000 | floor' <<<"$PY")
  echo "Python SDK, one resource at a time: $PY_MS ms ($(jq .written <<<"$PY") writes) = $(awk "BEGIN {printf \"%.1f\", $PY_MS / $MEDIAN_MS}")x adfdr's median"
fi
