"""ONNX Runtime backend: CPU execution provider with tuned threads, CUDA EP with IO binding
(inputs already on the GPU are not copied through the host), TensorRT EP (fp16, engine and
timing caches in the user cache directory)."""

from __future__ import annotations

import os

import numpy as np

from ..cache import cache_dir
from ..onnx_session import ort_session
from ._base import Backend, BackendUnavailable, is_device_array
from ._providers import cuda_provider_options, tensorrt_provider_options
from ._tensorrt import check_tensorrt_model

__all__ = ["OnnxRuntimeBackend"]

_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def physical_cores() -> int:
    """Cores this process may use (affinity), the useful intra-op thread count on a CPU.

    Returns
    -------
    int
        At least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def session_options(ort, *, threads: int | None = None, spinning: bool = True):
    """The project's ONNX Runtime session options: all graph optimisations, sequential, quiet;
    on the CPU ``threads`` intra-op threads (one inter-op) and, with ``spinning=False``, idle
    worker threads that sleep instead of spinning — slower at batch 1, but the cores go to the
    work beside it (rendering in screen; docs/screening.md).

    Parameters
    ----------
    ort : module
        ``onnxruntime``.
    threads : int, optional
        Intra-op threads (None: ONNX Runtime's default, for GPU providers).
    spinning : bool, default True
        Let idle worker threads spin.

    Returns
    -------
    onnxruntime.SessionOptions
    """
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


class OnnxRuntimeBackend(Backend):
    """Run an exported model through ONNX Runtime.

    Parameters
    ----------
    model_path : path
        The ``.onnx`` file.
    provider : {"cpu", "cuda", "tensorrt"}
        Execution provider (``cuda``/``tensorrt`` need the ``onnxruntime-gpu`` build).
    threads : int, optional
        Intra-op threads on the CPU (default: the cores this process may use).
    fp16 : bool, default True
        TensorRT EP only: allow float16 kernels for an fp32 model. An fp16 or int8 model
        (``ainu-engine export --precision``) runs in its own precision on every provider; on
        the TensorRT EP an int8 (QDQ) model turns on ``trt_int8_enable`` with no calibration
        table (explicit quantization: the scales are the Q/DQ nodes').
    spinning : bool, default True
        On the CPU: let idle worker threads spin between operators (fastest alone).
    batch_size : int, optional
        The batch screening fills (default 8 on the CPU, 64 on a GPU).
    reason : str
        Why this backend was chosen (:func:`create_backend` says).

    Examples
    --------
    >>> import numpy as np
    >>> from ainu_engine.backends import OnnxRuntimeBackend
    >>> with OnnxRuntimeBackend("examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx") as b:
    ...     logits = b.infer(np.zeros((3, 1, 64, 64), np.float32))
    ...     shape, ready = b.input_shape, logits.shape
    >>> shape, ready
    (('batch', 1, 64, 64), (3, 2))
    """

    name = "onnxruntime"

    def __init__(
        self,
        model_path,
        *,
        provider: str = "cpu",
        threads: int | None = None,
        fp16: bool = True,
        spinning: bool = True,
        batch_size: int | None = None,
        reason: str = "",
    ) -> None:
        if provider not in _PROVIDERS:
            raise ValueError(f"provider must be one of {', '.join(_PROVIDERS)}, got {provider!r}")
        super().__init__(
            model_path,
            device="cpu" if provider == "cpu" else "cuda",
            batch_size=batch_size,
            reason=reason,
        )
        self.provider = provider
        self.threads = threads
        self.fp16 = fp16
        self.spinning = spinning
        self.session = None

    def _load_impl(self) -> None:
        if self.provider == "tensorrt":
            check_tensorrt_model(self.info, self.model_path)
        ort = self._require("onnxruntime", extra="cpu" if self.provider == "cpu" else "cuda12")
        want = _PROVIDERS[self.provider]
        if want not in ort.get_available_providers():
            raise BackendUnavailable(
                f"ONNX Runtime has no {want} here (available: "
                f"{', '.join(ort.get_available_providers())})",
                path=self.model_path,
                hint="install onnxruntime-gpu ([cuda12]/[cuda13]) on a machine with an NVIDIA GPU",
            )
        cpu = self.provider == "cpu"
        so = session_options(
            ort,
            threads=(self.threads or physical_cores()) if cpu else None,
            spinning=self.spinning or not cpu,
        )
        providers: list = []
        if self.provider == "tensorrt":
            info = self.model_info()
            providers.append(
                (
                    "TensorrtExecutionProvider",
                    tensorrt_provider_options(
                        input_name=info.input_name,
                        channels=info.n_channels,
                        size=info.input_size,
                        precision=info.precision,
                        fp16=bool(self.fp16),
                        cache_path=cache_dir("tensorrt-ep"),
                    ),
                )
            )
        if self.provider in ("cuda", "tensorrt"):
            providers.append(("CUDAExecutionProvider", cuda_provider_options()))
        providers.append("CPUExecutionProvider")
        self.session = ort_session(self.model_path, options=so, providers=providers)
        self.check_graph(
            {i.name: i.shape for i in self.session.get_inputs()},
            {o.name: o.shape for o in self.session.get_outputs()},
        )
        used = self.session.get_providers()
        if used[0] != want:
            raise BackendUnavailable(
                f"ONNX Runtime could not start {want} (it fell back to {used[0]})",
                path=self.model_path,
                hint="check the CUDA/cuDNN/TensorRT libraries",
            )

    def _infer_impl(self, x) -> np.ndarray:
        info = self.info
        if is_device_array(x) and self.device == "cuda":
            # IO binding: the input stays where it is on the GPU; only the logits come back
            cai = x.__cuda_array_interface__
            if cai.get("typestr") not in ("<f4", "|f4") or cai.get("strides") not in (None,):
                raise ValueError("GPU input must be a C-contiguous float32 array")
            binding = self.session.io_binding()
            binding.bind_input(
                info.input_name, "cuda", 0, np.float32, list(x.shape), int(cai["data"][0])
            )
            binding.bind_output(info.output_name, "cpu")
            self.session.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()[0]
        if is_device_array(x):
            x = _to_host(x)
        return self.session.run([info.output_name], {info.input_name: x})[0]

    def _infer_embedding_impl(self, x):
        info = self.info
        if is_device_array(x):
            x = _to_host(x)
        logits, emb = self.session.run([info.output_name, info.embedding_name],
                                       {info.input_name: x})  # fmt: skip
        return logits, emb

    def _describe_impl(self) -> dict:
        precision = self.info.precision if self.info is not None else "fp32"
        d = {
            "provider": self.provider,
            "precision": (
                f"{precision} (fp16 kernels allowed)"
                if self.provider == "tensorrt" and self.fp16 and precision == "fp32"
                else precision
            ),
        }
        if self.session is not None:
            import onnxruntime as ort

            d["providers"] = self.session.get_providers()
            d["onnxruntime"] = ort.__version__
        if self.provider == "cpu":
            d["threads"] = self.threads or physical_cores()
        return d

    def _close_impl(self) -> None:
        self.session = None


def _to_host(x) -> np.ndarray:
    if hasattr(x, "copy_to_host"):  # Numba device array
        return np.ascontiguousarray(x.copy_to_host(), np.float32)
    if hasattr(x, "get"):  # CuPy
        return np.ascontiguousarray(x.get(), np.float32)
    return np.ascontiguousarray(x.detach().cpu().numpy(), np.float32)  # torch
