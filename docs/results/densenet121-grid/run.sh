#!/usr/bin/env bash
# A small grid for a DenseNet-121 that learns on this CPU machine: image size and learning rate,
# each point one training (80/20 group-disjoint split, early stopping), every point recorded.
# Run from the repository root:  bash docs/results/densenet121-grid/run.sh [SCRATCH] [POINTS...]
# A point is SIZE:LR:DIFFICULTY, e.g. 64:0.001:0 (default: the grid below).
set -euo pipefail
HERE=docs/results/densenet121-grid
TMP=${1:-$(mktemp -d)}
shift || true
AE=${AE:-.venv/bin/ainu-engine}
POINTS=("$@")
if [ ${#POINTS[@]} -eq 0 ]; then
    POINTS=(64:0.001:0 64:0.003:0 128:0.001:0)
fi
mkdir -p "$HERE"
for point in "${POINTS[@]}"; do
    IFS=: read -r size lr diff <<< "$point"
    data="$TMP/data-d$diff"
    if [ ! -f "$data/manifest.csv" ]; then
        $AE simulate "$data" --classes hiPSC,somatic --n-per-class 60 --channels polII \
            --locs-per-channel 30000 --difficulty "$diff" --seed 41 --force > /dev/null
    fi
    name="s${size}-lr${lr}-d${diff}"
    start=$(date +%s)
    $AE train "$data/manifest.csv" --out "$TMP/$name" --arch densenet121 --image-size "$size" \
        --pixel-nm 100 --sigma-nm 100 --scaling percentile --epochs 60 --patience 10 \
        --folds 0 --lr "$lr" --batch-size 16 --seed 0 --device cpu --threads 2 \
        --cache "$TMP/cache" --force --json > "$TMP/$name.jsonl"
    end=$(date +%s)
    mkdir -p "$HERE/$name"
    cp "$TMP/$name/metrics.json" "$TMP/$name/learning_curves.png" "$TMP/$name/confusion.png" \
        "$HERE/$name/"
    python3 - "$TMP/$name.jsonl" "$((end - start))" "$point" >> "$HERE/grid.jsonl" <<'PY'
import json, sys
rec = json.loads(open(sys.argv[1]).read().splitlines()[-1])
size, lr, diff = sys.argv[3].split(":")
print(json.dumps({"image_size": int(size), "lr": float(lr), "difficulty": float(diff),
                  "test_accuracy": rec["test_accuracy"],
                  "test_accuracy_ci": rec["test_accuracy_ci_normal"], "test_n": rec["test_n"],
                  "wall_s": int(sys.argv[2])}))
PY
done
