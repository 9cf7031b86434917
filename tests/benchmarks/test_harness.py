"""The benchmark harness: timing statistics, result files and the report (not performance)."""

from __future__ import annotations

import json

import pytest

from benchmarks import _harness as H


def test_measure_counts_calls_and_orders_statistics():
    calls = []
    t = H.measure(lambda: calls.append(1), repeat=5, warmup=2)
    assert len(calls) == 7
    assert len(t["times_s"]) == 5
    assert t["min_s"] <= t["median_s"] <= t["max_s"] and t["iqr_s"] >= 0


def test_quick_runs_never_land_in_results(tmp_path, monkeypatch):
    monkeypatch.setattr(H, "SCRATCH", tmp_path / "scratch")
    monkeypatch.setattr(H, "RESULTS", tmp_path / "results")
    path = H.write_result("demo", "cpu", {"figures": []}, ["run", "demo", "--quick"], quick=True)
    assert path.parent == tmp_path / "scratch"
    doc = json.loads(path.read_text())
    assert doc["command"] == "python -m benchmarks run demo --quick"
    assert doc["device"] == "cpu" and "device_description" in doc and "versions" in doc


def test_io_load_tiny_run_and_report(tmp_path, monkeypatch):
    from benchmarks import io_load

    monkeypatch.setattr(io_load, "SCRATCH", tmp_path)
    payload = io_load.run(n=2000)
    assert payload["checks"] == {"parquet_lossless": True, "csv_float32_exact": True}
    names = [f["name"] for f in payload["figures"]]
    assert "CSV read (MB/s)" in names and payload["inputs"]["n_localizations"] == 2000
    results = tmp_path / "results"
    results.mkdir()
    (results / "io_load-cpu.json").write_text(
        json.dumps(
            {
                "benchmark": "io_load",
                "device": "cpu",
                "device_description": "test cpu",
                "command": "python -m benchmarks run io_load",
                "date_utc": "2026-01-01T00:00:00Z",
                **payload,
            }
        )
    )
    md = H.report(results, tmp_path / "RESULTS.md").read_text()
    assert "## io_load — cpu" in md and "numpy.loadtxt" in md and "Goal: CSV load >= 50 MB/s" in md


@pytest.mark.parametrize("argv", [["list"]])
def test_cli_list(capsys, argv):
    from benchmarks.__main__ import main

    assert main(argv) == 0
    assert "io_load" in capsys.readouterr().out


@pytest.mark.slow
def test_simulate_benchmark_tiny_run():
    from benchmarks import simulate

    payload = simulate.run(sizes=[2000])
    assert len(payload["figures"]) == 1 and payload["figures"][0]["ratio"] > 0
    assert payload["goals"][0]["met"] is False  # a 2e3 run cannot claim the 1e7 goal


@pytest.mark.slow
def test_render_benchmark_tiny_run():
    from benchmarks import render

    payload = render.run(sizes=[3000], sklearn_n=[200])
    acc = payload["accuracy"][next(iter(payload["accuracy"]))]
    assert acc["engine_cpu_5sigma"]["max_rel_err_bright"] <= 5e-4
    assert (
        acc["engine_cpu_3sigma"]["max_rel_err_bright"]
        > acc["engine_cpu_5sigma"]["max_rel_err_bright"]
    )
    assert any("EXTRAPOLATED" in f["name"] for f in payload["figures"])


@pytest.mark.slow
def test_infer_tiny_run_compares_backends_and_screen(torch_threads):
    pytest.importorskip("onnx", reason="the train extra (onnx) is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime (cpu extra) is not installed")
    from benchmarks import infer

    payload = infer.run(device="cpu", quick=True, arch="small_cnn")
    assert {"torch eager fp32", "onnxruntime cpu"} <= set(payload["timings"])
    assert payload["parity_vs_torch"]["onnxruntime cpu"]["passed"]
    goals = {g["goal"] for g in payload["goals"]}
    # on a CPU the screen's goal is the serial ceiling (render and inference share the cores)
    assert any("onnxruntime >= 1.5x" in g for g in goals) and any(
        "render and infer one after the other" in g for g in goals
    )
    scr = payload["screen"]
    assert scr["nuclei"] == 6 and scr["end_to_end_nuclei_per_s"] > 0
    assert [s["stage"] for s in scr["stages"]] == ["read", "render", "infer", "write"]


