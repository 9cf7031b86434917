"""Evaluate an exported model on a labelled manifest: render with the model's own RenderSpec,
run it on an inference backend (ONNX Runtime by default), and write metrics, plots and
per-nucleus predictions."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import numpy as np

from ainu_engine.errors import InputError
from ainu_engine.model import read_model_info
from ainu_engine.scores import mean_cross_entropy, softmax

from .data import RenderCache, expand_nuclei, load_nuclei, read_manifest

__all__ = ["evaluate", "onnx_logits"]


def onnx_logits(
    model_path: str | os.PathLike,
    images,
    *,
    batch_size: int = 32,
    backend: str = "auto",
    device: str = "auto",
) -> np.ndarray:
    """Logits (N, K) of an exported model on float32 images (N, C, S, S) or a list of (C, S, S)
    arrays, in batches, on an ``ainu_engine.backends`` backend (``auto``: the fastest available).

    Parameters
    ----------
    model_path : path
        The ``.onnx``.
    images : ndarray or list of ndarray
        The inputs.
    batch_size : int
        Images per call.
    backend, device : str
        See :func:`ainu_engine.backends.create_backend`.

    Returns
    -------
    ndarray, shape (N, K), float32
    """
    from ainu_engine.backends import create_backend

    with create_backend(model_path, backend, device=device) as b:
        out = [
            b.infer(np.stack([np.asarray(a) for a in images[i : i + batch_size]]))
            for i in range(0, len(images), batch_size)
        ]
        k = len(b.info.classes)
    return np.concatenate(out) if out else np.zeros((0, k), np.float32)


def evaluate(
    model_path: str | os.PathLike,
    manifest_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    cache: RenderCache | None = None,
    batch_size: int = 32,
    reporter=None,
    backend: str = "auto",
    device: str = "auto",
    nuclei: str = "file",
) -> dict:
    """Metrics of an exported model on a manifest (labels must be among the model's classes).

    Writes ``out/metrics.json``, ``confusion.png``, ``roc.png``, ``pr.png``,
    ``predictions.csv`` (one row per nucleus) and ``errors.csv`` (rows that could not be
    rendered, with their message). In patch mode a nucleus's call is the patch vote.

    Returns the metrics dict.

    Parameters
    ----------
    model_path : path
        The exported ``.onnx``.
    manifest_path : path
        The labelled nuclei.
    out : path
        The output folder.
    cache : RenderCache, optional
        The render cache.
    batch_size : int
        Images per inference call.
    reporter : object, optional
        Progress (the CLI's output).
    backend, device : str
        See :func:`ainu_engine.backends.create_backend`.
    nuclei : str, default "file"
        ``file``: a row is a nucleus; ``detect``, ``roi``, ``cell_id``, ``auto``: the rows are
        fields, evaluated cell by cell (:func:`~ainu_engine.training.data.expand_nuclei`).

    Returns
    -------
    dict

    Raises
    ------
    ainu_engine.errors.InputError
        A label outside the model's classes, or an unreadable manifest.
    """
    from .metrics import classification_metrics, plot_metrics
    from .train import Reporter, _write_predictions, default_cache_dir, vote

    reporter = reporter or Reporter()
    t0 = time.perf_counter()
    info = read_model_info(model_path)
    # per-file channel maps (cpla2=647;5lo=561) are read for the model's own channel names
    manifest = read_manifest(manifest_path, classes=info.classes,
                             channels=list(info.channel_names))  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pre = info.preprocessing or {}
    patch = int(pre["patch_size"]) if pre.get("mode") == "patches" else None
    cache = cache or RenderCache(default_cache_dir(), channel_option="--channel-map")
    from ainu_engine.preprocess import Preprocess

    cache = cache.with_preprocess(Preprocess.of_model(pre))  # as the model was trained
    if cache.channel_names is None:  # the files' channels are matched to the model's by name
        cache.channel_names = info.channel_names
    if nuclei != "file":  # the rows are fields: their cells, split as screen splits them
        from ainu_engine.nuclei import detection_limits

        manifest = expand_nuclei(manifest, mode=nuclei, camera_pixel_nm=cache.camera_pixel_nm,
                                 read_options=cache.read_options,
                                 area_limits_um2=detection_limits(info.training_stats))  # fmt: skip
    with reporter.stage("render", len(manifest)) as step:
        data = load_nuclei(
            manifest,
            info.render_spec,
            cache,
            patch_size=patch,
            min_occupied=float(pre.get("min_occupied", 0.75)),
            on_item=step,
        )
    with open(out / "errors.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "error"])
        for row, msg in sorted(data.failed.items()):
            w.writerow([manifest.item_name(row), msg])
    for msg in data.failed.values():
        reporter.log(f"left out: {msg}")
    if len(data) == 0:
        raise InputError("no nucleus of the manifest could be rendered", path=manifest.path)
    shape = np.asarray(data.images[0]).shape
    if shape != (info.n_channels, info.input_size, info.input_size):
        raise InputError(
            f"inputs are {shape}, the model needs "
            f"{(info.n_channels, info.input_size, info.input_size)}",
            path=model_path,
        )
    t1 = time.perf_counter()
    logits = onnx_logits(
        model_path, data.images, batch_size=batch_size, backend=backend, device=device
    )
    t2 = time.perf_counter()
    prob = softmax(logits, axis=1)
    k = len(info.classes)
    rows, scores, undecided = vote(prob, data.owner, k)
    y = manifest.y[rows]
    metrics = classification_metrics(y, scores, info.classes)
    item_y = data.y
    metrics["loss"] = mean_cross_entropy(prob, item_y)
    metrics["n_undecided"] = int(undecided.sum())
    metrics["n_failed"] = len(data.failed)
    metrics["unit"] = "nucleus" + (f" (vote over {len(data)} patches)" if patch else "")
    metrics["model"] = {
        "path": os.fspath(model_path),
        "arch": info.model.get("name"),
        "training_metrics": info.metrics,
    }
    metrics["manifest"] = {"path": os.fspath(manifest_path), "sha256": manifest.sha256}
    metrics["seconds"] = {"render": t1 - t0, "inference": t2 - t1}
    plot_metrics(metrics, out)  # the plots and metrics.json
    _write_predictions(
        out / "predictions.csv", manifest, {"rows": rows, "scores": scores, "undecided": undecided}
    )
    return metrics
