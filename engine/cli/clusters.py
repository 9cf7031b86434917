"""``ainu-engine clusters FILES... --out DIR``: cluster statistics per nucleus and between
groups (the paper's Fig. 4i-j)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._options import JsonOpt, NucleusAreaOpt, area_limits
from ._output import Output


def clusters(
    inputs: Annotated[
        list[str],
        typer.Argument(help="Files, folders, globs or manifests (path, label, [channels]...)."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created).")],
    eps_nm: Annotated[
        float, typer.Option(min=0.0, help="DBSCAN neighbourhood radius in nm.")
    ] = 20.0,
    min_samples: Annotated[
        int, typer.Option(min=1, help="Localizations (itself included) a core point needs.")
    ] = 5,
    roi: Annotated[
        str | None,
        typer.Option(
            help="Cluster only inside regions: nucleoli (the simulator's ground truth beside "
            "each file) or an ImageJ ROI set (.roi.zip) of regions."
        ),
    ] = None,
    group_by: Annotated[
        str,
        typer.Option(
            help="A manifest column to compare by (files outside a manifest: their folder)."
        ),  # fmt: skip
    ] = "label",
    channel: Annotated[
        str | None, typer.Option(help="The channel to cluster (name or id; default: all).")
    ] = None,
    nuclei: Annotated[
        str,
        typer.Option(
            help="auto, file, cell_id, roi or detect (a field of several cells): how "
            "nuclei are found in a file."
        ),  # fmt: skip
    ] = "auto",
    camera_pixel_nm: Annotated[
        float | None,
        typer.Option(help="Camera pixel in nm, for files in pixels that record none."),
    ] = None,
    nucleus_area: NucleusAreaOpt = None,
    json: JsonOpt = False,
) -> None:
    """Cluster each nucleus' localizations by DBSCAN (--eps-nm, --min-samples), optionally only
    inside regions such as nucleoli (--roi), and compare groups: per cluster its localizations
    and the area of its convex hull, per nucleus the medians and the number of clusters, and
    per measure a two-sided Mann-Whitney U test between each pair of groups.

    Writes DIR/clusters.parquet (one row per cluster), DIR/nuclei.csv (one row per nucleus),
    DIR/comparison.json and DIR/clusters.png (box plots with every nucleus). With --json, one
    line per nucleus, then the comparison as the last line. A file that fails is reported and
    left out (exit 1).

    Example: ainu-engine clusters data/manifest.csv --eps-nm 50 --min-samples 15 --roi nucleoli
    --out clusters/
    """
    from ..clusters import run_clusters

    if nuclei not in ("auto", "file", "cell_id", "roi", "detect"):
        raise typer.BadParameter("expected auto, file, cell_id, roi or detect",
                                 param_hint="--nuclei")  # fmt: skip
    o = Output(json_lines=json)
    failed = []

    def on_file(s: dict) -> None:
        name = Path(s["source"]).name + (f" {s['nucleus_id']}" if s["nucleus_id"] else "")
        text = (f"{name} [{s['group']}]: {s['n_clusters']} clusters, median "
                f"{_fmt(s['median_localizations'])} localizations, "
                f"{_fmt(s['median_area_nm2'])} nm²")  # fmt: skip
        if json:
            o.record({"kind": "nucleus", **s}, escape(text))

    def on_error(path: str, message: str) -> None:
        failed.append(path)
        typer.echo(message, err=True)

    doc = run_clusters(inputs, out, eps_nm=eps_nm, min_samples=min_samples, roi=roi,
                       group_by=group_by, channel=channel, nuclei=nuclei,
                       camera_pixel_nm=camera_pixel_nm, on_file=on_file,
                       on_error=on_error, area_limits_um2=area_limits(nucleus_area))  # fmt: skip
    lines = [f"{doc['nuclei']} nuclei, {doc['clusters']} clusters (eps {eps_nm:g} nm, "
             f"min_samples {min_samples}{', in ' + roi if roi else ''})"]  # fmt: skip
    for g, v in doc["groups"].items():
        lines.append(f"  {g}: {v['nuclei']} nuclei, median {_fmt(v['median_localizations'])} "
                     f"localizations per cluster, {_fmt(v['median_area_nm2'])} nm², "
                     f"{_fmt(v['n_clusters'])} clusters")  # fmt: skip
    for t in doc["tests"]:
        p = "n/a" if t["p"] is None else f"{t['p']:.3g}"
        lines.append(f"  {t['measure']}: {' vs '.join(t['groups'])}, Mann-Whitney U "
                     f"{_fmt(t['statistic'])}, p = {p}")  # fmt: skip
    lines.append(f"  written: {out}/clusters.parquet, nuclei.csv, comparison.json, clusters.png")
    o.record({"kind": "comparison", **doc}, escape("\n".join(lines)))
    raise typer.Exit(1 if failed else 0)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"