@pytest.mark.slow
def test_pipeline_tiny_run_compares_screen_with_a_serial_loop():
    pytest.importorskip("onnxruntime", reason="onnxruntime (cpu extra) is not installed")
    from benchmarks import pipeline

    payload = pipeline.run(device="cpu", quick=True)
    assert payload["inputs"]["nuclei"] == 40 and payload["same_calls"] == 40
    assert payload["screen_nuclei_per_s"] > 0 and payload["serial_nuclei_per_s"] > 0
    goal, cost = payload["goals"]
    assert "serial read -> prepare -> infer loop" in goal["goal"]
    assert goal["met"] == (payload["screen_nuclei_per_s"] >= payload["serial_nuclei_per_s"])
    # the out-of-distribution score's cost: the same model without its reference as baseline
    assert "out-of-distribution score" in cost["goal"]
    assert cost["met"] == (payload["ood_score_overhead"] <= 0.05)


@pytest.mark.slow
def test_explain_plan_tiny_run_compares_the_two_paths(torch_threads):
    pytest.importorskip("onnx", reason="the train extra (onnx) is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime (cpu extra) is not installed")
    from benchmarks import explain_plan

    payload = explain_plan.run(quick=True)
    rows = {r["config"]: r for r in payload["configs"]}
    assert set(rows) == {"small_cnn 128px 32/16", "small_cnn 80px 64/32"}
    small, large = rows["small_cnn 128px 32/16"], rows["small_cnn 80px 64/32"]
    # auto mode follows the work fraction: small windows incremental, 64 px windows on 80 px whole
    assert small["work_fraction"] < 0.6 < large["work_fraction"]
    assert small["auto_incremental"] and not large["auto_incremental"]
    assert all(r["max_rel_diff"] <= 1e-5 for r in rows.values())  # the same maps both ways
    assert all(f["baseline"] > 0 and f["ratio"] > 0 for f in payload["figures"])


@pytest.mark.slow
def test_nucleus_benchmark_tiny_run_times_the_generator_and_its_baseline(torch_threads):
    from benchmarks import nucleus

    payload = nucleus.run(device="cpu", quick=True)
    assert payload["inputs"]["preset"] == "tiny" and payload["inputs"]["size"] == 128
    fwd, train = payload["figures"]
    assert fwd["project"] > 0 and fwd["baseline"] > 0 and fwd["ratio"] > 0
    # 6 iterations run, the first (warm-up) and the differences leave 4 timed
    assert train["iterations_timed"] == 4 and train["project"] > 0 and not train["amp"]


def test_the_speedup_follows_the_unit():
    """A rate and a time of the same comparison give the same speedup; serve's 54.5 vs 91.7
    nuclei/s used to be shown as 1.68x (the project slower, shown as faster)."""
    from benchmarks._harness import speedup

    serve = {"name": "batching on, 1 client: nuclei/s", "project": 54.47, "baseline": 91.73,
             "ratio": 1.68}  # fmt: skip
    assert speedup(serve) == pytest.approx(0.594, abs=1e-3)
    assert speedup({"name": "link: localizations per second", "project": 4e6,
                    "baseline": 2e6}) == pytest.approx(2.0)  # fmt: skip
    assert speedup({"name": "RCC of a field: seconds", "project": 1.0,
                    "baseline": 1.5}) == pytest.approx(1.5)  # fmt: skip
    assert speedup({"name": "p50 latency", "unit": "ms", "project": 10, "baseline": 20}) == 2.0
    # no unit to go by, or no numbers: the benchmark's own ratio
    assert speedup({"name": "NeNA (nm)", "project": 5.0, "baseline": 4.9, "ratio": None}) is None
    assert speedup({"name": "x: seconds", "project": [1, 2], "baseline": 3, "ratio": 7}) == 7
