"""Backends: one contract; each available backend agrees with the PyTorch model on the same
inputs. CUDA and TensorRT paths run only where they can; no mocked backend counts as tested."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from ainu_engine.backends import BackendUnavailable, create_backend
from ainu_engine.compare import compare_outputs
from ainu_engine.errors import InputError

torch = pytest.importorskip("torch", reason="the torch backend (reference) needs the train extra")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (cpu extra) is not installed")

HAS_CUDA_EP = "CUDAExecutionProvider" in ort.get_available_providers()
HAS_TRT = importlib.util.find_spec("tensorrt") is not None and HAS_CUDA_EP


def _inputs(n=5, seed=0):
    return np.random.default_rng(seed).random((n, 2, 48, 48), dtype=np.float32)


@pytest.fixture(scope="module")
def reference(screen_model):
    _, ckpt, _ = screen_model
    with create_backend(ckpt, "torch", device="cpu") as ref:
        return {n: ref.infer(_inputs(n)) for n in (1, 5)}


def test_auto_on_a_cpu_machine_is_onnxruntime_and_says_why(screen_model):
    model, _, _ = screen_model
    b = create_backend(model, device="cpu")
    assert b.name == "onnxruntime" and "CPU" in b.reason


def test_without_an_nvidia_driver_torch_is_not_asked(monkeypatch):
    """Where no NVIDIA driver is loaded no CUDA GPU can be: the check says so without importing
    torch (about a second in every Ray worker and every screen's start), however a torch that
    would claim a GPU is made."""
    import sys
    import types

    import ainu_engine.backends as backends

    claims = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: True))
    monkeypatch.setitem(sys.modules, "torch", claims)
    monkeypatch.setattr(backends, "_has", lambda m: m == "torch")
    monkeypatch.setattr(backends, "_no_nvidia_driver", lambda: True)
    assert backends._cuda_gpu() is False
    monkeypatch.setattr(backends, "_no_nvidia_driver", lambda: False)
    assert backends._cuda_gpu() is True  # a driver: torch is asked
    if sys.platform.startswith("linux"):
        from pathlib import Path

        present = Path("/proc/driver/nvidia/version").exists() or Path("/dev/dxg").exists()
        monkeypatch.undo()
        assert backends._no_nvidia_driver() is (not present)


def test_auto_on_a_gpu_with_the_cpu_build_of_onnxruntime(screen_model, monkeypatch):
    """A GPU machine whose ONNX Runtime has no CUDA EP (the device image here): auto mode uses the
    GPU through PyTorch when it has the checkpoint, says why it stays on the CPU when it has not,
    and an explicit --device cuda never falls back to the CPU silently. (Only the choice is
    checked: nothing is loaded on a GPU.)"""
    import ainu_engine.backends as backends

    model, ckpt, _ = screen_model
    monkeypatch.setattr(backends, "_cuda_gpu", lambda: True)
    monkeypatch.setattr(backends, "_ort_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(
        backends, "_has", lambda m: m != "tensorrt" and importlib.util.find_spec(m) is not None
    )
    b = create_backend(model, checkpoint=ckpt)
    assert b.name == "torch" and b.device == "cuda" and "checkpoint" in b.reason
    b = create_backend(model)
    assert b.name == "onnxruntime" and b.provider == "cpu"
    assert "GPU is present" in b.reason and "onnxruntime-gpu" in b.reason
    with pytest.raises(BackendUnavailable, match="device cuda asked.*CPU build"):
        create_backend(model, device="cuda")
    with pytest.raises(BackendUnavailable, match="device cuda asked.*no CUDA execution provider"):
        create_backend(model, "onnxruntime", device="cuda")
    assert create_backend(model, device="cuda", checkpoint=ckpt).name == "torch"


@pytest.mark.parametrize("n,spinning", [(1, True), (5, True), (5, False)])
def test_onnxruntime_cpu_equals_torch(screen_model, reference, n, spinning):
    model, _, _ = screen_model
    with create_backend(model, "onnxruntime", device="cpu", threads=2, spinning=spinning) as b:
        assert b.spinning is spinning
        got = b.infer(_inputs(n))
        d = b.describe()
    cmp = compare_outputs(reference[n], got, atol=1e-4)
    assert cmp, str(cmp)
    assert d["provider"] == "cpu" and d["threads"] == 2 and d["precision"] == "fp32"


def test_contract_errors(screen_model):
    model, ckpt, _ = screen_model
    with create_backend(model, "onnxruntime", device="cpu") as b:
        with pytest.raises(InputError, match=r"takes \(N, 2, 48, 48\)"):
            b.infer(np.zeros((2, 1, 48, 48), np.float32))
        assert b.probabilities(_inputs(3)).sum(1) == pytest.approx(np.ones(3), abs=1e-6)
    with pytest.raises(BackendUnavailable, match="cannot be turned back"):
        create_backend(model, "torch", device="cpu").load()
    with pytest.raises(ValueError, match="backend must be one of"):
        create_backend(model, "tvm")
    if not HAS_TRT:
        with pytest.raises(BackendUnavailable, match="tensorrt is not installed|no CUDA GPU|cupy"):
            create_backend(model, "tensorrt").load()


@pytest.mark.skipif(
    not HAS_CUDA_EP, reason="needs onnxruntime-gpu and an NVIDIA GPU (CUDA execution provider)"
)
def test_onnxruntime_cuda_equals_torch(screen_model, reference):
    model, _, _ = screen_model
    with create_backend(model, "onnxruntime", device="cuda") as b:
        assert compare_outputs(reference[5], b.infer(_inputs(5)), atol=1e-4)
        x = torch.from_numpy(_inputs(5)).cuda()  # IO binding: input already on the GPU
        assert compare_outputs(reference[5], b.infer(x), atol=1e-4)


@pytest.mark.skipif(
    not HAS_TRT, reason="TensorRT is not installed here (it cannot be on these machines)"
)
@pytest.mark.parametrize("name", ["tensorrt", "onnxruntime-tensorrt"])
def test_tensorrt_fp16_keeps_the_calls(screen_model, reference, name):
    model, _, _ = screen_model
    with create_backend(model, name) as b:
        got = b.infer(_inputs(5))
    cmp = compare_outputs(
        reference[5], got, atol=5e-2, rtol=5e-2
    )  # fp16: same top-1, logits within 5 %
    assert cmp.same_argmax and cmp, str(cmp)


def test_torch_fp16_is_asked_for_and_cpu_only_ignores_it(screen_model):
    _, ckpt, _ = screen_model
    assert create_backend(ckpt, "torch", device="cpu").fp16 is False  # torch default: fp32
    with create_backend(ckpt, "torch", device="cpu", fp16=True) as b:  # no autocast on the CPU
        assert b.fp16 is False and b.describe()["precision"] == "fp32"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 autocast runs on a CUDA GPU")
@pytest.mark.parametrize("name", ["torch", "torch-compile"])
def test_torch_fp16_cuda_keeps_the_calls(screen_model, reference, name):
    _, ckpt, _ = screen_model
    with create_backend(ckpt, name, device="cuda", fp16=True) as b:
        assert b.describe()["precision"] == "fp16 autocast"
        cmp = compare_outputs(reference[5], b.infer(_inputs(5)), atol=5e-2, rtol=5e-2)
    assert cmp.same_argmax and cmp, str(cmp)


@pytest.mark.skipif(
    not (HAS_CUDA_EP or torch.cuda.is_available()),
    reason="torch.compile with CUDA graphs needs a GPU",
)
def test_torch_compile_cuda_equals_eager(screen_model, reference):
    _, ckpt, _ = screen_model
    with create_backend(ckpt, "torch-compile", device="cuda") as b:
        assert compare_outputs(reference[5], b.infer(_inputs(5)), atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the torch CUDA backend needs a CUDA GPU")
def test_torch_cuda_fp32_is_fp32_and_equals_the_cpu(screen_model, reference):
    _, ckpt, _ = screen_model
    with create_backend(ckpt, "torch", device="cuda") as b:
        assert (
            b.describe()["precision"] == "fp32 (TF32 off)" and not torch.backends.cudnn.allow_tf32
        )
        cmp = compare_outputs(reference[5], b.infer(_inputs(5)), atol=1e-4)
    assert cmp, str(cmp)


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="occlusion on a CUDA backend needs a CUDA GPU"
)
def test_occlusion_on_a_cuda_backend_equals_captum_there(screen_model):
    """The GPU path of ainu_engine.explain.occlusion (occluded batches built and deltas
    accumulated in
    device memory by the Numba-CUDA kernels) against Captum on the same model on the GPU."""
    from captum.attr import Occlusion

    from ainu_engine.explain import occlusion

    _, ckpt, _ = screen_model
    img = np.random.default_rng(7).random((2, 48, 48), dtype=np.float32)
    img[:, 10:24, 14:30] += 2.0
    with create_backend(ckpt, "torch", device="cuda") as b:
        ours = occlusion(b, img, window=16, stride=8, target=0, batch_size=13)
        x = torch.from_numpy(img[None]).cuda()
        ref = (
            Occlusion(b.model)
            .attribute(
                x,
                sliding_window_shapes=(2, 16, 16),
                strides=(2, 8, 8),
                target=0,
                baselines=0.0,
                perturbations_per_eval=16,
            )[0, 0]
            .cpu()
            .numpy()
        )
    assert ours.params["incremental"] is False
    assert np.abs(ours.maps[0] - ref).max() <= 1e-5 * np.abs(ref).max()


def test_the_registry_builds_every_backend_with_batch_size_and_reason(screen_model, monkeypatch):
    """Backends are made through the registry: the torch ones come from the training package's
    entry points, others can be registered, unknown names are refused; batch size and reason
    are constructor arguments."""
    import ainu_engine.backends as backends
    from ainu_engine.training.backend import TorchBackend

    model, ckpt, _ = screen_model
    b = create_backend(ckpt, "torch-compile", batch_size=3)
    assert isinstance(b, TorchBackend) and b.compile and b.preferred_batch == 3
    assert b.reason == "asked for"
    b = create_backend(model, batch_size=5)
    assert b.preferred_batch == 5 and b.reason.startswith("no usable GPU")
    made = {}

    def factory(m, *, batch_size, reason, **_):
        made["args"] = (m, batch_size, reason)
        return backends.OnnxRuntimeBackend(m, batch_size=batch_size, reason=reason)

    monkeypatch.setitem(backends._REGISTRY, "mine", None)
    backends.register_backend("mine", factory)
    assert create_backend(model, "mine", batch_size=2).preferred_batch == 2
    assert made["args"][1:] == (2, "asked for")
    with pytest.raises(ValueError, match="backend must be one of"):
        create_backend(model, "no-such-backend")
    with pytest.raises(ValueError, match="batch_size"):
        create_backend(model, batch_size=0)


class _FakeTensorRT:
    """The two enums of the ``tensorrt`` module that :func:`build_plan` reads (TensorRT 10 has
    ``STRONGLY_TYPED`` = 5; ``strong=False`` is a TensorRT without it)."""

    def __init__(self, strong: bool) -> None:
        import enum

        self.BuilderFlag = enum.IntEnum("BuilderFlag", {"FP16": 0, "INT8": 1})
        flags = {"EXPLICIT_BATCH": 0, **({"STRONGLY_TYPED": 5} if strong else {})}
        self.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", flags)


@pytest.mark.parametrize("strong", [True, False])
def test_tensorrt_builds_each_precision_as_its_model_asks(strong):
    from ainu_engine.backends._tensorrt import build_plan

    trt = _FakeTensorRT(strong)
    fp16, int8 = trt.BuilderFlag.FP16, trt.BuilderFlag.INT8
    # fp32: fp16 kernels only where allowed and fast; never a strongly typed network
    assert build_plan(trt, "fp32", fp16=True, fast_fp16=True) == (0, [fp16])
    assert build_plan(trt, "fp32", fp16=True, fast_fp16=False) == (0, [])
    assert build_plan(trt, "fp32", fp16=False, fast_fp16=True) == (0, [])
    if strong:  # the graph's types and Q/DQ scales decide, no precision flags
        assert build_plan(trt, "fp16", fp16=False, fast_fp16=True) == (1 << 5, [])
        assert build_plan(trt, "int8", fp16=False, fast_fp16=True) == (1 << 5, [])
    else:  # explicit quantization in a weakly typed network: INT8 on, no calibrator
        assert build_plan(trt, "fp16", fp16=False, fast_fp16=True) == (0, [fp16])
        assert build_plan(trt, "int8", fp16=False, fast_fp16=True) == (0, [int8, fp16])
        assert build_plan(trt, "int8", fp16=True, fast_fp16=False) == (0, [int8])
    with pytest.raises(ValueError, match="bf16"):
        build_plan(trt, "bf16", fp16=True, fast_fp16=True)
