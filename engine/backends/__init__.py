"""Inference backends behind one runner contract (:class:`Backend`): load, warm up, infer a
batch into logits, describe; context managers.

- ``onnxruntime``: CPU execution provider with tuned threads, or the CUDA EP with IO binding;
- ``onnxruntime-tensorrt``: ONNX Runtime's TensorRT EP (fp16, engine and timing caches);
- ``tensorrt``: native TensorRT 10+ engine (optimisation profile over the batch, fp16, cache);
- ``torch`` / ``torch-compile``: the training checkpoint in PyTorch — the baseline, and the
  fallback where ONNX Runtime is missing.

``create_backend(model, "auto")`` picks the fastest available one and says which and why.
Nothing heavy is imported until a backend loads.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ._base import Backend, BackendUnavailable
from ._onnxruntime import OnnxRuntimeBackend
from ._tensorrt import TensorRTBackend
from ._torch import TorchBackend

__all__ = ["Backend", "BackendUnavailable", "OnnxRuntimeBackend", "TensorRTBackend", "TorchBackend",
           "create_backend", "BACKENDS"]

BACKENDS = ("auto", "onnxruntime", "onnxruntime-tensorrt", "tensorrt", "torch", "torch-compile")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _ort_providers() -> list[str]:
    if not _has("onnxruntime"):
        return []
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _cuda_gpu() -> bool:
    """A CUDA GPU usable from CuPy or torch (checked without initialising anything heavy first)."""
    if _has("cupy"):
        try:
            import cupy as cp

            return cp.cuda.runtime.getDeviceCount() > 0
        except Exception:  # noqa: BLE001 - no driver, no device
            pass
    if _has("torch"):
        import torch

        return bool(torch.cuda.is_available())
    return False


def create_backend(model: str | os.PathLike, backend: str = "auto", *, device: str = "auto",
                   checkpoint: str | os.PathLike | None = None, threads: int | None = None,
                   fp16: bool | None = None, spinning: bool = True) -> Backend:
    """Make (not yet load) the backend that runs ``model``; ``backend.reason`` says why this one.

    Parameters
    ----------
    model : path
        Exported ``.onnx`` (any backend) or training checkpoint ``.pt`` (torch only).
    backend : str
        One of :data:`BACKENDS`. ``auto``: native TensorRT when it and a GPU are present, else
        ONNX Runtime's TensorRT or CUDA EP on a GPU, else PyTorch on the GPU when the
        ``checkpoint`` is given (a GPU with the CPU build of ONNX Runtime), else ONNX Runtime
        on the CPU (measured faster than torch eager there, see ``benchmarks/``; with
        ``device="cuda"`` an error instead), else torch.
    device : {"auto", "cpu", "cuda"}
        For ``onnxruntime`` and ``torch``: where to run.
    checkpoint : path, optional
        The torch backends' checkpoint when ``model`` is the ``.onnx``.
    threads : int, optional
        CPU threads.
    fp16 : bool, optional
        Reduced precision. Default: on for TensorRT (native and ONNX Runtime's EP), off for
        torch; ``True`` makes torch on CUDA run under float16 autocast (ignored on the CPU).
    spinning : bool, default True
        ONNX Runtime on the CPU: let idle worker threads spin between operators (fastest
        alone); False when other CPU work runs beside inference (``screen`` renders there).

    Raises
    ------
    BackendUnavailable
        The asked backend cannot run here (missing package or device), or none can.
    ValueError
        Unknown backend name.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    model = Path(model)
    gpu = device != "cpu" and _cuda_gpu()
    if device == "cuda" and not gpu:
        raise BackendUnavailable("device cuda asked, but no CUDA GPU is visible", path=model,
                                 hint="use --device cpu")
    providers = _ort_providers()
    reason = ""
    if backend == "auto":
        if model.suffix == ".pt":
            backend, reason = "torch", "the model is a PyTorch checkpoint"
        elif gpu and _has("tensorrt") and _has("cupy"):
            backend, reason = "tensorrt", "TensorRT and a CUDA GPU are present (fp16 engine, fastest on NVIDIA GPUs)"
        elif gpu and "TensorrtExecutionProvider" in providers:
            backend, reason = "onnxruntime-tensorrt", "ONNX Runtime's TensorRT EP and a CUDA GPU are present"
        elif gpu and "CUDAExecutionProvider" in providers:
            backend, reason = "onnxruntime", "ONNX Runtime's CUDA EP and a CUDA GPU are present"
        elif gpu and checkpoint is not None and _has("torch"):
            # a GPU, but the CPU build of ONNX Runtime and no TensorRT: the GPU through PyTorch
            backend, reason = "torch", ("a CUDA GPU is present but ONNX Runtime has no CUDA EP here and TensorRT "
                                        "is missing: PyTorch on the GPU with the checkpoint")
        elif gpu and device == "cuda":
            raise BackendUnavailable("device cuda asked, but this ONNX Runtime has no CUDA or TensorRT execution "
                                     "provider (the CPU build is installed) and TensorRT is missing",
                                     path=model, hint='pip install "ainu-engine[cuda12]" (onnxruntime-gpu), give the '
                                                      'training checkpoint to run PyTorch on the GPU, or use '
                                                      '--device cpu')
        elif "CPUExecutionProvider" in providers:
            backend, reason = "onnxruntime", (
                "a CUDA GPU is present but ONNX Runtime has no CUDA EP here (CPU build) and TensorRT is missing: "
                "ONNX Runtime on the CPU (install onnxruntime-gpu, or give the checkpoint, to use the GPU)" if gpu
                else "no usable GPU: ONNX Runtime on the CPU (faster than torch eager there, see benchmarks/)")
            gpu = False
        elif checkpoint is not None and _has("torch"):
            backend, reason = "torch", "ONNX Runtime is not installed: PyTorch on the checkpoint"
        else:
            raise BackendUnavailable("no backend can run this model: onnxruntime is not installed",
                                     path=model, hint='pip install "ainu-engine[cpu]"')
    else:
        reason = "asked for"
    if backend == "onnxruntime":
        if device == "cuda" and "CUDAExecutionProvider" not in providers:
            raise BackendUnavailable("device cuda asked, but this ONNX Runtime has no CUDA execution provider "
                                     "(the CPU build is installed)", path=model,
                                     hint='pip install "ainu-engine[cuda12]" (onnxruntime-gpu), or use --device cpu')
        b = OnnxRuntimeBackend(model, provider="cuda" if gpu and "CUDAExecutionProvider" in providers
                               and device != "cpu" else "cpu", threads=threads, spinning=spinning)
    elif backend == "onnxruntime-tensorrt":
        b = OnnxRuntimeBackend(model, provider="tensorrt", fp16=fp16 is not False)
    elif backend == "tensorrt":
        b = TensorRTBackend(model, fp16=fp16 is not False)
    else:
        b = TorchBackend(model, checkpoint=checkpoint, device="cuda" if gpu else "cpu",
                         compile=backend == "torch-compile", fp16=bool(fp16),
                         threads=threads)
    b.reason = reason
    return b
