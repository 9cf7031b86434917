"""Inference backends behind one runner contract (:class:`Backend`): load, warm up, infer a
batch into logits, describe; context managers.

- ``onnxruntime``: CPU execution provider with tuned threads, or the CUDA EP with IO binding;
- ``onnxruntime-tensorrt``: ONNX Runtime's TensorRT EP (fp16, engine and timing caches);
- ``tensorrt``: native TensorRT 10+ engine (optimisation profile over the batch, fp16, cache);
- ``torch`` / ``torch-compile``: the training checkpoint in PyTorch — the baseline, and the
  fallback where ONNX Runtime is missing. They live in ``ainu_engine.training.backend`` and
  reach this registry through the :data:`ENTRY_POINT_GROUP` entry points, so nothing here
  imports the training package.

``create_backend(model, "auto")`` picks the fastest available one and says which and why:
what ``ainu-engine bench`` measured for this model on this machine when it was measured
(:func:`machine_id`, kept in the cache), else the order below. Nothing heavy is imported until
a backend loads.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import platform
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

from ..optional import install_hint
from ._base import Backend, BackendUnavailable, is_device_array
from ._measured import measured_best, save_measurements
from ._onnxruntime import OnnxRuntimeBackend, physical_cores, session_options
from ._tensorrt import TensorRTBackend

__all__ = [
    "Backend",
    "BackendUnavailable",
    "OnnxRuntimeBackend",
    "TensorRTBackend",
    "create_backend",
    "register_backend",
    "runnable_backends",
    "machine_id",
    "cpu_description",
    "measured_best",
    "save_measurements",
    "is_device_array",
    "physical_cores",
    "session_options",
    "BACKENDS",
    "ENTRY_POINT_GROUP",
]

BACKENDS = ("auto", "onnxruntime", "onnxruntime-tensorrt", "tensorrt", "torch", "torch-compile")

#: Entry point group through which other packages (ainu_engine.training: ``torch`` and
#: ``torch-compile``) add backends without the engine importing them.
ENTRY_POINT_GROUP = "ainu_engine.backends"

#: A factory: ``factory(model, *, device, checkpoint, threads, fp16, spinning, batch_size, reason)``
#: -> an unloaded :class:`Backend`; ``device`` is "cpu" or "cuda" (already decided).
BackendFactory = Callable[..., Backend]


def _onnxruntime(model, *, device, threads, spinning, batch_size, reason, **_):
    return OnnxRuntimeBackend(
        model,
        provider="cuda" if device == "cuda" else "cpu",
        threads=threads,
        spinning=spinning,
        batch_size=batch_size,
        reason=reason,
    )


def _onnxruntime_tensorrt(model, *, fp16, batch_size, reason, **_):
    return OnnxRuntimeBackend(
        model, provider="tensorrt", fp16=fp16 is not False, batch_size=batch_size, reason=reason
    )


def _tensorrt(model, *, fp16, batch_size, reason, **_):
    return TensorRTBackend(model, fp16=fp16 is not False, batch_size=batch_size, reason=reason)


_REGISTRY: dict[str, BackendFactory] = {
    "onnxruntime": _onnxruntime,
    "onnxruntime-tensorrt": _onnxruntime_tensorrt,
    "tensorrt": _tensorrt,
}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``create_backend(model, name)`` use ``factory``.

    Packages can instead declare an entry point in the :data:`ENTRY_POINT_GROUP` group, which
    is loaded only when that backend is asked for.

    Parameters
    ----------
    name : str
        The backend's name (not ``auto``).
    factory : callable
        :data:`BackendFactory`: ``factory(model, *, device, checkpoint, threads, fp16,
        spinning, batch_size, reason)`` -> an unloaded :class:`Backend`.

    Raises
    ------
    ValueError
        An empty name or ``auto``.
    """
    if not name or name == "auto":
        raise ValueError(f"a backend cannot be registered as {name!r}")
    _REGISTRY[name] = factory


