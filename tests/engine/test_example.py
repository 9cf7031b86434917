"""``ainu-engine example``: the bundled example is written whole, never over an earlier one
unless asked, and screens with the bundled model."""

from __future__ import annotations

import json

import pytest

from ainu_engine import __version__
from ainu_engine.cli import main
from ainu_engine.errors import InputError
from ainu_engine.example import MODEL_NAME, example_files, write_example


def test_the_installed_example_is_complete():
    ex = example_files()
    assert ex.model.name == MODEL_NAME and ex.model.stat().st_size > 100_000
    slides = sorted(p.name for p in ex.screen.iterdir())
    assert slides == ["slide1", "slide2", "slide3"]
    assert all((ex.screen / s / "manifest.csv").is_file() for s in slides)
    assert {p.suffix for p in ex.data.iterdir()} >= {".csv", ".bin", ".parquet"}


def test_write_example_refuses_to_overwrite_then_replaces_with_force(tmp_path):
    ex = write_example(tmp_path / "demo")
    assert ex.model.is_file() and (ex.screen / "slide2" / "manifest.csv").is_file()
    (ex.root / "notes.txt").write_text("mine")
    (ex.screen / "slide1" / "stray.csv").write_text("x")
    with pytest.raises(InputError, match="already holds models, screen, data"):
        write_example(ex.root)
    write_example(ex.root, force=True)
    assert not (ex.screen / "slide1" / "stray.csv").exists()  # the example is as shipped
    assert (ex.root / "notes.txt").read_text() == "mine"  # nothing else is touched
    assert not list(ex.root.glob(".*.partial"))
    file = tmp_path / "a_file"
    file.write_text("")
    with pytest.raises(InputError, match="is a file"):
        write_example(file)


def test_cli_example_prints_the_next_commands_and_they_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["example", "demo", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["model"] == f"demo/models/{MODEL_NAME}"
    screen_cmd = rec["next"][-1].split()
    assert screen_cmd[:2] == ["ainu-engine", "screen"]
    assert main([*screen_cmd[1:], "--csv"]) == 0
    summary = json.loads((tmp_path / "demo" / "results" / "summary.json").read_text())
    assert summary["nuclei"] == 5 and summary["failed"] == 0
    assert summary["ainu_engine_version"] == __version__
    assert main(["example", "demo"]) == 1
    assert "already holds" in capsys.readouterr().err
