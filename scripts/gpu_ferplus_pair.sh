#!/usr/bin/env bash
# The bundled pair's recipe at the published small CNN's schedule length, on one CUDA GPU, in one go (issue 11).
# On the 2-core CPU a 220-epoch backbone takes about 3.5 hours and every RAN epoch 6-10 minutes; a GPU runs the same
# `ran-core train` commands in minutes:
#   1. unpack FERPlus from the pack carried inside the repository (packs/ferplus48.npz, made where the data is:
#      python -m ran_core.data.pack pack ../shared/data/ferplus packs/ferplus48.npz);
#   2. probe: two short epochs of the baseline and of RAN give their samples/s, and from them as many epochs as fit
#      each stage's time budget (at most BASE_EPOCHS / RAN_EPOCHS, so a full cosine schedule, never one cut short);
#   3. stage 1: the whole-face baseline on compact_wide from scratch (step 1 of the README's recipe, longer),
#      validated with flip TTA like everything after it;
#   4. stage 2, in parallel: RAN warm-started from it at two learning rates (step 2's 1e-3, and 3e-4 with a moving
#      average of the weights) and the baseline given the same epochs (its twin), all validated with flip TTA;
#   5. every candidate's best epoch on Valid (flip TTA) in one table; the best RAN and the best baseline come back
#      as saved models (config.json + model.safetensors), ready for `ran-core calibrate`.
# At most 8 files come back from $OUT: summary.txt, stage.log, and the two models in $OUT/ran and $OUT/baseline.
#
# On the device machine:   bash scripts/gpu_ferplus_pair.sh                 (about 9 minutes)
# Smoke run on a CPU:      DEVICE=cpu BASE_EPOCHS=2 RAN_EPOCHS=1 TRAIN_ARGS="--max-samples 16" OUT=/tmp/pair \
#                          bash scripts/gpu_ferplus_pair.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PACK=${PACK:-packs/ferplus48.npz}
OUT=${OUT:-runs/gpu-pair}
WORK=${WORK:-$(mktemp -d /tmp/ran-pair.XXXXXX)}
DEVICE=${DEVICE:-cuda}
AMP=${AMP:-bf16}
BASE_EPOCHS=${BASE_EPOCHS:-220}   # the published small CNN's length; 220 gave 87.68 % plain on the CPU
RAN_EPOCHS=${RAN_EPOCHS:-30}
MIN_EPOCHS=${MIN_EPOCHS:-1}
STAGE1_S=${STAGE1_S:-270}         # time budgets in seconds: the epochs are chosen to fit them
STAGE2_S=${STAGE2_S:-150}
PROBE_SAMPLES=${PROBE_SAMPLES:-8192}
TRAIN_ARGS=${TRAIN_ARGS:-}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUT"
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/stage.log"; }

if [ ! -f "$PACK" ]; then
  echo "error: no FERPlus pack at $PACK; make it where the data is:" >&2
  echo "  python -m ran_core.data.pack pack ../shared/data/ferplus $PACK" >&2
  exit 2
fi
log "unpacking $PACK into $WORK/ferplus"
$PY -m ran_core.data.pack unpack "$PACK" "$WORK/ferplus" --no-progress
D=$WORK/ferplus
export RAN_CORE_CACHE=$WORK/cache

# The README's recipe (steps 1 and 2) with the device, AMP and any extra arguments of this run.
common="--dataset ferplus --data-root $D --backbone compact_wide --recipe modern --augment strong --erase-fill mixed
  --label-mode probability --drop-rate 0.2 --device $DEVICE --amp $AMP $TRAIN_ARGS"
