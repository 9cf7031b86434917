"""Insight3 / Nikon N-STORM binary molecule lists (``.bin``, magic ``M425``).

Layout (little-endian): a 16-byte header — the 4-byte string ``M425``, int32 frames (not
reliable: storm-analysis writes 1), int32 status, int32 number of molecules — then one
72-byte record per molecule (11 float32, 5 int32, 2 float32; see :data:`I3_DTYPE`), then
whatever the writing program appends (N-STORM: per-frame blocks; storm-analysis: an int32 0),
which is ignored.

Coordinates are 1-based camera pixels: the centre of the first pixel is (1, 1). The engine
uses drift-corrected ``xc``, ``yc`` and ``zc`` (nm) and converts
``x_nm = (xc - 1) * camera_pixel_nm`` so that nm coordinates share the origin of 0-based
formats. Frames ``fr`` are 1-based; the category ``c`` is the channel. The file does not
record the pixel size: ainu-engine's writer puts it in a sidecar ``NAME.bin.json``; otherwise
it must be given (``--camera-pixel-nm``; 160 nm on N-STORM with a 100x objective).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import FormatError, OutputError
from ._common import build_localizations, resolve_pixel_size
from ._localizations import Localizations

MAGIC = b"M425"
HEADER_BYTES = 16

I3_DTYPE = np.dtype(
    [
        ("x", "<f4"),
        ("y", "<f4"),
        ("xc", "<f4"),
        ("yc", "<f4"),
        ("h", "<f4"),
        ("a", "<f4"),
        ("w", "<f4"),
        ("phi", "<f4"),
        ("ax", "<f4"),
        ("bg", "<f4"),
        ("i", "<f4"),
        ("c", "<i4"),
        ("fi", "<i4"),
        ("fr", "<i4"),
        ("tl", "<i4"),
        ("lk", "<i4"),
        ("z", "<f4"),
        ("zc", "<f4"),
    ]
)
assert I3_DTYPE.itemsize == 72

#: Insight3 fields kept as extra columns, and their names in the engine.
EXTRA_FIELDS = {
    "h": "height",
    "a": "area",
    "w": "width",
    "phi": "phi",
    "ax": "axial_ratio",
    "bg": "background",
    "i": "intensity",
    "fi": "fit_iterations",
    "tl": "track_length",
    "lk": "link",
}
#: What a writer puts in a field it has no column for (storm-analysis's defaults).
DEFAULTS = {
    "h": 100.0,
    "a": 10000.0,
    "w": 300.0,
    "phi": 0.0,
    "ax": 1.0,
    "bg": 0.0,
    "i": 0.0,
    "fi": 1,
    "tl": 1,
    "lk": -1,
}


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _sidecar(path: Path) -> dict:
    """ainu-engine's sidecar of an Insight3 file ({} when there is none): the camera pixel size,
    and the channel names where the written table had them."""
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        doc = json.loads(side.read_text())
        doc["camera_pixel_nm"]  # noqa: B018 - the one key a sidecar must have
        names = {int(k): str(v) for k, v in (doc.get("channel_names") or {}).items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise FormatError(
            "unreadable sidecar",
            path=side,
            expected='JSON with "camera_pixel_nm" (and "channel_names": {id: name})',
            found=type(err).__name__,
            hint="fix or delete the sidecar",
        ) from err
    return {**doc, "channel_names": names}


def read_insight3(path: Path, head: bytes, opts) -> Localizations:
    size = path.stat().st_size
    if head[:4] != MAGIC:
        raise FormatError(
            "not an Insight3 .bin file: wrong magic",
            path=path,
            where="bytes 0-3",
            expected=repr(MAGIC.decode()),
            found=repr(head[:4]),
        )
    if size < HEADER_BYTES:
        raise FormatError(
            "truncated header", path=path, expected=f"{HEADER_BYTES} bytes", found=f"{size} bytes"
        )
    frames, status, n = (int(v) for v in np.frombuffer(head[4:16], "<i4"))
    if n < 0:
        raise FormatError(
            "invalid molecule count in the header",
            path=path,
            where="bytes 12-15",
            expected="a count >= 0",
            found=str(n),
        )
    need = HEADER_BYTES + n * I3_DTYPE.itemsize
    if size < need:
        complete = (size - HEADER_BYTES) // I3_DTYPE.itemsize
        raise FormatError(
            "truncated record",
            path=path,
            where=f"record {complete + 1} of {n}",
            expected=f"{need} bytes for {n} records of 72 bytes",
            found=f"{size} bytes",
            hint="the file was cut short",
        )
    rec = np.fromfile(path, dtype=I3_DTYPE, count=n, offset=HEADER_BYTES)
    side = _sidecar(path)
    pixel, pixel_source, warnings = resolve_pixel_size(
        path,
        from_file=side.get("camera_pixel_nm"),
        user=opts.camera_pixel_nm,
        needed=True,
        file_what=f"sidecar {sidecar_path(path).name}",
    )
    if pixel_source == "file":
        pixel_source = "sidecar"
    px, py = pixel
    x = (rec["xc"].astype(np.float64) - 1.0) * px
    y = (rec["yc"].astype(np.float64) - 1.0) * py
    is_3d = bool(np.any(rec["zc"] != 0) or np.any(rec["z"] != 0))
    extra = {
        "x_raw_nm": ((rec["x"].astype(np.float64) - 1.0) * px).astype(np.float32),
        "y_raw_nm": ((rec["y"].astype(np.float64) - 1.0) * py).astype(np.float32),
    }
    if is_3d:
        extra["z_raw_nm"] = rec["z"].copy()
    for field, name in EXTRA_FIELDS.items():
        extra[name] = rec[field].copy()
    if n == 0:
        warnings.append("the file holds no localizations")
    return build_localizations(
        path,
        "insight3",
        x=x,
        y=y,
        z=rec["zc"].astype(np.float64) if is_3d else None,
        frame=rec["fr"],
        frame_offset=1,
        channel=rec["c"],
        extra=extra,
        pixel=pixel,
        pixel_source=pixel_source,
        warnings=warnings,
        details={"header_frames": frames, "header_status": status, "header_molecules": n},
        channel_names=side.get("channel_names") or None,
    )


def write_insight3(
    locs: Localizations, path: Path, opts, *, final_path: Path | None = None
) -> list[str]:
    """Write an Insight3 .bin to ``path`` and its ``.bin.json`` sidecar (camera pixel size)
    beside ``final_path`` (where ``path`` will be renamed to; default ``path``).

    Returns warnings naming the columns the format cannot hold.
    """
    pixel = opts.camera_pixel_nm or locs.meta.camera_pixel_nm
    if pixel is None:
        raise OutputError(
            "Insight3 .bin stores camera pixels and no camera pixel size is known",
            path=final_path or path,
            hint="pass --camera-pixel-nm (camera_pixel_nm= in Python)",
        )
    px, py = pixel
    n = locs.n
    rec = np.zeros(n, I3_DTYPE)
    rec["xc"] = locs.x_nm.astype(np.float64) / px + 1.0
    rec["yc"] = locs.y_nm.astype(np.float64) / py + 1.0
    ex = locs.extra
    rec["x"] = ex["x_raw_nm"].astype(np.float64) / px + 1.0 if "x_raw_nm" in ex else rec["xc"]
    rec["y"] = ex["y_raw_nm"].astype(np.float64) / py + 1.0 if "y_raw_nm" in ex else rec["yc"]
    if locs.z_nm is not None:
        rec["zc"] = locs.z_nm
        rec["z"] = ex["z_raw_nm"] if "z_raw_nm" in ex else locs.z_nm
    rec["fr"] = 1 if locs.frame is None else locs.frame + 1
    rec["c"] = 0 if locs.channel is None else locs.channel
    for field, name in EXTRA_FIELDS.items():
        rec[field] = ex[name] if name in ex else DEFAULTS[field]
    frames = int(rec["fr"].max()) if n else 0
    header = MAGIC + np.array([frames, 6, n], "<i4").tobytes()
    stored = {"x_raw_nm", "y_raw_nm", "z_raw_nm", *EXTRA_FIELDS.values()}
    lost = [c for c in ("photons", "precision_nm") if getattr(locs, c) is not None]
    lost += [c for c in ex if c not in stored]
    from ._atomic import atomic_write_bytes

    sidecar = {
        "format": "insight3",
        "camera_pixel_nm": [px, py],
        "coordinates": "1-based camera pixels; x_nm = (xc - 1) * camera_pixel_nm",
        "written_by": _version(),
    }
    if locs.meta.channel_names:  # the format has channel ids only: the names live here
        sidecar["channel_names"] = {str(k): v for k, v in sorted(locs.meta.channel_names.items())}
    atomic_write_bytes(
        sidecar_path(final_path or path), json.dumps(sidecar, indent=2).encode() + b"\n"
    )
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(rec.tobytes())
        fh.write(np.zeros(1, "<i4").tobytes())
    if lost:
        return [f"Insight3 .bin has no field for {', '.join(lost)}; not written"]
    return []


def _version() -> str:
    from ..provenance import __version__

    return f"ainu-engine {__version__}"
