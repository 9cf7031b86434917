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
    "GENERATOR_FORMAT",
    "TRAINING_STATE_FORMAT",
    "WIDEFIELD_FORMAT",
    "save_widefield_model",
    "load_widefield_model",
    "save_checkpoint",
    "save_generator",
    "load_generator",
    "save_training_state",
    "read_training_state",
    "read_checkpoint",
    "load_checkpoint",
    "checkpoint_info",
    "update_provenance",
]

#: Version of the checkpoint layout; readers refuse any other.
CHECKPOINT_FORMAT = "ainu-engine-checkpoint-1"
#: A trained generator (nucleus prediction): its config, weights and run.
GENERATOR_FORMAT = "ainu-engine-generator-1"
#: A SCENMED classifier (``widefield train``): its registry config, weights, classes, patch side.
WIDEFIELD_FORMAT = "ainu-engine-widefield-model-1"
#: A run's resume state (models, optimisers, random state, history): every file plain data.
TRAINING_STATE_FORMAT = "ainu-engine-training-state-1"
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
    """Write ``model`` (a registry model: it has ``.config``) and what describes it, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.pt``.
    model : torch.nn.Module
        A registry model.
    classes : sequence of str
        Class names in logit order.
    render_spec : RenderSpec
        How its nuclei were rendered.
    channel_names : sequence of str
        One per image channel.
    input_size : int
        The input side.
    preprocessing : dict
        Image or patch mode.
    train_config, metrics, training_stats, provenance : dict
        The run's configuration, metrics, training-nucleus statistics and provenance.
    history : list of dict
        Per-epoch records.
    samples : ndarray
        A few test inputs export checks ONNX against torch on.
    """
    import torch

    ckpt = {
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
    samples = torch.from_numpy(np.ascontiguousarray(samples, np.float32))
    _write(path, CHECKPOINT_FORMAT, ckpt, model, samples=samples)


def _write(path, fmt: str, plain: dict, model, **tensors) -> None:
    """Save ``{"format": fmt, **plain, "state_dict": ..., **tensors}`` atomically; ``plain`` is
    made of plain JSON types first, so the file loads with ``weights_only=True``."""
    import torch

    doc = json.loads(json.dumps(plain, default=_plain))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(Path(path)) as tmp:
        torch.save({"format": fmt, **doc, "state_dict": state, **tensors}, tmp)


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"cannot store {type(v).__name__} in a checkpoint")


def read_checkpoint(
    path: str | os.PathLike, *, formats: tuple[str, ...] = (CHECKPOINT_FORMAT,)
) -> dict:
    """The checkpoint's dict (tensors included), checked to be an ainu-engine checkpoint.

    Every file the project trains is read here, with ``torch.load(..., weights_only=True)``:
    plain values and tensors only, never pickled code.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.pt`` file.
    formats : tuple of str
        The layouts accepted (:data:`CHECKPOINT_FORMAT`, :data:`GENERATOR_FORMAT`,
        :data:`TRAINING_STATE_FORMAT`).

    Returns
    -------
    dict

    Raises
    ------
    ainu_engine.errors.InputError
        Not a file, unreadable, pickled objects, or not of one of ``formats``.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", path=path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle/zip errors of many kinds
        raise InputError(f"cannot read the checkpoint: {_load_error(err)}", path=path) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") not in formats:
        raise InputError(
            "not an ainu-engine checkpoint",
            path=path,
            expected=" or ".join(formats),
            found=str(ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__),
        )
    return ckpt


def _load_error(err: Exception) -> str:
    """torch.load's error in one plain line. A file that holds pickled Python objects is refused
    as such: models are data, and nothing here suggests loading it unsafely."""
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

    Parameters
    ----------
    path : str or os.PathLike
        ``RUN/best.pt``.

    Returns
    -------
    (torch.nn.Module, dict)

    Raises
    ------
    ainu_engine.errors.InputError
        Not a file, not an ainu-engine checkpoint, no or an implausible model config, or
        weights that do not fit the model it describes.
    """
    ckpt = read_checkpoint(path)
    return _build_model(ckpt, path), ckpt


def _build_model(ckpt: dict, path):
    """The registry model a checkpoint dict describes, its weights loaded, in eval mode."""
    from .models import ModelConfig, create_model

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
    return model.eval()


