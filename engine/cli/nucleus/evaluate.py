"""``ainu-engine nucleus evaluate PRED_DIR TRUTH_DIR --pixel-um P --out DIR``: the paper's
matching statistics (:func:`ainu_engine.nucleus_prediction.evaluate_folders`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .._options import JsonOpt
from .._output import Output


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
    from ...nucleus_prediction import evaluate_folders, pair_images

    for name, value, ok in (("--matching", matching, ("greedy", "hungarian")),
                            ("--centre", centre, ("bbox", "mask"))):  # fmt: skip
        if value not in ok:
            raise typer.BadParameter(f"{name} must be {' or '.join(ok)}, got {value!r}")
    o = Output(json_lines=json)
    pairs, unpaired = pair_images(pred_dir, truth_dir)
    if unpaired:
        o.warn(f"{len(unpaired)} images without a partner ignored (e.g. {unpaired[0]})")
    with o.progress(len(pairs), "reading") as step:
        try:
            res = evaluate_folders(pred_dir, truth_dir, pixel_um=pixel_um, out=out,
                                   matching=matching, centre=centre, min_area=min_area,
                                   threshold=threshold, cell_radius_um=cell_radius_um,
                                   on_image=step)  # fmt: skip
        except ValueError as err:
            raise typer.BadParameter(f"--{err}") from err
    drop = ("distances_um", "per_image", "paper", "n_pairs", "unpaired")
    summary = {k: v for k, v in res.items() if k not in drop}
    f4, f1 = res["within_4um"], res["within_1um"]
    o.record(
        summary,
        f"{res['n_generated']} generated / {res['n_real']} real nuclei in {res['n_pairs']} "
        f"images: within 4 µm {f4['fraction']:.1%} ({f4['k']}/{f4['n']}, 95 % CI "
        f"{f4['ci95'][0]:.1%}-{f4['ci95'][1]:.1%}), within 1 µm {f1['fraction']:.1%} -> "
        f"{escape(str(out))}",
    )
