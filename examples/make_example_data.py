"""Write the small example files bundled in examples/data (run from the repository root).

One synthetic nucleus (an ellipse of ~12 x 9 µm with two nucleoli and clustered chromatin,
3,000 localizations, two channels), written in three formats through ainu_engine.io:
ThunderSTORM CSV, Insight3 .bin (160 nm camera pixels, recorded in a .bin.json sidecar) and
Parquet. Deterministic: the same files on every machine. The full simulator with ground
truth is training/simulate.py; these files only exist so that `make demo` has data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ainu_engine.io import Localizations, Metadata, write

OUT = Path(__file__).parent / "data"


def nucleus(seed: int = 20240101, n: int = 3000) -> Localizations:
    rng = np.random.default_rng(seed)
    centre = np.array([9000.0, 8000.0])
    axes = np.array([6000.0, 4500.0])
    # cluster centres inside the ellipse, avoiding two nucleoli
    nucleoli = [(np.array([7500.0, 8500.0]), 1200.0), (np.array([10800.0, 7200.0]), 900.0)]
    pts = []
    while len(pts) < 250:
        u = rng.uniform(-1, 1, 2)
        if (u**2).sum() > 1:
            continue
        p = centre + u * axes
        if any(np.linalg.norm(p - c) < r for c, r in nucleoli):
            continue
        pts.append(p)
    centres = np.array(pts)
    which = rng.integers(0, len(centres), n)
    xy = centres[which] + rng.normal(0, 25.0, (n, 2))  # ~25 nm clutches
    precision = rng.lognormal(np.log(14.0), 0.3, n)
    xy += rng.normal(0, 1, (n, 2)) * precision[:, None]
    channel = (rng.random(n) < 0.3).astype(np.int32)  # ~30 % in a second colour
    frame = np.sort(rng.integers(0, 60_000, n))
    photons = rng.gamma(4.0, 800.0, n)
    return Localizations(
        xy[:, 0],
        xy[:, 1],
        frame=frame,
        channel=channel,
        photons=photons,
        precision_nm=precision,
        meta=Metadata(camera_pixel_nm=(160.0, 160.0), camera_pixel_source="user"),
    )


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    locs = nucleus()
    write(locs, OUT / "nucleus_thunderstorm.csv", overwrite=True)
    write(locs, OUT / "nucleus_insight3.bin", overwrite=True)
    write(locs, OUT / "nucleus.parquet", overwrite=True)
    print(f"wrote {locs.n} localizations x 3 formats to {OUT}")


if __name__ == "__main__":
    main()
