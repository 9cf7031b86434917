"""``ainu-engine simulate OUT``: simulated nuclei with ground truth
(ainu_engine.simulate)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._options import JsonOpt
from ._output import Output


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def simulate(
    out: Annotated[Path, typer.Argument(help="Output folder (created).")],
    classes: Annotated[
        str, typer.Option(help="Cell states, comma-separated: hiPSC, somatic, mock, 1hpi, 3hpi.")
    ] = "hiPSC,somatic",
    n_per_class: Annotated[
        int, typer.Option("--n-per-class", min=1, help="Nuclei per class.")
    ] = 10,
    channels: Annotated[
        str,
        typer.Option(
            help="Targets, comma-separated (channel ids 1, 2, ... in this order): polII, h3, dna."
        ),
    ] = "polII",
    format: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="insight3 (.bin + .bin.json), thunderstorm (.csv) or parquet."
        ),
    ] = "parquet",
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed gives byte-identical files.")
    ] = 0,
    difficulty: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Scales class differences by 1 - difficulty (1 = identical classes).",
        ),
    ] = 0.5,
    locs_per_channel: Annotated[
        float,
        typer.Option(
            "--locs-per-channel", min=100, help="Mean localizations per nucleus and channel."
        ),
    ] = 2e5,
    frames: Annotated[
        int, typer.Option(min=1, help="Frames of the simulated acquisition.")
    ] = 60_000,
    camera_pixel_nm: Annotated[
        float,
        typer.Option(
            "--camera-pixel-nm", help="Camera pixel (nm) for Insight3 files and ROI sets."
        ),
    ] = 160.0,
    nuclei_per_file: Annotated[
        int,
        typer.Option(
            "--nuclei-per-file", min=1, help="Nuclei per file, side by side, with a cell_id column."
        ),
    ] = 1,
    field: Annotated[
        bool,
        typer.Option(
            "--field",
            help="Write several nuclei per file without ids (a field for automatic detection).",
        ),
    ] = False,
    roi: Annotated[
        bool,
        typer.Option(
            "--roi",
            help="Also write NAME.roi.zip: ImageJ polygon ROIs of the nuclei, in camera pixels.",
        ),
    ] = False,
    slides: Annotated[
        int,
        typer.Option(
            min=1, help="Slides (groups) per class; each slide has its own density and precision."
        ),
    ] = 5,
    shared_slides: Annotated[
        bool,
        typer.Option(
            "--shared-slides",
            help="One set of slides for all classes (groups slide00, ...: a donor or cell line "
            "in every condition, for leave-one-group-out).",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing dataset.")] = False,
    json: JsonOpt = False,
) -> None:
    """Simulate STORM localizations of nuclei of given cell states, with ground truth.

    Writes the data files, NAME.truth.json / NAME.truth.parquet beside each, and
    manifest.csv (path, label, group, truth, ...). See docs/simulation.md.

    Example: ainu-engine simulate data/ --classes hiPSC,somatic --n-per-class 50 --channels polII,h3
    """
    from ainu_engine.simulate import OUTPUT_FORMATS, Observation, simulate_dataset

    if format not in OUTPUT_FORMATS:
        raise typer.BadParameter(
            f"expected one of {', '.join(OUTPUT_FORMATS)}, got {format!r}", param_hint="--format"
        )
    class_list, channel_list = _split(classes), _split(channels)
    if field and nuclei_per_file == 1:
        nuclei_per_file = 4
    obs = Observation(
        locs_per_channel=locs_per_channel, n_frames=frames, camera_pixel_nm=camera_pixel_nm
    )
    o = Output(json_lines=json)
    n_files = len(class_list) * -(-n_per_class // nuclei_per_file)
    t0 = time.perf_counter()
    with o.progress(n_files, "simulate") as advance:
        manifest = simulate_dataset(
            out,
            classes=class_list,
            n_per_class=n_per_class,
            channels=channel_list,
            format=format,
            seed=seed,
            difficulty=difficulty,
            observation=obs,
            nuclei_per_file=nuclei_per_file,
            field_mode=field,
            roi=roi,
            n_slides=slides,
            shared_slides=shared_slides,
            overwrite=force,
            progress=advance,
        )
    elapsed = time.perf_counter() - t0
    o.record(
        {
            "manifest": str(manifest),
            "files": n_files,
            "nuclei": len(class_list) * n_per_class,
            "seconds": round(elapsed, 2),
        },
        escape(
            f"wrote {len(class_list) * n_per_class} nuclei in {n_files} files to {out} "
            f"({elapsed:.1f} s); manifest: {manifest}"
        ),
    )
