"""Options and input expansion shared by the widefield commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PixelUmOpt = Annotated[
    float | None,
    typer.Option(
        "--pixel-um",
        min=0.0,
        help="Pixel size in µm, for files that state none (or to override them).",
    ),
]

_IMAGE = (".tif", ".tiff", ".h5", ".hdf5")


def expand_fields(inputs: list[str]) -> list[dict]:
    """Files, folders (their TIFF/HDF5 files, sorted) and manifests (.csv: path, label,
    group) → dicts with path, label, group."""
    from ...errors import InputError
    from ...scenmed import read_manifest

    out: list[dict] = []
    for s in inputs:
        p = Path(s)
        if p.suffix.lower() == ".csv":
            out.extend(read_manifest(p))
        elif p.is_dir():
            files = sorted(q for q in p.rglob("*") if q.suffix.lower() in _IMAGE)
            if not files:
                raise InputError("no .tif/.h5 fields in this folder", path=p)
            out.extend({"path": str(q), "label": "", "group": ""} for q in files)
        else:
            out.append({"path": str(p), "label": "", "group": ""})
    return out
