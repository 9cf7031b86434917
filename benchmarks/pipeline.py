"""``screen`` against a plain serial loop on small nuclei, where per-nucleus overheads decide.

300 simulated nuclei of 2·10⁴ localizations (one Parquet file each) through the bundled small
model (64 px, one channel): ``screen`` end to end (its pipeline time, no model load) against
the loop a user would write — for each file ``read`` → ``Classifier.prepare`` →
``predict_prepared`` — over the same files, on the same model and backend. Both are the best
of 3 runs (this shared machine's timings move by tens of percent between runs).

Goal (issue "Optimized inference"): screen at least as fast as the serial loop. The loop writes
nothing; screen writes its results parts, journal and final table (that work is in its time).
"""

from __future__ import annotations

import time
from pathlib import Path

from ._harness import in_scratch, register

MODEL = Path(__file__).resolve().parents[1] / "examples" / "models"
MODEL = MODEL / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
REPEATS = 5


def _best(fn, k: int = REPEATS):
    times, out = [], None
    for _ in range(k):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, out


@register(
    "pipeline",
    "screen end to end vs a serial read -> prepare -> infer loop, 300 small nuclei, bundled model",
)
def run(*, device: str = "cpu", quick: bool = False) -> dict:
    return in_scratch("ainu-bench-pipeline-", _run, device=device, quick=quick)


def _run(tmp: Path, *, device: str, quick: bool) -> dict:
    from ainu_engine import Classifier
    from ainu_engine.io import read
    from ainu_engine.nuclei import expand_inputs
    from ainu_engine.screen import screen
    from ainu_engine.simulate import Observation, simulate_dataset

    n = 40 if quick else 300
    locs_per = 2e4
    data = tmp / "nuclei"
    simulate_dataset(data, n_per_class=n // 2, observation=Observation(locs_per_channel=locs_per),
                     seed=5)  # fmt: skip
    files = expand_inputs([data])

    with Classifier.load(MODEL, backend="onnxruntime", device=device) as clf:
        clf.predict_prepared([clf.prepare(read(files[0]))])  # JIT and session warm

        def serial():
            return [clf.predict_prepared([clf.prepare(read(f))])[0].label for f in files]

        t_serial, serial_runs, labels = _best(serial)
        backend = {**clf.backend.describe(), "reason": clf.backend.reason}

    from .shift import without_reference

    plain = without_reference(MODEL, tmp / "without-reference.onnx")
    screens, screens_plain = [], []
    for _ in range(REPEATS):  # interleaved: the machine's drift hits both alike
        for model, runs in ((MODEL, screens), (plain, screens_plain)):
            runs.append(screen([data], model, tmp / "out", backend="onnxruntime", device=device,
                               report=False, force=True))  # fmt: skip
    best = min(screens, key=lambda x: x.pipeline_seconds)  # its clock excludes the model load
    best_plain = min(screens_plain, key=lambda x: x.pipeline_seconds)
    overhead = best.pipeline_seconds / best_plain.pipeline_seconds - 1
    import pyarrow.parquet as pq

    # the last screen was the model without the reference: screen once more for its table
    screen([data], MODEL, tmp / "out", backend="onnxruntime", device=device, report=False,
           force=True)  # fmt: skip
    table = pq.read_table(tmp / "out" / "results.parquet", columns=["source", "predicted"])
    by_file = dict(zip(table.column("source").to_pylist(), table.column("predicted").to_pylist(),
                       strict=True))  # fmt: skip
    same = sum(by_file.get(str(f)) == lab for f, lab in zip(files, labels, strict=True))
    serial_rate = len(files) / t_serial
    screen_rate = best.n_nuclei / best.pipeline_seconds
    ratio = screen_rate / serial_rate
    return {
        "inputs": {
            "model": MODEL.name,
            "nuclei": len(files),
            "localizations_per_nucleus": int(locs_per),
            "repeats": REPEATS,
        },
        "baseline": "serial loop, one file at a time: read -> Classifier.prepare -> "
        "predict_prepared",
        "serial_s": serial_runs,
        "screen_pipeline_s": [x.pipeline_seconds for x in screens],
        "screen_with_model_load_s": [x.seconds for x in screens],
        "screen_without_ood_reference_pipeline_s": [x.pipeline_seconds for x in screens_plain],
        "ood_score_overhead": overhead,
        "screen_stages": best.stages,
        "serial_nuclei_per_s": serial_rate,
        "screen_nuclei_per_s": screen_rate,
        "same_calls": same,
        "backend": backend,
        "figures": [
            {
                "name": f"screen end to end, {len(files)} nuclei of 2e4 localizations (nuclei/s)",
                "project": round(screen_rate, 2),
                "baseline": round(serial_rate, 2),
                "baseline_name": "serial read -> prepare -> infer loop",
                "ratio": ratio,
            },
            {
                "name": f"screen with the OOD score, {len(files)} nuclei (nuclei/s)",
                "project": round(best.n_nuclei / best.pipeline_seconds, 2),
                "baseline": round(best_plain.n_nuclei / best_plain.pipeline_seconds, 2),
                "baseline_name": "the same model without its reference (no score)",
                "ratio": best_plain.pipeline_seconds / best.pipeline_seconds,
            },
        ],
        "goals": [
            {
                "goal": "screen >= a serial read -> prepare -> infer loop on small nuclei",
                "measured": f"{ratio:.2f}x ({screen_rate:.1f} vs {serial_rate:.1f} nuclei/s; "
                f"same call for {same}/{len(files)} nuclei)",
                "met": ratio >= 1.0,
            },
            {
                "goal": "the out-of-distribution score adds <= 5 % to the screen's per-nucleus "
                "time (issue 33)",
                "measured": f"{overhead:+.1%} ({best.pipeline_seconds:.2f} s vs "
                f"{best_plain.pipeline_seconds:.2f} s for the same model without its reference)",
                "met": overhead <= 0.05,
            },
        ],
    }
