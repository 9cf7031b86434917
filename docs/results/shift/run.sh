#!/usr/bin/env bash
# The shift suite of issue 33 (ainu-engine's out-of-distribution score), from the repository root:
#   bash docs/results/shift/run.sh [SCRATCH]
# 1. the camera -> Picasso chain of examples/acquisition (needs picassosr beside the cpu extra:
#    a venv with `pip install -e ".[cpu]" picassosr`, passed as ACQ_PY), 8 nuclei of 6 000 frames
#    each, its localizations kept; 2. benchmarks/shift.py over every shift (writes
#    benchmarks/results/shift-cpu.json); 3. the figures. About 15 minutes on 2 cores.
set -euo pipefail
HERE=docs/results/shift
TMP=${1:-$(mktemp -d)}
ACQ_PY=${ACQ_PY:-.venv-acq/bin/python}
PY=${PY:-.venv/bin/python}
MODEL=examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx
if "$ACQ_PY" -c "import picasso.localize" 2>/dev/null; then
    "$ACQ_PY" examples/acquisition/run.py --model "$MODEL" --nuclei 8 --plain \
        --out "$TMP/acquisition.json" --save-locs "$TMP/acquisition"
    export AINU_SHIFT_ACQUISITION="$TMP/acquisition"
else
    echo "no Picasso in $ACQ_PY: the camera -> Picasso shift is left out" >&2
fi
"$PY" -m benchmarks run shift
"$PY" "$HERE/plot.py" benchmarks/results/shift-cpu.json "$HERE"
