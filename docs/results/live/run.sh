#!/usr/bin/env bash
# Issue 34's live study, from the repository root:  bash docs/results/live/run.sh [SCRATCH]
# Two small CNNs trained alike on the bundled example's training data (hiPSC vs somatic, 60
# simulated nuclei per class, 12 000 Pol II localizations, difficulty 0, seed 11), one without
# and one with --augment-localizations default; both replayed on 200 held-out simulated nuclei
# (seed 123) every 2 % of their frames (examples/live_accuracy.py: accuracy against the fraction
# of frames, the stop rules fixed in advance); then the shift suite for both (shift_both.py;
# with AINU_SHIFT_ACQUISITION set, the camera -> Picasso chain too). ~20 min on 2 cores.
set -euo pipefail
HERE=docs/results/live
RES=${1:-$(mktemp -d)}
AE=${AE:-.venv/bin/ainu-engine}
PY=${PY:-.venv/bin/python}
$AE simulate "$RES/train" --classes hiPSC,somatic --n-per-class 60 --channels polII \
    --locs-per-channel 12000 --difficulty 0 --seed 11 --force > /dev/null
for variant in without with; do
    extra=()
    if [ "$variant" = with ]; then extra=(--augment-localizations default); fi
    start=$(date +%s)
    $AE train "$RES/train/manifest.csv" --out "$RES/run-$variant" --arch small_cnn \
        --image-size 64 --pixel-nm 100 --sigma-nm 100 --scaling percentile --epochs 60 \
        --patience 20 --batch-size 8 --lr 0.003 --folds 0 --seed 0 --device cpu --threads 2 \
        --cache "$RES/cache" --force --json "${extra[@]}" > "$RES/train-$variant.jsonl"
    echo "$variant: trained in $(( $(date +%s) - start )) s"
    $AE export "$RES/run-$variant/best.pt" --out "$RES/$variant.onnx" --force > /dev/null
    mkdir -p "$HERE/$variant"
    cp "$RES/run-$variant/metrics.json" "$HERE/$variant/metrics.json"
done
$AE simulate "$RES/data" --classes hiPSC,somatic --n-per-class 100 --channels polII \
    --locs-per-channel 12000 --difficulty 0 --seed 123 --format insight3 --force > /dev/null
for variant in without with; do
    $PY examples/live_accuracy.py "$RES/data/manifest.csv" --model "$RES/$variant.onnx" \
        --out "$HERE/$variant" --step 0.02
done
$PY "$HERE/shift_both.py" "$RES/without.onnx" "$RES/with.onnx" "$HERE"
