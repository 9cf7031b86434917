"""The screen on a Ray cluster (``screen(..., executor="ray")``): Ray Data runs the stages,
the driver keeps the run folder exactly as the single-machine pipeline does.

::

    files ──▶ read + split + render (Ray tasks, CPU; one file each, retried on worker loss)
          ──▶ infer (``map_batches`` on an actor pool: the model loaded once per actor, on a GPU
              where the actor has one; actors restarted and their batches retried on loss)
          ──▶ the driver: parts, journal, errors (the same ``OUT/parts`` as one machine)

What crosses the object store is the model input of each nucleus (the render, pickled, without
the raw image), never the localizations: for the paper's 512 px, two-channel input that is 2 MiB
a nucleus, against 10-40 MiB of localizations. Every row is keyed by (file key, nucleus id); the
driver writes a key once however often a retried task delivers it, and a rerun after the driver
died resumes from the parts like any screen. Needs the ``distributed`` extra (``ray[data]``);
every worker must import ainu_engine and see the input files under the same paths.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import pickle
import threading
import time
import types
from collections.abc import Callable

from ..backends import BackendUnavailable
from ._results import nucleus_fields
from ._stages import Pending, StageStats, read_nuclei, stage_error
from ._thumbs import THUMB_COLUMN, safe_thumbnail

__all__ = ["RayPipeline", "InferActor", "init_ray", "render_file"]

_KINDS = ("file", "nucleus", "error", "nucleus_error")


def init_ray(address: str | None = None, *, num_cpus: int | None = None):
    """Connect to a Ray cluster (``address``: ``auto``, ``ray://host:10001``, ``host:6379``) or
    start a local one; an already initialised Ray is used as it is."""
    from ..optional import require

    ray = require("ray", "distributed", why="--executor ray", error=BackendUnavailable)
    if not ray.is_initialized():
        kw = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True}
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=num_cpus, **kw)
    return ray


def check_resources(resources: dict, *, workers: int, cpus_per_worker: float,
                    gpus_per_worker: float, plan: str) -> None:  # fmt: skip
    """Refuse, before anything starts, a plan the cluster cannot run: inference actors that
    take every CPU (or more GPUs than there are) leave the render tasks nothing, and Ray Data
    then waits forever without a word.

    Parameters
    ----------
    resources : dict
        ``ray.cluster_resources()``.
    workers : int
    cpus_per_worker, gpus_per_worker : float
    plan : {"split", "fused"}
        ``split`` needs a CPU beyond the actors' for the render tasks; ``fused`` renders in
        the actors.

    Raises
    ------
    ValueError
        The numbers, and what would fit.

    Examples
    --------
    >>> check_resources({"CPU": 2.0}, workers=2, cpus_per_worker=1, gpus_per_worker=0,
    ...                 plan="split")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: 2 inference workers x 1 CPU leave none of the cluster's 2 CPUs for the render...
    """
    cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    if gpus_per_worker:
        need = workers * gpus_per_worker
        if need > gpus + 1e-9:
            raise ValueError(
                f"{workers} inference workers x {gpus_per_worker:g} GPU need {need:g} GPUs; the "
                f"cluster has {gpus:g}; use --workers {max(1, int(gpus // gpus_per_worker))} or "
                f"a smaller --gpus-per-worker"
            )
        actor_cpus = 0.0  # GPU actors ask Ray for no CPU
    else:
        actor_cpus = workers * cpus_per_worker
    spare = 1.0 if plan == "split" else 0.0
    if actor_cpus + spare > cpus + 1e-9:
        fit = max(1, int((cpus - spare) // cpus_per_worker)) if cpus_per_worker else 1
        if plan == "split":
            raise ValueError(
                f"{workers} inference workers x {cpus_per_worker:g} CPU leave none of the "
                f"cluster's {cpus:g} CPUs for the render tasks (--ray-plan split needs one); use "
                f"--workers {fit}, --cpus-per-worker {max(0.1, (cpus - 1) / workers):.2g} or "
                f"--ray-plan fused"
            )
        raise ValueError(
            f"{workers} workers x {cpus_per_worker:g} CPU need {actor_cpus:g} CPUs; the cluster "
            f"has {cpus:g}; use --workers {fit} or a smaller --cpus-per-worker"
        )


class StallWatch:
    """Says so when a screen's results stop coming: a thread that, when ``timeout_s`` pass
    without :meth:`beat`, calls ``on_stall`` with a line from ``describe()`` (what the cluster
    has free, what has arrived) — once per stall, again after each further ``timeout_s``.

    Parameters
    ----------
    timeout_s : float
    describe : callable
        ``describe() -> str``: the state worth reporting.
    on_stall : callable
        ``on_stall(message)``; default a warning on the ``ainu_engine.screen`` logger.

    Examples
    --------
    >>> seen = []
    >>> with StallWatch(0.05, lambda: "nothing yet", seen.append) as w:
    ...     time.sleep(0.2)
    >>> seen[0].endswith("s: nothing yet")
    True
    """

    def __init__(self, timeout_s: float, describe: Callable[[], str],
                 on_stall: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.timeout_s = float(timeout_s)
        self.describe = describe
        self.on_stall = on_stall or logging.getLogger("ainu_engine.screen").warning
        self._last = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ainu-stall-watch", daemon=True)

    def beat(self) -> None:
        """A result arrived."""
        self._last = time.perf_counter()

    def _watch(self) -> None:
        told = self._last
        while not self._stop.wait(min(1.0, self.timeout_s / 4)):
            now = time.perf_counter()
            if now - max(told, self._last) >= self.timeout_s:  # quiet, and not told yet
                quiet, told = now - self._last, now
                try:
                    state = self.describe()
                except Exception as err:  # noqa: BLE001 - a report must not stop the screen
                    state = f"(state unknown: {err})"
                self.on_stall(f"no result for {quiet:.0f} s: {state}")

    def __enter__(self) -> StallWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


#: Seconds without a result before a Ray screen says what it waits on.
STALL_S = 120.0


def _cluster_state(ray, n_written: Callable[[], int]) -> str:
    """What a stalled Ray screen waits on, in one line."""
    free, total = ray.available_resources(), ray.cluster_resources()
    cpu_free, cpu = float(free.get("CPU", 0)), float(total.get("CPU", 0))
    why = ("no CPU is free: tasks wait for one (fewer --workers, or --ray-plan fused)"
           if cpu_free < 1 else "CPUs are free: a task is slow or stuck (very large files?)")
    return f"{n_written()} nuclei written; {cpu_free:g} of {cpu:g} CPUs free — {why}"


@functools.cache
def _schema():
    import pyarrow as pa

    return pa.schema([
        ("kind", pa.string()), ("path", pa.string()), ("key", pa.string()),
        ("nucleus_id", pa.string()), ("n_total", pa.int64()), ("n_todo", pa.int64()),
        ("incomplete", pa.bool_()), ("message", pa.string()), ("fields", pa.string()),
        ("prepared", pa.binary()), ("read_s", pa.float64()), ("render_s", pa.float64()),
        ("infer_s", pa.float64()), ("backend", pa.string()), ("input_bytes", pa.int64()),
        (THUMB_COLUMN, pa.list_(pa.binary())),
    ])  # fmt: skip


def _rec(kind: str, path, key: str, **kw) -> dict:
    rec = dict.fromkeys(_schema().names)
    rec.update(kind=kind, path=str(path), key=key, **kw)
    return rec


_PREPARERS: dict = {}


def _preparer(model: str, backend: str, device: str, render_device: str, channel_map,
              file_maps=None):  # fmt: skip
    """A Classifier that renders only (its backend never loads), one per worker process."""
    from .._classifier import Classifier
    from ..backends import create_backend

    maps = json.dumps([channel_map, file_maps], sort_keys=True)
    k = (model, backend, device, render_device, maps)
    if k not in _PREPARERS:
        b = create_backend(model, backend, device=device)
        _PREPARERS[k] = Classifier(b, render_device=render_device, channel_map=channel_map,
                                   file_channel_maps=file_maps, load=False)  # fmt: skip
    return _PREPARERS[k]


def _slim(prep):
    """The prepared nucleus without its raw render (what the calls need of it stays)."""
    r = prep.rendered
    light = None
    if r is not None:
        warnings = list(getattr(r, "warnings", None) or [])
        light = types.SimpleNamespace(pixel_nm=getattr(r, "pixel_nm", None), warnings=warnings)
    return dataclasses.replace(prep, rendered=light)


def render_file(item: dict, *, cfg: dict, split: Callable) -> list[dict]:
    """One file: read, split into nuclei, render those not done yet (a Ray task)."""
    path, key = item["path"], item["key"]
    done = set(json.loads(item["done"]))
    t0 = time.perf_counter()
    clf = _preparer(cfg["model"], cfg["backend"], cfg["device"], cfg["render_device"],
                    cfg["channel_map"], cfg.get("file_channel_maps"))  # fmt: skip
    try:
        nuclei, skipped = read_nuclei(clf, path, split, cfg["read_options"])
    except Exception as err:  # noqa: BLE001 - one bad file must not stop the screen
        return [_rec("error", path, key, message=stage_error("read", err, path))]
    read_s = time.perf_counter() - t0
    todo = [n for n in nuclei if n.id not in done]
    out = [_rec("error", path, key, message=msg) for msg in skipped]
    out.append(_rec("file", path, key, n_total=len(nuclei), n_todo=len(todo),
                    incomplete=bool(skipped), read_s=read_s))  # fmt: skip
    for n in todo:
        t1 = time.perf_counter()
        try:
            prep = clf.for_path(path).prepare(n.locs, roi_nm=n.roi_nm, at_edge=n.at_edge)
        except Exception as err:  # noqa: BLE001 - one bad nucleus must not stop the screen
            out.append(_rec("nucleus_error", path, key, nucleus_id=n.id,
                            message=stage_error("render", err, path, n.id)))  # fmt: skip
            continue
        blob = pickle.dumps(_slim(prep), protocol=5)
        out.append(_rec("nucleus", path, key, nucleus_id=n.id,
                        fields=json.dumps(nucleus_fields(path, n)), prepared=blob,
                        input_bytes=len(blob), render_s=time.perf_counter() - t1,
                        thumbnail=safe_thumbnail(prep)))  # fmt: skip
    return out


class InferActor:
    """Calls of the rendered nuclei in a batch; other rows pass through (a Ray Data actor)."""

    def __init__(self, cfg: dict, call_row: Callable) -> None:
        from .._classifier import Classifier
        from ..backends import create_backend

        device = cfg["device"]
        if device == "auto":
            import ray

            device = "cuda" if ray.get_gpu_ids() else "cpu"
        self.clf = Classifier(
            create_backend(cfg["model"], cfg["backend"], device=device,
                           batch_size=cfg["batch_size"]),
            render_device="cpu", channel_map=cfg["channel_map"], abstain=cfg.get("abstain"),
        )  # fmt: skip
        self.backend = self.clf.backend.name
        self.call_row = call_row
        self.cfg = cfg
        self.clf.backend.warmup()

    def __call__(self, batch):
        import pyarrow as pa

        rows = batch.to_pylist()
        idx = [i for i, r in enumerate(rows) if r["kind"] == "nucleus"]
        t0 = time.perf_counter()
        calls = self._predict(
            [pickle.loads(rows[i]["prepared"]) for i in idx], [rows[i] for i in idx]
        )
        per = (time.perf_counter() - t0) / max(1, len(idx))
        for i, (pred, err) in zip(idx, calls, strict=True):
            r = rows[i]
            r["prepared"] = None
            if err is not None:
                r.update(kind="nucleus_error", message=err, fields=None)
                continue
            r["fields"] = json.dumps({**json.loads(r["fields"]),
                                      **self.call_row(r["key"], pred, self.backend)})  # fmt: skip
            r.update(infer_s=per, backend=self.backend)
        return pa.Table.from_pylist(rows, schema=_schema())

    def _predict(self, prepared: list, rows: list) -> list[tuple]:
        """(prediction, None) or (None, message) per nucleus: a failing batch is retried one
        nucleus at a time, so that only the nuclei that fail are errors."""
        if not prepared:
            return []
        try:
            return [(p, None) for p in self.clf.predict_prepared(prepared)]
        except Exception as err:  # noqa: BLE001 - isolate the nucleus that fails
            if len(prepared) == 1:
                r = rows[0]
                return [(None, stage_error("infer", err, r["path"], r["nucleus_id"]))]
        return [c for p, r in zip(prepared, rows, strict=True) for c in self._predict([p], [r])]


class FusedActor(InferActor):
    """Read, split, render and infer in the actor (``plan="fused"``): the model inputs never
    cross the object store, but the actor's own CPU renders (one file after another)."""

    def __init__(self, cfg: dict, call_row: Callable, split: Callable) -> None:
        super().__init__(cfg, call_row)
        self.split = split

    def __call__(self, batch):
        import pyarrow as pa

        rows = [r for item in batch.to_pylist()
                for r in render_file(item, cfg=self.cfg, split=self.split)]  # fmt: skip
        for r in rows:
            r["input_bytes"] = 0  # rendered here: nothing crossed the object store
        return super().__call__(pa.Table.from_pylist(rows, schema=_schema()))


class RayPipeline:
    """The stages of :class:`~ainu_engine.screen._stages.Pipeline` on Ray Data (same ``run``,
    ``stats``, ``kept``); see the module doc."""

    def __init__(self, parts, errors, *, split: Callable, call_row: Callable, cfg: dict,
                 workers: int = 1, gpus_per_worker: float = 0.0, address: str | None = None,
                 on_written: Callable[[int, int], None] | None = None,
                 actor: type | None = None, cpus_per_worker: float = 1.0,
                 plan: str = "split") -> None:  # fmt: skip
        self.parts = parts
        self.errors = errors
        self.split = split
        self.call_row = call_row
        self.cfg = cfg
        self.workers = max(1, int(workers))
        self.gpus = float(gpus_per_worker)
        self.address = address
        self.on_written = on_written
        self.actor = actor or InferActor
        self.cpus = float(cpus_per_worker)
        if plan not in ("split", "fused"):
            raise ValueError(f"plan must be split or fused, got {plan!r}")
        self.plan = plan
        self.input_bytes = 0  #: model inputs that crossed the object store (plan "split")
        self.stats = {n: StageStats(n) for n in ("read", "render", "infer", "write")}
        self.kept: list = []
        self.n_written = 0
        self.backend: str | None = None

    def run(self, todo: list[tuple]) -> int:
        st_w = self.stats["write"]
        t0 = time.perf_counter()
        try:
            if todo:
                self._run(todo)
        finally:
            st_w.wall_s = time.perf_counter() - t0
            for name in ("read", "render", "infer"):
                self.stats[name].wall_s = st_w.wall_s
        return self.n_written

    def _dataset(self, todo):
        ray = init_ray(self.address)
        import ray.data as rd

        done: dict[str, list] = {}
        for key, nid in self.parts.done_nuclei:
            done.setdefault(key, []).append(nid)
        items = [{"path": str(p), "key": k, "done": json.dumps(done.get(k, []))} for p, k in todo]
        resources = ray.cluster_resources()
        check_resources(resources, workers=self.workers, cpus_per_worker=self.cpus,
                        gpus_per_worker=self.gpus, plan=self.plan)  # fmt: skip
        ctx = rd.DataContext.get_current()
        ctx.enable_progress_bars = False
        # a task per block of files: a few blocks per CPU balance the load, and a task per
        # file would spend more on Ray's per-task cost than small nuclei take to render
        cpus = max(1, int(resources.get("CPU", 1)))
        ds = rd.from_items(items, override_num_blocks=min(len(items), 4 * cpus))
        # Ray Data retries tasks lost with their worker and restarts lost actors (retrying
        # their batches) by default; a Python exception becomes an error row before that
        actor_args = {
            "batch_format": "pyarrow",
            "compute": rd.ActorPoolStrategy(size=self.workers),
            "num_gpus": self.gpus or None,
            "num_cpus": self.cpus if not self.gpus else None,
        }
        if self.plan == "fused":
            ds = ds.map_batches(
                FusedActor if self.actor is InferActor else self.actor,
                fn_constructor_kwargs={"cfg": self.cfg, "call_row": self.call_row,
                                       "split": self.split},
                batch_size=1, **actor_args,
            )  # fmt: skip
            return ray, ds
        ds = ds.flat_map(render_file, fn_kwargs={"cfg": self.cfg, "split": self.split},
                         num_cpus=1)  # fmt: skip
        ds = ds.map_batches(
            self.actor,
            fn_constructor_kwargs={"cfg": self.cfg, "call_row": self.call_row},
            batch_size=self.cfg["batch_size"] or 8,
            **actor_args,
        )
        return ray, ds

    def _run(self, todo) -> None:
        ray, ds = self._dataset(todo)
        with StallWatch(STALL_S, lambda: _cluster_state(ray, lambda: self.n_written)) as watch:
            self._gather(ds, watch)

    def _gather(self, ds, watch: StallWatch) -> None:
        pending = Pending(self.parts)
        written: set[tuple[str, str]] = set()
        st = self.stats
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            watch.beat()
            t1 = time.perf_counter()
            rows = []
            for r in batch.to_pylist():
                kind, key, path = r["kind"], r["key"], r["path"]
                if kind == "file":
                    st["read"].busy_s += r["read_s"] or 0.0
                    st["read"].items += 1  # files read
                    pending.expect(key, r["n_todo"], total=r["n_total"], failed=r["incomplete"])
                elif kind == "error":
                    self.errors.add(path, r["message"])
                elif (key, r["nucleus_id"]) in written:
                    continue  # a retried task delivered it again
                elif kind == "nucleus_error":
                    written.add((key, r["nucleus_id"]))
                    self.errors.add(path, r["message"])
                    pending.finish(key, failed=True)
                else:
                    written.add((key, r["nucleus_id"]))
                    st["render"].busy_s += r["render_s"] or 0.0
                    self.input_bytes += r["input_bytes"] or 0
                    st["infer"].busy_s += r["infer_s"] or 0.0
                    st["render"].items += 1
                    st["infer"].items += 1
                    self.backend = self.backend or r["backend"]
                    rows.append({**json.loads(r["fields"]), THUMB_COLUMN: r["thumbnail"]})
            if rows:
                self.parts.write(rows)
                for row in rows:
                    pending.finish(row["file_key"])
                self.n_written += len(rows)
                st["write"].items += len(rows)
                if self.on_written is not None:
                    self.on_written(self.n_written, pending.files_done())
            st["write"].busy_s += time.perf_counter() - t1
