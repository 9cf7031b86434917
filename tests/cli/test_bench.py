"""``ainu-engine bench`` (issue 20): one JSON object per backend and batch size with the fields
the docs promise, a render line, and a clear record for a backend that cannot run here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ainu_engine.cli import main

pytest.importorskip("onnxruntime", reason="bench needs the cpu extra")

MODEL = (
    Path(__file__).resolve().parents[2]
    / "examples"
    / "models"
    / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
)


def test_bench_json_lines(capsys):
    assert main(["bench", str(MODEL), "--batch", "1,4", "--seconds", "0.4", "--json"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    runs = [r for r in recs if "batch" in r]
    assert [r["batch"] for r in runs] == [1, 4]
    for r in runs:
        assert {
            "backend",
            "device",
            "precision",
            "images_per_s",
            "p50_ms",
            "p90_ms",
            "p99_ms",
        } <= set(r)
        assert r["backend"] == "onnxruntime" and r["precision"] == "fp32" and r["images_per_s"] > 0
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
    (render,) = [r for r in recs if r.get("stage") == "render"]
    assert render["nuclei_per_s"] > 0


def test_a_backend_that_cannot_run_is_a_record_not_a_crash(capsys):
    code = main(["bench", str(MODEL), "--backend", "tensorrt", "--seconds", "0.2", "--no-render",
                 "--json"])  # fmt: skip
    (rec,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1 and rec["backend"] == "tensorrt" and "tensorrt" in rec["error"]


def test_bad_batch_sizes_are_usage_errors():
    assert main(["bench", str(MODEL), "--batch", "0"]) == 2
    assert main(["bench", str(MODEL), "--batch", "x"]) == 2


def test_auto_runs_what_bench_measured_fastest_here(capsys, tmp_path, monkeypatch):
    """bench keeps its measurements per model and machine; `auto` then runs the fastest of
    those that can run now, at the batch it was fastest at, and says so; a changed model file
    or another machine is measured afresh."""
    import shutil

    from ainu_engine import backends

    monkeypatch.setenv("AINU_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "m.onnx"
    shutil.copy(MODEL, model)
    before = backends.create_backend(model, "auto")
    assert "ainu-engine bench" not in before.reason and before.preferred_batch == 8
    assert main(["bench", str(model), "--batch", "2,4", "--seconds", "0.3", "--no-render",
                 "--json"]) == 0  # fmt: skip
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (saved,) = [r for r in recs if r.get("stage") == "saved"]
    fastest = max((r for r in recs if "batch" in r), key=lambda r: r["images_per_s"])
    assert saved["auto"] == {"backend": "onnxruntime", "device": "cpu", "batch": fastest["batch"]}
    assert Path(saved["path"]).is_file()
    after = backends.create_backend(model, "auto")
    assert after.name == "onnxruntime" and after.preferred_batch == fastest["batch"]
    assert "ainu-engine bench" in after.reason and f"batch {fastest['batch']}" in after.reason
    assert backends.create_backend(model, "auto", batch_size=3).preferred_batch == 3
    # what bench measured on the GPU does not count where the GPU cannot be used
    assert backends.measured_best(model, backends.machine_id(), [("onnxruntime", "cuda")]) is None
    # another machine (here: other cores) has no measurements; nor has a changed model file
    other = {**backends.machine_id(), "cores": 99}
    assert backends.measured_best(model, other, [("onnxruntime", "cpu")]) is None
    model.write_bytes(model.read_bytes() + b"\0")
    assert "ainu-engine bench" not in backends.create_backend(model, "auto").reason
