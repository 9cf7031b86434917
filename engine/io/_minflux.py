"""MINFLUX exports: Abberior Imspector's native ``.npy`` (a structured array, one record per
localization event with its iterations nested in ``itr``, positions in metres), MATLAB structs
with a position matrix ``pos`` (v5 and v7.3; Ostersehlt et al. 2022's conversions), and a
``.zip`` that holds exactly one readable table (how pyMINFLUX ships its test data).

Imspector's ``.npy``: the position of an event is that of its last iteration
(``itr["loc"][:, -1]``, metres → nm); rows with ``vld`` false are dropped (counted in a warning);
``tid`` (the trace: one emitter's events) is kept as ``trace_id``, ``tim`` (seconds) as
``time_s`` — frames only from ``frame_from="tim"`` with ``exposure_s``; the last iteration's
``efo``, ``cfr``, ``dcr``, ``eco`` and ``fbg`` are kept as columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FormatError
from ._common import build_localizations
from ._localizations import Localizations

NPY_MAGIC = b"\x93NUMPY"
#: the last iteration's fields kept as columns (where the export has them)
KEPT = ("efo", "cfr", "dcr", "eco", "fbg")


def npy_dtype(path: Path):
    """The dtype of a ``.npy`` file, read from its header only (no data, no pickle)."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                  else np.lib.format.read_array_header_2_0)  # fmt: skip
        _, _, dtype = reader(fh)
    return dtype


def is_minflux_npy(path: Path) -> bool:
    """Whether ``path`` is a ``.npy`` structured array with Imspector's MINFLUX fields."""
    try:
        dt = npy_dtype(path)
    except Exception:  # noqa: BLE001 - not a readable .npy header
        return False
    return bool(dt.names) and "itr" in dt.names and "loc" in (dt["itr"].base.names or ())


def read_minflux_npy(path: Path, head: bytes, opts) -> Localizations:
    """Abberior Imspector's native MINFLUX ``.npy`` (see the module)."""
    if not is_minflux_npy(path):
        found = None
        try:
            found = npy_dtype(path).names
        except Exception:  # noqa: BLE001
            pass
        raise FormatError(
            "not an Abberior MINFLUX .npy export",
            path=path,
            expected="a structured array with an itr field holding loc (Imspector's export)",
            found=f"fields {list(found)}" if found else "no structured array",
        )
    a = np.load(path, allow_pickle=False)
    warnings = []
    if "vld" in a.dtype.names:
        valid = a["vld"].astype(bool)
        if not valid.all():
            warnings.append(f"{int((~valid).sum())} events not valid (vld false) left out")
        a = a[valid]
    last = a["itr"][:, -1] if a["itr"].ndim == 2 else a["itr"]
    loc = np.asarray(last["loc"], np.float64) * 1e9  # metres -> nm
    z = loc[:, 2] if loc.shape[1] > 2 and np.any(loc[:, 2] != 0) else None
    extra = {}
    if "tid" in a.dtype.names:
        extra["trace_id"] = a["tid"].astype(np.int64)
    if "tim" in a.dtype.names:
        extra["time_s"] = a["tim"].astype(np.float64)
    for k in KEPT:
        if k in (last.dtype.names or ()):
            extra[k] = np.asarray(last[k], np.float64)
    frame = _frames_from_time(path, extra, opts, names={"tim": "time_s"})
    return build_localizations(
        path, "minflux_npy", x=loc[:, 0], y=loc[:, 1], z=z, frame=frame, frame_offset=0,
        extra=extra, warnings=warnings,
    )  # fmt: skip


def _frames_from_time(path: Path, extra: dict, opts, *, names: dict) -> np.ndarray | None:
    """Frames from a time column where ``frame_from`` names it (by the file's name for it, or
    the engine's ``time_s``): :func:`ainu_engine.io._text.frames_from_time`."""
    if not opts.frame_from:
        return None
    import pyarrow as pa

    from ._text import frames_from_time

    table = pa.table({k: np.asarray(v, np.float64) for k, v in extra.items()})
    return frames_from_time(table, path, names.get(opts.frame_from, opts.frame_from),
                            opts.exposure_s)  # fmt: skip


def position_vectors(fields: dict, path: Path, where: str) -> tuple[dict, list[str]]:
    """x, y (and z) of a struct's position matrix (``pos``, ``loc`` or ``xyz``: N x 2|3 or
    2|3 x N; MATLAB v7.3 stores it transposed), with ``id`` → ``trace_id`` and ``t`` →
    ``time_s``; {} when the struct has none. Positions whose largest magnitude is below 1e-2
    are in metres (MINFLUX's raw unit) and converted to nm — said in a warning; else nm."""
    for name in ("pos", "loc", "xyz"):
        m = fields.get(name)
        if m is None or not hasattr(m, "ndim"):
            continue
        m = np.asarray(m, np.float64)
        if m.ndim != 2:
            continue
        if m.shape[0] in (2, 3):  # 2|3 x N: MATLAB's arrays as v7.3 stores them
            m = m.T
        elif m.shape[1] not in (2, 3):
            continue
        warnings = []
        finite = m[np.isfinite(m)]
        if finite.size and np.abs(finite).max() < 1e-2:
            m = m * 1e9
            warnings.append(f"{where}.{name} is in metres (all values below 0.01): converted to nm")
        out = {"x": m[:, 0], "y": m[:, 1]}
        if m.shape[1] > 2 and np.any(m[:, 2] != 0):
            out["z"] = m[:, 2]
        n = len(m)
        for src, dst in (("id", "trace_id"), ("tid", "trace_id"), ("t", "time_s"),
                         ("tim", "time_s")):  # fmt: skip
            v = fields.get(src)
            if v is not None and hasattr(v, "size") and np.asarray(v).size == n:
                out[dst] = np.asarray(v, np.float64).reshape(-1)
        for k, v in fields.items():
            if k not in out and hasattr(v, "size") and np.asarray(v).size == n and k not in (
                name, "id", "tid", "t", "tim"
            ):
                out[k] = np.asarray(v, np.float64).reshape(-1)
        return out, warnings
    return {}, []


def position_struct(vectors: dict, path: Path, fmt: str, opts, warnings: list[str]):
    """Localizations of :func:`position_vectors`' columns (nm)."""
    extra = {k: v for k, v in vectors.items() if k not in ("x", "y", "z")}
    if "trace_id" in extra:
        extra["trace_id"] = extra["trace_id"].astype(np.int64)
    frame = _frames_from_time(path, extra, opts, names={"t": "time_s", "tim": "time_s"})
    return build_localizations(
        path, fmt, x=vectors["x"], y=vectors["y"], z=vectors.get("z"), frame=frame,
        frame_offset=0, extra=extra, warnings=warnings,
    )  # fmt: skip
