"""Widefield fields in: 12-bit TIFF, OME-TIFF, and the SCENMED code's HDF5 (``images``,
``CellType``); the pixel size from the file's metadata or the caller, never guessed."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError, InputError, PixelSizeError

__all__ = ["Field", "read_field", "read_fields", "read_scenmed_h5", "pixel_um_of"]

_UNIT_UM = {"um": 1.0, "µm": 1.0, "micron": 1.0, "microns": 1.0, "nm": 1e-3, "mm": 1e3}


@dataclass
class Field:
    """One widefield image, its pixel size and origin.

    Attributes
    ----------
    image : ndarray, shape (H, W), float32
        The values (12-bit ADU).
    pixel_um : float
        The pixel size (µm).
    path : str
        The file.
    index : int
        The image's index inside a multi-image file (HDF5 stack, TIFF series).
    label : str or None
        The class the file gives it (HDF5 ``CellType``), when it has one.
    """

    image: np.ndarray
    pixel_um: float
    path: str
    index: int = 0
    label: str | None = None

    @property
    def name(self) -> str:
        stem = Path(self.path).stem
        return stem if self.index == 0 and not self.path.endswith(".h5") else f"{stem}#{self.index}"


def _ome_pixel_um(desc: str) -> float | None:
    m = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', desc)
    if not m:
        return None
    unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', desc)
    scale = _UNIT_UM.get(unit.group(1) if unit else "µm")
    return None if scale is None else float(m.group(1)) * scale


def pixel_um_of(path: str | os.PathLike) -> float | None:
    """The pixel size (µm) a TIFF states: OME ``PhysicalSizeX``, ImageJ ``spacing``/``unit``
    with the resolution tag, or the resolution tag in cm/inch.

    Parameters
    ----------
    path : str or os.PathLike
        A TIFF.

    Returns
    -------
    float or None
        ``None`` when it states none.
    """
    import tifffile

    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        if tf.is_ome and tf.ome_metadata:
            v = _ome_pixel_um(tf.ome_metadata)
            if v:
                return v
        tags = page.tags
        ij = tf.imagej_metadata or {}
        res = tags.get("XResolution")
        unit_tag = tags.get("ResolutionUnit")
        if res is None:
            return None
        num, den = res.value
        if not num or not den:
            return None
        per_unit = num / den  # pixels per unit
        if ij.get("unit"):
            scale = _UNIT_UM.get(str(ij["unit"]).replace("\\u00B5", "µ").lower())
            if scale is None:
                return None
            return scale / per_unit
        unit = int(unit_tag.value) if unit_tag is not None else 2
        if unit == 3:  # centimetre
            return 1e4 / per_unit
        if unit == 2 and per_unit not in (72.0, 96.0, 300.0, 1.0):  # inch (not a print DPI)
            return 25_400.0 / per_unit
        return None


def read_field(path: str | os.PathLike, *, pixel_um: float | None = None) -> Field:
    """Read one single-channel widefield image (TIFF / OME-TIFF).

    ``pixel_um`` overrides the file's metadata; without either the read fails
    (:class:`~ainu_engine.errors.PixelSizeError`), because every size rule of SCENMED is in
    pixels of 0.215 µm and a wrong scale silently changes which nuclei are kept.

    Parameters
    ----------
    path : str or os.PathLike
        The TIFF or OME-TIFF.
    pixel_um : float, optional
        The pixel size (µm), over what the file says.

    Returns
    -------
    Field

    Raises
    ------
    ainu_engine.errors.InputError
        Missing file, or a directory.
    ainu_engine.errors.FormatError
        Not a readable TIFF, not single-channel 2-D, empty, non-numeric or non-finite pixels.
    ainu_engine.errors.PixelSizeError
        No pixel size in the file and none given, or a non-positive one.
    """
    import tifffile

    p = Path(path)
    if not p.exists():
        raise InputError("file not found", path=p)
    if p.is_dir():
        raise InputError("is a directory, expected an image file", path=p)
    try:
        img = tifffile.imread(p)
        stated = pixel_um_of(p)
    except (tifffile.TiffFileError, ValueError, OSError, KeyError, IndexError) as err:
        raise FormatError(f"not a readable TIFF ({err})", path=p) from err
    img = np.squeeze(np.asarray(img))
    if img.ndim != 2:
        raise FormatError(
            "expected one 2-D single-channel image",
            path=p,
            found=f"shape {tuple(img.shape)}",
            hint="split channels / z-planes first (a DAPI field is one 2-D image)",
        )
    if img.size == 0:
        raise FormatError("empty image", path=p)
    if not np.issubdtype(img.dtype, np.number) or np.iscomplexobj(img):
        raise FormatError("non-numeric pixels", path=p, found=str(img.dtype))
    img = img.astype(np.float32)
    if not np.isfinite(img).all():
        raise FormatError("pixels that are NaN or infinite", path=p)
    px = pixel_um if pixel_um is not None else stated
    if px is None:
        raise PixelSizeError(
            "the file states no pixel size",
            path=p,
            hint="pass --pixel-um (SCENMED's DeltaVision 60x: 0.215)",
        )
    if not (np.isfinite(px) and px > 0):
        raise PixelSizeError(f"pixel size must be a positive number, got {px!r}", path=p)
    return Field(img, float(px), str(p))


def read_scenmed_h5(path: str | os.PathLike, *, pixel_um: float | None = None) -> list[Field]:
    """Read the SCENMED code's HDF5 layout: ``images`` (N × H × W) and ``CellType`` (N labels).

    The layout carries no pixel size: ``pixel_um`` is required.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.h5`` file.
    pixel_um : float
        The pixel size (µm).

    Returns
    -------
    list of Field
        One per image, labelled from ``CellType``.

    Raises
    ------
    ainu_engine.errors.InputError
        Missing file.
    ainu_engine.errors.FormatError
        Not the SCENMED layout.
    ainu_engine.errors.PixelSizeError
        No ``pixel_um``.
    """
    import h5py

    p = Path(path)
    if not p.exists():
        raise InputError("file not found", path=p)
    if pixel_um is None:
        raise PixelSizeError(
            "the SCENMED HDF5 layout states no pixel size", path=p, hint="pass --pixel-um"
        )
    try:
        with h5py.File(p, "r") as h:
            if "images" not in h:
                raise FormatError(
                    "no dataset 'images'", path=p, expected="'images' (N×H×W) and 'CellType'"
                )
            imgs = np.asarray(h["images"])
            types = np.asarray(h["CellType"]) if "CellType" in h else None
    except OSError as err:
        raise FormatError(f"not a readable HDF5 file ({err})", path=p) from err
    if imgs.ndim == 2:
        imgs = imgs[None]
    if imgs.ndim != 3:
        raise FormatError("'images' must be N×H×W", path=p, found=f"shape {imgs.shape}")
    if types is not None and len(types) not in (1, len(imgs)):
        raise FormatError(
            "'CellType' must have one label per image",
            path=p,
            found=f"{len(types)} labels for {len(imgs)} images",
        )
    out = []
    for i, im in enumerate(imgs):
        lab = None
        if types is not None:
            t = types[0] if len(types) == 1 else types[i]
            lab = t.decode() if isinstance(t, bytes) else str(t)
        out.append(Field(im.astype(np.float32), float(pixel_um), str(p), index=i, label=lab))
    return out


def read_fields(path: str | os.PathLike, *, pixel_um: float | None = None) -> list[Field]:
    """Every field in ``path``: one for a TIFF, N for a SCENMED HDF5 file.

    Parameters
    ----------
    path : str or os.PathLike
        A TIFF, OME-TIFF or SCENMED ``.h5``.
    pixel_um : float, optional
        The pixel size (µm; required for ``.h5``).

    Returns
    -------
    list of Field

    Raises
    ------
    ainu_engine.errors.AinuError
        As :func:`read_field` and :func:`read_scenmed_h5`.
    """
    if str(path).lower().endswith((".h5", ".hdf5")):
        return read_scenmed_h5(path, pixel_um=pixel_um)
    return [read_field(path, pixel_um=pixel_um)]
