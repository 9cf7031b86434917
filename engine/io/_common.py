"""Helpers shared by the readers: path checks, delimited text, nm conversion, row checks."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from .._validate import check_pixel_size_nm
from ..errors import FormatError, InputError, PixelSizeError
from ._localizations import Localizations, Metadata

PathLike = str | os.PathLike


def check_input_path(path: PathLike) -> Path:
    """Return ``path`` as a Path after checking that it is a readable, non-empty file."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", path=p, hint="check the path")
    if p.is_dir():
        raise InputError(
            "is a directory, not a localization file",
            path=p,
            hint="give the files inside it, or a glob such as DIR/*.csv",
        )
    if not p.is_file():
        raise InputError("is not a regular file", path=p)
    try:
        with open(p, "rb") as fh:
            first = fh.read(1)
    except OSError as err:
        raise InputError(
            f"cannot be read: {err.strerror or err}", path=p, hint="check its permissions"
        ) from err
    if not first:
        raise InputError("is empty (0 bytes)", path=p, hint="the export or copy may have failed")
    return p


def read_head(path: Path, n: int = 8192) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def first_line(data: bytes, *, encoding: str = "utf-8") -> str:
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    return line.decode(encoding, errors="replace")


def split_header(line: str, delimiter: str) -> list[str]:
    """Split a header line into column names.

    Handles ordinary CSV quoting, and headers that were re-saved as one quoted field
    (``"id,""frame"",""x [nm]""..."``, as ThunderSTORM files passed through a
    spreadsheet are): such a line is split on the delimiter and stripped of quotes.
    """
    import csv

    try:
        fields = next(csv.reader([line], delimiter=delimiter))
    except csv.Error:  # a stray CR or NUL in the line: the plain split still names the columns
        fields = line.split(delimiter)
    if len(fields) == 1 and delimiter in fields[0]:
        fields = fields[0].split(delimiter)
    return [f.strip().strip('"').strip() for f in fields]


def sniff_delimiter(line: str) -> str:
    if "\t" in line:
        return "\t"
    if "," in line:
        return ","
    if ";" in line:
        return ";"
    return " "


