#!/usr/bin/env bash
# Nucleus position from actin on SIMULATED cells (the paper's images are not used here): a tiny
# TFill-Coarse generator and an L1-only U-Net baseline trained on the same tiles, evaluated the
# paper's way on held-out tiles, against the two null controls, and on the same held-out cells
# with the "nuclear shadow" removed (did the model read fibre geometry or the shadow?).
# Run from the repository root:  bash docs/results/nucleus-prediction/run.sh SCRATCH [STAGE...]
# Stages: data tfill unet tfill-l1 tfill-warmup tfill-merged tfill-l1-3e-5 eval chance (default:
# all; finished stages are skipped or resumed).
set -euo pipefail
HERE=docs/results/nucleus-prediction
TMP=$1
shift
STAGES=${*:-data tfill unet tfill-l1 tfill-warmup tfill-merged tfill-l1-3e-5 eval chance}
AE=${AE:-.venv/bin/ainu-engine}
SHADOW=${SHADOW:-0.3}
TRAIN_TILES=${TRAIN_TILES:-80}
TEST_TILES=${TEST_TILES:-16}
ITER=${ITER:-1600}
SIZE=${SIZE:-128}
mkdir -p "$HERE" "$TMP"
log() { echo "$(date +%T) $*" >&2; }
has() { [[ " $STAGES " == *" $1 "* ]]; }

if has data; then
    sim() {  # OUT SEED N EXTRA...
        local out=$1 seed=$2 n=$3
        shift 3
        [ -f "$TMP/$out/pairs.csv" ] && return 0
        log "simulate $out"
        $AE nucleus simulate "$TMP/$out" --n-tiles "$n" --seed "$seed" "$@" > /dev/null
    }
    sim train 1 "$TRAIN_TILES" --shadow "$SHADOW"
    sim test-shadow 2 "$TEST_TILES" --shadow "$SHADOW"      # as trained: geometry + shadow
    sim test-noshadow 2 "$TEST_TILES" --shadow 0            # the same cells, shadow removed
    sim test-null-random 2 "$TEST_TILES" --null random      # nucleus anywhere in its cell
    sim test-null-shuffled 2 "$TEST_TILES" --null shuffled  # where another cell puts it
fi

train() {  # NAME MODEL LR [OPTION...]: run-NAME, train-NAME.json, loss-NAME.png
    local name=$1 model=$2 lr=$3 t0 res
    shift 3
    t0=$(date +%s)
    log "train $name"
    res=$($AE nucleus train "$TMP/train" --model "$model" --preset tiny --size "$SIZE" \
        --batch-size 4 --iterations "$ITER" --lr "$lr" --split group --seed 0 "$@" \
        --out "$TMP/run-$name" --json 2> "$TMP/$name.log" | tail -n 1)
    echo "$res" | sed "s/^{/{\"model\": \"$name\", \"wall_s\": $(( $(date +%s) - t0 )), /" \
        > "$HERE/train-$name.json"
    cp "$TMP/run-$name/loss.png" "$HERE/loss-$name.png"
}
# TFill at the fork's lr 1e-4 (4e-4 diverged: a saturated output by iteration 400); the U-Net,
# L1 only, at 4e-4; TFill on L1 alone at 4e-4, and with the fork's GAN after 800 iterations of
# L1 alone (the GAN from the start drew empty images)
has tfill && train tfill tfill 1e-4
has unet && train unet unet 4e-4
has tfill-l1 && train tfill-l1 tfill 4e-4 --lambda-g 0
has tfill-warmup && train tfill-warmup tfill 4e-4 --gan-start 800
# TFill as the public code trains it: the Merged image (actin + nucleus) as the target
has tfill-merged && train tfill-merged tfill 1e-4 --target merged
# TFill on L1 alone at a smaller step (4e-4 and 1e-4 saturated the output at black)
has tfill-l1-3e-5 && train tfill-l1-3e-5 tfill 3e-5 --lambda-g 0

if has eval; then
    : > "$HERE/evaluations.jsonl"
    for model in tfill unet tfill-l1 tfill-warmup tfill-merged tfill-l1-3e-5; do
        [ -f "$TMP/run-$model/generator.onnx" ] || continue
        for test in test-shadow test-noshadow test-null-random test-null-shuffled; do
            log "evaluate $model on $test"
            pred="$TMP/pred-$model-$test"
            $AE nucleus predict "$TMP/$test" --model "$TMP/run-$model/generator.onnx" \
                --out "$pred" > /dev/null
            $AE nucleus evaluate "$pred" "$TMP/$test" --pixel-um 0.41 --out "$TMP/eval-$model-$test" \
                --json | tail -n 1 \
                | sed "s/^{/{\"model\": \"$model\", \"test\": \"$test\", /" \
                >> "$HERE/evaluations.jsonl"
        done
        cp "$TMP/eval-$model-test-shadow/distances.png" "$HERE/distances-$model.png"
    done
    .venv/bin/python "$HERE/panel.py" "$TMP" "$HERE/predictions.png" test-noshadow test-null-random
fi

if has chance; then
    # Reference rates of each test set from the simulator's truth, per cell:
    #  p_cell_Rum  - the chance that a centre uniform over the cell's valid (eroded) area lies
    #                within R of a fixed point, pi R^2 / area (an upper bound where the disc
    #                leaves the area);
    #  oracle_Rum  - the share of nuclei within R of where the actin puts them (the rule point
    #                the cap fibres and shadow are drawn at): 1 on the rule sets, the chance
    #                rate on the null sets (their actin is the rule tiles');
    #  shape_Rum   - the share within R of the noise-free rule point (the rear-shifted centroid
    #                of the cell: what the cell outline alone says, sigma_pos unseen).
    .venv/bin/python - "$TMP" > "$HERE/chance.json" <<'PY'
import json, math, sys
from pathlib import Path

out = {}
for test in ("test-shadow", "test-noshadow", "test-null-random", "test-null-shuffled"):
    sim = json.loads((Path(sys.argv[1]) / test / "simulation.json").read_text())
    cfg = sim["config"]
    px, shift = cfg["pixel_um"], cfg["rear_shift"]
    cells = [c for f in sorted((Path(sys.argv[1]) / test / "truth").glob("*.json"))
             for c in json.loads(f.read_text())]
    d_rule, d_shape = [], []
    for c in cells:
        s = shift * c["r0_um"] / px
        sy = c["centroid_y"] - s * math.sin(c["axis"])
        sx = c["centroid_x"] - s * math.cos(c["axis"])
        d_rule.append(math.hypot(c["nucleus_y"] - c["rule_y"], c["nucleus_x"] - c["rule_x"]) * px)
        d_shape.append(math.hypot(c["nucleus_y"] - sy, c["nucleus_x"] - sx) * px)
    rec = {"cells": len(cells)}
    for r in (4, 1):
        rec[f"p_cell_{r}um"] = sum(min(1.0, math.pi * r * r / c["valid_area_um2"])
                                   for c in cells) / len(cells)
        rec[f"oracle_{r}um"] = sum(d < r for d in d_rule) / len(cells)
        rec[f"shape_{r}um"] = sum(d < r for d in d_shape) / len(cells)
    out[test] = rec
print(json.dumps(out, indent=1))
PY
fi
