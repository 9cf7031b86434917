"""What the routes share: the server's configuration, its errors, and the service (the
classifier, the render pool, the batcher, the live sessions)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AinuError
from ..kernels import share_threads
from ._batcher import Batcher
from ._metrics import Metrics

__all__ = ["HTTPError", "ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """Limits and batching of a server (the CLI's options).

    Attributes
    ----------
    token : str or None
        The bearer token requests need (required off loopback).
    max_batch : int
        Model items per inference call.
    max_delay_ms : float
        The longest a batch waits for more items.
    queue_size : int
        Items waiting for inference; more are answered 503.
    max_body_mb : float
        The largest request body.
    max_localizations : int
        The most localizations in one request.
    render_threads : int
        Threads that read and render request bodies.
    request_timeout_s : float
        A request's time limit.
    live_sessions : int
        Live sessions open at once.
    live_idle_s : float
        A live session idle this long is closed.
    """

    token: str | None = None
    max_batch: int = 16
    max_delay_ms: float = 5.0
    queue_size: int = 64
    max_body_mb: float = 256.0
    max_localizations: int = 20_000_000
    render_threads: int = 2
    request_timeout_s: float = 120.0
    live_sessions: int = 32
    live_idle_s: float = 600.0


class HTTPError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class _Service:
    """What the routes share: the classifier, the render pool, the batcher, the live sessions."""

    def __init__(self, model: str | os.PathLike, cfg: ServeConfig, *, backend: str, device: str):
        import hashlib

        from .._classifier import Classifier

        if Path(model).suffix.lower() != ".onnx":
            raise AinuError(
                "the server takes an exported .onnx model only (a model file is data, never code)",
                path=model,
                hint="ainu-engine export RUN/best.pt --out model.onnx",
            )
        self.cfg = cfg
        self.model_path = Path(model)
        self.model_sha = hashlib.sha256(self.model_path.read_bytes()).hexdigest()
        self.clf = Classifier.load(model, backend, device=device, spinning=False)
        self.metrics = Metrics()
        # each render thread's kernels on its share of the cores (render_threads render at once)
        self.pool = ThreadPoolExecutor(cfg.render_threads, thread_name_prefix="ainu-render",
                                       initializer=share_threads,
                                       initargs=(cfg.render_threads,))  # fmt: skip
        self.batcher = Batcher(self.clf, max_batch=cfg.max_batch,
                               max_delay_s=cfg.max_delay_ms / 1e3,
                               queue_size=cfg.queue_size, on_batch=self.metrics.batch)  # fmt: skip
        self.live: dict[str, tuple[object, float]] = {}
        self.live_lock = threading.Lock()
        self.ready = False

    def warmup(self) -> None:
        """Compile the rendering kernels (a small nucleus) and run the model once at the batch
        shape, so that the first request is served at full speed; then ready."""
        from ..io import Localizations

        rng = np.random.default_rng(0)
        r = 3000.0 * np.sqrt(rng.random(5000))
        a = rng.random(5000) * 2 * np.pi
        try:
            self.clf.prepare(Localizations(1e4 + r * np.cos(a), 1e4 + r * np.sin(a)))
        except AinuError:
            pass  # a model whose channels a one-channel nucleus cannot feed: compiled anyway
        self.clf.backend.warmup()
        self.ready = True

    def close(self) -> None:
        self.batcher.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self.live_lock:
            for sess, _ in self.live.values():
                sess.close()
            self.live.clear()
        self.clf.close()

    # -- live sessions ----------------------------------------------------------------------
    def sweep(self) -> None:
        now = time.monotonic()
        with self.live_lock:
            for sid in [k for k, (_, t) in self.live.items() if now - t > self.cfg.live_idle_s]:
                self.live.pop(sid)[0].close()

    def session(self, sid: str):
        self.sweep()
        with self.live_lock:
            if sid not in self.live:
                raise HTTPError(
                    404, "unknown_session", f"no live session {sid!r} (closed or expired)"
                )
            sess, _ = self.live[sid]
            self.live[sid] = (sess, time.monotonic())
            return sess
