"""Screens split into shards, and their merge: the framework-free protocol under every way of
running a screen on more than one machine (a SLURM job array, several workstations, Ray).

- **Assignment.** A file belongs to shard ``sha256(resolved path) mod N`` (:func:`shard_of`):
  every shard lists the same inputs and keeps its own files, with no coordinator. All nuclei of
  a file go to the file's shard — finding them needs the whole file read (detection, ROI sets),
  and a shard that read every file to keep a few of its nuclei would read the screen N times.
- **Running.** ``screen(..., shard=(k, N))`` writes into ``OUT/shards/KKKK-of-NNNN/`` with its
  own parts, journal, errors and summary (and its own folder lock): shards never write the same
  file, so they may run at the same time, in any order, and again (a requeued job resumes from
  its parts like any screen).
- **Merge.** :func:`merge` gathers every shard's parts into ``OUT/results.parquet``,
  ``errors.csv``, ``summary.json`` and ``report.html``, after checking that all N shards
  finished with the same model, RenderSpec, nuclei mode and channel map, that every nucleus
  key (file key, nucleus id) appears exactly once, and that every file assigned to a shard is
  either done with all its nuclei or in that shard's errors. Anything else is an error naming
  the shards, files or keys.
"""

from __future__ import annotations

import csv as pycsv
import hashlib
import json
import os
import re
import time
from pathlib import Path

from ..errors import InputError, OutputError
from ._report_page import DEFAULT_GALLERY
from ._results import count_calls, count_flagged, count_undecided

__all__ = ["parse_shard", "shard_of", "shard_dir", "merge", "SHARDS_DIR", "MergeError"]

SHARDS_DIR = "shards"
_NAME = re.compile(r"^(\d+)-of-(\d+)$")


class MergeError(OutputError):
    """The shards of a screen do not add up to one screen (missing, doubled, mismatched)."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"k/N"`` -> (k, N) with 0 <= k < N (SLURM: ``--array=0-(N-1)``).

    Parameters
    ----------
    text : str
        ``K/N``.

    Returns
    -------
    (int, int)

    Raises
    ------
    ValueError
        Not ``K/N``, or K outside 0..N-1.

    Examples
    --------
    >>> parse_shard("3/16")
    (3, 16)
    """
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"expected K/N (e.g. 3/16), got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"shard {k}/{n}: K must be 0 to N-1 (SLURM: --array=0-{max(n - 1, 0)})")
    return k, n


def shard_of(path: str | os.PathLike, n: int) -> int:
    """The shard (0..n-1) of an input file: a hash of its resolved path, so that every shard
    agrees without reading the file (all machines must see it under the same path).

    Parameters
    ----------
    path : str or os.PathLike
        An input file.
    n : int
        The number of shards.

    Returns
    -------
    int
    """
    digest = hashlib.sha256(os.fsencode(Path(path).resolve())).digest()
    return int.from_bytes(digest[:8], "big") % n


def shard_dir(out: str | os.PathLike, k: int, n: int) -> Path:
    return Path(out) / SHARDS_DIR / f"{k:04d}-of-{n:04d}"


def _shards(out: Path) -> dict[tuple[int, int], Path]:
    found = {}
    for d in sorted((out / SHARDS_DIR).glob("*-of-*")):
        m = _NAME.match(d.name)
        if m and d.is_dir():
            found[(int(m.group(1)), int(m.group(2)))] = d
    return found


