"""rapidSTORM text output: an XML description of the fields on line 1 (after ``# ``), then
space-separated rows. Track files nest a ``<localizations>`` element: each row holds the
track's values, a count, then that many child localizations."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ._common import build_localizations, precision_from_xy, read_delimited, resolve_pixel_size
from ._localizations import Localizations

#: rapidSTORM field identifiers -> engine names (roles, or extra column names).
_IDENTIFIERS = {
    "Position-0-0": "x",
    "Position-1-0": "y",
    "Position-2-0": "z",
    "Position-0-0-uncertainty": "precision_x",
    "Position-1-0-uncertainty": "precision_y",
    "ImageNumber-0-0": "frame",
    "Amplitude-0-0": "amplitude",
    "FitResidues-0-0": "fit_residues",
    "LocalBackground-0-0": "local_background",
    "PSFWidth-0-0": "psf_width_x",
    "PSFWidth-1-0": "psf_width_y",
    "TwoKernelImprovement-0-0": "two_kernel_improvement",
}
_LENGTH_UNITS = {"nanometer": 1.0, "micrometer": 1000.0, "meter": 1e9}


def is_rapidstorm(head: bytes) -> bool:
    return head.lstrip().startswith(b"# <localizations")


def _fields(elem) -> list[tuple[str, str]]:
    return [(f.get("identifier", ""), f.get("unit", "")) for f in elem.findall("field")]


def _name(identifier: str) -> str:
    return _IDENTIFIERS.get(identifier, identifier.lower().replace("-", "_"))


def _parse_header(path: Path, head: bytes):
    line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()
    if not line.startswith("# <localizations"):
        raise FormatError(
            "not a rapidSTORM file",
            path=path,
            where="line 1",
            expected="'# <localizations ...>' XML header",
            found=repr(line[:40]),
        )
    try:
        root = ET.fromstring(line[1:].strip())
    except ET.ParseError as err:
        raise FormatError(
            "malformed XML header", path=path, where="line 1", found=str(err)
        ) from err
    top = _fields(root)
    nested = root.find("localizations")
    child = _fields(nested) if nested is not None else None
    return top, child


def _to_nm(values: np.ndarray, unit: str, path: Path, pixel) -> np.ndarray:
    if unit in _LENGTH_UNITS:
        return values * _LENGTH_UNITS[unit]
    if unit in ("pixel", "px"):
        return values * pixel
    raise FormatError(
        "position unit not understood",
        path=path,
        where="line 1",
        expected="nanometer, micrometer or pixel",
        found=repr(unit),
    )


def _assemble(
    path: Path, fields, columns: dict[str, np.ndarray], opts, *, extra_cols=None, details=None
) -> Localizations:
    units = {_name(i): u for i, u in fields}
    for role in ("x", "y"):
        if role not in columns:
            raise FormatError(
                f"no {role} position field",
                path=path,
                where="line 1",
                expected=f"Position-{0 if role == 'x' else 1}-0",
                found=str([i for i, _ in fields]),
            )
    in_px = any(units.get(k) in ("pixel", "px") for k in ("x", "y"))
    pixel, src, warnings = resolve_pixel_size(path, user=opts.camera_pixel_nm, needed=in_px)
    px = pixel[0] if pixel else None
    x = _to_nm(columns.pop("x"), units["x"], path, px)
    y = _to_nm(columns.pop("y"), units["y"], path, px)
    z = _to_nm(columns.pop("z"), units["z"], path, px) if "z" in columns else None
    pxx = columns.pop("precision_x", None)
    pxy = columns.pop("precision_y", None)
    prec = precision_from_xy(
        None if pxx is None else _to_nm(pxx, units["precision_x"], path, px),
        None if pxy is None else _to_nm(pxy, units["precision_y"], path, px),
    )
    frame = columns.pop("frame", None)
    extra = dict(columns)
    extra.update(extra_cols or {})
    return build_localizations(
        path,
        "rapidstorm",
        x=x,
        y=y,
        z=z,
        frame=frame,
        frame_offset=0,
        precision=prec,
        extra=extra,
        pixel=pixel,
        pixel_source=src,
        warnings=warnings,
        details=details,
    )


def read_rapidstorm(path: Path, head: bytes, opts) -> Localizations:
    """Plain and track files. Track files give the child localizations (the raw
    detections), with a ``track`` column (0-based row of the track) and the number of
    tracks in the details."""
    top, child = _parse_header(path, head)
    if child is None:
        names = [_name(i) for i, _ in top]
        table = read_delimited(
            path, names=names, numeric=names, delimiter=" ", skip_lines=1, what="rapidSTORM file"
        )
        cols = {n: table.column(n).to_numpy().astype(np.float64) for n in names}
        return _assemble(path, top, cols, opts)
    return _read_tracks(path, top, child, opts)


def _read_tracks(path: Path, top, child, opts) -> Localizations:
    n_top, n_child = len(top), len(child)
    rows_top, rows_child, track_ids = [], [], []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            values = np.array(line.split(), dtype=np.float64)
        except ValueError as err:
            bad = next(t for t in line.split() if not _is_float(t))
            raise FormatError(
                "non-numeric value",
                path=path,
                where=f"line {lineno}",
                expected="a number",
                found=repr(bad[:40]),
            ) from err
        if len(values) < n_top + 1:
            raise FormatError(
                "track row too short",
                path=path,
                where=f"line {lineno}",
                expected=f"at least {n_top + 1} values",
                found=str(len(values)),
            )
        count = int(values[n_top])
        if len(values) != n_top + 1 + count * n_child:
            raise FormatError(
                "track row length does not match its count",
                path=path,
                where=f"line {lineno}",
                expected=f"{n_top + 1 + count * n_child} values for {count} localizations",
                found=str(len(values)),
            )
        rows_top.append(values[:n_top])
        rows_child.append(values[n_top + 1 :].reshape(count, n_child))
        track_ids.append(np.full(count, len(rows_top) - 1, dtype=np.int32))
    if not rows_top:
        raise FormatError("rapidSTORM track file has a header but no rows", path=path)
    tops = np.vstack(rows_top)
    children = np.vstack(rows_child) if rows_child else np.zeros((0, n_child))
    names = [_name(i) for i, _ in child]
    cols = {n: children[:, j] for j, n in enumerate(names)}
    top_names = [_name(i) for i, _ in top]
    details = {"n_tracks": int(len(tops))}
    for n in ("x", "y", "frame"):
        if n in top_names:
            v = tops[:, top_names.index(n)]
            details[f"track_{n}_range"] = [float(v.min()), float(v.max())]
    return _assemble(
        path, child, cols, opts, extra_cols={"track": np.concatenate(track_ids)}, details=details
    )


def _is_float(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False
