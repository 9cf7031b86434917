"""ONNX Runtime's CUDA and TensorRT execution-provider options, typed: every key the engine
sets is one ONNX Runtime documents, with the type it documents, checked by mypy in CI
(``make typecheck``) — a misspelt key is otherwise found only on a GPU machine (or, for some
keys, never: ONNX Runtime ignores what it does not know for some providers).

Keys and types as in ONNX Runtime's documentation of the CUDA and TensorRT execution providers
(1.18 and later); the values go to the session (``ainu_engine.onnx_session.ort_session``).
"""

from __future__ import annotations

from typing import Literal, TypedDict

__all__ = [
    "CUDAProviderOptions",
    "TensorrtProviderOptions",
    "cuda_provider_options",
    "tensorrt_provider_options",
]


class CUDAProviderOptions(TypedDict, total=False):
    """Options of ``CUDAExecutionProvider`` (the subset of the documented keys worth setting)."""

    device_id: int
    gpu_mem_limit: int
    arena_extend_strategy: Literal["kNextPowerOfTwo", "kSameAsRequested"]
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"]
    do_copy_in_default_stream: bool
    cudnn_conv_use_max_workspace: bool
    enable_cuda_graph: bool
    use_tf32: bool
    prefer_nhwc: bool


class TensorrtProviderOptions(TypedDict, total=False):
    """Options of ``TensorrtExecutionProvider`` (the subset of the documented keys worth
    setting). Shapes are ``"input:NxCxHxW"`` strings."""

    device_id: int
    trt_max_workspace_size: int
    trt_min_subgraph_size: int
    trt_fp16_enable: bool
    trt_bf16_enable: bool
    trt_int8_enable: bool
    trt_int8_calibration_table_name: str
    trt_int8_use_native_calibration_table: bool
    trt_engine_cache_enable: bool
    trt_engine_cache_path: str
    trt_timing_cache_enable: bool
    trt_timing_cache_path: str
    trt_force_sequential_engine_build: bool
    trt_builder_optimization_level: int
    trt_cuda_graph_enable: bool
    trt_profile_min_shapes: str
    trt_profile_opt_shapes: str
    trt_profile_max_shapes: str


def cuda_provider_options(device_id: int = 0) -> CUDAProviderOptions:
    """The engine's CUDA execution-provider options: exhaustive cuDNN convolution search (the
    shapes of a screen repeat, so the search pays once).

    Parameters
    ----------
    device_id : int, default 0
        The GPU.

    Returns
    -------
    CUDAProviderOptions
    """
    return {"device_id": device_id, "cudnn_conv_algo_search": "EXHAUSTIVE"}


def tensorrt_provider_options(
    *,
    input_name: str,
    channels: int,
    size: int,
    precision: str,
    fp16: bool,
    cache_path: str,
    batches: tuple[int, int, int] = (1, 64, 256),
) -> TensorrtProviderOptions:
    """The engine's TensorRT execution-provider options for a model: an optimisation profile
    over the batch range, engine and timing caches, and the precision the model asks for (an
    int8 model is QDQ: explicit quantization, no calibration table).

    Parameters
    ----------
    input_name : str
        The model's input.
    channels, size : int
        The input's channels and side (pixels).
    precision : {"fp32", "fp16", "int8"}
        The model's precision (``ModelInfo.precision``).
    fp16 : bool
        Allow float16 kernels for an fp32 model.
    cache_path : str
        Folder of the engine and timing caches.
    batches : (int, int, int), default (1, 64, 256)
        The profile's smallest, optimal and largest batch.

    Returns
    -------
    TensorrtProviderOptions
    """
    lo, opt, hi = batches

    def shape(n: int) -> str:
        return f"{input_name}:{n}x{channels}x{size}x{size}"

    return {
        "trt_fp16_enable": fp16 or precision == "fp16",
        "trt_int8_enable": precision == "int8",
        "trt_int8_use_native_calibration_table": False,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": cache_path,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": cache_path,
        "trt_profile_min_shapes": shape(lo),
        "trt_profile_opt_shapes": shape(opt),
        "trt_profile_max_shapes": shape(hi),
    }
