"""``screen``: classify every nucleus of a large batch of localization files.

A composition of named steps: expand the inputs (:mod:`ainu_engine.nuclei`), load the model,
open the run folder (:class:`~ainu_engine.screen._results.Parts`), run the pipeline
(:class:`~ainu_engine.screen._stages.Pipeline`: read → split → render → infer → write),
gather the results, write errors, the summary, optional explanations and the report.

Results go to ``OUT/parts/*.parquet`` as each batch finishes, and a file's completion is
appended to ``OUT/parts/done.jsonl``. At the end the parts are gathered into
``OUT/results.parquet`` (and ``results.csv`` with ``csv=True``). Running again with the same
model and RenderSpec skips what is done; ``force=True`` redoes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OutputError
from ..nuclei import detection_limits, expand_inputs, split_nuclei
from ..strict_json import dumps
from ._report import OVERVIEW_DIR, write_overview
from ._report_page import DEFAULT_GALLERY
from ._results import (
    FolderLock,
    Parts,
    call_fields,
    check_same_run,
    count_calls,
    count_flagged,
    file_key,
    result_row,
    run_key,
    write_final,
)
from ._rois import write_roi_sets
from ._shards import shard_dir, shard_of
from ._stages import Errors, Pipeline

_log = logging.getLogger("ainu_engine.screen")

__all__ = ["screen", "ScreenSummary"]


@dataclass
class ScreenSummary:
    """What a screen did: counts, where results are, per-stage throughput."""

    out: Path
    results: Path
    n_files: int
    n_files_skipped: int
    n_nuclei: int
    n_failed: int
    seconds: float
    stages: list[dict] = field(default_factory=list)
    backend: dict = field(default_factory=dict)
    calls: dict = field(default_factory=dict)
    pipeline_seconds: float = 0.0  #: from the start of the stages to the last row (no model load)
    calls_qc_ok: dict = field(default_factory=dict)  #: the calls of nuclei that passed QC
    simulated_model: bool = False  #: the model says it was trained on simulated nuclei
    n_looks_like_field: int = 0  #: "nuclei" flagged looks_like_field (fields of several cells)

    @property
    def nuclei_per_s(self) -> float:
        return self.n_nuclei / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {
            "out": str(self.out),
            "results": str(self.results),
            "files": self.n_files,
            "files_skipped_done": self.n_files_skipped,
            "nuclei": self.n_nuclei,
            "failed": self.n_failed,
            "seconds": round(self.seconds, 3),
            "nuclei_per_s": round(self.nuclei_per_s, 3),
            "pipeline_seconds": round(self.pipeline_seconds, 3),
            "stages": self.stages,
            "backend": self.backend,
            "calls": self.calls,
            "calls_qc_ok": self.calls_qc_ok,
            "simulated_model": self.simulated_model,
            "looks_like_field": self.n_looks_like_field,
        }


def screen(
    inputs: Sequence[str | os.PathLike],
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    backend: str = "auto",
    device: str = "auto",
    nuclei: str = "auto",
    batch_size: int | None = None,
    read_threads: int = 2,
    camera_pixel_nm: float | None = None,
    force: bool = False,
    csv: bool = False,
    report: bool = True,
    gallery: int = DEFAULT_GALLERY,
    on_progress: Callable[[dict], None] | None = None,
    on_error: Callable[[str, str], None] | None = None,
    queue_size: int = 64,
    explain: int = 0,
    explainer: Callable | None = None,
    read_options: dict | None = None,
    channel_map: dict | None = None,
    shard: tuple[int, int] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    cpus_per_worker: float = 1.0,
    ray_actor: type | None = None,
    ray_plan: str = "split",
) -> ScreenSummary:
    """Classify every nucleus of ``inputs`` with ``model``; results in ``out``.

    Parameters
    ----------
    inputs : sequence of path or glob
        Files, folders (recursive), globs, or manifests (see :func:`expand_inputs`).
    model : path
        Exported ``.onnx`` (or a ``.pt`` checkpoint with ``backend="torch"``).
    out : path
        Output folder: ``results.parquet`` (one row per nucleus), ``errors.csv``,
        ``summary.json``, ``report.html``, ``parts/`` (incremental results, for resuming).
    backend, device : str
        See :func:`ainu_engine.backends.create_backend`; ``device`` also sets where rendering runs.
    nuclei : {"auto", "file", "cell_id", "roi", "detect"}
        How nuclei are found in a file (see :func:`ainu_engine.nuclei.split_nuclei`).
    batch_size : int, optional
        Model batch (default: the backend's preferred one).
    read_threads : int, default 2
    camera_pixel_nm : float, optional
        For files in camera pixels that do not record it.
    read_options : dict, optional
        More keywords for :func:`ainu_engine.io.read` (``format``, ``columns``, ``unit``...).
    channel_map : dict, optional
        Model channel -> file channel (names or ids) for files whose channels are named otherwise
        than the model's (:func:`ainu_engine.render.match_channels`); a file whose channels do
        not match the model's is an error row, never a silent merge.
    force : bool
        Redo nuclei already done with this model and RenderSpec.
    csv : bool
        Also write ``results.csv``.
    report : bool, default True
        Write ``report.html``.
    gallery : int, default 200
        Nuclei the report's gallery shows at once (the first of its table as sorted and
        filtered in the page; every nucleus opens from the table).
    on_progress : callable, optional
        Called after every written batch with counts (files done, nuclei, elapsed).
    on_error : callable, optional
        Called with (path, message) for every failed file or nucleus.
    explain : int, default 0
        Explain the first ``explain`` nuclei this run writes, in ``OUT/explain/`` and in the
        report, with ``explainer`` — on the classifier and the renders the screen already has.
    explainer : callable, optional
        ``explainer(classifier, nuclei, out) -> summary dict``, where ``nuclei`` is a list of
        (path, Nucleus, Prepared, Prediction): :func:`ainu_engine.explain.explain_prepared`
        (occlusion maps, 64/32 px at 512 px scaled to the model's input size) is the one the CLI
        passes. Needed when ``explain`` > 0.
    shard : (k, n), optional
        Screen only shard ``k`` of ``n`` (the files whose path hashes to ``k``:
        :func:`ainu_engine.screen.shard_of`) into ``out/shards/KKKK-of-NNNN/``, without a
        report; :func:`ainu_engine.screen.merge` makes the screen's results of all ``n``.
    executor : {"local", "ray"}
        ``ray``: the stages run on a Ray cluster (Ray Data: reading and rendering as CPU tasks,
        inference on a pool of ``workers`` actors with ``gpus_per_worker`` GPUs each, or
        ``cpus_per_worker`` CPUs each without GPUs: less than 1 lets rendering use the CPU that
        a small model's inference leaves idle), the run
        folder is the same; ``ray_address`` is the cluster's (``auto``, ``ray://host:10001``;
        default: a local Ray). Needs the ``distributed`` extra. Not with ``explain``.
        ``ray_plan``: ``split`` (rendering as CPU tasks, the model inputs passed to the
        actors through the object store) or ``fused`` (each actor reads, renders and infers:
        nothing but results crosses the object store). ``ray_actor``: the inference actor's
        class (a subclass of ``ainu_engine.screen._ray.InferActor``; benchmarks use a stand-in
        that sleeps a GPU's batch time to measure the scheduler alone).

    Returns
    -------
    ScreenSummary
    """
    if executor not in ("local", "ray"):
        raise ValueError(f"executor must be local or ray, got {executor!r}")
    if executor == "ray" and explain:
        raise ValueError("explain needs the local executor (it reuses the screen's renders)")
    if explain and explainer is None:
        raise ValueError(
            "explain > 0 needs an explainer, e.g. explainer=ainu_engine.explain.explain_prepared"
        )
    t_start = time.perf_counter()
    out = Path(out)
    if shard is not None:
        k, n = shard
        if not (isinstance(k, int) and isinstance(n, int) and n >= 1 and 0 <= k < n):
            raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard!r}")
        out, report = shard_dir(out, k, n), False
    try:
        out.mkdir(parents=True, exist_ok=True)
        with FolderLock(out):
            return _screen_locked(
                inputs, model, out, t_start, backend=backend, device=device, nuclei=nuclei,
                batch_size=batch_size, read_threads=read_threads, camera_pixel_nm=camera_pixel_nm,
                force=force, csv=csv, report=report, gallery=gallery, on_progress=on_progress,
                on_error=on_error,
                queue_size=queue_size, explain=explain, explainer=explainer,
                read_options=read_options or {}, channel_map=channel_map, shard=shard,
                executor=executor, ray_address=ray_address, workers=workers,
                gpus_per_worker=gpus_per_worker, ray_actor=ray_actor,
                cpus_per_worker=cpus_per_worker, ray_plan=ray_plan,
            )  # fmt: skip
    except OSError as err:  # the output folder cannot be made or written (full disk, a file, ...)
        where = err.filename or out
        raise OutputError(
            f"cannot write the screen's output: {err.strerror or err}",
            path=where,
            hint="choose another --out, or free space",
        ) from err


def _screen_locked(inputs, model, out: Path, t_start: float, *, backend, device, nuclei, batch_size,
                   read_threads, camera_pixel_nm, force, csv, report, gallery, on_progress,
                   on_error,
                   queue_size, explain, explainer, read_options,
                   channel_map, shard=None, executor="local", ray_address=None, workers=1,
                   gpus_per_worker=0.0, ray_actor=None,
                   cpus_per_worker=1.0, ray_plan="split") -> ScreenSummary:  # fmt: skip
    from .._classifier import Classifier
    from ..backends import create_backend

    files = expand_inputs(inputs)
    if shard is not None:
        files = [f for f in files if shard_of(f, shard[1]) == shard[0]]
    # reading and rendering run beside inference: ONNX Runtime's CPU threads sleep when idle
    distributed = executor == "ray"
    render_device = "cpu" if device == "cpu" else "auto"
    clf = Classifier(
        create_backend(model, backend, device=device, spinning=False, batch_size=batch_size),
        render_device=render_device,
        channel_map=channel_map,
        load=not distributed,  # on Ray the model loads in the inference actors
    )
    try:
        run = _Run(clf, Path(model), nuclei)
        check_same_run(out, run.model_sha, run.spec_hash, nuclei, run.channel_map, force=force)
        parts = Parts(out, run.key, force)
        errors = Errors(on_error)
        todo = _todo(files, parts, errors)
        skipped = len(files) - len(todo) - len(errors)  # done by an earlier run
        split = _splitter(nuclei, camera_pixel_nm, detection_limits(clf.info.training_stats), out)
        reading = {**read_options, "camera_pixel_nm": camera_pixel_nm}
        written = _progress(on_progress, len(todo), t_start)
        if distributed:
            from ._ray import RayPipeline

            cfg = {"model": str(model), "backend": backend, "device": device,
                   "render_device": render_device, "channel_map": clf.channel_map,
                   "read_options": reading, "batch_size": batch_size}  # fmt: skip
            pipeline = RayPipeline(
                parts, errors, split=split, call_row=run.call_row, cfg=cfg, workers=workers,
                gpus_per_worker=gpus_per_worker, address=ray_address, on_written=written,
                actor=ray_actor, cpus_per_worker=cpus_per_worker, plan=ray_plan,
            )  # fmt: skip
        else:
            pipeline = Pipeline(
                clf,
                parts,
                errors,
                split=split,
                make_row=run.row,
                read_options=reading,
                read_threads=read_threads,
                queue_size=queue_size,
                keep=explain,
                on_written=written,
            )
        if todo and not distributed:
            # with the model load, not inside the stages: a runtime's first runs at the batch shape
            # (memory planning, kernel choice) are several times slower than the steady state
            clf.backend.warmup()
        n_nuclei = pipeline.run(todo)
        table = parts.gather()
        results = write_final(out, table, errors.items, csv=csv)
        rois = (
            write_roi_sets(out, table, clf.info.classes, camera_pixel_nm=camera_pixel_nm)
            if shard is None
            else None
        )
        calls, calls_ok = count_calls(table, clf.info.classes)
        summary = ScreenSummary(
            out,
            results,
            len(files),
            skipped,
            n_nuclei,
            len(errors),
            time.perf_counter() - t_start,
            [st.to_dict() for st in pipeline.stats.values()],
            {**clf.backend.describe(), "reason": clf.backend.reason}
            if not distributed
            else {
                "backend": pipeline.backend or clf.backend.name,
                "executor": "ray",
                "workers": workers,
                "gpus_per_worker": gpus_per_worker,
                "cpus_per_worker": cpus_per_worker,
                "plan": ray_plan,
                "object_store_input_bytes": pipeline.input_bytes,
                "reason": "the inference actors' backend (--executor ray)",
            },
            calls,
            pipeline.stats["write"].wall_s,
            calls_ok,
            _simulated(clf.info),
            count_flagged(table, "looks_like_field"),
        )
        doc = run.summary_doc(summary, table)
        doc["camera_pixel_nm"] = camera_pixel_nm
        if rois is not None:
            doc["roi_sets"] = rois
        if shard is not None:
            doc["shard"] = {"k": shard[0], "n": shard[1], "files": [str(f) for f in files]}
        _write_json(out / "summary.json", doc)
        explained = []
        if explain and pipeline.kept:
            ex = explainer(clf, pipeline.kept, out / "explain")
            doc["explain"] = {k: ex[k] for k in ("nuclei", "failed", "seconds", "structures")}
            explained = [
                json.loads(line)
                for line in (out / "explain" / "explain.jsonl").read_text().splitlines()
            ]
            _write_json(out / "summary.json", doc)
    finally:
        clf.close()
    if report and table is not None:
        from ._report import write_report

        write_report(out / "report.html", table, doc, clf.info, errors.items, explained=explained,
                     gallery=gallery)  # fmt: skip
    return summary


def _splitter(mode: str, camera_pixel_nm, limits, out: Path):
    """The split step of a screen: :func:`split_nuclei`, and for ``detect`` an overview image of
    each field with its numbered nuclei (``OUT/overview/``, in the report)."""

    def split(locs, on_skip):
        found = list(
            split_nuclei(locs, mode=mode, camera_pixel_nm=camera_pixel_nm, on_skip=on_skip,
                         area_limits_um2=limits)
        )  # fmt: skip
        if mode == "detect" and locs.n:
            src = Path(locs.meta.source_path or "field")
            tag = hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:8]
            try:
                write_overview(
                    out / OVERVIEW_DIR / f"{src.stem}-{tag}.png", locs, found,
                    title=f"{src.name}: {len(found)} nuclei",
                )  # fmt: skip
            except Exception as err:  # noqa: BLE001 - a picture must not fail the file's calls
                _log.warning("no overview of %s: %s", src, err)
        return found

    if mode == "detect":
        (out / OVERVIEW_DIR).mkdir(parents=True, exist_ok=True)
    return split


class _Run:
    """What identifies this screen's results: the model file's hash, the RenderSpec hash and the
    nuclei mode; it makes every results row."""

    def __init__(self, clf, model: Path, nuclei: str) -> None:
        self.info = clf.info
        self.model = model
        self.nuclei = nuclei
        self.model_sha = hashlib.sha256(model.read_bytes()).hexdigest()
        self.spec_hash = self.info.render_spec.hash()
        self.channel_map = clf.channel_map
        self.key = run_key(self.model_sha, self.spec_hash, nuclei, self.channel_map)
        self.backend_name = clf.backend.name

    def row(self, path, key, nucleus, prediction) -> dict:
        return result_row(
            path,
            key,
            nucleus,
            prediction,
            channel_names=list(self.info.channel_names),
            model_sha=self.model_sha,
            spec_hash=self.spec_hash,
            backend=self.backend_name,
        )

    def call_row(self, key, prediction, backend: str) -> dict:
        """The call columns of a row (a distributed screen adds where the nucleus is)."""
        return call_fields(
            key,
            prediction,
            channel_names=list(self.info.channel_names),
            model_sha=self.model_sha,
            spec_hash=self.spec_hash,
            backend=backend,
        )

    def summary_doc(self, summary: ScreenSummary, table) -> dict:
        return {
            **summary.to_dict(),
            "model": str(self.model),
            "model_sha256": self.model_sha,
            "render_spec_hash": self.spec_hash,
            "classes": list(self.info.classes),
            "nuclei_mode": self.nuclei,
            "channel_map": self.channel_map,
            "run_key": self.key,
            "total_rows": 0 if table is None else table.num_rows,
        }


def _simulated(info) -> bool:
    """Whether the model says it was trained on simulated nuclei (its provenance)."""
    text = str((info.provenance or {}).get("training_data") or "").lower()
    return "simulat" in text


def _todo(files: list[Path], parts: Parts, errors: Errors) -> list[tuple[Path, str]]:
    """(path, file key) of every file not done yet; unreadable ones go to the errors."""
    todo = []
    for f in files:
        try:
            key = file_key(f)
        except OSError as err:
            errors.add(f, f"{f}: cannot be read: {err.strerror}")
            continue
        if key not in parts.done_files:
            todo.append((f, key))
    return todo


def _progress(on_progress, n_files: int, t_start: float):
    if on_progress is None:
        return None

    def written(n_nuclei: int, files_done: int) -> None:
        on_progress(
            {
                "nuclei": n_nuclei,
                "files_done": files_done,
                "files": n_files,
                "elapsed_s": time.perf_counter() - t_start,
            }
        )

    return written


def _write_json(path: Path, doc: dict) -> None:
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(dumps(doc, indent=2) + "\n")
