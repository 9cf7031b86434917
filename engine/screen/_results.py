"""The screen's results table and run folder: one owner for the row columns, the parts written
batch by batch, the done-files journal, and the files a finished screen leaves.

``OUT/parts/part-RUN-NNNNNN.parquet`` holds one written batch (renamed into place, so a killed
run loses at most the batch in flight); ``OUT/parts/done.jsonl`` lists the files whose every
nucleus is in a part. ``RUN`` is the run key: model, RenderSpec and nuclei mode.
"""

from __future__ import annotations

import csv as pycsv
import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..io import atomic_path, file_sha256
from ..strict_json import dumps
from ._thumbs import without_thumbnails

__all__ = [
    "FolderLock",
    "Parts",
    "check_same_run",
    "file_key",
    "run_key",
    "result_row",
    "count_calls",
    "count_flagged",
    "nucleus_fields",
    "call_fields",
    "write_final",
]


def file_key(path: Path) -> str:
    """What identifies an input file across runs: where it is and what it holds (the hash of its
    bytes, its sidecars and the ROI set beside it), not when it was last touched."""
    from ..nuclei import find_roi_set

    roi = find_roi_set(path)
    digest = file_sha256(path, also=[roi] if roi is not None else [])
    return f"{path.resolve()}|{path.stat().st_size}|{digest[:32]}"


def run_key(model_sha: str, spec_hash: str, nuclei: str, channel_map=None,
            abstain: float | None = None) -> str:  # fmt: skip
    cmap = "" if not channel_map else "|" + json.dumps(channel_map, sort_keys=True)
    # abstention changes the calls: a screen with it is another run (no suffix: keys as before)
    ab = "" if abstain is None else f"|abstain={abstain:g}"
    return hashlib.sha256(f"{model_sha}|{spec_hash}|{nuclei}{cmap}{ab}".encode()).hexdigest()[:16]


def result_row(
    source,
    key: str,
    nucleus,
    prediction,
    *,
    channel_names,
    model_sha: str,
    spec_hash: str,
    backend: str,
) -> dict:
    """One row of ``results.parquet``: the call of one nucleus, its QC and what made it. The
    columns are defined here and nowhere else: where the nucleus is (:func:`nucleus_fields`),
    then its call (:func:`call_fields`)."""
    return {
        **nucleus_fields(source, nucleus),
        **call_fields(key, prediction, channel_names=channel_names, model_sha=model_sha,
                      spec_hash=spec_hash, backend=backend),
    }  # fmt: skip


def nucleus_fields(source, nucleus) -> dict:
    """The first columns of a results row: the file, the nucleus id, its centroid, bounding box
    and outline (what a distributed screen computes where the localizations are)."""
    x, y = nucleus.locs.x_nm, nucleus.locs.y_nm
    where = (
        {"centroid_x_nm": float(x.mean()), "centroid_y_nm": float(y.mean()),
         "bbox_x0_nm": float(x.min()), "bbox_y0_nm": float(y.min()),
         "bbox_x1_nm": float(x.max()), "bbox_y1_nm": float(y.max())}
        if len(x) else {}
    )  # fmt: skip
    outline = nucleus.outline
    cam = nucleus.locs.meta.camera_pixel_nm
    return {
        "source": str(source),
        "nucleus_id": nucleus.id,
        **where,
        "outline_nm": None if outline is None else np.asarray(outline, float).round(1).tolist(),
        "camera_pixel_nm": None if cam is None else float(np.ravel(cam)[0]),
    }


