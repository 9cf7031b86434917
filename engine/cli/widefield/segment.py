"""``ainu-engine widefield segment FIELD... --out DIR``: SCENMED's segmentation
(ainu_engine.scenmed.segment_field) with a QC table of why each object was dropped."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ...scenmed import expand_fields
from .._options import JsonOpt
from .._output import Output
from ._common import PixelUmOpt


def segment(
    inputs: Annotated[
        list[str], typer.Argument(help="TIFF / OME-TIFF / SCENMED .h5 fields, folders, manifests.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created).")],
    pixel_um: PixelUmOpt = None,
    drop_edge: Annotated[
        bool,
        typer.Option(
            "--drop-edge", help="Drop nuclei cut by the 15 px frame band (the paper keeps them)."
        ),
    ] = False,
    json: JsonOpt = False,
    debug: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Segment widefield DAPI fields as SCENMED does (reconstruction, Sobel, Otsu markers,
    watershed, opening, size, edge and over-exposure rules) into centred 128 x 128 crops.
    Fields in another pixel size are resampled to SCENMED's 0.215 µm first. Writes
    nuclei.csv (every object with its reason: kept, small_bbox, touches_edge, too_large,
    too_small, overexposed, empty_field), crops.tif and masks.tif (kept nuclei, row `crop`).

    Example: ainu-engine widefield segment wf/manifest.csv --out seg/
    """
    from ...scenmed import SegmentConfig, segment_files, write_segmentation

    items = expand_fields(inputs)
    o = Output(json_lines=json)

    def failed(err, item):
        o.failure(err, {"path": item["path"]}, debug=debug or None)

    with o.progress(len(items), "segmenting") as step:
        table = segment_files(
            items, pixel_um=pixel_um, config=SegmentConfig(drop_edge=drop_edge),
            on_file=step, on_error=failed,
        )  # fmt: skip
    counts = write_segmentation(table, out)
    kept = counts.get("kept", 0)
    o.record(
        {"out": str(out), "files": len(items), "failed": len(table.failed), "kept": kept,
         "reasons": counts},
        f"{kept} nuclei kept of {sum(counts.values())} objects in {len(items)} files "
        f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}) -> {escape(str(out))}",
    )  # fmt: skip
    o.finish(len(items))
