"""Fields → nuclei: read, bring to SCENMED's pixel, segment, measure; and read back what
``ainu-engine widefield segment`` wrote."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FormatError, InputError
from ._features import feature_names, nucleus_features
from ._hcec import hc_ec_ratio
from ._io import Field, read_fields
from ._segment import SegmentConfig, segment_field

__all__ = [
    "SCENMED_PIXEL_UM",
    "NucleusTable",
    "to_scenmed_pixel",
    "segment_files",
    "read_manifest",
    "write_segmentation",
    "read_segmentation",
    "features_of",
]

#: The pixel every SCENMED size rule is written for (DeltaVision 60×): 0.215 µm.
SCENMED_PIXEL_UM = 0.215


def to_scenmed_pixel(f: Field, target_um: float = SCENMED_PIXEL_UM) -> tuple[np.ndarray, float]:
    """The field's image resampled to ``target_um`` pixels (bilinear, values kept), so the
    pixel rules (2000 px, 128 px, disk 6 …) keep their physical meaning; unchanged within 1 %.

    Parameters
    ----------
    f : Field
        The field.
    target_um : float
        The pixel to resample to (µm; SCENMED's 0.215).

    Returns
    -------
    (ndarray, float)
        The image and the scale factor applied."""
    scale = f.pixel_um / target_um
    if abs(scale - 1.0) <= 0.01:
        return f.image, 1.0
    from skimage.transform import rescale

    img = rescale(f.image, scale, order=1, preserve_range=True, anti_aliasing=scale < 1)
    return img.astype(np.float32), float(scale)


@dataclass
class NucleusTable:
    """Kept nuclei of many fields.

    Attributes
    ----------
    rows : list of dict
        One per region, kept or not; kept ones have ``crop``, their index in ``crops``.
    crops, masks : list of ndarray
        The kept nuclei's (128, 128) float32 crops and their masks.
    failed : list of (str, str)
        The inputs that failed: path, message.
    """

    rows: list[dict] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def kept(self) -> list[dict]:
        return [r for r in self.rows if r["reason"] == "kept"]

    def crop_array(self) -> np.ndarray:
        return np.stack(self.crops) if self.crops else np.zeros((0, 128, 128), np.float32)


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """A CSV with ``path`` and ``label`` (and optionally ``group``), paths relative to it.

    Parameters
    ----------
    path : str or os.PathLike
        The manifest.

    Returns
    -------
    list of dict
        ``path`` (resolved), ``label``, ``group`` per row.

    Raises
    ------
    ainu_engine.errors.InputError
        No such file.
    ainu_engine.errors.FormatError
        No ``path`` or ``label`` column.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("manifest not found", path=p)
    with open(p, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "path" not in rows[0] or "label" not in rows[0]:
        raise FormatError("a manifest needs the columns path and label", path=p)
    for r in rows:
        q = Path(r["path"])
        r["path"] = str(q if q.is_absolute() else p.parent / q)
        r.setdefault("group", "")
    return rows


def segment_files(
    inputs: list[dict],
    *,
    pixel_um: float | None = None,
    config: SegmentConfig | None = None,
    on_file=None,
    on_error=None,
) -> NucleusTable:
    """Segment every field of ``inputs`` (dicts with ``path`` and optional ``label``,
    ``group``). A file that fails is recorded in ``failed`` (and passed to ``on_error``) and the
    batch goes on.

    Parameters
    ----------
    inputs : list of dict
        The fields (:func:`expand_fields`).
    pixel_um : float, optional
        The pixel size of files that state none (or to override them).
    config : SegmentConfig, optional
        The segmentation's numbers.
    on_file : callable, optional
        Called after each file.
    on_error : callable, optional
        Called with ``(error, item)`` for each file that fails.

    Returns
    -------
    NucleusTable
    """
    from ..errors import AinuError

    cfg = config or SegmentConfig()
    out = NucleusTable()
    for item in inputs:
        path = item["path"]
        try:
            fields_ = read_fields(path, pixel_um=pixel_um)
        except AinuError as err:
            out.failed.append((str(path), str(err)))
            if on_error is not None:
                on_error(err, item)
            if on_file is not None:
                on_file()
            continue
        for f in fields_:
            img, scale = to_scenmed_pixel(f)
            seg = segment_field(img, cfg)
            label = item.get("label") or f.label or ""
            for r in seg.table:
                row = {
                    "path": str(path),
                    "field": f.name,
                    "image": f.index,
                    "label": label,
                    "group": item.get("group", ""),
                    "pixel_um": SCENMED_PIXEL_UM if scale != 1.0 else f.pixel_um,
                    "resampled": scale != 1.0,
                    **r,
                }
                out.rows.append(row)
            kept = [r for r in out.rows[len(out.rows) - len(seg.table) :] if r["reason"] == "kept"]
            for r, c, m in zip(kept, seg.crops, seg.masks, strict=True):
                r["crop"] = len(out.crops)
                out.crops.append(c)
                out.masks.append(m)
        if on_file is not None:
            on_file()
    return out


_COLUMNS = (
    "path", "field", "image", "label", "group", "id", "reason", "crop", "pixel_um",
    "resampled", "bbox_r0", "bbox_c0", "bbox_r1", "bbox_c1", "area_px", "centroid_y",
    "centroid_x", "overexposed_fraction", "edge_cut", "max_adu",
)  # fmt: skip


def write_segmentation(table: NucleusTable, out: str | os.PathLike) -> dict:
    """``out/nuclei.csv`` (every region with its reason), ``out/crops.tif`` and
    ``out/masks.tif`` (kept nuclei, row ``crop`` of the table), written via temporary names so
    a crash leaves no half-written file.

    Parameters
    ----------
    table : NucleusTable
        The segmented nuclei.
    out : str or os.PathLike
        The folder (created).

    Returns
    -------
    dict
        Counts per reason."""
    import tifffile

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    crops = table.crop_array()
    masks = (
        np.stack(table.masks).astype(np.uint8) if table.masks else np.zeros((0, 128, 128), np.uint8)
    )
    for name, arr in (("crops.tif", crops.astype(np.float32)), ("masks.tif", masks)):
        tmp = out / f".{name}.tmp"
        tifffile.imwrite(tmp, arr, metadata={"axes": "QYX"} if arr.ndim == 3 else None)
        os.replace(tmp, out / name)
    tmp = out / ".nuclei.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for r in table.rows:
            w.writerow({k: r.get(k, "") for k in _COLUMNS})
    os.replace(tmp, out / "nuclei.csv")
    counts: dict[str, int] = {}
    for r in table.rows:
        counts[r["reason"]] = counts.get(r["reason"], 0) + 1
    return counts


def read_segmentation(folder: str | os.PathLike) -> NucleusTable:
    """Read back a folder written by :func:`write_segmentation`.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder.

    Returns
    -------
    NucleusTable
    """
    import tifffile

    d = Path(folder)
    for name in ("nuclei.csv", "crops.tif"):
        if not (d / name).is_file():
            raise InputError(f"not a segmentation folder: {name} missing", path=d)
    with open(d / "nuclei.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    crops = tifffile.imread(d / "crops.tif").astype(np.float32)
    if crops.ndim == 2:
        crops = crops[None]
    masks = (
        tifffile.imread(d / "masks.tif").astype(bool) if (d / "masks.tif").exists() else crops > 0
    )
    if masks.ndim == 2:
        masks = masks[None]
    t = NucleusTable(rows=rows)
    for r in rows:
        if r["reason"] == "kept":
            i = int(r["crop"])
            if i >= len(crops):
                raise FormatError(f"row crop {i} but crops.tif holds {len(crops)}", path=d)
            r["crop"] = len(t.crops)
            t.crops.append(crops[i])
            t.masks.append(masks[i])
    return t


def features_of(
    table: NucleusTable, *, layout: str = "paper", alpha: float = 1.0, progress=None
) -> tuple[list[dict], list[str]]:
    """One row per kept nucleus: its identity columns, the :func:`feature_names` features
    and ``hc_ec`` (:func:`~ainu_engine.scenmed.hc_ec_ratio`, α = ``alpha``).

    Parameters
    ----------
    table : NucleusTable
        The segmented nuclei.
    layout : {"paper", "code"}
        The feature layout (104 or 120 features).
    alpha : float
        The HC threshold's SD multiple (an assumption: see :data:`HC_RULE`).
    progress : callable, optional
        Called after each nucleus.

    Returns
    -------
    rows : list of dict
    names : list of str
        The feature columns.
    """
    names = feature_names(layout)
    rows = []
    for r in table.kept:
        crop = table.crops[int(r["crop"])]
        v = nucleus_features(crop, layout=layout)
        hc = hc_ec_ratio(crop, alpha=alpha)
        row = {k: r[k] for k in ("path", "field", "image", "label", "group", "id")}
        row.update(dict(zip(names, v.tolist(), strict=True)))
        row["hc_ec"] = hc["hc_ec"]
        rows.append(row)
        if progress is not None:
            progress()
    return rows, names
