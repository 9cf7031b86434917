"""The one place that builds ONNX Runtime sessions (backends, graph checks, export gates,
metadata reads all come here)."""

from __future__ import annotations

import os

from .optional import require

__all__ = ["ort_session"]


def ort_session(
    model: str | os.PathLike | bytes,
    *,
    providers: list | None = None,
    options=None,
):
    """An ``onnxruntime.InferenceSession`` of ``model``.

    Parameters
    ----------
    model : str, os.PathLike or bytes
        The ``.onnx`` file, or a serialised model.
    providers : list, optional
        Execution providers in ONNX Runtime's form (names or ``(name, options)``); default the
        CPU provider alone.
    options : onnxruntime.SessionOptions, optional
        Session options (threads, graph optimisation); default ONNX Runtime's.

    Returns
    -------
    onnxruntime.InferenceSession

    Raises
    ------
    ainu_engine.errors.MissingDependency
        ONNX Runtime is not installed (the message names the ``cpu`` extra).
    ainu_engine.errors.InputError
        ONNX Runtime refuses the model (an IR version it does not know, external data outside
        the model's folder...): its reason, naming the file.

    Examples
    --------
    >>> sess = ort_session("examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx")
    >>> [i.name for i in sess.get_inputs()]
    ['image']
    """
    ort = require("onnxruntime", "cpu", why="running an ONNX model")
    src = model if isinstance(model, bytes) else os.fspath(model)
    try:
        return ort.InferenceSession(
            src, sess_options=options, providers=providers or ["CPUExecutionProvider"]
        )
    except Exception as err:
        if not type(err).__module__.startswith("onnxruntime"):
            raise
        from .errors import InputError

        raise InputError(f"ONNX Runtime cannot load the model: {_ort_reason(err)}",
                         path=None if isinstance(model, bytes) else src) from None  # fmt: skip


def _ort_reason(err: BaseException) -> str:
    """ONNX Runtime's reason, without its C++ source location and signature."""
    text = " ".join(str(err).split())
    if "onnxruntime::" in text:  # "...model.cc:256 onnxruntime::Model::Model(...) REASON"
        text = text.rsplit(") ", 1)[-1]
    return text.split("failed:", 1)[-1].strip()[:300]
