"""``ainu-engine screen INPUT... --model M.onnx --out DIR``: cell-state calls for every nucleus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._options import (
    AbstainBelowOpt,
    AbstainOpt,
    ChannelMapOpt,
    GalleryOpt,
    JsonOpt,
    abstain_level,
    channel_map,
    reading_options,
)
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
    abstain: AbstainOpt = False,
    abstain_below: AbstainBelowOpt = None,
    json: JsonOpt = False,
    reading: dict | None = None,
) -> None:
    """Classify every nucleus of a batch of localization files with an exported model.

    Pipeline: read (threads) -> render (threads) -> batch -> infer -> write, with bounded
    queues. Results are written batch by batch; rerunning skips what is done. A bad file goes to
    errors.csv and the screen goes on; exit code 1 when some inputs failed.

    Example: ainu-engine screen run1/ --model model.onnx --out screen/
    """
    from ..backends import BACKENDS
    from ..explain import explain_prepared
    from ..nuclei import NUCLEI_MODES
    from ..screen import ScreenOptions, parse_shard
    from ..screen import screen as run_screen

    for flag, value, ok in (("--backend", backend, BACKENDS), ("--nuclei", nuclei, NUCLEI_MODES),
                            ("--device", device, ("auto", "cpu", "cuda")),
                            ("--executor", executor, ("local", "ray")),
                            ("--ray-plan", ray_plan, ("split", "fused"))):  # fmt: skip
        if value not in ok:
            raise typer.BadParameter(f"expected one of {', '.join(ok)}", param_hint=flag)
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
    options = ScreenOptions.from_keywords(
        backend=backend, device=device, nuclei=nuclei, batch_size=batch_size,
        read_threads=read_threads, camera_pixel_nm=reading.pop("camera_pixel_nm"),
        read_options=reading, channel_map=channel_map(channel_map_), force=force, csv=csv,
        gallery=gallery, explain=explain, shard=shard_kn, executor=executor,
        ray_address=address, workers=workers, gpus_per_worker=gpus_per_worker,
        cpus_per_worker=cpus_per_worker, ray_plan=ray_plan,
        abstain=abstain_level(abstain, abstain_below),
    )  # fmt: skip
    o = Output(json_lines=json)
    with _ProgressBar(o) as progress:
        s = run_screen(inputs, model, out, options, on_progress=progress.update,
                       on_error=lambda path, msg: o.error(msg),
                       explainer=explain_prepared if explain else None)  # fmt: skip
    o.record(s.to_dict(), escape(_summary_text(s, out, shard_kn)))
    raise typer.Exit(1 if s.n_failed else 0)


class _ProgressBar:
    """The screen's progress: a bar on a terminal, else a log line every 10 s."""

    def __init__(self, o: Output) -> None:
        self.o, self.show, self.last, self.task = o, o.err.is_terminal, 0.0, None
        self.bar = o.bar("files {task.fields[rate]}", transient=True, disable=not self.show)

    def __enter__(self) -> _ProgressBar:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def update(self, p: dict) -> None:
        import time

        if self.task is None:
            self.task = self.bar.add_task("screen", total=p["files"], rate="")
        rate = f"{p['nuclei'] / max(p['elapsed_s'], 1e-9):.1f} nuclei/s"
        self.bar.update(self.task, completed=p["files_done"], rate=f"{p['nuclei']} nuclei, {rate}")
        if not self.show and time.perf_counter() - self.last > 10:
            self.last = time.perf_counter()
            self.o.log(f"screen: {p['files_done']}/{p['files']} files, {p['nuclei']} nuclei, "
                       f"{rate}")  # fmt: skip


def _summary_text(s, out: Path, shard_kn) -> str:
    """What a person reads at the end of a screen."""
    return "\n".join([
        f"{s.n_nuclei} nuclei from {s.n_files} files in {s.seconds:.1f} s ({s.nuclei_per_s:.1f} "
        "nuclei/s)"
        + (f"; {s.n_files_skipped} files already done" if s.n_files_skipped else "")
        + (f"; {s.n_failed} failures (errors.csv)" if s.n_failed else ""),
        f"  backend: {s.backend.get('backend')} on {s.backend.get('device')} "
        f"({s.backend.get('reason')})",
        _calls_line(s),
        "  stages: " + ", ".join(
            f"{st['stage']} busy {st['busy_s']:.2f} s / idle {st['idle_s']:.2f} s"
            for st in s.stages
        ),
        f"  results: {s.results}",
        f"  report:  {out / 'report.html'}"
        if shard_kn is None
        else f"  shard {shard_kn[0]}/{shard_kn[1]} done: `ainu-engine merge {out}` once all are",
    ])  # fmt: skip


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
    if s.n_undecided:
        line += (f"\n  undecided: {s.n_undecided} nuclei (abstained: unfamiliar or low "
                 "confidence; see abstain_reason)")  # fmt: skip
    if s.n_unfamiliar:
        line += (f"\n  note: {s.n_unfamiliar} of the nuclei are unlike the model's training "
                 "nuclei (QC flag unfamiliar; ood_reason says how)")  # fmt: skip
    if s.ood_note:
        line += f"\n  note: {s.ood_note}"
    if s.n_looks_like_field:
        line += (
            f"\n  note: {s.n_looks_like_field} of the nuclei look like fields of several cells "
            "(QC flag looks_like_field): --nuclei detect finds the nuclei in a field"
        )
    return line
