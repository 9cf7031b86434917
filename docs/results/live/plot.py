"""The live study's figure: accuracy against the fraction of frames for the models without and
with localization augmentations, and where the stop rules stop.

    python docs/results/live/plot.py docs/results/live
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(here: str) -> None:
    here = Path(here)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, (name, colour) in enumerate((("without", "#8c8c8c"), ("with", "#4c72b0"))):
        d = json.loads((here / name / "summary.json").read_text())
        t = d["accuracy_vs_fraction"]
        f = [r["fraction"] for r in t]
        a.fill_between(f, [r["ci95"][0] for r in t], [r["ci95"][1] for r in t], alpha=0.15,
                       color=colour)  # fmt: skip
        a.plot(f, [r["accuracy"] for r in t], marker="o", color=colour,
               label=f"{name} localization augmentations")  # fmt: skip
        for j, r in enumerate(d["stop_rules"]):
            b.errorbar(1 / r["mean_fraction_of_frames"], r["accuracy_at_stop"] - r["accuracy_full"],
                       fmt="os"[k], color=f"C{j}", ms=7, mfc="none" if k == 0 else f"C{j}",
                       label=r["rule"] if k == 1 else None)  # fmt: skip
    a.set_xlabel("fraction of the acquisition's frames")
    a.set_ylabel("accuracy of the call (95 % CI)")
    a.set_ylim(0.45, 1.0)
    a.legend(fontsize=8, loc="lower right")
    a.set_title("200 held-out simulated nuclei", fontsize=9)
    b.axhline(-0.02, color="#c44e52", ls="--", lw=1)
    b.axvline(2.0, color="#c44e52", ls="--", lw=1)
    b.set_xlabel("frames saved (x fewer)")
    b.set_ylabel("accuracy at the stop - on the whole acquisition")
    b.set_title("stop rules (open: without, filled: with); goal: right of 2x, above -2 points",
                fontsize=8)
    b.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(here / "accuracy_vs_fraction.png", dpi=110)
    print(here / "accuracy_vs_fraction.png")


if __name__ == "__main__":
    main(sys.argv[1])
