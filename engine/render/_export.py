"""Writing rendered images: float32 TIFF / NPY for machines, colour PNG for people."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

from ..io import atomic_path
from ._render import Rendered

__all__ = ["write_rendered", "to_rgb8", "write_png", "IMAGE_FORMATS"]

IMAGE_FORMATS = ("tiff", "png", "npy")

#: matplotlib's viridis sampled at 17 points (CC0); interpolated linearly in between.
_VIRIDIS = np.array(
    [
        [0.267, 0.0049, 0.3294],
        [0.2823, 0.095, 0.4173],
        [0.2788, 0.1755, 0.4834],
        [0.259, 0.2515, 0.5247],
        [0.2297, 0.3224, 0.5457],
        [0.1994, 0.3876, 0.5546],
        [0.1727, 0.4488, 0.5579],
        [0.149, 0.5081, 0.5572],
        [0.1276, 0.5669, 0.5506],
        [0.1206, 0.6258, 0.5335],
        [0.1579, 0.6838, 0.5017],
        [0.2461, 0.7389, 0.452],
        [0.3692, 0.7889, 0.3829],
        [0.516, 0.8312, 0.2943],
        [0.6785, 0.8637, 0.1895],
        [0.8456, 0.8873, 0.0997],
        [0.9932, 0.9062, 0.1439],
    ]
)
#: Additive colours of image channels in multi-channel PNGs: magenta, green, cyan, yellow.
_CHANNEL_COLOURS = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def _unit(img: np.ndarray) -> np.ndarray:
    """Each channel scaled to [0, 1] by its 99.9th percentile (for display only)."""
    out = np.empty(img.shape, np.float64)
    for k in range(img.shape[0]):
        top = float(np.percentile(img[k], 99.9)) if img[k].size else 0.0
        out[k] = np.clip(img[k] / top, 0, 1) if top > 0 else 0.0
    return out


def to_rgb8(img: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) uint8: viridis for one channel, additive colours for several.

    Parameters
    ----------
    img : ndarray, shape (C, H, W)
        An image.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    u = _unit(img)
    if u.shape[0] == 1:
        pos = u[0] * (len(_VIRIDIS) - 1)
        i = np.clip(pos.astype(np.int64), 0, len(_VIRIDIS) - 2)
        f = (pos - i)[..., None]
        rgb = _VIRIDIS[i] * (1 - f) + _VIRIDIS[i + 1] * f
    else:
        rgb = np.clip(np.einsum("chw,cr->hwr", u, _CHANNEL_COLOURS[: u.shape[0]]), 0, 1)
    return np.round(rgb * 255).astype(np.uint8)


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Minimal 8-bit RGB PNG writer (zlib), so PNG output needs no imaging library.

    Parameters
    ----------
    path : str or Path
        The file.
    rgb : ndarray, shape (H, W, 3), uint8
        The pixels.
    """
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(png)


def write_rendered(
    rendered: Rendered, stem: str | Path, fmt: str, *, extra: dict | None = None
) -> list[Path]:
    """Write ``STEM.{tiff,png,npy}`` and its sidecar ``STEM.{tiff,png,npy}.json``
    (RenderSpec, origin_nm, pixel_nm, area...).

    TIFF and NPY keep the float32 (C, H, W) values; PNG is for looking at.

    Parameters
    ----------
    rendered : Rendered
        The render.
    stem : str or Path
        The output without its extension.
    fmt : {"tiff", "npy", "png"}
        The image format.
    extra : dict, optional
        More keys for the sidecar.

    Returns
    -------
    list of Path
        The image and its sidecar.
    """
    import tifffile

    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
    stem = Path(stem)
    from ..provenance import stamp

    meta = {**rendered.sidecar(), **(extra or {}), **stamp()}
    image_path = stem.with_name(stem.name + "." + fmt)
    if fmt == "png":
        write_png(image_path, to_rgb8(rendered.image))
    elif fmt == "npy":
        with atomic_path(image_path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, rendered.image)
    else:
        with atomic_path(image_path) as tmp:
            tifffile.imwrite(
                tmp,
                rendered.image,
                photometric="minisblack",
                description=json.dumps(meta),
                metadata=None,
            )
    side = image_path.with_name(image_path.name + ".json")  # NAME.tiff.json: one per image
    with atomic_path(side) as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return [image_path, side]