def _factory(name: str) -> BackendFactory:
    if name not in _REGISTRY:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                try:
                    _REGISTRY[name] = ep.load()
                except ImportError as err:
                    raise BackendUnavailable(
                        f"the {name} backend cannot be loaded: {err}",
                        hint=install_hint("train"),
                    ) from err
                break
    if name not in _REGISTRY:
        known = sorted({*_REGISTRY, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
        close = difflib.get_close_matches(name, known, n=2)
        raise BackendUnavailable(
            f"no backend named {name!r} is installed (installed: {', '.join(known)})",
            hint=f"did you mean {' or '.join(close)}?"
            if close
            else f"the torch backends come with the training extra: {install_hint('train')}",
        )
    return _REGISTRY[name]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _ort_providers() -> list[str]:
    if not _has("onnxruntime"):
        return []
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _no_nvidia_driver() -> bool:
    """True where no NVIDIA driver is loaded, so no CUDA GPU can be (Linux: neither the kernel
    module's ``/proc/driver/nvidia`` nor WSL's ``/dev/dxg``); False where it cannot tell."""
    if not sys.platform.startswith("linux"):
        return False
    return not (Path("/proc/driver/nvidia/version").exists() or Path("/dev/dxg").exists())


def _cuda_gpu() -> bool:
    """A CUDA GPU usable from CuPy or torch (checked without initialising anything heavy first:
    without an NVIDIA driver, torch — about a second to import — is not asked)."""
    if _no_nvidia_driver():
        return False
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


def create_backend(
    model: str | os.PathLike,
    backend: str = "auto",
    *,
    device: str = "auto",
    checkpoint: str | os.PathLike | None = None,
    threads: int | None = None,
    fp16: bool | None = None,
    spinning: bool = True,
    batch_size: int | None = None,
) -> Backend:
    """Make (not yet load) the backend that runs ``model``; ``backend.reason`` says why this one.

    Parameters
    ----------
    model : path
        Exported ``.onnx`` (any backend) or training checkpoint ``.pt`` (torch only).
    backend : str
        One of :data:`BACKENDS` (or a name registered with :func:`register_backend`). ``auto``:
        for an ``.onnx`` that ``ainu-engine bench`` measured on this machine, the backend,
        device and batch it measured fastest (among those that can run now; ``reason`` says
        so); otherwise native TensorRT when it and a GPU are present, else
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
    batch_size : int, optional
        The backend's ``preferred_batch`` (default: its own, 8 on the CPU, 64 on a GPU).

    Returns
    -------
    Backend
        Not loaded yet; ``backend.reason`` says why it was chosen.

    Raises
    ------
    BackendUnavailable
        The asked backend cannot run here (missing package or device), or none can.
    ValueError
        Unknown backend name.

    Examples
    --------
    >>> from ainu_engine.backends import create_backend
    >>> b = create_backend("examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx",
    ...                    "onnxruntime", device="cpu")
    >>> b.name, b.reason
    ('onnxruntime', 'asked for')
    """
    model = Path(model)
    if (
        backend not in BACKENDS
        and backend not in _REGISTRY
        and backend not in {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    ):
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    gpu = device != "cpu" and _cuda_gpu()
    if device == "cuda" and not gpu:
        raise BackendUnavailable(
            "device cuda asked, but no CUDA GPU is visible", path=model, hint="use --device cpu"
        )
    providers = _ort_providers()
    measured = None
    if backend == "auto" and model.suffix == ".onnx":
        measured = measured_best(model, machine_id(), runnable_backends(model, device))
    if measured is not None:
        backend, gpu = measured["backend"], measured["device"] == "cuda"
        batch_size = batch_size or int(measured["batch"])
        reason = (
            f"the fastest that `ainu-engine bench` measured for this model on this machine "
            f"({measured.get('date_utc') or 'earlier'}): {measured['images_per_s']:.1f} "
            f"images/s at batch {measured['batch']} on {measured['device']}"
        )
    elif backend == "auto":
        backend, reason, gpu = _choose(
            model, device=device, gpu=gpu, providers=providers, checkpoint=checkpoint
        )
    else:
        reason = "asked for"
    if backend == "onnxruntime":
        if device == "cuda" and "CUDAExecutionProvider" not in providers:
            raise BackendUnavailable(
                "device cuda asked, but this ONNX Runtime has no CUDA execution provider "
                "(the CPU build is installed)",
                path=model,
                hint='pip install "ainu-engine[cuda12]" (onnxruntime-gpu), or use --device cpu',
            )
        gpu = gpu and "CUDAExecutionProvider" in providers
    return _factory(backend)(
        model,
        device="cuda" if gpu else "cpu",
        checkpoint=checkpoint,
        threads=threads,
        fp16=fp16,
        spinning=spinning,
        batch_size=batch_size,
        reason=reason,
    )


def runnable_backends(model: str | os.PathLike, device: str = "auto") -> list[tuple[str, str]]:
    """(backend, device) pairs that can run ``model`` on this machine (``ainu-engine bench``
    measures each).

    Parameters
    ----------
    model : path
        An ``.onnx`` or a checkpoint.
    device : {"auto", "cpu", "cuda"}
        Where it may run.

    Returns
    -------
    list of (str, str)
        ONNX Runtime on the CPU and, with a GPU, its CUDA and TensorRT providers and native
        TensorRT, for an ``.onnx``; torch for a checkpoint.
    """
    prov = _ort_providers()
    gpu = device != "cpu" and _cuda_gpu()
    out = []
    if Path(model).suffix == ".onnx":
        if "CPUExecutionProvider" in prov and device != "cuda":
            out.append(("onnxruntime", "cpu"))
        if gpu and "CUDAExecutionProvider" in prov:
            out.append(("onnxruntime", "cuda"))
        if gpu and "TensorrtExecutionProvider" in prov:
            out.append(("onnxruntime-tensorrt", "cuda"))
        if gpu and _has("tensorrt") and _has("cupy"):
            out.append(("tensorrt", "cuda"))
    elif _has("torch"):
        out.append(("torch", "cuda" if gpu else "cpu"))
    return out


def cpu_description() -> tuple[str, frozenset[str]]:
    """The CPU's model name and its feature flags.

    Returns
    -------
    (str, frozenset of str)
        From ``/proc/cpuinfo`` (``flags`` on x86, ``Features`` on ARM); the platform's
        processor name and no flags where that file is not.
    """
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            found_model = False
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not found_model:
                    model, found_model = value.strip(), True
                elif key in ("flags", "Features") and not flags:
                    flags = frozenset(value.split())
                if found_model and flags:
                    break
    except OSError:
        pass
    return model, flags


def machine_id() -> dict:
    """What decides how fast a model runs here, the key of ``bench``'s kept measurements.

    Returns
    -------
    dict
        ``cpu`` (model), ``cores`` (this process may use), ``gpu``, ``onnxruntime`` (version),
        ``providers``.
    """
    cpu, _ = cpu_description()
    gpu = None
    if _cuda_gpu():
        try:
            import torch

            gpu = torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001 - no torch: CuPy names it
            try:
                import cupy as cp

                name = cp.cuda.runtime.getDeviceProperties(0)["name"]
                gpu = name.decode() if isinstance(name, bytes) else str(name)
            except Exception:  # noqa: BLE001
                gpu = "unknown CUDA GPU"
    ort_version = None
    if _has("onnxruntime"):
        import onnxruntime as ort

        ort_version = ort.__version__
    return {
        "cpu": cpu,
        "cores": physical_cores(),
        "gpu": gpu,
        "onnxruntime": ort_version,
        "providers": sorted(_ort_providers()),
    }


def _choose(
    model: Path, *, device: str, gpu: bool, providers: list[str], checkpoint
) -> tuple[str, str, bool]:
    """What ``auto`` runs: (backend name, why, whether on the GPU)."""
    if model.suffix == ".pt":
        return "torch", "the model is a PyTorch checkpoint", gpu
    if gpu and _has("tensorrt") and _has("cupy"):
        return (
            "tensorrt",
            "TensorRT and a CUDA GPU are present (fp16 engine, fastest on NVIDIA GPUs)",
            True,
        )
    if gpu and "TensorrtExecutionProvider" in providers:
        return "onnxruntime-tensorrt", "ONNX Runtime's TensorRT EP and a CUDA GPU are present", True
    if gpu and "CUDAExecutionProvider" in providers:
        return "onnxruntime", "ONNX Runtime's CUDA EP and a CUDA GPU are present", True
    if gpu and checkpoint is not None and _has("torch"):
        # a GPU, but the CPU build of ONNX Runtime and no TensorRT: the GPU through PyTorch
        return (
            "torch",
            (
                "a CUDA GPU is present but ONNX Runtime has no CUDA EP here and TensorRT "
                "is missing: PyTorch on the GPU with the checkpoint"
            ),
            True,
        )
    if gpu and device == "cuda":
        raise BackendUnavailable(
            "device cuda asked, but this ONNX Runtime has no CUDA or TensorRT execution "
            "provider (the CPU build is installed) and TensorRT is missing",
            path=model,
            hint='pip install "ainu-engine[cuda12]" (onnxruntime-gpu), give the '
            "training checkpoint to run PyTorch on the GPU, or use "
            "--device cpu",
        )
    if "CPUExecutionProvider" in providers:
        return (
            "onnxruntime",
            (
                "a CUDA GPU is present but ONNX Runtime has no CUDA EP here (CPU build) and "
                "TensorRT is missing: "
                "ONNX Runtime on the CPU (install onnxruntime-gpu, or give the checkpoint, to use "
                "the GPU)"
                if gpu
                else "no usable GPU: ONNX Runtime on the CPU (faster than torch eager there, see "
                "benchmarks/)"
            ),
            False,
        )
    if checkpoint is not None and _has("torch"):
        return "torch", "ONNX Runtime is not installed: PyTorch on the checkpoint", gpu
    raise BackendUnavailable(
        "no backend can run this model: onnxruntime is not installed",
        path=model,
        hint='pip install "ainu-engine[cpu]"',
    )
