"""``ainu-engine bench MODEL``: how fast a model runs on this machine, per backend and batch size
(in the spirit of trtexec and perf_analyzer), and how fast its RenderSpec renders a nucleus — so
that a user can choose a backend and a batch size for their machine."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["bench_model", "bench_backend", "bench_render"]


def _percentiles(seconds: list[float]) -> dict:
    a = np.asarray(seconds) * 1000.0
    return {f"p{q}_ms": round(float(np.percentile(a, q)), 3) for q in (50, 90, 99)}


def bench_backend(backend, batches: Sequence[int], seconds: float) -> list[dict]:
    """Throughput and latency of a loaded backend at each batch size: random inputs, 3 warm-up
    runs, then runs for ``seconds / len(batches)`` seconds (at least 5).

    Parameters
    ----------
    backend : Backend
        A loaded backend.
    batches : sequence of int
        Batch sizes.
    seconds : float
        The time budget of all batch sizes together.

    Returns
    -------
    list of dict
        One record per batch size: images per second and latency percentiles.
    """
    info = backend.info
    rng = np.random.default_rng(0)
    out = []
    per = max(0.2, seconds / max(1, len(batches)))
    for b in batches:
        x = rng.random((b, info.n_channels, info.input_size, info.input_size), dtype=np.float32)
        for _ in range(3):
            backend.infer(x)
        times: list[float] = []
        t_end = time.perf_counter() + per
        while time.perf_counter() < t_end or len(times) < 5:
            t0 = time.perf_counter()
            backend.infer(x)
            times.append(time.perf_counter() - t0)
        total = sum(times)
        rate = round(b * len(times) / total, 2)
        out.append({"batch": b, "runs": len(times), "images_per_s": rate, **_percentiles(times)})
    return out


def bench_render(classifier, *, n_localizations: int = 100_000, repeat: int = 5,
                 seed: int = 0) -> dict:  # fmt: skip
    """Nuclei per second that ``Classifier.prepare`` renders with the model's RenderSpec, on a
    synthetic round nucleus of 12 µm (uniform density) in every channel the model takes.

    Parameters
    ----------
    classifier : Classifier
        The model (its RenderSpec and channels).
    n_localizations : int
        Localizations per channel of the synthetic nucleus.
    repeat : int
        Renders timed.
    seed : int
        The synthetic nucleus's seed.

    Returns
    -------
    dict
        The rendering record.
    """
    from .io import Localizations, Metadata

    spec = classifier.info.render_spec
    rng = np.random.default_rng(seed)
    r = 6000.0 * np.sqrt(rng.random(n_localizations))
    a = rng.random(n_localizations) * 2 * np.pi
    ids = list(spec.channels) if spec.channels is not None else [0]
    names = dict(zip(ids, classifier.info.channel_names, strict=False))
    locs = Localizations(
        2e4 + r * np.cos(a), 2e4 + r * np.sin(a), channel=rng.choice(ids, n_localizations),
        precision_nm=rng.uniform(8, 25, n_localizations), meta=Metadata(channel_names=names),
    )  # fmt: skip
    classifier.prepare(locs)  # compile
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        classifier.prepare(locs)
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    return {"n_localizations": n_localizations, "nuclei_per_s": round(1.0 / med, 2),
            "median_ms": round(med * 1000.0, 2)}  # fmt: skip


def bench_model(
    model: str | os.PathLike,
    *,
    backends: Sequence[str] | None = None,
    batches: Sequence[int] = (1, 8, 32),
    seconds: float = 10.0,
    device: str = "auto",
    render: bool = True,
    on_result: Callable[[dict], None] | None = None,
    save: bool = True,
) -> list[dict]:
    """Records, one per backend and batch size (``backend``, ``device``, ``precision``,
    ``batch``, ``images_per_s``, ``p50_ms``, ``p90_ms``, ``p99_ms``) and one for rendering
    (``stage: "render"``); a backend that cannot run gives a record with its ``error``.

    With ``save`` (an ``.onnx`` only), the measurements are kept for this model and machine
    (:func:`ainu_engine.backends.save_measurements`): ``--backend auto`` then runs the fastest
    of them, and the last record (``stage: "saved"``) says where they are and what auto picks.

    Parameters
    ----------
    model : str or os.PathLike
        An ``.onnx`` (or a checkpoint for torch).
    backends : sequence of str, optional
        The backends measured (default: every one that can run here).
    batches : sequence of int
        Batch sizes.
    seconds : float
        The time budget per backend.
    device : {"auto", "cpu", "cuda"}
        Where.
    render : bool
        Also time rendering.
    on_result : callable, optional
        Called with each record.
    save : bool
        Keep the measurements (see above).

    Returns
    -------
    list of dict
    """
    from ._classifier import Classifier
    from .backends import (
        create_backend,
        machine_id,
        measured_best,
        runnable_backends,
        save_measurements,
    )
    from .errors import AinuError
    from .model import read_model_info

    if not batches or any(int(b) < 1 for b in batches):
        raise ValueError("batches must be positive whole numbers")
    precision = read_model_info(model).precision if Path(model).suffix == ".onnx" else "fp32"
    pairs = runnable_backends(model, device)
    if backends:
        pairs = [(b, d) for b in backends for d in ({d for n, d in pairs if n == b} or {device})]
    results = []

    def emit(rec):
        results.append(rec)
        if on_result is not None:
            on_result(rec)

    for name, dev in pairs:
        try:
            with create_backend(model, name, device=dev) as be:
                be.load()
                for rec in bench_backend(be, [int(b) for b in batches], seconds):
                    emit({"backend": name, "device": be.device, "precision": precision, **rec})
        except (AinuError, ImportError, RuntimeError) as err:
            emit({"backend": name, "device": dev, "precision": precision,
                  "error": str(err).splitlines()[0][:300]})  # fmt: skip
    if render:
        clf = Classifier.load(model, device="cpu", render_device="cpu")
        try:
            emit({"stage": "render", "device": "cpu", **bench_render(clf)})
        finally:
            clf.close()
    if save and Path(model).suffix == ".onnx" and any("images_per_s" in r for r in results):
        machine = machine_id()
        path = save_measurements(model, machine, results)
        best = measured_best(model, machine, runnable_backends(model, device))
        auto = None if best is None else {k: best[k] for k in ("backend", "device", "batch")}
        emit({"stage": "saved", "path": str(path), "auto": auto})
    return results
