#!/usr/bin/env bash
# Difficulty -> accuracy: the simulator's class difference scaled by 1 - difficulty, a small CNN
# and DenseNet-121 (64 px; IMAGE_SIZE, ARCHS, PATIENCE, EPOCHS, TABLE to change) trained on
# each, one group-disjoint 80/20 split each.
# Run from the repository root:  bash docs/results/difficulty/run.sh [SCRATCH] [DIFFICULTIES...]
set -euo pipefail
HERE=docs/results/difficulty
TMP=${1:-$(mktemp -d)}
shift || true
AE=${AE:-.venv/bin/ainu-engine}
PATIENCE=${PATIENCE:-10}  # early stopping: epochs without a lower validation loss
EPOCHS=${EPOCHS:-60}
TABLE=${TABLE:-table.jsonl}
SIZE=${IMAGE_SIZE:-64}
read -r -a ARCHS <<< "${ARCHS:-small_cnn densenet121}"
LEVELS=("$@")
if [ ${#LEVELS[@]} -eq 0 ]; then
    LEVELS=(0 0.25 0.5 0.75)
fi
mkdir -p "$HERE"
for d in "${LEVELS[@]}"; do
    if [ ! -f "$TMP/data-$d/manifest.csv" ]; then
        $AE simulate "$TMP/data-$d" --classes hiPSC,somatic --n-per-class 60 --channels polII \
            --locs-per-channel 30000 --difficulty "$d" --seed 51 --force > /dev/null
    fi
    for arch in "${ARCHS[@]}"; do
        start=$(date +%s)
        $AE train "$TMP/data-$d/manifest.csv" --out "$TMP/$arch-$d-p$PATIENCE-s$SIZE" --arch "$arch" \
            --image-size "$SIZE" --pixel-nm 100 --sigma-nm 100 --scaling percentile \
            --epochs "$EPOCHS" --patience "$PATIENCE" --folds 0 --seed 0 --device cpu --threads 2 --cache "$TMP/cache" \
            --force --json > "$TMP/$arch-$d-p$PATIENCE-s$SIZE.jsonl"
        end=$(date +%s)
        python3 - "$TMP/$arch-$d-p$PATIENCE-s$SIZE.jsonl" "$((end - start))" "$arch" "$d" "$PATIENCE" \
            "$EPOCHS" "$SIZE" \
            >> "$HERE/$TABLE" <<'PY'
import json, sys
rec = json.loads(open(sys.argv[1]).read().splitlines()[-1])
print(json.dumps({"arch": sys.argv[3], "difficulty": float(sys.argv[4]),
                  "image_size": int(sys.argv[7]),
                  "patience": int(sys.argv[5]), "epochs": int(sys.argv[6]),
                  "test_accuracy": rec["test_accuracy"],
                  "test_accuracy_ci": rec["test_accuracy_ci_normal"], "test_n": rec["test_n"],
                  "wall_s": int(sys.argv[2])}))
PY
    done
done
