"""SCENMED's segmentation of widefield DAPI fields into centred 128 × 128 nucleus crops.

The steps and numbers are the paper's (Radhakrishnan et al. 2017, Methods) completed by its
public code where the text is silent (``methods/scenmed_and_nucleus_prediction.md`` §1.2):

0. a field whose maximum is below ``empty_below`` (1000 ADU) holds no nucleus;
1. background connected to the frame is removed by morphological reconstruction (the image's
   interior set to its minimum, reconstructed by dilation under the image; h-dome = image −
   reconstruction);
2. edges: Sobel of the h-dome;
3. markers: foreground where the edge image reaches its Otsu threshold, background where the
   h-dome is at or below the 1st percentile of its distinct values;
4. marker watershed on the edge image, binary opening with a disk of 6 px, connected
   components;
5. a region is kept only if its bounding box spans ≥ 50 px in at least one direction;
6. the 15 px along the frame (blurred by deconvolution) are cut off each region;
7. regions larger than 128 px in either direction, or of ≤ 2000 px, are dropped;
8. over-exposed nuclei (≥ 25 % of the pixels above 3700 ADU) are dropped;
9. each kept nucleus: pixels outside its region set to 0, centred (zero-padded) in 128 × 128.

Every region gets a row in the QC table with the reason it was dropped (or ``kept``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["SegmentConfig", "Segmentation", "segment_field", "crop_centred", "DROP_REASONS"]

#: The QC reasons, in the order the rules are applied.
DROP_REASONS = (
    "kept",
    "empty_field",
    "small_bbox",
    "touches_edge",
    "too_large",
    "too_small",
    "overexposed",
)


@dataclass(frozen=True)
class SegmentConfig:
    """The numbers of SCENMED's segmentation (all in pixels / 12-bit ADU; methods spec §1.2).

    Attributes
    ----------
    empty_below : float
        A field whose maximum is below this is empty.
    background_percentile : float
        The background marker: this percentile of the distinct values.
    opening_radius : int
        The morphological opening's disk.
    min_bbox, max_bbox : int
        A region's bounding box must be at least / at most this (px).
    edge_px : int
        The band along the frame cut off (the deconvolution edge).
    min_area : int
        A region must be larger than this (px).
    overexposed_adu, overexposed_fraction : float
        A nucleus with more than this fraction of pixels above this level is over-exposed.
    crop : int
        The side of the centred crops.
    drop_edge : bool
        Beyond the paper: drop nuclei cut by the edge band instead of keeping their cut part.
    """

    empty_below: float = 1000.0
    background_percentile: float = 1.0
    opening_radius: int = 6
    min_bbox: int = 50
    edge_px: int = 15
    max_bbox: int = 128
    min_area: int = 2000
    overexposed_adu: float = 3700.0
    overexposed_fraction: float = 0.25
    crop: int = 128
    drop_edge: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Segmentation:
    """A field's nuclei.

    Attributes
    ----------
    labels : ndarray
        0 = background, k = region k of ``table``.
    crops, masks : ndarray, shape (N, crop, crop)
        The kept nuclei's crops (float32) and masks.
    table : list of dict
        The QC table, one dict per region: id, reason, bbox, area, centroid, over-exposed
        fraction, edge_cut.
    """

    labels: np.ndarray
    crops: np.ndarray
    masks: np.ndarray
    table: list[dict]

    @property
    def kept(self) -> list[dict]:
        return [r for r in self.table if r["reason"] == "kept"]


def crop_centred(image: np.ndarray, mask: np.ndarray, bbox, size: int) -> tuple:
    """``image`` inside ``mask`` (0 outside), its bounding box centred in ``size`` × ``size``
    (zero padding; a box larger than ``size`` is cut symmetrically).

    Parameters
    ----------
    image, mask : ndarray
        The field and the nucleus's mask.
    bbox : (r0, c0, r1, c1)
        The nucleus's bounding box.
    size : int
        The crop's side.

    Returns
    -------
    (ndarray, ndarray)
        The crop (float32) and its mask.
    """
    r0, c0, r1, c1 = bbox
    sub = np.where(mask[r0:r1, c0:c1], image[r0:r1, c0:c1], 0).astype(np.float32)
    m = mask[r0:r1, c0:c1]
    out = np.zeros((size, size), np.float32)
    om = np.zeros((size, size), bool)
    h, w = sub.shape
    sy, sx = max((h - size) // 2, 0), max((w - size) // 2, 0)
    sub, m = sub[sy : sy + size, sx : sx + size], m[sy : sy + size, sx : sx + size]
    h, w = sub.shape
    oy, ox = (size - h) // 2, (size - w) // 2
    out[oy : oy + h, ox : ox + w] = sub
    om[oy : oy + h, ox : ox + w] = m
    return out, om


def _foreground(image: np.ndarray, cfg: SegmentConfig) -> np.ndarray:
    from skimage.filters import sobel, threshold_otsu
    from skimage.morphology import disk, opening, reconstruction
    from skimage.segmentation import watershed

    img = image.astype(np.float64)
    seed = img.copy()
    seed[1:-1, 1:-1] = img.min()
    hdome = img - reconstruction(seed, img, method="dilation")
    elevation = sobel(hdome)
    markers = np.zeros(img.shape, np.int32)
    levels = np.unique(hdome)
    markers[hdome <= np.percentile(levels, cfg.background_percentile)] = 1
    if np.ptp(elevation) > 0:
        markers[elevation >= threshold_otsu(elevation)] = 2
    ws = watershed(elevation, markers)
    return opening(ws == 2, disk(cfg.opening_radius))


def segment_field(image: np.ndarray, config: SegmentConfig | None = None) -> Segmentation:
    """Segment one widefield DAPI field (2-D, 12-bit ADU values) as SCENMED does.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        The field at SCENMED's pixel (0.215 µm: :func:`to_scenmed_pixel`).
    config : SegmentConfig, optional
        The rules' numbers (default: the paper's).

    Returns
    -------
    Segmentation
        The labels, the kept nuclei's crops and masks, and a QC row for every object.

    Examples
    --------
    >>> import numpy as np
    >>> from ainu_engine.scenmed import segment_field
    >>> yy, xx = np.mgrid[:256, :256]
    >>> field = 100 + 1500.0 * (((yy - 128) / 40) ** 2 + ((xx - 120) / 30) ** 2 < 1)
    >>> seg = segment_field(field)
    >>> [r["reason"] for r in seg.table], seg.crops.shape
    (['kept'], (1, 128, 128))
    """
    from skimage.measure import label, regionprops

    cfg = config or SegmentConfig()
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D field, got shape {image.shape}")
    empty = Segmentation(
        np.zeros(image.shape, np.int32),
        np.zeros((0, cfg.crop, cfg.crop), np.float32),
        np.zeros((0, cfg.crop, cfg.crop), bool),
        [],
    )
    if float(image.max()) < cfg.empty_below:
        empty.table.append({"id": 0, "reason": "empty_field", "max_adu": float(image.max())})
        return empty
    lab = label(_foreground(image, cfg))
    H, W = image.shape
    e = cfg.edge_px
    inner = np.zeros(image.shape, bool)
    inner[e : H - e, e : W - e] = True
    out_labels = np.zeros(image.shape, np.int32)
    crops, masks, table = [], [], []
    for rp in regionprops(lab):
        r0, c0, r1, c1 = rp.bbox
        row = {
            "id": int(rp.label),
            "bbox_r0": r0,
            "bbox_c0": c0,
            "bbox_r1": r1,
            "bbox_c1": c1,
            "area_px": int(rp.area),
            "centroid_y": float(rp.centroid[0]),
            "centroid_x": float(rp.centroid[1]),
        }
        table.append(row)
        region = lab == rp.label
        if max(r1 - r0, c1 - c0) < cfg.min_bbox:
            row["reason"] = "small_bbox"
            continue
        cut = region & inner
        row["edge_cut"] = bool(cut.sum() < region.sum())
        if row["edge_cut"] and cfg.drop_edge:
            row["reason"] = "touches_edge"
            continue
        if not cut.any():
            row["reason"] = "touches_edge"
            continue
        ys, xs = np.nonzero(cut)
        r0, c0, r1, c1 = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
        area = int(cut.sum())
        row.update(bbox_r0=int(r0), bbox_c0=int(c0), bbox_r1=int(r1), bbox_c1=int(c1))
        row["area_px"] = area
        vals = image[cut]
        row["overexposed_fraction"] = float(np.mean(vals > cfg.overexposed_adu))
        if r1 - r0 > cfg.max_bbox or c1 - c0 > cfg.max_bbox:
            row["reason"] = "too_large"
        elif area <= cfg.min_area:
            row["reason"] = "too_small"
        elif row["overexposed_fraction"] >= cfg.overexposed_fraction:
            row["reason"] = "overexposed"
        else:
            row["reason"] = "kept"
            c, m = crop_centred(image, cut, (r0, c0, r1, c1), cfg.crop)
            crops.append(c)
            masks.append(m)
            out_labels[cut] = rp.label
    return Segmentation(
        out_labels,
        np.stack(crops) if crops else empty.crops,
        np.stack(masks) if masks else empty.masks,
        table,
    )


def match_instances(pred: np.ndarray, truth: np.ndarray, *, iou: float = 0.5) -> dict:
    """Precision / recall of predicted instances against ground-truth instances: a predicted
    region is a true positive if its best IoU with a truth region is ≥ ``iou`` (one-to-one for
    IoU > 0.5, which makes the best match unique).

    Parameters
    ----------
    pred, truth : ndarray
        Instance label images (0 = background).
    iou : float, default 0.5
        The IoU a true positive needs.

    Returns
    -------
    dict
        Counts, precision and recall.
    """
    p_ids = [int(v) for v in np.unique(pred) if v]
    t_ids = [int(v) for v in np.unique(truth) if v]
    tp, ious = 0, []
    matched: set[int] = set()
    for p in p_ids:
        pm = pred == p
        cand = np.unique(truth[pm])
        best, best_t = 0.0, None
        for t in cand:
            if t == 0 or t in matched:
                continue
            tm = truth == t
            v = np.logical_and(pm, tm).sum() / np.logical_or(pm, tm).sum()
            if v > best:
                best, best_t = float(v), int(t)
        if best >= iou and best_t is not None:
            tp += 1
            matched.add(best_t)
            ious.append(best)
    return {
        "n_predicted": len(p_ids),
        "n_truth": len(t_ids),
        "true_positives": tp,
        "precision": tp / len(p_ids) if p_ids else float("nan"),
        "recall": tp / len(t_ids) if t_ids else float("nan"),
        "mean_iou": float(np.mean(ious)) if ious else float("nan"),
    }
