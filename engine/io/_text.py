"""Delimited-text localization tables: ThunderSTORM, ONI Nanoimager, Zeiss Elyra,
N-STORM/Insight3 text exports and generic CSV/TSV; and the ThunderSTORM CSV writer."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import FormatError, MissingColumnError, OutputError
from ._columns import (
    ColumnRole,
    length_nm,
    match_roles,
    needs_pixels,
    parse_name,
    require,
    resolve_roles,
)
from ._common import (
    build_localizations,
    column_f64,
    first_line,
    precision_from_xy,
    read_delimited,
    resolve_pixel_size,
    sniff_delimiter,
    split_header,
    table_extras,
)
from ._localizations import Localizations

# --------------------------------------------------------------------------------------
# header inspection (used by detection and by the readers)
# --------------------------------------------------------------------------------------


def comment_lines(head: bytes) -> tuple[int, bytes]:
    r"""The number of comment lines (starting with ``#``) before a text table's header, and the
    head without them (vLUME writes ``#LUME VERSION, 0.54`` and a line of its own first).

    Examples
    --------
    >>> comment_lines(b"#LUME VERSION, 0.54\n#2848 points\nframe,x,y\n1,2,3\n")
    (2, b'frame,x,y\n1,2,3\n')
    >>> comment_lines(b"x,y\n1,2\n")[0]
    0
    """
    n, rest = 0, head
    while rest.startswith(b"#") and b"\n" in rest:
        rest = rest.split(b"\n", 1)[1]
        n += 1
    return n, rest


def header_fields(head: bytes, *, encoding: str = "utf-8") -> tuple[list[str], str] | None:
    """Column names and delimiter of a text file's first line, or None if not text."""
    line0 = head.split(b"\n", 1)[0]
    if b"\x00" in line0 or not line0.strip():
        return None
    try:
        line = line0.rstrip(b"\r").decode(encoding)
    except UnicodeDecodeError:
        try:
            line = line0.rstrip(b"\r").decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            return None
    if not any(c.isalpha() for c in line):
        return None
    delim = sniff_delimiter(line)
    return split_header(line, delim), delim


_TS_COORD = re.compile(r"^[xy] \[(nm|px|um|µm)\]$")


def is_thunderstorm(fields: list[str]) -> bool:
    return any(_TS_COORD.match(f) for f in fields) and any(f in ("frame", "id") for f in fields)


def is_nanoimager(fields: list[str]) -> bool:
    return {"Channel", "Frame"} <= set(fields) and ("X (nm)" in fields or "X (pix)" in fields)


def is_elyra(fields: list[str]) -> bool:
    return "Position X [nm]" in fields and "First Frame" in fields


def is_nstorm_txt(fields: list[str]) -> bool:
    return "Channel Name" in fields and ("Xc" in fields or "X" in fields)


def is_generic_table(fields: list[str]) -> bool:
    roles = match_roles(fields)
    return "x" in roles and "y" in roles


# --------------------------------------------------------------------------------------
# shared: a pyarrow table + roles -> Localizations
# --------------------------------------------------------------------------------------


def generic_options(opts) -> dict:
    """The keywords of :func:`localizations_from_table` that a table of no fixed format (generic
    CSV, a foreign Parquet/Arrow table, a MATLAB v5 file) takes from the user's reading options:
    camera pixel, first frame number, unit of unitless columns, frames from time."""
    return {
        "camera_pixel_nm": opts.camera_pixel_nm,
        "frame_offset": opts.frame_base,
        "unitless": opts.unit or "assume-nm",
        "frame_from": opts.frame_from,
        "exposure_s": opts.exposure_s,
        "user_columns": opts.columns,
    }


def localizations_from_table(
    table,
    path: Path,
    fmt: str,
    *,
    roles: Mapping[str, ColumnRole],
    camera_pixel_nm,
    frame_offset: int,
    pixel_from_file=None,
    precision: np.ndarray | None = None,
    channel: np.ndarray | None = None,
    channel_names: Mapping[int, str] | None = None,
    used_extra: tuple[str, ...] = (),
    warnings: list[str] | None = None,
    unitless: str = "nm",
    frame_from: str | None = None,
    exposure_s: float | None = None,
    user_columns: Mapping[str, str] | None = None,
) -> Localizations:
    """Build Localizations from a table whose roles have been chosen.

    ``unitless`` says what a length column without a unit in its name is in: ``"nm"``
    (the format defines it), ``"assume-nm"`` (generic tables: nm, with a warning) or
    ``"px"``/``"um"``/``"m"`` (the user said so). ``frame_from`` names a time column (seconds)
    that frames are derived from: frame = round(t / ``exposure_s``).
    """
    warnings = list(warnings or [])
    names = table.column_names
    require(roles, path, names, fmt)
    roles = dict(roles)
    frame = None
    if frame_from is not None:
        frame = frames_from_time(table, path, frame_from, exposure_s)
        roles.pop("frame", None)
    elif "frame" in roles and not (user_columns and "frame" in user_columns):
        _drop_time_as_frame(table, roles, warnings)
    assumed = []
    for key in ("x", "y", "z", "precision"):
        r = roles.get(key)
        if r is not None and r.unit is None:
            unit = "nm" if unitless == "assume-nm" else unitless
            if unitless == "assume-nm" and key in ("x", "y"):
                assumed.append(repr(r.column))
            roles[key] = ColumnRole(r.role, r.column, unit)
    if assumed:
        warnings.append(
            f"column{'s' if len(assumed) > 1 else ''} {' and '.join(assumed)} name no unit; read "
            "as nm "
            "(pass --unit px and --camera-pixel-nm if they are in camera pixels)"
        )
    pixel, pixel_source, pw = resolve_pixel_size(
        path, from_file=pixel_from_file, user=camera_pixel_nm, needed=needs_pixels(roles)
    )
    warnings += pw

    def length(key, axis):
        r = roles.get(key)
        if r is None:
            return None
        return length_nm(
            column_f64(table, r.column), r, pixel=None if pixel is None else pixel[axis], path=path
        )

    x, y, z = length("x", 0), length("y", 1), length("z", 0)
    if precision is None and "precision" in roles:
        precision = length("precision", 0)
    if "frame" in roles:
        frame = column_f64(table, roles["frame"].column)
    if channel is None and "channel" in roles:
        channel = column_f64(table, roles["channel"].column)
    photons = column_f64(table, roles["photons"].column) if "photons" in roles else None
    used = [r.column for r in roles.values()] + list(used_extra)
    return build_localizations(
        path,
        fmt,
        x=x,
        y=y,
        z=z,
        frame=frame,
        frame_offset=frame_offset,
        channel=channel,
        photons=photons,
        precision=precision,
        extra=table_extras(table, used),
        pixel=pixel,
        pixel_source=pixel_source,
        channel_names=channel_names,
        warnings=warnings,
    )


#: column names that mean time rather than a frame number when their values are not whole
_TIME_NAMES = {"t", "time", "times", "timestamp", "ts", "tims"}


def frames_from_time(table, path: Path, column: str, exposure_s: float | None) -> np.ndarray:
    """Frame numbers from a time column in seconds: round(t / exposure_s)."""
    if exposure_s is None or not exposure_s > 0:
        raise FormatError(
            f"frames from the time column {column!r} need the exposure time",
            path=path,
            hint="pass --exposure-s SECONDS (exposure_s= in Python)",
        )
    if column not in table.column_names:
        raise MissingColumnError(
            f"time column {column!r} (--frame-from) is not in the file",
            path=path,
            found=f"columns {table.column_names[:20]}",
        )
    t = column_f64(table, column)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.rint(t / float(exposure_s))


def _drop_time_as_frame(table, roles: dict, warnings: list[str]) -> None:
    """A column named like time (``t``) with values that are not whole numbers is seconds, not
    frames: it is kept as an extra column and the frames are unknown (a warning says how to
    derive them), where reading it as frames would fail."""
    col = roles["frame"].column
    if parse_name(col)[0] not in _TIME_NAMES:
        return
    t = column_f64(table, col)
    finite = t[np.isfinite(t)]
    if finite.size and np.any(finite != np.rint(finite)):
        del roles["frame"]
        warnings.append(
            f"column {col!r} holds times, not frame numbers: no frames read "
            f"(--frame-from {col} --exposure-s SECONDS derives them)"
        )


def headerless_fields(head: bytes) -> tuple[list[str], str] | None:
    """The fields and delimiter of a text file whose first line is all numbers (a table
    without a header), else None."""
    line0 = head.split(b"\n", 1)[0].rstrip(b"\r")
    if b"\x00" in line0 or not line0.strip():
        return None
    try:
        line = line0.decode("ascii")
    except UnicodeDecodeError:
        return None
    delim = sniff_delimiter(line)
    fields = line.split() if delim == " " else line.split(delim)
    if len(fields) < 2:
        return None
    for f in fields:
        try:
            float(f.strip().strip('"'))
        except ValueError:
            return None
    return fields, delim


def _header(path: Path, head: bytes, check, what: str, *, encoding="utf-8"):
    parsed = header_fields(head, encoding=encoding)
    if parsed is None or not check(parsed[0]):
        found = first_line(head, encoding="latin-1")[:80] if parsed else "binary data"
        raise FormatError(
            f"not a {what} file: unexpected header",
            path=path,
            where="line 1",
            expected=f"the column names a {what} export starts with",
            found=repr(found),
        )
    return parsed


def _numeric_roles(roles) -> list[str]:
    return [r.column for r in roles.values()]


# --------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------


def read_thunderstorm(path: Path, head: bytes, opts) -> Localizations:
    """ThunderSTORM CSV: ``x [nm]``/``x [px]`` columns, 1-based frames."""
    names, delim = _header(path, head, is_thunderstorm, "ThunderSTORM CSV")
    roles = match_roles(names)
    table = read_delimited(
        path,
        names=names,
        numeric=_numeric_roles(roles),
        delimiter=delim,
        skip_lines=1 + opts.comment_lines,
        what="ThunderSTORM CSV",
    )
    return localizations_from_table(
        table,
        path,
        "thunderstorm",
        roles=roles,
        camera_pixel_nm=opts.camera_pixel_nm,
        frame_offset=1,
    )


def read_nanoimager(path: Path, head: bytes, opts) -> Localizations:
    """ONI Nanoimager (NimOS) CSV, old 7-column and current ~20-column exports."""
    names, delim = _header(path, head, is_nanoimager, "ONI Nanoimager CSV")
    roles = match_roles(names)
    for key in ("precision",):
        roles.pop(key, None)
    px_cols = [c for c in ("X precision (nm)", "Y precision (nm)") if c in names]
    numeric = _numeric_roles(roles) + px_cols
    table = read_delimited(
        path, names=names, numeric=numeric, delimiter=delim, skip_lines=1 + opts.comment_lines,
        what="ONI Nanoimager CSV"
    )
    precision = None
    if px_cols:
        cols = [column_f64(table, c) for c in px_cols]
        precision = precision_from_xy(cols[0], cols[1] if len(cols) > 1 else None)
    return localizations_from_table(
        table,
        path,
        "nanoimager",
        roles=roles,
        camera_pixel_nm=opts.camera_pixel_nm,
        frame_offset=0,
        precision=precision,
    )


def read_elyra(path: Path, head: bytes, opts) -> Localizations:
    """Zeiss Elyra (ZEN) localization table: tab-separated, latin-1, table ends at a NUL byte."""
    names, delim = _header(path, head, is_elyra, "Zeiss Elyra", encoding="latin-1")
    raw = path.read_bytes()
    nul = raw.find(b"\x00")
    data = raw if nul < 0 else raw[:nul]
    appendix = "" if nul < 0 else raw[nul + 1 :].decode("latin-1", errors="replace")
    roles = match_roles(names)
    table = read_delimited(
        path,
        names=names,
        numeric=_numeric_roles(roles),
        delimiter=delim,
        skip_lines=1 + opts.comment_lines,
        data=data,
        encoding="latin-1",
        what="Zeiss Elyra table",
    )
    pixel = None
    m = re.search(r"VoxelSizeX\s*:\s*([0-9.eE+-]+)\s*(µm|um|nm)", appendix)
    if m:
        factor = 1000.0 if m.group(2) in ("µm", "um") else 1.0
        px = float(m.group(1)) * factor
        my = re.search(r"VoxelSizeY\s*:\s*([0-9.eE+-]+)", appendix)
        pixel = (px, float(my.group(1)) * factor if my else px)
    return localizations_from_table(
        table,
        path,
        "elyra",
        roles=roles,
        camera_pixel_nm=opts.camera_pixel_nm,
        frame_offset=1,
        pixel_from_file=pixel,
    )


def read_nstorm_txt(path: Path, head: bytes, opts) -> Localizations:
    """Nikon N-STORM / Insight3 text export: drift-corrected Xc, Yc, Zc in nm, 1-based frames,
    a ``Channel Name`` per row (mapped to integer ids in sorted name order)."""
    names, delim = _header(path, head, is_nstorm_txt, "N-STORM text export")
    pick = {
        "x": ("Xc", "X"),
        "y": ("Yc", "Y"),
        "z": ("Zc", "Z"),
        "frame": ("Frame",),
        "photons": ("Photons",),
        "precision": ("Lateral Localization Accuracy",),
    }
    roles = {}
    for role, cands in pick.items():
        for c in cands:
            if c in names:
                roles[role] = ColumnRole(
                    role, c, "nm" if role in ("x", "y", "z", "precision") else None
                )
                break
    numeric = [r.column for r in roles.values()]
    table = read_delimited(
        path,
        names=names,
        numeric=numeric,
        delimiter=delim,
        skip_lines=1 + opts.comment_lines,
        what="N-STORM text export",
    )
    chan_names = table.column("Channel Name").cast("string").to_numpy(zero_copy_only=False)
    unique = sorted(set(chan_names.tolist()))
    ids = np.searchsorted(np.array(unique, dtype=object), chan_names).astype(np.int32)
    warnings = []
    n_rej = int(np.count_nonzero(chan_names == "Z Rejected"))
    if n_rej:
        warnings.append(f"{n_rej} localizations are in channel 'Z Rejected' (kept)")
    return localizations_from_table(
        table,
        path,
        "nstorm_txt",
        roles=roles,
        camera_pixel_nm=opts.camera_pixel_nm,
        frame_offset=1,
        channel=ids,
        channel_names=dict(enumerate(unique)),
        used_extra=("Channel Name",),
        warnings=warnings,
    )


def read_generic_csv(path: Path, head: bytes, opts) -> Localizations:
    """Any delimited table with a header naming x and y columns (or a ``columns`` mapping), or
    without a header (first line all numbers, or ``header=False``): columns by number from 1."""
    numbers = headerless_fields(head)
    headerless = opts.header is False or (opts.header is None and numbers is not None)
    parsed = header_fields(head) if not headerless or numbers is None else numbers
    if parsed is None:
        raise FormatError(
            "not a delimited text table",
            path=path,
            where="line 1",
            expected="a header line of column names" if not headerless else "delimited numbers",
            found="binary data",
        )
    names, delim = parsed
    if headerless:
        names = [str(k) for k in range(1, len(names) + 1)]
        given = {{"x_nm": "x", "y_nm": "y"}.get(k, k) for k in (opts.columns or {})}
        if not {"x", "y"} <= given:
            raise MissingColumnError(
                "table without a header: no column is named, so none is known to hold x and y",
                path=path,
                where="line 1",
                found=f"{len(names)} columns, first row {' '.join(parsed[0][:8])}",
                hint="say which column (counting from 1) holds each: --columns x=3,y=4 and "
                "--unit (columns=, unit= in Python)",
            )
    roles = resolve_roles(names, opts.columns, path)
    table = read_delimited(
        path,
        names=names,
        numeric=[r.column for r in roles.values()],
        delimiter=delim,
        skip_lines=opts.comment_lines + (0 if headerless else 1),
        what="CSV table",
    )
    return localizations_from_table(table, path, "csv", roles=roles, **generic_options(opts))


# --------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------


def write_thunderstorm(locs: Localizations, path: Path, opts, *, final_path=None) -> list[str]:
    """ThunderSTORM CSV in nm with 1-based frames; extras keep their names.

    Columns: ``id, frame, x [nm], y [nm], z [nm], intensity [photon], uncertainty [nm],
    channel`` (those present), then the extras. Floats are written in the shortest form
    that reads back to the same float32/float64 value.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if locs.n == 0:
        raise OutputError(
            "no localizations to write: a ThunderSTORM CSV with only a header "
            "reads back as an interrupted export",
            path=final_path or path,
            hint="write Parquet or Arrow to keep an empty table",
        )
    cols: dict[str, object] = {}
    ts_names = {
        "x_nm": "x [nm]",
        "y_nm": "y [nm]",
        "z_nm": "z [nm]",
        "photons": "intensity [photon]",
        "precision_nm": "uncertainty [nm]",
        "channel": "channel",
    }
    extras = dict(locs.extra)
    if "id" in extras:
        cols["id"] = extras.pop("id")
    else:
        cols["id"] = np.arange(1, locs.n + 1, dtype=np.int64)
    if locs.frame is not None:
        cols["frame"] = locs.frame + 1
    for name in ("x_nm", "y_nm", "z_nm", "photons", "precision_nm", "channel"):
        values = getattr(locs, name)
        if values is not None:
            cols[ts_names[name]] = values
    for name, values in extras.items():
        if name in cols or name in ("frame",):
            raise OutputError(
                f"extra column {name!r} clashes with a ThunderSTORM column",
                path=final_path or path,
                hint="rename it before writing",
            )
        cols[name] = values
    table = pa.table({k: pa.array(v) for k, v in cols.items()})
    pacsv.write_csv(table, str(path), write_options=pacsv.WriteOptions(quoting_style="needed"))
    return []
