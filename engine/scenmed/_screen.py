"""Screening widefield fields with an exported SCENMED model (what ``ainu-engine widefield
screen`` runs): segment, call every kept nucleus, explain, write the table and the report."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import InputError
from ._classify import WidefieldClassifier
from ._nuclei import NucleusTable, read_manifest, segment_files
from ._report import write_report

__all__ = ["RESULT_COLUMNS", "expand_fields", "screen_fields"]

#: The columns of ``results.csv`` before the ``p_CLASS`` ones.
RESULT_COLUMNS = (
    "path", "field", "image", "label", "group", "id", "reason", "call", "n_patches",
    "area_px", "centroid_y", "centroid_x", "bbox_r0", "bbox_c0", "bbox_r1", "bbox_c1",
    "overexposed_fraction", "edge_cut", "pixel_um",
)  # fmt: skip

_IMAGE = (".tif", ".tiff", ".h5", ".hdf5")


def expand_fields(inputs: Sequence[str | os.PathLike]) -> list[dict]:
    """Files, folders (their TIFF/HDF5 files, sorted) and manifests (.csv: path, label, group)
    → dicts with ``path``, ``label``, ``group``.

    Parameters
    ----------
    inputs : sequence of str or os.PathLike
        Files, folders, manifests.

    Returns
    -------
    list of dict

    Raises
    ------
    ainu_engine.errors.InputError
        A folder without fields.
    """
    out: list[dict] = []
    for s in inputs:
        p = Path(s)
        if p.suffix.lower() == ".csv":
            out.extend(read_manifest(p))
        elif p.is_dir():
            files = sorted(q for q in p.rglob("*") if q.suffix.lower() in _IMAGE)
            if not files:
                raise InputError("no .tif/.h5 fields in this folder", path=p)
            out.extend({"path": str(q), "label": "", "group": ""} for q in files)
        else:
            out.append({"path": str(p), "label": "", "group": ""})
    return out


def screen_fields(
    inputs: Sequence[str | os.PathLike] | list[dict],
    model: str | os.PathLike | WidefieldClassifier,
    out: str | os.PathLike,
    *,
    pixel_um: float | None = None,
    backend: str = "auto",
    threads: int | None = None,
    explain: bool = False,
    gallery: int = 200,
    on_error: Callable[[Exception, dict], None] | None = None,
    progress: Callable | None = None,
) -> dict:
    """Segment widefield DAPI fields (SCENMED's rules) and call every kept nucleus.

    Whole-crop models call the 128 × 128 crop, patch models the mean of their patches'
    probabilities; a nucleus without a usable patch gets no call. A file that fails is counted
    and the batch goes on.

    Parameters
    ----------
    inputs : sequence of path, or list of dict
        Fields, folders, manifests (:func:`expand_fields`), or its dicts.
    model : path or WidefieldClassifier
        An exported widefield model (``widefield train``'s ``model.onnx``), or a loaded one.
    out : path
        The output folder (created): ``results.csv`` (every object: its drop reason, or its
        call and ``p_CLASS``), ``report.html`` and, with ``explain``, ``maps/`` (.npy).
    pixel_um : float, optional
        The pixel size of files that state none (or to override them).
    backend : str
        The engine backend (``auto``: the fastest here).
    threads : int, optional
        CPU threads.
    explain : bool
        Occlusion maps (crop models) or patch heat maps (patch models).
    gallery : int, default 200
        Nuclei shown in the report.
    on_error : callable, optional
        Called with ``(error, item)`` for each file that failed.
    progress : callable, optional
        ``progress(total, description)`` → a context manager yielding a function to call once
        per finished item (the CLI's progress bars); stages: segmenting, explaining.

    Returns
    -------
    dict
        ``out``, ``files``, ``failed``, ``nuclei``, ``calls`` (per class), ``no_call``.

    Raises
    ------
    ainu_engine.errors.InputError
        The model is not a widefield classifier, or a folder without fields.
    """
    items = list(inputs) if all(isinstance(i, dict) for i in inputs) else expand_fields(inputs)
    out = Path(out)
    bar = progress or _no_progress
    own = not isinstance(model, WidefieldClassifier)
    clf = WidefieldClassifier.load(model, backend, threads=threads) if own else model
    try:
        out.mkdir(parents=True, exist_ok=True)
        with bar(len(items), "segmenting") as step:
            table = segment_files(items, pixel_um=pixel_um, on_file=step, on_error=on_error)
        kept = table.kept
        calls = clf.classify(table.crops) if table.crops else []
        maps = {}
        if explain and kept:
            with bar(len(kept), "explaining") as step:
                maps = _explain(clf, table, out, step)
        for r, c in zip(kept, calls, strict=True):
            r["call"], r["n_patches"] = c.label, c.n_patches
            r.update({f"p_{k}": v for k, v in c.probabilities.items()})
        _write_results(out / "results.csv", table.rows, clf.classes)
        write_report(out / "report.html", table.rows, dict(enumerate(table.crops)), clf.classes,
                     maps=maps, map_kind=("patch map" if clf.patch else "occlusion") if maps
                     else "", model=Path(clf.info.path or "").name, gallery=gallery)  # fmt: skip
    finally:
        if own:
            clf.close()
    return {
        "out": str(out), "files": len(items), "failed": len(table.failed), "nuclei": len(kept),
        "calls": {c: sum(1 for r in kept if r.get("call") == c) for c in clf.classes},
        "no_call": sum(1 for r in kept if r.get("call") is None),
    }  # fmt: skip


@contextmanager
def _no_progress(total: int, description: str):
    yield lambda: None


def _explain(clf, table: NucleusTable, out: Path, on_explained) -> dict[int, np.ndarray]:
    (out / "maps").mkdir(exist_ok=True)
    maps = {}
    for r in table.kept:
        i = r["crop"]
        crop = table.crops[i]
        maps[i] = clf.patch_map(crop) if clf.patch else clf.occlusion(crop).maps[0]
        np.save(out / "maps" / f"{Path(r['path']).stem}_{r['image']}_{r['id']}.npy", maps[i])
        on_explained()
    return maps


def _write_results(path: Path, rows: list[dict], classes) -> None:
    from ..io import atomic_path
    from ..provenance import stamp

    version = stamp()  # a CSV has no header metadata: the engine's version is a column
    cols = list(RESULT_COLUMNS) + [f"p_{c}" for c in classes] + list(version)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in cols} | version)
