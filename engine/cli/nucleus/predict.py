"""``ainu-engine nucleus predict ACTIN... --model G.onnx --out DIR``: nucleus images generated
from actin images by an exported generator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .._options import JsonOpt
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
    json: JsonOpt = False,
) -> None:
    """Generate a nucleus image for each actin image with an exported generator (ONNX Runtime),
    tiled over the image in the model's input size: overlapping tiles of which only the centre
    half is kept, so no pixel comes from a tile's edge (edges padded by reflection). Writes
    Predicted_NAME.tif (8-bit RGB, nucleus in red; of a model trained on the Merged target, the
    red channel alone) for `nucleus evaluate`.

    Example: ainu-engine nucleus predict cells/tile0000 --model run/generator.onnx --out pred/
    """
    import json as _json

    import numpy as np
    import onnxruntime as ort
    import tifffile

    from ...errors import InputError
    from ...training.nucleus_prediction import from_model_range, tiled, to_model_range

    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            files += sorted(q for q in p.rglob("*.tif*") if q.name.lower().startswith("actin"))
        else:
            files.append(p)
    if not files:
        raise InputError("no actin images (Actin_*.tif)", path=inputs[0])
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    if _json.loads(meta.get("ainu.kind", "null")) != "generator":
        raise InputError("not an ainu-engine generator (ainu.kind)", path=model)
    size = int(_json.loads(meta["ainu.input"])["shape"][-1])
    # a generator trained on the Merged composite (the public code's target) draws the actin in
    # green beside the nucleus in red: only the red channel is the nucleus
    merged = _json.loads(meta.get("ainu.output", "{}")).get("target") == "merged"
    out.mkdir(parents=True, exist_ok=True)
    o = Output(json_lines=json)
    with o.progress(len(files), "generating") as step:
        for f in files:
            img = tifffile.imread(f)
            if img.ndim == 2:
                img = np.stack([np.zeros_like(img), img, np.zeros_like(img)], -1)
            x = to_model_range(img[..., :3])
            y = tiled(x, size, lambda t: sess.run(["nucleus"], {"actin": t})[0],
                      margin=None if overlap else 0)  # fmt: skip
            name = f.stem.removeprefix("Actin_")
            rgb = from_model_range(y)
            if merged:
                rgb[..., 1:] = 0
            tifffile.imwrite(out / f"Predicted_{name}.tif", rgb, photometric="rgb")
            o.record({"input": str(f), "output": str(out / f"Predicted_{name}.tif")}, None)
            step()
    o.record({"out": str(out), "images": len(files)}, f"{len(files)} images -> {escape(str(out))}")
