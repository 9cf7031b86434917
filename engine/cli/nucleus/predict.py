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
    json: JsonOpt = False,
) -> None:
    """Generate a nucleus image for each actin image with an exported generator (ONNX Runtime),
    tiled over the image in the model's input size (edges padded by reflection). Writes
    Predicted_NAME.tif (8-bit RGB, nucleus in red) for `nucleus evaluate`.

    Example: ainu-engine nucleus predict cells/tile0000 --model run/generator.onnx --out pred/
    """
    import json as _json

    import numpy as np
    import onnxruntime as ort
    import tifffile

    from ...errors import InputError
    from ...training.nucleus import from_model_range, to_model_range

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
    out.mkdir(parents=True, exist_ok=True)
    o = Output(json_lines=json)
    with o.progress(len(files), "generating") as step:
        for f in files:
            img = tifffile.imread(f)
            if img.ndim == 2:
                img = np.stack([np.zeros_like(img), img, np.zeros_like(img)], -1)
            x = to_model_range(img[..., :3])
            h, w = x.shape[1:]
            ph, pw = -h % size, -w % size
            xp = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="reflect")
            y = np.zeros_like(xp)
            for r in range(0, xp.shape[1], size):
                for c in range(0, xp.shape[2], size):
                    t = xp[None, :, r : r + size, c : c + size].astype(np.float32)
                    y[:, r : r + size, c : c + size] = sess.run(["nucleus"], {"actin": t})[0][0]
            name = f.stem.removeprefix("Actin_")
            tifffile.imwrite(out / f"Predicted_{name}.tif", from_model_range(y[:, :h, :w]),
                             photometric="rgb")  # fmt: skip
            o.record({"input": str(f), "output": str(out / f"Predicted_{name}.tif")}, None)
            step()
    o.record({"out": str(out), "images": len(files)}, f"{len(files)} images -> {escape(str(out))}")
