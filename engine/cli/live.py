"""``ainu-engine live FILE... --model M.onnx``: replay recorded acquisitions as if live."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._options import (
    AbstainBelowOpt,
    AbstainOpt,
    ChannelMapOpt,
    JsonOpt,
    abstain_level,
    channel_map,
    reading_options,
)
from ._output import Output


@reading_options
def live(
    ctx: typer.Context,
    files: Annotated[
        list[Path], typer.Argument(help="Recorded acquisitions (files, folders, manifests).")
    ],
    model: Annotated[Path, typer.Option("--model", "-m", help="Exported model (.onnx).")],
    frames_per_update: Annotated[
        int,
        typer.Option("--frames-per-update", min=1, help="Frames added between two calls."),
    ] = 1000,
    stop: Annotated[
        str | None,
        typer.Option(
            "--stop",
            metavar="p=P,m=M,min=N[,max_frames=F]",
            help="Stop rule: the last M calls agree with probability >= P, after N "
            "localizations (or F frames at most). Reports where imaging could have stopped.",
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder for one probability-trajectory PNG per nucleus."),
    ] = Path("live"),
    nuclei: Annotated[
        str,
        typer.Option(help="How nuclei are found in a file, as for screen (auto, file, roi...)."),
    ] = "auto",
    channel_map_: ChannelMapOpt = None,
    abstain: AbstainOpt = False,
    abstain_below: AbstainBelowOpt = None,
    json: JsonOpt = False,
    reading: dict | None = None,
) -> None:
    """Replay each recorded acquisition in frame order as if it were being imaged: add
    --frames-per-update frames, call, repeat. Prints the evolving call (with --json one JSON line
    per update: frame, n_localizations, label, probabilities, stop, and a final line per nucleus),
    writes OUT/NAME.png with the probability trajectory, and with --stop reports the frame at
    which the rule would have stopped imaging and the call then against the call on the whole
    file (which is screen's call).

    Example: ainu-engine live recorded/ --model model.onnx --stop p=0.95,m=3,min=5000
    """
    from ..live import StopRule, plot_trajectory_for, replay_file
    from ..nuclei import NUCLEI_MODES, expand_inputs
    from ..render import manifest_channel_maps

    if nuclei not in NUCLEI_MODES:
        raise typer.BadParameter(
            f"expected one of {', '.join(NUCLEI_MODES)}", param_hint="--nuclei"
        )
    try:
        rule = StopRule.parse(stop) if stop else None
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--stop") from err
    from .._classifier import Classifier

    files, file_maps = expand_inputs(files), manifest_channel_maps(files)
    o = Output(json_lines=json)
    out.mkdir(parents=True, exist_ok=True)
    debug = ctx.obj["debug"] if ctx.obj else None

    def on_update(rec):
        stop_txt = " [bold]stop[/]" if rec["stop"] else ""
        p = rec["probabilities"].get(rec["label"], max(rec["probabilities"].values()))
        odd = ""
        if "unfamiliar" in rec["qc"]:
            odd = f" [yellow]unfamiliar: {escape(str(rec.get('ood_reason')))}[/]"
        o.record(
            {k: v for k, v in rec.items() if k != "rejected"},
            f"  frame {rec['frame']}: {rec['n_localizations']:,} localizations -> "
            f"{escape(rec['label'])} (p={p:.3f}, agree {rec['firmness']['agree']:.2f}){stop_txt}"
            f"{odd}",
        )

    with Classifier.load(
        model, device="cpu", render_device="cpu", channel_map=channel_map(channel_map_),
        file_channel_maps=file_maps, abstain=abstain_level(abstain, abstain_below),
    ) as clf:
        for path in files:
            if not json:
                o.log(f"{path}:")
            try:
                for res in replay_file(
                    path, clf, nuclei=nuclei, read_options=reading,
                    frames_per_update=frames_per_update, stop_rule=rule, on_update=on_update,
                    on_skip=lambda nid, msg, p=path: _skipped(o, p, nid, msg),
                ):  # fmt: skip
                    png = plot_trajectory_for(res, out)
                    o.record({**res.summary(), "plot": str(png)}, escape(_final_text(res, png)))
            except Exception as err:  # noqa: BLE001 - one bad file must not stop the replay
                o.failure(err, {"source": str(path)}, debug=debug)
    o.finish(len(files))


def _skipped(o: Output, path, nucleus_id: str, message: str) -> None:
    """A nucleus that cannot be replayed: a record (--json) and a warning; the file goes on."""
    o.record({"source": str(path), "nucleus_id": nucleus_id, "error": message})
    o.warn(message)


def _final_text(res, png: Path) -> str:
    s = res.summary()
    who = f"{res.source}{' ' + res.nucleus_id if res.nucleus_id else ''}"
    text = f"{who}: {s['label']} on the whole acquisition ({s['n_localizations']:,} localizations)"
    if res.stop_update is not None:
        frac = s["stop_fraction"]
        same = "the same call" if s["same_call_at_stop"] else "a different call"
        text += (
            f"; the stop rule stops at frame {s['stop_frame']} ({frac:.0%} of the frames) with "
            f"{s['label_at_stop']} ({same})"
        )
    elif res.updates and res.final.stop is not None:
        text += f"; no stop: {res.final.stop.reason}"
    return text + f"; plot {png}"
