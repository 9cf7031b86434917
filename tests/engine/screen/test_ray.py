"""The Ray executor (issue 21) on a local Ray (``ray.init(num_cpus=2)``): the same results as the
single-machine screen; every nucleus exactly once when an inference actor or a render worker is
killed -9 mid-screen, and when the driver is killed -9 and the screen rerun; bad files in
errors.csv as on one machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ainu_engine.screen import screen

ray = pytest.importorskip("ray", reason="the distributed extra (ray[data]) is not installed")
pytest.importorskip("onnxruntime", reason="screening needs the cpu extra")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _rows(path: Path) -> dict:
    return {(r["source"], r["nucleus_id"]): r for r in pq.read_table(path).to_pylist()}


def _raw_keys(out: Path) -> list:
    """Every (file key, nucleus id) in the parts as written, duplicates included."""
    keys = []
    for p in sorted((out / "parts").glob("part-*.parquet")):
        t = pq.read_table(p, columns=["file_key", "nucleus_id"]).to_pydict()
        keys += list(zip(t["file_key"], t["nucleus_id"], strict=True))
    return keys


def _kill(name: str) -> int | None:
    """kill -9 one local process whose command line (Ray's process title) names ``name``."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        if cmd.startswith("ray::") and name in cmd:
            os.kill(int(pid), signal.SIGKILL)
            return int(pid)
    return None


@pytest.mark.parametrize("plan", ["split", "fused"])
def test_ray_gives_the_single_machine_results(screen_batch, tmp_path, plan):
    model, data, single = screen_batch
    s = screen([data], model, tmp_path / "ray", executor="ray", report=True, ray_plan=plan)
    assert s.backend["executor"] == "ray" and s.n_nuclei == single.n_nuclei
    moved = s.backend["object_store_input_bytes"]  # the model inputs passed to the actors
    assert (moved > 0) if plan == "split" else (moved == 0)
    ref, got = _rows(single.results), _rows(s.results)
    assert set(got) == set(ref)
    for key, r in ref.items():
        assert got[key]["predicted"] == r["predicted"] and got[key]["qc_flags"] == r["qc_flags"]
        for c in ("p_hiPSC", "p_somatic", "centroid_x_nm", "area_um2"):
            assert got[key][c] == pytest.approx(r[c], abs=1e-6)
    errors = (tmp_path / "ray" / "errors.csv").read_text()
    assert s.n_failed == single.n_failed == 1 and "broken.csv" in errors
    assert (tmp_path / "ray" / "report.html").is_file()
    again = screen([data], model, tmp_path / "ray", executor="ray", report=False, ray_plan=plan)
    assert again.n_nuclei == 0 and again.n_files_skipped == single.n_files - 1  # resumed


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """40 small nuclei, one file each: long enough that a kill lands mid-screen."""
    from ainu_engine.simulate import Observation, simulate_dataset

    root = tmp_path_factory.mktemp("many")
    simulate_dataset(root / "data", classes=("hiPSC", "somatic"), n_per_class=20,
                     channels=("polII", "h3"), observation=Observation(locs_per_channel=2000),
                     seed=12)  # fmt: skip
    return root / "data"


@pytest.mark.parametrize("victim", ["MapBatches(InferActor)", "FlatMap(render_file)"])
def test_a_worker_killed_mid_screen_loses_and_doubles_nothing(screen_batch, many, tmp_path, victim):
    import threading

    model, _, _ = screen_batch
    killed, stop = [], threading.Event()

    def killer():  # the first such process seen while the screen runs
        while not stop.is_set() and not killed:
            pid = _kill(victim)
            if pid is not None:
                killed.append(pid)
            time.sleep(0.01)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        s = screen([many], model, tmp_path / "out", executor="ray", report=False, batch_size=2)
    finally:
        stop.set()
        t.join()
    assert killed, f"no {victim} process was seen to kill"
    assert s.n_failed == 0 and len(_rows(s.results)) == 40
    raw = _raw_keys(tmp_path / "out")
    assert len(raw) == len(set(raw)) == 40  # each nucleus written once, none twice


def test_the_driver_killed_and_the_screen_rerun(screen_batch, many, tmp_path):
    """kill -9 of the driver (its whole process group: its own local Ray goes with it) once some
    parts are written; the rerun completes, nothing doubled."""
    model, _, _ = screen_batch
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ainu_engine", "screen", str(many), "--model", str(model),
           "--out", str(out), "--executor", "ray", "--batch-size", "2"]  # fmt: skip
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "parts").glob("part-*.parquet")):
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(_raw_keys(out))
    assert before < 40, "the driver finished before it could be killed: make the screen longer"
    s = screen([many], model, out, executor="ray", report=False)
    assert len(_rows(s.results)) == 40 and s.n_failed == 0
    raw = _raw_keys(out)
    assert len(raw) == len(set(raw)) == 40


def test_a_plan_the_cluster_cannot_run_is_refused_at_once(screen_batch, tmp_path):
    """Two inference actors of one CPU each on a 2-CPU Ray leave the render tasks nothing: it
    used to wait forever without a word; now it is refused, with the numbers, within seconds."""
    model, data, _ = screen_batch
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"2 inference workers x 1 CPU leave none of the "
                       r"cluster's 2 CPUs .* --workers 1"):  # fmt: skip
        screen([data], model, tmp_path / "out", device="cpu", executor="ray", workers=2)
    assert time.perf_counter() - t0 < 60
    from ainu_engine.screen._ray import check_resources

    check_resources({"CPU": 2.0}, workers=1, cpus_per_worker=1, gpus_per_worker=0, plan="split")
    check_resources({"CPU": 2.0}, workers=2, cpus_per_worker=1, gpus_per_worker=0, plan="fused")
    with pytest.raises(ValueError, match="need 2 GPUs; the cluster has 1"):
        check_resources({"CPU": 8.0, "GPU": 1.0}, workers=2, cpus_per_worker=1,
                        gpus_per_worker=1, plan="split")  # fmt: skip
