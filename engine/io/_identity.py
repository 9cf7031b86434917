"""What a localization file is, by content: its bytes and the sidecars that change how it reads."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["file_sha256"]

#: Files beside a localization file that change what it reads as (pixel size sidecars, YAML).
_SIDECARS = (lambda p: p.with_name(p.name + ".json"), lambda p: p.with_suffix(".yaml"))


def file_sha256(path: str | os.PathLike, *, also: Iterable[Path] = ()) -> str:
    """SHA-256 of a file's bytes, of the sidecars beside it that change how it reads
    (``NAME.bin.json``, ``NAME.yaml``) and of the files in ``also`` (e.g. its ROI set).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    also : iterable of Path
        More files whose bytes count.

    Returns
    -------
    str
        The hex digest.
    """
    path = Path(path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    for side in (*(s(path) for s in _SIDECARS), *also):
        if side != path and side.is_file():
            h.update(b"\0sidecar\0" + side.read_bytes())
    return h.hexdigest()
