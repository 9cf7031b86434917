"""Cluster statistics of localizations (the paper's Fig. 4i-j): DBSCAN clusters of a channel's
localizations, optionally inside regions (nucleoli from the simulator's ground truth, or an
ImageJ ROI set), per cluster the number of localizations and the area of its convex hull, per
nucleus the medians, and between groups (classes, or any manifest column) a two-sided
Mann-Whitney U test of the per-nucleus medians.

>>> import numpy as np
>>> from ainu_engine.io import Localizations
>>> rng = np.random.default_rng(0)
>>> pts = np.concatenate([rng.normal(c, 5, (40, 2)) for c in (0, 500, 1000)])
>>> table = find_clusters(Localizations(pts[:, 0], pts[:, 1]), eps_nm=20, min_samples=5)
>>> len(table["n_localizations"]), sorted(table["n_localizations"].tolist())
(3, [40, 40, 40])
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = [
    "MEASURES",
    "ClusterStats",
    "NucleusClusters",
    "cluster_file",
    "compare_groups",
    "find_clusters",
    "mann_whitney",
    "region_polygons",
    "run_clusters",
]

#: the per-nucleus measures compared between groups (medians over a nucleus' clusters)
MEASURES = ("median_localizations", "median_area_nm2", "n_clusters")


def _hull_area(xy: np.ndarray) -> float:
    """Area (nm²) of the convex hull of points; 0 for fewer than 3 or collinear points."""
    if len(xy) < 3:
        return 0.0
    from scipy.spatial import ConvexHull, QhullError

    try:
        return float(ConvexHull(xy).volume)  # in 2-D, "volume" is the area
    except (QhullError, ValueError):
        return 0.0  # collinear or repeated points: no area


def find_clusters(locs, *, eps_nm: float = 20.0, min_samples: int = 5,
                  keep: np.ndarray | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """DBSCAN clusters of ``locs`` (x, y in nm): ``eps_nm`` the neighbourhood radius,
    ``min_samples`` the localizations (the point itself included) a core point needs.
    ``keep`` (bool per localization) restricts the clustering to those localizations.

    Parameters
    ----------
    locs : Localizations
        The nucleus.
    eps_nm : float, default 20
        DBSCAN's neighbourhood radius.
    min_samples : int, default 5
        The localizations a core point needs.
    keep : ndarray of bool, optional
        The localizations clustered.

    Returns
    -------
    dict of str to ndarray
        One entry per cluster: ``n_localizations``, ``area_nm2`` (convex hull), ``x_nm`` and
        ``y_nm`` (centroid); and ``labels`` (per localization: the cluster index, -1 noise or
        not kept).

    Raises
    ------
    ValueError
        A non-positive ``eps_nm`` or ``min_samples`` below 1.
    """
    if eps_nm <= 0 or min_samples < 1:
        raise ValueError(f"eps_nm must be > 0 and min_samples >= 1, got {eps_nm}, {min_samples}")
    from sklearn.cluster import DBSCAN

    n = len(locs)
    labels = np.full(n, -1, np.int64)
    sel = np.arange(n) if keep is None else np.flatnonzero(keep)
    empty = {k: np.zeros(0) for k in ("n_localizations", "area_nm2", "x_nm", "y_nm")}
    empty["n_localizations"] = empty["n_localizations"].astype(np.int64)
    if len(sel) == 0:
        return {**empty, "labels": labels}
    xy = np.column_stack([locs.x_nm[sel], locs.y_nm[sel]]).astype(np.float64)
    lab = DBSCAN(eps=float(eps_nm), min_samples=int(min_samples)).fit_predict(xy)
    labels[sel] = lab
    ids = np.unique(lab[lab >= 0])
    if not len(ids):
        return {**empty, "labels": labels}
    groups = [xy[lab == k] for k in ids]
    return {
        "n_localizations": np.array([len(g) for g in groups], np.int64),
        "area_nm2": np.array([_hull_area(g) for g in groups]),
        "x_nm": np.array([g[:, 0].mean() for g in groups]),
        "y_nm": np.array([g[:, 1].mean() for g in groups]),
        "labels": labels,
    }


def _regions(path: Path, roi: str, locs) -> Callable[[str], list[np.ndarray]]:
    """Read the regions ``roi`` names for the file at ``path`` once; returns nucleus id → its
    polygons (nm)."""
    if roi == "nucleoli":
        from .explain import truth_for

        doc = truth_for(path)
        if doc is None:
            raise InputError(
                "--roi nucleoli needs the simulator's ground truth beside the file",
                path=path, expected=path.name.split(".")[0] + ".truth.json",
                hint="or pass an ImageJ ROI set of the nucleoli: --roi NUCLEOLI.roi.zip",
            )  # fmt: skip
        nuclei = doc.get("nuclei") or []

        def nucleoli(nucleus_id: str) -> list[np.ndarray]:
            sel = nuclei
            if nucleus_id and len(nuclei) > 1:  # a file of several nuclei: this one's nucleoli
                from .nuclei import cell_name

                sel = [n for n in nuclei if cell_name(n.get("cell_id")) == nucleus_id]
            return [np.asarray(p, float) for n in sel for p in n.get("nucleoli_nm", [])]

        return nucleoli
    from .nuclei import read_rois_nm

    cam = locs.meta.camera_pixel_nm
    polys = [poly for _, poly in read_rois_nm(roi, None if cam is None else float(cam[0]))]
    return lambda nucleus_id: polys


def region_polygons(path: Path, roi: str, locs, nucleus_id: str = "") -> list[np.ndarray]:
    """The polygons (nm) that ``roi`` names for the file at ``path``: ``nucleoli`` (the
    simulator's ground truth beside the file, ``NAME.truth.json``) or an ImageJ ROI set file
    (camera pixels, converted with the file's camera pixel).

    Parameters
    ----------
    path : Path
        The data file.
    roi : str
        ``nucleoli`` or an ROI set file.
    locs : Localizations
        The file's localizations (their camera pixel).
    nucleus_id : str
        The nucleus, for the ground truth of a file of several.

    Returns
    -------
    list of ndarray
        (K, 2) polygons in nm.
    """
    return _regions(Path(path), roi, locs)(nucleus_id)


def _inside(polys: list[np.ndarray], locs) -> np.ndarray:
    from .nuclei import points_in_polygon

    keep = np.zeros(len(locs), bool)
    for poly in polys:
        keep |= points_in_polygon(poly, locs.x_nm, locs.y_nm)
    return keep


@dataclass
class NucleusClusters:
    """The clusters of one nucleus and its medians.

    Attributes
    ----------
    source, nucleus_id, group : str
        The file, the nucleus and its group.
    n_localizations : int
        Localizations clustered (inside the regions, of the channel).
    clusters : dict
        :func:`find_clusters`' arrays.
    """

    source: str
    nucleus_id: str
    group: str
    n_localizations: int
    clusters: dict = field(repr=False, default_factory=dict)

    @property
    def summary(self) -> dict:
        c = self.clusters
        n = len(c.get("n_localizations", []))
        return {
            "source": self.source, "nucleus_id": self.nucleus_id, "group": self.group,
            "n_localizations": self.n_localizations, "n_clusters": n,
            "median_localizations": float(np.median(c["n_localizations"])) if n else None,
            "median_area_nm2": float(np.median(c["area_nm2"])) if n else None,
            "clustered_fraction": (float(np.sum(c["n_localizations"]) / self.n_localizations)
                                   if self.n_localizations else None),
        }  # fmt: skip


def _select_channel(locs, channel: str | None) -> np.ndarray | None:
    """Localizations of ``channel`` (a name or id), or None for all."""
    if channel is None:
        return None
    if locs.channel is None:
        if channel in ("0", "1"):
            return None
        raise InputError(f"the file has one channel and no channel named {channel!r}",
                         path=locs.meta.source_path)  # fmt: skip
    names = {str(v).lower(): k for k, v in (locs.meta.channel_names or {}).items()}
    cid = names.get(channel.lower())
    if cid is None:
        try:
            cid = int(channel)
        except ValueError:
            cid = None
    if cid is None or not np.any(locs.channel == cid):
        have = sorted({int(c) for c in np.unique(locs.channel)})
        raise InputError(f"no channel {channel!r} in the file (channels {have}; names "
                         f"{dict(locs.meta.channel_names or {})})",
                         path=locs.meta.source_path)  # fmt: skip
    return locs.channel == cid


def cluster_file(path: str | os.PathLike, *, group: str = "", eps_nm: float = 20.0,
                 min_samples: int = 5, roi: str | None = None, channel: str | None = None,
                 nuclei: str = "auto", camera_pixel_nm: float | None = None,
                 channel_map: dict | None = None,
                 area_limits_um2: tuple[float, float] | None = None,
                 ) -> list[NucleusClusters]:  # fmt: skip
    """The clusters of every nucleus of one file (nuclei as ``screen`` finds them).

    Parameters
    ----------
    path : str or os.PathLike
        A localization file.
    group : str
        Its group (class, condition).
    eps_nm, min_samples
        As :func:`find_clusters`.
    roi : str, optional
        Regions to cluster inside (:func:`region_polygons`).
    channel : str, optional
        The channel clustered (name or id; default all; a name of ``channel_map``: the file
        channel it maps to).
    nuclei : str
        How the file splits (:func:`ainu_engine.nuclei.split_nuclei`).
    camera_pixel_nm : float, optional
        For files and ROI sets in camera pixels.
    channel_map : dict, optional
        The file's channels by protein (a manifest row's ``channels``: ``{"cpla2": "647"}``).
    area_limits_um2 : (float, float), optional
        ``detect``: the smallest and largest whole nucleus.

    Returns
    -------
    list of NucleusClusters
    """
    from .io import read
    from .nuclei import split_nuclei

    path = Path(path)
    if channel is not None and channel_map:
        by_name = {str(k).casefold(): v for k, v in channel_map.items()}
        channel = by_name.get(channel.casefold(), channel)
    locs = read(path, camera_pixel_nm=camera_pixel_nm)
    regions = None if roi is None else _regions(path, roi, locs)  # read once per file
    out = []
    for n in split_nuclei(locs, mode=nuclei, camera_pixel_nm=camera_pixel_nm,
                          area_limits_um2=area_limits_um2):  # fmt: skip
        keep = _select_channel(n.locs, channel)
        if regions is not None:
            inside = _inside(regions(n.id or ""), n.locs)
            keep = inside if keep is None else keep & inside
        c = find_clusters(n.locs, eps_nm=eps_nm, min_samples=min_samples, keep=keep)
        used = len(n.locs) if keep is None else int(keep.sum())
        out.append(NucleusClusters(str(path), n.id or "", group, used, c))
    return out


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> dict:
    """Two-sided Mann-Whitney U test (scipy.stats.mannwhitneyu): U of the first sample,
    p, and both sample sizes. NaN/None values are left out; p is None under 2 values a side.

    Parameters
    ----------
    a, b : sequence of float
        The two samples.

    Returns
    -------
    dict
        ``test``, ``statistic`` (U), ``p``, ``n`` (both sizes).
    """
    from scipy.stats import mannwhitneyu

    a = np.array([v for v in a if v is not None and np.isfinite(v)], float)
    b = np.array([v for v in b if v is not None and np.isfinite(v)], float)
    if len(a) < 2 or len(b) < 2:
        return {"test": "mann_whitney_u", "statistic": None, "p": None, "n": [len(a), len(b)]}
    r = mannwhitneyu(a, b, alternative="two-sided")
    return {"test": "mann_whitney_u", "statistic": float(r.statistic), "p": float(r.pvalue),
            "n": [len(a), len(b)]}  # fmt: skip


@dataclass
class ClusterStats:
    """Per group the medians of the per-nucleus measures, and the tests between groups.

    Attributes
    ----------
    groups : dict of str to dict
        Per group: the number of nuclei and each measure's median.
    tests : list of dict
        A Mann-Whitney U test per pair of groups and measure.
    """

    groups: dict[str, dict]
    tests: list[dict]

    def to_dict(self) -> dict:
        return {"groups": self.groups, "tests": self.tests}


def compare_groups(nuclei: list[dict]) -> ClusterStats:
    """Per group (in order of appearance) the number of nuclei and the median of each measure
    over them; a Mann-Whitney U test for each pair of groups and each measure.

    Parameters
    ----------
    nuclei : list of dict
        One row per nucleus (``group`` and the measures).

    Returns
    -------
    ClusterStats
    """
    names = list(dict.fromkeys(n["group"] for n in nuclei))
    per = {g: [n for n in nuclei if n["group"] == g] for g in names}

    def med(rows, k):
        v = [r[k] for r in rows if r[k] is not None]
        return float(np.median(v)) if v else None

    groups = {g: {"nuclei": len(rows), **{m: med(rows, m) for m in MEASURES}}
              for g, rows in per.items()}  # fmt: skip
    tests = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for m in MEASURES:
                t = mann_whitney([r[m] for r in per[a]], [r[m] for r in per[b]])
                tests.append({"measure": m, "groups": [a, b], **t})
    return ClusterStats(groups, tests)


def _manifest_groups(path: Path, column: str) -> dict[Path, str] | None:
    """file → group from a manifest (a CSV whose first column is ``path``), or None."""
    from .nuclei import manifest_column

    rows = manifest_column(path, column, required=True)
    return None if rows is None else dict(rows)


def file_groups(inputs: Sequence[str | os.PathLike], group_by: str) -> list[tuple[Path, str]]:
    """(file, group) of every input: the manifest's ``group_by`` column for files listed in a
    manifest; for other files, ``group_by="label"`` means their folder's name."""
    from .nuclei import expand_inputs

    out = []
    for raw in inputs:
        groups = _manifest_groups(Path(raw), group_by)
        for f in expand_inputs([raw]):
            g = groups.get(f.resolve()) if groups else None
            out.append((f, g if g is not None else f.parent.name))
    return out


def _boxplots(path: Path, nuclei: list[dict], stats: ClusterStats) -> None:
    from matplotlib.figure import Figure

    from .io import atomic_path

    names = list(stats.groups)
    labels = {"median_localizations": "localizations per cluster\n(median per nucleus)",
              "median_area_nm2": "cluster area, nm²\n(median per nucleus)",
              "n_clusters": "clusters per nucleus"}  # fmt: skip
    fig = Figure(figsize=(3.3 * len(MEASURES), 3.4))
    axes = fig.subplots(1, len(MEASURES))
    for ax, m in zip(axes, MEASURES, strict=True):
        data = [[r[m] for r in nuclei if r["group"] == g and r[m] is not None] for g in names]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), names)
        for k, d in enumerate(data, start=1):  # every nucleus as a point, as in the figure
            jitter = np.random.default_rng(k).uniform(-0.12, 0.12, len(d))
            ax.plot(np.full(len(d), k) + jitter, d, "o", ms=3, alpha=0.6, color="#444")
        ax.set_ylabel(labels[m], fontsize=8)
        t = next((t for t in stats.tests if t["measure"] == m), None)
        if t and t["p"] is not None and len(names) == 2:
            ax.set_title(f"Mann-Whitney p = {t['p']:.2g}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def run_clusters(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                 eps_nm: float = 20.0, min_samples: int = 5, roi: str | None = None,
                 group_by: str = "label", channel: str | None = None, nuclei: str = "auto",
                 camera_pixel_nm: float | None = None, on_file=None,
                 on_error=None,
                 area_limits_um2: tuple[float, float] | None = None) -> dict:  # fmt: skip
    """Cluster every nucleus of ``inputs`` and compare the groups; writes ``OUT/clusters.parquet``
    (one row per cluster), ``OUT/nuclei.csv`` (one row per nucleus), ``OUT/comparison.json`` and
    ``OUT/clusters.png`` (box plots). A file that fails is reported (``on_error``) and left out;
    returns the comparison document.

    Parameters
    ----------
    inputs : sequence of path
        Files, folders, globs, manifests.
    out : str or os.PathLike
        The output folder.
    eps_nm, min_samples
        As :func:`find_clusters`.
    roi, channel, nuclei, camera_pixel_nm, area_limits_um2
        As :func:`cluster_file`; a manifest row's channel map (``channels``,
        ``cpla2=647;5lo=561``) names its file's channels, so ``channel="cpla2"`` clusters each
        file's own cPLA2 channel.
    group_by : str
        The manifest column the groups come from.
    on_file : callable, optional
        Called after each file.
    on_error : callable, optional
        Called with (path, message) for each failure.

    Returns
    -------
    dict
        The comparison document.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .errors import AinuError
    from .io import atomic_path
    from .render import manifest_channel_maps

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, nuclei_rows, errors = [], [], []
    maps = manifest_channel_maps(inputs)
    for path, group in file_groups(inputs, group_by):
        try:
            found = cluster_file(path, group=group, eps_nm=eps_nm, min_samples=min_samples,
                                 roi=roi, channel=channel, nuclei=nuclei,
                                 camera_pixel_nm=camera_pixel_nm,
                                 channel_map=maps.get(str(path.resolve())),
                                 area_limits_um2=area_limits_um2)  # fmt: skip
        except AinuError as err:
            errors.append((str(path), str(err)))
            if on_error is not None:
                on_error(str(path), str(err))
            continue
        for nc in found:
            s = nc.summary
            nuclei_rows.append(s)
            c = nc.clusters
            for k in range(len(c["n_localizations"])):
                rows.append({"source": nc.source, "nucleus_id": nc.nucleus_id, "group": group,
                             "cluster": k, "n_localizations": int(c["n_localizations"][k]),
                             "area_nm2": float(c["area_nm2"][k]), "x_nm": float(c["x_nm"][k]),
                             "y_nm": float(c["y_nm"][k])})  # fmt: skip
            if on_file is not None:
                on_file(s)
    if not nuclei_rows:
        raise InputError(
            "no nucleus could be clustered",
            found=f"{len(errors)} files failed" if errors else "no input files",
        )
    stats = compare_groups(nuclei_rows)
    schema = pa.schema([("source", pa.string()), ("nucleus_id", pa.string()),
                        ("group", pa.string()), ("cluster", pa.int64()),
                        ("n_localizations", pa.int64()), ("area_nm2", pa.float64()),
                        ("x_nm", pa.float64()), ("y_nm", pa.float64())])  # fmt: skip
    from .provenance import stamp

    schema = schema.with_metadata({k: v.encode() for k, v in stamp().items()})
    with atomic_path(out / "clusters.parquet") as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    with atomic_path(out / "nuclei.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(nuclei_rows[0]))
        w.writeheader()
        w.writerows(nuclei_rows)
    _boxplots(out / "clusters.png", nuclei_rows, stats)
    doc = {
        **stamp(),
        "params": {"eps_nm": eps_nm, "min_samples": min_samples, "roi": roi,
                   "group_by": group_by, "channel": channel, "nuclei": nuclei,
                   "area_limits_um2": list(area_limits_um2) if area_limits_um2 else None},
        "nuclei": len(nuclei_rows),
        "clusters": len(rows),
        "failed": [{"path": p, "error": m} for p, m in errors],
        **stats.to_dict(),
    }  # fmt: skip
    from .strict_json import dumps

    with atomic_path(out / "comparison.json") as tmp:
        Path(tmp).write_text(dumps(doc, indent=2) + "\n", encoding="utf-8")
    return doc
