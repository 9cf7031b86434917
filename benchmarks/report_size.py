"""How large ``report.html`` grows with a screen, and how long it takes to write.

A real screen of 200 simulated nuclei (Pol II, 2·10⁴ localizations each) with the bundled small
model (64 px, one channel: one thumbnail a nucleus; a model of C channels has C) is too small to
say what 10⁴ nuclei cost, and a screen of 10⁴ nuclei takes an hour here; so the report is
written for tables of 10², 10³ and 10⁴ rows made of the real screen's rows (their real
thumbnails, renamed nuclei): the size is what those rows cost, exactly as they would in a
screen of that many nuclei of this kind.

Goal (issue "Where microscopists already work"): a 10⁴-nucleus screen's report under ~50 MB.
The baseline named in the same run is the report without thumbnails (the table and the plots
only), so the figure says what the gallery adds.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ._harness import register

MODEL = Path(__file__).resolve().parents[1] / "examples" / "models"
MODEL = MODEL / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
GOAL_MB = 50.0


def _rows(base, n: int):
    """``n`` rows cycling through ``base``'s, each with its own nucleus id."""
    import pyarrow as pa

    k = -(-n // base.num_rows)
    t = pa.concat_tables([base] * k).slice(0, n)
    ids = pa.array([f"n{i:05d}" for i in range(n)])
    return t.set_column(t.column_names.index("nucleus_id"), "nucleus_id", ids)


@register("report_size", "report.html size and write time for 1e2..1e4 nuclei (real thumbnails)")
def run(*, device: str = "cpu", quick: bool = False) -> dict:
    import shutil

    tmp = Path(tempfile.mkdtemp(prefix="ainu-bench-report-"))
    try:
        return _run(tmp, quick=quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(tmp: Path, *, quick: bool) -> dict:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ainu_engine.model import read_model_info
    from ainu_engine.screen import screen
    from ainu_engine.screen._report import write_report
    from ainu_engine.screen._thumbs import without_thumbnails
    from ainu_engine.simulate import Observation, simulate_dataset

    n_real = 20 if quick else 200
    data = tmp / "nuclei"
    simulate_dataset(data, n_per_class=n_real // 2, channels=("polII",),
                     observation=Observation(locs_per_channel=2e4), seed=9)  # fmt: skip
    s = screen([data], MODEL, tmp / "out", device="cpu", report=False)
    parts = sorted((tmp / "out" / "parts").glob("part-*.parquet"))
    base = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")
    thumb_bytes = [sum(len(b) for b in t) for t in base.column("thumbnail").to_pylist()]
    doc = json.loads((tmp / "out" / "summary.json").read_text())
    info = read_model_info(MODEL)
    sizes = (100, 1000) if quick else (100, 1000, 10000)
    rows = []
    for n in sizes:
        table = _rows(base, n)
        t0 = time.perf_counter()
        page = write_report(tmp / f"report-{n}.html", table, doc, info, [])
        write_s = time.perf_counter() - t0
        bare = write_report(tmp / f"bare-{n}.html", without_thumbnails(table), doc, info, [])
        rows.append({"nuclei": n, "bytes": page.stat().st_size,
                     "bytes_without_thumbnails": bare.stat().st_size,
                     "write_s": round(write_s, 3)})  # fmt: skip
    big = rows[-1]
    mb = big["bytes"] / 1e6
    per = (big["bytes"] - big["bytes_without_thumbnails"]) / big["nuclei"]
    return {
        "inputs": {
            "model": MODEL.name,
            "real_nuclei": s.n_nuclei,
            "channels": list(info.channel_names),
            "model_input_px": info.input_size,
            "localizations_per_channel": 20000,
        },
        "baseline": "the same report without thumbnails (table and plots only)",
        "thumbnail_bytes_per_nucleus": {
            "mean": sum(thumb_bytes) / len(thumb_bytes),
            "max": max(thumb_bytes),
        },
        "reports": rows,
        "figures": [
            {
                "name": f"report.html of {big['nuclei']} nuclei (MB)",
                "project": round(mb, 2),
                "baseline": round(big["bytes_without_thumbnails"] / 1e6, 2),
                "baseline_name": "without thumbnails",
                "ratio": big["bytes"] / big["bytes_without_thumbnails"],
            }
        ],
        "goals": [
            {
                "goal": f"a {big['nuclei']}-nucleus screen's report under ~{GOAL_MB:g} MB",
                "measured": f"{mb:.1f} MB ({per / 1e3:.2f} kB of thumbnails a nucleus, "
                f"{info.input_size} px input, {len(info.channel_names)} channel(s); "
                f"written in {big['write_s']:.1f} s)",
                "met": mb < GOAL_MB,
            }
        ],
    }
