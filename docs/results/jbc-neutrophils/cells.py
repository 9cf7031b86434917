"""The cells of every field of the JBC neutrophil study, found as ``screen --nuclei detect``
finds them (the localization density of all channels pooled: 5-LO, cPLA2 and FLAP all outline
the nucleus), with limits for neutrophils: a whole cell 20–200 µm² (nuclei of about 8–10 µm;
smaller objects are debris, larger ones touching cells), one cut by the field's edge kept down to
a quarter of that and flagged. Writes an overview of every field (``overview/FIELD.png``,
numbered cells, red = cut by the edge), a gallery of every whole cell per condition
(``gallery-unstim.png``, ``gallery-activated.png``: 5-LO red, cPLA2 green, FLAP blue) and
``cells.csv`` (one row per cell: field, mouse, condition, label, cell, area, edge, localizations
per protein), and prints the counts per mouse and condition.

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
    table, crops = [], []
    for r in rows:
        locs, cells = cells_of(r)
        field = Path(r["path"]).stem
        ids = {name: cid for cid, name in locs.meta.channel_names.items()}
        chans = dict(pair.split("=") for pair in r["channels"].split(";"))
        title = f"{field}: {len(cells)} cells ({r['group']}, {r['condition']})"
        write_overview(out / "overview" / f"{field}.png", locs, cells, title=title)
        for n in cells:
            rec = {"field": field, "mouse": r["group"], "condition": r["condition"],
                   "label": r["label"], "cell": n.id,
                   "area_um2": round(float(_area(n)), 1), "cut_by_edge": n.at_edge}  # fmt: skip
            for protein, channel in chans.items():
                rec[f"n_{protein}"] = int(np.sum(n.locs.channel == ids[channel]))
            table.append(rec)
            if not n.at_edge:
                short = field.split("_", 2)[-1]
                crops.append(({**rec, "field_short": short}, crop(n, chans, ids)))
    cols = ["field", "mouse", "condition", "label", "cell", "area_um2", "cut_by_edge",
            "n_5lo", "n_cpla2", "n_flap"]  # fmt: skip
    with open(out / "cells.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, restval="")
        w.writeheader()
        w.writerows(table)
    for label in ("unstim", "activated"):
        whole = [(r, c) for r, c in crops if r["label"] == label]
        gallery(out / f"gallery-{label}.png", whole, title=f"{label}: {len(whole)} whole cells")
    return table


#: the gallery's colours: 5-LO red, cPLA2 green, FLAP blue
COLOURS = {"5lo": 0, "cpla2": 1, "flap": 2}
#: a gallery card: this many µm across, 100 nm pixels
CARD_UM, CARD_PX_NM = 14.0, 100.0


def crop(n, chans: dict, ids: dict) -> np.ndarray:
    """An RGB card of one cell (its localizations per protein, 100 nm pixels smoothed by 100 nm,
    each protein scaled to its own 99.5th percentile), centred on the cell."""
    from scipy.ndimage import gaussian_filter

    side = int(CARD_UM * 1000 / CARD_PX_NM)
    cx, cy = np.mean(n.outline, axis=0)
    img = np.zeros((side, side, 3))
    for protein, channel in chans.items():
        sel = n.locs.channel == ids[channel]
        j = ((n.locs.x_nm[sel] - cx) / CARD_PX_NM + side / 2).astype(int)
        i = ((n.locs.y_nm[sel] - cy) / CARD_PX_NM + side / 2).astype(int)
        ok = (i >= 0) & (i < side) & (j >= 0) & (j < side)
        h = np.zeros((side, side))
        np.add.at(h, (i[ok], j[ok]), 1.0)
        h = gaussian_filter(h, 1.0)
        top = np.percentile(h[h > 0], 99.5) if (h > 0).any() else 1.0
        img[..., COLOURS[protein]] = np.clip(h / top, 0, 1)
    return img


def gallery(path: Path, cards: list, *, title: str, cols: int = 8) -> None:
    """Every whole cell of a condition as a card (field, cell, mouse)."""
    from matplotlib.figure import Figure

    rows = max(1, -(-len(cards) // cols))
    fig = Figure(figsize=(1.6 * cols, 1.75 * rows + 0.5))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (r, img) in zip(axes.ravel(), cards, strict=False):
        ax.imshow(img, origin="lower")
        ax.set_title(f"{r['mouse']} {r['condition']}\n{r['field_short']} {r['cell']}", fontsize=6)
    fig.suptitle(f"{title} (red 5-LO, green cPLA2, blue FLAP; {CARD_UM:.0f} µm cards)",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)


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
