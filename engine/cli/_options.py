"""Options shared by the commands that read localization files."""

from __future__ import annotations

import functools
import inspect
from typing import Annotated

import typer

FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        help="Input format name (see `ainu-engine formats`), or auto to detect it.",
    ),
]
PixelOpt = Annotated[
    str | None,
    typer.Option(
        "--camera-pixel-nm",
        metavar="NM[,NM]",
        help="Camera pixel size in nm for files in pixel units that do not record one "
        "(e.g. 160 for N-STORM, 117 for ONI). A file's own metadata wins.",
    ),
]
UnitOpt = Annotated[
    str | None,
    typer.Option(
        "--unit",
        help="Generic tables only: unit of coordinate columns whose names carry none "
        "(nm, px, um, m).",
    ),
]
ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--columns",
        metavar="ROLE=NAME,...",
        help="Generic tables only: which columns hold x, y, z, frame, channel, photons, "
        "precision (by number from 1 in a table without a header: x=3,y=4).",
    ),
]
NoHeaderOpt = Annotated[
    bool,
    typer.Option(
        "--no-header",
        help="Generic tables: the first line is data, not column names (automatic when it is "
        "all numbers).",
    ),
]
FrameFromOpt = Annotated[
    str | None,
    typer.Option(
        "--frame-from",
        metavar="COLUMN",
        help="Derive frames from this time column (seconds): frame = round(t / --exposure-s).",
    ),
]
ExposureOpt = Annotated[
    float | None,
    typer.Option("--exposure-s", min=0.0, help="Seconds per frame, for --frame-from."),
]
ChannelFileOpt = Annotated[
    str | None,
    typer.Option("--channel-file", metavar="NPY", help="Each row's channel, from a .npy."),
]
ChannelMapOpt = Annotated[
    str | None,
    typer.Option(
        "--channel-map",
        metavar="MODELCH=FILECH,...",
        help="Which file channel feeds each model channel, by name or id (e.g. polII=647), for "
        "files whose channels are named otherwise than the model's.",
    ),
]
NucleusAreaOpt = Annotated[
    str | None,
    typer.Option(
        "--nucleus-area-um2",
        metavar="MIN,MAX",
        help="Detection: nucleus µm² (default 15,1000).",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object per line (JSON Lines).")
]
GalleryOpt = Annotated[
    int,
    typer.Option(
        min=0,
        help="Nuclei shown as cards in the report's gallery (the first rows of its table as "
        "sorted and filtered there; any nucleus opens from the table).",
    ),
]


def parse_pixel(value: str | None):
    """``"160"`` -> 160.0, ``"127,117"`` -> (127.0, 117.0); usage error otherwise."""
    if value is None:
        return None
    try:
        parts = [float(v) for v in value.replace("x", ",").split(",") if v.strip()]
    except ValueError as err:
        raise typer.BadParameter(
            f"expected a number of nm or NM,NM, got {value!r}", param_hint="--camera-pixel-nm"
        ) from err
    if len(parts) not in (1, 2):
        raise typer.BadParameter(
            f"expected one or two numbers, got {value!r}", param_hint="--camera-pixel-nm"
        )
    return parts[0] if len(parts) == 1 else tuple(parts)


def parse_camera_pixel(value: str | None) -> float | None:
    """``--camera-pixel-nm`` for commands that need one value: the first of NM[,NM]."""
    cam = parse_pixel(value)
    return cam[0] if isinstance(cam, tuple) else cam


def parse_columns(value: str | None):
    """``"x=X_pos,y=Y_pos"`` -> ``{"x": "X_pos", "y": "Y_pos"}``."""
    if not value:
        return None
    out = {}
    for item in value.split(","):
        role, sep, name = item.partition("=")
        if not sep or not role.strip() or not name.strip():
            raise typer.BadParameter(
                f"expected ROLE=NAME pairs, got {item!r}", param_hint="--columns"
            )
        out[role.strip()] = name.strip()
    return out


def read_kwargs(
    fmt: str,
    pixel: str | None,
    unit: str | None,
    columns: str | None,
    *,
    no_header: bool = False,
    frame_from: str | None = None,
    exposure_s: float | None = None,
    channel_file: str | None = None,
) -> dict:
    """Keywords for :func:`ainu_engine.io.read` from the reading options' values."""
    if unit not in (None, "nm", "px", "um", "µm", "m"):
        raise typer.BadParameter(f"expected nm, px, um or m, got {unit!r}", param_hint="--unit")
    if (frame_from is None) != (exposure_s is None):
        raise typer.BadParameter(
            "--frame-from and --exposure-s go together", param_hint="--frame-from"
        )
    if exposure_s is not None and exposure_s <= 0:
        raise typer.BadParameter("expected a positive number of seconds", param_hint="--exposure-s")
    kw = {
        "format": fmt,
        "camera_pixel_nm": parse_pixel(pixel),
        "unit": unit,
        "columns": parse_columns(columns),
    }
    if no_header:
        kw["header"] = False
    if frame_from is not None:
        kw |= {"frame_from": frame_from, "exposure_s": exposure_s}
    if channel_file is not None:
        kw["channel_file"] = channel_file
    return kw


def _option(name: str, annotation, default) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


#: the reading options every command that reads localization files has (issue 16)
_READING = (
    _option("read_format", FormatOpt, "auto"),
    _option("read_camera_pixel_nm", PixelOpt, None),
    _option("read_unit", UnitOpt, None),
    _option("read_columns", ColumnsOpt, None),
    _option("read_no_header", NoHeaderOpt, False),
    _option("read_frame_from", FrameFromOpt, None),
    _option("read_exposure_s", ExposureOpt, None),
    _option("read_channel_file", ChannelFileOpt, None),
)


def reading_options(fn):
    """Give a command the reading options (``--format``, ``--camera-pixel-nm``, ``--unit``,
    ``--columns``, ``--no-header``, ``--frame-from``, ``--exposure-s``). The command takes them as
    one keyword, ``reading``: the :func:`ainu_engine.io.read` keywords (its ``camera_pixel_nm``
    is a number or a pair)."""
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "reading"]

    @functools.wraps(fn)
    def command(*args, **kwargs):
        v = {p.name: kwargs.pop(p.name, p.default) for p in _READING}
        kwargs["reading"] = read_kwargs(
            v["read_format"],
            v["read_camera_pixel_nm"],
            v["read_unit"],
            v["read_columns"],
            no_header=v["read_no_header"],
            frame_from=v["read_frame_from"],
            exposure_s=v["read_exposure_s"],
            channel_file=v["read_channel_file"],
        )
        return fn(*args, **kwargs)

    command.__signature__ = sig.replace(parameters=[*own, *_READING])
    return command


