"""``ainu-engine info FILE...``: what each localization file (or exported model) holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..errors import InputError
from ..io import read, summarize
from ..model import read_model_info
from ..optional import install_hint
from ._options import JsonOpt, reading_options
from ._output import Output


def _fmt_range(r, unit=""):
    return "-" if r is None else f"{r[0]:g} .. {r[1]:g}{unit}"


def _text(s: dict) -> str:
    """Human-readable block for one file (rich markup; data values escaped)."""
    chans = escape(
        ", ".join(
            f"{k}: {v}" + (f" ({s['channel_names'][k]})" if k in s["channel_names"] else "")
            for k, v in s["channels"].items()
        )
        or "-"
    )
    px = s["camera_pixel_nm"]
    px = (
        "-"
        if px is None
        else (f"{px:g} nm" if not isinstance(px, list) else f"{px[0]:g} x {px[1]:g} nm")
    )
    if s["camera_pixel_source"]:
        px += f" (from {s['camera_pixel_source']})"
    frames = _fmt_range(s["frame_range"])
    if s["frame_range"] is not None and s["frame_range"] != s["frame_range_in_file"]:
        frames += f" (in the file: {_fmt_range(s['frame_range_in_file'])})"
    lines = [
        f"[bold]{escape(s['path'])}[/]",
        f"  format            {s['format']}",
        f"  localizations     {s['n_localizations']:,}",
        f"  channels          {chans}",
        f"  x range           {_fmt_range(s['x_range_nm'], ' nm')}",
        f"  y range           {_fmt_range(s['y_range_nm'], ' nm')}",
    ]
    if s["z_range_nm"] is not None:
        lines.append(f"  z range           {_fmt_range(s['z_range_nm'], ' nm')}")
    lines += [
        f"  frames (0-based)  {frames}",
        f"  camera pixel      {px}",
        f"  columns           {escape(', '.join(s['columns']))}",
    ]
    for k, v in s["details"].items():
        lines.append(f"  {escape(k):<17} {escape(str(v))}")
    for w in s["warnings"]:
        lines.append(f"  [yellow]warning[/]           {escape(w)}")
    return "\n".join(lines)


MODEL_SUFFIXES = (".onnx", ".pt")


def _model_summary(path: Path) -> dict:
    """The :meth:`ModelInfo.summary` of an exported .onnx or a training checkpoint (.pt)."""
    if path.suffix.lower() == ".onnx":
        return read_model_info(path).summary()
    # the CLI is the one engine layer that may reach the training side (its checkpoint format)
    try:
        from ..training.checkpoint import checkpoint_info, read_checkpoint
    except ImportError as err:
        raise InputError(
            f"reading a checkpoint needs the training extra: {err}",
            path=path,
            hint=install_hint("train"),
        ) from err
    return checkpoint_info(read_checkpoint(path), path=path).summary()


def _g(v) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _model_text(s: dict) -> str:
    """Human-readable block for one model (rich markup; data values escaped)."""
    r = s["render"]
    px = (
        f"{r['pixel_nm']:g} nm"
        if r["pixel_nm"]
        else f"x{r['magnification']:g} of the camera pixel"
        + (f" ({r['camera_pixel_nm']:g} nm)" if r["camera_pixel_nm"] else "")
    )
    sigma = r["sigma_nm"] if isinstance(r["sigma_nm"], str) else f"{r['sigma_nm']:g} nm"
    size = "raw render (no resize)" if not r["size"] else f"resized and padded to {r['size']} px"
    mode = (
        "one image per nucleus"
        if s["mode"] == "image"
        else f"{s['patch_size']} px patches, the nucleus's call by majority"
    )
    ranges = ", ".join(
        f"{k} "
        + (
            " / ".join(f"{_g(a)}..{_g(b)}" for a, b in v)
            if isinstance(v[0], list)
            else f"{_g(v[0])}..{_g(v[1])}"
        )
        for k, v in s["training_ranges"].items()
    )
    test = ", ".join(
        f"{k} {v:.3f}" for k, v in s["test"].items() if k != "n" and isinstance(v, (int, float))
    )
    lines = [
        f"[bold]{escape(str(s['path']))}[/]",
        f"  kind              ainu-engine model ({escape(str(s['architecture']))})",
        f"  classes           {escape(', '.join(s['classes']))}",
        f"  input             {s['input']} ({escape(', '.join(s['channel_names']))}), {mode}",
        f"  render            {px} pixels, sigma {sigma} ({r['truncate_sigma']:g} sigma window), "
        f"{size}, "
        f"scaling {r['scaling']}"
        + ("" if r["outside"] is None else f", outside the nucleus {r['outside']:g}"),
        f"  render spec hash  {r['hash']}",
        f"  trained on        {escape(str(s['training_data'] or '-'))}"
        + (f" ({s['training_nuclei']} nuclei)" if s["training_nuclei"] else ""),
    ]
    if ranges:
        lines.append(f"  training ranges   {escape(ranges)}")
    lines.append(
        f"  test set          {escape(test)} (n={s['test']['n']})"
        if test and "n" in s["test"]
        else "  test set          -"
    )
    gate = s.get("precision_gate") or {}
    lines.append(
        f"  precision         {escape(str(s.get('precision', 'fp32')))}"
        + (
            f" (calls agree with fp32 on {gate['agreement']:.1%} of {gate['n']} held-out nuclei, "
            f"accuracy {gate['accuracy_fp32']:.3f} -> {gate['accuracy_reduced']:.3f}"
            + ("; accepted below the gate" if gate.get("accepted_drop") else "")
            + ")"
            if gate
            else ""
        )
    )
    cal = s.get("calibration") or {}
    nan = float("nan")
    lines.append(
        f"  calibration       temperature {cal['temperature']:.3f} (fitted on the "
        f"{escape(str(cal.get('fitted_on', 'validation split')))}), ECE on the test set "
        f"{cal.get('ece_test_before', nan):.3f} -> {cal.get('ece_test_after', nan):.3f}"
        if "temperature" in cal
        else "  calibration       none (probabilities are the plain softmax)"
    )
    lines.append(_ood_line(s.get("out_of_distribution") or {}))
    lines.append(_preprocess_line(s.get("preprocess")))
    lines.append(
        f"  created           {escape(str(s['created'] or '-'))}, commit "
        f"{escape(str(s['git_commit'] or '-'))}"
    )
    return "\n".join(lines)


def _preprocess_line(pre: dict | None) -> str:
    """The localization preprocessing the model records (every call applies it)."""
    if not pre:
        return "  preprocessing     none (the tables as read)"
    from ..preprocess import Preprocess

    spec = escape(Preprocess.from_dict(pre).to_spec())
    return f"  preprocessing     {spec} (applied by every call)"


def _ood_line(ood: dict) -> str:
    """The model's out-of-distribution reference in one line (or the note that it has none)."""
    if not ood.get("reference"):
        return f"  unfamiliar data   {escape(str(ood.get('note', 'no reference')))}"
    held = ood.get("held_out") or {}
    parts = [f"{len(ood.get('input_statistics') or [])} input statistics"]
    if ood.get("features"):
        parts.append(str(ood["features"]))
    flagged = held.get("test_flagged")
    tail = (f"; flags {flagged:.0%} of the {held.get('test_n')} test nuclei"
            if flagged is not None else "")  # fmt: skip
    return (f"  unfamiliar data   reference of {', '.join(parts)}; thresholds at "
            f"{ood.get('alpha', 0.05):.0%} false alarms on {escape(str(held.get('source')))}"
            f"{tail}")  # fmt: skip


@reading_options
def info(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Localization files (any supported format), exported .onnx models or training "
            "checkpoints (RUN/best.pt)."
        ),
    ],
    json: JsonOpt = False,
    reading: dict | None = None,
) -> None:
    """Report format, counts, channels, ranges (nm) and frames of each file.

    For a model (exported .onnx, or a training checkpoint RUN/best.pt): its classes, input,
    RenderSpec, training data and test
    metrics.

    Files that fail are reported with their error and the others still reported;
    the exit code is 1 if any file failed.

    Example: ainu-engine info data/*.bin model.onnx --camera-pixel-nm 160
    """
    kwargs = reading or {}
    out = Output(json_lines=json)
    with out.progress(len(files), "info") as advance:
        for path in files:
            try:
                if path.suffix.lower() in MODEL_SUFFIXES:
                    s, text = _model_summary(path), _model_text
                else:
                    s, text = summarize(read(path, **kwargs)), _text
                s["path"] = str(path)
                out.record(s, text(s))
            except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
                out.failure(err, {"path": str(path)}, debug=ctx.obj["debug"] if ctx.obj else None)
            advance()
    out.finish(len(files))