def call_fields(key: str, prediction, *, channel_names, model_sha: str, spec_hash: str,
                backend: str) -> dict:  # fmt: skip
    """The other columns of a results row: the call, its QC, and what made it."""
    p = prediction
    return {
        "predicted": p.label,
        **{f"p_{c}": float(v) for c, v in p.probabilities.items()},
        "undecided": p.undecided,
        "n_localizations": int(sum(p.n_localizations)),
        **{f"n_loc_{c}": int(v) for c, v in zip(channel_names, p.n_localizations, strict=False)},
        "area_um2": p.area_um2,
        "pixel_nm": p.pixel_nm,
        "n_items": p.n_items,
        "qc_flags": ",".join(p.qc),
        "qc_ok": p.ok,
        # out-of-distribution score (None: a model without the reference) and abstention
        "ood_score": getattr(p, "ood_score", None),
        "ood_reason": getattr(p, "ood_reason", None),
        "abstain_reason": getattr(p, "abstain_reason", None),
        # resolution (models whose recorded preprocessing estimates it; else None)
        "nena_nm": getattr(p, "nena_nm", None),
        "frc_nm": getattr(p, "frc_nm", None),
        "model_sha256": model_sha,
        "render_spec_hash": spec_hash,
        "backend": backend,
        "file_key": key,
    }


def count_calls(table, classes) -> tuple[dict, dict]:
    """Calls per class in a results table, of all nuclei and of those that passed QC ({} and {}
    without a table)."""
    if table is None:
        return {}, {}
    pred = table.column("predicted").to_pylist()
    ok = table.column("qc_ok").to_pylist()
    passed = [p for p, q in zip(pred, ok, strict=True) if q]
    return {c: pred.count(c) for c in classes}, {c: passed.count(c) for c in classes}


def count_undecided(table) -> int:
    """Nuclei of a results table the classifier abstained from (``predicted`` undecided)."""
    if table is None or "abstain_reason" not in table.column_names:
        return 0
    return sum(1 for r in table.column("abstain_reason").to_pylist() if r)


def count_flagged(table, flag: str) -> int:
    """Nuclei of a results table with QC flag ``flag``."""
    if table is None:
        return 0
    return sum(1 for f in table.column("qc_flags").to_pylist() if flag in f.split(","))


