"""``screen``: classify every nucleus of a large batch of localization files.

Pipeline with bounded queues, one thread per stage (reading with several)::

    read (threads) ──▶ render ──▶ batch + infer ──▶ write (parts, atomically)

The slowest stage sets the pace; each stage's busy and idle time is measured and reported.
Results go to ``OUT/parts/*.parquet`` as each batch finishes (one file per batch, renamed into
place, so a killed run loses at most the batch in flight), and a file's completion is appended
to ``OUT/parts/done.jsonl``. At the end the parts are gathered into ``OUT/results.parquet``
(and ``results.csv`` with ``csv=True``). Running again with the same model and RenderSpec skips
what is done; ``force=True`` redoes it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .._json import dumps
from ..errors import AinuError, InputError
from ._nuclei import split_nuclei

__all__ = ["screen", "ScreenSummary", "expand_inputs", "LOCALIZATION_SUFFIXES"]

#: suffixes of files screen picks up inside folders
LOCALIZATION_SUFFIXES = (".bin", ".csv", ".tsv", ".txt", ".hdf5", ".h5", ".smlm", ".parquet", ".arrow", ".mat")
#: files beside the data that are never data
_SIDE_SUFFIXES = (".truth.parquet", ".truth.json", ".bin.json", ".roi.zip")
_END = object()


def _is_manifest(path: Path) -> bool:
    if path.suffix.lower() != ".csv":
        return False
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().strip().lower().replace('"', "")
    return header.split(",")[0] == "path"


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files from files, folders (recursively, known localization suffixes), globs and
    manifests (a CSV whose first column is ``path``); sorted, each once. Ground-truth and
    sidecar files beside simulated data are skipped.

    Raises
    ------
    ainu_engine.errors.InputError
        An input that is neither a file, a folder nor a glob that matches something.
    """
    out: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = [q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in LOCALIZATION_SUFFIXES
                     and not q.name.lower().endswith(_SIDE_SUFFIXES) and not (q.suffix.lower() == ".csv"
                                                                            and _is_manifest(q))]
            out.extend(sorted(found))
        elif p.is_file():
            if _is_manifest(p):
                from pyarrow import csv

                table = csv.read_csv(p)
                col = table.column(table.column_names[0]).to_pylist()
                out.extend((q if q.is_absolute() else p.parent / q) for q in map(Path, col))
            else:
                out.append(p)
        else:
            matches = sorted(glob.glob(os.fspath(raw), recursive=True))
            if not matches:
                raise InputError("no such file, folder or matching glob", path=p)
            out.extend(Path(m) for m in matches if Path(m).is_file())
    seen, uniq = set(), []
    for q in out:
        k = os.path.abspath(q)
        if k not in seen:
            seen.add(k)
            uniq.append(q)
    return uniq


@dataclass
class StageStats:
    name: str
    items: int = 0
    busy_s: float = 0.0
    wall_s: float = 0.0

    def to_dict(self) -> dict:
        idle = max(0.0, self.wall_s - self.busy_s)
        return {"stage": self.name, "items": self.items, "busy_s": round(self.busy_s, 3),
                "idle_s": round(idle, 3), "items_per_busy_s": round(self.items / self.busy_s, 3) if self.busy_s else None}


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

    @property
    def nuclei_per_s(self) -> float:
        return self.n_nuclei / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {"out": str(self.out), "results": str(self.results), "files": self.n_files,
                "files_skipped_done": self.n_files_skipped, "nuclei": self.n_nuclei, "failed": self.n_failed,
                "seconds": round(self.seconds, 3), "nuclei_per_s": round(self.nuclei_per_s, 3),
                "pipeline_seconds": round(self.pipeline_seconds, 3),
                "stages": self.stages, "backend": self.backend, "calls": self.calls}


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"


def _run_key(model_sha: str, spec_hash: str, nuclei: str) -> str:
    return hashlib.sha256(f"{model_sha}|{spec_hash}|{nuclei}".encode()).hexdigest()[:16]


