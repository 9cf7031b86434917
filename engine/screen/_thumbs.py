"""Thumbnails of the model's input for the report's gallery: one small greyscale JPEG per
channel, made where the nucleus is rendered and kept with its results row (column
``thumbnail``, in the parts only: ``results.parquet`` leaves it out)."""

from __future__ import annotations

import io
import logging

import numpy as np

__all__ = ["THUMB_PX", "THUMB_COLUMN", "thumbnail", "safe_thumbnail", "without_thumbnails"]

#: the longest side of a thumbnail, in pixels (the model input is shrunk to it, never enlarged)
THUMB_PX = 64
#: the results-row column that carries a nucleus' thumbnails (list of JPEG bytes, one a channel)
THUMB_COLUMN = "thumbnail"
_QUALITY = 80
log = logging.getLogger(__name__)


def _image(prep) -> np.ndarray:
    """(C, H, W) of what the model saw: the one input image, or for patch mode the render the
    patches were cut from."""
    items = np.asarray(prep.items)
    if items.shape[0] == 1 or getattr(prep.rendered, "image", None) is None:
        return items[0]
    return np.asarray(prep.rendered.image)


def _grey(channel: np.ndarray) -> np.ndarray:
    """uint8 of one channel, 0 at its minimum and 255 at its 99.5th percentile."""
    c = np.nan_to_num(channel.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo = float(c.min()) if c.size else 0.0
    hi = float(np.percentile(c, 99.5)) if c.size else 0.0
    if hi <= lo:
        hi = float(c.max()) if c.size else lo
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip((c - lo) * scale, 0, 255).astype(np.uint8)


def thumbnail(prep, size: int = THUMB_PX) -> list[bytes]:
    """One JPEG per channel of the prepared nucleus' model input, at most ``size`` pixels."""
    from PIL import Image

    out = []
    for channel in _image(prep):
        im = Image.fromarray(_grey(channel), mode="L")
        if max(im.size) > size:
            im.thumbnail((size, size), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=_QUALITY, optimize=True)
        out.append(buf.getvalue())
    return out


def safe_thumbnail(prep) -> list[bytes] | None:
    """:func:`thumbnail`, or None where it cannot be made: a picture for the report is never
    worth a nucleus' call (the gallery shows such a nucleus without one)."""
    try:
        return thumbnail(prep)
    except Exception as err:  # noqa: BLE001 - the call matters, its picture does not
        log.warning("no thumbnail: %s: %s", type(err).__name__, err)
        return None


def without_thumbnails(table):
    """The table without the thumbnail column (for results.parquet and CSV)."""
    if table is not None and THUMB_COLUMN in table.column_names:
        return table.drop_columns([THUMB_COLUMN])
    return table
