"""``ainu-engine widefield features FIELD_OR_CROPS... --out F.parquet``: SCENMED's shape and
texture features and HC/EC per nucleus (ainu_engine.scenmed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ...scenmed import expand_fields
from .._options import JsonOpt
from .._output import Output
from ._common import PixelUmOpt


def load_nuclei(inputs: list[str], pixel_um, o: Output, debug: bool):
    """Segmentation folders are read back; anything else is segmented here."""
    from ...scenmed import NucleusTable, read_segmentation, segment_files

    table = NucleusTable()
    rest, n_files = [], 0
    for s in inputs:
        if Path(s).is_dir() and (Path(s) / "nuclei.csv").is_file():
            t = read_segmentation(s)
            off = len(table.crops)
            for r in t.rows:
                if r["reason"] == "kept":
                    r["crop"] = int(r["crop"]) + off
            table.rows += t.rows
            table.crops += t.crops
            table.masks += t.masks
            n_files += 1
        else:
            rest.append(s)
    if rest:
        items = expand_fields(rest)
        n_files += len(items)
        with o.progress(len(items), "segmenting") as step:
            t = segment_files(
                items, pixel_um=pixel_um, on_file=step,
                on_error=lambda err, item: o.failure(err, {"path": item["path"]}, debug=debug),
            )  # fmt: skip
        off = len(table.crops)
        for r in t.rows:
            if r["reason"] == "kept":
                r["crop"] += off
        table.rows += t.rows
        table.crops += t.crops
        table.masks += t.masks
        table.failed += t.failed
    return table, n_files


def features(
    inputs: Annotated[
        list[str],
        typer.Argument(help="Fields, folders, manifests, or folders written by widefield segment."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Table to write (.parquet or .csv).")],
    layout: Annotated[
        str, typer.Option(help="paper (104 features) or code (the public code's 120).")
    ] = "paper",
    alpha: Annotated[
        float, typer.Option(help="HC threshold = mean + alpha*SD (assumed; eq. (2) is unknown).")
    ] = 1.0,
    pixel_um: PixelUmOpt = None,
    json: JsonOpt = False,
) -> None:
    """One row per nucleus: its file, field, label and group; 5 shape features, LBP, PFTAS and
    Zernike moments (mahotas, the paper's 104-feature layout or the code's 120); and its HC/EC
    ratio (threshold mean + alpha*SD inside the Otsu nucleus mask: an assumption, the paper's
    equation (2) is not known). With two or more labels, also OUT.hc_ec.png (box plots) and
    OUT.hc_ec.json (Student's, Welch's t and Mann-Whitney U for each pair).

    Example: ainu-engine widefield features seg/ --out features.parquet
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from ...scenmed import HC_RULE, LAYOUTS, features_of

    if layout not in LAYOUTS:
        raise typer.BadParameter(f"--layout must be paper or code, got {layout!r}")
    o = Output(json_lines=json)
    table, n_files = load_nuclei(inputs, pixel_um, o, False)
    with o.progress(len(table.kept), "features") as step:
        rows, names = features_of(table, layout=layout, alpha=alpha, progress=step)
    cols = ["path", "field", "image", "label", "group", "id", *names, "hc_ec"]
    data = {c: [r[c] for r in rows] for c in cols}
    t = pa.table(data) if rows else pa.table({c: pa.array([], pa.string()) for c in cols})
    t = t.replace_schema_metadata(
        {
            "ainu_engine.layout": layout,
            "ainu_engine.hc_rule": HC_RULE,
            "ainu_engine.alpha": str(alpha),
        }
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix.lower() == ".csv":
        pacsv.write_csv(t, tmp)
    else:
        pq.write_table(t, tmp)
    tmp.replace(out)
    by_label: dict[str, list] = {}
    for r in rows:
        if r["label"]:
            by_label.setdefault(str(r["label"]), []).append(r["hc_ec"])
    tests = []
    if len(by_label) >= 2:
        from ...scenmed import compare_ratios, plot_hc_ec
        from ...strict_json import dumps

        groups = {k: by_label[k] for k in sorted(by_label)}
        tests = compare_ratios(groups)
        stem = out.with_suffix("")
        plot_hc_ec(groups, f"{stem}.hc_ec.png")
        Path(f"{stem}.hc_ec.json").write_text(
            dumps({"rule": HC_RULE, "alpha": alpha, "comparisons": tests}, indent=2)
        )
    o.record(
        {"out": str(out), "nuclei": len(rows), "features": len(names), "layout": layout,
         "hc_rule": HC_RULE, "hc_ec_tests": tests},
        f"{len(rows)} nuclei x {len(names)} features ({layout}) + hc_ec -> {escape(str(out))}\n"
        f"note: {HC_RULE}",
    )  # fmt: skip
    o.finish(n_files)
