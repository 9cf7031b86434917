"""The shift suite's figures from its benchmark result (benchmarks/results/shift-cpu.json):
the AUROC of ood_score and of the range QC per shift, the share flagged, and the selective
accuracy-coverage curves.

    python docs/results/shift/plot.py benchmarks/results/shift-cpu.json docs/results/shift
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(result: str, out: str) -> None:
    doc = json.loads(Path(result).read_text())
    rows = doc["shifts"]
    out = Path(out)
    names = [r["shift"] for r in rows[1:]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    y = range(len(names))
    a.barh([k + 0.2 for k in y], [r["auroc"] for r in rows[1:]], 0.4, label="ood_score",
           color="#4c72b0")
    a.barh([k - 0.2 for k in y], [r["auroc_old_qc"] for r in rows[1:]], 0.4,
           label="range QC (before)", color="#c4c4c4")
    a.axvline(0.9, color="#c44e52", ls="--", lw=1, label="goal 0.9")
    a.set_yticks(list(y), names)
    a.set_xlim(0.4, 1.02)
    a.set_xlabel("AUROC against in-distribution nuclei")
    a.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.4, -0.14), ncol=3)
    a.invert_yaxis()
    fl = [r["flagged_fraction"] for r in rows[1:]]
    lo = [r["flagged_fraction"] - r["flagged_ci"][0] for r in rows[1:]]
    hi = [r["flagged_ci"][1] - r["flagged_fraction"] for r in rows[1:]]
    b.barh(list(y), fl, xerr=[lo, hi], color="#8172b2", capsize=3)
    ind = rows[0]
    b.axvline(ind["flagged_fraction"], color="#55a868", lw=1.5,
              label=f"in-distribution {ind['flagged']}/{ind['n']}")
    b.set_xlim(0, 1.05)
    b.set_xlabel("share flagged unfamiliar (95 % CI)")
    b.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Out-of-distribution score of the bundled model ({doc['inputs']['model']})",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "shift.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r in rows[1:]:
        if r.get("selective") and "accuracy" in r:
            c, acc = zip(*r["selective"], strict=True)
            ax.plot(c, acc, marker=".", label=f"{r['shift']} (acc. {r['accuracy']:.2f})")
    ax.set_xlabel("coverage (in-distribution + shifted, most unfamiliar rejected first)")
    ax.set_ylabel("accuracy of the calls kept")
    ax.set_ylim(0.4, 1.02)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "selective.png", dpi=120)
    plt.close(fig)
    print(out / "shift.png", out / "selective.png")


if __name__ == "__main__":
    main(*sys.argv[1:3])
