"""Model registry: ``@register_model`` and ``create_model(name, *, in_chans, num_classes, **kw)``.

Every model exposes ``forward_features(x) -> (N, C, h, w)`` and ``forward_head(f) -> logits``
so CAM, Grad-CAM and export never depend on layer names; ``model.config`` (a frozen
:class:`ModelConfig`) travels with the checkpoint and the ONNX file.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

__all__ = ["ModelConfig", "register_model", "create_model", "list_models", "load_weights"]

_REGISTRY: dict[str, Callable] = {}


@dataclass(frozen=True)
class ModelConfig:
    """What is needed to rebuild a model: registry name, input channels, classes, options.

    Attributes
    ----------
    name : str
        The registry name.
    in_chans : int
        Image channels.
    num_classes : int
        Classes.
    kwargs : dict
        The model's options.
    """

    name: str
    in_chans: int
    num_classes: int
    kwargs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return cls(
            name=d["name"],
            in_chans=int(d["in_chans"]),
            num_classes=int(d["num_classes"]),
            kwargs=dict(d.get("kwargs") or {}),
        )


def register_model(fn: Callable) -> Callable:
    """Register a model factory ``fn(*, in_chans, num_classes, **kw) -> nn.Module`` by name.

    Parameters
    ----------
    fn : callable
        The factory (its name is the registry's).

    Returns
    -------
    callable
        ``fn`` (a decorator).

    Raises
    ------
    ValueError
        A name registered twice.
    """
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names of the registered architectures.

    Returns
    -------
    list of str
    """
    return sorted(_REGISTRY)


def create_model(
    name: str,
    *,
    in_chans: int = 1,
    num_classes: int = 2,
    weights: str | os.PathLike | None = None,
    **kwargs,
):
    """Build a registered model.

    Parameters
    ----------
    name : str
        ``densenet121``, ``resnet18``, ``resnet34``, ``resnet50``, ``efficientnet_b0``,
        ``vgg_scenmed`` or ``small_cnn`` (see :func:`list_models`).
    in_chans : int, default 1
        Image channels (colours of the render).
    num_classes : int, default 2
    weights : path, optional
        A local ``state_dict`` file (pretrained weights cannot be downloaded here); a first
        convolution made for another number of channels is adapted (see :func:`load_weights`).
    **kwargs
        Architecture options (e.g. ``drop_rate``).

    Raises
    ------
    ValueError
        Unknown name (with close matches) or invalid sizes.

    Returns
    -------
    torch.nn.Module
        With ``.config`` (:class:`ModelConfig`).

    Examples
    --------
    >>> from ainu_engine.training.models import create_model
    >>> m = create_model("small_cnn", in_chans=2, num_classes=3)
    >>> m.config.name, m.config.num_classes
    ('small_cnn', 3)
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        raise ValueError(
            f"unknown model {name!r}; known: {', '.join(list_models())}"
            + (f" (did you mean {' or '.join(close)}?)" if close else "")
        )
    if not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be a positive integer, got {in_chans!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    model = _REGISTRY[name](in_chans=in_chans, num_classes=num_classes, **kwargs)
    model.config = ModelConfig(name, in_chans, num_classes, dict(kwargs))
    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model, path: str | os.PathLike, *, first_conv: str | None = None) -> None:
    """Load a local ``state_dict`` into ``model``, strictly.

    When only the input-channel dimension of the first convolution differs (e.g. ImageNet
    RGB weights for a 1- or 2-channel render), its kernel is adapted as timm does: summed
    over RGB for 1 channel, else repeated over channels and rescaled by 3/in_chans.
    Any other missing, unexpected or mis-shaped tensor is an error naming it.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    path : str or os.PathLike
        The ``state_dict`` file (read with ``weights_only=True``).
    first_conv : str, optional
        The first convolution's weight name (default: found).

    Raises
    ------
    ValueError
        A missing, unexpected or mis-shaped tensor (the message names the file and the
        tensor).
    """
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{os.fspath(path)}: state_dict does not fit {model.config.name}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for key, tensor in list(state.items()):
        want = own[key].shape
        if tensor.shape == want:
            continue
        if tensor.ndim == 4 and tensor.shape[0] == want[0] and tensor.shape[2:] == want[2:]:
            c_in, c_want = tensor.shape[1], want[1]
            if c_want == 1:
                state[key] = tensor.sum(dim=1, keepdim=True)
            else:
                reps = -(-c_want // c_in)
                state[key] = tensor.repeat(1, reps, 1, 1)[:, :c_want] * (c_in / c_want)
            continue
        raise ValueError(
            f"{os.fspath(path)}: tensor {key!r} has shape {tuple(tensor.shape)}, "
            f"the model needs {tuple(want)}"
        )
    model.load_state_dict(state, strict=True)