class _Parts:
    """The parts folder: one Parquet file per written batch, and the done-files journal."""

    def __init__(self, out: Path, run_key: str, force: bool):
        self.dir = out / "parts"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_key = run_key
        self.journal = self.dir / "done.jsonl"
        if force:
            for p in self.dir.glob(f"part-{run_key}-*.parquet"):
                p.unlink()
            self._rewrite_journal(keep=lambda rec: rec.get("run") != run_key)
        self.done_files: set[str] = set()
        self.done_nuclei: set[tuple[str, str]] = set()
        self._load()
        self.counter = len(list(self.dir.glob(f"part-{run_key}-*.parquet")))
        self.lock = threading.Lock()

    def _records(self):
        if not self.journal.is_file():
            return []
        out = []
        for line in self.journal.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a killed run
        return out

    def _rewrite_journal(self, keep) -> None:
        recs = [r for r in self._records() if keep(r)]
        from ..io._atomic import atomic_path

        with atomic_path(self.journal) as tmp:
            Path(tmp).write_text("".join(dumps(r) + "\n" for r in recs), encoding="utf-8")

    def _load(self) -> None:
        import pyarrow.parquet as pq

        for r in self._records():
            if r.get("run") == self.run_key:
                self.done_files.add(r["file"])
        for p in sorted(self.dir.glob(f"part-{self.run_key}-*.parquet")):
            t = pq.read_table(p, columns=["file_key", "nucleus_id"])
            self.done_nuclei.update(zip(t.column("file_key").to_pylist(), t.column("nucleus_id").to_pylist(),
                                        strict=True))

    def write(self, rows: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from ..io._atomic import atomic_path

        if not rows:
            return
        with self.lock:
            self.counter += 1
            path = self.dir / f"part-{self.run_key}-{self.counter:06d}.parquet"
        table = pa.Table.from_pylist(rows)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="lz4")

    def mark_done(self, file_key: str) -> None:
        with self.lock, open(self.journal, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"run": self.run_key, "file": file_key}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def gather(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [pq.read_table(p) for p in sorted(self.dir.glob(f"part-{self.run_key}-*.parquet"))]
        if not tables:
            return None
        t = pa.concat_tables(tables, promote_options="default")
        # a nucleus written twice (a batch redone after a crash between write and journal) counts once
        keys = list(zip(t.column("file_key").to_pylist(), t.column("nucleus_id").to_pylist(), strict=True))
        last = {k: i for i, k in enumerate(keys)}
        idx = sorted(last.values(), key=lambda i: (t.column("source")[i].as_py(), keys[i][1]))
        return t.take(pa.array(idx, pa.int64())) if idx else t.slice(0, 0)


def screen(inputs: Sequence[str | os.PathLike], model: str | os.PathLike, out: str | os.PathLike, *,
           backend: str = "auto", device: str = "auto", nuclei: str = "auto", batch_size: int | None = None,
           read_threads: int = 2, camera_pixel_nm: float | None = None, force: bool = False, csv: bool = False,
           report: bool = True, on_progress: Callable[[dict], None] | None = None,
           on_error: Callable[[str, str], None] | None = None, queue_size: int = 64,
           explain: int = 0) -> ScreenSummary:
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
        How nuclei are found in a file (see :func:`ainu_engine.screen.split_nuclei`).
    batch_size : int, optional
        Model batch (default: the backend's preferred one).
    read_threads : int, default 2
    camera_pixel_nm : float, optional
        For files in camera pixels that do not record it.
    force : bool
        Redo nuclei already done with this model and RenderSpec.
    csv : bool
        Also write ``results.csv``.
    on_progress : callable, optional
        Called after every written batch with counts (files done, nuclei, elapsed).
    on_error : callable, optional
        Called with (path, message) for every failed file or nucleus.
    explain : int, default 0
        Occlusion maps (64/32 px at 512 px, scaled to the model's input size) for the first
        ``explain`` nuclei of the results, in ``OUT/explain/`` and in the report.

    Returns
    -------
    ScreenSummary
    """
    from .._classifier import Classifier
    from ..backends import create_backend

    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = expand_inputs(inputs)
    # reading and rendering run beside inference: ONNX Runtime's CPU threads sleep when idle
    b = create_backend(model, backend, device=device, spinning=False)
    clf = Classifier(b, render_device="cpu" if device == "cpu" else "auto")
    info = clf.info
    if batch_size:
        b.preferred_batch = int(batch_size)
    model_sha = hashlib.sha256(Path(model).read_bytes()).hexdigest()
    spec_hash = info.render_spec.hash()
    run_key = _run_key(model_sha, spec_hash, nuclei)
    parts = _Parts(out, run_key, force)
    errors: list[tuple[str, str]] = []
    err_lock = threading.Lock()

    def fail(path, msg):
        with err_lock:
            errors.append((str(path), msg))
        if on_error is not None:
            on_error(str(path), msg)

    todo = []
    for f in files:
        try:
            key = _file_key(f)
        except OSError as err:
            fail(f, f"{f}: cannot be read: {err.strerror}")
            continue
        if key not in parts.done_files:
            todo.append((f, key))
    skipped = len(files) - len(todo) - len(errors)
    channel_names = list(info.channel_names)
    stats = {n: StageStats(n) for n in ("read", "render", "infer", "write")}
    q_nuclei: queue.Queue = queue.Queue(maxsize=queue_size)
    q_ready: queue.Queue = queue.Queue(maxsize=queue_size)
    q_rows: queue.Queue = queue.Queue(maxsize=queue_size)
    pending: dict[str, int] = {}  # file key -> nuclei not yet written (None while reading)
    pend_lock = threading.Lock()
    failed_keys: set[str] = set()
    stop = threading.Event()
    crash: list[BaseException] = []

    def guarded(fn):
        def run():
            try:
                fn()
            except BaseException as err:  # noqa: BLE001 - surfaced in the main thread
                crash.append(err)
                stop.set()
        return run

    def put(q, item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    # -- stage 1: read and split (threads) -----------------------------------------------------------
    def read_one(item):
        from ..io import read

        path, key = item
        t0 = time.perf_counter()
        try:
            locs = read(path, camera_pixel_nm=camera_pixel_nm)
            found = [n for n in split_nuclei(locs, mode=nuclei, camera_pixel_nm=camera_pixel_nm)
                     if (key, n.id) not in parts.done_nuclei]
        except AinuError as err:
            fail(path, str(err))
            return 0.0, None
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the screen
            fail(path, f"{path}: {type(err).__name__}: {err}")
            return 0.0, None
        return time.perf_counter() - t0, (path, key, found)

    def reader():
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max(1, read_threads)) as pool:
            for busy, res in pool.map(read_one, todo):
                stats["read"].busy_s += busy
                if stop.is_set():
                    break
                if res is None:
                    continue
                path, key, found = res
                with pend_lock:
                    pending[key] = len(found)
                if not found:
                    parts.mark_done(key)
                for n in found:
                    stats["read"].items += 1
                    put(q_nuclei, (path, key, n))
        put(q_nuclei, _END)
        stats["read"].wall_s = time.perf_counter() - t0

    # -- stage 2: render --------------------------------------------------------------------------
    def renderer():
        t0 = time.perf_counter()
        while True:
            item = q_nuclei.get()
            if item is _END or stop.is_set():
                break
            path, key, n = item
            t1 = time.perf_counter()
            try:
                prep = clf.prepare(n.locs, roi_nm=n.roi_nm, at_edge=n.at_edge)
            except AinuError as err:
                fail(path, f"{err} (nucleus {n.id or 'whole file'})")
                with pend_lock:
                    failed_keys.add(key)
                prep = None
            stats["render"].busy_s += time.perf_counter() - t1
            if prep is None:
                _finish_nucleus(key)
                continue
            stats["render"].items += 1
            put(q_ready, (path, key, n, prep))
        put(q_ready, _END)
        stats["render"].wall_s = time.perf_counter() - t0

    # -- stage 3: batch + infer ---------------------------------------------------------------------
    def inferrer():
        t0 = time.perf_counter()
        batch, n_items = [], 0
        while True:
            item = q_ready.get()
            done = item is _END or stop.is_set()
            if not done:
                batch.append(item)
                n_items += len(item[3].items)
            if batch and (done or n_items >= b.preferred_batch):
                t1 = time.perf_counter()
                preds = clf.predict_prepared([x[3] for x in batch])
                stats["infer"].busy_s += time.perf_counter() - t1
                stats["infer"].items += len(batch)
                put(q_rows, [(x, p) for x, p in zip(batch, preds, strict=True)])
                batch, n_items = [], 0
            if done:
                break
        put(q_rows, _END)
        stats["infer"].wall_s = time.perf_counter() - t0

    def _finish_nucleus(key):
        with pend_lock:
            pending[key] -= 1
            last = pending[key] == 0 and key not in failed_keys
        if last:  # a file with a failed nucleus is not marked done: a rerun retries it
            parts.mark_done(key)

    if todo:
        # with the model load, not inside the stages: a runtime's first runs at the batch shape
        # (memory planning, kernel choice) are several times slower than the steady state
        b.warmup()
    threads = [threading.Thread(target=guarded(f), daemon=True, name=f"screen-{f.__name__}")
               for f in (reader, renderer, inferrer)]
    for t in threads:
        t.start()
    # -- stage 4: write (this thread) ----------------------------------------------------------------
    t_w = time.perf_counter()
    n_nuclei = 0
    backend_name = b.describe()["backend"]
    try:
        while True:
            try:
                item = q_rows.get(timeout=0.5)
            except queue.Empty:
                if crash:
                    break
                continue
            if item is _END:
                break
            t1 = time.perf_counter()
            rows = []
            for (path, key, n, _prep), p in item:
                row = {"source": str(path), "nucleus_id": n.id, "predicted": p.label,
                       **{f"p_{c}": float(v) for c, v in p.probabilities.items()},
                       "undecided": p.undecided, "n_localizations": int(sum(p.n_localizations)),
                       **{f"n_loc_{c}": int(v) for c, v in zip(channel_names, p.n_localizations, strict=False)},
                       "area_um2": p.area_um2, "n_items": p.n_items, "qc_flags": ",".join(p.qc), "qc_ok": p.ok,
                       "model_sha256": model_sha, "render_spec_hash": spec_hash, "backend": backend_name,
                       "file_key": key}
                rows.append(row)
            parts.write(rows)
            for (_path, key, _n, _prep), _p in item:
                _finish_nucleus(key)
            n_nuclei += len(rows)
            stats["write"].busy_s += time.perf_counter() - t1
            stats["write"].items += len(rows)
            if on_progress is not None:
                with pend_lock:
                    files_done = sum(1 for v in pending.values() if v == 0)
                on_progress({"nuclei": n_nuclei, "files_done": files_done, "files": len(todo),
                             "elapsed_s": time.perf_counter() - t_start})
    except BaseException:
        stop.set()
        raise
    finally:
        stats["write"].wall_s = time.perf_counter() - t_w
        for t in threads:
            t.join(timeout=30)
        clf.close()
    if crash:
        raise crash[0]
    # -- results, errors, summary, report -------------------------------------------------------------
    from ..io._atomic import atomic_path

    table = parts.gather()
    results = out / "results.parquet"
    if table is not None:
        import pyarrow.parquet as pq

        with atomic_path(results) as tmp:
            pq.write_table(table, tmp, compression="lz4")
        if csv:
            from pyarrow import csv as pacsv

            with atomic_path(out / "results.csv") as tmp:
                pacsv.write_csv(table, tmp)
    with atomic_path(out / "errors.csv") as tmp:
        import csv as pycsv

        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = pycsv.writer(fh)
            w.writerow(["path", "error"])
            w.writerows(errors)
    seconds = time.perf_counter() - t_start
    calls = {}
    if table is not None:
        preds = table.column("predicted").to_pylist()
        calls = {c: preds.count(c) for c in info.classes}
    summary = ScreenSummary(out, results, len(files), skipped, n_nuclei, len(errors), seconds,
                            [s.to_dict() for s in stats.values()], b.describe(), calls, stats["write"].wall_s)
    summary.backend["reason"] = getattr(b, "reason", "")
    doc = {**summary.to_dict(), "model": str(model), "model_sha256": model_sha, "render_spec_hash": spec_hash,
           "classes": list(info.classes), "nuclei_mode": nuclei, "total_rows": 0 if table is None else table.num_rows}
    with atomic_path(out / "summary.json") as tmp:
        Path(tmp).write_text(dumps(doc, indent=2) + "\n")
    explained = []
    if explain and table is not None and table.num_rows:
        from ..explain._run import explain_files

        sources = list(dict.fromkeys(table.column("source").to_pylist()))[:explain]
        ex = explain_files(sources, model, out / "explain", backend=backend, device=device, limit=explain)
        doc["explain"] = {k: ex[k] for k in ("nuclei", "failed", "seconds", "structures")}
        explained = [json.loads(line) for line in (out / "explain" / "explain.jsonl").read_text().splitlines()]
        with atomic_path(out / "summary.json") as tmp:
            Path(tmp).write_text(dumps(doc, indent=2) + "\n")
    if report and table is not None:
        from ._report import write_report

        write_report(out / "report.html", table, doc, info, errors, explained=explained)
    return summary
