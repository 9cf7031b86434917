"""The screen's pipeline: four stages, one thread each (reading and rendering with several),
bounded queues::

    read + split (threads) ──▶ render (threads) ──▶ batch + infer ──▶ write (parts, atomically)

The slowest stage sets the pace; each stage's busy and idle time is measured and reported.
Every stage's state is an attribute of :class:`Pipeline`; the stages share nothing else.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import AinuError
from ..io import read
from ..kernels import share_threads
from ._thumbs import THUMB_COLUMN, safe_thumbnail

__all__ = [
    "Pipeline",
    "Pending",
    "StageStats",
    "Errors",
    "internal_error",
    "stage_error",
    "read_nuclei",
]

_END = object()
_log = logging.getLogger("ainu_engine.screen")


def internal_error(stage: str, err: BaseException, where: str = "") -> str:
    """The one-line message of an unforeseen exception in a stage (the traceback goes to the
    ``ainu_engine.screen`` logger at debug level: ``ainu-engine --debug`` prints it)."""
    _log.debug("internal error in %s%s", stage, f" ({where})" if where else "", exc_info=err)
    first = str(err).splitlines()[0] if str(err) else ""
    return f"internal error in {stage}: {type(err).__name__}: {first}"


@dataclass
class StageStats:
    name: str
    items: int = 0
    busy_s: float = 0.0
    wall_s: float = 0.0

    def to_dict(self) -> dict:
        idle = max(0.0, self.wall_s - self.busy_s)
        return {
            "stage": self.name,
            "items": self.items,
            "busy_s": round(self.busy_s, 3),
            "idle_s": round(idle, 3),
            "items_per_busy_s": round(self.items / self.busy_s, 3) if self.busy_s else None,
        }


class Errors:
    """Failed files and nuclei, (path, one-line message), from any thread; ``on_error`` is
    told each."""

    def __init__(self, on_error: Callable[[str, str], None] | None = None) -> None:
        self.items: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._on_error = on_error

    def add(self, path, message: str) -> None:
        with self._lock:
            self.items.append((str(path), message))
        if self._on_error is not None:
            self._on_error(str(path), message)

    def __len__(self) -> int:
        return len(self.items)


class Pending:
    """Nuclei of each file not yet written, in any order of arrival (on Ray a file's nuclei may
    arrive before its count). A file is journaled done when all the nuclei announced for this
    run are written; a file with a failed nucleus is not, so that a rerun retries it."""

    def __init__(self, parts) -> None:
        self.parts = parts
        self._expected: dict[str, tuple[int, int]] = {}  #: key -> (nuclei this run, in all)
        self._arrived: dict[str, int] = {}
        self._failed: set[str] = set()
        self._lock = threading.Lock()

    def expect(self, key: str, n: int, *, total: int, failed: bool = False) -> None:
        """``n`` nuclei of the file to write in this run, of ``total`` (the others were written
        by an earlier one); ``failed``: some of them can never come (an ROI that gave none)."""
        with self._lock:
            self._expected[key] = (n, total)
            if failed:
                self._failed.add(key)
            done = self._complete(key)
        if done:
            self.parts.mark_done(key, total)

    def finish(self, key: str, *, failed: bool = False) -> None:
        """One nucleus of the file written, or (``failed``) given up."""
        with self._lock:
            self._arrived[key] = self._arrived.get(key, 0) + 1
            if failed:
                self._failed.add(key)
            done = self._complete(key)
        if done:
            self.parts.mark_done(key, self._expected[key][1])

    def _complete(self, key: str) -> bool:
        """The file's last nucleus has just arrived and none failed (under the lock)."""
        if key not in self._expected or key in self._failed:
            return False
        return self._arrived.get(key, 0) == self._expected[key][0]

    def files_done(self) -> int:
        """Files whose every nucleus of this run has arrived (written or failed)."""
        with self._lock:
            return sum(1 for k, (n, _) in self._expected.items() if self._arrived.get(k, 0) >= n)


def stage_error(stage: str, err: BaseException, path, nucleus_id: str | None = None) -> str:
    """The one-line message of a file (or, with ``nucleus_id``, a nucleus) that failed in a
    stage: an :class:`AinuError`'s own message, else an internal error naming the file."""
    msg = (
        str(err)
        if isinstance(err, AinuError)
        else f"{path}: {internal_error(stage, err, str(path))}"
    )
    return msg if nucleus_id is None else f"{msg} (nucleus {nucleus_id or 'whole file'})"


