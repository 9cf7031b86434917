#!/usr/bin/env bash
# Calibrating the simulator's difficulty with the whole protocol: for each level, 120 simulated
# nuclei, a group-disjoint 80/20 split, 5-fold CV on the 96 training nuclei, the final model on
# the 24 withheld ones; a small CNN at 64 px and DenseNet-121 at 128 px (ARCHS to change).
# Early stopping on the validation balanced accuracy (ties: lower loss), watched from epoch
# MIN_EPOCHS, patience PATIENCE, learning-rate warm-up WARMUP epochs.
# Run from the repository root:  bash docs/results/calibration/run.sh SCRATCH DIFFICULTY...
set -euo pipefail
HERE=docs/results/calibration
TMP=$1
shift
AE=${AE:-.venv/bin/ainu-engine}
PATIENCE=${PATIENCE:-15}
MIN_EPOCHS=${MIN_EPOCHS:-10}
WARMUP=${WARMUP:-3}
EPOCHS=${EPOCHS:-80}
SEED=${SEED:-51}
TABLE=${TABLE:-cv.jsonl}
read -r -a ARCHS <<< "${ARCHS:-small_cnn:64 densenet121:128}"
mkdir -p "$HERE"
for d in "$@"; do
    data="$TMP/data-$d-seed$SEED"
    if [ ! -f "$data/manifest.csv" ]; then
        $AE simulate "$data" --classes hiPSC,somatic --n-per-class 60 --channels polII \
            --locs-per-channel 30000 --difficulty "$d" --seed "$SEED" --force > /dev/null
    fi
    for a in "${ARCHS[@]}"; do
        arch=${a%%:*}
        size=${a##*:}
        name="$arch-s$size-d$d-seed$SEED"
        start=$(date +%s)
        $AE train "$data/manifest.csv" --out "$TMP/$name" --arch "$arch" --image-size "$size" \
            --pixel-nm 100 --sigma-nm 100 --scaling percentile --epochs "$EPOCHS" \
            --patience "$PATIENCE" --monitor balanced_accuracy --min-epochs "$MIN_EPOCHS" \
            --warmup-epochs "$WARMUP" --folds 5 --seed 0 --device cpu --threads 2 \
            --cache "$TMP/cache" --force --json > "$TMP/$name.jsonl"
        end=$(date +%s)
        mkdir -p "$HERE/$name"
        cp "$TMP/$name/metrics.json" "$TMP/$name/cv.json" "$TMP/$name/confusion.png" \
            "$TMP/$name/roc.png" "$TMP/$name/learning_curves.png" "$HERE/$name/"
        python3 - "$TMP/$name" "$((end - start))" "$arch" "$size" "$d" "$SEED" \
            >> "$HERE/$TABLE" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
m = json.loads((run / "metrics.json").read_text())
cv = json.loads((run / "cv.json").read_text())
print(json.dumps({"arch": sys.argv[3], "image_size": int(sys.argv[4]),
                  "difficulty": float(sys.argv[5]), "data_seed": int(sys.argv[6]),
                  "cv": cv, "test": m, "wall_s": int(sys.argv[2])}))
PY
    done
done
