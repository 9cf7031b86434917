"""An exported generator on the engine's backends (ainu_engine.nucleus_prediction.Generator):
tiled inference, the kinds of model refused in one line, the files predict_images writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from ainu_engine import Classifier
from ainu_engine.errors import InputError
from ainu_engine.model import GeneratorInfo, read_model_info
from ainu_engine.nucleus_prediction import (
    Generator,
    from_model_range,
    predict_images,
    tiled,
    to_model_range,
)

EXAMPLE_MODEL = (
    Path(__file__).parents[3] / "examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
)


def _negating_generator(path: Path, *, size: int = 32, target: str = "nucleus") -> Path:
    """A generator ONNX file built without torch: nucleus = -actin (pointwise, so tiling cannot
    change its result), with the metadata export writes."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    shape = ["batch", 3, size, size]
    graph = helper.make_graph(
        [helper.make_node("Neg", ["actin"], ["nucleus"])],
        "neg",
        [helper.make_tensor_value_info("actin", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("nucleus", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    for k, v in GeneratorInfo(input_size=size, target=target, pixel_um=0.41,
                              method="test").to_metadata().items():  # fmt: skip
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("target", ["nucleus", "merged"])
def test_a_generator_runs_on_the_backend_registry(tmp_path, target):
    model = _negating_generator(tmp_path / "g.onnx", target=target)
    info = read_model_info(model)
    assert info.kind == "generator" and info.input_size == 32 and info.target == target
    img = np.random.default_rng(0).integers(0, 256, (70, 45, 3), dtype=np.uint8)
    with Generator.load(model, "onnxruntime", device="cpu") as gen:
        assert gen.describe()["backend"] == "onnxruntime"
        got = gen.generate(img)
    want = from_model_range(-to_model_range(img))
    if target == "merged":  # only the red (nucleus) channel of a Merged-target model
        want[..., 1:] = 0
    np.testing.assert_array_equal(got, want)


def test_each_kind_of_model_is_refused_by_the_others_in_one_line(tmp_path):
    gen = _negating_generator(tmp_path / "g.onnx")
    with pytest.raises(InputError, match="a generator model cannot be used as a classifier") as e:
        Classifier.load(gen, "onnxruntime", device="cpu")
    assert "\n" not in str(e.value) and "nucleus predict" in str(e.value)
    with pytest.raises(InputError, match="a classifier model cannot be used as a generator"):
        Generator.load(EXAMPLE_MODEL, "onnxruntime", device="cpu")
    with pytest.raises(InputError, match="cannot be used as a widefield-classifier"):
        read_model_info(gen, kind="widefield-classifier")


def test_predict_images_writes_one_rgb_per_actin_image(tmp_path):
    model = _negating_generator(tmp_path / "g.onnx")
    cells = tmp_path / "cells" / "tile0000"
    cells.mkdir(parents=True)
    actin = np.zeros((40, 50, 3), np.uint8)
    actin[..., 1] = 200
    tifffile.imwrite(cells / "Actin_tile0000.tif", actin, photometric="rgb")
    tifffile.imwrite(cells / "Nucleus_tile0000.tif", actin, photometric="rgb")  # not an input
    seen = []
    done = predict_images([tmp_path / "cells"], model, tmp_path / "pred", on_image=seen.append)
    assert [Path(d["output"]).name for d in done] == ["Predicted_tile0000.tif"] and seen == done
    out = tifffile.imread(tmp_path / "pred" / "Predicted_tile0000.tif")
    assert out.shape == (40, 50, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, from_model_range(-to_model_range(actin)))
    with pytest.raises(InputError, match="no actin images"):
        predict_images([tmp_path / "pred"], model, tmp_path / "again")


def test_batched_tiles_equal_one_at_a_time():
    x = np.random.default_rng(1).random((3, 100, 77), dtype=np.float32)

    def run(t):
        return np.tanh(t * 3.0) + t.mean(axis=(1, 2, 3), keepdims=True)  # per tile

    one = tiled(x, 32, run)
    for b in (2, 5, 64):
        np.testing.assert_array_equal(tiled(x, 32, run, batch=b), one)
    with pytest.raises(ValueError, match="batch"):
        tiled(x, 32, run, batch=0)


@pytest.mark.parametrize("shape", [(3, 50, 40), (3, 128, 128), (3, 300, 517)])
def test_tiled_inference_covers_the_image_and_keeps_only_tile_centres(shape):
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for margin in (None, 0, 16):
        np.testing.assert_array_equal(tiled(x, 64, lambda t: t, margin=margin), x)

    def framed(t):  # a "generator" that draws a bright frame at its own tile edges
        y = np.zeros_like(t)
        y[..., :2, :] = y[..., -2:, :] = y[..., :, :2] = y[..., :, -2:] = 1.0
        return y

    assert tiled(x, 64, framed).max() == 0.0  # only tile centres are kept
    assert tiled(x, 64, framed, margin=0).max() == 1.0
    with pytest.raises(ValueError, match="margin"):
        tiled(x, 64, framed, margin=32)