def update_provenance(path: str | os.PathLike, **entries) -> None:
    """Add or replace provenance entries of a checkpoint in place (atomically), e.g. what it was
    trained on (``training_data=...``), before it is exported.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint.
    **entries
        Provenance entries (plain values).

    Raises
    ------
    ainu_engine.errors.InputError
        Not an ainu-engine checkpoint.
    """
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
    ONNX file's metadata, and what ``ainu-engine info RUN/best.pt`` shows).

    Parameters
    ----------
    ckpt : dict
        The checkpoint (:func:`read_checkpoint`).
    path : path, optional
        Its file.
    extra_provenance : dict, optional
        More provenance entries.

    Returns
    -------
    ModelInfo

    Raises
    ------
    ainu_engine.errors.InputError
        A checkpoint without what a model's description needs (classes, RenderSpec, input
        size, channel names, model config), or with a part that does not parse, naming the file.
    """
    need = ("classes", "render_spec", "input_size", "channel_names", "model_config")
    missing = [k for k in need if k not in ckpt]
    if missing:
        raise InputError(f"the checkpoint has no {', '.join(missing)}", path=path,
                         hint="checkpoints of ainu-engine train (RUN/best.pt) have them")
    try:
        return _info(ckpt, path, extra_provenance)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"the checkpoint's description does not parse: {err}"[:300],
                         path=path) from None  # fmt: skip


def _info(ckpt: dict, path, extra_provenance) -> ModelInfo:
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
        # the ONNX graph's second output: the features the out-of-distribution score uses
        embedding_name="embedding"
        if ((ckpt.get("training_stats") or {}).get("ood") or {}).get("features")
        else None,
    )


def save_generator(path: str | os.PathLike, generator, *, run: dict) -> None:
    """Write a trained generator (a model with ``.config``: TFill-Coarse or the U-Net) and the
    run that made it (:class:`~ainu_engine.training.nucleus_prediction.GeneratorConfig` as a
    dict), atomically, in :data:`GENERATOR_FORMAT`.

    Parameters
    ----------
    path : str or os.PathLike
        ``generator.pt``.
    generator : torch.nn.Module
        The generator.
    run : dict
        The run's configuration.
    """
    _write(path, GENERATOR_FORMAT, {"config": generator.config.to_dict(), "run": run}, generator)


def load_generator(path: str | os.PathLike) -> tuple[object, dict]:
    """Rebuild the generator of ``path`` (eval mode, CPU); returns ``(generator, checkpoint)``.

    Parameters
    ----------
    path : str or os.PathLike
        ``generator.pt``.

    Returns
    -------
    (torch.nn.Module, dict)

    Raises
    ------
    ainu_engine.errors.InputError
        Not a generator file, an unknown config, or weights that do not fit it.
    """
    from .models.tfill import TFillCoarse, TFillConfig
    from .models.unet import UNet, UNetConfig

    ckpt = read_checkpoint(path, formats=(GENERATOR_FORMAT,))
    conf = dict(ckpt.get("config") or {})
    kind = conf.pop("kind", "tfill")
    try:
        g = UNet(UNetConfig(**conf)) if kind == "unet" else TFillCoarse(TFillConfig(**conf))
        g.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"the generator's config or weights do not fit: {first}",
                         path=path) from err  # fmt: skip
    return g.eval(), ckpt


def save_training_state(path: str | os.PathLike, **state) -> None:
    """Write a run's resume state atomically: models' and optimisers' ``state_dict``s (tensors
    and plain values), the random state, the iteration, the history — anything that
    ``torch.load(..., weights_only=True)`` reads back (:func:`read_training_state`).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    **state
        The state's entries.
    """
    import torch

    with atomic_path(Path(path)) as tmp:
        torch.save({"format": TRAINING_STATE_FORMAT, **state}, tmp)


def read_training_state(path: str | os.PathLike) -> dict:
    """The resume state written by :func:`save_training_state`, on the CPU (``load_state_dict``
    of a model or an optimiser moves it to their device).

    Parameters
    ----------
    path : str or os.PathLike
        ``checkpoint.pt`` of a run.

    Returns
    -------
    dict

    Raises
    ------
    ainu_engine.errors.InputError
        Not a file, pickled objects, or not a training state.
    """
    return read_checkpoint(path, formats=(TRAINING_STATE_FORMAT,))


def save_widefield_model(
    path: str | os.PathLike, model, *, classes, patch: int | None, extra: dict | None = None
) -> None:
    """Write a SCENMED classifier (a registry model) with its classes and patch side (None for
    whole crops), atomically, in :data:`WIDEFIELD_FORMAT` (:func:`load_widefield_model`).

    Parameters
    ----------
    path : str or os.PathLike
        ``model.pt``.
    model : torch.nn.Module
        The registry model.
    classes : sequence of str
        Class names in logit order.
    patch : int or None
        The patch side (None: whole crops).
    extra : dict, optional
        More plain entries (the architecture, the run).
    """
    plain = {"model_config": model.config.to_dict(), "classes": list(classes), "patch": patch,
             **(extra or {})}  # fmt: skip
    _write(path, WIDEFIELD_FORMAT, plain, model)


def load_widefield_model(path: str | os.PathLike) -> tuple[object, dict]:
    """Rebuild the SCENMED classifier of ``path`` (eval mode, CPU): ``(model, checkpoint)``.

    Parameters
    ----------
    path : str or os.PathLike
        ``model.pt`` of ``widefield train``.

    Returns
    -------
    (torch.nn.Module, dict)

    Raises
    ------
    ainu_engine.errors.InputError
        Not a SCENMED model file, or a config or weights that do not fit.
    """
    ckpt = read_checkpoint(path, formats=(WIDEFIELD_FORMAT,))
    return _build_model(ckpt, path), ckpt
