"""``ainu-engine watch DIR --model M.onnx --out OUT``: screen files as a localizer writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._options import ChannelMapOpt, channel_map, reading_options


@reading_options
def watch(
    folder: Annotated[Path, typer.Argument(help="Folder the localizer writes into (recursive).")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Exported model (.onnx).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results folder, as for screen.")],
    settle_s: Annotated[
        float,
        typer.Option("--settle-s", min=0.0, help="A file unchanged this long is finished."),
    ] = 2.0,
    poll_s: Annotated[
        float, typer.Option("--poll-s", min=0.05, help="Seconds between looks.")
    ] = 1.0,
    once: Annotated[
        bool, typer.Option("--once", help="Screen what is finished now, then exit.")
    ] = False,
    nuclei: Annotated[
        str, typer.Option(help="As for screen: auto, file, cell_id, roi, detect.")
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    channel_map_: ChannelMapOpt = None,
    reading: dict | None = None,
) -> None:
    """Screen localization files as a localizer finishes writing them into FOLDER: a file is
    finished when it has stopped growing for --settle-s seconds or when its sidecar (NAME.json,
    NAME.done, NAME.yaml) appears; partial files (*.part, *.tmp, hidden) are left alone. Results
    go to OUT exactly as screen writes them (results.parquet, errors.csv, report.html), so a
    restarted watcher screens nothing twice. Ctrl-C stops it.

    Example: ainu-engine watch /data/run42 --model model.onnx --out /data/run42-calls
    """
    from ..screen import watch as run

    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder", param_hint="FOLDER")
    reading = dict(reading or {})
    cam = reading.pop("camera_pixel_nm", None)

    def said(summary, files):
        typer.echo(
            f"{len(files)} file(s) finished: {summary.n_nuclei} nuclei, "
            f"{summary.n_failed} failures -> {out}",
            err=True,
        )

    typer.echo(f"watching {folder} (settle {settle_s:g} s); results in {out}", err=True)
    try:
        run(folder, model, out, settle_s=settle_s, poll_s=poll_s, once=once, on_screen=said,
            nuclei=nuclei, device=device, camera_pixel_nm=cam, read_options=reading,
            channel_map=channel_map(channel_map_))  # fmt: skip
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
