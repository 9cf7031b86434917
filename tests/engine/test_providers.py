"""ONNX Runtime's CUDA and TensorRT provider options as the engine sets them (typed; mypy checks
the keys against the TypedDicts in CI, this checks the values), and the TensorRT backend's
binding checks, on stand-ins (no GPU here)."""

from __future__ import annotations

import pytest

from ainu_engine.backends._providers import (
    CUDAProviderOptions,
    TensorrtProviderOptions,
    cuda_provider_options,
    tensorrt_provider_options,
)
from ainu_engine.backends._tensorrt import _bind


@pytest.mark.parametrize(
    ("precision", "fp16", "want_fp16", "want_int8"),
    [("fp32", True, True, False), ("fp32", False, False, False), ("fp16", False, True, False),
     ("int8", False, False, True)],  # fmt: skip
)
def test_tensorrt_options_follow_the_model(precision, fp16, want_fp16, want_int8):
    opts = tensorrt_provider_options(input_name="image", channels=2, size=128,
                                     precision=precision, fp16=fp16, cache_path="/c")  # fmt: skip
    assert set(opts) <= set(TensorrtProviderOptions.__annotations__)
    assert opts["trt_fp16_enable"] is want_fp16 and opts["trt_int8_enable"] is want_int8
    assert opts["trt_int8_use_native_calibration_table"] is False  # QDQ: no calibration table
    assert opts["trt_profile_min_shapes"] == "image:1x2x128x128"
    assert opts["trt_profile_opt_shapes"] == "image:64x2x128x128"
    assert opts["trt_profile_max_shapes"] == "image:256x2x128x128"
    assert opts["trt_engine_cache_path"] == opts["trt_timing_cache_path"] == "/c"


def test_cuda_options():
    opts = cuda_provider_options(1)
    assert set(opts) <= set(CUDAProviderOptions.__annotations__)
    assert opts == {"device_id": 1, "cudnn_conv_algo_search": "EXHAUSTIVE"}


def test_a_tensor_tensorrt_refuses_to_bind_is_an_error():
    class Context:
        def set_tensor_address(self, name, address):
            return name == "logits"

    _bind(Context(), "logits", 1)
    with pytest.raises(RuntimeError, match="could not bind the tensor 'features'"):
        _bind(Context(), "features", 1)
