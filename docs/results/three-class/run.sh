#!/usr/bin/env bash
# Three classes (the paper's Fig. 3d-h): mock vs 1 hpi vs 3 hpi HSV-1 infection, on the DNA
# channel of simulated nuclei. Run from the repository root:
#   bash docs/results/three-class/run.sh [SCRATCH]
set -euo pipefail
HERE=docs/results/three-class
TMP=${1:-$(mktemp -d)}
AE=${AE:-.venv/bin/ainu-engine}
$AE simulate "$TMP/data" --classes mock,1hpi,3hpi --n-per-class 80 --channels dna \
    --locs-per-channel 30000 --difficulty 0 --seed 31 --force
$AE train "$TMP/data/manifest.csv" --out "$TMP/run" --arch small_cnn --image-size 64 \
    --pixel-nm 100 --sigma-nm 100 --scaling percentile --epochs 150 --patience 25 --folds 0 \
    --seed 0 --device cpu --cache "$TMP/cache" --force --json > "$TMP/train.jsonl"
cp "$TMP/run/metrics.json" "$TMP/run/confusion.png" "$TMP/run/roc.png" "$TMP/run/pr.png" \
    "$TMP/run/learning_curves.png" "$TMP/run/predictions.csv" "$HERE/"
tail -n 1 "$TMP/train.jsonl" > "$HERE/train.json"
