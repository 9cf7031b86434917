"""A figure of what the generators draw: for a few held-out tiles, the actin input, the true
nucleus image and each model's prediction, with the true nucleus centres marked (SIMULATED).

Usage: python panel.py SCRATCH OUT.png [TEST ...]  (SCRATCH as run.sh's; default test-noshadow)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import tifffile  # noqa: E402

MODELS = ("tfill", "tfill-merged", "unet")  # the L1 and warm-up TFill runs drew black


def main(tmp: Path, out: Path, tests: list[str]) -> None:
    rows = [(test, tile) for test in tests for tile in ("tile0000", "tile0003")]
    fig, axes = plt.subplots(len(rows), 2 + len(MODELS), figsize=(3.2 * (2 + len(MODELS)),
                                                                  3.2 * len(rows)))  # fmt: skip
    for row, (test, tile) in zip(axes, rows, strict=True):
        truth = json.loads((tmp / test / "truth" / f"{tile}.json").read_text())
        d = tmp / test / tile
        panels = [("actin", tifffile.imread(d / f"Actin_{tile}.tif")[..., 1]),
                  ("true nucleus", tifffile.imread(d / f"Nucleus_{tile}.tif")[..., 0])]  # fmt: skip
        for m in MODELS:
            p = tmp / f"pred-{m}-{test}" / f"Predicted_{tile}.tif"
            if p.exists():
                panels.append((m, tifffile.imread(p)[..., 0]))
        for ax, (name, img) in zip(row, panels, strict=False):
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.plot([c["nucleus_x"] for c in truth], [c["nucleus_y"] for c in truth], "+",
                    color="tab:orange", ms=7, mew=1.2)  # fmt: skip
            ax.set_title(f"{test} {tile}: {name}", fontsize=8)
        for ax in row:
            ax.set_axis_off()
    fig.suptitle("SIMULATED cells; + = true nucleus centre", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:] or ["test-noshadow"])
