"""``ainu-engine screen INPUT... --model M.onnx --out DIR``: cell-state calls for every nucleus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._options import ChannelMapOpt, GalleryOpt, JsonOpt, channel_map, reading_options
from ._output import Output


@reading_options
def screen(
    inputs: Annotated[
        list[str], typer.Argument(help="Files, folders (recursive), globs or manifests.")
    ],
    model: Annotated[
        Path,
        typer.Option(
            "--model", "-m", help="Exported model (.onnx); a .pt checkpoint with --backend torch."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Output folder: results.parquet, errors.csv, report.html."
        ),
    ],
    backend: Annotated[
        str,
        typer.Option(
            help="auto, onnxruntime, onnxruntime-tensorrt, tensorrt, torch, torch-compile."
        ),
    ] = "auto",
    device: Annotated[
        str, typer.Option(help="auto, cpu or cuda (inference and rendering).")
    ] = "auto",
    nuclei: Annotated[
        str,
        typer.Option(
            help="auto (cell_id column, else ROI set beside the file, else whole file), file, "
            "cell_id, roi, detect."
        ),
    ] = "auto",
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, help="Model batch (default: the backend's best)."),
    ] = None,
    read_threads: Annotated[
        int, typer.Option("--read-threads", min=1, help="Threads reading files.")
    ] = 2,
    channel_map_: ChannelMapOpt = None,
    csv: Annotated[bool, typer.Option("--csv", help="Also write results.csv.")] = False,
    gallery: GalleryOpt = 200,
    force: Annotated[
        bool, typer.Option("--force", help="Redo nuclei already done with this model and settings.")
    ] = False,
    explain: Annotated[
        int,
        typer.Option(
            min=0, help="Occlusion maps for the first N nuclei (OUT/explain/, and in the report)."
        ),
    ] = 0,
    shard: Annotated[
        str | None,
        typer.Option(
            help="K/N: screen only shard K (0..N-1) of N into OUT/shards/ (e.g. a SLURM array "
            "task: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT); `ainu-engine merge OUT` joins "
            "them."
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(help="local (this machine) or ray (a Ray cluster: the distributed extra)."),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="--executor ray: the cluster (auto, ray://host:10001); default local."),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="--executor ray: inference actors (each loads the model).")
    ] = 1,
    gpus_per_worker: Annotated[
        float, typer.Option(min=0.0, help="--executor ray: GPUs per inference actor.")
    ] = 0.0,
    cpus_per_worker: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="--executor ray without GPUs: CPUs per inference actor (below 1: the rest "
            "renders).",
        ),
    ] = 1.0,
    ray_plan: Annotated[
        str,
        typer.Option(
            help="--executor ray: split (render in CPU tasks, model inputs to the actors) or "
            "fused (each actor reads, renders and infers)."
        ),
    ] = "split",
    json: JsonOpt = False,
    reading: dict | None = None,
) -> None:
    """Classify every nucleus of a batch of localization files with an exported model.

    Pipeline: read (threads) -> render -> batch -> infer -> write, with bounded queues. Results
    are written batch by batch; rerunning skips what is done. A bad file goes to errors.csv and
    the screen goes on; exit code 1 when some inputs failed.

    Example: ainu-engine screen run1/ --model model.onnx --out screen/
    """
    import time

    from ..backends import BACKENDS
    from ..explain import explain_prepared
    from ..nuclei import NUCLEI_MODES
    from ..screen import parse_shard
    from ..screen import screen as run_screen

    if backend not in BACKENDS:
        raise typer.BadParameter(f"expected one of {', '.join(BACKENDS)}", param_hint="--backend")
    if nuclei not in NUCLEI_MODES:
        raise typer.BadParameter(
            f"expected one of {', '.join(NUCLEI_MODES)}", param_hint="--nuclei"
        )
    if device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter("expected auto, cpu or cuda", param_hint="--device")
    if executor not in ("local", "ray"):
        raise typer.BadParameter("expected local or ray", param_hint="--executor")
    if ray_plan not in ("split", "fused"):
        raise typer.BadParameter("expected split or fused", param_hint="--ray-plan")
    if executor == "ray" and explain:
        raise typer.BadParameter("--explain needs --executor local", param_hint="--explain")
    if executor == "ray":
        import logging

        logging.getLogger("ray").setLevel(logging.WARNING)  # Ray Data's INFO lines per stage
    try:
        shard_kn = None if shard is None else parse_shard(shard)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--shard") from None
    reading = dict(reading or {})
    cmap = channel_map(channel_map_)
    o = Output(json_lines=json)

    state = {"last": 0.0}

    def on_error(path, msg):
        o.error(msg)

    show = o.err.is_terminal
    bar = o.bar("files {task.fields[rate]}", transient=True, disable=not show)
    task = None

    def on_progress(p):
        nonlocal task
        if task is None:
            task = bar.add_task("screen", total=p["files"], rate="")
        bar.update(
            task,
            completed=p["files_done"],
            rate=f"{p['nuclei']} nuclei, {p['nuclei'] / max(p['elapsed_s'], 1e-9):.1f} nuclei/s",
        )
        if not show and time.perf_counter() - state["last"] > 10:
            state["last"] = time.perf_counter()
            o.log(
                f"screen: {p['files_done']}/{p['files']} files, {p['nuclei']} nuclei, "
                f"{p['nuclei'] / max(p['elapsed_s'], 1e-9):.1f} nuclei/s"
            )

    with bar:
        s = run_screen(
            inputs,
            model,
            out,
            backend=backend,
            device=device,
            nuclei=nuclei,
            batch_size=batch_size,
            read_threads=read_threads,
            camera_pixel_nm=reading.pop("camera_pixel_nm"),
            read_options=reading,
            channel_map=cmap,
            force=force,
            csv=csv,
            gallery=gallery,
            on_progress=on_progress,
            on_error=on_error,
            explain=explain,
            explainer=explain_prepared if explain else None,
            shard=shard_kn,
            executor=executor,
            ray_address=address,
            workers=workers,
            gpus_per_worker=gpus_per_worker,
            cpus_per_worker=cpus_per_worker,
            ray_plan=ray_plan,
        )
    d = s.to_dict()
    text = [
        f"{s.n_nuclei} nuclei from {s.n_files} files in {s.seconds:.1f} s ({s.nuclei_per_s:.1f} "
        "nuclei/s)"
        + (f"; {s.n_files_skipped} files already done" if s.n_files_skipped else "")
        + (f"; {s.n_failed} failures (errors.csv)" if s.n_failed else ""),
        f"  backend: {s.backend.get('backend')} on {s.backend.get('device')} "
        f"({s.backend.get('reason')})",
        _calls_line(s),
        "  stages: "
        + ", ".join(
            f"{st['stage']} busy {st['busy_s']:.2f} s / idle {st['idle_s']:.2f} s"
            for st in s.stages
        ),
        f"  results: {s.results}",
        f"  report:  {out / 'report.html'}"
        if shard_kn is None
        else f"  shard {shard_kn[0]}/{shard_kn[1]} done: `ainu-engine merge {out}` once all are",
    ]
    o.record(d, escape("\n".join(text)))
    raise typer.Exit(1 if s.n_failed else 0)


def _calls_line(s) -> str:
    """The calls, with how many passed QC said first when not all did."""
    n_ok, total = sum(s.calls_qc_ok.values()), sum(s.calls.values())
    line = "  calls: " + ", ".join(f"{c} {n}" for c, n in s.calls.items())
    if n_ok < total:
        failed = {c: n - s.calls_qc_ok.get(c, 0) for c, n in s.calls.items()}
        line = (
            f"  calls that passed QC ({n_ok} of {total} nuclei): "
            + ", ".join(f"{c} {n}" for c, n in s.calls_qc_ok.items())
            + "\n  calls that failed QC (see qc_flags): "
            + ", ".join(f"{c} {n}" for c, n in failed.items())
        )
    if s.simulated_model:
        line += "\n  note: the model was trained on SIMULATED nuclei, not on real cells"
    if s.n_looks_like_field:
        line += (
            f"\n  note: {s.n_looks_like_field} of the nuclei look like fields of several cells "
            "(QC flag looks_like_field): --nuclei detect finds the nuclei in a field"
        )
    return line
