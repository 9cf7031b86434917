"""``ainu-engine doctor``: what a bug report needs about this machine and installation, in the
spirit of ``napari --info`` and ``hf env`` — versions, CPU and its SIMD flags, GPU and CUDA,
which backends can run and why the others cannot, threads, caches. Nothing heavy is imported
to find out (versions come from the installed distributions' metadata)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata, util
from pathlib import Path

__all__ = ["doctor_report"]

#: distributions whose versions matter to a bug report (name on PyPI)
LIBRARIES = (
    "numpy", "numba", "llvmlite", "scipy", "pyarrow", "h5py", "tifffile", "roifile",
    "scikit-image", "matplotlib", "rich", "typer", "onnxruntime", "onnxruntime-gpu", "onnx",
    "torch", "captum", "scikit-learn", "tensorrt", "cupy-cuda12x", "cupy-cuda13x",
    "numba-cuda", "ray", "starlette", "uvicorn", "napari", "npe2", "magicgui",
    "bioimageio.core", "bioimageio.spec", "pydantic",
)  # fmt: skip
#: CPU flags that decide which kernels run fast (Numba, ONNX Runtime int8)
SIMD = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
        "amx_int8", "neon", "asimd")  # fmt: skip
ENV = ("AINU_CACHE_DIR", "AINU_DEBUG", "AINU_REAL_GPU", "NUMBA_NUM_THREADS",
       "NUMBA_THREADING_LAYER", "NUMBA_CACHE_DIR", "NUMBA_ENABLE_CUDASIM", "OMP_NUM_THREADS",
       "CUDA_VISIBLE_DEVICES", "RAY_ADDRESS")  # fmt: skip


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu() -> dict:
    from .backends import cpu_description, physical_cores

    model, flags = cpu_description()
    return {
        "model": model,
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": physical_cores(),
        "simd": [f for f in SIMD if f in flags],
    }


def _gpu() -> dict:
    """GPUs as the NVIDIA driver lists them (nvidia-smi), and what CUDA the libraries see."""
    out: dict = {"nvidia_smi": None, "gpus": [], "torch_cuda": None, "cupy": None}
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            res = subprocess.run(
                [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10, check=False,
            )  # fmt: skip
            out["nvidia_smi"] = smi
            out["gpus"] = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
        except (OSError, subprocess.SubprocessError) as err:
            out["nvidia_smi"] = f"{smi} (failed: {err})"
    if util.find_spec("torch") is not None:
        try:
            import torch

            out["torch_cuda"] = {"built_with": torch.version.cuda,
                                 "available": bool(torch.cuda.is_available()),
                                 "devices": torch.cuda.device_count()}  # fmt: skip
        except Exception as err:  # noqa: BLE001 - a broken install is worth reporting
            out["torch_cuda"] = f"error: {err}"
    if util.find_spec("cupy") is not None:
        try:
            import cupy as cp

            out["cupy"] = {"devices": cp.cuda.runtime.getDeviceCount(),
                           "runtime": cp.cuda.runtime.runtimeGetVersion()}  # fmt: skip
        except Exception as err:  # noqa: BLE001 - no driver, no device
            out["cupy"] = f"no CUDA device: {str(err).splitlines()[0]}"
    return out


def _backends() -> list[dict]:
    """Every backend name: can it run here, and if not, why."""
    from .backends import BACKENDS, _cuda_gpu, _has, _ort_providers

    providers = _ort_providers()
    gpu = _cuda_gpu()
    rows = []
    for name in BACKENDS:
        if name == "auto":
            continue
        if name == "onnxruntime":
            ok = bool(providers)
            why = (f"providers: {', '.join(providers)}" if ok else
                   'onnxruntime is not installed (pip install "ainu-engine[cpu]")')  # fmt: skip
        elif name == "onnxruntime-tensorrt":
            ok = "TensorrtExecutionProvider" in providers and gpu
            why = "TensorRT EP and a CUDA GPU" if ok else (
                "no TensorrtExecutionProvider (the onnxruntime-gpu build and TensorRT)"
                if "TensorrtExecutionProvider" not in providers else "no CUDA GPU")  # fmt: skip
        elif name == "tensorrt":
            ok = _has("tensorrt") and _has("cupy") and gpu
            why = "TensorRT, CuPy and a CUDA GPU" if ok else ", ".join(
                w for w, miss in (("tensorrt is not installed", not _has("tensorrt")),
                                  ("cupy is not installed", not _has("cupy")),
                                  ("no CUDA GPU", not gpu)) if miss)  # fmt: skip
        else:  # torch, torch-compile
            ok = _has("torch")
            why = ("PyTorch on " + ("the GPU and the CPU" if gpu else "the CPU") if ok else
                   'torch is not installed (pip install "ainu-engine[train]")')  # fmt: skip
            if name == "torch-compile" and ok and not gpu:
                why += " (CUDA graphs need a GPU)"
        rows.append({"backend": name, "available": bool(ok), "why": why})
    return rows


def _threads() -> dict:
    import numba

    layer = None
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process: the configured one
        layer = f"not started (configured: {numba.config.THREADING_LAYER})"
    from .backends import physical_cores

    return {
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_threading_layer": layer,
        "onnxruntime_intra_op_threads": physical_cores(),
    }


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def _caches() -> dict:
    from .cache import cache_root

    root = cache_root()
    out = {"root": str(root), "exists": root.is_dir(), "folders": {}}
    if root.is_dir():
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            out["folders"][d.name] = _size(d)
        out["bytes"] = sum(out["folders"].values())
    numba_dir = os.environ.get("NUMBA_CACHE_DIR")
    out["numba"] = numba_dir or "beside the package's modules (__pycache__)"
    return out


def doctor_report() -> dict:
    """The report ``ainu-engine doctor`` prints (a plain dict: ``--json`` writes it).

    Returns
    -------
    dict
    """
    from .provenance import __version__

    return {
        "ainu_engine": __version__,
        "python": {
            "version": sys.version.split()[0],
            "executable": sys.executable,
            "implementation": platform.python_implementation(),
        },  # fmt: skip
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "platform": platform.platform(),
        },  # fmt: skip
        "cpu": _cpu(),
        "gpu": _gpu(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "backends": _backends(),
        "threads": _threads(),
        "caches": _caches(),
        "environment": {k: os.environ[k] for k in ENV if k in os.environ},
    }
