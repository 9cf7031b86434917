"""What ``ainu-engine bench`` measured, kept per model and machine, so that ``--backend auto``
can run what was fastest here rather than what is fastest in general.

One JSON file per (model file hash, machine) in ``cache_dir("bench")``: the machine is what
decides speed (CPU model and cores, GPU, ONNX Runtime version and providers), and a model file
that changes is another model.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from ..cache import cache_root

__all__ = ["save_measurements", "measured_best", "model_sha256", "measurement_path"]


def model_sha256(model: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(model, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _machine_key(machine: dict) -> str:
    return hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:16]


def measurement_path(sha: str, machine: dict) -> Path:
    """Where the measurements of the model with hash ``sha`` on ``machine`` are kept."""
    return cache_root() / "bench" / f"{sha[:16]}-{_machine_key(machine)}.json"


def save_measurements(model: str | os.PathLike, machine: dict, records: list[dict]) -> Path:
    """Keep ``records`` for ``model`` on ``machine``. Later runs replace the records of the
    backends they measured and keep the others.

    Parameters
    ----------
    model : path
        The ``.onnx`` measured (keyed by its SHA-256).
    machine : dict
        :func:`machine_id`.
    records : list of dict
        ``bench_model``'s, one per backend and batch.

    Returns
    -------
    Path
        The file they are kept in.
    """
    from ..io import atomic_write_bytes

    sha = model_sha256(model)
    path = measurement_path(sha, machine)
    measured = [r for r in records if "images_per_s" in r and "error" not in r]
    kept = []
    if path.is_file():
        try:
            old = json.loads(path.read_text())["records"]
        except (OSError, ValueError, KeyError, TypeError):
            old = []
        again = {(r["backend"], r["device"]) for r in measured}
        kept = [r for r in old if (r.get("backend"), r.get("device")) not in again]
    doc = {
        "model": os.fspath(model),
        "model_sha256": sha,
        "machine": machine,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "records": kept + measured,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(doc, indent=1) + "\n").encode())
    return path


def measured_best(
    model: str | os.PathLike, machine: dict, runnable: list[tuple[str, str]]
) -> dict | None:
    """The fastest measured record for ``model`` on ``machine`` among what can run now.

    Parameters
    ----------
    model : path
        The ``.onnx``.
    machine : dict
        :func:`machine_id`.
    runnable : list of (str, str)
        The (backend, device) pairs that can run now (:func:`runnable_backends`).

    Returns
    -------
    dict or None
        ``backend``, ``device``, ``batch``, ``images_per_s`` and the file's ``date_utc``; None
        when nothing was measured (or the file is unreadable).
    """
    folder = cache_root() / "bench"
    if not folder.is_dir() or not runnable:
        return None
    path = measurement_path(model_sha256(model), machine)
    try:
        doc = json.loads(path.read_text())
        records = [
            r
            for r in doc["records"]
            if (r.get("backend"), r.get("device")) in set(runnable)
            and float(r.get("images_per_s", 0)) > 0
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not records:
        return None
    best = max(records, key=lambda r: float(r["images_per_s"]))
    return {**best, "date_utc": doc.get("date_utc"), "path": os.fspath(path)}
