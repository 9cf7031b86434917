"""A model file's metadata is checked at load, against itself and against the graph: one clear
error before any file is read, never a failure deep inside a screen. Models are data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ainu_engine.errors import InputError

onnx = pytest.importorskip("onnx", reason="the onnx package (cpu extra) is not installed")
pytest.importorskip("onnxruntime", reason="onnxruntime (cpu extra) is not installed")

MODEL = (
    Path(__file__).resolve().parents[2]
    / "examples"
    / "models"
    / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
)


def _with(tmp_path, **changes) -> Path:
    """The bundled model with metadata keys replaced (a value of None removes the key)."""
    m = onnx.load(MODEL)
    props = {p.key: p.value for p in m.metadata_props}
    for key, value in changes.items():
        key = "ainu." + key
        if value is None:
            props.pop(key, None)
        else:
            props[key] = json.dumps(value)
    del m.metadata_props[:]
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)
    path = tmp_path / "model.onnx"
    onnx.save(m, path)
    return path


def _input(**changes) -> dict:
    inp = json.loads({p.key: p.value for p in onnx.load(MODEL).metadata_props}["ainu.input"])
    return {**inp, **changes}


def _load(path):
    from ainu_engine.backends import create_backend

    return create_backend(path, "onnxruntime", device="cpu").load()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"classes": ["a", "b", "c"]}, "names 3 classes, the graph's output"),
        ({"classes": "ab"}, "classes must be a list of names"),
        ({"classes": ["a"]}, "a classifier has two or more"),
        ({"classes": ["a", "a"]}, "repeat a name"),
        ({"version": "abc"}, "not an integer"),
        ({"input": _input(size=99)}, "the graph's is"),
        ({"input": _input(size=10**9)}, "not an integer in 1..16384"),
        ({"input": _input(size=-4)}, "not an integer in 1..16384"),
        ({"input": _input(channel_names=["a", "b"])}, "input is \\(N, 2, 64, 64\\)"),
        ({"input": _input(name="pixels")}, "names input 'pixels'"),
        ({"output": {"name": "scores"}}, "output 'scores'"),
        ({"preprocessing": {"mode": "patches"}}, "patch_size of patch mode"),
        ({"preprocessing": {"mode": "tiles"}}, "preprocessing is"),
    ],
)
def test_bad_metadata_is_one_error_at_load(tmp_path, changes, message):
    with pytest.raises(InputError, match=message) as exc:
        _load(_with(tmp_path, **changes))
    assert "model.onnx" in str(exc.value)


def test_the_bundled_model_passes_the_checks(tmp_path):
    b = _load(_with(tmp_path))
    assert b.info.classes == ("hiPSC", "somatic")
    b.close()


def test_a_screen_with_a_bad_model_reads_no_file(tmp_path):
    from ainu_engine.screen import screen

    bad = _with(tmp_path, classes=["a", "b", "c"])
    with pytest.raises(InputError, match="names 3 classes"):
        screen([MODEL.parents[1] / "screen"], bad, tmp_path / "out", device="cpu")
    assert not list((tmp_path / "out" / "parts").glob("*.parquet"))


torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed")


def _checkpoint(tmp_path, **changes) -> Path:
    from ainu_engine.render import RenderSpec
    from ainu_engine.training.checkpoint import save_checkpoint
    from ainu_engine.training.models import create_model

    model = create_model("small_cnn", in_chans=1, num_classes=2)
    path = tmp_path / "best.pt"
    save_checkpoint(
        path,
        model,
        classes=["a", "b"],
        render_spec=RenderSpec(size=32),
        channel_names=["c"],
        input_size=32,
        preprocessing={"mode": "image"},
        train_config={},
        metrics={},
        training_stats={},
        provenance={},
        history=[],
        samples=torch.zeros(1, 1, 32, 32).numpy(),
    )
    if changes:
        ckpt = torch.load(path, weights_only=True)
        for k, v in changes.items():
            if v is None:
                ckpt.pop(k)
            else:
                ckpt[k] = v
        torch.save(ckpt, path)
    return path


def test_checkpoints_that_do_not_describe_their_model_are_refused(tmp_path):
    from ainu_engine.training.checkpoint import load_checkpoint

    load_checkpoint(_checkpoint(tmp_path))  # the good one loads
    cfg = torch.load(_checkpoint(tmp_path), weights_only=True)["model_config"]
    cases = [
        ({"model_config": None}, "has no model_config"),
        ({"model_config": {**cfg, "num_classes": 10**9}}, "1000000000 classes \\(at most 10000\\)"),
        ({"model_config": {**cfg, "num_classes": 3}}, "3 outputs for 2 classes"),
        ({"model_config": {**cfg, "in_chans": 2}}, "weights do not fit"),
    ]
    for changes, message in cases:
        with pytest.raises(InputError, match=message):
            load_checkpoint(_checkpoint(tmp_path, **changes))


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickle_is_never_run_and_never_advised(tmp_path, capsys):
    from ainu_engine.training.checkpoint import read_checkpoint

    path = tmp_path / "evil.pt"
    torch.save({"format": "ainu-engine-checkpoint-1", "x": Payload()}, path)
    with pytest.raises(InputError) as exc:
        read_checkpoint(path)
    msg = str(exc.value)
    assert "pickled Python objects" in msg and "weights_only" not in msg and "\x1b" not in msg
    assert "this must never run" not in capsys.readouterr().out
