"""A self-contained HTML report of a screen (PNG plots embedded): calls per folder, probability
histograms, QC summary, throughput per pipeline stage, failures."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from pathlib import Path

from ._report_page import DEFAULT_GALLERY, PAGE_CSS, nuclei_section

__all__ = ["write_report", "write_overview", "OVERVIEW_DIR"]

#: where a screen with ``--nuclei detect`` puts one overview image per field (in OUT)
OVERVIEW_DIR = "overview"
#: overviews embedded in the report (the others are linked)
MAX_EMBEDDED = 24
#: what the colours of an occlusion map mean (as engine/explain draws them)
ATTRIBUTION_NOTE = "blue = evidence for the call, red = against (occlusion on the logits)"


def write_overview(path: Path, locs, nuclei, *, title: str = "") -> Path:
    """An overview PNG of a field: the localization density (log scale), each nucleus' outline
    (red: cut by the field's edge) and its id, in µm. Written atomically.

    Parameters
    ----------
    path : Path
        The PNG.
    locs : Localizations
        The field.
    nuclei : iterable of Nucleus
        Its nuclei (:func:`ainu_engine.nuclei.split_nuclei`).
    title : str
        The figure's title.

    Returns
    -------
    Path
    """
    import numpy as np
    from matplotlib.figure import Figure

    from ..io import atomic_path

    x, y = locs.x_nm / 1000.0, locs.y_nm / 1000.0
    span = max(float(np.ptp(x)), float(np.ptp(y)), 1e-3)
    bins = int(min(1000, max(50, span / 0.1)))  # 100 nm bins, at most 1000
    hist, xe, ye = np.histogram2d(x, y, bins=bins)
    fig = Figure(figsize=(7, 7))
    ax = fig.subplots()
    ax.imshow(np.log1p(hist.T), cmap="gray_r", origin="lower",
              extent=(xe[0], xe[-1], ye[0], ye[-1]), interpolation="nearest")  # fmt: skip
    for n in nuclei:
        if n.outline is None:
            continue
        o = np.asarray(n.outline) / 1000.0
        o = np.vstack([o, o[:1]])
        colour = "tab:red" if n.at_edge else "tab:cyan"
        ax.plot(o[:, 0], o[:, 1], color=colour, lw=1.5)
        ax.text(float(n.locs.x_nm.mean()) / 1000, float(n.locs.y_nm.mean()) / 1000, n.id,
                color=colour, ha="center", va="center", fontsize=9, fontweight="bold")  # fmt: skip
    ax.set_ylim(ye[-1], ye[0])  # image convention: y grows downwards, as in the renders
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.set_title(title or "nuclei found", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return path


def _overviews(folder: Path) -> str:
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not pngs:
        return ""
    parts = [
        f"<h2>Fields ({len(pngs)})</h2><p class='note'>Nuclei found by detection, numbered as "
        "in results.parquet (nucleus_id); red outlines: cut by the field's edge (QC flag "
        "cut_by_edge).</p>"
    ]
    for png in pngs[:MAX_EMBEDDED]:
        data = base64.b64encode(png.read_bytes()).decode()
        parts.append(
            f"<p>{html.escape(png.stem)}<br><img alt='field overview' width='600' "
            f"src='data:image/png;base64,{data}'></p>"
        )
    if len(pngs) > MAX_EMBEDDED:
        parts.append(
            "<p>More: "
            + ", ".join(
                f"<a href='{OVERVIEW_DIR}/{html.escape(p.name)}'>{html.escape(p.stem)}</a>"
                for p in pngs[MAX_EMBEDDED:]
            )
            + "</p>"
        )
    return "".join(parts)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    return (
        f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'
    )


def _figures(table, doc: dict, classes) -> list[tuple[str, object]]:
    """The report's plots as (title, matplotlib Figure); [] without matplotlib."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return []
    import numpy as np

    def _COUNTS():  # noqa: N802 - axes that count nuclei have whole-number ticks
        return MaxNLocator(integer=True)

    out = []
    src = table.column("source").to_pylist()
    pred = table.column("predicted").to_pylist()
    folders = [str(Path(s).parent.name or ".") for s in src]
    names = sorted(set(folders))
    fig = Figure(figsize=(max(4.5, 0.6 * len(names) + 2), 3.5))
    ax = fig.subplots()
    bottom = [0] * len(names)
    for c in classes:
        v = [sum(1 for f, p in zip(folders, pred, strict=True) if f == n and p == c) for n in names]
        ax.bar(names, v, bottom=bottom, label=c)
        bottom = [a + b for a, b in zip(bottom, v, strict=True)]
    ax.set_ylabel("nuclei")
    ax.yaxis.set_major_locator(_COUNTS())
    ax.set_title("calls per folder (slide)")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=8)
    out.append(("Calls per folder", fig))
    fig = Figure(figsize=(3.2 * len(classes), 3))
    axes = fig.subplots(1, len(classes), squeeze=False)
    for ax, c in zip(axes[0], classes, strict=True):
        ax.hist(table.column(f"p_{c}").to_pylist(), bins=20, range=(0, 1), color="#4c72b0")
        ax.set_xlabel(f"p({c})")
        ax.set_ylabel("nuclei")
        ax.yaxis.set_major_locator(_COUNTS())
    out.append(("Probability per class", fig))
    flags = Counter(f for s in table.column("qc_flags").to_pylist() for f in s.split(",") if f)
    fig = Figure(figsize=(5, 2.8))
    ax = fig.subplots()
    labels = ["ok"] + sorted(flags)
    ax.barh(
        labels,
        [sum(table.column("qc_ok").to_pylist())] + [flags[f] for f in sorted(flags)],
        color="#55a868",
    )
    ax.set_xlabel("nuclei")
    ax.xaxis.set_major_locator(_COUNTS())
    ax.set_title("QC")
    out.append(("Quality control", fig))
    if "ood_score" in table.column_names:
        v = np.array([s for s in table.column("ood_score").to_pylist() if s is not None], float)
        v = v[np.isfinite(v)]
        if len(v):
            fig = Figure(figsize=(5, 2.8))
            ax = fig.subplots()
            ax.hist(np.log10(np.maximum(v, 1e-3)), bins=30, color="#8172b2")
            ax.axvline(0.0, color="#c44e52", ls="--", label="threshold (score 1)")
            ax.set_xlabel("log10 ood_score")
            ax.set_ylabel("nuclei")
            ax.yaxis.set_major_locator(_COUNTS())
            ax.legend(fontsize=8)
            out.append(("Out-of-distribution score", fig))
    stages = doc.get("stages", [])
    if stages:
        fig = Figure(figsize=(5, 2.8))
        ax = fig.subplots()
        ax.barh(
            [s["stage"] for s in stages],
            [s["busy_s"] for s in stages],
            label="busy",
            color="#c44e52",
        )
        ax.barh(
            [s["stage"] for s in stages],
            [s["idle_s"] for s in stages],
            left=[s["busy_s"] for s in stages],
            label="idle",
            color="#cccccc",
        )
        ax.set_xlabel("seconds")
        ax.legend(fontsize=8)
        ax.set_title("pipeline stages (the busiest sets the pace)")
        out.append(("Throughput per stage", fig))
    return out


