"""``ainu-engine export RUN/best.pt --out model.onnx``: a self-describing, checked ONNX model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._options import JsonOpt, need_train_extra
from ._output import Output


def export(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint of a training run (RUN/best.pt).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="The .onnx file to write.")
    ] = None,
    opset: Annotated[int, typer.Option(min=17, help="ONNX opset.")] = 18,
    atol: Annotated[
        float, typer.Option(help="Largest allowed |logit| difference, ONNX Runtime vs PyTorch.")
    ] = 1e-4,
    precision: Annotated[
        str, typer.Option(help="fp32, fp16 or int8 (reduced precision passes an accuracy gate).")
    ] = "fp32",
    calibration: Annotated[
        str, typer.Option(help="int8 calibration: percentile, minmax or entropy.")
    ] = "percentile",
    calibrate: Annotated[
        Path | None,
        typer.Option(help="int8: a manifest to calibrate on (default: the run's training nuclei)."),
    ] = None,
    int8_activations: Annotated[
        str,
        typer.Option(
            help="int8 activations: s8 (signed, symmetric: runs everywhere, TensorRT's explicit "
            "quantization too) or u8 (unsigned: faster on x86 CPUs, not for TensorRT)."
        ),
    ] = "s8",
    accept_accuracy_drop: Annotated[
        bool,
        typer.Option("--accept-accuracy-drop", help="Write a model the accuracy gate refuses."),
    ] = False,
    bioimageio: Annotated[
        Path | None,
        typer.Option(
            help="Also (or only) write a BioImage Model Zoo package (.zip, spec 0.5: ONNX and "
            "PyTorch weights, a test nucleus, cover, documentation), tested by bioimageio.core."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    json: JsonOpt = False,
) -> None:
    """Export a checkpoint to one .onnx file (dynamic batch, weights inside, metadata_props with
    classes, RenderSpec, input size, channels, preprocessing, metrics, provenance). ONNX Runtime
    is checked against PyTorch first; a model that differs by more than --atol is not written.

    --bioimageio OUT.zip packages the fp32 model for the BioImage Model Zoo (the bioimageio
    extra); the package carries the classifier, not the rendering (docs/ecosystem.md).

    Example: ainu-engine export run/best.pt --out model.onnx
    """
    need_train_extra()
    from ainu_engine.training.export import export_onnx

    if out is None and bioimageio is None:
        raise typer.BadParameter("give --out MODEL.onnx, --bioimageio OUT.zip or both",
                                 param_hint="--out")  # fmt: skip
    if bioimageio is not None and precision != "fp32":
        raise typer.BadParameter("a bioimage.io package carries fp32 weights: export it "
                                 "without --precision", param_hint="--bioimageio")  # fmt: skip
    if out is None:
        _export_bioimageio(checkpoint, bioimageio, None, opset=opset, force=force, json=json)
        return

    if precision not in ("fp32", "fp16", "int8"):
        raise typer.BadParameter("expected fp32, fp16 or int8", param_hint="--precision")
    if calibration not in ("minmax", "entropy", "percentile"):
        raise typer.BadParameter(
            "expected minmax, entropy or percentile", param_hint="--calibration"
        )
    if int8_activations not in ("s8", "u8"):
        raise typer.BadParameter("expected s8 or u8", param_hint="--int8-activations")
    r = export_onnx(checkpoint, out, opset=opset, atol=atol, force=force, precision=precision,
                    calibration=calibration, calibrate=calibrate,
                    int8_activations=int8_activations,
                    accept_accuracy_drop=accept_accuracy_drop)  # fmt: skip
    Output(json_lines=json).record(*_exported(checkpoint, r))
    if bioimageio is not None:
        _export_bioimageio(checkpoint, bioimageio, r.path, opset=opset, force=force, json=json)


def _export_bioimageio(checkpoint: Path, package: Path, onnx_model: Path | None, *, opset: int,
                       force: bool, json: bool) -> None:  # fmt: skip
    from ainu_engine.training.bioimageio import export_bioimageio

    r = export_bioimageio(checkpoint, package, onnx_model=onnx_model, opset=opset, force=force)
    tested = (
        f"bioimageio.core test {r.test_summary['status']} ({len(r.test_summary['details'])} checks)"
        if r.test_summary
        else "not tested (bioimageio.core is not installed)"
    )
    Output(json_lines=json).record(
        {"bioimageio": str(r.path), "bytes": r.size_bytes, "name": r.model_name,
         "files": r.files, "test": r.test_summary},
        escape(f"{r.path}: bioimage.io package '{r.model_name}', {r.size_bytes / 1e6:.1f} MB "
               f"({', '.join(r.files)}); {tested}"),
    )  # fmt: skip


def _exported(checkpoint: Path, r) -> tuple[dict, str]:
    """The record and the text of an export."""
    return (
        {
            "checkpoint": str(checkpoint),
            "model": str(r.path),
            "sha256": r.sha256,
            "bytes": r.size_bytes,
            "opset": r.opset,
            "classes": list(r.info.classes),
            "input_shape": list(r.info.input_shape),
            "parity": r.comparison.to_dict(),
            "precision": r.precision,
            "gate": r.gate,
            "seconds": round(r.seconds, 2),
        },
        escape(
            f"{r.path}: {r.info.model.get('name')} ({', '.join(r.info.classes)}), input "
            f"{'x'.join(map(str, r.info.input_shape))}, opset {r.opset}, {r.size_bytes / 1e6:.1f} "
            "MB; "
            f"ONNX Runtime vs PyTorch {r.comparison}"
            + (
                f"; {r.precision} vs fp32 on held-out nuclei: agreement {r.gate['agreement']:.1%}, "
                f"accuracy {r.gate['accuracy_fp32']:.3f} -> {r.gate['accuracy_reduced']:.3f}"
                if r.gate
                else ""
            )
        ),
    )
