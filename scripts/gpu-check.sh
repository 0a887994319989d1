#!/usr/bin/env bash
# The GPU check of u2ad: one command on a machine with an NVIDIA GPU and no network, done in under
# 9 minutes, writing 3 files (summary.md, gpu-check.log, results.tar.gz) to $OUT.
#
# It measures, on the same GPU in the same run:
#   1. u2ad's training throughput (slices/s) at batch 10 and 64, paper model (configs/paper.toml);
#   2. the same for the plain-torch port of the reference (scripts/torch_step_timing.py), when
#      torch is installed there (else the summary says so);
#   3. Monte-Carlo inference time per slice (`u2ad detect`, paper model, K = 10);
#   4. a short pretrain + adapt + detect + evaluate of the demo cohort (`u2ad demo`).
#
# Build the folder it reads (git-ignored, about 60 MB; the cuda build needs no GPU and no network,
# about 25 minutes on 2 cores):
#   cargo build --release --features cuda -p u2ad-cli --target-dir target/cuda
#   scripts/gpu-check.sh --pack tmp/gpu target/cuda/release/u2ad
# then, on the GPU machine:          bash tmp/gpu/gpu-check.sh
# and a dry run on the CPU here:     cargo build --release -p u2ad-cli &&
#   scripts/gpu-check.sh --pack tmp/gpu-cpu target/release/u2ad && DEVICE=cpu QUICK=1 bash tmp/gpu-cpu/gpu-check.sh
# (QUICK=1: a few steps of each part, the demo-sized model; the same commands otherwise.)
set -uo pipefail

if [ "${1:-}" = "--pack" ]; then
  dir=${2:?usage: $0 --pack DIR U2AD_BINARY}; bin=${3:?usage: $0 --pack DIR U2AD_BINARY}
  repo=$(cd "$(dirname "$0")/.." && pwd)
  data=${U2AD_DATA:-$repo/../shared/data}
  [ -d "$data/spine-t2" ] || { echo "$data/spine-t2: not found (set U2AD_DATA)" >&2; exit 1; }
  rm -rf "$dir" && mkdir -p "$dir/data" "$dir/configs" || exit 1
  strip -o "$dir/u2ad" "$bin" 2>/dev/null || cp "$bin" "$dir/u2ad"
  cp -r "$data/spine-t2" "$dir/data/" && cp "$data/SOURCES.tsv" "$dir/data/" 2>/dev/null
  cp "$repo"/configs/paper.toml "$repo"/configs/demo.toml "$repo"/scripts/gpu-configs/quick.toml "$dir/configs/"
  cp "$repo"/scripts/gpu-check.sh "$repo"/scripts/torch_step_timing.py "$repo"/scripts/make_parity_fixture.py "$dir/"
  du -sh "$dir"
  exit 0
fi

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$PWD/gpu-check-out}; mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}; QUICK=${QUICK:-0}
U=$HERE/u2ad; chmod +x "$U"
export U2AD_DATA=$HERE/data
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
LOG=$OUT/gpu-check.log; : > "$LOG"
START=$(date +%s); DEADLINE=$((START + 520))
SUMMARY=$W/summary.md

say() { echo "$*" | tee -a "$LOG"; }
# Runs a step with at most $1 seconds, never past the deadline; its output goes to the log.
step() {
  local limit=$1; shift
  local left=$((DEADLINE - $(date +%s)))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -le 5 ]; then say "skipped (no time left): $*"; return 124; fi
  say "\$ $* (at most ${limit}s)"
  local t0; t0=$(date +%s.%N)
  timeout "$limit" "$@" >> "$LOG" 2>&1; local rc=$?
  STEP_SECONDS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  say "rc $rc after ${STEP_SECONDS}s"
  return $rc
}
# Slices per second of a finished pretraining run: epochs 2..N of losses.csv (seconds per epoch;
# the first warms up).
throughput() {
  awk -F, -v slices="$2" 'NR > 2 { seconds += $7; n++ } END {
    if (n > 0 && seconds > 0) printf "%.1f", slices * n / seconds; else print "n/a" }' "$1/losses.csv" 2>/dev/null || echo n/a
}

