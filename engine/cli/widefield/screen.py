"""``ainu-engine widefield screen FIELD... --model M.onnx --out DIR``: segment fields and call
every nucleus with an exported SCENMED model (ainu_engine.scenmed.WidefieldClassifier)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .._options import JsonOpt
from .._output import Output
from ._common import PixelUmOpt, expand_fields

_COLUMNS = (
    "path", "field", "image", "label", "group", "id", "reason", "call", "n_patches",
    "area_px", "centroid_y", "centroid_x", "bbox_r0", "bbox_c0", "bbox_r1", "bbox_c1",
    "overexposed_fraction", "edge_cut", "pixel_um",
)  # fmt: skip


def screen(
    inputs: Annotated[
        list[str], typer.Argument(help="TIFF / OME-TIFF / SCENMED .h5 fields, folders, manifests.")
    ],
    model: Annotated[Path, typer.Option("--model", "-m", help="model.onnx from widefield train.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created).")],
    pixel_um: PixelUmOpt = None,
    backend: Annotated[str, typer.Option(help="auto, onnxruntime, tensorrt, torch...")] = "auto",
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="Occlusion maps (crop models) or patch heat maps (patch models)."
        ),
    ] = False,
    gallery: Annotated[int, typer.Option(min=0, help="Nuclei shown in the report.")] = 200,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads.")] = None,
    json: JsonOpt = False,
) -> None:
    """Segment widefield DAPI fields (SCENMED's rules) and call every kept nucleus with an
    exported widefield model: whole-crop models on the 128 x 128 crop, patch models by the mean
    of their patches' probabilities. Writes results.csv (every object: its drop reason, or
    its call and p_CLASS per class), report.html (calls, gallery, table) and, with --explain,
    maps/ (.npy per nucleus). A bad file is reported and the batch goes on.

    Example: ainu-engine widefield screen wf/fields --model run/model.onnx --out screen/
    """
    import csv

    import numpy as np

    from ...io import atomic_path
    from ...scenmed import WidefieldClassifier, segment_files, write_report

    items = expand_fields(inputs)
    o = Output(json_lines=json)
    clf = WidefieldClassifier.load(model, backend, threads=threads)
    out.mkdir(parents=True, exist_ok=True)
    with o.progress(len(items), "segmenting") as step:
        table = segment_files(
            items, pixel_um=pixel_um, on_file=step,
            on_error=lambda err, item: o.failure(err, {"path": item["path"]}, debug=None),
        )  # fmt: skip
    kept = table.kept
    calls = clf.classify(table.crops) if table.crops else []
    maps: dict[int, np.ndarray] = {}
    kind = ""
    if explain and kept:
        (out / "maps").mkdir(exist_ok=True)
        kind = "patch map" if clf.patch else "occlusion"
        with o.progress(len(kept), "explaining") as step:
            for r in kept:
                i = r["crop"]
                crop = table.crops[i]
                if clf.patch:
                    maps[i] = clf.patch_map(crop)
                else:
                    maps[i] = clf.occlusion(crop).maps[0]
                np.save(out / "maps" / f"{Path(r['path']).stem}_{r['image']}_{r['id']}.npy",
                        maps[i])  # fmt: skip
                step()
    for r, c in zip(kept, calls, strict=True):
        r["call"] = c.label
        r["n_patches"] = c.n_patches
        for k, v in c.probabilities.items():
            r[f"p_{k}"] = v
    cols = list(_COLUMNS) + [f"p_{c}" for c in clf.classes]
    with atomic_path(out / "results.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in table.rows:
            w.writerow({k: r.get(k, "") for k in cols})
    write_report(out / "report.html", table.rows, dict(enumerate(table.crops)), clf.classes,
                 maps=maps, map_kind=kind, model=model.name, gallery=gallery)  # fmt: skip
    clf.close()
    counts = {c: sum(1 for r in kept if r.get("call") == c) for c in clf.classes}
    no_call = sum(1 for r in kept if r.get("call") is None)
    o.record(
        {"out": str(out), "files": len(items), "failed": len(table.failed),
         "nuclei": len(kept), "calls": counts, "no_call": no_call},
        f"{len(kept)} nuclei in {len(items)} files: "
        f"{', '.join(f'{k} {v}' for k, v in counts.items())}"
        + (f", no call {no_call} (no usable patch)" if no_call else "")
        + f" -> {escape(str(out))}",
    )  # fmt: skip
    o.finish(len(items))
