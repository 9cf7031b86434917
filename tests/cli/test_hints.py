"""Every hint a command prints names an option that command has (issue 16: screen used to
advise --columns and --format, which it did not have)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from ainu_engine.cli import main
from ainu_engine.cli._app import app

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
READING = ("--format", "--columns", "--unit", "--camera-pixel-nm", "--no-header", "--frame-from",
           "--exposure-s")  # fmt: skip


def _options(command: str) -> set[str]:
    cmd = typer.main.get_command(app).commands[command]
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}


@pytest.mark.parametrize(
    "command", ["info", "convert", "render", "screen", "explain", "evaluate", "train"]
)
def test_every_command_that_reads_files_has_the_reading_options(command):
    assert set(READING) <= _options(command)


@pytest.mark.parametrize("command", ["render", "screen", "explain", "evaluate"])
def test_the_commands_that_run_a_model_map_its_channels(command):
    assert "--channel-map" in _options(command)


def _bad_inputs(folder: Path) -> list[Path]:
    folder.mkdir()
    (folder / "unnamed.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")  # columns nobody can name
    (folder / "pixels.csv").write_text("x [px],y [px]\n1,2\n3,4\n")  # pixels, no pixel size
    (folder / "bin.csv").write_bytes(b"M425" + bytes(64))  # an Insight3 header in a .csv
    return sorted(folder.iterdir())


def _command_line(command: str, inputs: list[Path], out: Path) -> list[str]:
    files = [str(p) for p in inputs]
    return {
        "info": ["info", *files],
        "convert": ["convert", *files, "--out", str(out)],
        "render": ["render", *files, "--out", str(out)],
        "screen": ["screen", *files, "--model", str(MODEL), "--out", str(out), "--device", "cpu"],
        "explain": ["explain", *files, "--model", str(MODEL), "--out", str(out), "--device", "cpu"],
    }[command]


@pytest.mark.parametrize("command", ["info", "convert", "render", "screen", "explain"])
def test_every_hint_names_an_option_of_the_command_that_printed_it(command, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="screen and explain need the cpu extra")
    inputs = _bad_inputs(tmp_path / "in")
    code = main(_command_line(command, inputs, tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == 1 and err.count("error") >= len(inputs) - 1, err
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", err))
    assert named, err  # the errors do give advice ...
    assert named <= _options(command), f"{command} advises {sorted(named - _options(command))}"


def test_a_checkpoint_without_its_model_description_is_a_one_line_error(tmp_path, capsys):
    """It used to be ``internal error: KeyError: 'model_config'``."""
    torch = pytest.importorskip("torch", reason="checkpoints need the train extra")
    from ainu_engine.training.checkpoint import CHECKPOINT_FORMAT

    path = tmp_path / "partial.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "classes": ["a", "b"], "state_dict": {}}, path)
    assert main(["info", str(path)]) != 0
    err = capsys.readouterr().err
    assert "partial.pt" in err and "the checkpoint has no" in err and "model_config" in err
    assert "internal error" not in err and len(err.strip().splitlines()) <= 2


def test_a_model_onnx_runtime_refuses_is_a_one_line_error_naming_it(tmp_path, capsys):
    """External data outside the model's folder: ONNX Runtime refuses it, and the command used
    to call that an internal error."""
    import shutil

    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime", reason="needs the cpu extra")
    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "m.onnx"
    onnx.save_model(onnx.load(str(MODEL)), str(model), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="m.data", size_threshold=0)  # fmt: skip
    shutil.move(tmp_path / "models" / "m.data", tmp_path / "m.data")
    proto = onnx.load(str(model), load_external_data=False)
    for t in proto.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../m.data"
    onnx.save_model(proto, str(model))
    data = REPO / "examples" / "screen" / "slide2" / "somatic_0000.csv"
    code = main(["screen", str(data), "--model", str(model), "--out", str(tmp_path / "out"),
                 "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and "internal error" not in err
    assert f"{model}: ONNX Runtime cannot load the model" in err