def read_delimited(
    path: Path,
    *,
    names: list[str],
    numeric: Iterable[str],
    delimiter: str,
    skip_lines: int,
    data: bytes | None = None,
    encoding: str = "utf8",
    what: str = "table",
):
    """Read a delimited text table with pyarrow's multithreaded CSV reader.

    ``names`` are the column names (the header was parsed by the caller and is skipped
    with ``skip_lines``). Columns in ``numeric`` are parsed as float64; others are
    inferred. On a parse or conversion error the offending line is located and reported.
    Raises :class:`FormatError` when no data rows follow the header.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    numeric = [n for n in numeric if n in names]
    if encoding.lower().replace("-", "") not in ("utf8", "ascii"):
        # decode here, not in pyarrow: its transcoding stream calls the Python codec from an
        # I/O thread, and a malformed file crashed the process there (found by fuzzing)
        raw = data if data is not None else Path(path).read_bytes()
        data, encoding = raw.decode(encoding, errors="replace").encode("utf-8"), "utf8"
    # bytes in hand go in as an Arrow buffer, not a Python file object: pyarrow would call the
    # object's read() from its I/O threads, and a mutated Zeiss Elyra table (the one reader that
    # passes bytes) crashed a fuzz run in a native thread there
    source = pa.BufferReader(pa.py_buffer(data)) if data is not None else str(path)
    size = len(data) if data is not None else Path(path).stat().st_size
    read_opts = pacsv.ReadOptions(
        column_names=names,
        skip_rows=skip_lines,
        encoding=encoding,
        block_size=1 << 24,
        use_threads=size > 1 << 24,  # one block: a thread pool adds nothing but risk
    )
    parse_opts = pacsv.ParseOptions(delimiter=delimiter, ignore_empty_lines=True)
    conv_opts = pacsv.ConvertOptions(
        column_types={n: pa.float64() for n in numeric},
        null_values=["", "NaN", "nan", "NA", "null", "NULL"],
        strings_can_be_null=False,
    )
    try:
        table = pacsv.read_csv(
            source, read_options=read_opts, parse_options=parse_opts, convert_options=conv_opts
        )
    except pa.ArrowInvalid as err:
        raise _locate_error(
            path, data, names, numeric, delimiter, skip_lines, encoding, err
        ) from err
    if table.num_rows == 0:
        raise FormatError(
            f"{what} has a header but no localization rows",
            path=path,
            hint="the export may have been interrupted",
        )
    return table


def _locate_error(path, data, names, numeric, delimiter, skip_lines, encoding, err) -> FormatError:
    """Find the first bad line of a delimited file to turn a pyarrow error into one message."""
    raw = data if data is not None else Path(path).read_bytes()
    lines = raw.decode(encoding, errors="replace").splitlines()
    num_idx = [names.index(n) for n in numeric]
    for lineno, line in enumerate(lines[skip_lines:], start=skip_lines + 1):
        if not line.strip():
            continue
        fields = line.split(delimiter) if delimiter != " " else line.split()
        if len(fields) != len(names):
            return FormatError(
                "wrong number of fields",
                path=path,
                where=f"line {lineno}",
                expected=f"{len(names)} ({delimiter!r}-separated)",
                found=f"{len(fields)}",
            )
        for i in num_idx:
            value = fields[i].strip().strip('"')
            if value in ("", "NaN", "nan", "NA", "null", "NULL"):
                continue
            try:
                float(value)
            except ValueError:
                return FormatError(
                    f"non-numeric value in column {names[i]!r}",
                    path=path,
                    where=f"line {lineno}",
                    expected="a number",
                    found=repr(value[:40]),
                )
    return FormatError(f"cannot parse the table: {str(err).splitlines()[0]}", path=path)


def column_f64(table, name: str) -> np.ndarray:
    """A float64 numpy copy of a pyarrow column (nulls become NaN)."""
    col = table.column(name)
    import pyarrow.compute as pc

    if col.null_count:
        col = pc.fill_null(col.cast("float64"), float("nan"))
    return col.to_numpy().astype(np.float64, copy=False)


def table_extras(table, used: Iterable[str]) -> dict[str, np.ndarray]:
    """All columns of a pyarrow table not in ``used``, as numpy arrays, in file order."""
    used = set(used)
    out = {}
    for name in table.column_names:
        if name in used:
            continue
        col = table.column(name)
        out[name] = col.to_numpy(zero_copy_only=False)
    return out


def resolve_pixel_size(
    path: Path,
    *,
    from_file=None,
    user: tuple[float, float] | None,
    needed: bool,
    file_what: str = "the file's metadata",
) -> tuple[tuple[float, float] | None, str | None, list[str]]:
    """Decide the camera pixel size of a file: its own metadata first, else the user's.

    Returns ``(pixel_nm_pair_or_None, source, warnings)``. Raises :class:`PixelSizeError`
    when ``needed`` (coordinates are in pixels) and neither is known, or when the file
    records an invalid size.
    """
    warnings: list[str] = []
    if from_file is not None:
        try:
            px = check_pixel_size_nm(from_file, name="camera pixel size")
        except (ValueError, TypeError) as err:
            raise PixelSizeError(
                f"{file_what} records an invalid camera pixel size",
                path=path,
                expected="a size between 1 and 10000 nm",
                found=repr(from_file),
                hint="fix the metadata or convert the file yourself",
            ) from err
        if needed and user is not None and not np.allclose(user, px):
            warnings.append(
                f"{file_what} gives a camera pixel of {fmt_px(px)} nm; "
                f"--camera-pixel-nm {fmt_px(user)} was not used"
            )
        return px, "file", warnings
    if user is not None:
        return (user, "user", warnings) if needed else (None, None, warnings)
    if needed:
        raise PixelSizeError(
            "coordinates are in camera pixels and the file records no pixel size",
            path=path,
            hint="pass --camera-pixel-nm (camera_pixel_nm= in Python), e.g. 160 for N-STORM, 117 "
            "for ONI",
        )
    return None, None, warnings


def fmt_px(px) -> str:
    return f"{px[0]:g}" if px[0] == px[1] else f"{px[0]:g}x{px[1]:g}"


def build_localizations(
    path: Path,
    fmt: str,
    *,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray | None = None,
    frame: np.ndarray | None = None,
    frame_offset: int = 0,
    channel: np.ndarray | None = None,
    photons: np.ndarray | None = None,
    precision: np.ndarray | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
    pixel: tuple[float, float] | None = None,
    pixel_source: str | None = None,
    channel_names: Mapping[int, str] | None = None,
    warnings: Iterable[str] = (),
    details: Mapping[str, object] | None = None,
) -> Localizations:
    """Assemble a :class:`Localizations` from float columns already in nm.

    Coordinates are cast to float32 (the table's storage) first, so that a value finite in
    float64 but beyond float32 (|x| > 3.4e38) counts as infinite. Rows whose x, y (or z,
    frame, channel) are then NaN or infinite are dropped, and the count is recorded as a
    warning. Frames are made 0-based by subtracting ``frame_offset``.
    """
    warnings = list(warnings)
    n = len(x)
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 becomes inf, then dropped
        x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
        z = None if z is None else np.asarray(z, np.float32)
    ok = np.isfinite(x) & np.isfinite(y)
    if z is not None:
        ok &= np.isfinite(z)
    for col in (frame, channel):
        if col is not None and np.issubdtype(np.asarray(col).dtype, np.floating):
            ok &= np.isfinite(col)
    dropped = int(n - np.count_nonzero(ok))
    if dropped:
        warnings.append(
            f"dropped {dropped} of {n} rows whose coordinates, frame or channel are NaN or "
            "infinite (or beyond float32)"
        )

        def keep(a):
            return None if a is None else np.asarray(a)[ok]

        x, y, z, frame, channel, photons, precision = map(
            keep, (x, y, z, frame, channel, photons, precision)
        )
        extra = {k: np.asarray(v)[ok] for k, v in (extra or {}).items()}
    if extra:  # a source column named like a core column but not used as one keeps its values
        from ._localizations import CORE_COLUMNS

        extra = {(f"{k}_source" if k in CORE_COLUMNS else k): v for k, v in extra.items()}
    if frame is not None:
        frame = _as_int(path, frame, "frame") - frame_offset
    if channel is not None:
        channel = _as_int(path, channel, "channel")
    meta = Metadata(
        source_format=fmt,
        source_path=str(path),
        camera_pixel_nm=pixel,
        camera_pixel_source=pixel_source,
        frame_offset=frame_offset,
        channel_names=dict(channel_names or {}),
        warnings=tuple(warnings),
        details=dict(details or {}),
    )
    return Localizations(
        x,
        y,
        z_nm=z,
        frame=frame,
        channel=channel,
        photons=photons,
        precision_nm=precision,
        extra=extra,
        meta=meta,
    )


#: Whole-number columns and the values they may hold: channels are stored as int32; frames as
#: int64, and a float frame past 2**53 is no longer a whole number a float can tell apart.
INT_RANGES = {"channel": (0, 2**31 - 1), "frame": (-(2**53), 2**53)}


def _as_int(path: Path, values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    lo, hi = INT_RANGES.get(name, (-(2**63), 2**63 - 1))
    if arr.size:
        with np.errstate(invalid="ignore"):
            out_of_range = np.flatnonzero((arr < lo) | (arr > hi))
        if out_of_range.size:
            k = int(out_of_range[0])
            raise FormatError(
                f"column {name!r} holds a value out of range ({out_of_range.size} rows)",
                path=path,
                where=f"row {k + 1}",
                expected=f"a whole number in {lo}..{hi}",
                found=repr(arr[k].item()),
            )
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    rounded = np.rint(arr)
    bad = np.flatnonzero(rounded != arr)
    if bad.size:
        raise FormatError(
            f"column {name!r} holds a non-integer value",
            path=path,
            where=f"row {int(bad[0]) + 1}",
            expected="a whole number",
            found=repr(float(arr[bad[0]])),
        )
    return rounded.astype(np.int64)


_NORMALISE = re.compile(r"[\s_\-]+")


def norm_name(name: str) -> str:
    """Lower-case a column name and drop spaces, underscores and dashes."""
    return _NORMALISE.sub("", name.strip().lower())


def precision_from_xy(px: np.ndarray | None, py: np.ndarray | None) -> np.ndarray | None:
    """Lateral precision as the root mean square of x and y precisions."""
    if px is None:
        return py
    if py is None:
        return px
    return np.sqrt(0.5 * (px * px + py * py))
