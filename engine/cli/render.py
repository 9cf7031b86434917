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


def _nuclei(locs, mode, roi_path, camera_pixel):
    """(suffix, nucleus) for each nucleus of a file (:func:`ainu_engine.nuclei.split_nuclei`):
    one per ROI, one per cell_id, the ones detection finds, or the whole file (an ROI that gives
    no nucleus is an error naming it)."""
    from ..nuclei import split_nuclei

    if roi_path is not None and mode == "auto":
        mode = "roi"
    for n in split_nuclei(locs, mode=mode, roi_path=roi_path, camera_pixel_nm=camera_pixel):
        yield (f"_{n.id}" if n.id else ""), n


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


def _file_spec(locs, spec, wanted, o, path):
    """``spec`` with the file channels --channels names (ids or names), or — without it — all
    channels in one image, with a warning where the file has several."""
    from dataclasses import replace

    from ..render import describe_channels, file_channels, select_channels

    if wanted:
        return replace(spec, channels=select_channels(locs, wanted))
    chans = file_channels(locs)
    if len(chans) > 1:
        o.warn(
            f"{path}: channels {describe_channels(chans)} rendered into one image "
            "(--channels picks them, e.g. --channels " + ",".join(map(str, chans)) + ")"
        )
    return spec


def _stems(files: list[Path]) -> dict[Path, str]:
    """Output names: the file's stem, or — where two inputs share one — the stem prefixed with
    the names of their parent folders until they differ (never one image over another)."""
    out = {f: f.stem for f in files}
    for depth in range(1, 8):
        seen: dict[str, list[Path]] = {}
        for f, s in out.items():
            seen.setdefault(s, []).append(f)
        clashes = [fs for fs in seen.values() if len(fs) > 1]
        if not clashes:
            return out
        for fs in clashes:
            for f in fs:
                parents = [p.name for p in f.resolve().parents][:depth][::-1]
                out[f] = "_".join([*parents, f.stem])
    for k, f in enumerate(files):  # identical paths up the tree: number them
        out[f] = f"{out[f]}_{k}"
    return out


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
    from ..errors import OutputError
    from ..io import read
    from ..render import IMAGE_FORMATS, match_channels, render_sklearn, write_rendered
    from ..render import render as render_fn

    if image_format not in IMAGE_FORMATS:
        raise typer.BadParameter(
            f"expected one of {', '.join(IMAGE_FORMATS)}", param_hint="--image-format"
        )
    if method not in ("kde", "sklearn"):
        raise typer.BadParameter("expected kde or sklearn", param_hint="--method")
    from ..nuclei import NUCLEI_MODES

    if nuclei not in NUCLEI_MODES:
        raise typer.BadParameter(
            f"expected one of {', '.join(NUCLEI_MODES)}", param_hint="--nuclei"
        )
    reading = reading or {}
    cam = first_pixel(reading)
    cmap = channel_map(channel_map_)
    if model is not None:
        spec, model_channels = _model_spec(ctx, model)
        wanted = None
    else:
        if cmap:
            raise typer.BadParameter("--channel-map goes with --model", param_hint="--channel-map")
        wanted = [c.strip() for c in channels.split(",") if c.strip()] if channels else None
        spec = render_spec(
            pixel_nm=pixel_nm,
            magnification=magnification,
            camera_pixel_nm=cam,
            sigma_nm=sigma_nm,
            sigma_from_precision=sigma_from_precision,
            truncate=truncate,
            size=size,
            channels=None,
            normalization=normalization,
            scaling=scaling,
            outside=outside,
        )
    if method == "sklearn" and spec.size != 0:
        raise typer.BadParameter(
            "--method sklearn writes raw renders: use --size 0", param_hint="--size"
        )
    from ..nuclei import expand_inputs

    files = expand_inputs(files)  # folders, globs and manifests, like screen
    stems = _stems(files)
    out.mkdir(parents=True, exist_ok=True)
    o = Output(json_lines=json)
    noted = False
    debug = ctx.obj["debug"] if ctx.obj else None
    with o.progress(len(files), "render") as advance:
        for path in files:
            try:
                locs = read(path, **reading, keep_extra=True)
                if model is not None:
                    file_spec = match_channels(locs, spec, model_channels, cmap)
                else:
                    file_spec = _file_spec(locs, spec, wanted, o, path)
                for suffix, n in _nuclei(locs, nuclei, roi, cam):
                    part, poly = n.locs, n.roi_nm
                    stem = out / (stems[path] + suffix)
                    target = stem.with_name(stem.name + "." + image_format)
                    if target.exists() and not force:
                        raise OutputError(
                            "exists already", path=target, hint="pass --force to replace it"
                        )
                    if method == "sklearn":
                        r = render_sklearn(part, file_spec)
                    else:
                        r = render_fn(part, file_spec, device=device, roi_nm=poly)
                    if r.device_note and not noted:
                        o.warn(r.device_note)
                        noted = True
                    for w in r.warnings:
                        o.warn(f"{path}{' ' + suffix.lstrip('_') if suffix else ''}: {w}")
                    written = write_rendered(
                        r,
                        stem,
                        image_format,
                        extra={
                            "source": str(path),
                            "nucleus": suffix.lstrip("_") or None,
                            "method": method,
                            "cut_by_edge": n.at_edge,
                            "outline_nm": None
                            if n.outline is None
                            else [[round(float(a), 1), round(float(b), 1)] for a, b in n.outline],
                        },
                    )
                    o.record(
                        {
                            "input": str(path),
                            "nucleus": suffix.lstrip("_") or None,
                            "image": str(written[0]),
                            "sidecar": str(written[1]),
                            "shape": list(r.image.shape),
                            "pixel_nm": r.pixel_nm,
                            "origin_nm": list(r.origin_nm),
                            "area_um2": round(r.area_um2, 3),
                            "device": r.device,
                            "seconds": {k: round(v, 4) for k, v in r.seconds.items()},
                        },
                        escape(
                            f"{path}{' ' + suffix.lstrip('_') if suffix else ''} -> {written[0]} "
                            f"({'x'.join(map(str, r.image.shape))}, {r.pixel_nm:.3g} nm/px, "
                            f"{r.area_um2:.1f} µm², {r.device})"
                        ),
                    )
            except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
                o.failure(err, {"input": str(path)}, debug=debug)
            advance()
    o.finish(len(files))
