"""The browsable part of ``report.html``: a gallery of the nuclei (thumbnails of the model input
with the call, the probability and the QC flags; occlusion maps where ``--explain`` made them),
a table of all nuclei that sorts and filters in the page, a larger view of one nucleus with its
channels, and a CSV download of the rows shown. Vanilla JavaScript in the page itself: the
report stays one file that opens with no network."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from ._rois import CALL_COLORS
from ._thumbs import THUMB_COLUMN, THUMB_PX

__all__ = ["nuclei_section", "PAGE_CSS", "DEFAULT_GALLERY"]

#: nuclei shown as cards at once (the table's first rows as it is sorted and filtered)
DEFAULT_GALLERY = 200

#: (results column, header, kind) of the table, after the per-class probabilities
_COLUMNS = (
    ("file", "file", "text"),
    ("nucleus_id", "nucleus", "text"),
    ("predicted", "call", "text"),
)
_TAIL = (
    ("qc_flags", "QC", "text"),
    ("ood_score", "OOD score", "num"),
    ("ood_reason", "furthest out", "text"),
    ("abstain_reason", "undecided because", "text"),
    ("n_localizations", "localizations", "int"),
    ("area_um2", "area µm²", "num"),
)

PAGE_CSS = """
body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222;padding:0 1em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}.note{color:#666}
#nuclei-controls{display:flex;flex-wrap:wrap;gap:.6em;align-items:center;margin:.6em 0}
#nuclei-controls input,#nuclei-controls select,#nuclei-controls button{font-size:.95em}
#gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px}
.card{border:3px solid #ccc;border-radius:4px;padding:4px;cursor:pointer;font-size:.8em;
background:#fafafa}
.card:hover{background:#eef}.card .imgs{display:flex;gap:2px;justify-content:center}
.card img{width:64px;height:64px;image-rendering:auto;background:#000}
.card .ov{outline:1px solid #888}.flag{color:#b00}.ok{color:#080}
#nuclei-table th{cursor:pointer;user-select:none;white-space:nowrap}
#nuclei-table th.sorted-asc::after{content:" \\25B2"}
#nuclei-table th.sorted-desc::after{content:" \\25BC"}
#nuclei-table td.text{text-align:left}#nuclei-table tbody tr{cursor:pointer}
#nuclei-table tbody tr:hover{background:#eef}
#pager{margin:.4em 0}#nuclei-wrap{overflow-x:auto;max-width:100%}
#nuclei-table td.text{white-space:nowrap}
#nuclei-table td.path{text-align:left;overflow-wrap:anywhere}
#viewer{position:fixed;inset:0;background:rgba(0,0,0,.55);display:none;align-items:center;
justify-content:center;z-index:10}
#viewer.open{display:flex}
#viewer .panel{background:#fff;max-width:95vw;max-height:92vh;overflow:auto;padding:1em;
border-radius:6px}
#viewer figure{display:inline-block;margin:.3em;text-align:center}
#viewer figure img{width:256px;height:256px;background:#000}
#viewer figure img.overlay{width:auto;height:auto;max-width:520px;background:none}
"""

_JS = r"""
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("ainu-data").textContent);
  const cols = D.columns, rows = D.rows, N = rows.length;
  const col = Object.fromEntries(cols.map((c, i) => [c[0], i]));
  const $ = (id) => document.getElementById(id);
  const state = {sort: null, dir: 1, text: "", call: "", qc: "", page: 0};
  const PAGE = 100;
  let view = [];

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
      '"': "&quot;", "'": "&#39;"}[c]));
  }
  function fmt(v, kind) {
    if (v === null || v === undefined) return "";
    if (kind === "prob") return v.toFixed(3);
    if (kind === "num") return v.toFixed(1);
    return String(v);
  }
  function colour(call) {
    const k = D.classes.indexOf(call);
    return D.colors[(k < 0 ? D.colors.length - 1 : k) % D.colors.length];
  }
  function prob(i) { return rows[i][col["p_" + rows[i][col.predicted]]]; }
  function qcText(i) { return rows[i][col.qc_flags] || "ok"; }
  function imgs(i, cls) {
    const t = D.thumbs[i];
    if (!t) return "<span class='note'>no thumbnail</span>";
    return t.map((b, c) => "<img class='" + cls + "' alt='" + esc(D.channels[c] || "channel") +
      "' title='" + esc(D.channels[c] || "") + "' src='data:image/jpeg;base64," + b + "'>")
      .join("");
  }

  function compute() {
    const text = state.text.toLowerCase();
    view = [];
    for (let i = 0; i < N; i++) {
      const r = rows[i];
      if (state.call && r[col.predicted] !== state.call) continue;
      const q = r[col.qc_flags] || "";
      if (state.qc === "ok" && q) continue;
      if (state.qc === "flagged" && !q) continue;
      if (state.qc && state.qc !== "ok" && state.qc !== "flagged" &&
          !q.split(",").includes(state.qc)) continue;
      if (text && !(String(r[col.source]) + " " + String(r[col.nucleus_id] || ""))
          .toLowerCase().includes(text)) continue;
      view.push(i);
    }
    if (state.sort !== null) {
      const k = state.sort, d = state.dir;
      view.sort((a, b) => {
        const x = rows[a][k], y = rows[b][k];
        if (x === y) return a - b;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * d;
      });
    }
  }

  function renderGallery() {
    const shown = view.slice(0, D.gallery);
    $("gallery").innerHTML = shown.map((i) => {
      const r = rows[i], q = r[col.qc_flags];
      const m = D.overlays[i] && D.overlays[i].map;
      const ov = m ? "<img class='ov' alt='occlusion map' title='occlusion map: " +
        esc(D.attribution) + "' src='data:image/png;base64," + m + "'>" : "";
      return "<div class='card' data-row='" + i + "' style='border-color:" +
        colour(r[col.predicted]) + "'><div class='imgs'>" + imgs(i, "thumb") + ov +
        "</div><div>" + esc(r[col.nucleus_id] || r[col.file]) + "</div><div><b>" +
        esc(r[col.predicted]) + "</b> " + prob(i).toFixed(2) + "</div><div class='" +
        (q ? "flag" : "ok") + "'>" + esc(q || "QC ok") + "</div></div>";
    }).join("");
    $("gallery-count").textContent = shown.length < view.length
      ? "the first " + shown.length + " of " + view.length + " (sort or filter the table to " +
        "bring others here; click a row to open any nucleus)"
      : shown.length + " nuclei";
  }

  function renderTable() {
    const pages = Math.max(1, Math.ceil(view.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * PAGE, part = view.slice(start, start + PAGE);
    $("nuclei-rows").innerHTML = part.map((i) => "<tr data-row='" + i + "'>" +
      cols.map((c, k) => "<td class='" + c[2] + "'>" + esc(fmt(rows[i][k], c[2])) + "</td>")
        .join("") + "</tr>").join("");
    $("shown").textContent = view.length + " of " + N + " nuclei";
    $("page").textContent = "page " + (state.page + 1) + " of " + pages;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
    document.querySelectorAll("#nuclei-table th").forEach((th, k) => {
      th.classList.toggle("sorted-asc", state.sort === k && state.dir === 1);
      th.classList.toggle("sorted-desc", state.sort === k && state.dir === -1);
    });
  }

  function update() { compute(); renderGallery(); renderTable(); }

  function open(i) {
    const r = rows[i];
    const probs = D.classes.map((c) => esc(c) + " " + fmt(r[col["p_" + c]], "prob")).join(", ");
    const figs = (D.thumbs[i] || []).map((b, c) => "<figure><img alt='" +
      esc(D.channels[c] || "channel") + "' src='data:image/jpeg;base64," + b +
      "'><figcaption>" + esc(D.channels[c] || "channel " + (c + 1)) + "</figcaption></figure>")
      .join("") || "<p class='note'>no thumbnail</p>";
    const ov = D.overlays[i] ? "<figure><img class='overlay' alt='occlusion map' " +
      "src='data:image/png;base64," + D.overlays[i].figure + "'><figcaption>" +
      esc(D.attribution) +
      "</figcaption></figure>" : "";
    $("viewer-body").innerHTML = "<h3>" + esc(r[col.file]) + " " + esc(r[col.nucleus_id] || "") +
      "</h3><p><b style='color:" + colour(r[col.predicted]) + "'>" + esc(r[col.predicted]) +
      "</b> (" + probs + "), QC: " + esc(qcText(i)) + ", " + esc(fmt(r[col.n_localizations])) +
      " localizations, " + esc(fmt(r[col.area_um2], "num")) + " µm²</p><div>" + figs + ov +
      "</div><p class='note'>The model's input, each channel at " + D.thumb_px +
      " px (the thumbnails the screen kept). Source: " + esc(r[col.source]) + "</p>";
    $("viewer").classList.add("open");
  }
  function close() { $("viewer").classList.remove("open"); }

  function csv() {
    const q = (v) => {
      const s = v === null || v === undefined ? "" : String(v);
      return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    };
    const lines = [cols.map((c) => q(c[0])).join(",")]
      .concat(view.map((i) => rows[i].map(q).join(",")));
    const blob = new Blob([lines.join("\n") + "\n"], {type: "text/csv"});
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "nuclei.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  $("filter").addEventListener("input", (e) => { state.text = e.target.value; state.page = 0;
    update(); });
  $("call").addEventListener("change", (e) => { state.call = e.target.value; state.page = 0;
    update(); });
  $("qc").addEventListener("change", (e) => { state.qc = e.target.value; state.page = 0;
    update(); });
  $("prev").addEventListener("click", () => { state.page--; renderTable(); });
  $("next").addEventListener("click", () => { state.page++; renderTable(); });
  $("csv").addEventListener("click", csv);
  document.querySelectorAll("#nuclei-table th").forEach((th, k) => th.addEventListener(
    "click", () => {
      state.dir = state.sort === k ? -state.dir : 1;
      state.sort = k;
      state.page = 0;
      update();
    }));
  const pick = (e) => {
    const el = e.target.closest("[data-row]");
    if (el) open(Number(el.dataset.row));
  };
  $("gallery").addEventListener("click", pick);
  $("nuclei-rows").addEventListener("click", pick);
  $("viewer").addEventListener("click", (e) => { if (e.target.id === "viewer") close(); });
  $("viewer-close").addEventListener("click", close);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") close(); });
  update();
})();
"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _finite(v):
    """None for a NaN or infinite float (JSON has neither)."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _map_thumbnail(npy: Path) -> str | None:
    """A small PNG (base64) of an attribution map in the explain colours, centred on 0."""
    import io

    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    from ..explain import ATTRIBUTION_CMAP

    try:
        a = np.load(npy)
    except (OSError, ValueError):
        return None
    a = np.nan_to_num(np.asarray(a, np.float32).reshape(-1, *np.shape(a)[-2:])[0])
    lim = float(np.abs(a).max()) or 1.0
    rgb = colormaps[ATTRIBUTION_CMAP]((a / lim + 1) / 2, bytes=True)[..., :3]
    im = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    if max(im.size) > THUMB_PX:
        im.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return _b64(buf.getvalue())


def _overlays(table, explained) -> dict[int, dict]:
    """Row index → {"map": small map PNG, "figure": overlay PNG} (base64) of the nuclei
    ``--explain`` mapped."""
    if not explained:
        return {}
    where = {
        (s, n or ""): i
        for i, (s, n) in enumerate(
            zip(table.column("source").to_pylist(), table.column("nucleus_id").to_pylist(),
                strict=True)
        )
    }  # fmt: skip
    out = {}
    for rec in explained:
        png, npy = Path(rec.get("overlay") or ""), Path(rec.get("map") or "")
        i = where.get((str(rec.get("source")), rec.get("nucleus_id") or ""))
        if i is not None and png.is_file():
            out[i] = {"figure": _b64(png.read_bytes()),
                      "map": _map_thumbnail(npy) if npy.is_file() else None}  # fmt: skip
    return out


def _payload(table, classes, channels, explained, gallery: int, attribution: str) -> dict:
    names = table.column_names
    cols = [*_COLUMNS, *((f"p_{c}", f"p({c})", "prob") for c in classes), *_TAIL]
    cols = [c for c in cols if c[0] in names or c[0] == "file"]
    sources = table.column("source").to_pylist()
    data = {
        k: (
            [Path(s).name for s in sources]
            if k == "file"
            else table.column(k).to_pylist()
        )
        for k, _, _ in cols
    }  # fmt: skip
    rows = [[_finite(v) for v in r] for r in zip(*(data[k] for k, _, _ in cols), strict=True)]
    thumbs = [None] * table.num_rows
    if THUMB_COLUMN in names:
        thumbs = [None if t is None else [_b64(b) for b in t]
                  for t in table.column(THUMB_COLUMN).to_pylist()]  # fmt: skip
    cols.append(("source", "path", "path"))
    for r, s in zip(rows, sources, strict=True):
        r.append(s)
    return {
        "columns": [list(c) for c in cols],
        "rows": rows,
        "thumbs": thumbs,
        "overlays": _overlays(table, explained),
        "classes": list(classes),
        "channels": list(channels),
        "colors": list(CALL_COLORS),
        "gallery": int(gallery),
        "thumb_px": THUMB_PX,
        "attribution": attribution,
    }


def _script_json(doc: dict) -> str:
    """JSON safe inside a <script> element (no '</' to end it early)."""
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def nuclei_section(table, classes, channels, *, explained=None, gallery: int = DEFAULT_GALLERY,
                   attribution: str = "") -> str:  # fmt: skip
    """The gallery, the table, the viewer and the page's script, as HTML."""
    e = html.escape
    doc = _payload(table, classes, channels, explained, gallery, attribution)
    flags = sorted({f for q in table.column("qc_flags").to_pylist() for f in (q or "").split(",")
                    if f})  # fmt: skip
    call_opts = "".join(f"<option value='{e(c)}'>{e(c)}</option>" for c in classes)
    qc_opts = "".join(f"<option value='{e(f)}'>{e(f)}</option>" for f in flags)
    heads = "".join(f"<th>{e(label)}</th>" for _, label, _ in doc["columns"])
    return (
        f"<h2>Nuclei ({table.num_rows})</h2>"
        "<div id='nuclei-controls'>"
        "<input id='filter' type='search' placeholder='filter by path or nucleus' size='28'>"
        f"<label>call <select id='call'><option value=''>all</option>{call_opts}</select></label>"
        "<label>QC <select id='qc'><option value=''>all</option><option value='ok'>ok</option>"
        f"<option value='flagged'>flagged</option>{qc_opts}</select></label>"
        "<span id='shown'></span>"
        "<button id='csv' type='button'>download the rows shown (CSV)</button></div>"
        "<h3>Gallery</h3><p class='note'>The model's input of each nucleus (one image a "
        "channel), framed in the colour of its call, with the probability of the call and the "
        "QC flags; click one for a larger view. <span id='gallery-count'></span></p>"
        "<div id='gallery'></div>"
        "<h3>Table</h3><p class='note'>Click a header to sort, a row to open the nucleus.</p>"
        "<div id='pager'><button id='prev' type='button'>previous</button> <span id='page'>"
        "</span> <button id='next' type='button'>next</button></div>"
        f"<div id='nuclei-wrap'><table id='nuclei-table'><thead><tr>{heads}</tr></thead>"
        "<tbody id='nuclei-rows'></tbody></table></div>"
        "<div id='viewer'><div class='panel'><button id='viewer-close' type='button'>close"
        "</button><div id='viewer-body'></div></div></div>"
        f"<script type='application/json' id='ainu-data'>{_script_json(doc)}</script>"
        f"<script>{_JS}</script>"
    )
