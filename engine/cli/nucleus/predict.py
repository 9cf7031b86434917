"""``ainu-engine nucleus predict ACTIN... --model G.onnx --out DIR``: nucleus images generated
from actin images by an exported generator
(:func:`ainu_engine.nucleus_prediction.predict_images`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .._options import DeviceOpt, JsonOpt
from .._output import Output


def predict(
    inputs: Annotated[list[Path], typer.Argument(help="Actin images (RGB or 2-D) or folders.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="generator.onnx.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created).")],
    overlap: Annotated[
        bool,
        typer.Option(
            "--overlap/--no-overlap",
            help="Overlapping tiles, each kept only in its centre (default), or abutting tiles.",
        ),
    ] = True,
    backend: Annotated[str, typer.Option(help="auto, onnxruntime, tensorrt...")] = "auto",
    device: DeviceOpt = "auto",
    json: JsonOpt = False,
) -> None:
    """Generate a nucleus image for each actin image with an exported generator, on any engine
    backend (ONNX Runtime CPU/CUDA, TensorRT), tiled over the image in the model's input size:
    overlapping tiles of which only the centre half is kept, so no pixel comes from a tile's
    edge (edges padded by reflection). Writes Predicted_NAME.tif (8-bit RGB, nucleus in red; of
    a model trained on the Merged target, the red channel alone) for `nucleus evaluate`.

    Example: ainu-engine nucleus predict cells/tile0000 --model run/generator.onnx --out pred/
    """
    from ...nucleus_prediction import Generator, actin_files, predict_images

    files = actin_files(inputs)
    o = Output(json_lines=json)
    with Generator.load(model, backend, device=device) as gen, o.progress(
        len(files), "generating"
    ) as step:
        d = gen.describe()
        o.log(f"generator on {d['backend']} ({d['device']}): {d['reason']}")

        def done(rec: dict) -> None:
            o.record(rec, None)
            step()

        predict_images(files, gen, out, overlap=overlap, on_image=done)
    o.record({"out": str(out), "images": len(files)}, f"{len(files)} images -> {escape(str(out))}")