def _plots(table, doc: dict, classes) -> list[tuple[str, str]]:
    figures = _figures(table, doc, classes)
    if not figures:
        return [("Plots", "<p>matplotlib is not installed: no plots (pip install matplotlib).</p>")]
    return [(title, _png(fig)) for title, fig in figures]


def _pixel_note(table, info) -> str:
    """The effective pixel of the images the model saw: a nucleus larger than the input is
    shrunk to fit it, so its pixel is coarser than the RenderSpec's."""
    import numpy as np

    if table is None or "pixel_nm" not in table.column_names:
        return ""
    px = np.array([v for v in table.column("pixel_nm").to_pylist() if v is not None], float)
    if not px.size:
        return ""
    spec = info.render_spec
    base = f"{spec.pixel_nm:g} nm" if spec.magnification is None else f"x{spec.magnification:g}"
    return (
        f"<p>Effective pixel of the model's input ({info.input_size} px): median "
        f"{np.median(px):.3g} nm, {px.min():.3g}–{px.max():.3g} nm (render pixel {base}; a "
        "nucleus larger than the input is shrunk to fit it; column pixel_nm).</p>"
    )


def _ood_section(table, doc: dict) -> str:
    """How many nuclei are unlike the model's training nuclei and why (the statistic or
    component furthest out, counted), the abstained calls, or the note of a model without the
    reference."""
    e = html.escape
    if doc.get("ood_note"):
        return f"<h2>Out-of-distribution</h2><p class='note'>{e(doc['ood_note'])}</p>"
    if table is None or "ood_score" not in table.column_names or not table.num_rows:
        return ""
    flags = table.column("qc_flags").to_pylist()
    reasons = table.column("ood_reason").to_pylist()
    from ..ood import reason_subject

    why = Counter(reason_subject(r) for f, r in zip(flags, reasons, strict=True)
                  if "unfamiliar" in f.split(","))  # fmt: skip
    n = sum(why.values())
    text = (f"<h2>Out-of-distribution</h2><p>{n} of {table.num_rows} nuclei are "
            "<b>unfamiliar</b> (ood_score above 1: unlike the model's training nuclei; their "
            "calls are not to be trusted)")  # fmt: skip
    if why:
        text += "; furthest out: " + ", ".join(f"{e(k)} ({v})" for k, v in why.most_common(6))
    text += ".</p>"
    if doc.get("undecided"):
        text += (f"<p>{doc['undecided']} nuclei are <b>undecided</b> (abstention at "
                 f"p < {doc.get('abstain_below')}: unfamiliar or low confidence; column "
                 "abstain_reason), counted apart from the calls above.</p>")  # fmt: skip
    return text


