"""Native TensorRT (10+) backend: an engine built from the .onnx with an optimisation profile
over the batch range, a serialised-engine cache keyed by model hash + GPU + TensorRT version +
precision, asynchronous execution on a CUDA stream (CuPy memory).

Precision follows the model (:attr:`ModelInfo.precision`, ``ainu-engine export --precision``):

- ``fp32`` model: float32, plus float16 kernels where the GPU has fast fp16 (``fp16=True``,
  the default) — TensorRT picks per layer;
- ``fp16`` model (a float16 graph with float32 input and output): built as it is typed;
- ``int8`` model (QDQ, from ONNX Runtime's static quantization): TensorRT's *explicit
  quantization* — the scales are the Q/DQ nodes', no calibrator runs.

The two reduced-precision models are built as strongly typed networks where this TensorRT has
them (10.x; its documentation asks for no precision flags then); an older 10.x without strong
typing gets the FP16 or INT8 builder flag instead (:func:`build_plan`).

Written against the TensorRT 10 Python API (name-based tensors, ``execute_async_v3``); TensorRT
cannot be installed on the machines this project is developed on, so this path is unverified
there and its tests skip with that reason."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cache import cache_dir
from ..io import atomic_write_bytes
from ..model import ModelInfo
from ._base import Backend, BackendUnavailable, is_device_array

if TYPE_CHECKING:  # the TensorRT API as typed by tensorrt-stubs (make typecheck; CI)
    import tensorrt as trt

__all__ = ["TensorRTBackend", "build_plan", "check_tensorrt_model"]


def check_tensorrt_model(info: ModelInfo, path: str | os.PathLike[str]) -> None:
    """Refuse, before any build, a model TensorRT cannot take: an int8 model exported with
    unsigned activations (``--int8-activations u8``, for CPUs) — TensorRT's explicit
    quantization needs signed, symmetric int8."""
    cal = (info.provenance or {}).get("calibration") or {}
    if info.precision == "int8" and cal.get("activations") == "u8":
        raise BackendUnavailable(
            "this int8 model has unsigned activations (exported with --int8-activations u8, "
            "for CPUs); TensorRT's explicit quantization needs signed symmetric int8",
            path=path,
            hint="export it again with --int8-activations s8, or run it with --backend onnxruntime",
        )


def build_plan(trt: Any, precision: str, *, fp16: bool, fast_fp16: bool) -> tuple[int, list[Any]]:
    """How to build a model of ``precision``: (network creation flags, builder flags to set).

    ``trt`` is the ``tensorrt`` module (anything with its ``NetworkDefinitionCreationFlag`` and
    ``BuilderFlag`` enums); ``fp16`` is whether float16 kernels are allowed for an fp32 model;
    ``fast_fp16`` is ``builder.platform_has_fast_fp16``."""
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"unknown model precision {precision!r} (fp32, fp16 or int8)")
    if precision == "fp32":
        return 0, ([trt.BuilderFlag.FP16] if fp16 and fast_fp16 else [])
    strong = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strong is not None:  # the graph's types (and Q/DQ scales) decide: no precision flags
        return 1 << int(strong), []
    if precision == "fp16":
        return 0, [trt.BuilderFlag.FP16]
    # explicit quantization in a weakly typed network: INT8 on, no calibrator (the Q/DQ scales)
    return 0, [trt.BuilderFlag.INT8, *([trt.BuilderFlag.FP16] if fast_fp16 else [])]


class TensorRTBackend(Backend):
    """Run an exported model as a TensorRT engine.

    Parameters
    ----------
    model_path : path
        The ``.onnx`` file.
    fp16 : bool, default True
        For an fp32 model: allow float16 kernels (when the GPU has fast fp16). An fp16 or int8
        model runs in its own precision either way.
    max_batch : int, default 256
        Largest batch of the optimisation profile (min 1, opt ``opt_batch``).
    opt_batch : int, default 64
    workspace_gib : float, default 4
    batch_size, reason
        As for :class:`~ainu_engine.backends.Backend` (``batch_size`` defaults to ``opt_batch``).
    """

    name = "tensorrt"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        fp16: bool = True,
        max_batch: int = 256,
        opt_batch: int = 64,
        workspace_gib: float = 4.0,
        batch_size: int | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(
            model_path,
            device="cuda",
            batch_size=batch_size or min(opt_batch, max_batch),
            reason=reason,
        )
        self.fp16 = fp16
        self.max_batch = max_batch
        self.opt_batch = min(opt_batch, max_batch)
        self.workspace_gib = workspace_gib
        self.engine: trt.ICudaEngine | None = None
        self.context: trt.IExecutionContext | None = None
        self.stream: Any = None  # a cupy.cuda.Stream (CuPy has no type stubs)
        self._cp: Any = None
        self.engine_path: str | None = None
        self.from_cache = False
        self.precision = "fp32"

    def _load_impl(self) -> None:
        info = self.model_info()
        check_tensorrt_model(info, self.model_path)
        self._require("tensorrt", extra="tensorrt")
        import tensorrt as trt  # imported by _require (or its error raised): typed from here on

        cp = self._require("cupy", extra="cuda12",
                           why="the TensorRT backend (its buffers are CuPy arrays)")  # fmt: skip
        try:
            n_gpu = cp.cuda.runtime.getDeviceCount()
        except cp.cuda.runtime.CUDARuntimeError:
            n_gpu = 0
        if n_gpu < 1:
            raise BackendUnavailable(
                "no CUDA GPU", path=self.model_path, hint="use --backend onnxruntime"
            )
        self.precision = info.precision
        data = self.model_path.read_bytes()
        gpu = cp.cuda.runtime.getDeviceProperties(0)["name"]
        gpu = gpu.decode() if isinstance(gpu, bytes) else str(gpu)
        key = hashlib.sha256(
            b"\0".join(
                [
                    hashlib.sha256(data).digest(),
                    gpu.encode(),
                    trt.__version__.encode(),
                    f"precision={self.precision},fp16={self.fp16},"
                    f"batch={self.opt_batch}/{self.max_batch}".encode(),
                ]
            )
        )
        self.engine_path = os.path.join(cache_dir("tensorrt"), key.hexdigest()[:32] + ".engine")
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        serialized: bytes
        if os.path.isfile(self.engine_path):
            with open(self.engine_path, "rb") as fh:
                serialized = fh.read()
            self.from_cache = True
        else:
            serialized = self._build(logger, data, info)
            atomic_write_bytes(self.engine_path, serialized)
        self.engine = runtime.deserialize_cuda_engine(serialized)
        if self.engine is None:
            raise BackendUnavailable(
                "TensorRT could not deserialize the engine",
                path=self.engine_path,
                hint="delete the cached engine and retry",
            )
        self.context = self.engine.create_execution_context()
        self.stream = cp.cuda.Stream(non_blocking=True)
        self._cp = cp

    def _build(self, logger: trt.ILogger, data: bytes, info: ModelInfo) -> bytes:
        import tensorrt as trt

        builder = trt.Builder(logger)
        net_flags, flags = build_plan(
            trt, self.precision, fp16=self.fp16, fast_fp16=builder.platform_has_fast_fp16
        )
        network = builder.create_network(net_flags)  # explicit batch: the only mode in TRT 10
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(data):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendUnavailable(
                f"TensorRT cannot parse the model: {errors}", path=self.model_path
            )
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(self.workspace_gib * 2**30))
        for flag in flags:
            config.set_flag(flag)
        c, s = info.n_channels, info.input_size
        profile = builder.create_optimization_profile()
        profile.set_shape(
            info.input_name,
            trt.Dims([1, c, s, s]),
            trt.Dims([self.opt_batch, c, s, s]),
            trt.Dims([self.max_batch, c, s, s]),
        )
        config.add_optimization_profile(profile)
        timing_path = os.path.join(cache_dir("tensorrt"), "timing.cache")
        blob = b""
        if os.path.isfile(timing_path):
            with open(timing_path, "rb") as fh:
                blob = fh.read()
        timing = config.create_timing_cache(blob)
        config.set_timing_cache(timing, ignore_mismatch=True)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendUnavailable(
                "TensorRT failed to build the engine (see its log above)", path=self.model_path
            )
        atomic_write_bytes(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
        return bytes(serialized)

    def _infer_impl(self, x: Any) -> np.ndarray:
        return self._execute(x, False)[0]

    def _infer_embedding_impl(self, x: Any) -> tuple[np.ndarray, np.ndarray | None]:
        return self._execute(x, True)

    def _execute(self, x: Any, embedding: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(logits, features or None) of ``x``; the features are the engine's second output
        (``info.embedding_name``), bound beside the logits (written against TensorRT 10's
        named-tensor API; unverified without a GPU)."""
        cp, engine, context = self._cp, self.engine, self.context
        if engine is None or context is None:
            raise RuntimeError("the TensorRT backend is not loaded (call load() first)")
        info = self.model_info()
        n = x.shape[0]
        if n > self.max_batch:
            parts = [self._execute(x[i : i + self.max_batch], embedding)
                     for i in range(0, n, self.max_batch)]  # fmt: skip
            emb = np.concatenate([p[1] for p in parts]) if embedding else None
            return np.concatenate([p[0] for p in parts]), emb
        with self.stream:
            xin = (
                cp.ascontiguousarray(cp.asarray(x, dtype=cp.float32))
                if is_device_array(x)
                else cp.asarray(np.ascontiguousarray(x, np.float32))
            )
            out = cp.empty(info.output_shape(n), dtype=cp.float32)
            # each call says whether TensorRT took it (the stubs showed the results were ignored)
            if not context.set_input_shape(info.input_name, tuple(xin.shape)):
                raise RuntimeError(
                    f"TensorRT refused the input shape {tuple(xin.shape)} for "
                    f"{info.input_name!r} (profile batches 1..{self.max_batch})"
                )
            _bind(context, info.input_name, int(xin.data.ptr))
            _bind(context, info.output_name, int(out.data.ptr))
            emb = None
            if info.embedding_name:  # an unbound output is an error in TensorRT 10: always bind
                d = int(engine.get_tensor_shape(info.embedding_name)[-1])
                emb = cp.empty((n, d), dtype=cp.float32)
                _bind(context, info.embedding_name, int(emb.data.ptr))
            if not context.execute_async_v3(self.stream.ptr):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            host: np.ndarray = cp.asnumpy(out, stream=self.stream)
            host_emb: np.ndarray | None = None
            if embedding and emb is not None:
                host_emb = cp.asnumpy(emb, stream=self.stream)
        self.stream.synchronize()
        return host, host_emb

    def _describe_impl(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "precision": _precision_label(
                self.info.precision if self.info is not None else self.precision, self.fp16
            ),
            "engine": self.engine_path,
            "engine_from_cache": self.from_cache,
            "batch_profile": [1, self.opt_batch, self.max_batch],
        }
        try:
            import tensorrt

            d["tensorrt"] = tensorrt.__version__
        except ImportError:
            pass
        return d

    def _close_impl(self) -> None:
        self.context = self.engine = None
        if self.stream is not None:
            self.stream.synchronize()
        self.stream = None


def _bind(context: trt.IExecutionContext, name: str, address: int) -> None:
    """Bind a tensor of the engine to device memory, or raise naming it."""
    if not context.set_tensor_address(name, address):
        raise RuntimeError(f"TensorRT could not bind the tensor {name!r} (not in the engine?)")


def _precision_label(precision: str, fp16: bool) -> str:
    """What ``describe()`` says of the precision an engine runs in."""
    if precision == "fp32" and fp16:
        return "fp32 (fp16 kernels allowed)"
    return precision
