"""Optional dependencies: one helper imports them where they are used, one message shape names
the extra that installs a missing one."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from .errors import MissingDependency

__all__ = ["EXTRAS", "install_hint", "require"]

#: What each extra of ``pyproject.toml`` is for (the message says which to install).
EXTRAS = {
    "cpu": "ONNX Runtime's CPU build and onnx",
    "cuda12": "ONNX Runtime's GPU build, CuPy and Numba-CUDA for CUDA 12",
    "cuda13": "ONNX Runtime's GPU build, CuPy and Numba-CUDA for CUDA 13",
    "tensorrt": "TensorRT",
    "train": "PyTorch, onnx, onnxscript, Captum, scikit-learn",
    "serve": "Starlette and Uvicorn",
    "distributed": "Ray Data",
    "napari": "napari with Qt",
    "bioimageio": "bioimageio.core",
    "bench": "the benchmarks' baselines",
}


def install_hint(extra: str) -> str:
    """The install command of an extra (torch's CPU build comes from ``constraints.txt``).

    Parameters
    ----------
    extra : str
        An extra of ``ainu-engine`` (:data:`EXTRAS`).

    Returns
    -------
    str

    Examples
    --------
    >>> install_hint("serve")
    'pip install "ainu-engine[serve]"'
    """
    pin = "-c constraints.txt " if extra == "train" else ""
    return f'pip install {pin}"ainu-engine[{extra}]"'


def require(
    module: str,
    extra: str,
    *,
    why: str = "",
    path: str | os.PathLike | None = None,
    error: type[MissingDependency] = MissingDependency,
) -> ModuleType:
    """Import ``module``, or raise one line naming it and the extra that installs it.

    Parameters
    ----------
    module : str
        The module to import (``"onnxruntime"``, ``"ray"``, ``"torch"``, ...).
    extra : str
        The extra of ``ainu-engine`` that installs it (:data:`EXTRAS`).
    why : str, optional
        What it is needed for (``"--executor ray"``).
    path : str or os.PathLike, optional
        The file the work was about, named in the message.
    error : type, optional
        The error class to raise (a subclass of :class:`~ainu_engine.errors.MissingDependency`
        or another :class:`~ainu_engine.errors.AinuError`).

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    ainu_engine.errors.MissingDependency
        ``module`` cannot be imported.

    Examples
    --------
    >>> require("json", "cpu").__name__
    'json'
    >>> require("no_such_module_xyz", "serve", why="ainu-engine serve")
    Traceback (most recent call last):
    ...
    ainu_engine.errors.MissingDependency: no_such_module_xyz is not installed; ainu-engine serve ...
    """
    if extra not in EXTRAS:
        raise ValueError(f"extra must be one of {', '.join(EXTRAS)}, got {extra!r}")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise error(
            f"{module} is not installed" + (f"; {why} needs it" if why else ""),
            path=path,
            hint=install_hint(extra),
        ) from err
