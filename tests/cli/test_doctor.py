"""``ainu-engine doctor`` (issue 22): what a bug report needs, as text and as one JSON object."""

from __future__ import annotations

import importlib.util
import json

from ainu_engine.cli import main
from ainu_engine.provenance import __version__


def test_doctor_json_says_what_runs_here_and_why_not(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AINU_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "renders").mkdir(parents=True)
    (tmp_path / "cache" / "renders" / "x.npy").write_bytes(b"\0" * 3000)
    assert main(["doctor", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["ainu_engine"] == __version__ and r["python"]["version"]
    assert r["cpu"]["usable_cores"] >= 1 and isinstance(r["cpu"]["simd"], list)
    assert r["libraries"]["numpy"] and r["libraries"]["pyarrow"]
    by = {b["backend"]: b for b in r["backends"]}
    assert set(by) == {"onnxruntime", "onnxruntime-tensorrt", "tensorrt", "torch", "torch-compile"}
    has_ort = importlib.util.find_spec("onnxruntime") is not None
    assert by["onnxruntime"]["available"] == has_ort
    if importlib.util.find_spec("tensorrt") is None:  # not installable on these machines
        assert (
            not by["tensorrt"]["available"] and "tensorrt is not installed" in by["tensorrt"]["why"]
        )
    assert r["caches"]["folders"] == {"renders": 3000} and r["caches"]["bytes"] == 3000
    assert r["environment"]["AINU_CACHE_DIR"] == str(tmp_path / "cache")
    assert "numba_threads" in r["threads"]


def test_doctor_text(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"version   ainu-engine {__version__}, Python")
    assert "backends" in out and "onnxruntime" in out and "SIMD:" in out
