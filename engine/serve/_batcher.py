"""Dynamic batching, modelled on Triton's: nuclei prepared by concurrent requests are inferred
together, up to ``max_batch`` items, waiting at most ``max_delay_s`` for a batch to fill; a
bounded queue refuses work when it is full (the server answers 503 with Retry-After)."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

__all__ = ["Batcher", "QueueFull"]


class QueueFull(Exception):
    """The inference queue is full: the caller should answer 503 and retry later."""


class Batcher:
    """One inference thread in front of a :class:`~ainu_engine.Classifier`.

    ``submit(prepared)`` returns a Future of the :class:`~ainu_engine.Prediction`; the thread
    takes the first waiting item, then more until ``max_batch`` model items are gathered or
    ``max_delay_s`` has passed since the first, and calls ``predict_prepared`` once for all.
    A batch that fails is retried item by item, so that one bad nucleus fails only itself.

    Parameters
    ----------
    classifier : Classifier
        The loaded classifier.
    max_batch : int, default 16
        Model items per call.
    max_delay_s : float, default 0.005
        The longest a batch waits for more items.
    queue_size : int, default 64
        Items waiting; a full queue refuses (:class:`QueueFull`: the service answers 503).
    on_batch : callable, optional
        Called with each batch's size and time (metrics).

    Raises
    ------
    ValueError
        ``max_batch`` or ``queue_size`` below 1, or a negative ``max_delay_s``.
    """

    def __init__(self, classifier, *, max_batch: int = 16, max_delay_s: float = 0.005,
                 queue_size: int = 64, on_batch=None) -> None:  # fmt: skip
        if max_batch < 1 or queue_size < 1 or max_delay_s < 0:
            raise ValueError("max_batch and queue_size must be >= 1 and max_delay_s >= 0")
        self.clf = classifier
        self.max_batch = int(max_batch)
        self.max_delay_s = float(max_delay_s)
        self._q: queue.Queue = queue.Queue(maxsize=int(queue_size))
        self._on_batch = on_batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ainu-batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return self._q.qsize()

    def submit(self, prepared) -> Future:
        fut: Future = Future()
        try:
            self._q.put_nowait((prepared, fut))
        except queue.Full:
            raise QueueFull from None
        return fut

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            batch, items = [first], len(first[0].items)
            deadline = time.perf_counter() + self.max_delay_s
            while items < self.max_batch:
                left = deadline - time.perf_counter()
                try:
                    nxt = self._q.get(timeout=left) if left > 0 else self._q.get_nowait()
                except queue.Empty:
                    break
                batch.append(nxt)
                items += len(nxt[0].items)
            self._run(batch)
            if self._on_batch is not None:
                self._on_batch(len(batch), items)

    def _run(self, batch) -> None:
        try:
            preds = self.clf.predict_prepared([p for p, _ in batch])
        except Exception as err:  # noqa: BLE001 - isolate the nucleus that fails
            if len(batch) == 1:
                batch[0][1].set_exception(err)
                return
            for one in batch:
                self._run([one])
            return
        for (_, fut), pred in zip(batch, preds, strict=True):
            fut.set_result(pred)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        while True:  # nothing waits forever: what was queued fails
            try:
                _, fut = self._q.get_nowait()
            except queue.Empty:
                break
            fut.set_exception(RuntimeError("the server is shutting down"))
