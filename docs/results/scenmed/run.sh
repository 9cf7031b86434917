#!/usr/bin/env bash
# SCENMED's comparisons on SIMULATED widefield DAPI fields (the paper's data are not public):
# HC/EC per class with tests, and for NIH/3T3 vs BJ and BJ vs MCF10A the accuracy of the CNN on
# whole nuclei, the CNN on 32 px patches, PatchNet on 11 px patches and the linear models on the
# hand-crafted features (with the ablation table), and t-SNE of the CNN's features.
# Run from the repository root:  bash docs/results/scenmed/run.sh SCRATCH
set -euo pipefail
HERE=docs/results/scenmed
TMP=$1
AE=${AE:-.venv/bin/ainu-engine}
D=${DIFFICULTY:-0.7}
FIELDS=${FIELDS:-40}
EPOCHS=${EPOCHS:-40}
CNN=(--width "${WIDTH:-8}" --hidden "${HIDDEN:-128}" --lr "${LR:-1e-3}" --batch-size 16
     --epochs "$EPOCHS" --patience 15 --augment --monitor balanced_accuracy --threads "${THREADS:-2}")
mkdir -p "$HERE" "$TMP"
log() { echo "$(date +%T) $*" >&2; }
if [ ! -f "$TMP/data/manifest.csv" ]; then
    $AE widefield simulate "$TMP/data" --classes NIH3T3,BJ,MCF10A,MCF7 --n-fields "$FIELDS" \
        --n-sets 4 --difficulty "$D" --seed 17 --force > /dev/null
fi
start=$(date +%s)
$AE widefield features "$TMP/data/manifest.csv" --out "$TMP/all.parquet" --json \
    > "$HERE/hc_ec_summary.json"
cp "$TMP/all.hc_ec.png" "$HERE/hc_ec.png"
cp "$TMP/all.hc_ec.json" "$HERE/hc_ec.json"
.venv/bin/python "$HERE/linear_cv.py" "$TMP/all.parquet" > "$HERE/linear_cv.json"
: > "$HERE/runs.jsonl"
for pair in NIH3T3:BJ BJ:MCF10A; do
    a=${pair%%:*}
    b=${pair##*:}
    name="$a-vs-$b"
    head -n 1 "$TMP/data/manifest.csv" > "$TMP/$name.csv"
    grep -E ",($a|$b)," "$TMP/data/manifest.csv" >> "$TMP/$name.csv" || true
    sed -i "s#^fields/#data/fields/#" "$TMP/$name.csv"
    $AE widefield segment "$TMP/$name.csv" --out "$TMP/seg-$name" > /dev/null
    $AE widefield features "$TMP/seg-$name" --out "$TMP/f-$name.parquet" > /dev/null
    for m in logreg svm rf; do
        log "$name $m"
        $AE widefield train "$TMP/f-$name.parquet" --model "$m" --out "$TMP/$name-$m" --json \
            | tail -n 1 | sed "s/^{/{\"pair\": \"$name\", /" >> "$HERE/runs.jsonl"
    done
    for m in cnn patches patchnet; do
        log "$name $m"
        extra=()
        [ "$m" = patchnet ] && extra=(--stride "${PATCHNET_STRIDE:-11}")
        t0=$(date +%s)
        res=$($AE widefield train "$TMP/seg-$name" --model "$m" "${CNN[@]}" "${extra[@]}" \
            --out "$TMP/$name-$m" --json 2> "$TMP/$name-$m.log" | tail -n 1)
        echo "$res" | sed "s/^{/{\"pair\": \"$name\", \"wall_s\": $(( $(date +%s) - t0 )), /" \
            >> "$HERE/runs.jsonl"
    done
    mkdir -p "$HERE/$name"
    cp "$TMP/$name-logreg/ablation.csv" "$HERE/$name/ablation-logreg.csv"
    cp "$TMP/$name-cnn/tsne.png" "$TMP/$name-cnn/learning_curves.png" "$HERE/$name/"
    cp "$TMP/$name-cnn/confusion.png" "$HERE/$name/confusion-cnn.png"
done
echo "{\"wall_s\": $(( $(date +%s) - start )), \"difficulty\": $D, \"fields_per_class\": $FIELDS}" \
    > "$HERE/run.json"
