"""The "split" step of the data flow: which files a run reads (:func:`expand_inputs`), and the
nuclei of each localization file — the whole file, one per ``cell_id``, one per ImageJ/Fiji
ROI (the paper selected nuclei by hand in Fiji), or detected automatically in a field from
the localization density (:func:`split_nuclei`). Screening, explaining and rendering share it."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .io import Localizations

__all__ = [
    "Nucleus",
    "split_nuclei",
    "find_roi_set",
    "read_rois_nm",
    "DensityGrid",
    "count_nuclei",
    "detect_nuclei",
    "find_nuclei",
    "detection_limits",
    "FieldNuclei",
    "FoundNucleus",
    "expand_inputs",
    "manifest_column",
    "NUCLEI_MODES",
    "LOCALIZATION_SUFFIXES",
]

NUCLEI_MODES = ("auto", "file", "cell_id", "roi", "detect")

#: suffixes of files screen picks up inside folders
LOCALIZATION_SUFFIXES = (
    ".bin",
    ".csv",
    ".tsv",
    ".txt",
    ".hdf5",
    ".h5",
    ".smlm",
    ".parquet",
    ".arrow",
    ".mat",
)
#: files beside the data that are never data
_SIDE_SUFFIXES = (".truth.parquet", ".truth.json", ".bin.json", ".roi.zip")


def _is_manifest(path: Path) -> bool:
    if path.suffix.lower() != ".csv":
        return False
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().strip().lower().replace('"', "")
    return header.split(",")[0] == "path"


def manifest_column(
    path: Path, column: str, *, required: bool = False
) -> list[tuple[Path, str]] | None:
    """(resolved file, value of ``column``) of every row of a manifest (a CSV whose first column
    is ``path``; relative paths are relative to the manifest's folder), in row order; None when
    ``path`` is not a manifest, or lacks the column and it is not ``required``.

    Parameters
    ----------
    path : Path
        A file among the inputs.
    column : str
        The manifest column.
    required : bool
        A manifest without the column is an error.

    Returns
    -------
    list of (Path, str) or None

    Raises
    ------
    ainu_engine.errors.InputError
        A ``required`` column the manifest does not have.
    """
    import csv

    if not (path.is_file() and _is_manifest(path)):
        return None
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if rows and column not in rows[0]:
        if not required:
            return None
        raise InputError(f"the manifest has no column {column!r} to group by", path=path,
                         found=", ".join(rows[0]))  # fmt: skip
    first = next(iter(rows[0])) if rows else "path"
    out = []
    for r in rows:
        q = Path(r[first])
        out.append(((q if q.is_absolute() else path.parent / q).resolve(), str(r[column] or "")))
    return out


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files from files, folders (recursively, known localization suffixes), globs and
    manifests (a CSV whose first column is ``path``); sorted, each once. Ground-truth and
    sidecar files beside simulated data are skipped.

    Parameters
    ----------
    inputs : sequence of str or os.PathLike
        Files, folders, globs, manifests.

    Returns
    -------
    list of Path

    Raises
    ------
    ainu_engine.errors.InputError
        An input that is neither a file, a folder nor a glob that matches something.
    """
    out: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = [
                q
                for q in p.rglob("*")
                if q.is_file()
                and q.suffix.lower() in LOCALIZATION_SUFFIXES
                and not q.name.lower().endswith(_SIDE_SUFFIXES)
                and not (q.suffix.lower() == ".csv" and _is_manifest(q))
            ]
            out.extend(sorted(found))
        elif p.is_file():
            if _is_manifest(p):
                from pyarrow import csv

                table = csv.read_csv(p)
                col = table.column(table.column_names[0]).to_pylist()
                out.extend((q if q.is_absolute() else p.parent / q) for q in map(Path, col))
            else:
                out.append(p)
        else:
            matches = sorted(glob.glob(os.fspath(raw), recursive=True))
            if not matches:
                raise InputError("no such file, folder or matching glob", path=p)
            out.extend(Path(m) for m in matches if Path(m).is_file())
    seen, uniq = set(), []
    for q in out:
        k = q.resolve()  # a file reached twice (symlinks, a loop, overlapping globs) counts once
        if k not in seen:
            seen.add(k)
            uniq.append(q)
    return uniq


@dataclass
class Nucleus:
    """One nucleus of a file.

    Attributes
    ----------
    id : str
        Its id within the file (empty for a whole-file nucleus).
    locs : Localizations
        Its localizations.
    roi_nm : ndarray (K, 2) or None
        The ROI that selected it (nm).
    at_edge : bool
        It touches the edge of the field (cut off).
    outline_nm : ndarray (V, 2) or None
        The outline detection found (nm).
    """

    id: str
    locs: Localizations
    roi_nm: np.ndarray | None = None
    at_edge: bool = False
    outline_nm: np.ndarray | None = None

    @property
    def outline(self) -> np.ndarray | None:
        """The nucleus' outline in nm: its ROI, or the outline detection found (None else)."""
        return self.roi_nm if self.roi_nm is not None else self.outline_nm


def cell_name(cid) -> str:
    """The nucleus id of a ``cell_id`` value: ``cell007`` for 7 (or 7.0), else the value as it is
    (``cell1.2``, ``cellA``): two different ids never share a name."""
    if isinstance(cid, (int, np.integer)) or (
        isinstance(cid, (float, np.floating)) and float(cid).is_integer()
    ):
        return f"cell{int(cid):03d}"
    if isinstance(cid, bytes):
        cid = cid.decode("utf-8", "replace")
    return f"cell{cid}"


def find_roi_set(path: Path) -> Path | None:
    """An ImageJ ROI set beside ``path``: ``NAME.roi.zip``, ``NAME.zip``, ``NAME.roi``, or a
    ``RoiSet.zip`` in the same folder (Fiji's default name).

    Parameters
    ----------
    path : Path
        A localization file.

    Returns
    -------
    Path or None
    """
    stem = path.name.split(".")[0]
    for cand in (
        path.with_name(stem + ".roi.zip"),
        path.with_name(stem + ".zip"),
        path.with_name(stem + ".roi"),
        path.with_name("RoiSet.zip"),
    ):
        if cand.is_file() and cand != path:
            return cand
    return None


def read_rois_nm(
    roi_path: str | os.PathLike, camera_pixel_nm: float | None
) -> list[tuple[str, np.ndarray]]:
    """(name, polygon (K, 2) in nm) for every ROI of an ImageJ ROI file or set (camera pixels,
    0-based, as Fiji saves them over the widefield/STORM camera image).

    Parameters
    ----------
    roi_path : str or os.PathLike
        The ``.roi`` or ``.zip``.
    camera_pixel_nm : float or None
        The camera pixel (required).

    Returns
    -------
    list of (str, ndarray)

    Raises
    ------
    ainu_engine.errors.InputError
        An unreadable ROI file, no camera pixel size, or no usable polygon.
    """
    import roifile

    roi_path = Path(roi_path)
    try:
        rois = roifile.roiread(roi_path)
    except Exception as err:  # noqa: BLE001 - roifile raises several types
        raise InputError(f"cannot read the ImageJ ROI set: {err}", path=roi_path) from err
    rois = rois if isinstance(rois, list) else [rois]
    if camera_pixel_nm is None:
        raise InputError(
            "ROI coordinates are in camera pixels and no camera pixel size is known",
            path=roi_path,
            hint="pass --camera-pixel-nm",
        )
    out = [
        (name, np.asarray(roi.coordinates(), np.float64) * float(camera_pixel_nm))
        for name, roi in zip(roi_names(rois), rois, strict=True)
    ]
    if not any(roi_problem(poly) is None for _, poly in out):
        raise InputError(
            "the ROI set holds no usable polygon",
            path=roi_path,
            found=f"{len(out)} ROIs: {roi_problem(out[0][1]) if out else 'none'}",
        )
    return out


def roi_names(rois) -> list[str]:
    """The nucleus ids of an ROI set: each ROI's own name (as Fiji's ROI Manager shows it),
    ``roiNNN`` for one without a name, and a ``-2``, ``-3``... suffix for repeated names."""
    names, seen = [], {}
    for k, roi in enumerate(rois):
        name = str(getattr(roi, "name", "") or "").strip() or f"roi{k:03d}"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return names


def roi_problem(poly: np.ndarray) -> str | None:
    """Why an ROI outline (K, 2) in nm cannot be a nucleus, or None when it can."""
    if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
        return f"{len(poly)} vertices, not a polygon"
    if not np.isfinite(poly).all():
        return "a vertex is NaN or infinite"
    x, y = poly[:, 0], poly[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    if area <= 0:
        return "zero area"
    return None


def _cell_nuclei(locs, src, min_localizations: int) -> Iterator[Nucleus]:
    ids = locs.extra["cell_id"]
    if ids.dtype.kind == "f" and not np.isfinite(ids).all():
        raise InputError(
            f"{int((~np.isfinite(ids)).sum())} cell_id values are NaN or infinite",
            path=src,
            hint="give every localization a cell id, or use --nuclei file",
        )
    for cid in np.unique(ids):
        sel = ids == cid
        if int(sel.sum()) >= min_localizations:
            yield Nucleus(cell_name(cid), locs[sel])


def _rois(locs, src, mode: str, roi_path, cam) -> list | None:
    """The ROIs that split this file (None: no ROI set applies)."""
    if mode not in ("auto", "roi"):
        return None
    roi = (
        Path(roi_path) if roi_path is not None else (find_roi_set(src) if src is not None else None)
    )
    if roi is None:
        if mode == "roi":
            raise InputError(
                "no ImageJ ROI set beside the file (NAME.roi.zip, NAME.roi or RoiSet.zip)", path=src
            )
        return None
    if mode == "auto" and roi_path is None and not _surely_rois(roi):
        try:  # NAME.zip beside the data may be anything: an ROI set only if it reads as one
            return read_rois_nm(roi, cam)
        except InputError:
            return None
    return read_rois_nm(roi, cam)


def _surely_rois(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".roi.zip", ".roi")) or name == "roiset.zip"


def _roi_nuclei(locs, rois, min_localizations: int, on_skip) -> Iterator[Nucleus]:
    src = locs.meta.source_path
    for name, poly in rois:
        why = roi_problem(poly)
        if why is None:
            sel = points_in_polygon(poly, locs.x_nm, locs.y_nm)
            n = int(sel.sum())
            if n >= min_localizations:
                yield Nucleus(name, locs[sel], poly)
                continue
            why = (
                f"{n} localizations inside (outside the field?)"
                if n == 0
                else f"{n} localizations inside, fewer than {min_localizations}"
            )
        if on_skip is None:
            raise InputError(f"ROI {name}: {why}", path=src, hint="fix or remove the ROI")
        on_skip(name, why)


def points_in_polygon(poly: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test, vectorised over points (bounding box first)."""
    lo, hi = poly.min(axis=0), poly.max(axis=0)
    inside = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1])
    idx = np.flatnonzero(inside)
    px, py = x[idx].astype(np.float64), y[idx].astype(np.float64)
    res = np.zeros(len(idx), bool)
    xj, yj = poly[-1]
    for xi, yi in poly:
        cross = (yi > py) != (yj > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = (xj - xi) * (py - yi) / (yj - yi) + xi
        res ^= cross & (px < xint)
        xj, yj = xi, yi
    inside[idx] = res
    return inside


#: detection without training statistics: the smallest and largest whole nucleus (µm²)
MIN_AREA_UM2, MAX_AREA_UM2 = 15.0, 1000.0
#: a nucleus cut by the field's edge is kept down to this fraction of the smallest whole one
EDGE_AREA_FRACTION = 0.25


@dataclass
class FoundNucleus:
    """One nucleus that :func:`find_nuclei` found in a field.

    Attributes
    ----------
    index : int
        Its label in :attr:`FieldNuclei.labels`.
    area_um2 : float
        The area of its region on the density map.
    cut_by_edge : bool
        It meets the field's border along much of its extent (cut off).
    outline_nm : ndarray, shape (V, 2)
        The closed polygon of its region, x and y in nm.
    """

    index: int
    area_um2: float
    cut_by_edge: bool
    outline_nm: np.ndarray


@dataclass
class FieldNuclei:
    """What :func:`find_nuclei` found.

    Attributes
    ----------
    labels : ndarray of int
        A label per localization (−1: in no nucleus).
    nuclei : list of FoundNucleus
        In order of their labels.
    """

    labels: np.ndarray
    nuclei: list[FoundNucleus]


def detection_limits(training_stats: dict | None) -> tuple[float, float]:
    """(smallest, largest) area in µm² of a whole nucleus for detection: the limits the model's
    training nuclei were detected with where it records them (``nuclei.area_limits_um2``: a
    model trained on the cells of fields finds cells as it was taught), else a quarter of the
    smallest and four times the largest training nucleus where the model has them (detection
    must not drop a cell the QC would flag as out of range: the QC tells), else
    :data:`MIN_AREA_UM2`, :data:`MAX_AREA_UM2`.

    Parameters
    ----------
    training_stats : dict or None
        A model's training statistics (``nuclei``: ``area_limits_um2``; ``area_um2``: ``min``,
        ``max``).

    Returns
    -------
    (float, float)

    Examples
    --------
    >>> detection_limits({"area_um2": {"min": 64.0, "max": 175.0}})
    (16.0, 700.0)
    """
    taught = ((training_stats or {}).get("nuclei") or {}).get("area_limits_um2")
    if taught and len(taught) == 2:
        return float(taught[0]), float(taught[1])
    area = (training_stats or {}).get("area_um2") or {}
    lo, hi = area.get("min"), area.get("max")
    if not lo or not hi:
        return MIN_AREA_UM2, MAX_AREA_UM2
    return float(lo) / 4.0, float(hi) * 4.0


class DensityGrid:
    """Localization counts on the lattice of ``cell_nm`` anchored at 0 nm (cell (i, j) covers
    [j·c, (j+1)·c) × [i·c, (i+1)·c)), with the extent of the localizations: what
    :func:`find_nuclei` segments. It grows as localizations are added (O(added); the counts of
    a cell never depend on where the others lie), so a live session keeps one and asks
    :func:`count_nuclei` at each call without going over every localization again.

    Parameters
    ----------
    cell_nm : float, default 250
        The lattice's cell.
    """

    def __init__(self, cell_nm: float = 250.0) -> None:
        self.cell_nm = float(cell_nm)
        self.counts = np.zeros((0, 0), np.float64)
        self.origin = (0, 0)  #: (column, row) on the lattice of counts[0, 0]
        self.extent = (np.inf, np.inf, -np.inf, -np.inf)  #: (x0, y0, x1, y1) in nm
        self.n = 0

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray, cell_nm: float = 250.0) -> DensityGrid:
        """The grid of these localizations.

        Parameters
        ----------
        x, y : ndarray
            Localizations (nm).
        cell_nm : float, default 250
            The lattice's cell.

        Returns
        -------
        DensityGrid
        """
        grid = cls(cell_nm)
        grid.add(x, y)
        return grid

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Count more localizations (nm).

        Parameters
        ----------
        x, y : ndarray
            The localizations.
        """
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        if len(x) == 0:
            return
        e = self.extent
        self.extent = (min(e[0], float(x.min())), min(e[1], float(y.min())),
                       max(e[2], float(x.max())), max(e[3], float(y.max())))  # fmt: skip
        ix, iy = self.cells(x, y)
        lo = (int(ix.min()), int(iy.min()))
        hi = (int(ix.max()), int(iy.max()))
        self._cover(lo, hi)
        ny, nx = self.counts.shape
        flat = (iy - self.origin[1]) * nx + (ix - self.origin[0])
        self.counts += np.bincount(flat, minlength=nx * ny).reshape(ny, nx)
        self.n += len(x)

    def cells(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The lattice cell (column, row) of each localization.

        Parameters
        ----------
        x, y : ndarray
            Localizations (nm).

        Returns
        -------
        (ndarray, ndarray) of int64
        """
        c = self.cell_nm
        return np.floor(np.asarray(x) / c).astype(np.int64), np.floor(np.asarray(y) / c).astype(
            np.int64
        )

    def field(self) -> tuple[np.ndarray, tuple[int, int]]:
        """The counts over the localizations' extent (the cells from the smallest to the largest
        occupied column and row) and the lattice (column, row) of its corner.

        Returns
        -------
        counts : ndarray (ny, nx) of float64
        corner : (int, int)
        """
        (j0, i0), (j1, i1) = self._span()
        ox, oy = self.origin
        return self.counts[i0 - oy : i1 - oy + 1, j0 - ox : j1 - ox + 1], (j0, i0)

    def _span(self) -> tuple[tuple[int, int], tuple[int, int]]:
        x0, y0, x1, y1 = self.extent
        (j0, j1), (i0, i1) = self.cells([x0, x1], [y0, y1])
        return (int(j0), int(i0)), (int(j1), int(i1))

    def _cover(self, lo: tuple[int, int], hi: tuple[int, int]) -> None:
        ny, nx = self.counts.shape
        ox, oy = self.origin
        if nx and lo[0] >= ox and lo[1] >= oy and hi[0] < ox + nx and hi[1] < oy + ny:
            return
        if nx:  # grow with slack: a nucleus imaged in frame order regrows a few times at most
            slack = max(8, nx // 4, ny // 4)
            lo = (min(lo[0], ox - (slack if lo[0] < ox else 0)),
                  min(lo[1], oy - (slack if lo[1] < oy else 0)))  # fmt: skip
            hi = (max(hi[0], ox + nx - 1 + (slack if hi[0] >= ox + nx else 0)),
                  max(hi[1], oy + ny - 1 + (slack if hi[1] >= oy + ny else 0)))  # fmt: skip
        grown = np.zeros((hi[1] - lo[1] + 1, hi[0] - lo[0] + 1), np.float64)
        if nx:
            grown[oy - lo[1] : oy - lo[1] + ny, ox - lo[0] : ox - lo[0] + nx] = self.counts
        self.counts, self.origin = grown, lo


def find_nuclei(
    x: np.ndarray,
    y: np.ndarray,
    *,
    cell_nm: float = 250.0,
    smooth_nm: float = 500.0,
    min_area_um2: float = MIN_AREA_UM2,
    max_area_um2: float = MAX_AREA_UM2,
    min_density: float | None = None,
) -> FieldNuclei:
    """Find the nuclei of a field from its localization density.

    1. Counts on the ``cell_nm`` lattice (:class:`DensityGrid`), smoothed by a Gaussian of
       ``smooth_nm``: a density map (localizations / µm²).
    2. Foreground: density at least ``min_density`` (default: Otsu's threshold on the log density
       of the non-empty map, which separates nuclei from the sparse background of a field),
       holes filled.
    3. Touching nuclei are split by a watershed of the distance transform, from markers that
       stand out of it by more than a quarter of the smallest nucleus' radius (so a waist between
       two nuclei splits them and an elongated nucleus stays one).
    4. A region is a nucleus when its area lies in [``min_area_um2``, ``max_area_um2``]; one cut
       by the field's edge is kept down to :data:`EDGE_AREA_FRACTION` of ``min_area_um2``, and
       flagged.

    Parameters
    ----------
    x, y : ndarray
        The field's localizations (nm).
    cell_nm : float, default 250
        The density map's cell.
    smooth_nm : float, default 500
        The Gaussian smoothing the map.
    min_area_um2, max_area_um2 : float
        A whole nucleus's area range.
    min_density : float, optional
        The foreground's density (default: Otsu's threshold).

    Returns
    -------
    FieldNuclei
    """
    from scipy import ndimage as ndi

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if len(x) == 0:
        return FieldNuclei(np.full(0, -1), [])
    grid = DensityGrid.of(x, y, cell_nm)
    regions, corner, px_um2 = _regions(grid, smooth_nm, min_area_um2, min_density)
    ix, iy = grid.cells(x, y)
    at = regions[iy - corner[1], ix - corner[0]]
    labels = np.full(len(x), -1, np.int64)
    found: list[FoundNucleus] = []
    for lab, sl in enumerate(ndi.find_objects(regions), start=1):
        if sl is None:
            continue
        region = regions[sl] == lab
        area = float(region.sum()) * px_um2
        if area > max_area_um2 or area < EDGE_AREA_FRACTION * min_area_um2:
            continue
        mine = at == lab
        edge = _cut_by_edge(x[mine], y[mine], grid.extent, cell_nm)
        if area < min_area_um2 and not edge:
            continue
        labels[mine] = len(found)
        origin = ((corner[0] + sl[1].start) * cell_nm, (corner[1] + sl[0].start) * cell_nm)
        found.append(FoundNucleus(len(found), area, edge, _outline(region, origin, cell_nm)))
    return FieldNuclei(labels, found)


def count_nuclei(
    grid: DensityGrid,
    points: Callable[[], tuple[np.ndarray, np.ndarray]],
    *,
    smooth_nm: float = 500.0,
    min_area_um2: float = MIN_AREA_UM2,
    max_area_um2: float = MAX_AREA_UM2,
    min_density: float | None = None,
) -> int:
    """How many nuclei :func:`find_nuclei` finds in the localizations ``grid`` counts, from the
    grid alone (O(cells)) where the areas decide; the localizations (``points()``) are asked for
    only where a region's area leaves it to the edge test (smaller than a whole nucleus, large
    enough for a cut one). Equal to ``len(find_nuclei(x, y, ...).nuclei)``.

    Parameters
    ----------
    grid : DensityGrid
        The counts of the localizations.
    points : callable
        Returns their x, y (nm), for the edge test.
    smooth_nm, min_area_um2, max_area_um2, min_density
        As for :func:`find_nuclei` (the grid's cell is ``cell_nm``).

    Returns
    -------
    int
    """
    from scipy import ndimage as ndi

    if grid.n == 0:
        return 0
    regions, corner, px_um2 = _regions(grid, smooth_nm, min_area_um2, min_density)
    areas = ndi.sum_labels(np.ones_like(regions), regions, np.arange(1, regions.max() + 1))
    areas = np.asarray(areas, np.float64) * px_um2
    n = int(np.sum((areas >= min_area_um2) & (areas <= max_area_um2)))
    maybe = np.flatnonzero((areas < min_area_um2) & (areas >= EDGE_AREA_FRACTION * min_area_um2))
    if len(maybe):
        x, y = (np.asarray(v, np.float64) for v in points())
        ix, iy = grid.cells(x, y)
        at = regions[iy - corner[1], ix - corner[0]]
        for k in maybe:
            mine = at == k + 1
            n += _cut_by_edge(x[mine], y[mine], grid.extent, grid.cell_nm)
    return n


def _regions(grid: DensityGrid, smooth_nm: float, min_area_um2: float,
             min_density: float | None) -> tuple[np.ndarray, tuple[int, int], float]:  # fmt: skip
    """The labelled regions of the field's density map, the lattice corner of the map, and a
    cell's area (µm²)."""
    from scipy import ndimage as ndi

    counts, corner = grid.field()
    cell_nm = grid.cell_nm
    px_um2 = (cell_nm / 1000.0) ** 2
    density = ndi.gaussian_filter(counts, smooth_nm / cell_nm, mode="constant") / px_um2
    mask = ndi.binary_fill_holes(density >= _threshold(density, min_density))
    return _split_touching(mask, cell_nm, min_area_um2), corner, px_um2


def _threshold(density: np.ndarray, min_density: float | None) -> float:
    if min_density is not None:
        return float(min_density)
    from skimage.filters import threshold_otsu

    values = density[density > density.max() * 1e-3]
    if values.size < 2 or np.ptp(values) == 0:
        return float(values.min()) if values.size else np.inf
    return float(np.exp(threshold_otsu(np.log(values))))


def _split_touching(mask: np.ndarray, cell_nm: float, min_area_um2: float) -> np.ndarray:
    """Labels of the foreground, touching nuclei split by a distance-transform watershed."""
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    from .kernels import h_maxima  # scikit-image's, in microseconds for these small maps

    dist = ndi.distance_transform_edt(mask)
    r_min = np.sqrt(min_area_um2 / np.pi) * 1000.0 / cell_nm  # pixels
    h = max(1.0, 0.25 * r_min)
    markers, _ = ndi.label(h_maxima(dist, h) & mask)
    regions = _merge_shallow(watershed(-dist, markers, mask=mask), dist, h)
    # a foreground region without a marker (smaller than the marker height) keeps its own label
    rest, n_rest = ndi.label(mask & (regions == 0))
    if n_rest:
        regions = np.where(rest > 0, rest + regions.max(), regions)
    return regions


def _merge_shallow(regions: np.ndarray, dist: np.ndarray, h: float) -> np.ndarray:
    """Merge neighbouring watershed regions whose lower peak stands less than ``h`` above the
    saddle between them (equal maxima of the distance map, e.g. along an oval nucleus' axis,
    give two markers that are one nucleus)."""
    n = int(regions.max())
    if n < 2:
        return regions
    peak = np.zeros(n + 1)
    np.maximum.at(peak, regions.ravel(), dist.ravel())
    saddle: dict[tuple[int, int], float] = {}
    for a, b, da, db in (
        (regions[:, :-1], regions[:, 1:], dist[:, :-1], dist[:, 1:]),
        (regions[:-1], regions[1:], dist[:-1], dist[1:]),
    ):
        touch = (a != b) & (a > 0) & (b > 0)
        pairs = np.column_stack([np.minimum(a, b)[touch], np.maximum(a, b)[touch]])
        for (i, j), v in zip(pairs.tolist(), np.minimum(da, db)[touch].tolist(), strict=True):
            if v > saddle.get((i, j), -1.0):
                saddle[(i, j)] = v
    parent = list(range(n + 1))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for (i, j), v in sorted(saddle.items(), key=lambda kv: -kv[1]):  # highest saddles first
        ri, rj = root(i), root(j)
        if ri != rj and min(peak[ri], peak[rj]) - v < h:
            parent[rj] = ri
            peak[ri] = max(peak[ri], peak[rj])
    lut = np.array([root(i) for i in range(n + 1)])
    return lut[regions]


def _outline(region: np.ndarray, origin: tuple[float, float], cell_nm: float) -> np.ndarray:
    """The outer boundary of a region as a closed polygon in nm (vertices on pixel edges)."""
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(region.astype(np.float64), 1)
    contour = max(find_contours(padded, 0.5), key=len)  # (row, col) of the padded image
    contour = approximate_polygon(contour, tolerance=0.5)
    xs = origin[0] + (contour[:, 1] - 1 + 0.5) * cell_nm
    ys = origin[1] + (contour[:, 0] - 1 + 0.5) * cell_nm
    return np.column_stack([xs, ys])


def detect_nuclei(x: np.ndarray, y: np.ndarray, **options) -> tuple[np.ndarray, list[bool]]:
    """The labels (−1 for none) and cut-by-edge flags of :func:`find_nuclei`.

    Parameters
    ----------
    x, y : ndarray
        The field's localizations (nm).
    **options
        Keywords of :func:`find_nuclei`.

    Returns
    -------
    labels : ndarray of int
    cut_by_edge : list of bool
    """
    found = find_nuclei(x, y, **options)
    return found.labels, [n.cut_by_edge for n in found.nuclei]


def _cut_by_edge(x, y, field, margin_nm: float, min_fraction: float = 0.6) -> bool:
    """A nucleus is cut by the field's edge when its localizations within ``margin_nm`` of a
    border of the field span at least ``min_fraction`` of its own extent along that border (a
    round nucleus that only touches the border spans a chord of ~0.45 of its diameter there at
    a 250 nm margin; one missing a fifth of its radius or more spans >= 0.6 of it)."""
    if len(x) < 3:
        return False
    x0, y0, x1, y1 = field
    width, height = float(np.ptp(x)), float(np.ptp(y))
    for near, along, extent in (
        (x - x0 < margin_nm, y, height),
        (x1 - x < margin_nm, y, height),
        (y - y0 < margin_nm, x, width),
        (y1 - y < margin_nm, x, width),
    ):
        if near.sum() >= 2 and float(np.ptp(along[near])) >= min_fraction * extent:
            return True
    return False


def split_nuclei(
    locs: Localizations,
    *,
    mode: str = "auto",
    roi_path: str | os.PathLike | None = None,
    camera_pixel_nm: float | None = None,
    min_localizations: int = 1,
    on_skip: Callable[[str, str], None] | None = None,
    area_limits_um2: tuple[float, float] | None = None,
) -> Iterator[Nucleus]:
    """The nuclei of one file's localizations.

    Parameters
    ----------
    locs : Localizations
        One file's localizations.
    mode : {"auto", "file", "cell_id", "roi", "detect"}
        ``auto``: a ``cell_id`` column if there is one, else an ROI set beside the file (or
        ``roi_path``), else the whole file is one nucleus. ``detect`` finds nuclei in a field
        from the localization density (:func:`detect_nuclei`).
    roi_path : path, optional
        ImageJ ROI file or set; default: looked for beside the file (:func:`find_roi_set`).
    camera_pixel_nm : float, optional
        For ROIs (in camera pixels); default the file's own.
    min_localizations : int, default 1
        A cell or ROI with fewer localizations is no nucleus.
    on_skip : callable, optional
        Called with (nucleus id, reason) for every ROI that gives no nucleus: no polygon, a
        NaN vertex, zero area, or fewer than ``min_localizations`` inside (outside the field).
        Without it, such an ROI is an :class:`~ainu_engine.errors.InputError`: none is dropped
        without a word.
    area_limits_um2 : (float, float), optional
        ``detect``: the smallest and largest whole nucleus (default :data:`MIN_AREA_UM2`,
        :data:`MAX_AREA_UM2`; :func:`detection_limits` derives them from a model's training
        nuclei). Nuclei cut by the field's edge are kept with ``at_edge``.

    Yields
    ------
    Nucleus

    Raises
    ------
    ValueError
        An unknown ``mode``.
    ainu_engine.errors.InputError
        No ``cell_id`` column for mode ``cell_id``, or an ROI that gives no nucleus (without
        ``on_skip``).
    """
    if mode not in NUCLEI_MODES:
        raise ValueError(f"mode must be one of {', '.join(NUCLEI_MODES)}, got {mode!r}")
    src = Path(locs.meta.source_path) if locs.meta.source_path else None
    cam = camera_pixel_nm
    if cam is None and locs.meta.camera_pixel_nm is not None:
        cam = locs.meta.camera_pixel_nm[0]
    has_ids = "cell_id" in locs.extra
    if mode == "cell_id" and not has_ids:
        raise InputError("no cell_id column", path=src, hint="use --nuclei auto, roi or detect")
    if mode in ("auto", "cell_id") and has_ids:
        yield from _cell_nuclei(locs, src, min_localizations)
        return
    rois = _rois(locs, src, mode, roi_path, cam)
    if rois is not None:
        yield from _roi_nuclei(locs, rois, min_localizations, on_skip)
        return
    if mode == "detect":
        lo, hi = area_limits_um2 or (MIN_AREA_UM2, MAX_AREA_UM2)
        found = find_nuclei(locs.x_nm, locs.y_nm, min_area_um2=lo, max_area_um2=hi)
        for n in found.nuclei:
            sel = found.labels == n.index
            if int(sel.sum()) >= min_localizations:
                yield Nucleus(f"det{n.index:03d}", locs[sel], None, n.cut_by_edge, n.outline_nm)
        return
    yield Nucleus("", locs)
