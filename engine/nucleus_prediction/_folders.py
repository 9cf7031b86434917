"""Evaluate folders of generated nucleus images against the real ones (what
``ainu-engine nucleus evaluate`` runs)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError
from ._evaluate import (
    chance_circular_cell,
    chance_image,
    evaluate_positions,
    image_metrics,
    log10_binomial_tail,
    paper_numbers,
)

__all__ = ["evaluate_folders", "pair_images", "read_image"]

_PREFIX = re.compile(r"^(nucleus|predicted|pred|generated|fake|real)[_-]", re.I)
_IMAGES = (".tif", ".tiff", ".png")


def _key(p: Path) -> str:
    return _PREFIX.sub("", p.stem).lower()


def _images(d: Path) -> dict[str, Path]:
    return {
        _key(p): p for p in sorted(d.rglob("*"))
        if p.suffix.lower() in _IMAGES and not p.name.lower().startswith(("actin", "merged"))
        and not p.stem.lower().endswith(("_nuclei", "_labels"))  # ground-truth label images
    }  # fmt: skip


def pair_images(
    pred_dir: str | os.PathLike, truth_dir: str | os.PathLike
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(generated, real) files paired by name.

    A leading ``Nucleus_``/``Predicted_``/... and the suffix are ignored, in the folders and
    their subfolders (the NuclearPrediction layout's tile folders with ``Nucleus_*`` beside
    ``Actin_*``); ``Actin_*``, ``Merged_*`` and label images are skipped.

    Parameters
    ----------
    pred_dir, truth_dir : path
        The folders of generated and of real nucleus images.

    Returns
    -------
    pairs : list of (Path, Path)
    unpaired : list of str
        The names found on one side only.

    Raises
    ------
    ainu_engine.errors.InputError
        A folder does not exist.
    """
    pred_dir, truth_dir = Path(pred_dir), Path(truth_dir)
    for d in (pred_dir, truth_dir):
        if not d.is_dir():
            raise InputError("not a folder", path=d)
    pred, truth = _images(pred_dir), _images(truth_dir)
    pairs = [(pred[k], truth[k]) for k in sorted(pred) if k in truth]
    return pairs, sorted(set(pred) ^ set(truth))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A PNG or TIFF as float in [0, 1] (integer types by their range), H×W or H×W×3.

    Parameters
    ----------
    path : str or os.PathLike
        The image.

    Returns
    -------
    ndarray
        H×W or H×W×3 (an alpha channel dropped, channels last).
    """
    p = Path(path)
    if p.suffix.lower() == ".png":
        from PIL import Image

        img = np.asarray(Image.open(p))
    else:
        import tifffile

        img = tifffile.imread(p)
    # integer images to [0, 1] by their type's range (8-bit RGB in the paper's layout)
    img = img / np.iinfo(img.dtype).max if img.dtype.kind in "ui" else img.astype(np.float64)
    if img.ndim == 3 and img.shape[0] in (3, 4) and img.shape[-1] not in (3, 4):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    return img


def evaluate_folders(
    pred_dir: str | os.PathLike,
    truth_dir: str | os.PathLike,
    *,
    pixel_um: float,
    out: str | os.PathLike | None = None,
    matching: str = "greedy",
    centre: str = "bbox",
    min_area: int = 50,
    threshold: float | str = "otsu",
    cell_radius_um: float | None = None,
    on_image: Callable[[], None] | None = None,
) -> dict:
    """The paper's evaluation of generated nucleus images against the real ones.

    Binarise (Otsu, or a fixed ``threshold``), components of at least ``min_area`` px, match
    each generated nucleus to the real one whose bounding box overlaps it most, centroid
    distances in µm, the fractions within 4 µm and 1 µm with exact 95 % intervals; the
    image-level chance model (and the circular-cell one with ``cell_radius_um``) with exact
    binomial tails; L1, PSNR and SSIM of the images; the paper's numbers recomputed beside them
    (Vasudevan et al., PLoS ONE 2022).

    Parameters
    ----------
    pred_dir, truth_dir : path
        Folders of generated and of real nucleus images (:func:`pair_images`).
    pixel_um : float
        The pixel size (µm).
    out : path, optional
        Where to write ``evaluation.json``, ``distances.csv`` and ``distances.png`` (created).
    matching : {"greedy", "hungarian"}
        The paper's greedy matching, or one-to-one.
    centre : {"bbox", "mask"}
        Bounding-box centres (the paper) or mask centroids.
    min_area : int, default 50
        The smallest component (px).
    threshold : "otsu" or float
        A fixed level in units of the image type's range, 0-3 (RGB: on the channels' sum).
    cell_radius_um : float, optional
        Adds the circular-cell chance model.
    on_image : callable, optional
        Called after each pair is read (progress).

    Returns
    -------
    dict
        :func:`evaluate_positions`'s result with ``threshold``, ``chance``, ``image_metrics``,
        ``paper``, ``n_pairs`` and ``unpaired``.

    Raises
    ------
    ValueError
        A bad ``matching``, ``centre`` or ``threshold``.
    ainu_engine.errors.InputError
        A folder is missing, or no generated image has a real partner.
    """
    if matching not in ("greedy", "hungarian"):
        raise ValueError(f"matching must be greedy or hungarian, got {matching!r}")
    if centre not in ("bbox", "mask"):
        raise ValueError(f"centre must be bbox or mask, got {centre!r}")
    level = _level(threshold)
    pairs, unpaired = pair_images(pred_dir, truth_dir)
    if not pairs:
        raise InputError("no generated image has a real image of the same name", path=pred_dir)
    images = []
    for p, t in pairs:
        images.append((read_image(p), read_image(t)))
        if on_image is not None:
            on_image()
    res = evaluate_positions(images, pixel_um=pixel_um, method=matching, centre=centre,
                             min_area=min_area, threshold=level)  # fmt: skip
    res["threshold"] = level
    res["chance"] = _chance(images, res, pixel_um, cell_radius_um)
    res["image_metrics"] = _image_metrics(images, res["per_image"])
    res["paper"] = paper_numbers()
    res["n_pairs"], res["unpaired"] = len(pairs), unpaired
    if out is not None:
        _write(res, Path(out))
    return res


def _level(threshold: float | str) -> float | str:
    if threshold == "otsu":
        return threshold
    try:
        level = float(threshold)
    except (TypeError, ValueError):
        level = -1.0
    if not 0.0 <= level <= 3.0:
        raise ValueError(f"threshold must be otsu or a level in [0, 3], got {threshold!r}")
    return level


def _chance(images, res: dict, pixel_um: float, cell_radius_um: float | None) -> dict:
    side = float(np.sqrt(np.mean([a.shape[0] * a.shape[1] for a, _ in images]))) * pixel_um
    chance = {"image_level": {"p0": chance_image(4.0, side), "image_side_um": side}}
    if cell_radius_um:
        chance["circular_cell"] = {
            "p0": chance_circular_cell(4.0, cell_radius_um, 4.0),
            "cell_radius_um": cell_radius_um,
            "nucleus_radius_um": 4.0,
        }
    k, n = res["within_4um"]["k"], res["within_4um"]["n"]
    for c in chance.values():
        c["log10_p_exact"] = log10_binomial_tail(k, n, c["p0"]) if n and c["p0"] < 1 else None
    return chance


def _image_metrics(images, per_image: list[dict]) -> dict:
    """L1, PSNR and SSIM (as the public code: both images resized to 256²) of each pair, on
    the brightest channel (the nucleus channel of RGB exports; the empty ones would inflate
    SSIM), added to ``per_image``; their means (PSNR over the finite values: identical images
    have none)."""
    for (g, r), rec in zip(images, per_image, strict=True):
        g2, r2 = (x.max(axis=-1) if x.ndim == 3 else x for x in (g, r))
        if g2.shape == r2.shape:
            rec.update(image_metrics(g2, r2))
    got = [rec for rec in per_image if "l1" in rec]
    psnr = [rec["psnr"] for rec in got if np.isfinite(rec["psnr"])]
    return {
        "n_images": len(got),
        "size": 256,
        "l1": float(np.mean([rec["l1"] for rec in got])) if got else None,
        "psnr": float(np.mean(psnr)) if psnr else None,
        "ssim": float(np.mean([rec["ssim"] for rec in got])) if got else None,
    }


def _write(res: dict, out: Path) -> None:
    import csv

    from ..strict_json import dumps

    out.mkdir(parents=True, exist_ok=True)
    from ..provenance import stamp

    (out / "evaluation.json").write_text(dumps({**stamp(), **res}, indent=2))
    with open(out / "distances.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["distance_um"])
        w.writerows([[d] for d in res["distances_um"]])
    _plot(res["distances_um"], out / "distances.png")


def _plot(d, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    if d:
        ax.hist(d, bins=40, color="#4c72b0")
    for t in (1.0, 4.0):
        ax.axvline(t, color="k", ls="--", lw=0.8)
        ax.text(t, ax.get_ylim()[1] * 0.95, f" {t:g} µm", fontsize=8, va="top")
    ax.set_xlabel("distance to the matched real nucleus (µm)")
    ax.set_ylabel("generated nuclei")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
