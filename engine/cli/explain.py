"""``ainu-engine explain --model M INPUT... --out DIR``: why each nucleus got its call."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._options import ChannelMapOpt, JsonOpt, channel_map, reading_options
from ._output import Output


@reading_options
def explain(
    inputs: Annotated[list[str], typer.Argument(help="Files, folders, globs or manifests.")],
    model: Annotated[
        Path,
        typer.Option(
            "--model", "-m", help="Exported .onnx (occlusion) or RUN/best.pt (any method)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for overlays (.png), maps (.npy), explain.jsonl, summary.json.",
        ),
    ],
    method: Annotated[str, typer.Option(help="occlusion, cam, gradcam or ig.")] = "occlusion",
    window: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Occlusion window in pixels (the paper: 64 on 512 px, also 32). Default: the "
            "model's input size / 8.",
        ),
    ] = None,
    stride: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Occlusion stride in pixels (the paper: 32, also 16 and 8). Default: half the "
            "window.",
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="Class to explain: a name, 'all', or the predicted one (default)."),
    ] = None,
    baseline: Annotated[str, typer.Option(help="Occlusion baseline: a number or 'blur'.")] = "0",
    output: Annotated[
        str, typer.Option(help="Occlusion on logits (Captum's and the paper's) or probabilities.")
    ] = "logits",
    perturb: Annotated[
        str | None,
        typer.Option(
            help="'nucleoli': also classify each nucleus with its nucleoli replaced by cloned "
            "non-nucleolar regions (needs ground truth); 'rim' (with --rim-nm): with its rim "
            "localizations replaced by interior ones."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Explain at most this many nuclei.")
    ] = None,
    backend: Annotated[
        str, typer.Option(help="Inference backend for occlusion (see screen).")
    ] = "auto",
    incremental: Annotated[
        bool | None,
        typer.Option(
            "--incremental/--no-incremental",
            help="Occlusion re-computes only what each window changes (ONNX Runtime CPU; same "
            "maps). Default: where it pays.",
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    nuclei: Annotated[
        str, typer.Option(help="How a file splits into nuclei, as for screen (auto, detect...).")
    ] = "auto",
    rim_nm: Annotated[
        float | None,
        typer.Option(
            min=1.0,
            help="Attribution in the band this wide (nm) along each nucleus' "
            "outline; with --perturb rim, calls after its localizations are replaced.",
        ),
    ] = None,
    channel_map_: ChannelMapOpt = None,
    json: JsonOpt = False,
    reading: dict | None = None,
) -> None:
    """Occlusion maps (equal to Captum's), CAM, Grad-CAM or Integrated Gradients for every
    nucleus, as overlays over the render; with simulator ground truth beside the files, the share
    of positive attribution in nucleoli and periphery against their area.

    Example: ainu-engine explain cells/ --model model.onnx --out explain/
    """
    from ..explain import METHODS, explain_files
    from ..nuclei import NUCLEI_MODES

    if nuclei not in NUCLEI_MODES:
        raise typer.BadParameter(f"expected one of {', '.join(NUCLEI_MODES)}",
                                 param_hint="--nuclei")  # fmt: skip
    if method not in METHODS:
        raise typer.BadParameter(f"expected one of {', '.join(METHODS)}", param_hint="--method")
    try:
        base: float | str = float(baseline)
    except ValueError:
        if baseline != "blur":
            raise typer.BadParameter(
                "expected a number or 'blur'", param_hint="--baseline"
            ) from None
        base = "blur"
    o = Output(json_lines=json)
    s = explain_files(
        inputs, model, out, method=method, window=window, stride=stride,
        target=None if target is None else (target if not target.isdigit() else int(target)),
        baseline=base, output=output, backend=backend, device=device, perturb=perturb,
        incremental=incremental, limit=limit, on_item=lambda rec: _show(o, rec),
        on_error=lambda p, m: o.error(m), read_options=reading,
        channel_map=channel_map(channel_map_), nuclei=nuclei, rim_nm=rim_nm,
    )  # fmt: skip
    if not json:
        _log_structures(o, s)
    raise typer.Exit(1 if s["failed"] else 0)


def _show(o: Output, rec: dict) -> None:
    """One explained nucleus: its call, its overlay and the nucleoli's share."""
    fr = rec.get("structures", {}).get(rec["targets"][0], {})
    name = "nucleoli" if "nucleoli" in fr else "rim"
    s = fr.get(name)
    extra = ""
    if s:
        share = s["positive_attribution_fraction"]
        extra = (
            f", {name} {share:.2f} of positive attribution vs {s['area_fraction']:.2f} of area"
            if share == share
            else ", no positive attribution"
        )  # NaN: none at all
    o.record(
        rec,
        escape(
            f"{rec['source']}{' ' + rec['nucleus_id'] if rec['nucleus_id'] else ''}: "
            f"{rec['predicted']} -> {rec['overlay']}{extra}"
        ),
    )


def _log_structures(o: Output, s: dict) -> None:
    """What the structures hold of the positive attribution, and the nucleoli test."""
    for key, structs in s["structures"].items():
        for name, v in structs.items():
            if not v["n"]:
                o.log(
                    f"{key}: no map with positive attribution (area share of {name} "
                    f"{v['area_fraction_mean']:.3f})"
                )
                continue
            o.log(
                f"{key}: {name} hold {v['positive_attribution_fraction_mean']:.3f} of the "
                "positive "
                f"attribution on {v['area_fraction_mean']:.3f} of the area (n={v['n']})"
            )
    rim = s.get("perturb_rim")
    if rim and rim.get("n"):
        o.log(
            f"rim localizations replaced by interior ones: {rim['calls_changed']:.0%} of "
            f"{rim['n']} calls changed; calls {rim['calls_before']} -> {rim['calls_after']}"
        )
    for c, v in s.get("perturb_nucleoli", {}).items():
        o.log(
            f"nucleoli replaced: {c} accuracy {v['accuracy_before']:.2f} -> "
            f"{v['accuracy_after']:.2f} (n={v['n']})"
        )
