"""Simulating one nucleus of 10^7 localizations: the project's simulator (Numba envelope
kernel) vs the same simulator with the float64 NumPy reference envelope test.

Goal (issue "Simulated nuclei"): 10^7 localizations generate in seconds, not minutes.
"""

from __future__ import annotations

import numpy as np

from ._harness import measure, register


@register(
    "simulate", "simulate_nucleus with 1e5/1e6/1e7 localizations: Numba kernel vs NumPy reference"
)
def run(*, device: str = "cpu", quick: bool = False, sizes=None) -> dict:
    import ainu_engine.simulate as sim
    from ainu_engine.simulate import _smlm  # the kernel the baseline swaps out

    sizes = sizes or ([1e5, 1e6] if quick else [1e5, 1e6, 1e7])

    def project(n):
        return sim.simulate_nucleus(
            "somatic",
            rng=np.random.default_rng(0),
            channels=("h3",),
            observation=sim.Observation(locs_per_channel=n),
        )

    def baseline(n):
        kernel = _smlm._depth_kernel
        _smlm._depth_kernel = _smlm.depth_reference
        try:
            return project(n)
        finally:
            _smlm._depth_kernel = kernel

    figures, timings = [], {}
    for n in sizes:
        counts = len(project(n))
        assert len(baseline(n)) == counts  # the same random stream, the same nucleus
        tp = measure(lambda n=n: project(n), repeat=3, warmup=1)
        tb = measure(lambda n=n: baseline(n), repeat=3 if n < 1e7 else 1, warmup=0)
        timings[f"{n:.0e}"] = {"project": tp, "baseline": tb, "n_localizations": counts}
        figures.append(
            {
                "name": f"simulate {counts:,} localizations (s)",
                "project": round(tp["median_s"], 3),
                "baseline": round(tb["median_s"], 3),
                "baseline_name": "same simulator, NumPy reference envelope",
                "ratio": tb["median_s"] / tp["median_s"],
            }
        )
    big = timings[f"{sizes[-1]:.0e}"]
    return {
        "inputs": {"sizes": [int(s) for s in sizes], "cell_state": "somatic", "channels": ["h3"]},
        "baseline": "ainu_engine.simulate with depth_reference (float64 NumPy) instead of "
        "the Numba kernel",
        "timings": timings,
        "figures": figures,
        "goals": [
            {
                "goal": "1e7 localizations in seconds (< 10 s)",
                "measured": f"{big['project']['median_s']:.2f} s for {big['n_localizations']:,}",
                "met": sizes[-1] >= 1e7 and big["project"]["median_s"] < 10,
            }
        ],
    }
