"""``ainu-engine nucleus evaluate PRED_DIR TRUTH_DIR --pixel-um P --out DIR``: the paper's
matching statistics (ainu_engine.nucleus_prediction)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .._options import JsonOpt
from .._output import Output

_PREFIX = re.compile(r"^(nucleus|predicted|pred|generated|fake|real)[_-]", re.I)
_IMAGES = (".tif", ".tiff", ".png")


def _key(p: Path) -> str:
    return _PREFIX.sub("", p.stem).lower()


def pair_images(pred_dir: Path, truth_dir: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(generated, real) files paired by name, a leading ``Nucleus_``/``Predicted_``/... and
    the suffix ignored, in the folders and their subfolders (the NuclearPrediction layout's
    tile folders with ``Nucleus_*`` beside ``Actin_*``);
    ``Actin_*`` and ``Merged_*`` files are skipped. Returns the pairs and the unpaired names."""

    def images(d: Path):
        return {
            _key(p): p for p in sorted(d.rglob("*"))
            if p.suffix.lower() in _IMAGES and not p.name.lower().startswith(("actin", "merged"))
            and not p.stem.lower().endswith(("_nuclei", "_labels"))  # ground-truth label images
        }  # fmt: skip

    from ...errors import InputError

    for d in (pred_dir, truth_dir):
        if not d.is_dir():
            raise InputError("not a folder", path=d)
    pred, truth = images(pred_dir), images(truth_dir)
    pairs = [(pred[k], truth[k]) for k in sorted(pred) if k in truth]
    unpaired = sorted(set(pred) ^ set(truth))
    return pairs, unpaired


def _read(p: Path):
    import numpy as np

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


def evaluate(
    pred_dir: Annotated[Path, typer.Argument(help="Folder of generated nucleus images.")],
    truth_dir: Annotated[Path, typer.Argument(help="Folder of real nucleus images (same names).")],
    pixel_um: Annotated[float, typer.Option("--pixel-um", min=0.0, help="Pixel size in µm.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created).")],
    matching: Annotated[
        str, typer.Option(help="greedy (the paper: each generated to its best box) or hungarian.")
    ] = "greedy",
    centre: Annotated[
        str, typer.Option(help="bbox (the paper: box centres) or mask (mask centroids).")
    ] = "bbox",
    min_area: Annotated[
        int, typer.Option("--min-area", min=1, help="Smallest component (px).")
    ] = 50,
    threshold: Annotated[
        str,
        typer.Option(
            help="otsu (per image) or a fixed level in units of the image type's range, "
            "0-3 (RGB: on the channels' sum): an empty prediction then finds no nuclei."
        ),
    ] = "otsu",
    cell_radius_um: Annotated[
        float | None,
        typer.Option("--cell-radius-um", help="Cell radius for the circular-cell chance model."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Evaluate generated nucleus images against the real ones as Vasudevan et al. (2022) did:
    binarise (Otsu, or a fixed --threshold), components of at least --min-area px, match each
    generated nucleus to the real one whose bounding box overlaps it most, centroid distances in
    µm, and the fractions within 4 µm and 1 µm over generated and over real nuclei with exact
    (Clopper-Pearson) 95 % intervals; the image-level chance model (and the circular-cell one
    with --cell-radius-um) with exact binomial tails; L1, PSNR and SSIM of the images; the
    paper's own numbers recomputed beside them. Writes evaluation.json, distances.csv and
    distances.png.

    Example: ainu-engine nucleus evaluate pred/ truth/ --pixel-um 0.41 --out eval/ --json
    """
    import csv

    import numpy as np

    from ...nucleus_prediction import (
        chance_circular_cell,
        chance_image,
        evaluate_positions,
        log10_binomial_tail,
        paper_numbers,
    )
    from ...strict_json import dumps

    if matching not in ("greedy", "hungarian"):
        raise typer.BadParameter(f"--matching must be greedy or hungarian, got {matching!r}")
    if centre not in ("bbox", "mask"):
        raise typer.BadParameter(f"--centre must be bbox or mask, got {centre!r}")
    level: float | str = threshold
    if threshold != "otsu":
        try:
            level = float(threshold)
        except ValueError:
            level = -1.0
        if not 0.0 <= level <= 3.0:
            raise typer.BadParameter(f"--threshold must be otsu or a level in [0, 3], got "
                                     f"{threshold!r}")  # fmt: skip
    o = Output(json_lines=json)
    pairs, unpaired = pair_images(pred_dir, truth_dir)
    if not pairs:
        from ...errors import InputError

        raise InputError("no generated image has a real image of the same name", path=pred_dir)
    if unpaired:
        o.warn(f"{len(unpaired)} images without a partner ignored (e.g. {unpaired[0]})")
    images = []
    with o.progress(len(pairs), "reading") as step:
        for p, t in pairs:
            images.append((_read(p), _read(t)))
            step()
    res = evaluate_positions(images, pixel_um=pixel_um, method=matching, centre=centre,
                             min_area=min_area, threshold=level)  # fmt: skip
    res["threshold"] = level
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
    res["chance"] = chance
    res["image_metrics"] = _image_metrics(images, res["per_image"])
    res["paper"] = paper_numbers()
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(dumps(res, indent=2))
    with open(out / "distances.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["distance_um"])
        w.writerows([[d] for d in res["distances_um"]])
    _plot(res["distances_um"], out / "distances.png")
    summary = {k: v for k, v in res.items() if k not in ("distances_um", "per_image", "paper")}
    f4, f1 = res["within_4um"], res["within_1um"]
    o.record(
        summary,
        f"{res['n_generated']} generated / {res['n_real']} real nuclei in {len(pairs)} images: "
        f"within 4 µm {f4['fraction']:.1%} ({f4['k']}/{f4['n']}, 95 % CI "
        f"{f4['ci95'][0]:.1%}-{f4['ci95'][1]:.1%}), within 1 µm {f1['fraction']:.1%} -> "
        f"{escape(str(out))}",
    )


def _image_metrics(images, per_image: list[dict]) -> dict:
    """L1, PSNR and SSIM (as the public code: both images resized to 256²) of each pair, on
    the brightest channel (the nucleus channel of RGB exports; the empty ones would inflate
    SSIM), added to ``per_image``; their means (PSNR over the finite values: identical images
    have none)."""
    import numpy as np

    from ...nucleus_prediction import image_metrics

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
