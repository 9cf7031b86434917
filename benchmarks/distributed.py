"""Screening beyond one machine, measured on this one (2 cores: what cannot scale here is said).

1. **Overhead**: ``screen --executor ray`` (a local Ray, ``num_cpus`` = the cores) against the
   single-machine screen on the same 300 simulated nuclei (2·10⁴ localizations, the bundled
   model). Goal (issue "distributed"): >= 0.85x. Both end to end, model load and Ray start-up
   excluded (each screen's own pipeline clock, which on Ray includes starting the inference
   actor and the render workers); ``ray.init`` is reported apart, and so is the time to the
   first written batch (the fixed cost a longer screen amortises).
2. **Scheduler scaling**: the inference stage replaced by a **stand-in that sleeps a GPU's batch
   time** (``STAND_IN_BATCH_S`` per batch of 8 before the real small model's calls, labelled as
   such), 1, 2, 4 and 8 actors on a local Ray with 10 logical CPUs: nuclei/s in the steady
   state (first written batch to last; the actors' start-up, which grows with their number on
   2 cores, is reported apart) against actors. The render tasks still run on the 2 real cores,
   so scaling stops where they saturate.
3. **10⁴ nuclei on one machine in 8 shards** (small simulated nuclei, batches of 8): the peak RSS
   of the process after the first shard and after all eight (flat = the shards do not
   accumulate), the merge time and the report time; the **merge time against the number of
   parts** (the same 10⁴ rows re-split into 10², 10³ and 10⁴ part files over 8 shards).
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ._harness import register

MODEL = Path(__file__).resolve().parents[1] / "examples" / "models"
MODEL = MODEL / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
#: the stand-in inference: seconds per batch of 8 (DenseNet-121 at 512 px, fp16 on one H100-class
#: GPU is about this order; it is a stand-in, not a measurement)
STAND_IN_BATCH_S = 0.05  # = _stand_in.BATCH_S
#: the overhead run's inference actor: a small model's calls leave its CPU mostly idle
CPUS_PER_ACTOR = 0.5


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


#: Ray's processes by what they do: the first pattern found in a process' command line names it
_ROLES = (
    ("raylet", "raylet"), ("gcs_server", "gcs server"), ("MapWorker", "inference actor"),
    ("ray::", "task workers (render)"), ("ray/", "Ray agents and monitors"),
)  # fmt: skip


def _role(proc) -> str:
    try:
        line = " ".join(proc.cmdline()) or proc.name()
    except Exception:  # noqa: BLE001 - gone, or not ours to read
        return "other"
    return next((name for pattern, name in _ROLES if pattern in line), "other")


def _cpu_snapshot() -> dict:
    """CPU seconds (user + system) so far of this process and of every other process of the
    user (Ray's raylet, GCS, agents and workers are not the driver's children), by pid."""
    import psutil

    me, out = psutil.Process(), {}
    for proc in psutil.process_iter():
        try:
            if proc.uids().real != me.uids().real:
                continue
            t = proc.cpu_times()
            out[proc.pid] = (proc, t.user + t.system)
        except psutil.Error:
            continue
    return out


def _cpu_by_role(before: dict, after: dict) -> dict:
    """CPU seconds spent between two snapshots, summed by role (the driver apart)."""
    import os

    out: dict[str, float] = {}
    for pid, (proc, t) in after.items():
        spent = t - (before[pid][1] if pid in before else 0.0)
        if spent <= 0.005:
            continue
        role = "driver (screen + Ray Data executor)" if pid == os.getpid() else _role(proc)
        out[role] = round(out.get(role, 0.0) + spent, 3)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _data(root: Path, n: int, locs: float, seed: int) -> Path:
    from ainu_engine.simulate import Observation, simulate_dataset

    simulate_dataset(root, n_per_class=n // 2, observation=Observation(locs_per_channel=locs),
                     seed=seed)  # fmt: skip
    return root


def _overhead(tmp: Path, quick: bool) -> dict:
    import os

    import ray

    from ainu_engine.screen import screen

    n = 40 if quick else 300
    data = _data(tmp / "overhead", n, 2e4, 21)
    local, local_cpu = [], []
    for _ in range(2):
        c0 = _cpu_snapshot()
        local.append(screen([data], MODEL, tmp / "o-local", report=False, force=True))
        local_cpu.append(_cpu_by_role(c0, _cpu_snapshot()))
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - t0
    first: list[float] = []  # seconds from the call to the first written batch, per run
    cpu: list[dict] = []  # CPU seconds by process role, per run
    steady: list[float] = []  # nuclei/s from the first written batch to the last, per run

    def ray_screen():
        t = time.perf_counter()
        marks: list[tuple[float, int]] = []

        def mark(p):
            marks.append((time.perf_counter(), p["nuclei"]))

        c0 = _cpu_snapshot()
        s = screen([data], MODEL, tmp / "o-ray", executor="ray", report=False, force=True,
                   cpus_per_worker=CPUS_PER_ACTOR, on_progress=mark)  # fmt: skip
        cpu.append(_cpu_by_role(c0, _cpu_snapshot()))
        (t0, n0), (t1, n1) = marks[0], marks[-1]
        first.append(t0 - t)
        steady.append((n1 - n0) / (t1 - t0) if t1 > t0 else float("nan"))
        return s

    try:
        runs = [ray_screen() for _ in range(2)]
    finally:
        ray.shutdown()
    best_local = min(local, key=lambda s: s.pipeline_seconds)
    best_ray = min(runs, key=lambda s: s.pipeline_seconds)
    i_l, i_r = local.index(best_local), runs.index(best_ray)
    rate_l = best_local.n_nuclei / best_local.pipeline_seconds
    rate_r = best_ray.n_nuclei / best_ray.pipeline_seconds
    return {
        "nuclei": n,
        "local_pipeline_s": [s.pipeline_seconds for s in local],
        "ray_pipeline_s": [s.pipeline_seconds for s in runs],
        "ray_startup_s": startup,
        "ray_first_batch_s": first,
        "ray_steady_nuclei_per_s": steady,
        "local_nuclei_per_s": rate_l,
        "ray_nuclei_per_s": rate_r,
        "ratio": rate_r / rate_l,
        "ray_stages": best_ray.stages,
        # where the CPU went in the best run of each (user + system seconds by process; the
        # machine has os.cpu_count() x the pipeline's seconds to give)
        "cpu_s_by_process": {"local": local_cpu[i_l], "ray": cpu[i_r]},
        "cpu_s_available": {"local": round(os.cpu_count() * best_local.pipeline_seconds, 3),
                            "ray": round(os.cpu_count() * best_ray.pipeline_seconds, 3)},
    }


def _scaling(tmp: Path, quick: bool) -> dict:
    import ray

    from ainu_engine.screen import screen

    from . import _stand_in

    n = 48 if quick else 240
    data = _data(tmp / "scaling", n, 3e3, 22)
    ray.init(num_cpus=10, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(_stand_in)
    out = {}
    try:
        screen([data], MODEL, tmp / "warm", executor="ray", report=False, workers=1,
               batch_size=8, ray_actor=_stand_in.SleepingActor)  # fmt: skip
        for workers in (1, 2, 4, 8):
            marks: list[tuple[float, int]] = []
            s = screen([data], MODEL, tmp / f"s{workers}", executor="ray", report=False,
                       workers=workers, batch_size=8, ray_actor=_stand_in.SleepingActor,
                       force=True, on_progress=lambda p, m=marks: m.append(
                           (time.perf_counter(), p["nuclei"])))  # fmt: skip
            # steady state: from the first written batch to the last (the actors' start-up,
            # which on 2 cores grows with their number, excluded)
            (t0, n0), (t1, n1) = marks[0], marks[-1]
            out[str(workers)] = {"nuclei_per_s": (n1 - n0) / (t1 - t0) if t1 > t0 else None,
                                 "end_to_end_nuclei_per_s": s.n_nuclei / s.pipeline_seconds,
                                 "pipeline_s": s.pipeline_seconds,
                                 "first_batch_s": t0 - (t1 - s.pipeline_seconds)}  # fmt: skip
    finally:
        ray.shutdown()
    ideal = 8 / STAND_IN_BATCH_S
    return {"nuclei": n, "stand_in_batch_s": STAND_IN_BATCH_S, "batch": 8,
            "per_actor_ceiling_nuclei_per_s": ideal, "by_actors": out}  # fmt: skip


def _shards(tmp: Path, quick: bool) -> dict:
    from ainu_engine.screen import merge, screen

    n = 400 if quick else 10_000
    data = _data(tmp / "ten-thousand", n, 1e3, 23)
    out = tmp / "sharded"
    rss, seconds = [], []
    for k in range(8):
        t0 = time.perf_counter()
        screen([data], MODEL, out, shard=(k, 8), batch_size=8)
        seconds.append(time.perf_counter() - t0)
        rss.append(_rss_mib())
    t0 = time.perf_counter()
    doc = merge(out, report=False)
    merge_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    merge(out, report=True)
    report_s = time.perf_counter() - t0 - merge_s
    by_parts = {}
    for n_parts in (100, 1000, 10_000) if not quick else (10, 100):
        resplit = tmp / f"resplit-{n_parts}"
        _resplit(out, resplit, n_parts)
        t0 = time.perf_counter()
        d = merge(resplit, report=False)
        by_parts[str(n_parts)] = {"merge_s": time.perf_counter() - t0, "nuclei": d["nuclei"]}
        shutil.rmtree(resplit)
    return {
        "nuclei": doc["nuclei"],
        "shard_seconds": seconds,
        "peak_rss_mib_after_each_shard": rss,
        "merge_s": merge_s,
        "report_s": report_s,
        "merge_s_by_parts": by_parts,
    }


def _resplit(src: Path, dst: Path, n_parts: int) -> None:
    """The shards of ``src`` with their rows re-split into ``n_parts`` part files in all (the
    journals and summaries as they are): the merge's cost per part, on the same rows."""
    import pyarrow.parquet as pq

    shards = sorted((src / "shards").iterdir())
    per = max(1, n_parts // len(shards))
    for d in shards:
        target = dst / "shards" / d.name
        (target / "parts").mkdir(parents=True)
        for name in ("summary.json", "errors.csv"):
            shutil.copy(d / name, target / name)
        shutil.copy(d / "parts" / "done.jsonl", target / "parts" / "done.jsonl")
        run = json.loads((d / "summary.json").read_text())["run_key"]
        parts = sorted((d / "parts").glob(f"part-{run}-*.parquet"))
        if not parts:
            continue
        import pyarrow as pa

        table = pa.concat_tables([pq.read_table(p) for p in parts])
        step = max(1, -(-table.num_rows // per))
        for i, start in enumerate(range(0, table.num_rows, step)):
            pq.write_table(
                table.slice(start, step), target / "parts" / f"part-{run}-{i:06d}.parquet"
            )


@register(
    "distributed",
    "Ray executor vs one machine (300 nuclei); scheduler scaling with a sleeping stand-in for "
    "inference; 10^4 nuclei in 8 shards: RSS, merge and report time, merge time vs parts",
)
def run(*, device: str = "cpu", quick: bool = False) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="ainu-bench-distributed-"))
    try:
        overhead = _overhead(tmp, quick)
        scaling = _scaling(tmp, quick)
        shards = _shards(tmp, quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    by = scaling["by_actors"]
    one = by["1"]["nuclei_per_s"]
    figures = [
        {"name": f"screen --executor ray, {overhead['nuclei']} nuclei (nuclei/s)",
         "project": round(overhead["ray_nuclei_per_s"], 2),
         "baseline": round(overhead["local_nuclei_per_s"], 2),
         "baseline_name": "single-machine screen, same nuclei", "ratio": overhead["ratio"]},
    ] + [
        {"name": f"stand-in inference, {w} actors (nuclei/s)",
         "project": round(v["nuclei_per_s"], 2), "baseline": round(one, 2),
         "baseline_name": "1 actor", "ratio": v["nuclei_per_s"] / one}
        for w, v in by.items()
    ]  # fmt: skip
    rss = shards["peak_rss_mib_after_each_shard"]
    return {
        "inputs": {"model": MODEL.name, "python": sys.version.split()[0]},
        "baseline": "the single-machine screen (overhead); one stand-in actor (scaling)",
        "overhead": overhead,
        "scaling_stand_in": scaling,
        "shards": shards,
        "figures": figures,
        "goals": [
            {
                "goal": "Ray executor >= 0.85x the single-machine screen (300 nuclei, here)",
                "measured": f"{overhead['ratio']:.2f}x",
                "met": overhead["ratio"] >= 0.85,
            },
            {
                "goal": "10^4 nuclei in 8 shards: peak RSS flat (last shard <= 1.25x the first)",
                "measured": f"{rss[0]:.0f} -> {rss[-1]:.0f} MiB",
                "met": rss[-1] <= 1.25 * rss[0],
            },
        ],  # fmt: skip
    }


@register(
    "ray_plans",
    "Ray executor: rendering in CPU tasks (model inputs through the object store) vs in the "
    "inference actors, 300 nuclei",
)
def run_plans(*, device: str = "cpu", quick: bool = False) -> dict:
    """The two Ray plans on the same 300 nuclei (2·10⁴ localizations, the bundled model), each
    the better of 2 runs on a local Ray with the machine's cores: ``split`` (1 inference actor
    with half a CPU, rendering in 1-CPU tasks) and ``fused`` (2 actors of 1 CPU that read,
    render and infer); nuclei/s end to end and steady, and the bytes of model inputs that
    crossed the object store."""
    import os

    import ray

    from ainu_engine.screen import screen

    tmp = Path(tempfile.mkdtemp(prefix="ainu-bench-plans-"))
    n = 40 if quick else 300
    out = {}
    try:
        data = _data(tmp / "nuclei", n, 2e4, 21)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        for plan, kw in (("split", {"workers": 1, "cpus_per_worker": CPUS_PER_ACTOR}),
                         ("fused", {"workers": 2, "cpus_per_worker": 1.0})):  # fmt: skip
            runs = []
            for _ in range(2):
                marks: list[tuple[float, int]] = []

                def mark(p, marks=marks):
                    marks.append((time.perf_counter(), p["nuclei"]))

                s = screen([data], MODEL, tmp / plan, executor="ray", report=False, force=True,
                           ray_plan=plan, on_progress=mark, **kw)  # fmt: skip
                (t0, n0), (t1, n1) = marks[0], marks[-1]
                runs.append({"nuclei_per_s": s.n_nuclei / s.pipeline_seconds,
                             "steady_nuclei_per_s": (n1 - n0) / (t1 - t0) if t1 > t0 else None,
                             "object_store_input_bytes": s.backend["object_store_input_bytes"],
                             **kw})  # fmt: skip
            out[plan] = max(runs, key=lambda r: r["nuclei_per_s"])
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    split, fused = out["split"], out["fused"]
    return {
        "inputs": {"model": MODEL.name, "nuclei": n, "localizations_per_nucleus": 20000},
        "baseline": "plan split (rendering in CPU tasks)",
        "plans": out,
        "figures": [
            {
                "name": f"Ray plan fused vs split, {n} nuclei (nuclei/s)",
                "project": round(fused["nuclei_per_s"], 2),
                "baseline": round(split["nuclei_per_s"], 2),
                "baseline_name": "plan split",
                "ratio": fused["nuclei_per_s"] / split["nuclei_per_s"],
            },
        ],  # fmt: skip
        "goals": [],
    }
