"""Parquet and Arrow IPC: the engine's own lossless interchange formats.

Files written by ainu-engine carry the column names of :class:`Localizations` and its
metadata (JSON under the schema key ``ainu.localizations``) and read back exactly. Files from
elsewhere are read like a generic table: x/y columns found by name, units from the names.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ._columns import resolve_roles
from ._localizations import ARROW_METADATA_KEY, CORE_COLUMNS, Localizations, Metadata

PARQUET_MAGIC = b"PAR1"
ARROW_FILE_MAGIC = b"ARROW1"
ARROW_STREAM_PREFIX = b"\xff\xff\xff\xff"


def is_parquet(head: bytes) -> bool:
    return head.startswith(PARQUET_MAGIC)


#: files up to this size are read into memory and decoded on the calling thread
IN_MEMORY_BYTES = 256 * 2**20


def is_arrow_ipc(head: bytes) -> bool:
    return head.startswith(ARROW_FILE_MAGIC) or head.startswith(ARROW_STREAM_PREFIX)


def _from_table(table, path: Path, fmt: str, opts) -> Localizations:
    from ._common import _as_int, build_localizations
    from ._text import generic_options, localizations_from_table

    raw_meta = (table.schema.metadata or {}).get(ARROW_METADATA_KEY)
    if raw_meta is not None and not opts.columns:
        try:
            stored = Metadata.from_dict(json.loads(raw_meta))
        except (ValueError, TypeError, KeyError, IndexError) as err:
            raise FormatError(
                "unreadable ainu.localizations metadata", path=path, found=str(err)[:80]
            ) from err
        details = dict(stored.details)
        if stored.source_format and stored.source_format not in ("parquet", "arrow"):
            details["converted_from"] = {
                k: v
                for k, v in (("format", stored.source_format), ("path", stored.source_path))
                if v
            }
        # The file is now the source; warnings of the original conversion do not repeat.
        meta = replace(
            stored, source_format=fmt, source_path=str(path), warnings=(), details=details
        )
        missing = [c for c in ("x_nm", "y_nm") if c not in table.column_names]
        if missing:
            raise FormatError(
                f"no {missing[0]!r} column", path=path, found=f"columns {table.column_names[:20]}"
            )
        cols = {}
        for name in table.column_names:
            col = table.column(name)
            if col.null_count:
                raise FormatError(f"column {name!r} has {col.null_count} missing values", path=path)
            cols[name] = col.to_numpy(zero_copy_only=False)
        core = {k: cols.pop(k) for k in list(cols) if k in CORE_COLUMNS}
        for k in ("frame", "channel"):  # out-of-range values are errors, never wrapped
            if k in core:
                core[k] = _as_int(path, core[k], k)
        x, y = core.pop("x_nm"), core.pop("y_nm")
        with np.errstate(over="ignore", invalid="ignore"):  # as stored: beyond float32 is inf
            bad = ~(np.isfinite(x.astype(np.float32)) & np.isfinite(y.astype(np.float32)))
            if "z_nm" in core:
                bad |= ~np.isfinite(core["z_nm"].astype(np.float32))
        if bad.any():  # keep the one NaN policy of every reader
            return build_localizations(
                path,
                fmt,
                x=x.astype(np.float64),
                y=y.astype(np.float64),
                z=core.get("z_nm"),
                frame=core.get("frame"),
                channel=core.get("channel"),
                photons=core.get("photons"),
                precision=core.get("precision_nm"),
                extra=cols,
                pixel=meta.camera_pixel_nm,
                pixel_source=meta.camera_pixel_source,
                channel_names=meta.channel_names,
                warnings=meta.warnings,
                details=meta.details,
            )
        return Localizations(
            x,
            y,
            z_nm=core.get("z_nm"),
            frame=core.get("frame"),
            channel=core.get("channel"),
            photons=core.get("photons"),
            precision_nm=core.get("precision_nm"),
            extra=cols,
            meta=meta,
        )
    names = table.column_names
    roles = resolve_roles(names, opts.columns, path)
    return localizations_from_table(table, path, fmt, roles=roles, **generic_options(opts))


def read_parquet(path: Path, head: bytes, opts) -> Localizations:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not is_parquet(head):
        raise FormatError(
            "not a Parquet file: wrong magic",
            path=path,
            where="bytes 0-3",
            expected="'PAR1'",
            found=repr(head[:4]),
        )
    try:
        # ParquetFile.read gives one chunk per row group (read_table splits columns into
        # 128 Ki-row batches that would have to be concatenated again).
        # a file in memory, decoded on this thread: a memory map would tie the arrays to a file
        # that may change under them, and a decoding thread left behind by a corrupt file
        # crashed a fuzz run (the pool only pays on files of hundreds of MB)
        big = path.stat().st_size > IN_MEMORY_BYTES
        src = path if big else pa.BufferReader(path.read_bytes())
        table = pq.ParquetFile(src, memory_map=big).read(use_threads=big)
    except (pa.ArrowException, OSError) as err:
        raise FormatError(
            "corrupt or truncated Parquet file", path=path, found=str(err).splitlines()[0][:100]
        ) from err
    return _from_table(table, path, "parquet", opts)


def read_arrow(path: Path, head: bytes, opts) -> Localizations:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    if not is_arrow_ipc(head):
        raise FormatError(
            "not an Arrow IPC file: wrong magic",
            path=path,
            where="bytes 0-5",
            expected="'ARROW1' (file) or an IPC stream",
            found=repr(head[:6]),
        )
    try:
        big = path.stat().st_size > IN_MEMORY_BYTES
        with pa.memory_map(str(path)) if big else pa.BufferReader(path.read_bytes()) as src:
            opts_ipc = ipc.IpcReadOptions(use_threads=big)
            if head.startswith(ARROW_FILE_MAGIC):
                table = ipc.open_file(src, options=opts_ipc).read_all()
            else:
                table = ipc.open_stream(src, options=opts_ipc).read_all()
    except (pa.ArrowException, OSError) as err:
        raise FormatError(
            "corrupt or truncated Arrow IPC file", path=path, found=str(err).splitlines()[0][:100]
        ) from err
    return _from_table(table, path, "arrow", opts)


def write_parquet(locs: Localizations, path: Path, opts, *, final_path=None) -> list[str]:
    import pyarrow.parquet as pq

    # lz4: decodes about twice as fast as zstd for a few % more bytes; one row group per
    # 8 Mi rows keeps columns in few chunks.
    pq.write_table(locs.to_arrow(), str(path), compression="lz4", row_group_size=1 << 23)
    return []


def write_arrow(locs: Localizations, path: Path, opts, *, final_path=None) -> list[str]:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = locs.to_arrow()
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return []
