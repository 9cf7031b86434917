"""The training checkpoint (``RUN/best.pt``): its one owner.

A checkpoint is a ``torch.save`` dict of plain JSON-like values plus two tensors
(``state_dict`` and ``samples``), so it loads with ``weights_only=True`` (no pickled code is
ever run). Training writes it with :func:`save_checkpoint`; export, the torch backend and
``ainu-engine info`` read it with :func:`load_checkpoint` / :func:`read_checkpoint` and
describe it with :func:`checkpoint_info`.

Keys: ``format`` (:data:`CHECKPOINT_FORMAT`), ``model_config`` (the registry config),
``state_dict``, ``classes``, ``render_spec``, ``channel_names``, ``input_size``,
``preprocessing``, ``train_config``, ``metrics``, ``training_stats``, ``provenance``,
``history`` and ``samples`` (a few test inputs the export checks ONNX against torch on).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ainu_engine.errors import InputError
from ainu_engine.io import atomic_path
from ainu_engine.model import ModelInfo
from ainu_engine.render import RenderSpec

__all__ = [
    "CHECKPOINT_FORMAT",
    "save_checkpoint",
    "read_checkpoint",
    "load_checkpoint",
    "checkpoint_info",
    "update_provenance",
]

#: Version of the checkpoint layout; readers refuse any other.
CHECKPOINT_FORMAT = "ainu-engine-checkpoint-1"
#: Largest class count and input channel count a checkpoint may declare.
MAX_CLASSES, MAX_CHANNELS = 10_000, 64


def save_checkpoint(
    path: str | os.PathLike,
    model,
    *,
    classes,
    render_spec: RenderSpec,
    channel_names,
    input_size: int,
    preprocessing: dict,
    train_config: dict,
    metrics: dict,
    training_stats: dict,
    provenance: dict,
    history: list[dict],
    samples: np.ndarray,
) -> None:
    """Write ``model`` (a registry model: it has ``.config``) and what describes it, atomically."""
    import torch

    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model_config": model.config.to_dict(),
        "classes": list(classes),
        "render_spec": render_spec.to_dict(),
        "channel_names": list(channel_names),
        "input_size": int(input_size),
        "preprocessing": preprocessing,
        "train_config": train_config,
        "metrics": metrics,
        "training_stats": training_stats,
        "provenance": provenance,
        "history": history,
    }
    ckpt = json.loads(json.dumps(ckpt, default=_plain))  # plain types: loads with weights_only=True
    tensors = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "samples": torch.from_numpy(np.ascontiguousarray(samples, np.float32)),
    }
    with atomic_path(Path(path)) as tmp:
        torch.save({**ckpt, **tensors}, tmp)


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"cannot store {type(v).__name__} in a checkpoint")


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint's dict (tensors included), checked to be an ainu-engine checkpoint.

    Raises
    ------
    ainu_engine.errors.InputError
        Not a file, unreadable, or not an ainu-engine checkpoint.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", path=path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle/zip errors of many kinds
        raise InputError(f"cannot read the checkpoint: {_load_error(err)}", path=path) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(
            "not an ainu-engine checkpoint",
            path=path,
            expected=CHECKPOINT_FORMAT,
            found=str(ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__),
        )
    return ckpt


def _load_error(err: Exception) -> str:
    """torch.load's error in one plain line. A file that holds pickled Python objects is refused
    as such: models are data, and nothing here suggests loading it with weights_only=False."""
    import pickle
    import re

    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(err))
    if isinstance(err, pickle.UnpicklingError) or "weights_only" in text:
        return (
            "it holds pickled Python objects, which are never loaded (an ainu-engine checkpoint "
            "has only plain values and tensors)"
        )
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(err).__name__)
    return first[:200]


def load_checkpoint(path: str | os.PathLike) -> tuple[object, dict]:
    """Rebuild the model of a checkpoint (eval mode, CPU) and return ``(model, checkpoint)``.

    Raises
    ------
    ainu_engine.errors.InputError
        Not a file, not an ainu-engine checkpoint, no or an implausible model config, or
        weights that do not fit the model it describes.
    """
    from .models import ModelConfig, create_model

    ckpt = read_checkpoint(path)
    missing = [k for k in ("model_config", "state_dict", "classes") if k not in ckpt]
    if missing:
        raise InputError(f"the checkpoint has no {', '.join(missing)}", path=path)
    try:
        mc = ModelConfig.from_dict(ckpt["model_config"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"the checkpoint's model config is invalid: {err}", path=path) from err
    # bounded before anything is allocated: a config claiming 10^9 classes is refused
    for what, v, most in (
        ("classes", mc.num_classes, MAX_CLASSES),
        ("input channels", mc.in_chans, MAX_CHANNELS),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= most:
            raise InputError(f"the checkpoint's model has {v!r} {what} (at most {most})", path=path)
    if mc.num_classes != len(ckpt["classes"]):
        raise InputError(
            f"the checkpoint's model has {mc.num_classes} outputs for "
            f"{len(ckpt['classes'])} classes",
            path=path,
        )
    model = create_model(mc.name, in_chans=mc.in_chans, num_classes=mc.num_classes, **mc.kwargs)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError) as err:  # missing, unexpected or misshapen tensors
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(
            f"the checkpoint's weights do not fit its model: {first}", path=path
        ) from err
    return model.eval(), ckpt


def update_provenance(path: str | os.PathLike, **entries) -> None:
    """Add or replace provenance entries of a checkpoint in place (atomically), e.g. what it was
    trained on (``training_data=...``), before it is exported."""
    import torch

    ckpt = read_checkpoint(path)
    ckpt["provenance"] = {
        **ckpt.get("provenance", {}),
        **json.loads(json.dumps(entries, default=_plain)),
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(ckpt, tmp)


def checkpoint_info(
    ckpt: dict, *, path: str | os.PathLike | None = None, extra_provenance: dict | None = None
) -> ModelInfo:
    """The :class:`~ainu_engine.model.ModelInfo` of a checkpoint dict (what export writes into the
    ONNX file's metadata, and what ``ainu-engine info RUN/best.pt`` shows)."""
    return ModelInfo(
        classes=tuple(ckpt["classes"]),
        render_spec=RenderSpec.from_dict(ckpt["render_spec"]),
        input_size=int(ckpt["input_size"]),
        channel_names=tuple(ckpt["channel_names"]),
        preprocessing=ckpt.get("preprocessing", {"mode": "image"}),
        metrics=ckpt.get("metrics", {}),
        training_stats=ckpt.get("training_stats", {}),
        provenance={**ckpt.get("provenance", {}), **(extra_provenance or {})},
        model=ckpt["model_config"],
        path=None if path is None else os.fspath(path),
    )
