"""ainu-engine screen: inputs, results, resume, interruption, failures, nuclei modes, report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from ainu_engine.cli import main
from ainu_engine.errors import InputError
from ainu_engine.nuclei import detect_nuclei, expand_inputs, split_nuclei
from ainu_engine.screen import screen

pytest.importorskip(
    "onnxruntime", reason="screening runs the model through ONNX Runtime (cpu extra)"
)


def test_expand_inputs_finds_data_not_sidecars(screen_model, tmp_path):
    _, _, data = screen_model
    files = expand_inputs([data])
    names = sorted(f.name for f in files)
    assert len(files) == 6
    assert all(
        n.endswith((".bin", ".csv")) and "truth" not in n and "manifest" not in n for n in names
    )
    assert expand_inputs([data / "slideA" / "manifest.csv"]) == sorted(data.glob("slideA/*.bin"))
    assert len(expand_inputs([str(data / "slide*" / "*.bin")])) == 4
    with pytest.raises(InputError, match="no such file"):
        expand_inputs([tmp_path / "nope"])


def test_screen_writes_one_row_per_nucleus_and_resumes(screen_model, tmp_path):
    model, _, data = screen_model
    out = tmp_path / "out"
    s = screen([data], model, out, device="cpu", csv=True)
    assert (s.n_files, s.n_nuclei, s.n_failed) == (6, 6, 0)
    t = pq.read_table(out / "results.parquet")
    assert t.num_rows == 6
    cols = set(t.column_names)
    assert {
        "source",
        "nucleus_id",
        "predicted",
        "p_hiPSC",
        "p_somatic",
        "n_loc_polII",
        "n_loc_h3",
        "area_um2",
        "qc_flags",
        "model_sha256",
        "render_spec_hash",
    } <= cols
    p = np.column_stack([t.column("p_hiPSC").to_numpy(), t.column("p_somatic").to_numpy()])
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert set(t.column("predicted").to_pylist()) <= {"hiPSC", "somatic"}
    assert (out / "results.csv").is_file() and (out / "report.html").is_file()
    assert "<img" in (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert [st["stage"] for st in summary["stages"]] == ["read", "render", "infer", "write"]
    # rerun: everything is done, nothing is redone, the table is the same
    s2 = screen([data], model, out, device="cpu")
    assert (s2.n_files_skipped, s2.n_nuclei) == (6, 0)
    assert pq.read_table(out / "results.parquet").equals(t)
    # --force redoes it, without duplicating rows
    s3 = screen([data], model, out, device="cpu", force=True)
    assert s3.n_nuclei == 6 and pq.read_table(out / "results.parquet").num_rows == 6


def test_same_calls_as_the_classifier_and_as_torch(screen_model, tmp_path):
    from ainu_engine import Classifier
    from ainu_engine.io import read

    model, ckpt, data = screen_model
    out = tmp_path / "out"
    screen([data / "slideA"], model, out, device="cpu")
    t = pq.read_table(out / "results.parquet").to_pylist()
    with Classifier.load(model, render_device="cpu") as clf:
        preds = clf.classify_batch([read(r["source"]) for r in t])
    with Classifier.load(ckpt, backend="torch", device="cpu", render_device="cpu") as clf_t:
        preds_t = clf_t.classify_batch([read(r["source"]) for r in t])
    for row, p, q in zip(t, preds, preds_t, strict=True):
        assert row["predicted"] == p.label == q.label
        assert row["p_hiPSC"] == pytest.approx(p.probabilities["hiPSC"], abs=1e-6)
        assert p.probabilities["hiPSC"] == pytest.approx(q.probabilities["hiPSC"], abs=1e-4)


def test_a_bad_file_is_isolated(screen_model, tmp_path, capsys):
    model, _, data = screen_model
    bad = tmp_path / "in" / "broken.bin"
    bad.parent.mkdir()
    bad.write_bytes(b"M425" + b"\0" * 7)
    shutil.copytree(data / "slideA", tmp_path / "in" / "slideA")
    code = main(
        [
            "screen",
            str(tmp_path / "in"),
            "--model",
            str(model),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    rec = json.loads(out)
    assert rec["nuclei"] == 4 and rec["failed"] == 1
    assert "broken.bin" in err
    errors = (tmp_path / "out" / "errors.csv").read_text().splitlines()
    assert len(errors) == 2 and "broken.bin" in errors[1]
    # the failed file is retried on the next run; the good ones are not redone
    code = main(
        [
            "screen",
            str(tmp_path / "in"),
            "--model",
            str(model),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--json",
        ]
    )
    rec = json.loads(capsys.readouterr().out)
    assert (
        code == 1 and rec["files_skipped_done"] == 4 and rec["nuclei"] == 0 and rec["failed"] == 1
    )


@pytest.mark.slow
def test_killed_screen_loses_no_finished_batch_and_duplicates_nothing(screen_model, tmp_path):
    """Kill the process after its first batches are written; the rerun completes the table
    with every nucleus exactly once."""
    model, _, data = screen_model
    out = tmp_path / "out"
    code = f"""
