"""Calls back into Fiji: for every file whose nuclei came from a field (an ROI set beside it, or
detection), ``OUT/rois/<file>.roi.zip`` — one ImageJ ROI per nucleus, named
``<nucleus id> <call> <p>``, coloured by call, with the call, the probabilities and the QC flags
in the ROI's properties, in the field's camera pixels (0-based, as Fiji saves ROIs over the
camera image) so that the set opens on the field's image in Fiji's ROI Manager."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["ROIS_DIR", "write_roi_sets", "CALL_COLORS"]

ROIS_DIR = "rois"
#: the call's colour (RGB), in class order; the report uses the same
CALL_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
_log = logging.getLogger("ainu_engine.screen")


def _argb(hex_rgb: str) -> bytes:
    return bytes([255, *bytes.fromhex(hex_rgb.lstrip("#"))])


def write_roi_sets(out: Path, table, classes, *, camera_pixel_nm: float | None = None) -> dict:
    """Write the ROI sets of ``table`` (the screen's results) into ``out/rois``; returns
    ``{"files": [...], "skipped": {source: why}}``. The camera pixel is the file's own, else
    ``camera_pixel_nm`` (the screen's ``--camera-pixel-nm``); a file with neither (an nm-only
    field, detected) has no camera pixels to place ROIs in: skipped, with why."""
    import roifile

    written, skipped = [], {}
    if table is None or "outline_nm" not in table.column_names:
        return {"files": written, "skipped": skipped}
    has_outline = table.column("outline_nm").is_valid()
    if not has_outline.to_numpy(zero_copy_only=False).any():  # whole-file nuclei: nothing to do
        return {"files": written, "skipped": skipped}
    rows = [r for r in table.filter(has_outline).to_pylist() if r.get("outline_nm")]
    by_source: dict[str, list[dict]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    if not by_source:
        return {"files": written, "skipped": skipped}
    folder = out / ROIS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stems = [Path(s).name for s in by_source]
    for source, nuclei in sorted(by_source.items()):
        cam = nuclei[0].get("camera_pixel_nm") or camera_pixel_nm
        if not cam:
            skipped[source] = "no camera pixel size (pass --camera-pixel-nm to place the ROIs)"
            continue
        rois = []
        for r in sorted(nuclei, key=lambda r: str(r["nucleus_id"])):
            px = np.asarray(r["outline_nm"], np.float64) / float(cam)
            roi = roifile.ImagejRoi.frompoints(px)
            call = r["predicted"]
            p = r.get(f"p_{call}")
            roi.name = f"{r['nucleus_id']} {call} {p:.2f}" if p is not None else str(call)
            k = list(classes).index(call) if call in classes else len(CALL_COLORS) - 1
            roi.stroke_color = _argb(CALL_COLORS[k % len(CALL_COLORS)])
            props = {"call": str(call), "qc": r.get("qc_flags") or "ok",
                     "source": Path(source).name}  # fmt: skip
            props.update({f"p_{c}": f"{r[f'p_{c}']:.4f}" for c in classes if f"p_{c}" in r})
            roi.properties = props
            rois.append(roi)
        name = Path(source).name
        if stems.count(name) > 1:  # two fields of the same name in different folders
            name += "-" + hashlib.sha256(source.encode()).hexdigest()[:8]
        path = folder / f"{name}.roi.zip"
        # roiwrite makes a zip of a name ending in .zip: write one in a private folder beside
        # the target, then rename it into place (complete or not at all)
        with tempfile.TemporaryDirectory(prefix=".rois-", dir=folder) as tmp:
            part = Path(tmp) / path.name
            roifile.roiwrite(part, rois, mode="w")
            os.replace(part, path)
        written.append(str(path))
    for source, why in skipped.items():
        _log.warning("no ROI set for %s: %s", source, why)
    return {"files": written, "skipped": skipped}
