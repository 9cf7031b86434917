#!/usr/bin/env bash
# Leave-one-group-out on simulated nuclei: 5 slides shared by both classes, each with its own
# batch effect (localization count and precision); each slide in turn is the test set.
# Run from the repository root:  bash docs/results/leave-one-group-out/run.sh [SCRATCH]
set -euo pipefail
HERE=docs/results/leave-one-group-out
TMP=${1:-$(mktemp -d)}
AE=${AE:-.venv/bin/ainu-engine}
$AE simulate "$TMP/data" --classes hiPSC,somatic --n-per-class 40 --channels polII \
    --locs-per-channel 30000 --difficulty 0 --slides 5 --shared-slides --seed 21 --force
$AE train "$TMP/data/manifest.csv" --out "$TMP/logo" --leave-one-group-out --arch small_cnn \
    --image-size 64 --pixel-nm 100 --sigma-nm 100 --scaling percentile --epochs 150 \
    --patience 25 --folds 0 --seed 0 --device cpu --cache "$TMP/cache" --force --json \
    > "$TMP/logo.jsonl"
cp "$TMP/logo/leave_one_group_out.json" "$TMP/logo/leave_one_group_out.csv" "$HERE/"
for g in "$TMP"/logo/slide*/; do
    name=$(basename "$g")
    mkdir -p "$HERE/$name"
    cp "$g/metrics.json" "$g/confusion.png" "$HERE/$name/"
done
# the baseline: the same model and data, one group-disjoint 80/20 split (train's default)
$AE train "$TMP/data/manifest.csv" --out "$TMP/split" --arch small_cnn --image-size 64 \
    --pixel-nm 100 --sigma-nm 100 --scaling percentile --epochs 150 --patience 25 --folds 0 \
    --seed 0 --device cpu --cache "$TMP/cache" --force --json > "$TMP/split.jsonl"
mkdir -p "$HERE/baseline-split"
cp "$TMP/split/metrics.json" "$TMP/split/confusion.png" "$HERE/baseline-split/"
