"""The shift suite (benchmarks/shift.py) for two models trained alike but for the localization
augmentations, same data and seeds: accuracy per shift with and without them (issue 34).

    python docs/results/live/shift_both.py PLAIN.onnx AUGMENTED.onnx OUTDIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from benchmarks._harness import environment, in_scratch  # noqa: E402
from benchmarks.shift import _run  # noqa: E402


def main(plain: str, augmented: str, out: str) -> None:
    doc = {"environment": environment("cpu"), "models": {}}
    for name, model in (("without", plain), ("with", augmented)):
        doc["models"][name] = in_scratch("ainu-shift-both-", _run, device="cpu", quick=False,
                                         model=Path(model))  # fmt: skip
    rows = []
    for a, b in zip(doc["models"]["without"]["shifts"], doc["models"]["with"]["shifts"],
                    strict=True):  # fmt: skip
        rows.append({"shift": a["shift"], "n": a["n"],
                     "accuracy_without": a.get("accuracy"), "ci_without": a.get("accuracy_ci"),
                     "accuracy_with": b.get("accuracy"), "ci_with": b.get("accuracy_ci"),
                     "flagged_without": a["flagged"], "flagged_with": b["flagged"]})  # fmt: skip
    doc["comparison"] = rows
    Path(out, "shift-with-without.json").write_text(json.dumps(doc, indent=2) + "\n")
    for r in rows:
        if r["accuracy_without"] is not None:
            print(f"{r['shift']:<42} without {r['accuracy_without']:.3f}  with "
                  f"{r['accuracy_with']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:4])
