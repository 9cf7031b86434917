"""The one runner contract every inference backend follows (after Polygraphy's runners)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..errors import AinuError, InputError
from ..model import ModelInfo, read_model_info
from ..scores import softmax

__all__ = ["Backend", "BackendUnavailable", "is_device_array"]


class BackendUnavailable(AinuError):
    """A backend cannot run here: a package or a device is missing (the message names it)."""


def is_device_array(x) -> bool:
    """Whether ``x`` lives on a CUDA device (CuPy arrays and CUDA torch tensors expose
    ``__cuda_array_interface__``).

    Parameters
    ----------
    x : object
        An array.

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np
    >>> is_device_array(np.zeros(3))
    False
    """
    return hasattr(x, "__cuda_array_interface__")


class Backend:
    """Load a model, warm it up, turn batches of images into logits; a context manager.

    Subclasses implement ``_load_impl``, ``_infer_impl`` (and optionally ``_close_impl``,
    ``_describe_impl``); the public methods validate inputs against the model's metadata
    and time every call with ``perf_counter`` (``last_seconds``, ``total_seconds``).

    Parameters
    ----------
    model_path : path
        An exported ``.onnx`` model (the torch backend also takes a ``best.pt`` checkpoint).
    device : {"cpu", "cuda"}
    batch_size : int, optional
        Images per inference call that screening and occlusion fill batches to
        (``preferred_batch``). Default: 8 on the CPU, 64 on a GPU (or the backend's own).
    reason : str, optional
        Why this backend was chosen (:func:`~ainu_engine.backends.create_backend` says).
    """

    name = "base"

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        device: str = "cpu",
        batch_size: int | None = None,
        reason: str = "",
    ) -> None:
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model_path = Path(model_path)
        self.device = device
        #: batch size this backend runs best at on its device (screening fills batches to it)
        self.preferred_batch = batch_size or (8 if device == "cpu" else 64)
        self.reason = reason
        self.info: ModelInfo | None = None
        self.loaded = False
        self.last_seconds = 0.0
        self.total_seconds = 0.0
        self.n_inferred = 0

    def check_graph(self, inputs: dict, outputs: dict) -> None:
        """Check the model's metadata against its graph: ``inputs``/``outputs`` map tensor names
        to shapes (ints, or names/None for free dimensions). Raises InputError naming the file."""
        info = self.info
        if info.input_name not in inputs or info.output_name not in outputs:
            raise InputError(
                f"the metadata names input {info.input_name!r} and output {info.output_name!r}, "
                f"the graph has inputs {sorted(inputs)} and outputs {sorted(outputs)}",
                path=self.model_path,
            )
        shape, want = (
            list(inputs[info.input_name]),
            (info.n_channels, info.input_size, info.input_size),
        )
        if len(shape) != 4 or any(
            isinstance(g, int) and g != w for g, w in zip(shape[1:], want, strict=True)
        ):
            raise InputError(
                f"the metadata says the input is (N, {', '.join(map(str, want))}), "
                f"the graph's is {shape}",
                path=self.model_path,
            )
        emb = getattr(info, "embedding_name", None)
        if emb and emb not in outputs:
            raise InputError(
                f"the metadata names the embedding output {emb!r}, the graph has outputs "
                f"{sorted(outputs)}",
                path=self.model_path,
            )
        out, want_out = list(outputs[info.output_name]), info.output_shape(1)[1:]
        if len(out) != len(want_out) + 1 or any(
            isinstance(g, int) and g != w for g, w in zip(out[1:], want_out, strict=True)
        ):
            raise InputError(
                f"the metadata {_expected_output(info)}, the graph's output is {out}",
                path=self.model_path,
            )

    def _require(self, module: str, *, extra: str, why: str = ""):
        """Import ``module`` for this backend, or raise :class:`BackendUnavailable` naming it,
        what it is needed for and the extra that installs it
        (:func:`ainu_engine.optional.require`)."""
        from ..optional import require

        return require(module, extra, why=why or f"the {self.name} backend",
                       path=self.model_path, error=BackendUnavailable)  # fmt: skip

    # -- public ---------------------------------------------------------------------------------
    def model_info(self) -> ModelInfo:
        """The model's metadata, read without loading the runtime."""
        if self.info is None:
            self.info = self._read_info()
        return self.info

    def load(self) -> Backend:
        """Read the model's metadata and build the runtime; returns ``self``."""
        if not self.loaded:
            if self.info is None:
                self.info = self._read_info()
            self._load_impl()
            self.loaded = True
        return self

    def warmup(self, batch_size: int | None = None, *, repeat: int = 2) -> None:
        """Run ``repeat`` batches of zeros so that lazy initialisation is not timed later."""
        self.load()
        x = np.zeros((batch_size or self.preferred_batch, *self.input_shape[1:]), np.float32)
        for _ in range(repeat):
            self.infer(x)

    def infer(self, x) -> np.ndarray:
        """The model's output as float32 NumPy for images ``x`` (N, C, S, S) float32: logits
        (N, K) of a classifier, images (N, 3, S, S) of a generator (``info.output_shape``).

        ``x`` may be a NumPy array or, on CUDA backends, a CuPy array / CUDA torch tensor that
        is used in place (no copy through the host).

        Raises
        ------
        ainu_engine.errors.InputError
            ``x`` does not have the model's channels and size.
        """
        return self._infer_checked(x, False)[0]

    def infer_with_embedding(self, x) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and the penultimate-layer features (N, d) of ``x`` in one run: the graph's
        second output (``info.embedding_name``), for the out-of-distribution score; the features
        are None for a model without that output.

        Raises
        ------
        ainu_engine.errors.InputError
            ``x`` does not have the model's channels and size.
        """
        return self._infer_checked(x, bool(getattr(self.model_info(), "embedding_name", None)))

    def _infer_checked(self, x, embedding: bool) -> tuple[np.ndarray, np.ndarray | None]:
        self.load()
        shape = tuple(x.shape)
        want = self.input_shape[1:]
        if len(shape) != 4 or shape[1:] != want or shape[0] < 1:
            raise InputError(
                f"input batch has shape {shape}; the model takes (N, {', '.join(map(str, want))})",
                path=self.model_path,
            )
        if not is_device_array(x):
            x = np.ascontiguousarray(x, dtype=np.float32)
        t0 = time.perf_counter()
        out, emb = self._infer_embedding_impl(x) if embedding else (self._infer_impl(x), None)
        dt = time.perf_counter() - t0
        self.last_seconds = dt
        self.total_seconds += dt
        self.n_inferred += shape[0]
        out = np.asarray(out, dtype=np.float32)
        if out.shape != self.info.output_shape(shape[0]):
            raise InputError(
                f"the model gave outputs of shape {out.shape} for {shape[0]} images; its metadata "
                f"{_expected_output(self.info)}",
                path=self.model_path,
            )
        if emb is not None:
            emb = np.asarray(emb, dtype=np.float32).reshape(shape[0], -1)
        return out, emb

    def probabilities(self, x) -> np.ndarray:
        """Softmax of :meth:`infer`'s logits."""
        return softmax(self.infer(x), axis=1)

    def describe(self) -> dict:
        """Name, device, precision and runtime details (what ran, for logs and results)."""
        d = {"backend": self.name, "device": self.device, "model": str(self.model_path)}
        d.update(self._describe_impl())
        return d

    def close(self) -> None:
        if self.loaded:
            self._close_impl()
            self.loaded = False

    def __enter__(self) -> Backend:
        return self.load()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def input_shape(self) -> tuple:
        info = self.info or self._read_info()
        return ("batch", info.n_channels, info.input_size, info.input_size)

    # -- for subclasses -------------------------------------------------------------------------
    def _read_info(self) -> ModelInfo:
        return read_model_info(self.model_path)

    def _load_impl(self) -> None:
        raise NotImplementedError

    def _infer_impl(self, x) -> np.ndarray:
        raise NotImplementedError

    def _infer_embedding_impl(self, x) -> tuple[np.ndarray, np.ndarray | None]:
        """(logits, features); a backend that cannot fetch the second output gives None."""
        return self._infer_impl(x), None

    def _describe_impl(self) -> dict:
        return {}

    def _close_impl(self) -> None:
        pass


def _expected_output(info) -> str:
    """What the metadata says of the output: ``names K classes`` (a classifier) or ``says the
    output is (N, 3, S, S)`` (a generator)."""
    classes = getattr(info, "classes", None)
    if classes:
        return f"names {len(classes)} classes"
    return f"says the output is (N, {', '.join(map(str, info.output_shape(1)[1:]))})"
