#!/usr/bin/env bash
# The grid's best point through the whole protocol: 5-fold CV on the training part, then the
# final model on the withheld test set. Run after run.sh (it reuses its data and cache):
#   bash docs/results/densenet121-grid/cv.sh SCRATCH [SIZE] [LR] [DIFFICULTY]
set -euo pipefail
HERE=docs/results/densenet121-grid
TMP=$1
SIZE=${2:-64}
LR=${3:-0.001}
DIFF=${4:-0}
AE=${AE:-.venv/bin/ainu-engine}
name="cv-s${SIZE}-lr${LR}-d${DIFF}"
$AE train "$TMP/data-d$DIFF/manifest.csv" --out "$TMP/$name" --arch densenet121 \
    --image-size "$SIZE" --pixel-nm 100 --sigma-nm 100 --scaling percentile --epochs 60 \
    --patience 10 --folds 5 --lr "$LR" --batch-size 16 --seed 0 --device cpu --threads 2 \
    --cache "$TMP/cache" --force --json > "$TMP/$name.jsonl"
mkdir -p "$HERE/$name"
cp "$TMP/$name/metrics.json" "$TMP/$name/cv.json" "$TMP/$name/confusion.png" \
    "$TMP/$name/roc.png" "$TMP/$name/learning_curves.png" "$HERE/$name/"
tail -n 1 "$TMP/$name.jsonl" > "$HERE/$name/train.json"