def _summary(d: Path) -> dict | None:
    try:
        return json.loads((d / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _errors(d: Path) -> list[tuple[str, str]]:
    path = d / "errors.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r["path"], r["error"]) for r in pycsv.DictReader(fh)]


def _journal(d: Path, run: str) -> dict[str, int | None]:
    """file key -> nuclei the shard wrote for it (None: an older journal without counts)."""
    done = {}
    path = d / "parts" / "done.jsonl"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            if rec.get("run") == run:
                done[rec["file"]] = rec.get("n")
    return done


def _listed(keys, limit: int = 5) -> str:
    keys = list(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(str(k) for k in keys[:limit]) + more


def merge(out: str | os.PathLike, *, csv: bool = False, report: bool = True,
          gallery: int = DEFAULT_GALLERY) -> dict:  # fmt: skip
    """Merge the shards of ``out`` (see the module doc).

    Parameters
    ----------
    out : path
        The screen's folder, whose ``shards/`` hold every shard's run.
    csv : bool
        Also write ``results.csv``.
    report : bool, default True
        Write ``report.html``.
    gallery : int
        Nuclei the report's gallery shows at once.

    Returns
    -------
    dict
        The merged summary document (also ``OUT/summary.json``).

    Raises
    ------
    MergeError
        A shard is missing or unfinished, the shards disagree on N or on what was screened, a
        nucleus appears twice, or an assigned file is neither done nor an error.
    """
    import pyarrow as pa

    from ..io import atomic_path
    from ..model import read_model_info
    from ..strict_json import dumps
    from ._report import write_report
    from ._results import FolderLock, write_final
    from ._rois import write_roi_sets

    t0 = time.perf_counter()
    out = Path(out)
    n, dirs, summaries = _finished_shards(out)
    with FolderLock(out):
        check = _Check()
        tables, errors = [], []
        for k in range(n):
            table, errs = _gather_shard(k, n, dirs[k], summaries[k], check)
            errors.extend(errs)
            if table is not None:
                tables.append(table)
        check.raise_if_wrong(out / SHARDS_DIR)
        table = pa.concat_tables(tables, promote_options="default") if tables else None
        if table is not None:
            src, ids = table.column("source").to_pylist(), table.column("nucleus_id").to_pylist()
            order = sorted(range(table.num_rows), key=lambda i: (src[i], ids[i]))
            table = table.take(pa.array(order, pa.int64()))
        results = write_final(out, table, errors, csv=csv)
        doc = _merged_doc(out, results, summaries, table, errors, n, time.perf_counter() - t0)
        doc["roi_sets"] = write_roi_sets(
            out,
            table,
            doc.get("classes") or [],
            camera_pixel_nm=summaries[0].get("camera_pixel_nm"),
        )
        with atomic_path(out / "summary.json") as tmp:
            Path(tmp).write_text(dumps(doc, indent=2) + "\n")
        if report and table is not None:
            write_report(out / "report.html", table, doc, read_model_info(doc["model"]), errors,
                         gallery=gallery)  # fmt: skip
    return doc


def _finished_shards(out: Path) -> tuple[int, dict[int, Path], dict[int, dict]]:
    """N, the shard folders and their summaries, once all N shards have finished alike."""
    shards = _shards(out)
    if not shards:
        raise InputError(
            "no shards to merge here", path=out,
            hint="run `ainu-engine screen ... --out OUT --shard K/N` for K = 0..N-1 first",
        )  # fmt: skip
    counts = {n for _, n in shards}
    if len(counts) > 1:
        raise MergeError(
            f"shards of different counts N ({', '.join(map(str, sorted(counts)))}) in one folder",
            path=out / SHARDS_DIR,
            hint="a screen is split one way: delete the shards of the other split",
        )
    (n,) = counts
    dirs = {k: d for (k, _), d in shards.items()}
    summaries = {k: _summary(d) for k, d in dirs.items()}
    missing = [f"{k}/{n}" for k in range(n) if summaries.get(k) is None]
    if missing:
        raise MergeError(
            f"{len(missing)} of {n} shards have not finished: {_listed(missing)}",
            path=out / SHARDS_DIR,
            hint="run (or rerun) those shards; a finished shard has a summary.json",
        )
    ident = {
        k: (s.get("model_sha256"), s.get("render_spec_hash"), s.get("nuclei_mode"),
            json.dumps(s.get("channel_map"), sort_keys=True))
        for k, s in summaries.items()
    }  # fmt: skip
    other = [f"{k}/{n}" for k, v in sorted(ident.items()) if v != ident[0]]
    if other:
        raise MergeError(
            f"shards {_listed(other)} screened with another model, RenderSpec, nuclei mode or "
            "channel map than shard 0",
            path=out / SHARDS_DIR,
            hint="rerun them with the same --model and options (with --force)",
        )
    return n, dirs, summaries


class _Check:
    """What merge finds wrong across the shards: keys or files in two shards, incomplete files."""

    def __init__(self) -> None:
        self.owner: dict[tuple[str, str], int] = {}
        self.assigned: dict[str, int] = {}
        self.doubled: list[str] = []
        self.incomplete: list[str] = []

    def raise_if_wrong(self, where: Path) -> None:
        if self.doubled:
            raise MergeError(
                f"{len(self.doubled)} nuclei or files appear in more than one shard: "
                f"{_listed(self.doubled)}",
                path=where,
                hint="the inputs differed between shards (or files moved); rerun those shards "
                "with --force from the same inputs",
            )
        if self.incomplete:
            raise MergeError(
                f"{len(self.incomplete)} files are incomplete: {_listed(self.incomplete)}",
                path=where,
                hint="rerun the shards named (a rerun completes what is missing)",
            )


def _path_of(file_key: str) -> str:
    return file_key.rsplit("|", 2)[0]


def _gather_shard(k: int, n: int, d: Path, s: dict, check: _Check):
    """One shard's rows (each nucleus once: a batch redone after a crash is the same row) and
    errors, with what is wrong recorded in ``check``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    run = s.get("run_key")
    parts = [pq.read_table(p) for p in sorted((d / "parts").glob(f"part-{run}-*.parquet"))]
    table = pa.concat_tables(parts, promote_options="default") if parts else None
    per_file: dict[str, set] = {}
    if table is not None:
        keys = list(zip(table.column("file_key").to_pylist(),
                        table.column("nucleus_id").to_pylist(), strict=True))  # fmt: skip
        last = {key: i for i, key in enumerate(keys)}
        for key in last:
            if check.owner.setdefault(key, k) != k:
                check.doubled.append(f"{_path_of(key[0])} nucleus {key[1] or '(file)'} "
                                     f"(shards {check.owner[key]} and {k})")  # fmt: skip
            per_file.setdefault(key[0], set()).add(key[1])
        table = table.take(pa.array(sorted(last.values()), pa.int64()))
    errors = _errors(d)
    done = _journal(d, run)
    for fkey, expected in done.items():
        got = len(per_file.get(fkey, ()))
        if expected is not None and got != expected:
            check.incomplete.append(f"{_path_of(fkey)}: {got} of {expected} nuclei in shard {k}")
    done_paths = {_path_of(fk) for fk in done}
    failed = {p for p, _ in errors}
    for f in (s.get("shard") or {}).get("files", []):
        if check.assigned.setdefault(f, k) != k:
            check.doubled.append(f"file {f} (shards {check.assigned[f]} and {k})")
        if str(Path(f).resolve()) not in done_paths and f not in failed:
            check.incomplete.append(f"{f}: neither done nor an error in shard {k}/{n}")
    return table, errors


def _merged_doc(out, results, summaries, table, errors, n, merge_s) -> dict:
    s0 = summaries[0]
    classes = list(s0.get("classes") or [])
    calls, calls_ok = (
        count_calls(table, classes)
        if table is not None
        else (dict.fromkeys(classes, 0), dict.fromkeys(classes, 0))
    )
    seconds = [float(s.get("seconds") or 0.0) for s in summaries.values()]
    keep = ("model", "model_sha256", "render_spec_hash", "classes", "nuclei_mode", "channel_map",
            "backend", "simulated_model", "abstain_below")  # fmt: skip
    from ..provenance import stamp

    return {
        **stamp(),  # the merging engine; each shard's own version stays in its summary
        **{k: s0.get(k) for k in keep},
        "out": str(out),
        "results": str(results),
        "files": sum(int(s.get("files") or 0) for s in summaries.values()),
        "files_skipped_done": sum(
            int(s.get("files_skipped_done") or 0) for s in summaries.values()
        ),  # fmt: skip
        "nuclei": 0 if table is None else table.num_rows,
        "failed": len(errors),
        "seconds": round(max(seconds), 3),
        "shard_seconds_total": round(sum(seconds), 3),
        "nuclei_per_s": round(
            (0 if table is None else table.num_rows) / max(max(seconds), 1e-9), 3
        ),  # fmt: skip
        "stages": [],
        "calls": calls,
        "calls_qc_ok": calls_ok,
        "looks_like_field": count_flagged(table, "looks_like_field"),
        "unfamiliar": count_flagged(table, "unfamiliar"),
        "undecided": count_undecided(table),
        "ood_note": s0.get("ood_note"),
        "total_rows": 0 if table is None else table.num_rows,
        "shards": {
            "n": n,
            "merge_seconds": round(merge_s, 3),
            "nuclei_per_shard": [int(s.get("nuclei") or 0) for _, s in sorted(summaries.items())],
        },  # fmt: skip
    }
