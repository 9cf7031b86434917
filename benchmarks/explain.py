"""Occlusion maps per second: ainu-engine (``ainu_engine.explain.occlusion`` on ONNX Runtime — the
incremental plan on the CPU, and whole passes — and on the torch model) vs
``captum.attr.Occlusion`` at its best ``perturbations_per_eval``, on the same ResNet-18
(2 channels, 512 x 512, window 64 / stride 32 = 225 occluded copies per map), image and
machine; the maps are checked equal (max |diff| <= 1e-5 x max |attribution|). The paper's
DenseNet-121 follows with its own rows against Captum on that model.

Goals (issue "Interpretability"): >= 5x Captum on CPU; >= 20x on a GPU (``--device cuda``).
Captum comes from the ``train`` extra; the model has random weights with calibrated batch norm
(speed does not depend on what the weights learned).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np

from ._harness import measure, register
from .infer import CHANNELS


@register(
    "explain",
    "occlusion maps/s (ResNet-18 and DenseNet-121, 512 px, 64/32): engine vs Captum Occlusion",
    devices=("cpu", "cuda"),
)
def run(
    *,
    device: str = "cpu",
    quick: bool = False,
    arch: str = "resnet18",
    also: tuple[str, ...] = ("densenet121",),
) -> dict:
    """``arch`` carries the goals; each of ``also`` (the paper's DenseNet-121) adds its own rows,
    compared with Captum on that model (fewer Captum settings and no torch engine rows on the CPU:
    a DenseNet-121 map takes Captum about a minute there)."""
    import torch

    size, window, stride = (128, 32, 16) if quick else (512, 64, 32)
    tmp = Path(tempfile.mkdtemp(prefix="ainu-bench-explain-"))
    img = np.random.default_rng(0).random((CHANNELS, size, size), dtype=np.float32)
    main = _one(arch, device, quick, tmp, img, window, stride, extra=False)
    rows, equal, figures, best_cap, best = (
        main["rows"],
        main["equal"],
        main["figures"],
        main["best_cap"],
        main["best"],
    )
    ratio = rows[best_cap]["median_s"] / rows[best]["median_s"]
    want = 5 if device == "cpu" else 20
    goals = [
        {
            "goal": f"{device.upper()}: occlusion maps/s >= {want}x Captum (best "
            f"perturbations_per_eval), {arch}",
            "measured": f"{ratio:.2f}x ({best}: {rows[best]['median_s']:.2f} s vs {best_cap}: "
            f"{rows[best_cap]['median_s']:.2f} s per map)",
            "met": ratio >= want,
        },
        {
            "goal": f"maps equal to Captum's (max |diff| <= 1e-5 x max |attribution|), {arch}",
            "measured": ", ".join(f"{k}: {v:.1e}" for k, v in equal.items()),
            "met": max(equal.values()) <= 1e-5,
        },
    ]
    timings, others, skipped = {arch: rows}, {}, {arch: main["skipped"]}
    for other in also:
        res = _one(other, device, quick, tmp, img, window, stride, extra=True)
        timings[other] = res["rows"]
        skipped[other] = res["skipped"]
        figures += res["figures"]
        others[other] = {
            "incremental_plan": res["plan"],
            "max_rel_diff_vs_captum": res["equal"],
            "max_rel_diff_vs_float64_captum": res["vs_float64"],
        }
        near = res["vs_float64"]
        goals.append(
            {
                "goal": "maps equal to Captum's (max |diff| <= 1e-5 x max |attribution|), "
                f"{other}, "
                "or nearer the float64 map than Captum's own float32 map",
                "measured": ", ".join(f"{k}: {v:.1e}" for k, v in res["equal"].items())
                + "; vs float64: "
                + ", ".join(f"{k}: {v:.1e}" for k, v in near.items()),
                "met": all(v <= 1e-5 or near[k] <= near["captum"] for k, v in res["equal"].items()),
            }
        )
    return {
        "inputs": {
            "arch": arch,
            "also": list(also),
            "image": [CHANNELS, size, size],
            "window": window,
            "stride": stride,
            "occluded_passes": int(((size - window + stride - 1) // stride + 1) ** 2),
            "threads_torch": torch.get_num_threads(),
            "incremental_plan": main["plan"],
            "others": others,
        },
        "baseline": "captum.attr.Occlusion on the same torch model (best perturbations_per_eval)",
        "timings": timings,
        "max_rel_diff_vs_captum": equal,
        "skipped": skipped,
        "figures": figures,
        "goals": goals,
    }


def _captum_rows(
    net, x, window: int, stride: int, target: int, *, device: str, quick: bool, extra: bool
) -> tuple[dict, dict]:
    """Captum's rows (each perturbations_per_eval setting) and its map."""
    from captum.attr import Occlusion

    if quick:
        ppe_values = [8, 32]
    elif device == "cpu":
        ppe_values = [1, 16] if extra else [1, 16, 64]
    else:  # a DenseNet-121 keeps its dense blocks' features alive: at most 64 copies at a time
        ppe_values = [16, 64] if extra else [16, 64, 225]
    rows, maps = {}, {}
    for ppe in ppe_values:
        occ = Occlusion(net)

        def cap(ppe=ppe, occ=occ):
            return occ.attribute(
                x,
                sliding_window_shapes=(CHANNELS, window, window),
                strides=(CHANNELS, stride, stride),
                target=target,
                baselines=0.0,
                perturbations_per_eval=ppe,
            )

        import torch

        t = measure(
            cap,
            repeat=1 if device == "cpu" else 3,
            warmup=0 if device == "cpu" else 1,
            sync=torch.cuda.synchronize if device == "cuda" else None,
        )
        rows[f"captum ppe={ppe}"] = t
        maps["captum"] = cap()[0, 0].detach().cpu().numpy()
    return rows, maps


def _engine_rows(
    engines, img, window: int, stride: int, target: int, repeat: int, plans, rows: dict, maps: dict
) -> dict:
    """The engine's rows (into ``rows`` and ``maps``); returns the incremental plan's
    description."""
    from ainu_engine.explain import occlusion

    plan = {}
    for label, b, sizes, inc in engines:
        for bs in sizes:

            def ours(b=b, bs=bs, inc=inc):
                return occlusion(
                    b,
                    img,
                    window=window,
                    stride=stride,
                    target=target,
                    batch_size=bs,
                    incremental=inc,
                    plans=plans,
                )

            rows[f"{label} batch={bs}"] = measure(ours, repeat=repeat, warmup=1)
            result = ours()
            maps[label] = result.maps[0]
            if inc:
                plan = {
                    k: v
                    for k, v in result.params.items()
                    if k in ("units", "window_units", "incremental_units", "tail", "work_fraction")
                }
    return plan


def _one(
    arch: str, device: str, quick: bool, tmp: Path, img, window: int, stride: int, *, extra: bool
) -> dict:
    """Captum and the engine's rows for one model; ``extra``: a second model (names prefixed,
    fewer settings on the CPU)."""
    import torch
    from captum.attr import Occlusion

    from ainu_engine.backends import BackendUnavailable, create_backend
    from ainu_engine.explain import IncrementalPlans

    from .infer import _model

    size = img.shape[1]
    where = tmp / arch
    where.mkdir()
    ckpt, onnx_path = _model(where, size, arch)
    torch_backend = create_backend(ckpt, "torch", device=device).load()
    net = torch_backend.model
    x = torch.from_numpy(img[None]).to(torch_backend.device)
    target = 0
    repeat = 1 if device == "cpu" else 3
    rows, maps = _captum_rows(
        net, x, window, stride, target, device=device, quick=quick, extra=extra
    )
    skipped = {}
    try:  # the exported model on the best backend for the device (TensorRT / ONNX Runtime)
        ort_backend = create_backend(onnx_path, "auto", device=device).load()
    except BackendUnavailable as err:  # a GPU with the CPU build of ONNX Runtime: torch rows only
        ort_backend, skipped["engine onnx model"] = None, str(err)
    # (label, backend, batch sizes, incremental): whole passes batch every occluded copy through
    # the full model; the incremental plan (ONNX Runtime CPU) re-computes only what a window changes
    whole = ([8] if extra else [8, 32]) if device == "cpu" else ([64] if extra else [64, 225])
    engines = (
        [(f"engine {ort_backend.name}", ort_backend, whole, False)]
        if ort_backend is not None
        else []
    )
    if not (extra and device == "cpu"):
        engines.append(("engine torch", torch_backend, whole, False))
    if (
        device == "cpu"
    ):  # 64 copies per pass is occlusion's default; DenseNet-121 keeps more in memory
        engines.insert(
            0, ("engine onnxruntime incremental", ort_backend, [64] if extra else [256], True)
        )
    with IncrementalPlans() as plans:  # built once per model, as explain and screen --explain do
        plan = _engine_rows(engines, img, window, stride, target, repeat, plans, rows, maps)
    if ort_backend is not None:
        ort_backend.close()
    best_cap = min((k for k in rows if k.startswith("captum")), key=lambda k: rows[k]["median_s"])
    scale = float(np.abs(maps["captum"]).max())
    equal = {
        k: float(np.abs(v - maps["captum"]).max() / scale) for k, v in maps.items() if k != "captum"
    }
    vs_float64 = None
    if (
        extra
    ):  # a deep network's float32 maps (Captum's too) drift: which is nearer the float64 map?
        net64 = copy.deepcopy(net).double()
        ref = (
            Occlusion(net64)
            .attribute(
                x.double(),
                sliding_window_shapes=(CHANNELS, window, window),
                strides=(CHANNELS, stride, stride),
                target=target,
                baselines=0.0,
                perturbations_per_eval=int(best_cap.split("=")[1]),
            )[0, 0]
            .detach()
            .cpu()
            .numpy()
        )
        vs_float64 = {k: float(np.abs(v - ref).max() / np.abs(ref).max()) for k, v in maps.items()}
        del net64
    torch_backend.close()
    figures = []
    prefix = f"{arch}: " if extra else ""
    for name, t in rows.items():
        fig = {
            "name": f"{prefix}{name}: one {size}px occlusion map ({window}/{stride}) (s)",
            "project": round(t["median_s"], 3),
        }
        if not name.startswith("captum"):
            fig.update(
                baseline=round(rows[best_cap]["median_s"], 3),
                baseline_name=f"Captum Occlusion, best ({best_cap})",
                ratio=rows[best_cap]["median_s"] / t["median_s"],
            )
        figures.append(fig)
    best = min((k for k in rows if not k.startswith("captum")), key=lambda k: rows[k]["median_s"])
    return {
        "rows": rows,
        "equal": equal,
        "figures": figures,
        "plan": plan,
        "best_cap": best_cap,
        "best": best,
        "vs_float64": vs_float64,
        "skipped": skipped,
    }