def first_pixel(reading: dict) -> float | None:
    """The camera pixel of the reading options as one number (the first of NM,NM)."""
    cam = reading.get("camera_pixel_nm")
    return cam[0] if isinstance(cam, tuple) else cam


def channel_map(value: str | None) -> dict | None:
    """``--channel-map polII=647`` -> ``{"polII": "647"}``; usage error otherwise."""
    from ..render import parse_channel_map

    try:
        return parse_channel_map(value)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--channel-map") from err


def area_limits(text: str | None) -> tuple[float, float] | None:
    """``--nucleus-area-um2 20,200`` -> ``(20.0, 200.0)``; usage error otherwise."""
    if not text:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter("expected MIN,MAX in µm², e.g. 20,200",
                                 param_hint="--nucleus-area-um2") from None  # fmt: skip
    if not 0 < lo < hi:
        raise typer.BadParameter(f"expected 0 < MIN < MAX, got {text}",
                                 param_hint="--nucleus-area-um2")  # fmt: skip
    return lo, hi


# -- the RenderSpec options shared by render, train (and screen) --------------------------------
PixelNmOpt = Annotated[
    float | None, typer.Option("--pixel-nm", help="Render pixel in nm (default 16).")
]
MagnificationOpt = Annotated[
    float | None,
    typer.Option(help="Render pixel = camera pixel / magnification (x10 of 160 nm = 16 nm)."),
]
SigmaOpt = Annotated[float, typer.Option("--sigma-nm", help="Gaussian bandwidth in nm.")]
SigmaPrecisionOpt = Annotated[
    bool,
    typer.Option(
        "--sigma-from-precision", help="Bandwidth = each localization's precision (floored)."
    ),
]
TruncateOpt = Annotated[float, typer.Option(help="Kernel window half-width in sigmas.")]
ChannelsOpt = Annotated[
    str | None,
    typer.Option(
        help="File channel ids or names, e.g. 1,2 (default: all in one); per-file channel "
        "maps: the model's, e.g. cpla2."
    ),
]
NormalizationOpt = Annotated[
    str, typer.Option(help="density (image of a localization sums to 1) or sklearn.")
]
ScalingOpt = Annotated[str, typer.Option(help="Per-channel scaling: max, percentile or none.")]
OutsideOpt = Annotated[
    float | None,
    typer.Option(help="Value of pixels outside the nucleus mask (the paper: 1 = white)."),
]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu or cuda.")]