def write_report(
    path: Path,
    table,
    doc: dict,
    info,
    errors,
    *,
    explained: list | None = None,
    gallery: int = DEFAULT_GALLERY,
) -> Path:
    """Write ``report.html`` (atomically) for a finished screen: the summary, the nuclei
    (gallery of up to ``gallery`` cards, a table of all, sortable and filterable), the plots,
    the stages, the fields found and the failures."""
    from ..io import atomic_path

    classes = list(info.classes)
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>ainu-engine screen</title>"
        f"<style>{PAGE_CSS}</style></head><body>",
        "<h1>ainu-engine screen</h1>",
        f"<p>{doc['nuclei']} nuclei from {doc['files']} files ({doc['files_skipped_done']} already "
        "done), "
        f"{doc['failed']} failures, {doc['seconds']:.1f} s ({doc['nuclei_per_s']:.2f} nuclei/s) — "
        f"model <code>{e(str(doc['model']))}</code> ({e(info.model.get('name', '?'))}, classes "
        f"{e(', '.join(classes))}), backend {e(doc['backend'].get('backend', '?'))} on "
        f"{e(doc['backend'].get('device', '?'))}: {e(doc['backend'].get('reason', ''))}.</p>",
    ]
    parts.append(_pixel_note(table, info))
    prov = info.provenance or {}
    if prov.get("training_data"):
        parts.append(f"<p class='note'>Model trained on: {e(str(prov['training_data']))}</p>")
    ok = doc.get("calls_qc_ok", {})
    parts.append(
        "<h2>Calls</h2><table><tr><th>class</th><th>nuclei</th><th>passed QC</th>"
        "<th>failed QC</th></tr>"
        + "".join(
            f"<tr><td>{e(c)}</td><td>{doc['calls'].get(c, 0)}</td><td>{ok.get(c, 0)}</td>"
            f"<td>{doc['calls'].get(c, 0) - ok.get(c, 0)}</td></tr>"
            for c in classes
        )
        + (f"<tr><td><i>undecided</i> (abstained)</td><td>{doc['undecided']}</td><td></td>"
           "<td></td></tr>" if doc.get("undecided") else "")
        + "</table>"
    )
    parts.append(_ood_section(table, doc))
    if table is not None and table.num_rows:
        parts.append(
            nuclei_section(
                table, classes, list(info.channel_names), explained=explained, gallery=gallery,
                attribution=ATTRIBUTION_NOTE,
            )
        )  # fmt: skip
    if explained:
        parts.append(
            f"<p class='note'>Occlusion maps of {len(explained)} nuclei (--explain; beside their "
            f"thumbnails, OUT/explain/): {ATTRIBUTION_NOTE}.</p>"
        )
    for title, body in _plots(table, doc, classes):
        parts.append(f"<h2>{e(title)}</h2>{body}")
    parts.append(
        "<h2>Stages</h2><table><tr><th>stage</th><th>items</th><th>busy s</th><th>idle s</th>"
        "<th>items / busy s</th></tr>"
        + "".join(
            f"<tr><td>{e(s['stage'])}</td><td>{s['items']}</td><td>{s['busy_s']}</td>"
            f"<td>{s['idle_s']}</td><td>{s['items_per_busy_s']}</td></tr>"
            for s in doc["stages"]
        )
        + "</table>"
    )
    parts.append(_overviews(path.parent / OVERVIEW_DIR))
    if errors:
        parts.append(
            f"<h2>Failures ({len(errors)})</h2><table><tr><th>file</th><th>error</th></tr>"
            + "".join(
                f"<tr><td>{e(p)}</td><td style='text-align:left'>{e(m)}</td></tr>"
                for p, m in errors[:200]
            )
            + "</table>"
        )
    parts.append(
        "<p class='note'>Results: results.parquet (one row per nucleus), errors.csv, "
        "summary.json.</p>"
        "</body></html>"
    )
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(parts), encoding="utf-8")
    return path
