"""``ainu-engine render FILE... --out DIR``: one image per nucleus, with a JSON sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._options import (
    ChannelMapOpt,
    ChannelsOpt,
    DeviceOpt,
    JsonOpt,
    MagnificationOpt,
    NormalizationOpt,
    OutsideOpt,
    PixelNmOpt,
    ScalingOpt,
    SigmaOpt,
    SigmaPrecisionOpt,
    TruncateOpt,
    channel_map,
    first_pixel,
    reading_options,
    render_spec,
)
from ._output import Output

#: the render options that --model replaces with the model's RenderSpec
SPEC_OPTIONS = ("pixel_nm", "magnification", "sigma_nm", "sigma_from_precision", "truncate",
                "size", "channels", "normalization", "scaling", "outside")  # fmt: skip


def _model_spec(ctx: typer.Context, model: Path):
    """(RenderSpec, channel names) of --model (its raw render in patch mode); a render option
    given beside it is a usage error, not silently ignored."""
    from ..model import read_model_info
    from ..render import patch_mode

    given = [
        f"--{n.replace('_', '-')}"
        for n in SPEC_OPTIONS
        if getattr(ctx.get_parameter_source(n), "name", "DEFAULT") != "DEFAULT"
    ]
    if given:
        raise typer.BadParameter(
            f"--model renders with the model's RenderSpec; drop {', '.join(given)}",
            param_hint="--model",
        )
    info = read_model_info(model)
    spec = info.render_spec.raw() if patch_mode(info.preprocessing)[0] else info.render_spec
    return spec, info.channel_names


@reading_options
def render(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Localization files, folders, globs or manifests; one image per nucleus."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created).")],
    pixel_nm: PixelNmOpt = None,
    magnification: MagnificationOpt = None,
    sigma_nm: SigmaOpt = 20.0,
    sigma_from_precision: SigmaPrecisionOpt = False,
    truncate: TruncateOpt = 5.0,
    size: Annotated[
        int, typer.Option(help="Output side in pixels (resize + pad); 0 = raw render, no scaling.")
    ] = 512,
    channels: ChannelsOpt = None,
    normalization: NormalizationOpt = "density",
    scaling: ScalingOpt = "max",
    outside: OutsideOpt = None,
    roi: Annotated[
        Path | None,
        typer.Option(help="ImageJ ROI set (.zip/.roi, camera pixels): one image per ROI."),
    ] = None,
    nuclei: Annotated[
        str,
        typer.Option(
            help="auto (cell_id column, else ROI set beside the file, else whole file), file, "
            "cell_id, roi, detect (find the nuclei of a field: one image each)."
        ),
    ] = "auto",
    device: DeviceOpt = "auto",
    method: Annotated[
        str,
        typer.Option(
            help="kde (fast, exact to the truncation) or sklearn (the paper's slow computation)."
        ),
    ] = "kde",
    image_format: Annotated[
        str,
        typer.Option(
            "--image-format", help="tiff or npy (float32 values) or png (colour, for people)."
        ),
    ] = "tiff",
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Render as this model sees its input: its RenderSpec, channels matched by name "
            "(the render options above are then not given).",
        ),
    ] = None,
    channel_map_: ChannelMapOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing images.")] = False,
    json: JsonOpt = False,
    reading: dict | None = None,
) -> None:
    """Render nuclei by a Gaussian kernel density estimate into images.

    Writes DIR/NAME.{tiff,npy,png} and DIR/NAME.{tiff,npy,png}.json (RenderSpec, origin_nm,
    pixel_nm, area):
    pixel (i, j) covers [x0 + j·p, x0 + (j+1)·p) x [y0 + i·p, y0 + (i+1)·p) nm. Files with
    a cell_id column give one image per cell; --roi one image per ROI.

    --channels takes file channel ids or names (1,2 or 647,561); without it a file with several
    channels is rendered into one image with a warning. --model renders with a model's
    RenderSpec and its channels matched to each file's (--channel-map where they are named
    otherwise), the images the model is given.

    Example: ainu-engine render data/*.bin --out images/ --magnification 10 --channels 1,2
    """
    from ..nuclei import expand_inputs
    from ..render import render_files

    reading = reading or {}
    cam = first_pixel(reading)
    cmap = channel_map(channel_map_)
    model_channels = wanted = None
    if model is not None:
        spec, model_channels = _model_spec(ctx, model)
    else:
        if cmap:
            raise typer.BadParameter("--channel-map goes with --model", param_hint="--channel-map")
        wanted = [c.strip() for c in channels.split(",") if c.strip()] if channels else None
        spec = render_spec(pixel_nm=pixel_nm, magnification=magnification, camera_pixel_nm=cam,
                           sigma_nm=sigma_nm, sigma_from_precision=sigma_from_precision,
                           truncate=truncate, size=size, channels=None,
                           normalization=normalization, scaling=scaling,
                           outside=outside)  # fmt: skip
    files = expand_inputs(files)  # folders, globs and manifests, like screen
    o = Output(json_lines=json)
    debug = ctx.obj["debug"] if ctx.obj else None

    def show(rec: dict) -> None:
        name = f"{rec['input']}{' ' + rec['nucleus'] if rec['nucleus'] else ''}"
        o.record(rec, escape(f"{name} -> {rec['image']} ({'x'.join(map(str, rec['shape']))}, "
                             f"{rec['pixel_nm']:.3g} nm/px, {rec['area_um2']:.1f} µm², "
                             f"{rec['device']})"))  # fmt: skip

    with o.progress(len(files), "render") as advance:
        try:
            render_files(files, out, spec, channels=wanted, model_channels=model_channels,
                         channel_map=cmap, nuclei=nuclei, roi=roi, camera_pixel_nm=cam,
                         device=device, method=method, image_format=image_format, force=force,
                         reading=reading, on_image=show, on_file=advance, on_warning=o.warn,
                         on_error=lambda err, path: o.failure(err, {"input": str(path)},
                                                              debug=debug))  # fmt: skip
        except ValueError as err:
            raise typer.BadParameter(str(err)) from err
    o.finish(len(files))
