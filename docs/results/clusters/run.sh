#!/usr/bin/env bash
# Nucleolar Pol II cluster statistics on simulated nuclei (paper Fig. 4i-j), and a negative
# control where the simulator puts no class difference. Run from the repository root:
#   bash docs/results/clusters/run.sh [SCRATCH]
# Writes comparison.json, nuclei.csv and clusters.png of both runs here; the data go to SCRATCH.
set -euo pipefail
HERE=docs/results/clusters
TMP=${1:-$(mktemp -d)}
AE=${AE:-.venv/bin/ainu-engine}
# hiPSC vs somatic, 20 nuclei each, Pol II, the simulator's full class difference (difficulty 0)
$AE simulate "$TMP/full" --classes hiPSC,somatic --n-per-class 20 --channels polII \
    --locs-per-channel 12000 --difficulty 0 --seed 3 --force
# negative control: the same, with every class difference removed (difficulty 1)
$AE simulate "$TMP/none" --classes hiPSC,somatic --n-per-class 20 --channels polII \
    --locs-per-channel 12000 --difficulty 1 --seed 3 --force
for run in full none; do
    $AE clusters "$TMP/$run/manifest.csv" --eps-nm 50 --min-samples 15 --roi nucleoli \
        --group-by label --out "$TMP/$run-clusters" --json > "$TMP/$run.jsonl"
    mkdir -p "$HERE/$run"
    cp "$TMP/$run-clusters/comparison.json" "$TMP/$run-clusters/nuclei.csv" \
        "$TMP/$run-clusters/clusters.png" "$HERE/$run/"
done
