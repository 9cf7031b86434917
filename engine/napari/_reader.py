"""napari reader: every localization format the engine reads, as points layers in nm (one a
channel) and the file's render as an image layer at its pixel size."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["get_reader", "read_layers", "layers_of", "MAX_POINTS", "META_KEY"]

#: localizations shown per points layer at most (a random subset above: napari slows down
#: past about a million points); the layer's metadata says when it is a subset
MAX_POINTS = 1_000_000
#: the key of a layer's metadata under which the engine keeps where the layer came from
META_KEY = "ainu_engine"
#: the render's pixel: this, or coarser for a large field (longest side at most RENDER_SIDE)
RENDER_PIXEL_NM = 20.0
RENDER_SIDE = 4096
_COLOURS = ("magenta", "green", "cyan", "yellow", "red", "blue")


def get_reader(path: str | os.PathLike | list):
    """The reader for ``path`` (napari's ``get_reader`` hook), or None where no engine reader
    knows the file (napari then asks another plugin)."""
    from ..errors import AinuError
    from ..io import detect_format

    paths = path if isinstance(path, list) else [path]
    for p in paths:
        if not Path(p).is_file():
            return None
        try:
            detect_format(p)
        except (AinuError, OSError):
            return None
    return read_layers


def read_layers(path: str | os.PathLike | list) -> list[tuple]:
    """napari layer data tuples of one file or a list of files: per file one points layer a
    channel and one image layer of the render. Errors name the file (napari shows them)."""
    from ..io import read

    paths = path if isinstance(path, list) else [path]
    out: list[tuple] = []
    for p in paths:
        out.extend(layers_of(read(p), name=Path(p).name))
    return out


def _channels(locs) -> list[tuple[int, str | None]]:
    """(id, the file's name for it or None) of each channel."""
    ids = np.unique(locs.channel) if locs.channel is not None else np.array([0])
    names = dict(locs.meta.channel_names or {})
    return [(int(c), None if names.get(int(c)) is None else str(names[int(c)])) for c in ids]


def _label(cid: int, cname: str | None) -> str:
    return cname or f"channel {cid}"


def layers_of(locs, *, name: str, seed: int = 0) -> list[tuple]:
    """Layer data tuples of one table of localizations: ``(data, kwargs, "points")`` per channel
    (rows are (y, x) in nm, napari's axis order) and ``(image, kwargs, "image")``."""
    rng = np.random.default_rng(seed)
    source = locs.meta.source_path
    out = []
    chans = _channels(locs)
    for k, (cid, cname) in enumerate(chans):
        sel = np.ones(len(locs), bool) if locs.channel is None else locs.channel == cid
        idx = np.flatnonzero(sel)
        subset = len(idx) > MAX_POINTS
        if subset:
            idx = np.sort(rng.choice(idx, MAX_POINTS, replace=False))
        data = np.column_stack([locs.y_nm[idx], locs.x_nm[idx]]).astype(np.float32)
        meta = {"source": source, "format": locs.meta.source_format, "channel": cid,
                "channel_name": cname, "n_localizations": int(sel.sum()),
                "shown": len(idx), "subset": subset}  # fmt: skip
        label = f"{name} {_label(cid, cname)}"
        if subset:
            label += f" ({len(idx):,} of {int(sel.sum()):,})"
        kwargs = {"name": label, "size": 20.0, "face_color": _COLOURS[k % len(_COLOURS)],
                  "opacity": 0.6, "metadata": {META_KEY: meta}}  # fmt: skip
        out.append((data, kwargs, "points"))
    if len(locs):
        out.extend(_image_layers(locs, name, chans))
    return out


def _image_layers(locs, name: str, chans) -> list[tuple]:
    """The render of ``locs``, one image layer a channel (napari looks a returned layer up by
    its name: one name a layer), placed in nm."""
    from ..render import RenderSpec, render

    extent = max(float(np.ptp(locs.x_nm)), float(np.ptp(locs.y_nm)), 1.0)
    pixel = max(RENDER_PIXEL_NM, extent / RENDER_SIDE)
    spec = RenderSpec(pixel_nm=pixel, sigma_nm=max(20.0, pixel), size=0,
                      channels=tuple(c for c, _ in chans))  # fmt: skip
    r = render(locs, spec, device="cpu")
    p = float(r.pixel_nm)
    # napari puts a pixel's centre at its index: the render's pixel (0, 0) is centred half a
    # pixel from its corner
    place = {"scale": (p, p), "translate": (r.origin_nm[1] + p / 2, r.origin_nm[0] + p / 2)}
    meta = {META_KEY: {"source": locs.meta.source_path, "pixel_nm": p, "sigma_nm": spec.sigma_nm}}
    return [
        (
            r.image[k],
            {
                "name": f"{name} {_label(cid, cname)} render",
                **place,
                "colormap": _COLOURS[k % len(_COLOURS)],
                "blending": "additive",
                "metadata": meta,
            },
            "image",
        )
        for k, (cid, cname) in enumerate(chans)
    ]
