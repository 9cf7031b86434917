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
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import OutputError
from ..nuclei import detection_limits, expand_inputs, split_nuclei
from ..ood import NO_REFERENCE_NOTE
from ..render import manifest_channel_maps
from ..strict_json import dumps
from ._options import ScreenOptions
from ._report import OVERVIEW_DIR, write_overview
from ._results import (
    FolderLock,
    Parts,
    call_fields,
    check_same_run,
    count_calls,
    count_flagged,
    count_undecided,
    file_key,
    result_row,
    run_key,
    write_final,
)
from ._rois import write_roi_sets
from ._shards import shard_dir, shard_of
from ._stages import Errors

_log = logging.getLogger("ainu_engine.screen")

__all__ = ["screen", "ScreenSummary"]


@dataclass
class ScreenSummary:
    """What a screen did: counts, where results are, per-stage throughput.

    Attributes
    ----------
    out, results : Path
        The run folder and its results table.
    n_files, n_files_skipped, n_nuclei, n_failed : int
        Files asked for, skipped (done by an earlier run), nuclei called, failures.
    seconds : float
        Wall time, the model load included.
    stages : list of dict
        Per-stage throughput.
    backend : dict
        What ran the model, and why.
    calls, calls_qc_ok : dict
        Calls per class, of all nuclei and of those that passed QC.
    pipeline_seconds : float
        From the start of the stages to the last row (no model load).
    simulated_model : bool
        The model says it was trained on simulated nuclei.
    n_looks_like_field : int
        "Nuclei" flagged ``looks_like_field`` (fields of several cells).
    n_unfamiliar : int
        Nuclei flagged ``unfamiliar`` (unlike the model's training nuclei).
    n_undecided : int
        Nuclei the classifier abstained from (``abstain``): not in ``calls``.
    ood_note : str or None
        Why there is no out-of-distribution score (a model from before it).
    """

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
    n_unfamiliar: int = 0  #: nuclei flagged unfamiliar (unlike the training nuclei)
    n_undecided: int = 0  #: nuclei abstained from (abstain): counted apart from the calls
    ood_note: str | None = None  #: why there is no ood_score (a model from before it)

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
            "unfamiliar": self.n_unfamiliar,
            "undecided": self.n_undecided,
            "ood_note": self.ood_note,
        }


