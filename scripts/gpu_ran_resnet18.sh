#!/usr/bin/env bash
# The paper's RAN-ResNet18 at 112 px on one CUDA GPU, in one go (issue 11's GPU check):
#   1. unpack FERPlus from the pack carried inside the repository (packs/ferplus48.npz, made on the machine that has
#      the data: python -m ran_core.data.pack pack ../shared/data/ferplus packs/ferplus48.npz);
#   2. ran-core bench: RAN-ResNet18 training samples/s with all regions in one backbone call against the official
#      per-region loop (and the region-batching check at inference), bf16/fp16 autocast;
#   3. ran-core train: RAN-ResNet18, 112 px, AMP, from scratch (no MS-Celeb weights on that machine), within a time
#      budget; the best epoch on Valid is kept;
#   4. ran-core eval: FERPlus Valid accuracy (majority protocol) and the confusion matrix.
# Everything worth keeping is copied to $OUT (at most 8 files: what the device tool brings back).
#
# On the device machine:   bash scripts/gpu_ran_resnet18.sh            (about 8 minutes on an H200)
# Smoke run on a CPU:      DEVICE=cpu SIZE=32 EPOCHS=1 TRAIN_ARGS="--max-samples 32" EVAL_ARGS="--max-samples 32" \
#                          BENCH_ARGS=--quick OUT=/tmp/gpu-out bash scripts/gpu_ran_resnet18.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PACK=${PACK:-packs/ferplus48.npz}
OUT=${OUT:-runs/gpu-out}
WORK=${WORK:-$(mktemp -d /tmp/ran-gpu.XXXXXX)}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-112}
EPOCHS=${EPOCHS:-12}
BATCH=${BATCH:-256}
AMP=${AMP:-bf16}
TRAIN_BUDGET_S=${TRAIN_BUDGET_S:-330}
BENCH_ARGS=${BENCH_ARGS:-}
TRAIN_ARGS=${TRAIN_ARGS:-}
EVAL_ARGS=${EVAL_ARGS:-}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUT"
log() { echo "[$(date +%T)] $*"; }

if [ ! -f "$PACK" ]; then
  echo "error: no FERPlus pack at $PACK; make it where the data is:" >&2
  echo "  python -m ran_core.data.pack pack ../shared/data/ferplus $PACK" >&2
  exit 2
fi
log "unpacking $PACK into $WORK/ferplus"
$PY -m ran_core.data.pack unpack "$PACK" "$WORK/ferplus" --no-progress

log "bench: RAN-ResNet18 at $SIZE px on $DEVICE, batched regions vs the per-region loop"
# shellcheck disable=SC2086
$PY -m ran_core.cli bench --device "$DEVICE" --model ran_resnet18 --baseline baseline_resnet18 --input-size "$SIZE" \
  --sections regions training --no-progress --json "$OUT/bench.json" $BENCH_ARGS | tee "$OUT/bench.txt"

log "train: RAN-ResNet18, $SIZE px, $EPOCHS epochs at most, ${TRAIN_BUDGET_S}s budget, AMP $AMP"
status=0
# shellcheck disable=SC2086
timeout "$TRAIN_BUDGET_S" $PY -m ran_core.cli train --dataset ferplus --data-root "$WORK/ferplus" --model ran \
  --backbone resnet18 --input-size "$SIZE" --device "$DEVICE" --amp "$AMP" --recipe modern --augment strong \
  --erase-fill mixed --label-mode probability --epochs "$EPOCHS" --batch-size "$BATCH" --lr 0.002 \
  --out "$WORK/run" $TRAIN_ARGS > "$WORK/train.log" 2>&1 || status=$?
grep -E "^(INFO|WARNING|ERROR|best|Traceback)|Error" "$WORK/train.log" > "$OUT/train.log" || true
cp "$WORK/run/metrics.csv" "$OUT/metrics.csv" 2>/dev/null || true
if [ "$status" = 124 ]; then
  log "training reached its time budget; evaluating the best epoch so far"
elif [ "$status" != 0 ]; then
  tail -n 30 "$WORK/train.log" >&2
  echo "error: training failed (exit $status); its log is in $OUT/train.log" >&2
  exit "$status"
fi
[ -f "$WORK/run/best/config.json" ] || { echo "error: no epoch finished within the budget" >&2; exit 3; }

log "eval: FERPlus Valid"
# shellcheck disable=SC2086
$PY -m ran_core.cli eval --checkpoint "$WORK/run/best" --dataset ferplus --data-root "$WORK/ferplus" --split valid \
  --device "$DEVICE" --out "$WORK/eval" $EVAL_ARGS 2>&1 | grep -v "/s\]" | tee "$OUT/eval.txt"
cp "$WORK/eval"/confusion*.png "$OUT/" 2>/dev/null || true
log "done: $OUT"
