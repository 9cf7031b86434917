"""The cells of every field of the JBC neutrophil study, found as ``screen --nuclei detect``
finds them (the localization density of all channels pooled: 5-LO, cPLA2 and FLAP all outline
the nucleus), with limits for neutrophils: a whole cell 20–200 µm² (nuclei of about 8–10 µm;
smaller objects are debris, larger ones touching cells), one cut by the field's edge kept down to
a quarter of that and flagged. Writes an overview of every field (``overview/FIELD.png``,
numbered cells, red = cut by the edge) and ``cells.csv`` (one row per cell: field, mouse,
condition, label, cell, area, edge, localizations per protein), and prints the counts per mouse
and condition.

Usage: ``python docs/results/jbc-neutrophils/cells.py OUT_DIR``
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from ainu_engine.io import read
from ainu_engine.nuclei import split_nuclei
from ainu_engine.screen import write_overview

HERE = Path(__file__).resolve().parent
#: a whole neutrophil nucleus (µm²)
AREA_LIMITS_UM2 = (20.0, 200.0)


def cells_of(row: dict) -> tuple[object, list]:
    """The field of a manifest row and its cells."""
    locs = read(HERE / row["path"])
    return locs, list(split_nuclei(locs, mode="detect", area_limits_um2=AREA_LIMITS_UM2))


def main(out: Path) -> list[dict]:
    rows = list(csv.DictReader(open(HERE / "manifest.csv")))
    table = []
    for r in rows:
        locs, cells = cells_of(r)
        field = Path(r["path"]).stem
        ids = {name: cid for cid, name in locs.meta.channel_names.items()}
        chans = dict(pair.split("=") for pair in r["channels"].split(";"))
        write_overview(out / "overview" / f"{field}.png", locs, cells,
                       title=f"{field}: {len(cells)} cells ({r['group']}, {r['condition']})")  # fmt: skip
        for n in cells:
            rec = {"field": field, "mouse": r["group"], "condition": r["condition"],
                   "label": r["label"], "cell": n.id,
                   "area_um2": round(float(_area(n)), 1), "cut_by_edge": n.at_edge}  # fmt: skip
            for protein, channel in chans.items():
                rec[f"n_{protein}"] = int(np.sum(n.locs.channel == ids[channel]))
            table.append(rec)
    cols = ["field", "mouse", "condition", "label", "cell", "area_um2", "cut_by_edge",
            "n_5lo", "n_cpla2", "n_flap"]  # fmt: skip
    with open(out / "cells.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, restval="")
        w.writeheader()
        w.writerows(table)
    return table


def _area(n) -> float:
    """The area of a detected cell's outline (µm², shoelace)."""
    o = np.asarray(n.outline, float) / 1000.0
    x, y = o[:, 0], o[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    out = Path(sys.argv[1])
    (out / "overview").mkdir(parents=True, exist_ok=True)
    t = main(out)
    counts = Counter((r["mouse"], r["condition"], r["cut_by_edge"]) for r in t)
    for key in sorted(counts):
        print(*key, counts[key], sep="\t")
    print(f"{len(t)} cells -> {out / 'cells.csv'}")
