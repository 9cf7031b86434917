"""Loading localization tables: CSV through ainu_engine.io (pyarrow) vs numpy.loadtxt, and Parquet.

Goals (issue "Foundation"): a 10-million-localization CSV loads at >= 50 MB/s on 2 cores;
Parquet round-trips losslessly and loads >= 10x faster than CSV.

The table is a ThunderSTORM CSV as the engine writes it (id, frame, x [nm], y [nm],
intensity [photon], uncertainty [nm], channel), generated with a fixed seed into
benchmarks/_scratch/ (not committed).
"""

from __future__ import annotations

import numpy as np

from ._harness import SCRATCH, measure, register


def _table(n: int, seed: int = 0):
    from ainu_engine.io import Localizations

    rng = np.random.default_rng(seed)
    return Localizations(
        rng.uniform(0, 20_000, n).astype(np.float32),
        rng.uniform(0, 20_000, n).astype(np.float32),
        frame=np.sort(rng.integers(0, 60_000, n)),
        channel=rng.integers(0, 2, n).astype(np.int32),
        photons=rng.gamma(4.0, 800.0, n).astype(np.float32),
        precision_nm=rng.lognormal(np.log(14), 0.3, n).astype(np.float32),
    )


@register("io_load", "read a 10M-localization CSV (ainu_engine.io vs numpy.loadtxt) and Parquet")
def run(*, device: str = "cpu", quick: bool = False, n: int | None = None) -> dict:
    from ainu_engine.io import read, write

    n = n or (1_000_000 if quick else 10_000_000)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    csv_path = SCRATCH / f"io_load_{n}.csv"
    pq_path = SCRATCH / f"io_load_{n}.parquet"
    locs = _table(n)
    if not csv_path.exists():
        write(locs, csv_path, overwrite=True)
    write(locs, pq_path, overwrite=True)
    csv_mb = csv_path.stat().st_size / 1e6
    pq_mb = pq_path.stat().st_size / 1e6

    # lossless: Parquet gives back every column bit for bit; CSV gives back the float32 values
    back = read(pq_path)
    lossless = (
        all(np.array_equal(back.column(c), locs.column(c)) for c in locs.columns)
        and back.columns == locs.columns
    )
    csv_back = read(csv_path)
    csv_exact = all(
        np.array_equal(csv_back.column(c).astype(locs.column(c).dtype), locs.column(c))
        for c in locs.columns
    )
    del back, csv_back

    t_csv = measure(lambda: read(csv_path), repeat=3 if not quick else 2)
    t_pq = measure(lambda: read(pq_path), repeat=5)
    t_np = measure(
        lambda: np.loadtxt(csv_path, delimiter=",", skiprows=1, dtype=np.float64),
        repeat=1,
        warmup=0,
    )

    csv_rate = csv_mb / t_csv["median_s"]
    figures = [
        {
            "name": "CSV read (s)",
            "project": round(t_csv["median_s"], 3),
            "baseline": round(t_np["median_s"], 3),
            "ratio": t_np["median_s"] / t_csv["median_s"],
            "baseline_name": "numpy.loadtxt (float64, same file)",
        },
        {
            "name": "CSV read (MB/s)",
            "project": round(csv_rate, 1),
            "baseline": round(csv_mb / t_np["median_s"], 1),
            "baseline_name": "numpy.loadtxt",
        },
        {
            "name": "CSV read (M localizations/s)",
            "project": round(n / t_csv["median_s"] / 1e6, 2),
            "baseline": round(n / t_np["median_s"] / 1e6, 2),
            "baseline_name": "numpy.loadtxt",
        },
        {
            "name": "Parquet read (s) vs engine CSV read",
            "project": round(t_pq["median_s"], 3),
            "baseline": round(t_csv["median_s"], 3),
            "ratio": t_csv["median_s"] / t_pq["median_s"],
            "baseline_name": "ainu_engine.io.read on the CSV",
        },
    ]
    return {
        "inputs": {
            "n_localizations": n,
            "csv_mb": round(csv_mb, 1),
            "parquet_mb": round(pq_mb, 1),
            "columns": locs.columns,
            "format": "ThunderSTORM CSV written by ainu_engine.io",
        },
        "baseline": "numpy.loadtxt for CSV; engine CSV read for Parquet",
        "timings": {"engine_csv": t_csv, "engine_parquet": t_pq, "numpy_loadtxt": t_np},
        "figures": figures,
        "checks": {"parquet_lossless": lossless, "csv_float32_exact": csv_exact},
        "goals": [
            {
                "goal": "CSV load >= 50 MB/s",
                "measured": f"{csv_rate:.1f} MB/s",
                "met": csv_rate >= 50,
            },
            {
                "goal": "Parquet >= 10x faster than CSV",
                "measured": f"{t_csv['median_s'] / t_pq['median_s']:.1f}x",
                "met": t_csv["median_s"] / t_pq["median_s"] >= 10,
            },
            {"goal": "Parquet round-trip lossless", "measured": str(lossless), "met": lossless},
        ],
    }
