"""CAM and occlusion side by side for the DenseNet-121 of docs/results/densenet121-grid (128 px,
test set 24/24), on its withheld test nuclei: the nucleoli's share of the positive attribution
for both methods, and a figure of one correctly called hiPSC and somatic nucleus.

Run from the repository root, after docs/results/densenet121-grid/cv.sh:
    .venv/bin/python docs/results/cam/run.py SCRATCH
(SCRATCH: the folder given to the grid's scripts; the run is SCRATCH/cv-s128-lr0.001-d0).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from ainu_engine.explain import explain_files

HERE = Path(__file__).resolve().parent


def main(scratch: Path) -> None:
    run = scratch / "cv-s128-lr0.001-d0"
    rows = list(csv.DictReader(open(run / "data.csv")))
    test = [r["path"] for r in rows if r["split"] == "test"]
    out, t0 = {}, time.perf_counter()
    for method in ("cam", "occlusion"):
        log = scratch / f"explain-{method}" / "explain.jsonl"
        if not (log.is_file() and len(log.read_text().splitlines()) == len(test)):
            explain_files(test, run / "best.pt", scratch / f"explain-{method}", method=method,
                          backend="torch", device="cpu")
        out[method] = {"records": [json.loads(x) for x in log.read_text().splitlines()]}
    seconds = time.perf_counter() - t0
    label = {r["path"]: r["label"] for r in rows}
    table = {}
    for method, d in out.items():
        for cls in ("hiPSC", "somatic"):
            fr = [r["structures"][r["predicted"]]["nucleoli"]
                  for r in d["records"] if label[r["source"]] == cls and r["predicted"] == cls
                  and r.get("structures")]
            pos = [f["positive_attribution_fraction"] for f in fr
                   if f["positive_attribution_fraction"] is not None]
            table.setdefault(method, {})[cls] = {
                "nuclei": len(fr),
                "nuclei_with_positive_attribution": len(pos),
                "positive_attribution_fraction": float(np.mean(pos)) if pos else None,
                "area_fraction": float(np.mean([f["area_fraction"] for f in fr])),
                "enrichment": float(np.mean(pos) / np.mean([f["area_fraction"] for f in fr]))
                if pos else None,
            }
    doc = {"model": "SCRATCH/cv-s128-lr0.001-d0/best.pt", "test_nuclei": len(test),
           "explain_seconds": round(seconds, 1), "nucleoli": table}
    (HERE / "summary.json").write_text(json.dumps(doc, indent=2) + "\n")
    _figure(out, label)
    print(json.dumps(doc, indent=2))


def _figure(out: dict, label: dict) -> None:
    from PIL import Image, ImageDraw

    picks = {}
    for cls in ("hiPSC", "somatic"):
        ok = [r for r in out["cam"]["records"]
              if label[r["source"]] == cls and r["predicted"] == cls
              and r["structures"][cls]["nucleoli"]["positive_attribution_fraction"] is not None]
        picks[cls] = ok[0]["source"]
    tiles = []
    for cls, src in picks.items():
        row = []
        for method in ("cam", "occlusion"):
            rec = next(r for r in out[method]["records"] if r["source"] == src)
            im = Image.open(rec["overlay"]).convert("RGB")
            d = ImageDraw.Draw(im)
            nuc = rec["structures"][rec["predicted"]]["nucleoli"]
            share = nuc["positive_attribution_fraction"] or 0.0
            d.text((8, im.height - 14), f"{cls} - {method}: nucleoli {share:.0%} "
                           f"of positive attribution, {nuc['area_fraction']:.0%} of the area",
                   fill=(0, 0, 0))
            row.append(im)
        tiles.append(row)
    w = max(im.width for row in tiles for im in row)
    h = max(im.height for row in tiles for im in row)
    sheet = Image.new("RGB", (2 * w, 2 * h), "white")
    for i, row in enumerate(tiles):
        for j, im in enumerate(row):
            sheet.paste(im, (j * w, i * h))
    sheet.save(HERE / "cam_vs_occlusion.png", optimize=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
