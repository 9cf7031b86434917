"""MATLAB v5 MAT-files (``save -v7`` and older; not v7.3, which is HDF5 and read as SMAP).

Localizations are numeric vectors of one length: top-level variables (``x``, ``y``, ...) or the
fields of a struct (SMAP's localization-spread-function data: ``data.x``, ``data.y`` in nm,
``data.t`` in seconds; an ``_sml.mat`` saved as v5: ``saveloc.loc.xnm``...). The struct whose
fields name x and y is found by the same column names as text tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FormatError, MissingColumnError
from ._columns import resolve_roles
from ._localizations import Localizations

#: the 116-byte text header of a v5 MAT-file starts with this
MAT5_MAGIC = b"MATLAB 5.0 MAT-file"
#: structs nested deeper than this are not searched
MAX_DEPTH = 4
VERSIONS = (
    "MATLAB v5 (save -v7 or older: variables or struct fields x, y, ...) and SMAP _sml.mat v7.3"
)


def is_mat5(head: bytes) -> bool:
    return head.startswith(MAT5_MAGIC) and len(head) >= 128 and head[126:128] in (b"IM", b"MI")


def _vectors(d: dict) -> dict[str, np.ndarray]:
    """The numeric vectors (1-D, or N x 1) of a struct or workspace, by name."""
    out = {}
    for k, v in d.items():
        if k.startswith("__") or isinstance(v, dict):
            continue
        a = np.asarray(v)
        if a.dtype.kind in "biuf" and a.ndim <= 2 and (a.ndim < 2 or 1 in a.shape):
            out[str(k)] = a.reshape(-1)
    return out


def _candidates(d: dict, prefix: str = "", depth: int = 0):
    """(name, vectors) of the workspace and every struct in it, outermost first."""
    yield prefix or "the workspace", _vectors(d)
    if depth >= MAX_DEPTH:
        return
    for k, v in d.items():
        if isinstance(v, dict) and not str(k).startswith("__"):
            yield from _candidates(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)


def read_mat5(path: Path, head: bytes, opts) -> Localizations:
    """A MATLAB v5 MAT-file: the first struct (or the workspace) whose numeric vectors name x
    and y (or those ``opts.columns`` names)."""
    import pyarrow as pa
    import scipy.io

    from ._text import localizations_from_table

    if not is_mat5(head):
        raise FormatError(
            "not a MATLAB v5 MAT-file",
            path=path,
            expected=f"the header {MAT5_MAGIC.decode()}",
            found=repr(head[:20]),
            hint=f"supported MATLAB files: {VERSIONS}",
        )
    try:
        ws = scipy.io.loadmat(str(path), simplify_cells=True)
    except (ValueError, TypeError, OSError, EOFError, KeyError, IndexError, OverflowError) as err:
        raise FormatError(
            f"cannot read the MATLAB v5 file: {type(err).__name__}: {str(err)[:100]}",
            path=path,
            hint=f"supported MATLAB files: {VERSIONS}",
        ) from err
    seen = []
    for where, vec in _candidates(ws):
        if not vec:
            continue
        seen.append(f"{where}: {', '.join(sorted(vec)[:8])}")
        roles = resolve_roles(list(vec), None, path)
        if opts.columns and all(c in vec for c in opts.columns.values()):
            roles = resolve_roles(list(vec), opts.columns, path)
        if "x" not in roles or "y" not in roles:
            continue
        n, ny = len(vec[roles["x"].column]), len(vec[roles["y"].column])
        if ny != n:
            raise FormatError(
                f"{where}: x and y have different lengths", path=path, found=f"{n} and {ny}"
            )
        cols = {k: v for k, v in vec.items() if len(v) == n}
        table = pa.table({k: np.asarray(v, np.float64) for k, v in cols.items()})
        return localizations_from_table(
            table,
            path,
            "mat5",
            roles={k: r for k, r in roles.items() if r.column in cols},
            camera_pixel_nm=opts.camera_pixel_nm,
            frame_offset=opts.frame_base,
            unitless=opts.unit or "assume-nm",
            frame_from=opts.frame_from,
            exposure_s=opts.exposure_s,
            user_columns=opts.columns,
        )
    raise MissingColumnError(
        "MATLAB v5 file without x and y vectors",
        path=path,
        found="; ".join(seen[:4]) or "no numeric vectors",
        hint="name them with --columns x=NAME,y=NAME (columns= in Python)",
    )