class Parts:
    """The parts folder: one Parquet file per written batch, and the done-files journal."""

    def __init__(self, out: Path, key: str, force: bool):
        self.dir = out / "parts"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_key = key
        self.journal = self.dir / "done.jsonl"
        if force:
            for p in self.dir.glob(f"part-{key}-*.parquet"):
                p.unlink()
            self._rewrite_journal(keep=lambda rec: rec.get("run") != key)
        self.done_files: set[str] = set()
        self.done_nuclei: set[tuple[str, str]] = set()
        self._load()
        self.counter = len(list(self.dir.glob(f"part-{key}-*.parquet")))
        self.lock = threading.Lock()

    def _records(self):
        if not self.journal.is_file():
            return []
        out = []
        for line in self.journal.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a killed run
        return out

    def _rewrite_journal(self, keep) -> None:
        recs = [r for r in self._records() if keep(r)]
        with atomic_path(self.journal) as tmp:
            Path(tmp).write_text("".join(dumps(r) + "\n" for r in recs), encoding="utf-8")

    def _load(self) -> None:
        import pyarrow.parquet as pq

        for r in self._records():
            if r.get("run") == self.run_key:
                self.done_files.add(r["file"])
        for p in sorted(self.dir.glob(f"part-{self.run_key}-*.parquet")):
            t = pq.read_table(p, columns=["file_key", "nucleus_id"])
            self.done_nuclei.update(
                zip(
                    t.column("file_key").to_pylist(),
                    t.column("nucleus_id").to_pylist(),
                    strict=True,
                )
            )

    def write(self, rows: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not rows:
            return
        with self.lock:
            self.counter += 1
            path = self.dir / f"part-{self.run_key}-{self.counter:06d}.parquet"
        table = pa.Table.from_pylist(rows)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="lz4")

    def mark_done(self, key: str, n: int | None = None) -> None:
        """Journal the file ``key`` done: all its ``n`` nuclei are in the parts."""
        rec = {"run": self.run_key, "file": key, **({} if n is None else {"n": int(n)})}
        with self.lock, open(self.journal, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def gather(self):
        """All parts of this run as one table, each nucleus once, sorted by source and nucleus."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [pq.read_table(p) for p in sorted(self.dir.glob(f"part-{self.run_key}-*.parquet"))]
        if not tables:
            return None
        t = pa.concat_tables(tables, promote_options="default")
        # a nucleus written twice (a batch redone after a crash between write and journal) counts
        # once
        keys = list(
            zip(t.column("file_key").to_pylist(), t.column("nucleus_id").to_pylist(), strict=True)
        )
        last = {k: i for i, k in enumerate(keys)}
        idx = sorted(last.values(), key=lambda i: (t.column("source")[i].as_py(), keys[i][1]))
        return t.take(pa.array(idx, pa.int64())) if idx else t.slice(0, 0)


def _flat(table):
    """The table with its list columns (the outline) as JSON text, for CSV."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            text = [None if v is None else json.dumps(v) for v in table.column(i).to_pylist()]
            table = table.set_column(i, field.name, pa.array(text, pa.string()))
    return table


def write_final(out: Path, table, errors: list[tuple[str, str]], *, csv: bool) -> Path:
    """``results.parquet`` (and ``results.csv``) from the gathered table, and ``errors.csv``;
    returns the results path."""
    results = out / "results.parquet"
    table = without_thumbnails(table)  # the report's pictures stay in the parts
    if table is not None:
        import pyarrow.parquet as pq

        from ..provenance import stamp

        meta = {**(table.schema.metadata or {}), **{k: v.encode() for k, v in stamp().items()}}
        table = table.replace_schema_metadata(meta)
        with atomic_path(results) as tmp:
            pq.write_table(table, tmp, compression="lz4")
        if csv:
            from pyarrow import csv as pacsv

            with atomic_path(out / "results.csv") as tmp:
                pacsv.write_csv(_flat(table), tmp)
    with atomic_path(out / "errors.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = pycsv.writer(fh)
        w.writerow(["path", "error"])
        w.writerows(errors)
    return results


class FolderLock:
    """One screen at a time per output folder: an exclusive ``flock`` on ``OUT/.screen.lock``,
    which records the holder's pid and host. The kernel drops the lock when the holder exits
    (a killed screen never leaves a stale lock)."""

    def __init__(self, out: Path) -> None:
        self.path = out / ".screen.lock"
        self._fh = None

    def acquire(self) -> FolderLock:
        import fcntl
        import socket

        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise OutputError(
                f"another screen is writing into this folder ({holder})",
                path=self.path.parent,
                hint="wait for it to finish, or choose another --out",
            ) from err
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            import fcntl

            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def check_same_run(
    out: Path, model_sha: str, spec_hash: str, nuclei: str, channel_map=None, *, force: bool
) -> None:
    """Refuse to replace another model's (or RenderSpec's, nuclei mode's, channel map's) results
    in ``out`` unless ``force``: results.parquet, errors.csv and report.html hold one run."""
    summary = out / "summary.json"
    if force or not summary.is_file():
        return
    try:
        doc = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # not a screen's summary: nothing to protect
    before = (doc.get("model_sha256"), doc.get("render_spec_hash"), doc.get("nuclei_mode"))
    same_map = (doc.get("channel_map") or None) == (channel_map or None)
    if None in before or (before == (model_sha, spec_hash, nuclei) and same_map):
        return
    what = (
        "model"
        if before[0] != model_sha
        else "RenderSpec"
        if before[1] != spec_hash
        else "nuclei mode"
        if before[2] != nuclei
        else "channel map"
    )
    raise OutputError(
        f"holds the results of a screen with another {what} ({doc.get('model')}, "
        f"nuclei {before[2]})",
        path=out,
        hint="pass --force to replace them, or choose another --out",
    )
