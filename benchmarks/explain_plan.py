"""When does incremental occlusion pay? The incremental plan (``ainu_engine.explain.occlusion``,
``incremental=True``) against whole passes (``incremental=False``) on the same ONNX Runtime CPU
backend, model and image, over models, image sizes and windows whose work fraction (the plan's
multiply-adds over those of whole passes) spans 0.1 to 0.8.

This calibrates ``ainu_engine.explain._occlusion.INCREMENTAL_MAX_WORK``, the work fraction up to
which ``incremental=None`` takes the plan; the check: in every configuration auto mode picks
the faster path, or the path it leaves is at most 15 % faster. Models have random weights with
calibrated batch norm (speed does not depend on what they learned); maps are checked equal.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ._harness import measure, register
from .infer import CHANNELS

#: (arch, image size, window, stride)
CONFIGS = [
    ("small_cnn", 128, 32, 16),
    ("resnet18", 512, 64, 32),
    ("resnet18", 256, 64, 32),
    ("resnet18", 128, 32, 16),
    ("resnet18", 128, 64, 32),
    ("densenet121", 512, 64, 32),
    ("densenet121", 256, 32, 16),
    ("densenet121", 256, 64, 32),
    ("densenet121", 128, 64, 32),
]
QUICK = [("small_cnn", 128, 32, 16), ("small_cnn", 80, 64, 32)]
SLACK = 1.15  # the path auto mode leaves may be this much faster


@register(
    "explain_plan",
    "incremental occlusion vs whole passes over work fractions (calibrates auto mode)",
)
def run(*, device: str = "cpu", quick: bool = False) -> dict:
    from ainu_engine.backends import create_backend
    from ainu_engine.explain import IncrementalPlans, occlusion
    from ainu_engine.explain._occlusion import INCREMENTAL_MAX_WORK

    from .infer import _model

    tmp = Path(tempfile.mkdtemp(prefix="ainu-bench-explain-plan-"))
    rows, figures, checks = [], [], []
    for arch, size, window, stride in QUICK if quick else CONFIGS:
        where = tmp / f"{arch}-{size}"
        if not where.exists():
            where.mkdir()
            _model(where, size, arch)
        onnx_path = where / "model.onnx"
        img = np.random.default_rng(0).random((CHANNELS, size, size), dtype=np.float32)
        with (
            create_backend(onnx_path, "onnxruntime", device="cpu") as backend,
            IncrementalPlans() as plans,
        ):

            def run_it(inc, backend=backend, img=img, window=window, stride=stride, plans=plans):
                return occlusion(
                    backend,
                    img,
                    window=window,
                    stride=stride,
                    target=0,
                    incremental=inc,
                    plans=plans,
                )

            big = size >= 512
            t_inc = measure(lambda: run_it(True), repeat=1 if big else 3, warmup=1)
            t_whole = measure(lambda: run_it(False), repeat=1 if big else 3, warmup=1)
            inc, whole, auto = run_it(True), run_it(False), run_it(None)
        scale = float(np.abs(whole.maps).max())
        ratio = t_whole["median_s"] / t_inc["median_s"]
        picked_inc = bool(auto.params["incremental"])
        ok = (ratio >= 1 / SLACK) if picked_inc else (ratio <= SLACK)
        label = f"{arch} {size}px {window}/{stride}"
        rows.append(
            {
                "config": label,
                "windows": whole.params["n_windows"],
                "work_fraction": inc.params["work_fraction"],
                "incremental_units": inc.params["incremental_units"],
                "units": inc.params["units"],
                "incremental": t_inc,
                "whole_passes": t_whole,
                "speedup": ratio,
                "auto_incremental": picked_inc,
                "auto_ok": ok,
                "max_rel_diff": float(np.abs(inc.maps - whole.maps).max() / scale),
            }
        )
        figures.append(
            {
                "name": f"{label}, work {inc.params['work_fraction']:.0%}: incremental plan (s per "
                "map)",
                "project": round(t_inc["median_s"], 3),
                "baseline": round(t_whole["median_s"], 3),
                "baseline_name": "whole passes, same backend",
                "ratio": ratio,
                "auto": f"{'incremental' if picked_inc else 'whole passes'}",
            }
        )
        checks.append(
            f"{label} ({inc.params['work_fraction']:.2f}: {ratio:.2f}x, auto "
            f"{'incremental' if picked_inc else 'whole'}{'' if ok else ' WRONG'})"
        )
    diffs = [r["max_rel_diff"] for r in rows]
    goals = [
        {
            "goal": f"auto mode (incremental up to {INCREMENTAL_MAX_WORK:.0%} of the work) picks "
            "the faster path, "
            f"or the other is at most {SLACK - 1:.0%} faster",
            "measured": "; ".join(checks),
            "met": all(r["auto_ok"] for r in rows),
        },
        {
            "goal": "the same maps both ways (max |diff| <= 1e-5 x max |attribution|)",
            "measured": f"max {max(diffs):.1e}",
            "met": max(diffs) <= 1e-5,
        },
    ]
    return {
        "inputs": {
            "configs": [r["config"] for r in rows],
            "image_channels": CHANNELS,
            "backend": "onnxruntime cpu",
            "copies_per_pass": "occlusion's defaults",
            "incremental_max_work": INCREMENTAL_MAX_WORK,
        },
        "baseline": "ainu_engine.explain.occlusion with incremental=False (whole passes) on the "
        "same backend",
        "configs": rows,
        "figures": figures,
        "goals": goals,
    }