def render_spec(
    *,
    pixel_nm,
    magnification,
    camera_pixel_nm,
    sigma_nm,
    sigma_from_precision=False,
    truncate=5.0,
    size=512,
    channels=None,
    normalization="density",
    scaling="max",
    outside=None,
):
    """A RenderSpec from command-line values; conflicting or invalid values are usage errors."""
    from ..render import RenderSpec

    if pixel_nm is not None and magnification is not None:
        raise typer.BadParameter(
            "give --pixel-nm or --magnification, not both", param_hint="--pixel-nm"
        )
    cam = (
        parse_camera_pixel(camera_pixel_nm) if isinstance(camera_pixel_nm, str) else camera_pixel_nm
    )
    try:
        chans = None if not channels else tuple(int(c) for c in channels.split(","))
    except ValueError as err:
        raise typer.BadParameter(
            f"expected channel ids like 1,2, got {channels!r}", param_hint="--channels"
        ) from err
    try:
        return RenderSpec(
            pixel_nm=pixel_nm or 16.0,
            magnification=magnification,
            camera_pixel_nm=cam if magnification else None,
            sigma_nm=sigma_nm,
            sigma_from_precision=sigma_from_precision,
            truncate=truncate,
            size=size,
            channels=chans,
            normalization=normalization,
            scaling=scaling,
            outside=outside,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err


def need_train_extra() -> None:
    """Fail with one clear line when the training dependencies are not installed."""
    import importlib.util

    from ..errors import AinuError

    missing = [
        m
        for m in ("torch", "onnx", "sklearn", "matplotlib", "onnxruntime")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise AinuError(
            f"this command needs the train extra; missing: {', '.join(missing)}",
            hint='pip install -c constraints.txt -e ".[cpu,train]"',
        )
AbstainOpt = Annotated[
    bool,
    typer.Option(
        "--abstain",
        help="Make unfamiliar nuclei (unlike the model's training nuclei) and calls whose top "
        "probability is below 0.75 'undecided', with the reason (counted apart).",
    ),
]
AbstainBelowOpt = Annotated[
    float | None,
    typer.Option(
        "--abstain-below",
        min=0.0,
        max=1.0,
        metavar="P",
        help="With abstention (implies --abstain): the top probability below which a call is "
        "undecided (default 0.75).",
    ),
]


def abstain_level(abstain: bool, below: float | None) -> float | None:
    """The abstention level of ``--abstain`` / ``--abstain-below`` (None: off)."""
    from .._classifier import ABSTAIN_BELOW

    if below is not None:
        return float(below)
    return ABSTAIN_BELOW if abstain else None
