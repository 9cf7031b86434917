"""The :class:`Localizations` type: one table of single-molecule localizations in nm."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["Localizations", "Metadata", "CORE_COLUMNS"]

#: The named columns every reader maps into, with their in-memory dtypes.
CORE_COLUMNS: dict[str, np.dtype] = {
    "x_nm": np.dtype(np.float32),
    "y_nm": np.dtype(np.float32),
    "z_nm": np.dtype(np.float32),
    "frame": np.dtype(np.int64),
    "channel": np.dtype(np.int32),
    "photons": np.dtype(np.float32),
    "precision_nm": np.dtype(np.float32),
}

#: Key under which the metadata travels in Parquet / Arrow IPC schema metadata.
ARROW_METADATA_KEY = b"ainu.localizations"


@dataclass(frozen=True)
class Metadata:
    """What is known about where a table of localizations came from.

    Attributes
    ----------
    source_format : str or None
        Name of the format it was read from (``"insight3"``, ``"thunderstorm"``...).
    source_path : str or None
        The file it was read from.
    camera_pixel_nm : tuple of float or None
        Camera pixel size (x, y) in nm used to convert pixel coordinates, or recorded in
        the file; None when the file was in nm and recorded none.
    camera_pixel_source : str or None
        Where that size came from: ``"file"`` (the file's own metadata), ``"sidecar"``,
        ``"user"`` (``camera_pixel_nm=``/``--camera-pixel-nm``), or None.
    frame_offset : int
        What was subtracted from the file's frame numbers to make ``frame`` 0-based
        (1 for formats that count frames from 1, else 0).
    channel_names : dict
        Channel id -> name, where the file names its channels.
    warnings : tuple of str
        Things the reader noticed and worked around (rows dropped, metadata ignored...).
    details : dict
        Format-specific facts worth reporting (JSON-serialisable), e.g. a track file's
        number of tracks.
    """

    source_format: str | None = None
    source_path: str | None = None
    camera_pixel_nm: tuple[float, float] | None = None
    camera_pixel_source: str | None = None
    frame_offset: int = 0
    channel_names: Mapping[int, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    details: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "source_format": self.source_format,
            "source_path": self.source_path,
            "camera_pixel_nm": None if self.camera_pixel_nm is None else list(self.camera_pixel_nm),
            "camera_pixel_source": self.camera_pixel_source,
            "frame_offset": self.frame_offset,
            "channel_names": {str(k): v for k, v in self.channel_names.items()},
            "warnings": list(self.warnings),
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Metadata:
        px = d.get("camera_pixel_nm")
        return cls(
            source_format=d.get("source_format"),
            source_path=d.get("source_path"),
            camera_pixel_nm=None if px is None else (float(px[0]), float(px[1])),
            camera_pixel_source=d.get("camera_pixel_source"),
            frame_offset=int(d.get("frame_offset", 0)),
            channel_names={int(k): str(v) for k, v in (d.get("channel_names") or {}).items()},
            warnings=tuple(d.get("warnings") or ()),
            details=dict(d.get("details") or {}),
        )


class Localizations:
    """A table of localizations as a structure of arrays, coordinates in nanometres.

    Parameters
    ----------
    x_nm, y_nm : array_like
        Lateral coordinates in nm; stored as float32.
    z_nm : array_like, optional
        Axial coordinate in nm (3-D data only).
    frame : array_like, optional
        0-based frame index (int64). Readers convert 1-based files; see the format docs.
    channel : array_like, optional
        Channel (colour) id (int32), as the file numbers it.
    photons : array_like, optional
        Photon count (or the format's intensity) per localization (float32).
    precision_nm : array_like, optional
        Lateral localization precision in nm (float32).
    extra : mapping of str to array_like, optional
        Any further columns, kept by their name and dtype.
    meta : Metadata, optional
        Provenance: source format, camera pixel size, warnings...

    Notes
    -----
    All columns have one row per localization. Optional columns are ``None`` when the
    source has no such column. Units are nm for every length, whatever the source file
    used (see the page on formats, ``docs/formats.md``).

    Examples
    --------
    >>> import numpy as np
    >>> from ainu_engine.io import Localizations
    >>> locs = Localizations(np.array([10.0, 20.0]), np.array([5.0, 7.5]), channel=[0, 1])
    >>> len(locs), locs.columns
    (2, ['x_nm', 'y_nm', 'channel'])
    """

    def __init__(
        self,
        x_nm,
        y_nm,
        *,
        z_nm=None,
        frame=None,
        channel=None,
        photons=None,
        precision_nm=None,
        extra: Mapping[str, object] | None = None,
        meta: Metadata | None = None,
    ) -> None:
        cols = {
            "x_nm": x_nm,
            "y_nm": y_nm,
            "z_nm": z_nm,
            "frame": frame,
            "channel": channel,
            "photons": photons,
            "precision_nm": precision_nm,
        }
        n = None
        for name, values in cols.items():
            if values is None:
                continue
            arr = np.ascontiguousarray(np.asarray(values).astype(CORE_COLUMNS[name], copy=False))
            if arr.ndim != 1:
                raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
            if n is None:
                n = len(arr)
            elif len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} rows, expected {n} like x_nm")
            cols[name] = arr
        self.x_nm: np.ndarray = cols["x_nm"]
        self.y_nm: np.ndarray = cols["y_nm"]
        self.z_nm: np.ndarray | None = cols["z_nm"]
        self.frame: np.ndarray | None = cols["frame"]
        self.channel: np.ndarray | None = cols["channel"]
        self.photons: np.ndarray | None = cols["photons"]
        self.precision_nm: np.ndarray | None = cols["precision_nm"]
        self.extra: dict[str, np.ndarray] = {}
        for name, values in (extra or {}).items():
            if name in CORE_COLUMNS:
                raise ValueError(f"extra column {name!r} clashes with a core column")
            arr = np.asarray(values)
            if arr.ndim != 1 or len(arr) != n:
                raise ValueError(f"extra column {name!r} has shape {arr.shape}, expected ({n},)")
            self.extra[str(name)] = arr
        self.meta: Metadata = meta if meta is not None else Metadata()

    # -- basic protocol -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.x_nm)

    @property
    def n(self) -> int:
        """Number of localizations."""
        return len(self.x_nm)

    @property
    def columns(self) -> list[str]:
        """Names of the columns present: core columns first, then extras in file order."""
        return [c for c in CORE_COLUMNS if getattr(self, c) is not None] + list(self.extra)

    def column(self, name: str) -> np.ndarray:
        """Return the column called ``name`` (core or extra)."""
        if name in CORE_COLUMNS:
            values = getattr(self, name)
            if values is not None:
                return values
        elif name in self.extra:
            return self.extra[name]
        raise KeyError(f"no column {name!r}; columns are {', '.join(self.columns)}")

    def __getitem__(self, index) -> Localizations:
        """Rows selected by a boolean mask, an integer array or a slice."""
        if isinstance(index, str):
            raise TypeError("use .column(name) to get a column by name")

        def take(a):
            return None if a is None else a[index]

        return Localizations(
            take(self.x_nm),
            take(self.y_nm),
            z_nm=take(self.z_nm),
            frame=take(self.frame),
            channel=take(self.channel),
            photons=take(self.photons),
            precision_nm=take(self.precision_nm),
            extra={k: v[index] for k, v in self.extra.items()},
            meta=self.meta,
        )

    def with_meta(self, **changes) -> Localizations:
        """Return the same columns with some metadata fields replaced."""
        out = self[slice(None)]
        out.meta = replace(self.meta, **changes)
        return out

    def __repr__(self) -> str:
        src = f", from {self.meta.source_format}" if self.meta.source_format else ""
        return f"<Localizations n={self.n} columns={self.columns}{src}>"

    # -- summaries ------------------------------------------------------------------------
    def channel_counts(self) -> dict[int, int]:
        """Number of localizations per channel id (all in channel 0 when there is no channel)."""
        if self.channel is None:
            return {0: self.n} if self.n else {}
        ids, counts = np.unique(self.channel, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts, strict=True)}

    # -- Arrow interchange ----------------------------------------------------------------
    def to_arrow(self):
        """Return a ``pyarrow.Table`` with one column per present column and the metadata.

        The metadata travels as JSON in the schema metadata under ``ainu.localizations``,
        so Parquet and Arrow IPC files written from it read back with nothing lost.
        """
        import pyarrow as pa

        arrays = {name: self.column(name) for name in self.columns}
        table = pa.table({k: pa.array(v) for k, v in arrays.items()})
        meta = json.dumps(self.meta.to_dict(), sort_keys=True).encode()
        return table.replace_schema_metadata({ARROW_METADATA_KEY: meta})

    @classmethod
    def concat(
        cls, parts: Sequence[Localizations], *, meta: Metadata | None = None
    ) -> Localizations:
        """Stack tables with the same columns (the metadata of the first unless given)."""
        if not parts:
            raise ValueError("concat needs at least one Localizations")
        cols = parts[0].columns
        for p in parts[1:]:
            if p.columns != cols:
                raise ValueError(f"cannot concatenate tables with columns {cols} and {p.columns}")

        def cat(name):
            if getattr(parts[0], name) is None:
                return None
            return np.concatenate([getattr(p, name) for p in parts])

        return cls(
            cat("x_nm"),
            cat("y_nm"),
            z_nm=cat("z_nm"),
            frame=cat("frame"),
            channel=cat("channel"),
            photons=cat("photons"),
            precision_nm=cat("precision_nm"),
            extra={k: np.concatenate([p.extra[k] for p in parts]) for k in parts[0].extra},
            meta=meta if meta is not None else parts[0].meta,
        )
