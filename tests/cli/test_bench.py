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
