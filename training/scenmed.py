"""SCENMED's models on widefield nuclei: linear models on the hand-crafted features (with the
feature-ablation table), the VGG-like CNN on 128² crops, a patch CNN on 32² patches, and
t-SNE of the CNN's penultimate features (methods spec §1.6-1.9, §1.11).

The split is the paper's "fair" validation set (per class ⌊fraction·N / K⌋ nuclei, at most 15 %
in all), drawn at random; with groups (image sets, days) whole groups go to one side — the
public code's split ignores them, so nuclei of one field can sit on both sides.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "LINEAR_MODELS",
    "MODELS",
    "ScenmedRunConfig",
    "train_scenmed",
    "read_features_table",
    "fair_split",
    "make_linear",
    "fit_linear",
    "ablation",
    "CNNResult",
    "train_cnn",
    "tsne",
]

LINEAR_MODELS = ("logreg", "svm", "rf")


def fair_split(
    y: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    fraction: float = 0.15,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: per class ``⌊fraction·N / K⌋`` validation nuclei (the
    paper's fair split, ≤ ``fraction`` in all). With ``groups``, whole groups of a class are
    drawn until the class's quota is reached (at least one group; a class with one group
    cannot be validated group-disjointly and raises).

    Parameters
    ----------
    y : ndarray
        Classes.
    groups : ndarray, optional
        Each nucleus's group (image set).
    fraction : float
        The validation share.
    seed : int
        The seed.

    Returns
    -------
    (ndarray, ndarray)

    Raises
    ------
    ValueError
        ``fraction`` outside (0, 1), or a class with one group (group-disjoint validation
        impossible).
    """
    y = np.asarray(y)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
    classes = np.unique(y)
    quota = max(int(np.floor(fraction * len(y) / len(classes))), 1)
    rng = np.random.default_rng(seed)
    val: list[int] = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        if groups is None:
            val.extend(rng.choice(idx, size=min(quota, len(idx) - 1), replace=False).tolist())
            continue
        g = np.asarray(groups)[idx]
        names = np.unique(g)
        if len(names) < 2:
            raise ValueError(
                f"class {c!r} has one group ({names[0]!r}): a group-disjoint validation set "
                "needs at least two (or split without groups)"
            )
        taken = 0
        for name in rng.permutation(names):
            size = int(np.sum(g == name))
            if taken and taken + size > quota:
                continue
            val.extend(idx[g == name].tolist())
            taken += size
            if taken >= quota:
                break
    v = np.array(sorted(val), dtype=int)
    t = np.setdiff1d(np.arange(len(y)), v)
    return t, v


