"""Training and serving build a nucleus's model input with one function, byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ainu_engine import Classifier
from ainu_engine.errors import InputError
from ainu_engine.io import read
from ainu_engine.render import RenderSpec, model_input, patch_mode
from ainu_engine.training.data import RenderCache

REPO = Path(__file__).resolve().parents[3]
MODEL = REPO / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
NUCLEUS = REPO / "examples" / "screen" / "slide1" / "somatic_0000.bin"


def test_training_and_screening_inputs_are_byte_identical(tmp_path):
    pytest.importorskip("onnxruntime", reason="the cpu extra (onnxruntime) is not installed")
    with Classifier.load(MODEL, backend="onnxruntime", device="cpu", render_device="cpu") as clf:
        served = clf.prepare(read(NUCLEUS))
        spec = clf.info.render_spec
    trained, stats = RenderCache(tmp_path, device="cpu").get(NUCLEUS, spec)
    assert served.items.shape == (1, *trained.shape)
    assert served.items[0].tobytes() == np.asarray(trained).tobytes()
    assert stats["n_localizations"] == served.n_localizations
    assert stats["area_um2"] == served.area_um2


def test_patch_inputs_are_byte_identical(tmp_path):
    spec = RenderSpec(pixel_nm=20, sigma_nm=20, size=0, scaling="percentile")
    pre = {"mode": "patches", "patch_size": 32, "min_occupied": 0.5}
    served = model_input(read(NUCLEUS), spec, pre, device="cpu")
    trained, _ = RenderCache(tmp_path, device="cpu").get(
        NUCLEUS, spec, patch_size=32, min_occupied=0.5
    )
    assert len(served.items) > 1
    assert served.items.tobytes() == np.asarray(trained).tobytes()


def test_patch_mode_without_an_occupied_patch_is_an_input_error():
    spec = RenderSpec(pixel_nm=20, sigma_nm=20, size=0)
    with pytest.raises(InputError, match="patch is more than"):
        model_input(read(NUCLEUS), spec, {"mode": "patches", "patch_size": 4096}, device="cpu")


def test_patch_mode_of_a_preprocessing():
    assert patch_mode(None) == (None, 0.75)
    assert patch_mode({"mode": "image"}) == (None, 0.75)
    assert patch_mode({"mode": "patches", "patch_size": 64, "min_occupied": 0.5}) == (64, 0.5)
