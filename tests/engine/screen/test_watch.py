"""``watch`` (issue 19): files are screened once finished, partial files never, and a restarted
watcher screens nothing twice."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ainu_engine.screen import settled_files, watch

pytest.importorskip("onnxruntime", reason="watch screens with the cpu extra")

REPO = Path(__file__).resolve().parents[3]
MODEL = REPO / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
CSV = REPO / "examples" / "screen" / "slide2" / "hiPSC_0000.csv"


def test_a_file_is_finished_when_it_stopped_growing_or_its_sidecar_appeared(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("x,y\n1,2\n")
    (tmp_path / "b.csv.part").write_text("x,y\n1,2\n")  # a localizer's partial name
    seen = {}
    assert settled_files(tmp_path, seen, 1.0, now=0.0) == []  # just seen
    assert settled_files(tmp_path, seen, 1.0, now=0.5) == []
    assert settled_files(tmp_path, seen, 1.0, now=1.5) == [f]
    with f.open("a") as fh:
        fh.write("3,4\n")  # it grows again: not finished
    assert settled_files(tmp_path, seen, 1.0, now=2.0) == []
    (tmp_path / "a.csv.done").write_text("")
    assert settled_files(tmp_path, seen, 1.0, now=2.1) == [f]  # the sidecar says so at once


def test_watch_once_screens_finished_files_and_a_restart_adds_no_row(tmp_path):
    import pyarrow.parquet as pq

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(CSV, src / "n1.csv")
    out = tmp_path / "out"
    assert watch(src, MODEL, out, settle_s=0.2, once=True, device="cpu") == 1
    assert pq.read_table(out / "results.parquet").num_rows == 1
    shutil.copy(CSV, src / "n2.csv")  # another file (another path), screened on the restart
    (src / "n3.csv.tmp").write_text("x,y\n1,2\n")
    watch(src, MODEL, out, settle_s=0.2, once=True, device="cpu")  # a "restart"
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert sorted(Path(r["source"]).name for r in rows) == ["n1.csv", "n2.csv"]


def test_the_watch_command_picks_up_a_file_written_while_it_runs(tmp_path):
    import pyarrow.parquet as pq

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    cmd = [sys.executable, "-m", "ainu_engine", "watch", str(src), "--model", str(MODEL),
           "--out", str(out), "--settle-s", "0.5", "--poll-s", "0.2",
           "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.0)
        lines = CSV.read_text().splitlines(keepends=True)
        step = max(1, len(lines) // 5)
        with (src / "growing.csv").open("w") as fh:  # written in pieces, as a localizer does
            for k in range(0, len(lines), step):
                fh.writelines(lines[k : k + step])
                fh.flush()
                time.sleep(0.2)
        deadline = time.time() + 90
        while time.time() < deadline and not (out / "results.parquet").exists():
            time.sleep(0.3)
        rows = pq.read_table(out / "results.parquet").to_pylist()
        assert len(rows) == 1 and rows[0]["n_localizations"] == len(lines) - 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_watcher_killed_mid_screen_resumes_without_duplicates(tmp_path):
    import os
    import signal

    import pyarrow.parquet as pq

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for k in range(6):
        shutil.copy(CSV, src / f"n{k}.csv")
    cmd = [sys.executable, "-m", "ainu_engine", "watch", str(src), "--model", str(MODEL),
           "--out", str(out), "--settle-s", "0.3", "--poll-s", "0.2",
           "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list((out / "parts").glob("part-*.parquet")):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-screen: after the first written batch
    proc.wait(timeout=30)
    watch(src, MODEL, out, settle_s=0.2, once=True, device="cpu")  # the restarted watcher
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert sorted(Path(r["source"]).name for r in rows) == [f"n{k}.csv" for k in range(6)]
