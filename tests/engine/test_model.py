"""ModelInfo (the ONNX metadata contract) and compare_outputs, without torch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ainu_engine.compare import compare_outputs
from ainu_engine.errors import InputError
from ainu_engine.model import METADATA_VERSION, ModelInfo
from ainu_engine.render import RenderSpec

INFO = ModelInfo(
    classes=("hiPSC", "somatic"),
    render_spec=RenderSpec(pixel_nm=16, sigma_nm=20, channels=(1, 2)),
    input_size=512,
    channel_names=("polII", "h3"),
    metrics={"test": {"accuracy": 0.9}},
)


def test_metadata_is_strings_and_round_trips():
    props = INFO.to_metadata()
    assert all(
        isinstance(k, str) and k.startswith("ainu.") and isinstance(v, str)
        for k, v in props.items()
    )
    assert json.loads(props["ainu.input"])["shape"] == ["batch", 2, 512, 512]
    assert ModelInfo.from_metadata(props) == INFO


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda p: p.pop("ainu.classes"), "not an ainu-engine model"),
        (
            lambda p: p.update({"ainu.version": str(METADATA_VERSION + 1)}),
            "newer than this ainu-engine",
        ),
        (
            lambda p: p.update({"ainu.render_spec": "{not json"}),
            "'ainu.render_spec' is not valid JSON",
        ),
        (
            lambda p: p.update({"ainu.render_spec": json.dumps({"pixel_nm": -1})}),
            "'ainu.render_spec' is invalid",
        ),
        (lambda p: p.pop("ainu.input"), "lacks 'ainu.input'"),
    ],
)
def test_bad_metadata_is_one_clear_error(change, words):
    props = INFO.to_metadata()
    change(props)
    with pytest.raises(InputError, match=words) as info:
        ModelInfo.from_metadata(props, path="m.onnx")
    assert str(info.value).startswith("m.onnx")


def test_compare_outputs_reports_errors_and_verdict():
    ref = np.array([[1.0, 3.0], [2.0, -1.0]])
    ok = compare_outputs(ref, ref + 5e-5, atol=1e-4)
    assert ok and ok.max_abs == pytest.approx(5e-5) and ok.same_argmax
    bad = compare_outputs(ref, ref + np.array([[0, 0], [0, 4.0]]), atol=1e-4)
    assert not bad and bad.max_abs == pytest.approx(4.0) and not bad.same_argmax
    assert "FAIL" in str(bad)
    assert compare_outputs(ref, ref * 1.01, rtol=0.02, atol=0)
    assert not compare_outputs(ref, np.where(ref > 2, np.nan, ref))
    with pytest.raises(ValueError, match="shapes differ"):
        compare_outputs(ref, ref[:1])
