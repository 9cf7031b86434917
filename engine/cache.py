"""Where ainu-engine keeps caches: ``$AINU_CACHE_DIR``, else ``$XDG_CACHE_HOME/ainu-engine``
(``~/.cache/ainu-engine``). Renders, TensorRT engines and timing caches live in subfolders."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root", "cache_dir"]


def cache_root() -> Path:
    """The cache folder (not created).

    Returns
    -------
    Path
    """
    base = os.environ.get("AINU_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "ainu-engine"


def cache_dir(*parts: str) -> str:
    """``cache_root()`` joined with ``parts``, created.

    Parameters
    ----------
    *parts : str
        Sub-folders.

    Returns
    -------
    str
    """
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return os.fspath(path)