def make_linear(name: str, seed: int = 0):
    """A scikit-learn pipeline: StandardScaler (fitted on the training set) + the model:
    ``logreg`` (L2, L-BFGS, class-weighted, 1000 iterations), ``svm`` (LinearSVC,
    class-weighted) or ``rf`` (random forest, 100 trees, depth 8, class-weighted).

    Parameters
    ----------
    name : {"logreg", "svm", "rf"}
        The model.
    seed : int
        The seed.

    Returns
    -------
    sklearn.pipeline.Pipeline

    Raises
    ------
    ValueError
        An unknown name.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if name == "logreg":
        m = LogisticRegression(solver="lbfgs", max_iter=1000, class_weight="balanced")
    elif name == "svm":
        m = LinearSVC(class_weight="balanced", random_state=seed)
    elif name == "rf":
        m = RandomForestClassifier(
            n_estimators=100, max_depth=8, class_weight="balanced", random_state=seed
        )
    else:
        raise ValueError(f"model must be one of {', '.join(LINEAR_MODELS)}, got {name!r}")
    return make_pipeline(StandardScaler(), m)


def _clean(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return np.where(np.isfinite(X), X, 0.0)


def fit_linear(
    X: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    name: str,
    seed: int = 0,
    *,
    search: int = 0,
) -> tuple[object, dict]:
    """Fit ``name`` on ``X[train]``; return (pipeline, {train_accuracy, val_accuracy,
    val_pred}). ``search`` > 0 (random forest): the paper's randomized search over trees,
    depth, leaf size and features per split, ``search`` draws scored by 3-fold CV on the
    training set only (``best_params`` in the result).

    Parameters
    ----------
    X : ndarray, shape (N, F)
        Features.
    y : ndarray
        Classes.
    train, val : ndarray
        Row indices.
    name : str
        A linear model (:data:`LINEAR_MODELS`).
    seed : int
        The seed.
    search : int
        Random forest: randomized-search draws.

    Returns
    -------
    (sklearn.pipeline.Pipeline, dict)
    """
    X = _clean(X)
    m = make_linear(name, seed)
    best = None
    if search and name == "rf":
        from sklearn.model_selection import RandomizedSearchCV

        grid = {
            "randomforestclassifier__n_estimators": [50, 100, 200],
            "randomforestclassifier__max_depth": [4, 6, 8, 12, None],
            "randomforestclassifier__min_samples_leaf": [1, 2, 4],
            "randomforestclassifier__max_features": ["sqrt", "log2", 0.3],
        }
        cv = RandomizedSearchCV(m, grid, n_iter=search, cv=3, random_state=seed)
        cv.fit(X[train], y[train])
        m, best = cv.best_estimator_, cv.best_params_
    else:
        m.fit(X[train], y[train])
    return m, {
        "train_accuracy": float(np.mean(m.predict(X[train]) == y[train])),
        "val_accuracy": float(np.mean(m.predict(X[val]) == y[val])),
        "val_pred": m.predict(X[val]),
        **({"best_params": {k.split("__")[-1]: v for k, v in best.items()}} if best else {}),
    }


def ablation(
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    train: np.ndarray,
    val: np.ndarray,
    *,
    model: str = "logreg",
    seed: int = 0,
) -> list[dict]:
    """The paper's Table 1: training and validation accuracy with all features, and with each
    family (shape, lbp, pftas, zernike) removed, and the change against all.

    Parameters
    ----------
    X : ndarray, shape (N, F)
        Features.
    y : ndarray
        Classes.
    names : list of str
        The feature columns.
    train, val : ndarray
        Row indices.
    model : str
        A linear model (:data:`LINEAR_MODELS`).
    seed : int
        The seed.

    Returns
    -------
    list of dict
        One row per family removed (all features first).
    """
    fams = sorted({n.split("_")[0] for n in names}, key=["shape", "lbp", "pftas", "zernike"].index)
    _, base = fit_linear(X, y, train, val, model, seed)
    rows = [{"removed": "none", "n_features": len(names), **_acc(base)}]
    for fam in fams:
        keep = [i for i, n in enumerate(names) if not n.startswith(fam + "_")]
        _, r = fit_linear(X[:, keep], y, train, val, model, seed)
        rows.append(
            {
                "removed": fam,
                "n_features": len(keep),
                **_acc(r),
                "delta_train": r["train_accuracy"] - base["train_accuracy"],
                "delta_val": r["val_accuracy"] - base["val_accuracy"],
            }
        )
    return rows


def _acc(r: dict) -> dict:
    return {"train_accuracy": r["train_accuracy"], "val_accuracy": r["val_accuracy"]}


@dataclass
class CNNResult:
    """A trained widefield CNN: the model, its per-epoch history, train/validation accuracy
    per nucleus and the validation probabilities per nucleus.

    Attributes
    ----------
    model : object
        The trained network (eval mode).
    history : list[dict]
        Per-epoch records.
    best_epoch : int
        The epoch restored.
    train_accuracy : float
        Accuracy per nucleus on the training set.
    val_accuracy : float
        On the validation set.
    val_prob : np.ndarray
        Validation probabilities per nucleus (N, K).
    seconds : float
        Wall time.
    n_items : int
        Training items (crops or patches, rotations included).
    """

    model: object
    history: list[dict]
    best_epoch: int
    train_accuracy: float
    val_accuracy: float
    val_prob: np.ndarray
    seconds: float
    n_items: int = 0


def _items(crops, patch: int | None, min_occupied: float, code_layout: bool, stride=None):
    """Model inputs (C=1) scaled to [0, 1] of 12 bit and the nucleus each belongs to."""
    from ainu_engine.scenmed import extract_patches

    imgs, owner = [], []
    for i, c in enumerate(crops):
        if patch is None:
            imgs.append(c[None] / 4095.0)
            owner.append(i)
            continue
        p, _ = extract_patches(
            c, size=patch, stride=stride or max(patch // 2, 1), min_occupied=min_occupied,
            code_layout=code_layout,
        )  # fmt: skip
        imgs.extend(x[None] / 4095.0 for x in p)
        owner.extend([i] * len(p))
    return [np.asarray(x, np.float32) for x in imgs], np.asarray(owner, int)


def _rotations(images: list, y: np.ndarray, owner: np.ndarray):
    out = []
    for k in range(4):
        out.extend(np.ascontiguousarray(np.rot90(x, k, axes=(1, 2))) for x in images)
    return out, np.tile(y, 4), np.tile(owner, 4)


def train_cnn(
    crops: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    *,
    arch: str = "vgg_scenmed",
    patch: int | None = None,
    stride: int | None = None,
    width: int = 32,
    hidden: int = 1024,
    epochs: int = 100,
    patience: int = 20,
    lr: float = 8e-5,
    batch_size: int = 32,
    min_occupied: float = 0.85,
    code_layout: bool = False,
    rotate4: bool = False,
    augment: bool = False,
    monitor: str = "loss",
    balanced_batches: bool = False,
    seed: int = 0,
    device: str = "cpu",
    threads: int | None = None,
    on_epoch=None,
) -> CNNResult:
    """Train SCENMED's VGG-like CNN (``vgg_scenmed``) on whole 128² crops, or with ``patch``
    on the patches of each crop (stride ``stride``, default half the patch: 16 for 32² as in
    the paper), or PatchNet (``arch="patchnet_scenmed"``, 11² / 17² patches); a nucleus's
    call is the mean of its patches' probabilities, as the paper averages them. Adam (``lr``
    8e-5, the paper's), class-weighted cross-entropy, early stopping on the validation loss
    with ``patience``, the best epoch restored;
    ``rotate4`` adds the code's 90/180/270° copies of the training set; ``augment`` instead
    draws a flip and a 90° rotation per image and epoch (the same symmetry, no larger epochs);
    ``monitor`` picks the best epoch (``loss``, the code's, or ``balanced_accuracy``);
    ``balanced_batches``: equal class numbers in every batch and an unweighted loss (the
    code's "fair" batches) instead of the paper's weighted loss.

    Parameters
    ----------
    crops : ndarray, shape (N, 128, 128)
        The nuclei's crops.
    y : ndarray
        Classes.
    train, val : ndarray
        Nucleus indices.
    arch : {"vgg_scenmed", "patchnet_scenmed"}
        The network.
    patch, stride : int, optional
        Patch side and stride (None: whole crops).
    width, hidden : int
        The first convolutions' width and the FC layers' units.
    epochs, patience : int
        The most epochs, and early stopping's patience.
    lr : float
        Adam's learning rate.
    batch_size : int
        Items per batch.
    min_occupied : float
        A patch's nucleus fraction.
    code_layout : bool
        The public code's patch offsets.
    rotate4 : bool
        Add the 90/180/270 degree copies.
    augment : bool
        A random flip and 90 degree turn per item and epoch.
    monitor : {"loss", "balanced_accuracy"}
        What picks the best epoch.
    balanced_batches : bool
        Equal class numbers per batch, unweighted loss.
    seed : int
        The seed.
    device : str
        Where to train.
    threads : int, optional
        CPU threads.
    on_epoch : callable, optional
        Called with each epoch's record.

    Returns
    -------
    CNNResult
    """
    import torch

    from .augment import AugmentConfig
    from .data import NucleusSet
    from .models import create_model
    from .train import TrainConfig, fit, predict

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    y = np.asarray(y, int)
    k = int(y.max()) + 1
    images, owner = _items(crops, patch, min_occupied, code_layout, stride)
    items_y = y[owner]
    tr_items = np.flatnonzero(np.isin(owner, train))
    va_items = np.flatnonzero(np.isin(owner, val))
    if len(tr_items) < 2 or len(va_items) < 1:
        raise ValueError(
            f"too few training ({len(tr_items)}) or validation ({len(va_items)}) items"
            + (f": no {patch}² patch is {min_occupied:.0%} nucleus" if patch else "")
        )
    if rotate4:
        tr_imgs = [images[i] for i in tr_items]
        rot, ry, ro = _rotations(tr_imgs, items_y[tr_items], owner[tr_items])
        images = images + rot
        items_y = np.concatenate([items_y, ry])
        owner = np.concatenate([owner, ro])
        tr_items = np.arange(len(images) - len(rot), len(images))
    data = NucleusSet(images, items_y, owner)
    size = images[0].shape[-1]
    torch.manual_seed(seed)
    isize = size if arch == "patchnet_scenmed" else max(16, size - size % 16)
    model = create_model(
        arch, in_chans=1, num_classes=k, width=width, hidden=hidden, image_size=isize
    )
    aug = AugmentConfig(flip=0.5 if augment else 0, rot90=augment, rotate=0, intensity=0,
                        contrast=0, gridmask=0)  # fmt: skip
    cfg = TrainConfig(
        arch=arch,
        epochs=epochs,
        patience=patience,
        lr=lr,
        optimizer="adam",
        weight_decay=0.0,
        batch_size=batch_size,
        folds=0,
        seed=seed,
        device=device,
        augment=aug,
        monitor=monitor,
        balanced_batches=balanced_batches,
    )
    res = fit(model, data, tr_items, va_items, cfg, device=device, on_epoch=on_epoch)

    def per_nucleus(rows):
        idx = np.flatnonzero(np.isin(owner, rows))
        p = predict(model, data, idx, device=device)
        out = np.zeros((len(rows), k))
        pos = {r: i for i, r in enumerate(rows)}
        cnt = np.zeros(len(rows))
        for j, q in zip(idx, p, strict=True):
            i = pos[owner[j]]
            out[i] += q
            cnt[i] += 1
        out[cnt == 0] = 1.0 / k  # a nucleus without a usable patch: no call (uniform)
        return out / np.maximum(cnt, 1)[:, None]

    tr_rows = np.unique(owner[tr_items])
    ptr = per_nucleus(tr_rows)
    pva = per_nucleus(np.asarray(val))
    return CNNResult(
        model=model,
        history=res.history,
        best_epoch=res.best_epoch,
        train_accuracy=float(np.mean(ptr.argmax(1) == y[tr_rows])),
        val_accuracy=float(np.mean(pva.argmax(1) == y[val])),
        val_prob=pva,
        seconds=time.perf_counter() - t0,
        n_items=len(tr_items),
    )


def penultimate_features(model, crops: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """The CNN's second hidden layer (``fc_2``) for each crop: (N, hidden)."""
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch_size):
            x = torch.from_numpy(np.asarray(crops[i : i + batch_size], np.float32)[:, None] / 4095)
            out.append(model.penultimate(model.forward_features(x)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def tsne(features: np.ndarray, *, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE (scikit-learn; PCA to 50 dimensions first when wider), seeded.

    Parameters
    ----------
    features : ndarray, shape (N, F)
        Features.
    seed : int
        The seed.
    perplexity : float
        t-SNE's perplexity (at most N - 1).

    Returns
    -------
    ndarray, shape (N, 2)
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    X = _clean(features)
    if X.shape[1] > 50 and X.shape[0] > 50:
        X = PCA(n_components=50, random_state=seed).fit_transform(X)
    perp = min(perplexity, max(2.0, (len(X) - 1) / 3))
    return TSNE(n_components=2, perplexity=perp, random_state=seed, init="pca").fit_transform(X)


def export_widefield(
    model,
    out,
    *,
    classes: list[str],
    patch: int | None,
    stride: int | None = None,
    min_occupied: float = 0.85,
    crop: int = 128,
    pixel_um: float = 0.215,
    metrics: dict | None = None,
    samples: np.ndarray | None = None,
    atol: float = 1e-4,
) -> dict:
    """Export a trained widefield CNN to one ONNX file whose metadata says how to feed it
    (preprocessing mode ``widefield``: crop side, pixel, scaling 1/4095, patch size, stride,
    occupancy), after ONNX Runtime matched PyTorch within ``atol`` (the classifiers' parity
    gate). ``samples``: model inputs to check parity on too. Returns the comparison summary."""
    from pathlib import Path

    import torch

    from ainu_engine.io import atomic_write_bytes
    from ainu_engine.model import ModelInfo
    from ainu_engine.provenance import __version__
    from ainu_engine.render import RenderSpec

    from .export import onnx_bytes_checked

    out = Path(out)
    size = patch or crop
    pre = {
        "mode": "widefield",
        "input": "patches" if patch else "crop",
        "crop": crop,
        "pixel_um": pixel_um,
        "scale": 1.0 / 4095.0,
        "min_occupied": min_occupied,
        "aggregate": "mean of patch probabilities" if patch else None,
    }
    if patch:
        pre.update(patch_size=patch, stride=stride or max(patch // 2, 1))
    info = ModelInfo(
        classes=tuple(classes),
        render_spec=RenderSpec(pixel_nm=pixel_um * 1000.0, size=crop, scaling="none"),
        input_size=size,
        channel_names=("dapi",),
        preprocessing=pre,
        metrics=metrics or {},
        provenance={
            "ainu_engine": __version__,
            "torch": torch.__version__,
            "method": "SCENMED (Radhakrishnan et al., Sci. Rep. 7:17946, 2017)",
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "precision": "fp32",
        },
        model=model.config.to_dict(),
    )
    model.eval()
    data, cmp = onnx_bytes_checked(model, info, out, atol=atol, samples=samples)
    atomic_write_bytes(out, data)
    return {"path": str(out), "bytes": len(data), "parity": str(cmp)}


# ---------------------------------------------------------------------------------------------
# one training run, as `ainu-engine widefield train` makes it
# ---------------------------------------------------------------------------------------------

#: Every model `train_scenmed` trains: the CNNs on crops or patches, and the linear models.
MODELS = ("cnn", "patches", "patchnet", *LINEAR_MODELS)


@dataclass(frozen=True)
class ScenmedRunConfig:
    """One SCENMED training run (``ainu-engine widefield train``'s options).

    Attributes
    ----------
    model : str
        ``cnn`` (128 px crops), ``patches`` (32 px, stride 16), ``patchnet`` (11 px) or a
        linear model of :data:`LINEAR_MODELS`.
    val_fraction : float
        The fair validation split's share.
    groups : bool
        Keep each image set (group) on one side.
    layout : {"paper", "code"}
        The features (104 or 120).
    patch_size, stride, min_occupied, width, hidden, epochs, patience
        The CNNs' options (:func:`train_cnn`).
    lr, batch_size, rotate4, augment, monitor, balanced_batches
        More of the CNNs' options.
    search : int
        The random forest's randomized-search draws.
    seed : int
        The seed of the split, the model and the shuffling.
    threads : int, optional
        CPU threads for torch.
    """

    model: str = "cnn"
    val_fraction: float = 0.15
    groups: bool = True
    layout: str = "paper"
    patch_size: int | None = None
    stride: int | None = None
    min_occupied: float = 0.85
    width: int = 32
    hidden: int = 1024
    epochs: int = 100
    patience: int = 20
    lr: float = 8e-5
    batch_size: int = 32
    rotate4: bool = False
    augment: bool = False
    monitor: str = "loss"
    balanced_batches: bool = False
    search: int = 0
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")


def read_features_table(path: str | os.PathLike) -> tuple[list[dict], list[str]] | None:
    """The rows and feature columns of a features table (``widefield features``' Parquet or
    CSV), or None when ``path`` is not one.

    Parameters
    ----------
    path : str or os.PathLike
        A Parquet or CSV file.

    Returns
    -------
    (list of dict, list of str) or None
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = str(path)
    if not path.endswith((".parquet", ".csv")):
        return None
    if path.endswith(".parquet"):
        if "lbp_00" not in pq.read_schema(path).names:
            return None
        t = pq.read_table(path)
    else:
        with open(path) as fh:
            if "lbp_00" not in fh.readline():
                return None
        t = pacsv.read_csv(path)
    names = [c for c in t.column_names if c.split("_")[0] in ("shape", "lbp", "pftas", "zernike")]
    return t.to_pylist(), names


def train_scenmed(
    nuclei,
    out: str | os.PathLike,
    config: ScenmedRunConfig | None = None,
    *,
    on_epoch: Callable[[dict], None] | None = None,
    on_nucleus: Callable[[], None] | None = None,
) -> dict:
    """Train one of SCENMED's classifiers and write its run folder.

    Parameters
    ----------
    nuclei : ainu_engine.scenmed.NucleusTable or (rows, names)
        Segmented nuclei (:func:`ainu_engine.scenmed.segment_files`), or, for the linear
        models, a features table (:func:`read_features_table`).
    out : path
        The run folder (created): ``metrics.json``, ``confusion.png``; CNNs also
        ``history.csv``, ``learning_curves.png``, ``model.pt`` (the checkpoint owner's
        :func:`~ainu_engine.training.checkpoint.save_widefield_model`), ``model.onnx`` (through
        the export gate) and ``tsne.png``; linear models ``ablation.csv`` and ``model.joblib``.
    config : ScenmedRunConfig, optional
        The run's options (default: the paper's CNN).
    on_epoch : callable, optional
        Called with each CNN epoch's record.
    on_nucleus : callable, optional
        Called after each nucleus's features are computed (linear models on a table).

    Returns
    -------
    dict
        The summary (``metrics.json`` without the validation details).

    Raises
    ------
    ValueError
        Fewer than two classes, a nucleus without a label, or a split that cannot be made.
    """
    cfg = config or ScenmedRunConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.model in LINEAR_MODELS:
        return _run_linear(nuclei, out, cfg, on_nucleus)
    return _run_cnn(nuclei, out, cfg, on_epoch)


def _labels(rows) -> tuple[list[str], np.ndarray, np.ndarray]:
    labs = [str(r["label"]) for r in rows]
    if any(not v for v in labs):
        raise ValueError("every nucleus needs a label: give a manifest (path, label)")
    classes = sorted(set(labs))
    if len(classes) < 2:
        raise ValueError(f"need at least two classes, found {classes}")
    y = np.array([classes.index(v) for v in labs])
    g = np.array([str(r.get("group", "")) for r in rows])
    return classes, y, g


def _split(y, g, cfg: ScenmedRunConfig):
    try:
        return fair_split(y, g if cfg.groups and all(g) else None, fraction=cfg.val_fraction,
                          seed=cfg.seed)  # fmt: skip
    except ValueError as err:
        raise ValueError(f"{err}; or pass --no-groups") from err


def _metrics(y, prob, classes, out: Path) -> dict:
    from .metrics import classification_metrics, plot_metrics

    m = classification_metrics(y, prob, classes)
    plot_metrics(m, out)
    return {k: m[k] for k in ("n", "accuracy", "accuracy_ci_normal", "confusion") if k in m}


def _run_linear(nuclei, out: Path, cfg: ScenmedRunConfig, on_nucleus) -> dict:
    import joblib

    from ainu_engine.scenmed import NucleusTable, features_of
    from ainu_engine.simulate import write_table
    from ainu_engine.strict_json import dumps

    if isinstance(nuclei, NucleusTable):
        rows, names = features_of(nuclei, layout=cfg.layout, progress=on_nucleus)
    else:
        rows, names = nuclei
    classes, y, g = _labels(rows)
    X = np.array([[r[n] for n in names] for r in rows], float)
    tr, va = _split(y, g, cfg)
    pipe, res = fit_linear(X, y, tr, va, cfg.model, cfg.seed, search=cfg.search)
    metrics = _metrics(y[va], np.eye(len(classes))[res["val_pred"]], classes, out)
    abl = ablation(X, y, names, tr, va, model=cfg.model, seed=cfg.seed)
    write_table(out / "ablation.csv", abl, fieldnames=list(abl[-1]))
    joblib.dump({"pipeline": pipe, "features": names, "classes": classes}, out / "model.joblib")
    summary = {
        "model": cfg.model, "classes": classes, "n_train": len(tr), "n_val": len(va),
        "features": len(names), "layout": "paper" if len(names) in (104, 99) else "code",
        "train_accuracy": res["train_accuracy"], "val_accuracy": res["val_accuracy"],
        "validation": metrics, "ablation": abl, "best_params": res.get("best_params"),
    }  # fmt: skip
    (out / "metrics.json").write_text(dumps(summary, indent=2))
    return {k: v for k, v in summary.items() if k not in ("ablation", "validation")}


def _run_cnn(table, out: Path, cfg: ScenmedRunConfig, on_epoch) -> dict:
    from ainu_engine.simulate import write_table
    from ainu_engine.strict_json import dumps

    from .checkpoint import save_widefield_model
    from .metrics import plot_learning_curves

    kept = table.kept
    classes, y, g = _labels(kept)
    crops = np.stack([table.crops[int(r["crop"])] for r in kept])
    tr, va = _split(y, g, cfg)
    arch = "patchnet_scenmed" if cfg.model == "patchnet" else "vgg_scenmed"
    patch = cfg.patch_size or {"cnn": None, "patches": 32, "patchnet": 11}[cfg.model]
    res = train_cnn(
        crops, y, tr, va, arch=arch, patch=patch, stride=cfg.stride, width=cfg.width,
        hidden=cfg.hidden, epochs=cfg.epochs, patience=cfg.patience, lr=cfg.lr,
        batch_size=cfg.batch_size, min_occupied=cfg.min_occupied, rotate4=cfg.rotate4,
        augment=cfg.augment, monitor=cfg.monitor, seed=cfg.seed, threads=cfg.threads,
        balanced_batches=cfg.balanced_batches, on_epoch=on_epoch,
    )  # fmt: skip
    write_table(out / "history.csv", res.history)
    plot_learning_curves(res.history, out / "learning_curves.png")
    metrics = _metrics(y[va], res.val_prob, classes, out)
    save_widefield_model(out / "model.pt", res.model, classes=classes, patch=patch,
                         extra={"arch": arch, "run": asdict(cfg)})  # fmt: skip
    samples = (crops[va[:4]] / 4095.0)[:, None].astype("float32") if patch is None else None
    exported = export_widefield(
        res.model, out / "model.onnx", classes=classes, patch=patch, stride=cfg.stride,
        min_occupied=cfg.min_occupied, samples=samples,
        metrics={"val_accuracy": res.val_accuracy, "train_accuracy": res.train_accuracy,
                 "n_val": len(va), "n_train": len(tr)},
    )  # fmt: skip
    if cfg.model == "cnn" and len(crops) >= 5:
        xy = tsne(penultimate_features(res.model, crops), seed=cfg.seed)
        _plot_tsne(xy, y, classes, out / "tsne.png")
    summary = {
        "model": cfg.model, "arch": arch, "patch": patch, "classes": classes,
        "n_train": len(tr), "n_val": len(va), "n_items": res.n_items,
        "train_accuracy": res.train_accuracy, "val_accuracy": res.val_accuracy,
        "best_epoch": res.best_epoch, "epochs_run": len(res.history),
        "balanced_batches": cfg.balanced_batches, "seconds": round(res.seconds, 1),
        "validation": metrics, "onnx": exported,
    }  # fmt: skip
    (out / "metrics.json").write_text(dumps(summary, indent=2))
    return {k: v for k, v in summary.items() if k != "validation"}


def _plot_tsne(xy, y, classes, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.2))
    ax = fig.subplots()
    for i, c in enumerate(classes):
        ax.scatter(*xy[y == i].T, s=10, label=f"{c} (n={int((y == i).sum())})")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_title("t-SNE of the CNN's fc_2 features")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
