"""A self-contained HTML report of a widefield screen: counts per call, a table of every
nucleus, and a gallery of the crops framed in their call's colour (with the attribution map
beside them where one was made)."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np

__all__ = ["write_report", "thumbnail_png"]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def thumbnail_png(img: np.ndarray, *, cmap: str = "gray", signed: bool = False) -> str:
    """A PNG data URI of a 2-D array (grey, scaled to its 99.5th percentile; ``signed``: a
    diverging map centred on 0, NaN transparent).

    Parameters
    ----------
    img : ndarray, shape (H, W)
        The image.
    cmap : str
        A matplotlib colour map (for unsigned images).
    signed : bool
        A diverging map centred on 0.

    Returns
    -------
    str
        ``data:image/png;base64,...``"""
    from matplotlib import colormaps
    from PIL import Image

    a = np.asarray(img, np.float64)
    if signed:
        lim = float(np.nanmax(np.abs(a))) if np.isfinite(a).any() else 1.0
        v = (np.nan_to_num(a) / (lim or 1.0) + 1) / 2
        rgba = colormaps[cmap](v)
        rgba[..., 3] = np.where(np.isfinite(a), 1.0, 0.0)
    else:
        hi = float(np.percentile(a, 99.5)) or 1.0
        rgba = colormaps[cmap](np.clip(a / hi, 0, 1))
    buf = io.BytesIO()
    Image.fromarray((rgba * 255).astype(np.uint8)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def write_report(
    path: str | os.PathLike,
    rows: list[dict],
    crops: dict[int, np.ndarray],
    classes: list[str],
    *,
    maps: dict[int, np.ndarray] | None = None,
    map_kind: str = "",
    model: str = "",
    gallery: int = 200,
) -> Path:
    """Write the report of a widefield screen (``report.html``).

    Parameters
    ----------
    path : str or os.PathLike
        The HTML file.
    rows : list of dict
        The screen's rows (kept nuclei have ``call`` and ``p_<class>``; ``crop`` indexes
        ``crops``).
    crops : dict of int to ndarray
        The nuclei's crops.
    classes : list of str
        The model's classes.
    maps : dict of int to ndarray, optional
        Evidence maps per crop.
    map_kind : str
        What the maps are (``occlusion``, ``patch map``).
    model : str
        The model's name, shown.
    gallery : int
        At most this many cards.

    Returns
    -------
    Path
    """
    from ..io import atomic_path

    colour = {c: _COLOURS[i % len(_COLOURS)] for i, c in enumerate(classes)}
    kept = [r for r in rows if r.get("reason") == "kept"]
    counts = {c: sum(1 for r in kept if r.get("call") == c) for c in classes}
    dropped: dict[str, int] = {}
    for r in rows:
        if r.get("reason") != "kept":
            dropped[r["reason"]] = dropped.get(r["reason"], 0) + 1
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>widefield screen</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}"
        ".card{display:inline-block;margin:4px;padding:3px;border:3px solid;font-size:11px;"
        "text-align:center;vertical-align:top}.card img{width:128px;height:128px;"
        "image-rendering:pixelated}</style></head><body>",
        f"<h1>Widefield screen</h1><p>model: {e(model)} — {len(kept)} nuclei called, "
        f"{sum(dropped.values())} objects dropped by the segmentation rules"
        + (f" ({e(', '.join(f'{k} {v}' for k, v in sorted(dropped.items())))})" if dropped else "")
        + "</p><h2>Calls</h2><table><tr><th>call</th><th>nuclei</th></tr>",
    ]
    for c in classes:
        parts.append(f"<tr><td style='color:{colour[c]}'>{e(c)}</td><td>{counts[c]}</td></tr>")
    parts.append("</table>")
    if maps:
        parts.append(
            f"<p>{e(map_kind)}: blue = evidence for the call, red = against (occlusion); "
            "patch maps: the call's mean patch probability.</p>"
        )
    parts.append(f"<h2>Nuclei (first {min(gallery, len(kept))} of {len(kept)})</h2>")
    for r in kept[:gallery]:
        c = r.get("call")
        img = thumbnail_png(crops[r["crop"]])
        m = ""
        if maps and r["crop"] in maps:
            signed = map_kind == "occlusion"
            m = f"<img src='{thumbnail_png(maps[r['crop']], cmap='RdBu' if signed else 'viridis', signed=signed)}'>"  # noqa: E501
        p = r.get(f"p_{c}", float("nan")) if c else float("nan")
        parts.append(
            f"<div class='card' style='border-color:{colour.get(c, '#999')}'><img src='{img}'>"
            f"{m}<br>{e(str(c))} {p:.2f}<br>{e(Path(str(r['path'])).name)} #{r['id']}</div>"
        )
    parts.append("<h2>All nuclei</h2><table><tr><th>file</th><th>id</th><th>call</th>")
    parts += [f"<th>p({e(c)})</th>" for c in classes]
    parts.append("<th>area px</th></tr>")
    for r in kept:
        parts.append(
            f"<tr><td>{e(Path(str(r['path'])).name)}</td><td>{r['id']}</td>"
            f"<td>{e(str(r.get('call')))}</td>"
            + "".join(f"<td>{r.get(f'p_{c}', float('nan')):.3f}</td>" for c in classes)
            + f"<td>{r.get('area_px', '')}</td></tr>"
        )
    parts.append("</table></body></html>")
    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(parts), encoding="utf-8")
    return path
