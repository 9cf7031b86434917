"""What every kind of model run on the engine shares (:class:`ModelRunner`): a loaded backend,
the model's metadata checked to be of the runner's kind, inference in the backend's batches,
``describe``, ``close`` and the context manager. :class:`ainu_engine.Classifier`,
:class:`ainu_engine.scenmed.WidefieldClassifier` and
:class:`ainu_engine.nucleus_prediction.Generator` stand on it."""

from __future__ import annotations

import numpy as np

from .model import require_kind

__all__ = ["ModelRunner"]


class ModelRunner:
    """A model of one kind on an engine backend.

    Parameters
    ----------
    backend : ainu_engine.backends.Backend
        The backend (:func:`ainu_engine.backends.create_backend`).
    load : bool, default True
        Load the backend now (False: only the metadata is read; the backend loads where the
        inference runs).

    Raises
    ------
    ainu_engine.errors.InputError
        The model is of another kind than :attr:`kind` (the message names the API that runs
        it).

    Examples
    --------
    >>> from ainu_engine.backends import create_backend
    >>> class Logits(ModelRunner):
    ...     kind = "classifier"
    >>> b = create_backend("examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx",
    ...                    "onnxruntime", device="cpu")
    >>> with Logits(b) as r:
    ...     r.infer_batched(np.zeros((11, 1, 64, 64), np.float32)).shape
    (11, 2)
    """

    #: the model kind this runner takes (:data:`ainu_engine.model.KINDS`)
    kind = ""

    def __init__(self, backend, *, load: bool = True) -> None:
        self.backend = backend.load() if load else backend
        self.info = backend.model_info()
        require_kind(self.info, self.kind)

    def infer_batched(self, items: np.ndarray) -> np.ndarray:
        """The model's outputs for ``items`` (N, C, S, S), inferred in the backend's batches.

        Parameters
        ----------
        items : ndarray, shape (N, C, S, S), float32
            Model inputs.

        Returns
        -------
        ndarray
            ``info.output_shape(N)``, float32.
        """
        out = self._in_batches(items, self.backend.infer)
        return np.concatenate(out) if out else np.zeros(self.info.output_shape(0), np.float32)

    def _in_batches(self, items: np.ndarray, run) -> list:
        """``run`` on ``items`` in the backend's preferred batches."""
        bs = self.backend.preferred_batch
        return [run(items[i : i + bs]) for i in range(0, len(items), bs)]

    def infer_batched_with_embedding(
        self, items: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and penultimate-layer features (None for a model without them) of ``items``,
        in the backend's batches (:meth:`~ainu_engine.backends.Backend.infer_with_embedding`).

        Parameters
        ----------
        items : ndarray, shape (N, C, S, S), float32
            Model inputs.

        Returns
        -------
        (ndarray, ndarray or None)
        """
        runs = self._in_batches(items, self.backend.infer_with_embedding)
        if not runs:
            return np.zeros(self.info.output_shape(0), np.float32), None
        emb = None if any(e is None for _, e in runs) else np.concatenate([e for _, e in runs])
        return np.concatenate([z for z, _ in runs]), emb

    def describe(self) -> dict:
        """The backend that runs the model, its device, and why it was chosen.

        Returns
        -------
        dict
        """
        return {**self.backend.describe(), "reason": self.backend.reason}

    def close(self) -> None:
        """Close the backend."""
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
