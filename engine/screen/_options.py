"""What a screen is asked to do (:class:`ScreenOptions`) and where its stages run (an executor:
:class:`LocalExecutor`, threads on this machine, or :class:`RayExecutor`, a Ray cluster)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

from ._report_page import DEFAULT_GALLERY
from ._stages import Pipeline

__all__ = ["LocalExecutor", "RayExecutor", "ScreenOptions"]


@dataclass(frozen=True)
class LocalExecutor:
    """The stages on threads of this machine.

    Attributes
    ----------
    read_threads : int, default 2
        Threads that read and render files.
    queue_size : int, default 64
        Nuclei queued between the stages.
    """

    read_threads: int = 2
    queue_size: int = 64

    name = "local"
    #: the driver loads the model (and warms it up before the stages)
    loads_model = True

    def check(self, *, explain: int) -> None:
        """Nothing to refuse: every option runs locally."""

    def pipeline(self, clf, parts, errors, *, split, run, reading: dict, written, keep: int,
                 model, opts) -> Pipeline:  # fmt: skip
        """The local pipeline (:class:`~ainu_engine.screen._stages.Pipeline`)."""
        return Pipeline(clf, parts, errors, split=split, make_row=run.row, read_options=reading,
                        read_threads=self.read_threads, queue_size=self.queue_size, keep=keep,
                        on_written=written)  # fmt: skip

    def backend_summary(self, clf, pipeline) -> dict:
        """What ran the model and why it was chosen."""
        return {**clf.backend.describe(), "reason": clf.backend.reason}


@dataclass(frozen=True)
class RayExecutor:
    """The stages on a Ray cluster (Ray Data; the ``distributed`` extra).

    Reading and rendering run as CPU tasks, inference on a pool of ``workers`` actors with
    ``gpus_per_worker`` GPUs each, or ``cpus_per_worker`` CPUs each without GPUs (less than 1
    lets rendering use the CPU that a small model's inference leaves idle). ``address`` is the
    cluster's (``auto``, ``ray://host:10001``; default: a local Ray). ``plan``: ``split``
    (rendering as CPU tasks, model inputs through the object store) or ``fused`` (each actor
    reads, renders and infers). ``actor``: the inference actor's class (benchmarks use a
    stand-in that sleeps a GPU's batch time to measure the scheduler alone).

    Attributes
    ----------
    address : str, optional
        The cluster (None: a local Ray).
    workers : int
        Inference actors.
    gpus_per_worker, cpus_per_worker : float
        Each actor's resources.
    actor : type, optional
        The inference actor's class.
    plan : {"split", "fused"}
        See above.
    """

    address: str | None = None
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    actor: type | None = None
    plan: str = "split"

    name = "ray"
    #: the model loads in the inference actors, not in the driver
    loads_model = False

    def check(self, *, explain: int) -> None:
        """Refuse what needs the local executor."""
        if explain:
            raise ValueError("explain needs the local executor (it reuses the screen's renders)")

    def pipeline(self, clf, parts, errors, *, split, run, reading: dict, written, keep: int,
                 model, opts) -> object:  # fmt: skip
        """The Ray pipeline (:class:`~ainu_engine.screen._ray.RayPipeline`), same contract."""
        from ._ray import RayPipeline

        cfg = {"model": str(model), "backend": opts.backend, "device": opts.device,
               "render_device": "cpu" if opts.device == "cpu" else "auto",
               "channel_map": clf.channel_map, "file_channel_maps": clf.file_channel_maps,
               "abstain": clf.abstain_below,
               "read_options": reading,
               "batch_size": opts.batch_size}  # fmt: skip
        return RayPipeline(
            parts, errors, split=split, call_row=run.call_row, cfg=cfg, workers=self.workers,
            gpus_per_worker=self.gpus_per_worker, address=self.address, on_written=written,
            actor=self.actor, cpus_per_worker=self.cpus_per_worker, plan=self.plan,
        )  # fmt: skip

    def backend_summary(self, clf, pipeline) -> dict:
        """What ran the model (the actors' backend) and how the cluster was used."""
        return {
            "backend": pipeline.backend or clf.backend.name,
            "executor": "ray",
            "workers": self.workers,
            "gpus_per_worker": self.gpus_per_worker,
            "cpus_per_worker": self.cpus_per_worker,
            "plan": self.plan,
            "object_store_input_bytes": pipeline.input_bytes,
            "reason": "the inference actors' backend (--executor ray)",
        }


#: ``screen``'s keyword names of each executor's fields (the names the Python API has kept)
_EXECUTOR_KEYWORDS = {
    "read_threads": "read_threads", "queue_size": "queue_size", "ray_address": "address",
    "workers": "workers", "gpus_per_worker": "gpus_per_worker",
    "cpus_per_worker": "cpus_per_worker", "ray_actor": "actor", "ray_plan": "plan",
}  # fmt: skip


@dataclass(frozen=True)
class ScreenOptions:
    """What a screen does (:func:`ainu_engine.screen.screen`'s options, in one object).

    Attributes
    ----------
    backend, device : str
        See :func:`ainu_engine.backends.create_backend`; ``device`` also sets where rendering
        runs.
    nuclei : {"auto", "file", "cell_id", "roi", "detect"}
        How nuclei are found in a file (:func:`ainu_engine.nuclei.split_nuclei`).
    batch_size : int, optional
        Model batch (default: the backend's preferred one).
    camera_pixel_nm : float, optional
        For files in camera pixels that do not record it.
    read_options : dict
        More keywords for :func:`ainu_engine.io.read` (``format``, ``columns``, ``unit``...).
    channel_map : dict, optional
        Model channel -> file channel for files whose channels are named otherwise than the
        model's; a file whose channels do not match is an error row, never a silent merge.
    force : bool
        Redo nuclei already done with this model and RenderSpec.
    csv, report : bool
        Also write ``results.csv``; write ``report.html``.
    gallery : int
        Nuclei the report's gallery shows at once.
    explain : int
        Explain the first ``explain`` nuclei this run writes (needs an ``explainer``).
    shard : (k, n), optional
        Screen only shard ``k`` of ``n`` into ``out/shards/KKKK-of-NNNN/``, without a report.
    executor : LocalExecutor or RayExecutor
        Where the stages run.
    abstain : float, optional
        Abstention: unfamiliar nuclei and calls whose top probability is below this are
        ``undecided`` (with ``abstain_reason``), counted apart from the calls
        (:class:`ainu_engine.Classifier`'s ``abstain``). Default: every call is made.
    """

    backend: str = "auto"
    device: str = "auto"
    nuclei: str = "auto"
    batch_size: int | None = None
    camera_pixel_nm: float | None = None
    read_options: dict = field(default_factory=dict)
    channel_map: dict | None = None
    force: bool = False
    csv: bool = False
    report: bool = True
    gallery: int = DEFAULT_GALLERY
    explain: int = 0
    shard: tuple[int, int] | None = None
    executor: LocalExecutor | RayExecutor = field(default_factory=LocalExecutor)
    abstain: float | None = None

    def __post_init__(self) -> None:
        if self.abstain is not None and not 0.0 <= float(self.abstain) <= 1.0:
            raise ValueError(f"abstain must be a probability in [0, 1], got {self.abstain!r}")
        if self.shard is not None:
            k, n = self.shard
            if not (isinstance(k, int) and isinstance(n, int) and n >= 1 and 0 <= k < n):
                raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {self.shard!r}")
        self.executor.check(explain=self.explain)

    @classmethod
    def from_keywords(cls, *, executor: str = "local", **kw) -> ScreenOptions:
        """The options of ``screen``'s keyword arguments (``executor="local"|"ray"`` and the
        executors' own keywords: ``read_threads``, ``queue_size``, ``ray_address``,
        ``workers``, ``gpus_per_worker``, ``cpus_per_worker``, ``ray_actor``, ``ray_plan``).

        Raises
        ------
        ValueError
            An unknown executor, or an option it cannot run.
        TypeError
            An unknown keyword.
        """
        kinds: dict[str, Callable] = {"local": LocalExecutor, "ray": RayExecutor}
        if executor not in kinds:
            raise ValueError(f"executor must be local or ray, got {executor!r}")
        mine = {f.name for f in fields(kinds[executor])}
        ex = {}
        for key in [k for k in kw if k in _EXECUTOR_KEYWORDS]:
            value = kw.pop(key)
            if _EXECUTOR_KEYWORDS[key] in mine:
                ex[_EXECUTOR_KEYWORDS[key]] = value
        own = {f.name for f in fields(cls)}
        unknown = sorted(set(kw) - own)
        if unknown:
            raise TypeError(f"screen() got unexpected keyword arguments: {', '.join(unknown)}")
        kw["read_options"] = kw.get("read_options") or {}
        return cls(**kw, executor=kinds[executor](**ex))
