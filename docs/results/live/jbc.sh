#!/usr/bin/env bash
# Issue 34 on real cells: the neutrophils of ../shared/data/jbc-neutrophils replayed frame by frame,
# each mouse by a small CNN trained on the other two (leave-one-mouse-out, cPLA2, seed 0) — as in
# docs/results/jbc-neutrophils (whose run.sh made the models without augmentations) — now with
# --augment-localizations default. Writes docs/results/live/jbc-with.json (analyze.py's live
# summary). From the repository root:  bash docs/results/live/jbc.sh [SCRATCH]   (~10 min)
set -euo pipefail
HERE=docs/results/live
JBC=docs/results/jbc-neutrophils
TMP=${1:-$(mktemp -d)}
AE=${AE:-.venv/bin/ainu-engine}
PY=${PY:-.venv/bin/python}
CELLS=(--nuclei detect --nucleus-area-um2 20,200)
RENDER=(--pixel-nm 50 --sigma-nm 50 --scaling percentile)
TRAIN=("${CELLS[@]}" "${RENDER[@]}" --folds 0 --device cpu --cache "$TMP/cache" --force --json)
SMALL=(--arch small_cnn --image-size 64 --epochs 150 --patience 25)
mkdir -p "$TMP/live"
$AE train $JBC/manifest-cpla2.csv --channels cpla2 --leave-one-group-out "${SMALL[@]}" --seed 0 \
    "${TRAIN[@]}" --augment-localizations default --out "$TMP/logo" > "$TMP/logo.jsonl"
for g in m1 m2 m3; do
    $PY $JBC/analyze.py mouse-manifest cpla2 $g "$TMP/live/$g.csv"
    $AE export "$TMP/logo/$g/best.pt" --out "$TMP/live/$g.onnx" --force > /dev/null
    $AE live "$TMP/live/$g.csv" --model "$TMP/live/$g.onnx" --nuclei detect \
        --frames-per-update 1000 --stop p=0.9,m=3,min=200 --out "$TMP/live/$g" --json \
        > "$TMP/live/$g.jsonl" || true
done
$PY - "$TMP" "$HERE/jbc-with.json" <<'PY'
import json, sys
from pathlib import Path
sys.path.insert(0, "docs/results/jbc-neutrophils")
import analyze
tmp = Path(sys.argv[1])
live = analyze.live_replay(tmp / "live")
logo = [json.loads(l) for l in open(tmp / "logo.jsonl") if l.strip()]
Path(sys.argv[2]).write_text(json.dumps({"live": live, "train": logo[-1]}, indent=2) + "\n")
print(json.dumps(live, indent=1))
PY
