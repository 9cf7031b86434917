"""The one benchmark harness: registry, timing with warm-up and repeats, environment capture,
JSON results and the RESULTS.md report."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ainu_engine.provenance import git_commit

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SCRATCH = ROOT / "_scratch"


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    run: Callable[..., dict]  # run(device=..., quick=...) -> payload
    devices: tuple[str, ...] = ("cpu",)


REGISTRY: dict[str, Benchmark] = {}


def register(name: str, description: str, devices=("cpu",)):
    def deco(fn):
        REGISTRY[name] = Benchmark(name, description, fn, tuple(devices))
        return fn

    return deco


def in_scratch(prefix: str, run: Callable[..., dict], **kw) -> dict:
    """``run(tmp, **kw)`` in a new temporary folder, removed afterwards whatever happens."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return run(tmp, **kw)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(
    fn: Callable[[], object],
    *,
    repeat: int = 5,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
) -> dict:
    """Time ``fn`` with ``perf_counter``: ``warmup`` untimed calls, then ``repeat`` timed ones.

    ``sync`` (e.g. a CUDA device synchronise) runs before each clock read. Returns the
    median, min, max, interquartile spread and all times in seconds.
    """
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    times = []
    for _ in range(repeat):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "iqr_s": q[2] - q[0],
        "repeat": repeat,
        "warmup": warmup,
        "times_s": times,
    }


def _git_commit() -> str | None:
    return git_commit(ROOT)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: str) -> str:
    if device == "cuda":
        try:
            import torch

            return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
        except Exception:  # noqa: BLE001
            return "cuda (name unavailable)"
    return f"{_cpu_model()}, {os.cpu_count()} logical cores"


def environment(
    device: str, packages=("numpy", "numba", "pyarrow", "h5py", "onnxruntime", "torch")
) -> dict:
    versions = {}
    for p in packages:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device,
        "device_description": device_description(device),
        "cpu_count": os.cpu_count(),
        "versions": versions,
        "git_commit": _git_commit(),
    }


def write_result(
    name: str, device: str, payload: dict, argv: list[str], *, quick: bool = False
) -> Path:
    """Write the JSON result; quick (smoke) runs go to _scratch/, never to results/."""
    folder = SCRATCH if quick else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "command": "python -m benchmarks " + " ".join(argv),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **environment(device),
        **payload,
    }
    path = folder / f"{name}-{device}.json"
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _kind(row: dict) -> str | None:
    """``rate`` (more is faster), ``time`` (less is faster) or None, from a figure's unit or,
    without one, its name (``nuclei/s``, ``localizations per second``; ``seconds``, ``ms``)."""
    text = str(row.get("unit") or row.get("name", "")).lower()
    if "/s" in text or "per second" in text or "per s " in text:
        return "rate"
    tail = text.rsplit(":", 1)[-1]
    if any(w in tail for w in ("seconds", " s", "ms", "time", "latency")):
        return "time"
    return None


def speedup(row: dict) -> float | None:
    """How many times faster the project is than the baseline in a figure: baseline / project
    for a time, project / baseline for a rate (the figure's own ``ratio`` where its kind is
    unknown or a value is not a positive number).

    Examples
    --------
    >>> speedup({"name": "batching on: nuclei/s", "project": 50.0, "baseline": 100.0})
    0.5
    >>> speedup({"name": "render: seconds", "project": 1.0, "baseline": 3.0})
    3.0
    """
    p, b = row.get("project"), row.get("baseline")
    kind = _kind(row)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                  for v in (p, b))  # fmt: skip
    if kind is None or not numbers:
        return row.get("ratio")
    return p / b if kind == "rate" else b / p


def report(results: Path = RESULTS, out: Path | None = None) -> Path:
    """Regenerate RESULTS.md from every JSON file in ``results``."""
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python -m benchmarks report` from `benchmarks/results/*.json`; "
        "each table compares the project with its named baseline in the same run.",
        "",
    ]
    for path in sorted(results.glob("*.json")):
        doc = json.loads(path.read_text())
        lines += [
            f"## {doc['benchmark']} — {doc['device']}",
            "",
            f"Device: {doc['device_description']}  ",
            f"Command: `{doc['command']}`  ",
            f"Commit: `{doc.get('git_commit')}`, {doc['date_utc']}  ",
            f"Inputs: {json.dumps(doc.get('inputs', {}))}",
            "",
            f"Baseline: {doc.get('baseline', '-')}",
            "",
            "| figure | project | baseline | baseline is | speedup (> 1: the project is faster) "
            "| more |",
            "|---|---|---|---|---|---|",
        ]
        shown = {"name", "project", "baseline", "baseline_name", "ratio"}
        for row in doc.get("figures", []):
            ratio = speedup(row)
            more = ", ".join(f"{k}={v}" for k, v in row.items() if k not in shown)
            lines.append(
                f"| {row['name']} | {row['project']} | {row.get('baseline', '')} | "
                f"{row.get('baseline_name', '')} | "
                f"{'' if ratio is None else f'{ratio:.2f}x'} | {more} |"
            )
        for goal in doc.get("goals", []):
            lines.append(
                f"\nGoal: {goal['goal']} — measured {goal['measured']} — "
                f"{'met' if goal['met'] else 'NOT met'}"
            )
        lines.append("")
    out = out or ROOT / "RESULTS.md"
    out.write_text("\n".join(lines))
    return out
