"""Compare the fp32 and int8 screens and benches written by run.sh: call agreement, the largest
probability difference, accuracy against the simulated truth, and images/s. Prints JSON.

    python docs/results/int8-trained/compare.py SCRATCH SIMULATE_AND_TRAIN_SECONDS MODEL...

(MODEL: fp32 first, then int8-u8, int8-s8, int8-u8-entropy, ...: SCRATCH/MODEL.onnx)
"""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


def _truth(tmp: Path) -> dict[str, str]:
    with open(tmp / "fresh" / "manifest.csv", newline="") as f:
        return {Path(r["path"]).name: r["label"] for r in csv.DictReader(f)}


def _calls(tmp: Path, model: str) -> dict:
    t = pq.read_table(tmp / f"screen-{model}" / "results.parquet").to_pylist()
    classes = sorted(k[2:] for k in t[0] if k.startswith("p_"))
    return {(Path(r["source"]).name, r["nucleus_id"]): (r["predicted"],
            np.array([r[f"p_{c}"] for c in classes])) for r in t}  # fmt: skip


def _bench(tmp: Path, model: str) -> dict:
    rows = [json.loads(line) for line in open(tmp / f"bench-{model}.jsonl") if line.strip()]
    best: dict[str, float] = {}  # the best round per batch size
    for r in rows:
        if "images_per_s" in r:
            b = str(r["batch"])
            best[b] = max(best.get(b, 0.0), round(r["images_per_s"], 1))
    return best


def _gate(tmp: Path, model: str):
    """The export gate's verdict (the models ``export`` wrote; variants.py's have none)."""
    path = tmp / f"export-{model.removeprefix('int8-')}.jsonl"
    if not path.is_file():
        return None
    rec = [json.loads(line) for line in open(path)]
    return next((r["gate"] for r in rec if r.get("gate")), None)


def main() -> None:
    tmp, train_s, models = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    truth = _truth(tmp)
    ref = _calls(tmp, "fp32")
    ref_bench = _bench(tmp, "fp32")
    out = {"simulate_and_train_seconds": train_s, "fresh_nuclei": len(ref), "models": {}}
    for m in models:
        calls = _calls(tmp, m)
        keys = sorted(ref)
        assert sorted(calls) == keys, f"{m}: not the same nuclei as fp32"
        same = sum(calls[k][0] == ref[k][0] for k in keys)
        dp = max(float(np.abs(calls[k][1] - ref[k][1]).max()) for k in keys)
        right = sum(calls[k][0] == truth[k[0]] for k in keys)
        bench = _bench(tmp, m)
        out["models"][m] = {
            "agreement_with_fp32": round(same / len(keys), 4),
            "disagreeing_nuclei": len(keys) - same,
            "max_abs_dp": round(dp, 4),
            "accuracy": round(right / len(keys), 4),
            "images_per_s": bench,
            "speed_vs_fp32": {b: round(v / ref_bench[b], 2) for b, v in bench.items()
                              if b in ref_bench},  # fmt: skip
            "export_gate_on_withheld_slides": _gate(tmp, m),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
