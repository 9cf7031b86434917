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


def is_smlm_zip(path: Path, head: bytes) -> bool:
    if not head.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return "manifest.json" in zf.namelist()
    except zipfile.BadZipFile:
        return False


def read_smlm(path: Path, head: bytes, opts) -> Localizations:
    import pyarrow as pa

    from ._text import localizations_from_table

    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise FormatError(
            "not a valid zip archive (an .smlm file is a zip)", path=path, found=repr(head[:4])
        ) from err
    with zf:
        try:
            manifest = json.loads(zf.read("manifest.json"))
        except KeyError as err:
            raise FormatError(
                "zip archive without manifest.json", path=path, found=f"members {zf.namelist()[:5]}"
            ) from err
        except ValueError as err:
            raise FormatError("manifest.json is not valid JSON", path=path, found=str(err)) from err
        formats = manifest.get("formats", {})
        entries = [f for f in manifest.get("files", []) if f.get("type") == "table"]
        if not entries:
            raise FormatError(
                "manifest lists no table",
                path=path,
                where="manifest.json",
                expected='a "files" entry of type "table"',
            )
        parts, names = [], {}
        for ci, entry in enumerate(entries):
            where = f"manifest.json, file {entry.get('name')!r}"
            fmt = formats.get(entry.get("format"))
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
            headers = list(fmt["headers"])
            try:
                dtype = np.dtype(
                    [
                        (h, np.dtype(d).newbyteorder("<"))
                        for h, d in zip(headers, fmt["dtype"], strict=True)
                    ]
                )
            except (TypeError, ValueError) as err:
                raise FormatError(
                    "bad column dtypes", path=path, where=where, found=str(fmt.get("dtype"))
                ) from err
            rows = int(entry["rows"])
            try:
                raw = zf.read(entry["name"])
            except KeyError as err:
                raise FormatError(
                    "table file missing from the archive", path=path, where=where
                ) from err
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
                off = float(offsets.get(h, 0) or 0)
                cols[h] = v.astype(np.float64) + off if off else v.copy()
            table = pa.table(cols)
            roles = match_roles(headers)
            units = dict(zip(headers, fmt.get("units", [""] * len(headers)), strict=False))
            for key, r in list(roles.items()):
                u = _UNIT_NAMES.get(str(units.get(r.column, "")).strip().lower())
                if u:
                    roles[key] = ColumnRole(r.role, r.column, u)
            part = localizations_from_table(
                table,
                path,
                "smlm",
                roles=roles,
                camera_pixel_nm=opts.camera_pixel_nm,
                frame_offset=0,
                unitless="assume-nm",
                channel=np.full(rows, ci, np.int32) if len(entries) > 1 else None,
            )
            names[ci] = str(entry.get("channel", ci))
            parts.append(part)
    out = Localizations.concat(parts)
    if len(entries) > 1:
        out = out.with_meta(channel_names=names)
    return out
