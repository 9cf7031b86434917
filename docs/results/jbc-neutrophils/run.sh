#!/usr/bin/env bash
# The JBC neutrophil study (../shared/data/jbc-neutrophils: 21 real N-STORM fields, 3 mice,
# unstimulated vs activated), everything from the files: manifest, cells, leave-one-mouse-out
# CNNs and the feature baseline, the confound controls, the permutation test, the final models,
# attribution and the rim test, clusters, live replay, and the tables of the README.
# Run from the repository root:  bash docs/results/jbc-neutrophils/run.sh [SCRATCH]
# About 35 min on 2 CPU cores. STEPS=train,perm,final,explain,clusters,live,analyze (default
# all) reruns a part; the scratch folder keeps what earlier steps made.
set -euo pipefail
HERE=docs/results/jbc-neutrophils
DATA=${DATA:-../shared/data/jbc-neutrophils}
TMP=${1:-$(mktemp -d)}
AE=${AE:-.venv/bin/ainu-engine}
PY=${PY:-.venv/bin/python}
STEPS=${STEPS:-manifest,train,perm,final,explain,clusters,live,analyze}
N_PERM=${N_PERM:-19}
mkdir -p "$TMP"
step() { [[ ",$STEPS," == *",$1,"* ]]; }
# cells as screen finds them with neutrophil limits; renders of 50 nm pixels smoothed by 50 nm
CELLS=(--nuclei detect --nucleus-area-um2 20,200)
RENDER=(--pixel-nm 50 --sigma-nm 50 --scaling percentile)
TRAIN=("${CELLS[@]}" "${RENDER[@]}" --folds 0 --device cpu --cache "$TMP/cache" --force --json)
SMALL=(--arch small_cnn --image-size 64 --epochs 150 --patience 25)
# the paper's recipe at the size the CPU allows (DenseNet-121 at 128 px, not 512)
DENSE=(--arch densenet121 --image-size 128 --epochs 60 --patience 15)

if step manifest; then
    $PY $HERE/build_manifest.py "$DATA" $HERE/manifest.csv
    $PY $HERE/cells.py $HERE  # overview/, galleries, cells.csv
fi

if step train; then  # leave-one-mouse-out, class-weighted loss, every run kept
    for p in cpla2 5lo; do
        for seed in 0 1 2; do
            $AE train $HERE/manifest-$p.csv --channels $p --leave-one-group-out "${SMALL[@]}" \
                --seed $seed "${TRAIN[@]}" --out "$TMP/logo/$p-small_cnn-s$seed" \
                > "$TMP/logo-$p-small_cnn-s$seed.jsonl"
        done
        $AE train $HERE/manifest-$p.csv --channels $p --leave-one-group-out "${DENSE[@]}" \
            --seed 0 "${TRAIN[@]}" --out "$TMP/logo/$p-densenet121-s0" \
            > "$TMP/logo-$p-densenet121-s0.jsonl"
    done
    # the dye control: the same cPLA2 cells labelled by the channel cPLA2 was imaged in
    $PY $HERE/analyze.py channel-manifest "$TMP/channel.csv"
    $AE train "$TMP/channel.csv" --channels cpla2 --leave-one-group-out "${SMALL[@]}" --seed 0 \
        "${TRAIN[@]}" --out "$TMP/logo/cpla2-channel-small_cnn-s0" > "$TMP/logo-channel.jsonl"
fi

if step perm; then  # the state labels shuffled among the fields of each mouse
    $PY $HERE/analyze.py permuted-manifests "$TMP/perm" "$N_PERM"
    for k in $(seq 1 "$N_PERM"); do
        $AE train "$TMP/perm/perm-$k.csv" --channels cpla2 --leave-one-group-out "${SMALL[@]}" \
            --seed 0 "${TRAIN[@]}" --out "$TMP/perm/run-$k" > "$TMP/perm/run-$k.jsonl"
    done
fi

if step final; then  # one model per protein on the cells of all three mice
    mkdir -p $HERE/models
    for p in cpla2 5lo; do
        $AE train $HERE/manifest-$p.csv --channels $p "${SMALL[@]}" --seed 0 --no-groups \
            "${TRAIN[@]}" --out "$TMP/final/$p" > "$TMP/final-$p.jsonl"
        $AE export "$TMP/final/$p/best.pt" --out $HERE/models/$p.onnx --force
        cp "$TMP/final/$p/metrics.json" $HERE/models/$p.metrics.json
    done
    # the final model screens the fields of the study, each with its row's channel map
    $AE screen $HERE/manifest-cpla2.csv --model $HERE/models/cpla2.onnx --nuclei detect \
        --camera-pixel-nm 160 --out "$TMP/screen-cpla2" --force --csv || true
fi

if step explain; then  # where the evidence is: occlusion, CAM, the rim (1 µm) and its replacement
    $AE explain $HERE/manifest-cpla2.csv --model $HERE/models/cpla2.onnx --nuclei detect \
        --rim-nm 1000 --perturb rim --device cpu --out "$TMP/explain-cpla2" --json \
        > "$TMP/explain-cpla2.jsonl"
    $AE explain $HERE/manifest-cpla2.csv --model "$TMP/final/cpla2/best.pt" --method cam \
        --nuclei detect --rim-nm 1000 --device cpu --out "$TMP/cam-cpla2" --json \
        > "$TMP/cam-cpla2.jsonl"
fi

if step clusters; then  # DBSCAN per cell, as the paper counted assemblies
    for p in 5lo cpla2; do
        $AE clusters $HERE/manifest-$p.csv --channel $p "${CELLS[@]}" --eps-nm 50 \
            --min-samples 5 --out "$TMP/clusters-$p" --json > "$TMP/clusters-$p.jsonl" || true
    done
fi

if step live; then  # each mouse replayed frame by frame with the model that never saw it
    for g in m1 m2 m3; do
        $PY $HERE/analyze.py mouse-manifest cpla2 $g "$TMP/live/$g.csv"
        $AE export "$TMP/logo/cpla2-small_cnn-s0/$g/best.pt" --out "$TMP/live/$g.onnx" --force
        $AE live "$TMP/live/$g.csv" --model "$TMP/live/$g.onnx" --nuclei detect \
            --frames-per-update 1000 --stop p=0.9,m=3,min=200 --out "$TMP/live/$g" --json \
            > "$TMP/live/$g.jsonl" || true
    done
fi

if step analyze; then
    $PY $HERE/analyze.py report "$TMP" $HERE  # results.json, tables.md, the figures
    mkdir -p $HERE/logo $HERE/explain
    for r in "$TMP"/logo/*-s*/; do
        cp "$r/leave_one_group_out.csv" "$HERE/logo/$(basename "$r").csv"
    done
    for p in 5lo cpla2; do cp "$TMP/clusters-$p/clusters.png" "$HERE/clusters-$p.png"; done
    # occlusion overlays of two cells per state (the first of a field of each)
    for f in m1_gmc5a_5lo561_cpla647_det001 m3_gmc5a_cpla2561_flap647_det001 \
             m1_unstim_5lo561_cpla2647_det001 m3_unstim_cpla2651_flap647_det001; do
        cp "$TMP/explain-cpla2/$f.png" $HERE/explain/
    done
fi
