"""Old vs new calibration of committed runs: the temperature and the test set's ECE and Brier
score, before and after temperature scaling, from two ``metrics.json`` of the same run (the old
one from git, the new one from a rerun with the same seeds).

Usage: ``python compare.py OLD_METRICS NEW_METRICS [NAME]`` (prints one Markdown row)
"""

from __future__ import annotations

import json
import sys


def row(old: dict, new: dict, name: str) -> str:
    o, n = old["calibration"], new["calibration"]

    def ece(c, k):
        v = c.get(f"ece_test_{k}")
        ci = c.get(f"ece_test_{k}_ci")
        return f"{v:.3f}" + (f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else "")

    brier = (f"{n['brier_test_before']:.3f} → {n['brier_test_after']:.3f}"
             if "brier_test_before" in n else "—")  # fmt: skip
    same = old["test"]["accuracy"] == new["test"]["accuracy"]
    return (f"| {name} | {o['temperature']:.3f} | {ece(o, 'before')} → {ece(o, 'after')} | "
            f"{n['temperature']:.3f} | {ece(n, 'before')} → {ece(n, 'after')} | {brier} | "
            f"{new['test']['accuracy']:.3f}{'' if same else ' (was ' + format(old['test']['accuracy'], '.3f') + ')'} |")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[-1])
    old, new = (json.load(open(p)) for p in sys.argv[1:3])
    print(row(old, new, sys.argv[3] if len(sys.argv) == 4 else sys.argv[2]))