def screen(
    inputs: Sequence[str | os.PathLike],
    model: str | os.PathLike,
    out: str | os.PathLike,
    options: ScreenOptions | None = None,
    *,
    on_progress: Callable[[dict], None] | None = None,
    on_error: Callable[[str, str], None] | None = None,
    explainer: Callable | None = None,
    **keywords,
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
    options : ScreenOptions, optional
        What to do (backend, nuclei mode, channel map, shard, executor, ...). Instead, the same
        options as keywords (``backend="torch"``, ``executor="ray"``, ``workers=4``, ...:
        :meth:`ScreenOptions.from_keywords`); not both.
    on_progress : callable, optional
        Called after every written batch with counts (files done, nuclei, elapsed).
    on_error : callable, optional
        Called with (path, message) for every failed file or nucleus.
    explainer : callable, optional
        ``explainer(classifier, nuclei, out) -> summary dict``, where ``nuclei`` is a list of
        (path, Nucleus, Prepared, Prediction): :func:`ainu_engine.explain.explain_prepared` is
        the one the CLI passes. Needed when ``options.explain`` > 0.
    **keywords
        The options as keywords (:meth:`ScreenOptions.from_keywords`), instead of ``options``.

    Returns
    -------
    ScreenSummary

    Raises
    ------
    ValueError
        Options that do not go together (explain on Ray, explain without an explainer, a bad
        shard or executor).
    TypeError
        An unknown keyword, or ``options`` and keywords both.
    ainu_engine.errors.OutputError
        The output folder cannot be made or written.

    Examples
    --------
    >>> from ainu_engine.screen import screen
    >>> s = screen(["run1/"], "model.onnx", "out/", nuclei="detect")  # doctest: +SKIP
    >>> s.n_nuclei, s.calls  # doctest: +SKIP
    """
    if options is not None and keywords:
        raise TypeError("give screen() either options or keywords, not both")
    opts = options or ScreenOptions.from_keywords(**keywords)
    if opts.explain and explainer is None:
        raise ValueError(
            "explain > 0 needs an explainer, e.g. explainer=ainu_engine.explain.explain_prepared"
        )
    t_start = time.perf_counter()
    out = Path(out)
    if opts.shard is not None:
        out = shard_dir(out, *opts.shard)
        opts = replace(opts, report=False)
    hooks = _Hooks(on_progress, on_error, explainer)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with FolderLock(out):
            return _screen_locked(inputs, Path(model), out, t_start, opts, hooks)
    except OSError as err:  # the output folder cannot be made or written (full disk, a file, ...)
        where = err.filename or out
        raise OutputError(
            f"cannot write the screen's output: {err.strerror or err}",
            path=where,
            hint="choose another --out, or free space",
        ) from err


@dataclass(frozen=True)
class _Hooks:
    on_progress: Callable | None
    on_error: Callable | None
    explainer: Callable | None


def _screen_locked(inputs, model: Path, out: Path, t_start: float, opts: ScreenOptions,
                   hooks: _Hooks) -> ScreenSummary:  # fmt: skip
    from .._classifier import Classifier
    from ..backends import create_backend

    files = expand_inputs(inputs)
    if opts.shard is not None:
        files = [f for f in files if shard_of(f, opts.shard[1]) == opts.shard[0]]
    ex = opts.executor
    # reading and rendering run beside inference: ONNX Runtime's CPU threads sleep when idle
    clf = Classifier(
        create_backend(model, opts.backend, device=opts.device, spinning=False,
                       batch_size=opts.batch_size),
        render_device="cpu" if opts.device == "cpu" else "auto",
        channel_map=opts.channel_map,
        file_channel_maps=manifest_channel_maps(inputs),
        load=ex.loads_model,  # on Ray the model loads in the inference actors
        abstain=opts.abstain,
    )  # fmt: skip
    try:
        run = _Run(clf, model, opts.nuclei, opts.abstain)
        check_same_run(out, run.model_sha, run.spec_hash, opts.nuclei, run.channel_map,
                       force=opts.force)  # fmt: skip
        parts = Parts(out, run.key, opts.force)
        errors = Errors(hooks.on_error)
        todo = _todo(files, parts, errors)
        skipped = len(files) - len(todo) - len(errors)  # done by an earlier run
        split = _splitter(opts.nuclei, opts.camera_pixel_nm,
                          detection_limits(clf.info.training_stats), out)  # fmt: skip
        pipeline = ex.pipeline(
            clf, parts, errors, split=split, run=run, model=model, opts=opts,
            reading={**opts.read_options, "camera_pixel_nm": opts.camera_pixel_nm},
            written=_progress(hooks.on_progress, len(todo), t_start), keep=opts.explain,
        )  # fmt: skip
        if todo and ex.loads_model:
            # with the model load, not inside the stages: a runtime's first runs at the batch shape
            # (memory planning, kernel choice) are several times slower than the steady state
            clf.backend.warmup()
        n_nuclei = pipeline.run(todo)
        table = parts.gather()
        summary = _summary(out, table, files, skipped, n_nuclei, errors, t_start, pipeline, clf,
                           ex, csv=opts.csv)  # fmt: skip
        doc = _summary_doc(out, run, summary, table, files, opts, clf)
        explained = _explain(hooks.explainer, clf, pipeline, out, doc) if opts.explain else []
    finally:
        clf.close()
    if opts.report and table is not None:
        from ._report import write_report

        write_report(out / "report.html", table, doc, clf.info, errors.items, explained=explained,
                     gallery=opts.gallery)  # fmt: skip
    return summary


def _summary(out, table, files, skipped, n_nuclei, errors, t_start, pipeline, clf, ex, *,
             csv) -> ScreenSummary:  # fmt: skip
    """Write the final results and count what the screen did."""
    results = write_final(out, table, errors.items, csv=csv)
    calls, calls_ok = count_calls(table, clf.info.classes)
    return ScreenSummary(
        out, results, len(files), skipped, n_nuclei, len(errors),
        time.perf_counter() - t_start, [st.to_dict() for st in pipeline.stats.values()],
        ex.backend_summary(clf, pipeline), calls, pipeline.stats["write"].wall_s, calls_ok,
        _simulated(clf.info), count_flagged(table, "looks_like_field"),
        count_flagged(table, "unfamiliar"), count_undecided(table),
        None if clf.ood is not None else NO_REFERENCE_NOTE,
    )  # fmt: skip


def _summary_doc(out, run, summary, table, files, opts: ScreenOptions, clf) -> dict:
    """``summary.json`` (written here), with the ROI sets of the calls unless this is a shard."""
    doc = run.summary_doc(summary, table)
    doc["camera_pixel_nm"] = opts.camera_pixel_nm
    rois = None
    if opts.shard is None:
        rois = write_roi_sets(out, table, clf.info.classes, camera_pixel_nm=opts.camera_pixel_nm)
    if rois is not None:
        doc["roi_sets"] = rois
    if opts.shard is not None:
        doc["shard"] = {"k": opts.shard[0], "n": opts.shard[1], "files": [str(f) for f in files]}
    _write_json(out / "summary.json", doc)
    return doc


def _explain(explainer, clf, pipeline, out: Path, doc: dict) -> list[dict]:
    """Explain the nuclei the pipeline kept; their records (and ``summary.json`` updated)."""
    if not pipeline.kept:
        return []
    ex = explainer(clf, pipeline.kept, out / "explain")
    doc["explain"] = {k: ex[k] for k in ("nuclei", "failed", "seconds", "structures")}
    _write_json(out / "summary.json", doc)
    return [json.loads(line)
            for line in (out / "explain" / "explain.jsonl").read_text().splitlines()]  # fmt: skip


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

    def __init__(self, clf, model: Path, nuclei: str, abstain: float | None = None) -> None:
        self.info = clf.info
        self.abstain = clf.abstain_below
        self.model = model
        self.nuclei = nuclei
        self.model_sha = hashlib.sha256(model.read_bytes()).hexdigest()
        self.spec_hash = self.info.render_spec.hash()
        # a manifest's per-file maps are part of what identifies the run
        self.channel_map = (
            {"default": clf.channel_map, "per_file": clf.file_channel_maps}
            if clf.file_channel_maps
            else clf.channel_map
        )
        self.key = run_key(self.model_sha, self.spec_hash, nuclei, self.channel_map,
                           self.abstain)  # fmt: skip
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
        from ..provenance import stamp

        return {
            **stamp(),
            **summary.to_dict(),
            "model": str(self.model),
            "model_sha256": self.model_sha,
            "render_spec_hash": self.spec_hash,
            "classes": list(self.info.classes),
            "nuclei_mode": self.nuclei,
            "channel_map": self.channel_map,
            "abstain_below": self.abstain,
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
