"""SMLM file format (``.smlm``, as written by ShareLoc.XYZ and locan): a zip archive with a
``manifest.json`` describing one or more binary tables (row-interleaved little-endian
records, one per localization)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ._columns import ColumnRole, match_roles
from ._localizations import Localizations

_UNIT_NAMES = {
    "nm": "nm",
    "nanometer": "nm",
    "um": "um",
    "µm": "um",
    "micrometer": "um",
    "px": "px",
    "pixel": "px",
}


#: manifest.json is small: a larger one is refused before it is inflated
MAX_MANIFEST_BYTES = 16 * 2**20


def _member(zf: zipfile.ZipFile, name: str, limit: int, path: Path, where: str) -> bytes:
    """At most ``limit`` bytes of an archive member, with the zip's errors as FormatError."""
    try:
        info = zf.getinfo(name)
        if info.flag_bits & 0x1:
            raise FormatError("the archive is encrypted", path=path, where=where)
        with zf.open(info) as fh:
            return fh.read(limit)
    except FormatError:
        raise
    except (
        zipfile.BadZipFile,
        NotImplementedError,
        RuntimeError,
        OSError,
        EOFError,
        ValueError,
    ) as err:
        # bad CRC, an unsupported compression method, a corrupt stream (zlib.error is an
        # Exception subclass raised as such; see below)
        raise FormatError(f"the archive member cannot be read: {str(err)[:200]}", path=path,
                          where=where) from err  # fmt: skip
    except Exception as err:  # noqa: BLE001 - zlib.error, lzma.LZMAError, bz2 errors
        raise FormatError(f"the archive member cannot be inflated: {type(err).__name__}: "
                          f"{str(err)[:200]}", path=path, where=where) from err  # fmt: skip


def is_smlm_zip(path: Path, head: bytes) -> bool:
    if not head.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return "manifest.json" in zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
        return False


def read_smlm(path: Path, head: bytes, opts) -> Localizations:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as err:
        raise FormatError(
            "not a valid zip archive (an .smlm file is a zip)", path=path, found=repr(head[:4])
        ) from err
    with zf:
        formats, entries = _manifest(zf, path)
        parts, names = [], {}
        for ci, entry in enumerate(entries):
            channel = ci if len(entries) > 1 else None
            parts.append(_read_table(zf, entry, formats, path, opts, channel))
            names[ci] = str(entry.get("channel", ci))
    out = Localizations.concat(parts)
    if len(entries) > 1:
        out = out.with_meta(channel_names=names)
    return out


def _manifest(zf: zipfile.ZipFile, path: Path) -> tuple[dict, list[dict]]:
    """(formats, table entries) of the archive's manifest.json, checked for shape."""
    if "manifest.json" not in zf.namelist():
        raise FormatError(
            "zip archive without manifest.json", path=path, found=f"members {zf.namelist()[:5]}"
        )
    raw = _member(zf, "manifest.json", MAX_MANIFEST_BYTES, path, "manifest.json")
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise FormatError(
            "manifest.json is not valid JSON", path=path, found=str(err)[:200]
        ) from err
    formats = manifest.get("formats", {}) if isinstance(manifest, dict) else None
    files = manifest.get("files", []) if isinstance(manifest, dict) else None
    if (
        not isinstance(formats, dict)
        or not isinstance(files, list)
        or not all(isinstance(f, dict) for f in (*files, *formats.values()))
    ):
        raise FormatError(
            "manifest.json is not an object of files and formats",
            path=path,
            expected='{"files": [{...}], "formats": {"name": {...}}}',
        )
    entries = [f for f in files if f.get("type") == "table"]
    if not entries:
        raise FormatError(
            "manifest lists no table",
            path=path,
            where="manifest.json",
            expected='a "files" entry of type "table"',
        )
    return formats, entries


def _table_dtype(fmt: dict | None, entry: dict, path: Path, where: str) -> tuple[list, np.dtype]:
    if fmt is None:
        raise FormatError(
            "table refers to an unknown format",
            path=path,
            where=where,
            found=repr(entry.get("format")),
        )
    if fmt.get("mode", "binary") != "binary":
        raise FormatError(
            "only binary SMLM tables are supported",
            path=path,
            where=where,
            found=repr(fmt.get("mode")),
        )
    try:
        headers = [str(h) for h in fmt["headers"]]
        dtype = np.dtype(
            [(h, np.dtype(d).newbyteorder("<")) for h, d in zip(headers, fmt["dtype"], strict=True)]
        )
    except (KeyError, TypeError, ValueError) as err:
        raise FormatError(
            "bad column names or dtypes", path=path, where=where, found=str(fmt.get("dtype"))[:100]
        ) from err
    if dtype.itemsize == 0 or any(dtype[h].kind not in "biuf" for h in headers):
        raise FormatError(
            "columns must be numbers that take bytes", path=path, where=where,
            found=str(fmt.get("dtype"))[:100],
        )  # fmt: skip
    return headers, dtype


def _count(v) -> int | None:
    """A row count as manifests write it (5, 5.0 or "5"), or None when it is not one."""
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)
    if isinstance(v, float) and v.is_integer() and v >= 0:
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    return None


def _read_table(zf, entry: dict, formats: dict, path: Path, opts, channel: int | None):
    import pyarrow as pa

    from ._text import localizations_from_table

    where = f"manifest.json, file {entry.get('name')!r}"
    fmt = formats.get(entry.get("format"))
    headers, dtype = _table_dtype(fmt, entry, path, where)
    rows = _count(entry.get("rows"))
    if rows is None:
        raise FormatError(
            "the table's row count is not a whole number >= 0", path=path, where=where,
            found=repr(entry.get("rows"))[:50],
        )  # fmt: skip
    name = entry.get("name")
    if not isinstance(name, str) or name not in zf.namelist():
        raise FormatError("table file missing from the archive", path=path, where=where)
    # read what the manifest declares and no more: a member that inflates past it (a zip bomb)
    # is never inflated whole
    raw = _member(zf, name, rows * dtype.itemsize, path, where)
    if len(raw) < rows * dtype.itemsize:
        raise FormatError(
            "truncated table",
            path=path,
            where=where,
            expected=f"{rows} rows x {dtype.itemsize} bytes",
            found=f"{len(raw)} bytes",
        )
    arr = np.frombuffer(raw, dtype=dtype, count=rows)
    offsets = entry.get("offset", {}) or {}
    cols = {}
    for h in headers:
        v = arr[h]
        off = offsets.get(h, 0) if isinstance(offsets, dict) else 0
        off = float(off) if isinstance(off, (int, float)) and not isinstance(off, bool) else 0.0
        cols[h] = v.astype(np.float64) + off if off else v.copy()
    roles = match_roles(headers)
    units = fmt.get("units", [""] * len(headers))
    units = dict(zip(headers, units if isinstance(units, list) else [], strict=False))
    for key, r in list(roles.items()):
        u = _UNIT_NAMES.get(str(units.get(r.column, "")).strip().lower())
        if u:
            roles[key] = ColumnRole(r.role, r.column, u)
    return localizations_from_table(
        pa.table(cols),
        path,
        "smlm",
        roles=roles,
        camera_pixel_nm=opts.camera_pixel_nm,
        frame_offset=0,
        unitless="assume-nm",
        channel=None if channel is None else np.full(rows, channel, np.int32),
    )