if [ "$QUICK" = 1 ]; then
  MODEL="quick model (dry run)"; CONFIG=$HERE/configs/quick.toml; EPOCHS10=3; EPOCHS64=3; DEMO_CONFIG=(--config "$HERE/configs/quick.toml"); TORCH_STEPS=2
else
  MODEL="paper model"; CONFIG=$HERE/configs/paper.toml; EPOCHS10=8; EPOCHS64=16; DEMO_CONFIG=(); TORCH_STEPS=20
fi

{
  echo "# u2ad GPU check ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo '```'
  if command -v nvidia-smi > /dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -3; else echo "no nvidia-smi"; fi
  "$U" --version 2>&1
  echo "device $DEVICE, quick $QUICK"
  echo '```'
  echo
} > "$SUMMARY"

# The healthy cohort (5 subjects).
step 60 "$U" -q prepare "$HERE/data/spine-t2" -o "$W/healthy.u2ds"
SLICES=$(sed -n 's/.*"Samples": *\([0-9]*\).*/\1/p' "$W/healthy.json" 2>/dev/null); SLICES=${SLICES:-0}

# 1. u2ad training throughput at batch 10 and 64.
step 90 "$U" -q pretrain "$W/healthy.u2ds" --device "$DEVICE" --out "$W/b10" --config "$CONFIG" --batch-size 10 --epochs "$EPOCHS10"
T10=$(throughput "$W/b10" "$SLICES")
step 90 "$U" -q pretrain "$W/healthy.u2ds" --device "$DEVICE" --out "$W/b64" --config "$CONFIG" --batch-size 64 --epochs "$EPOCHS64"
T64=$(throughput "$W/b64" "$SLICES")

# 2. The plain-torch reference on the same device.
TORCH="torch not installed here"
if python3 -c 'import torch, numpy' 2>/dev/null; then
  step 90 python3 "$HERE/torch_step_timing.py" --device "$DEVICE" --batch 10 --batch 64 --steps "$TORCH_STEPS"
  TORCH=$(grep '^torch batch' "$LOG" | tr '\n' ';')
  TORCH=${TORCH:-"did not finish (see gpu-check.log)"}
fi

# 3. Monte-Carlo inference (K = 10) of the healthy cohort with the batch-10 model.
MC="n/a"
if [ -f "$W/b10/model.safetensors" ]; then
  for batch in 8 32; do
    if step 90 "$U" -q detect "$W/healthy.u2ds" --model "$W/b10/model.safetensors" --device "$DEVICE" --out "$W/mc$batch" --mc-batch "$batch" --pooling pooled; then
      MC="$MC; --mc-batch $batch: $(awk -v s="$STEP_SECONDS" -v n="$SLICES" 'BEGIN { printf "%.1f", (n > 0 ? 1000 * s / n : 0) }') ms/slice (whole detect, I/O and figures included)"
    fi
  done
fi

# 4. The demo: pretrain, synth, adapt, detect, baseline, evaluate.
DEMO="did not finish"
step 240 "$U" -q demo --device "$DEVICE" --out "$W/demo" "${DEMO_CONFIG[@]}" && DEMO="${STEP_SECONDS}s"

{
  echo "| what | result |"
  echo "|---|---|"
  echo "| healthy slices | $SLICES |"
  echo "| u2ad training, $MODEL, batch 10 | $T10 slices/s |"
  echo "| u2ad training, $MODEL, batch 64 | $T64 slices/s |"
  echo "| plain-torch reference | $TORCH |"
  echo "| Monte-Carlo inference, K = 10 | ${MC#n/a; } |"
  echo "| demo (pretrain + synth + adapt + detect + evaluate) | $DEMO |"
  echo "| whole check | $(( $(date +%s) - START ))s |"
  echo
  [ -f "$W/demo/evaluation/evaluation.md" ] && sed -n '1,40p' "$W/demo/evaluation/evaluation.md"
} >> "$SUMMARY"
cp "$SUMMARY" "$OUT/summary.md"
( cd "$W" && tar czf "$OUT/results.tar.gz" --ignore-failed-read summary.md b10/losses.csv b64/losses.csv \
    b10/config.toml demo/evaluation demo/report.json mc8/levels.csv 2>/dev/null )
cat "$OUT/summary.md"
