"""Occlusion maps per second: ainu-engine (``engine.explain.occlusion`` on ONNX Runtime — the
incremental plan on the CPU, and whole passes — and on the torch model) vs
``captum.attr.Occlusion`` at its best ``perturbations_per_eval``, on the same ResNet-18
(2 channels, 512 x 512, window 64 / stride 32 = 225 occluded copies per map), image and
machine; the maps are checked equal (max |diff| <= 1e-5 x max |attribution|).

Goals (issue "Interpretability"): >= 5x Captum on CPU; >= 20x on a GPU (``--device cuda``).
Captum comes from the ``train`` extra; the model has random weights with calibrated batch norm
(speed does not depend on what the weights learned).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ._harness import measure, register


@register("explain", "occlusion maps/s (ResNet-18, 512 px, 64/32): engine vs Captum Occlusion",
          devices=("cpu", "cuda"))
def run(*, device: str = "cpu", quick: bool = False, arch: str = "resnet18") -> dict:
    import torch
    from captum.attr import Occlusion

    from engine.backends import create_backend
    from engine.explain import occlusion

    from .infer import CHANNELS, _model

    size, window, stride = (128, 32, 16) if quick else (512, 64, 32)
    tmp = Path(tempfile.mkdtemp(prefix="ainu-bench-explain-"))
    ckpt, onnx_path = _model(tmp, size, arch)
    img = np.random.default_rng(0).random((CHANNELS, size, size), dtype=np.float32)
    torch_backend = create_backend(ckpt, "torch", device=device).load()
    net = torch_backend.model
    x = torch.from_numpy(img[None]).to(torch_backend.device)
    target = 0
    repeat = 1 if device == "cpu" else 3
    rows, maps = {}, {}
    ppe_values = [8, 32] if quick else ([1, 16, 64] if device == "cpu" else [16, 64, 225])
    for ppe in ppe_values:
        occ = Occlusion(net)

        def cap(ppe=ppe, occ=occ):
            return occ.attribute(x, sliding_window_shapes=(CHANNELS, window, window), strides=(CHANNELS, stride, stride),
                                 target=target, baselines=0.0, perturbations_per_eval=ppe)

        t = measure(cap, repeat=repeat, warmup=0 if device == "cpu" else 1,
                    sync=torch.cuda.synchronize if device == "cuda" else None)
        rows[f"captum ppe={ppe}"] = t
        maps["captum"] = cap()[0, 0].detach().cpu().numpy()
    ort_backend = create_backend(onnx_path, "auto", device=device).load()
    # (label, backend, batch sizes, incremental): whole passes batch every occluded copy through
    # the full model; the incremental plan (ONNX Runtime CPU) re-computes only what a window changes
    engines = [("engine onnxruntime", ort_backend, [8, 32] if device == "cpu" else [64, 225], False),
               ("engine torch", torch_backend, [8, 32] if device == "cpu" else [64, 225], False)]
    if device == "cpu":
        engines.insert(0, ("engine onnxruntime incremental", ort_backend, [256], True))
    plan = {}
    for label, b, sizes, inc in engines:
        for bs in sizes:
            def ours(b=b, bs=bs, inc=inc):
                return occlusion(b, img, window=window, stride=stride, target=target, batch_size=bs, incremental=inc)

            rows[f"{label} batch={bs}"] = measure(ours, repeat=repeat, warmup=1)
            result = ours()
            maps[label] = result.maps[0]
            if inc:
                plan = {k: v for k, v in result.params.items() if k in ("units", "window_units", "tail")}
    best_cap = min((k for k in rows if k.startswith("captum")), key=lambda k: rows[k]["median_s"])
    scale = float(np.abs(maps["captum"]).max())
    equal = {k: float(np.abs(v - maps["captum"]).max() / scale) for k, v in maps.items() if k != "captum"}
    figures = []
    for name, t in rows.items():
        fig = {"name": f"{name}: one {size}px occlusion map ({window}/{stride}) (s)", "project": round(t["median_s"], 3)}
        if not name.startswith("captum"):
            fig.update(baseline=round(rows[best_cap]["median_s"], 3), baseline_name=f"Captum Occlusion, best ({best_cap})",
                       ratio=rows[best_cap]["median_s"] / t["median_s"])
        figures.append(fig)
    best = min((k for k in rows if not k.startswith("captum")), key=lambda k: rows[k]["median_s"])
    ratio = rows[best_cap]["median_s"] / rows[best]["median_s"]
    want = 5 if device == "cpu" else 20
    goals = [{"goal": f"{device.upper()}: occlusion maps/s >= {want}x Captum (best perturbations_per_eval)",
              "measured": f"{ratio:.2f}x ({best}: {rows[best]['median_s']:.2f} s vs {best_cap}: "
                          f"{rows[best_cap]['median_s']:.2f} s per map)", "met": ratio >= want},
             {"goal": "maps equal to Captum's (max |diff| <= 1e-5 x max |attribution|)",
              "measured": ", ".join(f"{k}: {v:.1e}" for k, v in equal.items()), "met": max(equal.values()) <= 1e-5}]
    return {"inputs": {"arch": arch, "image": [CHANNELS, size, size], "window": window, "stride": stride,
                       "occluded_passes": int(((size - window + stride - 1) // stride + 1) ** 2),
                       "threads_torch": torch.get_num_threads(), "incremental_plan": plan},
            "baseline": "captum.attr.Occlusion on the same torch model (best perturbations_per_eval)",
            "timings": rows, "max_rel_diff_vs_captum": equal, "figures": figures, "goals": goals}