def read_nuclei(clf, path, split: Callable, read_options: dict) -> tuple[list, list[str]]:
    """A file's nuclei, and one error message per ROI that gave none (an error row, never
    silence). The file's channels are checked against the model's first: a mismatch is one
    error for the whole file (the file's own channel map where a manifest gave one:
    :meth:`~ainu_engine.Classifier.for_path`)."""
    skipped: list = []
    locs = read(path, **read_options)
    clf.for_path(path).render_spec_for(locs)
    nuclei = split(locs, on_skip=lambda name, why: skipped.append((name, why)))
    return nuclei, [f"{path}: ROI {name}: {why}" for name, why in skipped]


class Pipeline:
    """Read, split, render, infer and write every nucleus of the files to do.

    Parameters
    ----------
    classifier : Classifier
        Renders (``prepare``) and calls (``predict_prepared``) nuclei.
    parts : Parts
        Where rows go, batch by batch, and which nuclei are done already.
    errors : Errors
    split : callable
        ``split(locs, on_skip=...) -> nuclei`` (the nuclei of one file; ``on_skip(id, why)``
        for each ROI that gives none).
    make_row : callable
        ``make_row(path, key, nucleus, prediction) -> dict`` (one results row).
    read_options : dict
        Keywords for :func:`ainu_engine.io.read`.
    read_threads, queue_size : int
    render_threads : int, optional
        Threads that render; each one's kernels run on its share of Numba's threads. Default:
        two where there are two cores or more and nothing is kept, else one (with ``keep`` the
        nuclei are written in the order they were read, so the kept ones are always the same).
    keep : int
        How many written nuclei to keep, in order, as (path, nucleus, prepared, prediction)
        in :attr:`kept` (for explaining them afterwards without rendering them again).
    on_written : callable, optional
        Called after every written batch with (nuclei written so far, files done).
    """

    def __init__(
        self,
        classifier,
        parts,
        errors: Errors,
        *,
        split: Callable,
        make_row: Callable,
        read_options: dict,
        read_threads: int = 2,
        render_threads: int | None = None,
        queue_size: int = 64,
        keep: int = 0,
        on_written: Callable[[int, int], None] | None = None,
    ) -> None:
        self.clf = classifier
        self.parts = parts
        self.errors = errors
        self.split = split
        self.make_row = make_row
        self.read_options = read_options
        self.read_threads = max(1, read_threads)
        if render_threads is None:
            render_threads = 2 if (os.cpu_count() or 1) >= 2 and not keep else 1
        self.render_threads = max(1, render_threads)
        self._render_left = self.render_threads  # render threads still running
        self._lock = threading.Lock()
        self.keep = keep
        self.on_written = on_written
        self.stats = {n: StageStats(n) for n in ("read", "render", "infer", "write")}
        self.queues = {n: queue.Queue(maxsize=queue_size) for n in ("nuclei", "ready", "rows")}
        self.pending = Pending(parts)
        self.stop = threading.Event()
        self.crash: list[BaseException] = []
        self.kept: list[tuple] = []
        self.n_written = 0

    def run(self, todo: list[tuple]) -> int:
        """Screen ``todo`` ((path, file key) pairs); returns the number of nuclei written. An
        exception in any stage stops all of them and is raised here."""
        threads = [
            threading.Thread(target=self._guarded(fn, *args), daemon=True, name=f"screen-{name}")
            for name, fn, args in (
                ("read", self._reader, (todo,)),
                *(("render", self._renderer, ()) for _ in range(self.render_threads)),
                ("infer", self._inferrer, ()),
            )
        ]
        for t in threads:
            t.start()
        try:
            self._writer()
        except BaseException:
            self.stop.set()
            raise
        finally:
            for t in threads:
                t.join(timeout=30)
        if self.crash:
            raise self.crash[0]
        return self.n_written

    # -- plumbing
    # -----------------------------------------------------------------------------------
    def _guarded(self, fn, *args):
        def run():
            try:
                fn(*args)
            except BaseException as err:  # noqa: BLE001 - surfaced in the main thread
                self.crash.append(err)
                self.stop.set()

        return run

    def _get(self, name: str):
        """The next item of a queue, or the end once the pipeline is stopping (no stage waits
        on a queue that nobody fills any more)."""
        while not self.stop.is_set():
            try:
                return self.queues[name].get(timeout=0.2)
            except queue.Empty:
                continue
        return _END

    def _put(self, name: str, item) -> None:
        while not self.stop.is_set():
            try:
                self.queues[name].put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    # -- stage 1: read and split (threads)
    # -------------------------------------------------------------
    def _read_one(self, item):
        path, key = item
        t0 = time.perf_counter()
        try:
            nuclei, skipped = read_nuclei(self.clf, path, self.split, self.read_options)
            found = [n for n in nuclei if (key, n.id) not in self.parts.done_nuclei]
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the screen
            self.errors.add(path, stage_error("read", err, path))
            return 0.0, None
        for msg in skipped:
            self.errors.add(path, msg)
        return time.perf_counter() - t0, (path, key, found, bool(skipped), len(nuclei))

    def _reader(self, todo) -> None:
        st = self.stats["read"]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(self.read_threads) as pool:
            for busy, res in pool.map(self._read_one, todo):
                st.busy_s += busy
                if self.stop.is_set():
                    break
                if res is None:
                    continue
                path, key, found, incomplete, total = res
                self.pending.expect(key, len(found), total=total, failed=incomplete)
                for n in found:
                    st.items += 1
                    self._put("nuclei", (path, key, n))
        self._put("nuclei", _END)
        st.wall_s = time.perf_counter() - t0

    # -- stage 2: render
    # -------------------------------------------------------------------------------
    def _renderer(self) -> None:
        st = self.stats["render"]
        t0 = time.perf_counter()
        share_threads(self.render_threads)  # this thread's share of the kernels' threads
        while True:
            item = self._get("nuclei")
            if item is _END or self.stop.is_set():
                self._put("nuclei", _END)  # for the other render threads
                break
            path, key, n = item
            t1 = time.perf_counter()
            try:
                prep = self.clf.for_path(path).prepare(n.locs, roi_nm=n.roi_nm, at_edge=n.at_edge)
            except Exception as err:  # noqa: BLE001 - one bad nucleus must not stop the screen
                self.errors.add(path, stage_error("render", err, path, n.id))
                self.pending.finish(key, failed=True)
                prep = None
            with self._lock:
                st.busy_s += time.perf_counter() - t1
                st.items += prep is not None
            if prep is not None:
                self._put("ready", (path, key, n, prep))
        with self._lock:
            self._render_left -= 1
            last = self._render_left == 0
        if last:
            self._put("ready", _END)
            st.wall_s = time.perf_counter() - t0

    # -- stage 3: batch + infer
    # ------------------------------------------------------------------------
    def _inferrer(self) -> None:
        st = self.stats["infer"]
        t0 = time.perf_counter()
        batch, n_items = [], 0
        while True:
            item = self._get("ready")
            done = item is _END or self.stop.is_set()
            if not done:
                batch.append(item)
                n_items += len(item[3].items)
            if batch and (done or n_items >= self.clf.backend.preferred_batch):
                t1 = time.perf_counter()
                called = self._predict(batch)
                st.busy_s += time.perf_counter() - t1
                st.items += len(called)
                if called:
                    self._put("rows", called)
                batch, n_items = [], 0
            if done:
                break
        self._put("rows", _END)
        st.wall_s = time.perf_counter() - t0

    def _predict(self, batch: list) -> list:
        """(item, prediction) pairs of a batch; when the batch fails, each nucleus alone, so
        that only the ones that fail go to the errors."""
        try:
            return list(zip(batch, self.clf.predict_prepared([x[3] for x in batch]), strict=True))
        except Exception as err:  # noqa: BLE001 - isolate the nucleus that fails
            if len(batch) == 1:
                path, key, n, _ = batch[0]
                self.errors.add(path, stage_error("infer", err, path, n.id))
                self.pending.finish(key, failed=True)
                return []
        return [pair for item in batch for pair in self._predict([item])]

    # -- stage 4: write (the calling thread)
    # -----------------------------------------------------------
    def _writer(self) -> None:
        st = self.stats["write"]
        t0 = time.perf_counter()
        try:
            while True:
                try:
                    item = self.queues["rows"].get(timeout=0.5)
                except queue.Empty:
                    if self.crash:
                        break
                    continue
                if item is _END:
                    break
                t1 = time.perf_counter()
                self._write_batch(item)
                st.busy_s += time.perf_counter() - t1
                st.items += len(item)
        finally:
            st.wall_s = time.perf_counter() - t0

    def _write_batch(self, batch: list) -> None:
        self.parts.write(
            [
                {**self.make_row(path, key, n, p), THUMB_COLUMN: safe_thumbnail(prep)}
                for (path, key, n, prep), p in batch
            ]
        )
        for (path, key, n, prep), p in batch:
            self.pending.finish(key)
            if len(self.kept) < self.keep:
                self.kept.append((path, n, prep, p))
        self.n_written += len(batch)
        if self.on_written is not None:
            self.on_written(self.n_written, self.pending.files_done())
