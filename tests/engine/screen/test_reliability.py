"""The screen's promises under hostile input: one bad value or one failing stage costs one file
(an errors.csv row), never the screen; OS errors are one-line errors naming the path."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ainu_engine.errors import OutputError
from ainu_engine.io import Localizations, read, write
from ainu_engine.nuclei import split_nuclei
from ainu_engine.screen import screen


def _thunderstorm(path, xs, ys, *, channels=None):
    head = ["id", "frame", "x [nm]", "y [nm]", "intensity [photon]", "uncertainty [nm]"]
    rows = [[i + 1, i, x, y, 1000, 10] for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    if channels is not None:
        head.append("channel")
        for r, c in zip(rows, channels, strict=True):
            r.append(int(c))
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        w.writerows(rows)


def test_a_coordinate_beyond_float32_is_a_dropped_row_not_an_overflow(tmp_path):
    xs = np.random.default_rng(0).uniform(0, 5000, 200)
    ys = np.random.default_rng(1).uniform(0, 5000, 200)
    xs[7] = 1e39  # finite in float64, infinite in float32
    _thunderstorm(tmp_path / "far.csv", xs, ys)
    locs = read(tmp_path / "far.csv")
    assert locs.n == 199 and np.isfinite(locs.x_nm).all()
    assert any("beyond float32" in w for w in locs.meta.warnings)
    # the same through Parquet (float64 columns written by another program)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x_nm": xs, "y_nm": ys}), tmp_path / "far.parquet")
    assert read(tmp_path / "far.parquet").n == 199


def test_a_far_coordinate_does_not_abort_the_screen(screen_model, tmp_path):
    model, _, data = screen_model
    shutil.copytree(data / "slideA", tmp_path / "in")
    src = next((tmp_path / "in").glob("*.bin"))
    locs = read(src)
    x = locs.x_nm.astype(np.float64)
    x[0] = 1e39
    _thunderstorm(tmp_path / "in" / "far.csv", x, locs.y_nm, channels=locs.channel)
    s = screen([tmp_path / "in"], model, tmp_path / "out", device="cpu")
    assert s.n_nuclei == 5 and s.n_failed == 0
    assert (tmp_path / "out" / "results.parquet").is_file()


def test_an_unforeseen_error_in_a_stage_costs_one_file(screen_model, tmp_path, monkeypatch):
    from ainu_engine import _classifier

    model, _, data = screen_model
    real = _classifier.Classifier.prepare
    victim = sorted((data / "slideA").glob("*.bin"))[1]

    def prepare(self, locs, **kw):
        if locs.meta.source_path == str(victim):
            raise ZeroDivisionError("boom")
        return real(self, locs, **kw)

    monkeypatch.setattr(_classifier.Classifier, "prepare", prepare)
    s = screen([data / "slideA"], model, tmp_path / "out", device="cpu")
    assert s.n_nuclei == 3 and s.n_failed == 1
    rows = list(csv.reader(open(tmp_path / "out" / "errors.csv")))
    assert rows[1][0] == str(victim)
    assert "internal error in render: ZeroDivisionError: boom" in rows[1][1]
    # a rerun retries the failed file and nothing else
    monkeypatch.setattr(_classifier.Classifier, "prepare", real)
    again = screen([data / "slideA"], model, tmp_path / "out", device="cpu")
    assert again.n_nuclei == 1 and again.n_files_skipped == 3


def test_an_inference_error_is_isolated_to_its_nucleus(screen_model, tmp_path, monkeypatch):
    from ainu_engine import _classifier

    model, _, data = screen_model
    real = _classifier.Classifier.predict_prepared

    def predict(self, prepared):
        if any(p.n_localizations and p.n_localizations[0] % 7 == 3 for p in prepared):
            raise RuntimeError("bad batch")
        return real(self, prepared)

    monkeypatch.setattr(_classifier.Classifier, "predict_prepared", predict)
    s = screen([data / "slideA"], model, tmp_path / "out", device="cpu")
    n_bad = sum(
        1 for r in csv.reader(open(tmp_path / "out" / "errors.csv")) if "internal error" in r[-1]
    )
    assert s.n_nuclei + n_bad == 4 and s.n_failed == n_bad


@pytest.mark.parametrize("where", ["a file", "below a file"])
def test_an_unwritable_out_is_one_error_naming_it(screen_model, tmp_path, where):
    model, _, data = screen_model
    f = tmp_path / "taken"
    f.write_text("x")
    out = f if where == "a file" else f / "sub"
    with pytest.raises(OutputError, match="cannot write the screen's output") as exc:
        screen([data / "slideA"], model, out, device="cpu")
    assert "taken" in str(exc.value)


def test_cell_ids_that_are_not_integers_keep_their_names(tmp_path):
    rng = np.random.default_rng(2)
    n = 3000
    ids = np.repeat([1.2, 1.7, 3.0], n)
    x = np.concatenate([rng.normal(c, 300, n) for c in (2000, 6000, 10000)])
    y = rng.normal(2000, 300, 3 * n)
    locs = Localizations(x, y, extra={"cell_id": ids})
    write(locs, tmp_path / "cells.parquet")
    names = [nuc.id for nuc in split_nuclei(read(tmp_path / "cells.parquet"), mode="cell_id")]
    assert names == ["cell1.2", "cell1.7", "cell003"]


def test_debug_prints_the_traceback_of_an_isolated_error(
    screen_model, tmp_path, monkeypatch, capsys
):
    import logging

    from ainu_engine import _classifier
    from ainu_engine.cli import main

    model, _, data = screen_model

    def prepare(self, locs, **kw):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(_classifier.Classifier, "prepare", prepare)
    logger = logging.getLogger("ainu_engine")
    before = list(logger.handlers), logger.level
    try:
        args = ["screen", str(data / "slideA"), "-m", str(model), "-o", str(tmp_path / "o")]
        assert main(["--debug", *args, "--device", "cpu"]) == 1
    finally:
        logger.handlers[:], _ = before[0], logger.setLevel(before[1])
    err = capsys.readouterr().err
    assert "internal error in render: ZeroDivisionError: boom" in err
    assert "Traceback" in err and "in prepare" in err


def test_touching_an_input_does_not_double_its_nucleus(screen_model, tmp_path):
    import os

    import pyarrow.parquet as pq

    model, _, data = screen_model
    shutil.copytree(data / "slideA", tmp_path / "in")
    screen([tmp_path / "in"], model, tmp_path / "out", device="cpu")
    f = sorted((tmp_path / "in").glob("*.bin"))[0]
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns + 10**9, st.st_mtime_ns + 10**9))  # same bytes, new mtime
    again = screen([tmp_path / "in"], model, tmp_path / "out", device="cpu")
    assert again.n_nuclei == 0 and again.n_files_skipped == 4
    assert pq.read_table(tmp_path / "out" / "results.parquet").num_rows == 4


def test_a_symlink_loop_screens_each_file_once(screen_model, tmp_path):
    model, _, data = screen_model
    shutil.copytree(data / "slideA", tmp_path / "in")
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in", target_is_directory=True)
    from ainu_engine.nuclei import expand_inputs

    files = expand_inputs([str(tmp_path / "in" / "**" / "*.bin")])
    assert len(files) == 4
    s = screen([str(tmp_path / "in" / "**" / "*.bin")], model, tmp_path / "out", device="cpu")
    assert s.n_files == 4 and s.n_nuclei == 4


def test_a_second_screen_on_a_locked_folder_is_refused_with_the_holder(screen_model, tmp_path):
    """Two processes, one --out: the second is an error naming the first's pid; once the first
    is gone (its lock goes with it, even when killed) the folder is free again."""
    import subprocess
    import sys
    import time

    model, _, data = screen_model
    out = tmp_path / "out"
    out.mkdir()
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from ainu_engine.screen._results import FolderLock\n"
        "lock = FolderLock(Path(sys.argv[1])).acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            OutputError, match=f"another screen is writing into this folder \\(pid {holder.pid} on"
        ):
            screen([data / "slideA"], model, out, device="cpu")
        assert not (out / "results.parquet").exists()
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert screen([data / "slideA"], model, out, device="cpu").n_nuclei == 4


def test_another_model_does_not_replace_results_without_force(screen_model, tmp_path):
    model, _, data = screen_model
    screen([data / "slideA"], model, tmp_path / "out", device="cpu")
    other = tmp_path / "other.onnx"
    other.write_bytes(model.read_bytes() + b"")  # same bytes: the same run, allowed
    screen([data / "slideA"], other, tmp_path / "out", device="cpu")
    with pytest.raises(OutputError, match="another nuclei mode"):
        screen([data / "slideA"], model, tmp_path / "out", device="cpu", nuclei="file")
    s = screen([data / "slideA"], model, tmp_path / "out", device="cpu", nuclei="file", force=True)
    assert s.n_nuclei == 4


def _roi_set(path, polygons_px):
    import zipfile

    import roifile

    with zipfile.ZipFile(path, "w") as zf:
        for i, pts in enumerate(polygons_px):
            r = roifile.ImagejRoi.frompoints(np.asarray(pts, np.float32), name=f"r{i}")
            r.roitype = roifile.ROI_TYPE.POLYGON
            zf.writestr(f"r{i:03d}.roi", r.tobytes())


def test_rois_that_give_no_nucleus_are_error_rows_naming_them(screen_model, tmp_path):
    model, _, data = screen_model
    shutil.copytree(data / "slideA", tmp_path / "in")
    f = sorted((tmp_path / "in").glob("*.bin"))[0]
    locs = read(f)
    px = locs.meta.camera_pixel_nm[0]
    x0, y0 = float(locs.x_nm.min()) / px, float(locs.y_nm.min()) / px
    x1, y1 = float(locs.x_nm.max()) / px, float(locs.y_nm.max()) / px
    good = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    _roi_set(
        f.with_name(f.name.split(".")[0] + ".roi.zip"),
        [
            good,
            [(x0, y0), (x1, y0), (x0 + 2 * (x1 - x0), y0)],  # collinear: zero area
            [(x1 + 500, y1 + 500), (x1 + 510, y1 + 500), (x1 + 510, y1 + 510)],  # outside the field
            [(x0, y0), (np.nan, y0), (x1, y1)],  # a NaN vertex
        ],
    )
    s = screen([tmp_path / "in"], model, tmp_path / "out", device="cpu")
    assert s.n_nuclei == 4  # the good ROI and the 3 other files
    errors = list(csv.reader(open(tmp_path / "out" / "errors.csv")))[1:]
    msgs = sorted(m for p, m in errors if p == str(f))
    assert len(msgs) == 3
    assert any("ROI r1: zero area" in m for m in msgs)
    assert any("ROI r2: 0 localizations inside" in m for m in msgs)
    assert any("ROI r3: a vertex is NaN" in m for m in msgs)
    # the file is not journaled done: a rerun tries it again (and says so again)
    again = screen([tmp_path / "in"], model, tmp_path / "out", device="cpu")
    assert again.n_files_skipped == 3 and again.n_failed == 3


def test_an_unrelated_zip_beside_a_file_does_not_fail_it(screen_model, tmp_path):
    model, _, data = screen_model
    shutil.copytree(data / "slideA", tmp_path / "in")
    f = sorted((tmp_path / "in").glob("*.bin"))[0]
    import zipfile

    with zipfile.ZipFile(f.with_name(f.name.split(".")[0] + ".zip"), "w") as zf:
        zf.writestr("notes.txt", "raw data backup")
    s = screen([tmp_path / "in"], model, tmp_path / "out", device="cpu")
    assert s.n_nuclei == 4 and s.n_failed == 0


def test_split_nuclei_without_on_skip_refuses_a_bad_roi(tmp_path):
    rng = np.random.default_rng(0)
    locs = Localizations(rng.uniform(0, 16000, 5000), rng.uniform(0, 16000, 5000))
    write(locs, tmp_path / "f.parquet")
    _roi_set(tmp_path / "f.roi.zip", [[(0, 0), (100, 0), (100, 100)], [(0, 0), (1, 1), (2, 2)]])
    from ainu_engine.errors import InputError

    with pytest.raises(InputError, match="ROI r1: zero area"):
        list(split_nuclei(read(tmp_path / "f.parquet"), camera_pixel_nm=160.0))
    skipped = []
    found = list(split_nuclei(read(tmp_path / "f.parquet"), camera_pixel_nm=160.0,
                              on_skip=lambda n, why: skipped.append(n)))  # fmt: skip
    assert [n.id for n in found] == ["r0"] and skipped == ["r1"]


def test_a_full_disk_is_one_error_at_once_and_loses_nothing_written(
    screen_model, tmp_path, monkeypatch
):
    """ENOSPC while writing a part (injected): the screen stops at once with one error naming
    the path and the cause; the parts written before it stay, and a rerun finishes the rest."""
    import errno
    import time

    import pyarrow.parquet as pq

    from ainu_engine.screen import _results

    model, _, data = screen_model
    real = _results.Parts.write
    calls = {"n": 0}

    def write(self, rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.dir / "part-x.parquet"))
        return real(self, rows)

    monkeypatch.setattr(_results.Parts, "write", write)
    t0 = time.perf_counter()
    with pytest.raises(OutputError, match="No space left on device") as exc:
        screen(
            [data / "slideA", data / "slideB"], model, tmp_path / "out", device="cpu", batch_size=1
        )
    assert time.perf_counter() - t0 < 20  # no stall waiting for the stage threads
    assert "part-x.parquet" in str(exc.value)
    monkeypatch.setattr(_results.Parts, "write", real)
    s = screen([data / "slideA", data / "slideB"], model, tmp_path / "out", device="cpu")
    table = pq.read_table(tmp_path / "out" / "results.parquet")
    assert table.num_rows == 6 and s.n_nuclei == 5
    keys = list(
        zip(table.column("source").to_pylist(), table.column("nucleus_id").to_pylist(), strict=True)
    )
    assert len(set(keys)) == 6


def test_cell_names_of_every_kind_of_id():
    from ainu_engine.nuclei import cell_name

    assert [cell_name(v) for v in (7, np.int64(7), 7.0, np.float32(12.0))] == ["cell007"] * 3 + [
        "cell012"
    ]
    assert cell_name(1.2) == "cell1.2" and cell_name(1.7) != cell_name(1.2)
    assert cell_name("A") == "cellA" and cell_name(np.str_("nuc 3")) == "cellnuc 3"
    assert cell_name(b"B") == "cellB"


def test_the_summary_counts_calls_that_failed_qc_apart(screen_model, tmp_path, capsys):
    """Issue 16: "calls: hiPSC 2, somatic 1" while none passed QC was dishonest."""
    from ainu_engine.cli import main

    model, _, data = screen_model
    (tmp_path / "in").mkdir()
    for k, f in enumerate(sorted((data / "slideA").glob("*.bin"))[:3]):
        locs = read(f)
        write(
            locs[: 300 if k else locs.n], tmp_path / "in" / f"n{k}.parquet"
        )  # all unlike training
    code = main(["screen", str(tmp_path / "in"), "-m", str(model), "-o", str(tmp_path / "out"),
                 "--device", "cpu"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "calls that passed QC (0 of 3 nuclei)" in out and "calls that failed QC" in out
    doc = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sum(doc["calls_qc_ok"].values()) == 0 and sum(doc["calls"].values()) == 3
    assert "passed QC" in (tmp_path / "out" / "report.html").read_text()


def test_the_summary_says_when_the_model_was_trained_on_simulated_nuclei(tmp_path, capsys):
    from pathlib import Path

    from ainu_engine.cli import main

    repo = Path(__file__).resolve().parents[3]
    model = repo / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
    args = [
        "screen",
        str(repo / "examples" / "screen"),
        "-m",
        str(model),
        "-o",
        str(tmp_path / "o"),
    ]
    assert main([*args, "--device", "cpu"]) == 0
    assert "trained on SIMULATED nuclei" in capsys.readouterr().out
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["simulated_model"] is True


def test_roi_names_are_kept_and_repeats_told_apart():
    from types import SimpleNamespace as R

    from ainu_engine.nuclei import roi_names

    rois = [R(name="nucleus A"), R(name=""), R(name="nucleus A"), R(name="b")]
    assert roi_names(rois) == ["nucleus A", "roi001", "nucleus A-2", "b"]


def test_render_takes_folders_and_never_writes_two_inputs_onto_one_image(tmp_path, capsys):
    from ainu_engine.cli import main

    rng = np.random.default_rng(0)
    for slide in ("s1", "s2"):
        (tmp_path / "in" / slide).mkdir(parents=True)
        write(Localizations(rng.uniform(0, 4000, 2000), rng.uniform(0, 4000, 2000)),
              tmp_path / "in" / slide / "cell.parquet")  # fmt: skip
    code = main(["render", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--size", "64",
                 "--image-format", "npy", "--force"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.npy")) == [
        "s1_cell.npy",
        "s2_cell.npy",
    ]


def test_a_scale_that_says_the_units_are_wrong_is_flagged(tmp_path, capsys):
    """Localizations in µm read as nm span a few nm: render warns, QC flags units_suspect."""
    from ainu_engine import Classifier
    from ainu_engine.cli import main
    from ainu_engine.render import RenderSpec, render

    rng = np.random.default_rng(3)
    um = Localizations(rng.uniform(0, 8, 20000), rng.uniform(0, 8, 20000))  # 8 "nm" across
    assert any("less than 1 µm" in w for w in render(um, RenderSpec(size=0), device="cpu").warnings)
    assert (
        render(um, RenderSpec(pixel_nm=0.5, size=0), device="cpu")
        .warnings[0]
        .startswith("render pixel")
    )
    nm = Localizations(rng.uniform(0, 8000, 20000), rng.uniform(0, 8000, 20000))
    assert render(nm, RenderSpec(size=0), device="cpu").warnings == []
    write(um, tmp_path / "um.parquet")
    assert (
        main(["render", str(tmp_path / "um.parquet"), "--out", str(tmp_path / "o"), "--size", "64"])
        == 0
    )
    assert "are the coordinates in nm?" in capsys.readouterr().err
    assert json.loads((tmp_path / "o" / "um.tiff.json").read_text())["warnings"]
    model = REPO_MODEL
    with Classifier.load(model, backend="onnxruntime", device="cpu", render_device="cpu") as clf:
        assert "units_suspect" in clf.classify(um).qc
        assert "units_suspect" not in clf.classify(nm).qc


def _blobs(centres, n=6000, seed=0):
    rng = np.random.default_rng(seed)
    xs = np.concatenate([rng.normal(cx, 2500, n) for cx, _ in centres])
    ys = np.concatenate([rng.normal(cy, 2500, n) for _, cy in centres])
    return Localizations(xs, ys)


def test_a_field_of_cells_scored_as_one_nucleus_is_flagged(tmp_path):
    """Synthetic: three separated cells in one file are flagged, one cell is not (CI covers it
    without ../shared)."""
    from ainu_engine import Classifier

    model = REPO_MODEL
    with Classifier.load(model, backend="onnxruntime", device="cpu", render_device="cpu") as clf:
        field = clf.prepare(_blobs([(10_000, 10_000), (40_000, 10_000), (25_000, 40_000)]))
        one = clf.prepare(_blobs([(10_000, 10_000)]))
        assert field.n_parts == 3 and "looks_like_field" in clf.qc(field)
        assert one.n_parts == 1 and "looks_like_field" not in clf.qc(one)


REAL = Path(__file__).resolve().parents[4] / "shared" / "data" / "real"


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("JBC-STORM-2020_m2_unstim_5lo561_flap647.txt", True),  # five cells (README)
        ("JBC-STORM-2020_m2_c5a_5lo488_cpla2561_flap647.txt", True),  # three cells and debris
        ("SMAP-old_FOCAL_Mouse_Cortex_cell_rapidSTORM.txt", False),  # one whole cell
    ],
)
def test_real_fields_are_flagged_and_a_real_cell_is_not(name, field):
    from ainu_engine import Classifier

    if not (REAL / name).is_file():
        pytest.skip(f"real data not found at {REAL} (it lives in ../shared/data/real)")
    locs = read(REAL / name)
    # the model's one channel (polII) fed from the files' far-red channel; the rapidSTORM cell
    # has one unnamed channel, which a one-channel model takes as it is
    cmap = {"polII": "647"} if locs.meta.channel_names else None
    kw = {"backend": "onnxruntime", "device": "cpu", "render_device": "cpu", "channel_map": cmap}
    with Classifier.load(REPO_MODEL, **kw) as clf:
        p = clf.prepare(locs)
        assert ("looks_like_field" in clf.qc(p)) is field, p.n_parts


REPO_MODEL = (
    Path(__file__).resolve().parents[3]
    / "examples"
    / "models"
    / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
)