import os, sys, signal
from ainu_engine.screen import screen
n = 0
def progress(p):
    global n
    n += 1
    if n == 2:
        os.kill(os.getpid(), signal.SIGKILL)
screen([{str(data)!r}], {str(model)!r}, {str(out)!r}, device="cpu", batch_size=1,
on_progress=progress)
"""
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "NUMBA_ENABLE_CUDASIM": "1"},
    )
    assert r.returncode == -9, r.stderr
    parts = list((out / "parts").glob("part-*.parquet"))
    assert len(parts) == 2 and not list((out / "parts").glob("*.part"))
    assert not (out / "results.parquet").exists()
    s = screen([data], model, out, device="cpu")
    assert s.n_nuclei == 4  # only what was not written before the kill
    t = pq.read_table(out / "results.parquet")
    keys = list(
        zip(t.column("source").to_pylist(), t.column("nucleus_id").to_pylist(), strict=True)
    )
    assert len(keys) == 6 and len(set(keys)) == 6


def test_nuclei_from_roi_sets_cell_ids_and_detection(tmp_path):
    from ainu_engine.simulate import Observation, simulate_dataset

    obs = Observation(locs_per_channel=4000)
    simulate_dataset(
        tmp_path / "roi",
        classes=("mock",),
        n_per_class=2,
        nuclei_per_file=2,
        field_mode=True,
        roi=True,
        format="insight3",
        observation=obs,
        seed=1,
    )
    simulate_dataset(
        tmp_path / "ids",
        classes=("mock",),
        n_per_class=2,
        nuclei_per_file=2,
        observation=obs,
        seed=1,
    )
    from ainu_engine.io import read

    f = next((tmp_path / "roi").glob("*.bin"))
    locs = read(f)
    found = list(split_nuclei(locs))  # the ROI set beside the file is found
    assert [n.id for n in found] == ["nucleus-000", "nucleus-001"]  # the ROI Manager names
    truth = (
        pq.read_table(f.with_name(f.name.split(".")[0] + ".truth.parquet"))
        .column("cell_id")
        .to_numpy()
    )
    for n in found:
        assert n.roi_nm is not None and len(n.locs) > 1000
    # every localization of a simulated nucleus (not background) falls in exactly one ROI
    assert sum(len(n.locs) for n in found) >= 0.95 * int((truth >= 0).sum())
    det = list(split_nuclei(locs, mode="detect"))
    assert len(det) == 2 and all(len(n.locs) > 1000 for n in det)
    g = next((tmp_path / "ids").glob("*.parquet"))
    ids = [n.id for n in split_nuclei(read(g)) if not g.name.endswith("truth.parquet")]
    assert ids == ["cell000", "cell001"]
    with pytest.raises(InputError, match="no cell_id column"):
        list(split_nuclei(locs, mode="cell_id"))


def test_detection_finds_separate_blobs_and_flags_edges():
    rng = np.random.default_rng(0)
    pts = []
    for cx, cy in ((10_000, 10_000), (40_000, 12_000), (25_000, 40_000)):
        r = 5000 * np.sqrt(rng.random(20_000))
        a = rng.random(20_000) * 2 * np.pi
        pts.append(np.column_stack([cx + r * np.cos(a), cy + r * np.sin(a)]))
    pts[0] = pts[0][pts[0][:, 0] >= 8_000]  # the first nucleus is cut by the field's left edge
    pts[0] = np.concatenate([pts[0], pts[0][: 20_000 - len(pts[0])]])
    xy = np.concatenate(pts)
    labels, edges = detect_nuclei(xy[:, 0], xy[:, 1])
    assert len(edges) == 3
    for k in range(3):
        sel = labels[k * 20_000 : (k + 1) * 20_000]
        assert np.bincount(sel[sel >= 0]).argmax() == np.unique(sel[sel >= 0])[0]
        assert (sel >= 0).mean() > 0.95
    # the cut nucleus is flagged; the round ones that merely touch the field's extent are not
    assert edges == [True, False, False]


def test_screen_explain_adds_maps_to_the_report(screen_model, tmp_path, monkeypatch):
    import ainu_engine.backends as backends
    import ainu_engine.render as render
    from ainu_engine.explain import explain_files, explain_prepared

    model, _, data = screen_model
    calls = {"backend": 0, "render": 0}

    def counting(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)

        return wrapped

    monkeypatch.setattr(backends, "create_backend", counting("backend", backends.create_backend))
    monkeypatch.setattr(render, "model_input", counting("render", render.model_input))
    s = screen(
        [data / "slideA"],
        model,
        tmp_path / "out",
        device="cpu",
        explain=2,
        explainer=explain_prepared,
    )
    assert s.n_nuclei == 4
    # one model load and one render per nucleus: explaining reuses the screen's classifier and
    # renders
    assert calls == {"backend": 1, "render": 4}
    maps = sorted((tmp_path / "out" / "explain").glob("*.npy"))
    assert len(maps) == 2 and np.load(maps[0]).shape == (1, 48, 48)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Occlusion maps of 2 nuclei" in html
    page = json.loads(re.search(r"id='ainu-data'>(.*?)</script>", html).group(1))
    assert len(page["overlays"]) == 2  # beside the two nuclei's thumbnails in the gallery
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["explain"]["nuclei"] == 2
    # the same maps as explaining the files from scratch
    explain_files([data / "slideA"], model, tmp_path / "again", device="cpu", limit=2)
    for m in maps:
        np.testing.assert_array_equal(np.load(m), np.load(tmp_path / "again" / m.name))


def test_screen_explain_needs_an_explainer(screen_model, tmp_path):
    model, _, data = screen_model
    with pytest.raises(ValueError, match="explainer"):
        screen([data / "slideA"], model, tmp_path / "out", device="cpu", explain=2)


@pytest.mark.slow
def test_a_patch_mode_model_screens_by_patch_vote(tmp_path, torch_threads):
    """Train, export and screen a patch-mode model: every nucleus is called by its patches."""
    pytest.importorskip("onnx", reason="the train extra (onnx) is not installed")
    from ainu_engine.render import RenderSpec
    from ainu_engine.simulate import Observation, simulate_dataset
    from ainu_engine.training.data import RenderCache, read_manifest
    from ainu_engine.training.export import export_onnx
    from ainu_engine.training.train import TrainConfig, train

    obs = Observation(locs_per_channel=5000)
    manifest = simulate_dataset(
        tmp_path / "train",
        classes=("hiPSC", "somatic"),
        n_per_class=6,
        channels=("polII",),
        observation=obs,
        seed=8,
    )
    train(
        read_manifest(manifest),
        tmp_path / "run",
        spec=RenderSpec(pixel_nm=100, sigma_nm=100, size=0),
        cache=RenderCache(tmp_path / "cache", device="cpu"),
        config=TrainConfig(
            arch="small_cnn",
            epochs=1,
            patience=1,
            batch_size=8,
            folds=0,
            seed=0,
            patch_size=32,
            min_occupied=0.5,
            use_groups=False,
        ),
    )
    export_onnx(tmp_path / "run" / "best.pt", tmp_path / "patch.onnx")
    from ainu_engine.model import read_model_info

    info = read_model_info(tmp_path / "patch.onnx")
    assert info.preprocessing["mode"] == "patches" and info.input_size == 32
    s = screen([tmp_path / "train"], tmp_path / "patch.onnx", tmp_path / "out", device="cpu")
    t = pq.read_table(tmp_path / "out" / "results.parquet").to_pylist()
    assert s.n_nuclei == 12 and all(r["n_items"] > 1 for r in t)
    for r in t:
        assert r["predicted"] in ("hiPSC", "somatic")
        assert r["undecided"] == ("undecided" in r["qc_flags"])


@pytest.mark.parametrize("cores", [1, 4])
def test_one_or_two_render_threads_give_the_same_rows(screen_batch, tmp_path, monkeypatch, cores):
    """The render stage runs two threads from two cores (one with one core, or when nuclei are
    kept for explaining): the same nuclei, once each, with the same calls as the fixture's
    screen, and the bad file still in the errors."""
    import ainu_engine.screen._stages as stages

    model, data, single = screen_batch
    monkeypatch.setattr(stages.os, "cpu_count", lambda: cores)
    seen = []
    real = stages.Pipeline.__init__

    def spy(self, *a, **kw):
        real(self, *a, **kw)
        seen.append(self.render_threads)

    monkeypatch.setattr(stages.Pipeline, "__init__", spy)
    s = screen([data], model, tmp_path / "out", report=False)
    assert seen == [1 if cores == 1 else 2]
    ref = {(r["source"], r["nucleus_id"]): r for r in pq.read_table(single.results).to_pylist()}
    got = pq.read_table(s.results).to_pylist()
    assert len(got) == len(ref) == s.n_nuclei
    for r in got:
        want = ref[(r["source"], r["nucleus_id"])]
        assert r["predicted"] == want["predicted"]
        assert r["p_somatic"] == pytest.approx(want["p_somatic"], abs=1e-6)
    assert s.n_failed == single.n_failed == 1