regions="--region-names face top_left top_right center_down center_90 bottom"
train() {  # train NAME SECONDS ARGS...: one run in $WORK/NAME, its log in $WORK/NAME.log, cut at SECONDS
  local name=$1 budget=$2
  shift 2
  # shellcheck disable=SC2086
  timeout "$budget" $PY -m ran_core.cli train $common "$@" --out "$WORK/$name" > "$WORK/$name.log" 2>&1 || {
    local status=$?
    if [ "$status" = 124 ]; then
      log "$name reached its ${budget}s budget; its best epoch so far is kept"
    else
      tail -n 20 "$WORK/$name.log" | tee -a "$OUT/stage.log" >&2
      log "$name failed (exit $status)"
    fi
  }
}
fit_epochs() {  # fit_epochs PROBE_RUN SECONDS MAX SHARE: epochs of the full split that fit SECONDS at SHARE of the speed
  $PY - "$WORK/$1/metrics.csv" "$2" "$3" "$4" "$MIN_EPOCHS" "$D" "$TRAIN_ARGS" <<'EOF'
import csv, sys
from ran_core.data import open_dataset
rows = list(csv.DictReader(open(sys.argv[1])))
budget, most, share, least = float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
args = sys.argv[7].split()
cap = int(args[args.index("--max-samples") + 1]) if "--max-samples" in args else None
n = len(open_dataset("ferplus", sys.argv[6], "train", "probability", max_samples=cap).samples)
rate = float(rows[-1]["samples_per_s"]) * share  # the last probe epoch: warm-up excluded
per_epoch = n / rate + float(rows[-1]["epoch_time_s"]) * 0.1  # + validation, roughly a tenth of a probe epoch
print(max(least, min(most, int(0.9 * budget / per_epoch))))
EOF
}

log "probe: samples/s of the baseline (batch 128) and of RAN (batch 64) on $DEVICE"
probe="--epochs 2 --lr 0.001 --max-samples $PROBE_SAMPLES"
# shellcheck disable=SC2086
train probe-base 300 --model baseline --batch-size 128 $probe &
# shellcheck disable=SC2086
train probe-ran 300 --model ran $regions --batch-size 64 $probe &
wait
for run in probe-base probe-ran; do
  [ -s "$WORK/$run/metrics.csv" ] || { log "error: the $run run finished no epoch (its log: $OUT/stage.log)"; exit 3; }
done
base_epochs=$(fit_epochs probe-base "$STAGE1_S" "$BASE_EPOCHS" 1.0)
ran_epochs=$(fit_epochs probe-ran "$STAGE2_S" "$RAN_EPOCHS" 0.5)  # two RAN runs and a baseline share the GPU
log "stage 1: baseline, compact_wide, $base_epochs epoch(s) from scratch, flip TTA (budget ${STAGE1_S}s)"
train base1 $((STAGE1_S + 60)) --model baseline --epochs "$base_epochs" --batch-size 128 --lr 0.003 --seed 1 \
  --tta flip
[ -f "$WORK/base1/best/config.json" ] || { log "error: stage 1 finished no epoch"; exit 3; }

log "stage 2: RAN from it at lr 1e-3 and 3e-4 (+ EMA), and its baseline twin, $ran_epochs epoch(s) each, flip TTA"
warm="--init-from $WORK/base1/best --epochs $ran_epochs --batch-size 64 --tta flip --seed 0"
# shellcheck disable=SC2086
train ran-lr1e-3 $((STAGE2_S + 60)) --model ran $regions $warm --lr 0.001 &
# shellcheck disable=SC2086
train ran-lr3e-4 $((STAGE2_S + 60)) --model ran $regions $warm --lr 0.0003 --ema 0.998 &
# shellcheck disable=SC2086
train base2 $((STAGE2_S + 60)) --model baseline $warm --lr 0.001 &
wait

log "Valid accuracy of each run's best epoch, flip TTA"
$PY - "$WORK" "$OUT" <<'EOF' | tee "$OUT/summary.txt"
import json, shutil, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
best = {}
print(f"{'run':<12} {'model':<9} {'epochs':>6} {'best epoch':>10} {'Valid acc':>9} {'mean class':>10} {'samples/s':>9}")
for name in ("base1", "base2", "ran-lr1e-3", "ran-lr3e-4"):
    summary, config = work / name / "summary.json", work / name / "best" / "config.json"
    if not summary.is_file() or not config.is_file():
        print(f"{name:<12} (no finished epoch)")
        continue
    s = json.loads(summary.read_text())
    b = s["best"]
    model = "ran" if name.startswith("ran") else "baseline"
    print(f"{name:<12} {model:<9} {s['epochs_done']:>6} {b['epoch']:>10} {b['val_acc']:>9.2f} {b['val_mca']:>10.2f} "
          f"{b['samples_per_s']:>9.0f}")
    if model not in best or b["val_acc"] > best[model][1]:
        best[model] = (name, b["val_acc"])
for model, (name, acc) in best.items():
    shutil.copytree(work / name / "best", out / model, dirs_exist_ok=True)
    print(f"brought back as {model}/: {name} ({acc:.2f} %)")
EOF
log "done: $OUT"
