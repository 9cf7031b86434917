#!/usr/bin/env bash
# INT8 on a *trained* DenseNet-121: does the quantized model make the float model's calls?
# Trains the 128 px DenseNet-121 of ../densenet121-grid (the point that learned: 24/24 on its
# withheld slides), exports it in fp32 and in int8 (percentile calibration; u8 activations, the
# CPU's fast form; s8, TensorRT's form; and, by variants.py, minmax and entropy calibration and
# the batch norms left in float32),
# then screens 240 nuclei simulated with another seed (slides never seen) with each model and
# compares the calls, the probabilities and the speed. The training (about 3 min) is kept in
# SCRATCH and not redone.
# Run from the repository root:  bash docs/results/int8-trained/run.sh [SCRATCH]
set -euo pipefail
HERE=docs/results/int8-trained
TMP=${1:-$(mktemp -d)}
AE=${AE:-.venv/bin/ainu-engine}
PY=${PY:-.venv/bin/python}
echo "scratch: $TMP"
start=$(date +%s)
if [ ! -f "$TMP/data/manifest.csv" ]; then
    $AE simulate "$TMP/data" --classes hiPSC,somatic --n-per-class 60 --channels polII \
        --locs-per-channel 30000 --difficulty 0 --seed 41 --force > /dev/null
fi
if [ ! -f "$TMP/run/best.pt" ]; then
    $AE train "$TMP/data/manifest.csv" --out "$TMP/run" --arch densenet121 --image-size 128 \
        --pixel-nm 100 --sigma-nm 100 --scaling percentile --epochs 60 --patience 10 \
        --folds 0 --lr 0.001 --batch-size 16 --seed 0 --device cpu --threads 2 \
        --cache "$TMP/cache" --force > "$TMP/train.log" 2>&1
    echo $(($(date +%s) - start)) > "$TMP/train_seconds"  # simulate + train
fi
$AE export "$TMP/run/best.pt" --out "$TMP/fp32.onnx" --force > /dev/null
for act in u8 s8; do
    # --accept-accuracy-drop: the gate's verdict is recorded either way, and compared below
    $AE export "$TMP/run/best.pt" --out "$TMP/int8-$act.onnx" --precision int8 \
        --int8-activations "$act" --accept-accuracy-drop --force --json > "$TMP/export-$act.jsonl"
done
# more int8 forms: other calibrations; the batch norms left in float32
$PY "$HERE/variants.py" "$TMP" > /dev/null 2> "$TMP/variants.log"
# 240 nuclei of new slides (another seed): what a screen would meet
$AE simulate "$TMP/fresh" --classes hiPSC,somatic --n-per-class 120 --channels polII \
    --locs-per-channel 30000 --difficulty 0 --seed 97 --force > /dev/null
MODELS="fp32 int8-u8 int8-s8 int8-u8-minmax int8-u8-entropy int8-u8-percentile-bn-float"
for m in $MODELS; do
    $AE screen "$TMP/fresh" --model "$TMP/$m.onnx" --out "$TMP/screen-$m" --backend onnxruntime \
        --device cpu --force > /dev/null
done
# speed: two rounds over all models (this shared machine drifts; compare.py keeps each model's
# best round)
rm -f "$TMP"/bench-*.jsonl
for round in 1 2; do
    for m in $MODELS; do
        $AE bench "$TMP/$m.onnx" --backend onnxruntime --device cpu --batch 1,16 --seconds 6 \
            --no-render --no-save --json >> "$TMP/bench-$m.jsonl"
    done
done
$PY "$HERE/compare.py" "$TMP" "$(cat "$TMP/train_seconds")" $MODELS > "$HERE/results.json"
cp "$TMP/run/metrics.json" "$HERE/training-metrics.json"
cat "$HERE/results.json"
