"""The training loop and the paper's protocol: stratified 80/20 split with a withheld test set,
stratified k-fold cross-validation on the training part (model selection, ``compare``), and a
final model trained on the training part and evaluated once on the test set.

Everything is written into a run folder a person can read::

    RUN/config.json          the whole configuration, RenderSpec, manifest hash, versions, commit
    RUN/train.log            what happened, line by line
    RUN/data.csv             every manifest row: split (train/test/failed), error, counts
    RUN/cv.json, cv.csv      k-fold results per architecture and fold (mean ± sd)
    RUN/cv/                  learning curves of every fold
    RUN/history.csv          the final model's epochs; learning_curves.png
    RUN/best.pt              checkpoint: weights (best epoch), model + training config, classes,
                             RenderSpec, metrics, training statistics, provenance
    RUN/metrics.json         test-set metrics (scikit-learn, 95 % CIs); confusion/roc/pr.png
    RUN/predictions.csv      test-set calls and probabilities per nucleus
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ainu_engine.errors import InputError, OutputError
from ainu_engine.preprocess import Preprocess
from ainu_engine.render import RenderSpec
from ainu_engine.scores import mean_cross_entropy, patch_vote
from ainu_engine.strict_json import dumps

from .augment import AugmentConfig, LocAugmentConfig
from .checkpoint import save_checkpoint
from .data import Manifest, NucleusSet, RenderCache, load_nuclei, nuclei_record
from .splits import Split, kfold_splits, train_test_split

__all__ = [
    "TrainConfig",
    "FitResult",
    "fit",
    "predict",
    "vote",
    "train",
    "resolve_device",
    "leave_one_group_out",
]


@dataclass
class TrainConfig:
    """Everything that decides a training run (saved in config.json and the checkpoint).

    Parameters
    ----------
    arch : str, default "densenet121"
        Registry name (``ainu_engine.training.models.list_models()``).
    epochs : int, default 300
        Upper bound; early stopping usually ends sooner.
    batch_size : int, default 16
    lr : float, default 1e-3
        Learning rate of Adam/AdamW.
    weight_decay : float, default 1e-4
    optimizer : {"adamw", "adam"}
    patience : int, default 20
        Epochs without a better validation score (see ``monitor``) before stopping; the best
        epoch's weights are restored.
    monitor : {"loss", "balanced_accuracy"}, default "loss"
        What picks the best epoch: the lowest validation loss, or the highest validation
        balanced accuracy (ties: the lower loss). On a small validation set the loss of a
        from-scratch network jumps between epochs (one confident error weighs more than many
        right calls), so an early near-uniform epoch can win on loss; accuracy does not reward
        that.
    min_epochs : int, default 0
        Epochs before the monitoring starts: no earlier epoch can be the best one, and training
        does not stop before ``min_epochs + patience``.
    warmup_epochs : int, default 0
        Linear learning-rate warm-up from ``lr / 10`` to ``lr`` over these epochs (per batch).
    val_fraction : float, default 0.2
        Part of each training set held out (stratified, group-aware) for early stopping.
    test_fraction : float, default 0.2
        Withheld test set (the paper's 80/20).
    folds : int, default 5
        k of the stratified k-fold CV on the training part; 0 skips it.
    seed : int, default 0
        Splits, initialisation, shuffling and augmentation; the same seed gives the same model
        on the same machine (on CUDA add ``deterministic``).
    device : {"auto", "cpu", "cuda"}
    amp : bool, default True
        Mixed precision (float16 autocast + gradient scaling) on CUDA; ignored on CPU.
    channels_last : bool, default True
        channels_last memory format on CUDA; ignored on CPU.
    deterministic : bool, default False
        Deterministic cuDNN algorithms (slower) on CUDA.
    use_groups : bool, default True
        Keep each manifest group on one side of every split when the manifest has groups.
    class_weights : bool, default True
        Cross-entropy weighted by n / (K · n_class) (scikit-learn's "balanced").
    balanced_batches : bool, default False
        Every batch holds the classes in equal numbers (an epoch draws K · the largest class
        count items, the smaller classes cycled in new random orders); the loss is then
        unweighted (SCENMED's public code; its paper weights the loss instead).
    patch_size : int, optional
        Patch mode: train on ``patch_size`` patches of the raw render (use a fine pixel size,
        the paper: x30); a nucleus's call is the class most of its patches vote for.
    min_occupied : float, default 0.75
        Patch mode: keep patches with more than this fraction of pixels containing
        localizations.
    augment : AugmentConfig
        Training-time augmentation (never a change of aspect ratio or pixel scale).
    augment_localizations : LocAugmentConfig, optional
        Augmentations of the localizations before rendering (partial acquisitions, thinning,
        extra noise, merged or split blinks, rigid rotations and mirrors): each training item is
        rendered from an augmented copy of its nucleus every epoch (image mode only). Default:
        none (the cached renders).
    preprocess : Preprocess, optional
        The preprocessing of each nucleus before it is rendered (filters, drift correction,
        linking, resolution estimates; :class:`ainu_engine.preprocess.Preprocess`): recorded in
        the model, and applied the same way by every call. Default: the tables as read.
    model_kwargs : dict
        Architecture options (e.g. ``drop_rate``).
    eval_batch_size : int, default 32
    threads : int, optional
        ``torch.set_num_threads`` for the run (default: torch's choice).
    """

    arch: str = "densenet121"
    epochs: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    patience: int = 20
    monitor: str = "loss"
    min_epochs: int = 0
    warmup_epochs: int = 0
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    folds: int = 5
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    deterministic: bool = False
    use_groups: bool = True
    class_weights: bool = True
    balanced_batches: bool = False
    patch_size: int | None = None
    min_occupied: float = 0.75
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    augment_localizations: LocAugmentConfig | None = None
    preprocess: Preprocess | None = None
    model_kwargs: dict = field(default_factory=dict)
    eval_batch_size: int = 32
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "eval_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self._check_monitoring()
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ValueError(f"{name} must lie in (0, 1), got {v!r}")
        if not isinstance(self.folds, int) or self.folds == 1 or self.folds < 0:
            raise ValueError(f"folds must be 0 (no cross-validation) or >= 2, got {self.folds!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.patch_size is not None and self.patch_size < 8:
            raise ValueError(f"patch_size must be >= 8 pixels, got {self.patch_size!r}")
        self._from_dicts()

    def _from_dicts(self) -> None:
        """The nested configurations, as from_dict gets them (plain dicts)."""
        if isinstance(self.augment, dict):
            aug = dict(self.augment)
            if "grid_unit" in aug:
                aug["grid_unit"] = tuple(aug["grid_unit"])
            self.augment = AugmentConfig(**aug)
        if isinstance(self.augment_localizations, dict):
            loc = {k: tuple(v) if isinstance(v, list) else v
                   for k, v in self.augment_localizations.items()}  # fmt: skip
            self.augment_localizations = LocAugmentConfig(**loc)
        if self.augment_localizations is not None and self.patch_size:
            raise ValueError("localization augmentations render whole nuclei: not with patch mode")
        if isinstance(self.preprocess, dict):
            self.preprocess = Preprocess.from_dict(self.preprocess)
        if self.preprocess is not None and self.preprocess.empty:
            self.preprocess = None

    def _check_monitoring(self) -> None:
        for name in ("min_epochs", "warmup_epochs"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if self.min_epochs >= self.epochs:
            raise ValueError(f"min_epochs ({self.min_epochs}) must be below epochs ({self.epochs})")
        if self.monitor not in ("loss", "balanced_accuracy"):
            raise ValueError(f"monitor must be 'loss' or 'balanced_accuracy', got {self.monitor!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["augment"] = self.augment.to_dict()
        if self.augment_localizations is not None:
            d["augment_localizations"] = self.augment_localizations.to_dict()
        if self.preprocess is not None:
            d["preprocess"] = self.preprocess.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return cls(**d)


# -- device, seeds ------------------------------------------------------------------------------
def resolve_device(device: str = "auto") -> tuple[str, str | None]:
    """(``"cpu"`` or ``"cuda"``, a note when ``auto`` fell back to the CPU).

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        What was asked for.

    Returns
    -------
    (str, str or None)
    """
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "--device cuda: torch sees no CUDA GPU",
            hint="use --device cpu, or install a CUDA build of torch",
        )
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda", None
        return "cpu", "no CUDA GPU visible to torch: training on the CPU"
    return device, None


# -- one model ----------------------------------------------------------------------------------
@dataclass
class FitResult:
    """What :func:`fit` did: per-epoch history, the restored best epoch and its loss.

    Attributes
    ----------
    history : list[dict]
        Per-epoch records.
    best_epoch : int
        The epoch restored.
    best_val_loss : float
        Its validation loss.
    stopped_early : bool
        Early stopping ended the run.
    seconds : float
        Wall time.
    """

    history: list[dict]
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    seconds: float


def _batches(n: int, size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    out = [order[i : i + size] for i in range(0, n, size)]
    if rng is not None and len(out) > 1 and len(out[-1]) == 1:
        out[-2] = np.concatenate([out[-2], out.pop()])  # batch norm needs two items per batch
    return out


def _balanced_batches(y: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Positions into ``y`` in batches of ``size`` with the classes interleaved in equal
    numbers: each class's positions in a random order, the smaller classes cycled (a fresh
    order each pass) up to the largest class's count.

    >>> b = _balanced_batches(np.array([0, 0, 0, 0, 1]), 4, np.random.default_rng(0))
    >>> [int(np.sum(np.array([0, 0, 0, 0, 1])[x] == 1)) for x in b]
    [2, 2]
    """
    classes = [np.flatnonzero(y == c) for c in np.unique(y)]
    m = max(len(c) for c in classes)
    cols = []
    for c in classes:
        reps = -(-m // len(c))
        cols.append(np.concatenate([rng.permutation(c) for _ in range(reps)])[:m])
    order = np.stack(cols, axis=1).reshape(-1)  # c0, c1, ..., c0, c1, ...
    out = [order[i : i + size] for i in range(0, len(order), size)]
    if len(out) > 1 and len(out[-1]) == 1:
        out[-2] = np.concatenate([out[-2], out.pop()])
    return out


def _weights_and_batches(cfg: TrainConfig, y_train: np.ndarray, k: int, device: str):
    """The loss's class weights (None: unweighted), the batches of an epoch (a function of the
    epoch's rng) and the number of steps an epoch takes."""
    import torch

    n = len(y_train)
    if cfg.balanced_batches:
        steps = len(_balanced_batches(y_train, cfg.batch_size, np.random.default_rng(0)))
        return None, lambda r: _balanced_batches(y_train, cfg.batch_size, r), steps
    weight = None
    if cfg.class_weights:
        counts = np.bincount(y_train, minlength=k).astype(float)
        w = np.where(counts > 0, n / (k * np.maximum(counts, 1)), 0.0)
        weight = torch.tensor(w, dtype=torch.float32, device=device)
    steps = len(_batches(n, cfg.batch_size, None))
    return weight, lambda r: _batches(n, cfg.batch_size, r), steps


def _to_device(x: np.ndarray, device: str, channels_last: bool):
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(device, non_blocking=True)
    if channels_last and device == "cuda":
        t = t.contiguous(memory_format=torch.channels_last)
    return t


def fit(
    model,
    data: NucleusSet,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    cfg: TrainConfig,
    *,
    device: str = "cpu",
    on_epoch: Callable[[dict], None] | None = None,
) -> FitResult:
    """Train ``model`` on items ``train_idx`` of ``data``, early-stopping on ``val_idx``.

    AdamW (or Adam), class-weighted cross-entropy (weights from the training items), an
    optional linear learning-rate warm-up, early stopping with ``cfg.patience`` on
    ``cfg.monitor`` (validation loss or balanced accuracy) from epoch ``cfg.min_epochs`` on;
    the weights of the best epoch are restored before returning. Mixed precision and channels_last
    on CUDA. ``on_epoch`` receives each epoch's record (epoch, train_loss, train_accuracy,
    val_loss, val_accuracy, lr, seconds).

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    data : NucleusSet
        The items.
    train_idx, val_idx : ndarray
        Item indices.
    cfg : TrainConfig
        The run's options.
    device : str
        Where to train.
    on_epoch : callable, optional
        Called with each epoch's record.

    Returns
    -------
    FitResult

    Examples
    --------
    >>> import numpy as np, torch
    >>> from ainu_engine.training.data import NucleusSet
    >>> from ainu_engine.training.models import create_model
    >>> from ainu_engine.training.train import TrainConfig, fit
    >>> _ = torch.manual_seed(0)
    >>> x = np.random.default_rng(0).random((8, 1, 16, 16), dtype=np.float32)
    >>> data = NucleusSet(list(x), np.array([0, 1] * 4), np.arange(8))
    >>> cfg = TrainConfig(arch="small_cnn", epochs=2, batch_size=4, folds=0)
    >>> r = fit(create_model("small_cnn", in_chans=1), data, np.arange(6), np.arange(6, 8), cfg)
    >>> len(r.history), r.best_epoch in (1, 2)
    (2, True)
    """
    import torch
    from torch import nn

    from .augment import augment

    if len(train_idx) < 2 or len(val_idx) < 1:
        raise ValueError(
            f"need at least 2 training and 1 validation items, got {len(train_idx)} and "
            f"{len(val_idx)}"
        )
    t0 = time.perf_counter()
    k = model.config.num_classes if hasattr(model, "config") else int(data.y.max()) + 1
    y_train = data.y[train_idx]
    weight, epoch_batches, steps_per_epoch = _weights_and_batches(cfg, y_train, k, device)
    criterion = nn.CrossEntropyLoss(weight=weight)
    model.to(device)
    if cfg.channels_last and device == "cuda":
        model.to(memory_format=torch.channels_last)
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = cfg.amp and device == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    rng = np.random.default_rng(cfg.seed)
    loc_rng = np.random.default_rng([cfg.seed, 34])  # the localization augmentations' stream
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    best: tuple = ((math.inf,), 0, None, math.inf)  # (score to minimise, epoch, state, loss)
    history: list[dict] = []
    stopped = False

    warmup_steps = cfg.warmup_epochs * steps_per_epoch
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        te = time.perf_counter()
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for b in epoch_batches(rng):
            if step < warmup_steps:
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * (0.1 + 0.9 * step / warmup_steps)
            elif step == warmup_steps:
                for g in opt.param_groups:
                    g["lr"] = cfg.lr
            step += 1
            idx = train_idx[b]
            if cfg.augment_localizations is not None and data.sources:
                raw = data.augmented_batch(idx, cfg.augment_localizations, loc_rng)
            else:
                raw = data.batch(idx)
            x = _to_device(raw, device, cfg.channels_last)
            x = augment(x, cfg.augment, generator=gen)
            yt = torch.from_numpy(data.y[idx]).to(device)
            with torch.autocast(device_type=device, dtype=torch.float16, enabled=use_amp):
                logits = model(x)
                loss = criterion(logits.float(), yt)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.detach().argmax(1) == yt).sum())
        val_logits = _logits(
            model,
            data,
            val_idx,
            device=device,
            batch_size=cfg.eval_batch_size,
            channels_last=cfg.channels_last,
            amp=use_amp,
        )
        yv = torch.from_numpy(data.y[val_idx])
        val_loss = float(
            nn.functional.cross_entropy(
                val_logits, yv, weight=None if weight is None else weight.cpu()
            )
        )
        pred_v = val_logits.argmax(1).numpy()
        rec = {
            "epoch": epoch,
            "train_loss": loss_sum / total,
            "train_accuracy": correct / total,
            "val_loss": val_loss,
            "val_accuracy": float((pred_v == yv.numpy()).mean()),
            "val_balanced_accuracy": _balanced_accuracy(yv.numpy(), pred_v),
            "lr": float(opt.param_groups[0]["lr"]),
            "seconds": time.perf_counter() - te,
        }
        history.append(rec)
        score = (val_loss,) if cfg.monitor == "loss" else (-rec["val_balanced_accuracy"], val_loss)
        if epoch > cfg.min_epochs and score < best[0]:
            best = (
                score,
                epoch,
                {n: t.detach().to("cpu", copy=True) for n, t in model.state_dict().items()},
                val_loss,
            )
        rec["best_epoch"] = best[1]
        if on_epoch is not None:
            on_epoch(rec)
        if not math.isfinite(rec["train_loss"]):
            raise FloatingPointError(
                f"training loss is {rec['train_loss']} at epoch {epoch}: lower the learning rate"
            )
        if epoch - max(best[1], cfg.min_epochs) >= cfg.patience:
            stopped = True
            break
    if best[2] is not None:
        model.load_state_dict(best[2])
    return FitResult(history, best[1], best[3], stopped, time.perf_counter() - t0)


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (scikit-learn's balanced accuracy)."""
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def _logits(
    model,
    data: NucleusSet,
    idx: np.ndarray,
    *,
    device: str,
    batch_size: int,
    channels_last: bool = True,
    amp: bool = False,
):
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for b in _batches(len(idx), batch_size, None):
            x = _to_device(data.batch(idx[b]), device, channels_last)
            with torch.autocast(
                device_type=device, dtype=torch.float16, enabled=amp and device == "cuda"
            ):
                out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


def predict(
    model, data: NucleusSet, idx: np.ndarray, *, device: str = "cpu", batch_size: int = 32
) -> np.ndarray:
    """Class probabilities (softmax of the logits), shape (len(idx), K), in float32 eval mode.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    data : NucleusSet
        The items.
    idx : ndarray
        Item indices.
    device : str
        Where to run.
    batch_size : int
        Items per batch.

    Returns
    -------
    ndarray, float32
    """
    import torch

    logits = _logits(model, data, np.asarray(idx), device=device, batch_size=batch_size, amp=False)
    return torch.softmax(logits, 1).numpy()


def vote(
    prob: np.ndarray, owner: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-nucleus calls from per-item (patch) probabilities.

    Returns ``rows`` (the nuclei, sorted), ``scores`` (N, K) and ``undecided`` (N,) bool. A
    nucleus's call is the class that more than 50 % of its patches vote for (argmax per
    patch); its score per class is that vote share, plus 1e-3 x the mean patch probability
    so that a nucleus without a majority (``undecided``) falls to the more probable class and
    ROC/PR curves have a continuous score (:func:`ainu_engine.scores.patch_vote`). In image mode
    (one item per nucleus) the scores are
    the probabilities themselves.

    Parameters
    ----------
    prob : ndarray, shape (M, K)
        Per-item probabilities.
    owner : ndarray
        Each item's nucleus.
    num_classes : int
        K.

    Returns
    -------
    (ndarray, ndarray, ndarray)
        ``rows``, ``scores``, ``undecided``.

    Examples
    --------
    >>> import numpy as np
    >>> from ainu_engine.training.train import vote
    >>> p = np.array([[.9, .1], [.8, .2], [.3, .7], [.4, .6]])
    >>> rows, s, und = vote(p, np.array([0, 0, 0, 1]), 2)
    >>> s.argmax(1).tolist(), und.tolist()
    ([0, 1], [False, False])
    """
    rows = np.unique(owner)
    if len(rows) == len(owner):
        order = np.argsort(owner)
        return owner[order], prob[order], np.zeros(len(rows), bool)
    scores = np.zeros((len(rows), num_classes))
    undecided = np.zeros(len(rows), bool)
    for i, r in enumerate(rows):
        scores[i], undecided[i] = patch_vote(prob[owner == r])
    return rows, scores, undecided


# -- the protocol -------------------------------------------------------------------------------
class Reporter:
    """Where a run reports progress: ``log`` lines and per-stage progress (``stage`` yields a
    function taking a short status text, called once per finished step). The CLI passes a
    rich-based one; this default writes nothing."""

    def log(self, message: str) -> None:
        pass

    @contextmanager
    def stage(self, description: str, total: int):
        yield lambda status="": None


def _mean_sd(v: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(v, float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _inner_split(rows: np.ndarray, y: np.ndarray, groups, cfg: TrainConfig) -> Split:
    """Early-stopping split of manifest rows (group-aware where possible)."""
    g = None if groups is None else np.asarray(groups)[rows]
    if g is not None and np.unique(g).size < max(2, round(1 / cfg.val_fraction)):
        g = None  # too few groups to hold some out: fall back to a stratified split
    k = np.unique(y[rows]).size
    frac = min(0.5, max(cfg.val_fraction, k / len(rows)))  # at least one nucleus per class
    s = train_test_split(y[rows], test_fraction=frac, groups=g, seed=cfg.seed + 1)
    return Split(rows[s.train], rows[s.test])


def _follows_names(manifest: Manifest, spec: RenderSpec) -> bool:
    """A new model's channels follow the data: the manifest names two or more channels every
    file shares (``polII+h3``) and no channels were asked for — all of them, by name."""
    names = manifest.channel_names
    return not manifest.channel_maps and spec.channels is None and bool(names) and len(names) > 1


def _named_cache(manifest: Manifest, cache: RenderCache, follows: bool) -> RenderCache:
    """The cache matching each file's channels to the manifest's names (see _follows_names)."""
    if follows and cache.channel_names is None:
        return cache.with_channels(manifest.channel_names, None)
    return cache


def _model_spec(manifest: Manifest, spec: RenderSpec | None) -> tuple[RenderSpec, bool]:
    """The new model's RenderSpec (default: 512 px) with its channels (:func:`_model_channels`),
    and whether they follow the manifest's channel names (the cache must then match each file's
    channels by name: :func:`_named_cache`)."""
    spec = spec if spec is not None else RenderSpec(size=512)
    return _model_channels(manifest, spec), _follows_names(manifest, spec)


def _model_channels(manifest: Manifest, spec: RenderSpec) -> RenderSpec:
    """With per-file channel maps the model's channels are the manifest's names, one image
    channel each (each file's ids come from its own map when it is rendered); so are they
    where the manifest names the channels every file shares (:func:`_follows_names`)."""
    if _follows_names(manifest, spec):
        from dataclasses import replace

        return replace(spec, channels=tuple(range(len(manifest.channel_names))))
    if not manifest.channel_maps:
        return spec
    if spec.channels is not None:
        raise ValueError(
            "the manifest maps its channels per file: name the model's channels (--channels "
            f"{','.join(manifest.channel_names)}), not file channel ids"
        )
    from dataclasses import replace

    return replace(spec, channels=tuple(range(len(manifest.channel_names))))


class _Run:
    """State of one ``train`` call (the run folder, the data, the log)."""

    def __init__(
        self,
        manifest: Manifest,
        out: Path,
        cfg: TrainConfig,
        spec: RenderSpec,
        reporter: Reporter,
        device: str,
    ):
        self.manifest, self.out, self.cfg, self.spec = manifest, out, cfg, spec
        self.reporter, self.device = reporter, device
        self.channels: tuple[str, ...] = (
            manifest.channel_names
            if manifest.channel_names and len(manifest.channel_names) == spec.n_channels
            else tuple(f"ch{c}" for c in (spec.channels or (0,)))
        )
        self.log_fh = open(out / "train.log", "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def log(self, message: str, *, echo: bool = True) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.log_fh.write(f"{stamp} {message}\n")
        self.log_fh.flush()
        if echo:
            self.reporter.log(message)

    def close(self) -> None:
        self.log_fh.close()

    def write_config(self, archs: list[str], compare, cache: RenderCache) -> None:
        """config.json: the whole configuration, the manifest, the device and provenance."""
        manifest = self.manifest
        doc = {
            "train_config": self.cfg.to_dict(),
            "render_spec": self.spec.to_dict(),
            "compare": list(compare or []),
            "manifest": {
                "path": str(manifest.path) if manifest.path else None,
                "sha256": manifest.sha256,
                "rows": len(manifest),
                "classes": list(manifest.classes),
                "groups": manifest.groups is not None,
                "channel_names": list(self.channels),
            },
            "device": self.device,
            "cache": str(cache.root),
            "provenance": _provenance(manifest),
        }
        (self.out / "config.json").write_text(json.dumps(doc, indent=2) + "\n")
        self.log(
            f"run {self.out}: {len(manifest)} nuclei, classes {list(manifest.classes)}, "
            f"architectures {archs}, device {self.device}, RenderSpec {self.spec.hash()}"
        )

    def new_model(self, arch: str):
        import torch

        from .models import create_model

        torch.manual_seed(self.cfg.seed)
        return create_model(
            arch,
            in_chans=self.spec.n_channels,
            num_classes=len(self.manifest.classes),
            **self.cfg.model_kwargs,
        )

    def fit_rows(self, arch: str, data: NucleusSet, rows: np.ndarray, title: str):
        cfg = self.cfg
        inner = _inner_split(rows, self.manifest.y, self._groups(), cfg)
        tr, va = data.items_of(inner.train), data.items_of(inner.test)
        model = self.new_model(arch)
        with self.reporter.stage(title, cfg.epochs) as step:

            def on_epoch(rec):
                self.log(
                    f"{title} epoch {rec['epoch']}: train loss {rec['train_loss']:.4f} "
                    f"acc {rec['train_accuracy']:.3f}, val loss {rec['val_loss']:.4f} "
                    f"acc {rec['val_accuracy']:.3f} ({rec['seconds']:.1f} s)",
                    echo=False,
                )
                step(
                    f"loss {rec['train_loss']:.3f} val {rec['val_loss']:.3f} acc "
                    f"{rec['val_accuracy']:.2f}"
                )

            res = fit(model, data, tr, va, cfg, device=self.device, on_epoch=on_epoch)
        self.last_val_items = va  # for calibration of the final model
        self.last_train_items = tr  # the out-of-distribution reference's features
        self.log(
            f"{title}: best epoch {res.best_epoch} (val loss {res.best_val_loss:.4f}) of "
            f"{len(res.history)}{', stopped early' if res.stopped_early else ''}; "
            f"{len(inner.train)} training / {len(inner.test)} validation nuclei, {res.seconds:.1f} "
            "s"
        )
        return model, res

    def _groups(self):
        return self.manifest.groups if self.cfg.use_groups else None

    def evaluate(self, model, data: NucleusSet, rows: np.ndarray) -> dict:
        """Nucleus-level scores, calls and loss on manifest ``rows``."""
        idx = data.items_of(rows)
        prob = predict(model, data, idx, device=self.device, batch_size=self.cfg.eval_batch_size)
        k = len(self.manifest.classes)
        item_loss = mean_cross_entropy(prob, data.y[idx])
        nrows, scores, undecided = vote(prob, data.owner[idx], k)
        y = self.manifest.y[nrows]
        return {
            "rows": nrows,
            "y": y,
            "scores": scores,
            "undecided": undecided,
            "loss": item_loss,
            "accuracy": float((scores.argmax(1) == y).mean()),
            "n_items": len(idx),
        }


def train(
    manifest: Manifest,
    out: str | os.PathLike,
    *,
    config: TrainConfig | None = None,
    spec: RenderSpec | None = None,
    compare: Sequence[str] | None = None,
    cache: RenderCache | None = None,
    reporter: Reporter | None = None,
    force: bool = False,
) -> dict:
    """Run the paper's protocol on a manifest and write the run folder ``out``.

    1. Render every nucleus once (cache); rows that fail are listed in data.csv and left out.
    2. Split 80/20 (stratified; group-disjoint when the manifest has groups): the 20 % test
       set is not looked at until step 4.
    3. Stratified k-fold CV (``config.folds``) on the 80 % for ``config.arch`` — or for each
       architecture in ``compare`` — reporting mean ± sd accuracy and loss on the held-out
       folds. With ``compare``, the architecture with the best mean CV accuracy (then the
       lowest loss) is the one trained in step 4.
    4. Train on the 80 % (a stratified ``val_fraction`` of it for early stopping), restore the
       best epoch, evaluate once on the test set, write metrics, plots and ``best.pt``.

    ``config`` defaults to ``TrainConfig()`` and ``spec`` to ``RenderSpec(size=512)``.

    Parameters
    ----------
    manifest : Manifest
        The labelled nuclei.
    out : str or os.PathLike
        The run folder.
    config : TrainConfig, optional
        The run's options.
    spec : RenderSpec, optional
        How nuclei are rendered.
    compare : sequence of str, optional
        Architectures compared by CV.
    cache : RenderCache, optional
        The render cache.
    reporter : Reporter, optional
        Progress (the CLI's output).
    force : bool
        Replace a finished run.

    Returns
    -------
    dict
        The summary written to metrics.json (``test`` metrics, ``cv`` per architecture, the
        chosen ``arch``, paths).

    Raises
    ------
    ainu_engine.errors.OutputError
        ``out`` holds a finished run (``best.pt``) and ``force`` is False.
    ainu_engine.errors.InputError
        Too few nuclei left for the splits, a class with no nucleus after rendering.
    """
    cfg = config if config is not None else TrainConfig()
    spec, follows = _model_spec(manifest, spec)
    reporter = reporter or Reporter()
    out = Path(out)
    archs = list(compare) if compare else [cfg.arch]
    _check_archs(archs)
    if (out / "best.pt").exists() and not force:
        raise OutputError(
            "holds a finished run (best.pt)", path=out, hint="pass --force or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    device, note = _torch_setup(cfg)
    if cfg.patch_size and spec.size != 0:
        spec = spec.raw()  # patches come from the raw render
    cache = (cache or RenderCache(default_cache_dir())).with_preprocess(cfg.preprocess)
    cache = _named_cache(manifest, cache, follows)
    run = _Run(manifest, out, cfg, spec, reporter, device)
    try:
        if note:
            run.log(note)
        run.write_config(archs, compare, cache)
        run.cache = cache  # partial acquisitions are rendered from it at the end
        data, ok = _render_all(run, cache)  # 1. render
        train_rows, test_rows = _split(run, data, ok)  # 2. split
        cv = _cross_validate(run, data, train_rows, archs)  # 3. k-fold CV per architecture
        arch = (
            min(archs, key=lambda a: (-cv[a]["accuracy_mean"], cv[a]["loss_mean"]))
            if cv
            else archs[0]
        )
        if len(archs) > 1:
            run.log(f"selected {arch} (best mean cross-validation accuracy)")
        return _final(run, arch, data, train_rows, test_rows, cv)  # 4. final model, test set
    finally:
        run.close()


def leave_one_group_out(
    manifest: Manifest,
    out: str | os.PathLike,
    *,
    config: TrainConfig | None = None,
    spec: RenderSpec | None = None,
    cache: RenderCache | None = None,
    reporter: Reporter | None = None,
    force: bool = False,
) -> dict:
    """For each group of the manifest (a slide, donor or cell line with its own batch effect):
    train on all other groups and test on this one, in ``OUT/GROUP/`` (a run folder like
    :func:`train`'s, without cross-validation). Writes ``OUT/leave_one_group_out.json`` and
    ``.csv``: per held-out group its nuclei, accuracy with its 95 % CI and balanced accuracy
    (of the classes present in it), and the mean over groups.

    Raises
    ------
    ainu_engine.errors.InputError
        The manifest has no groups, or fewer than two.

    Parameters
    ----------
    manifest : Manifest
        The labelled nuclei with groups.
    out : str or os.PathLike
        The folder.
    config, spec, cache, reporter, force
        As :func:`train`.

    Returns
    -------
    dict
    """
    cfg = config if config is not None else TrainConfig()
    spec, follows = _model_spec(manifest, spec)
    reporter = reporter or Reporter()
    out = Path(out)
    if not manifest.groups:
        raise InputError("leave-one-group-out needs a manifest with a group column",
                         path=manifest.path)  # fmt: skip
    names = list(dict.fromkeys(manifest.groups))
    if len(names) < 2:
        raise InputError(f"leave-one-group-out needs two groups or more, found {names}",
                         path=manifest.path)  # fmt: skip
    if (out / "leave_one_group_out.json").exists() and not force:
        raise OutputError("holds a finished leave-one-group-out run", path=out,
                          hint="pass --force or choose another --out")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    device, note = _torch_setup(cfg)
    cache = (cache or RenderCache(default_cache_dir())).with_preprocess(cfg.preprocess)
    cache = _named_cache(manifest, cache, follows)
    groups = np.asarray(manifest.groups)
    rows, t0 = [], time.perf_counter()
    top = _Run(manifest, out, cfg, spec, reporter, device)  # every nucleus rendered once
    try:
        if note:
            top.log(note)
        data, ok = _render_all(top, cache)
    finally:
        top.close()
    for g in names:
        run = _Run(manifest, _mkdir(out / _safe_name(g)), cfg, spec, reporter, device)
        run.cache = cache
        try:
            run.write_config([cfg.arch], None, cache)
            test_rows, train_rows = ok[groups[ok] == g], ok[groups[ok] != g]
            if not len(test_rows):
                run.log(f"held-out group {g}: no nucleus rendered; skipped")
                continue
            missing = sorted(set(manifest.classes) - {manifest.labels[i] for i in train_rows})
            if missing:
                raise InputError(f"without group {g} no nucleus of class {', '.join(missing)} "
                                 "is left to train on", path=manifest.path)  # fmt: skip
            run.log(f"held out: group {g} ({len(test_rows)} nuclei); training on "
                    f"{len(train_rows)} of the other groups")  # fmt: skip
            _write_data_csv(run.out / "data.csv", manifest, data, set(train_rows.tolist()),
                            set(test_rows.tolist()))  # fmt: skip
            m = _final(run, cfg.arch, data, train_rows, test_rows, {})["test"]
        finally:
            run.close()
        present = sorted({manifest.labels[i] for i in test_rows})
        rows.append({"group": g, "nuclei": len(test_rows), "classes": present,
                     "accuracy": m["accuracy"], "accuracy_ci": m["accuracy_ci_normal"],
                     "balanced_accuracy": m["balanced_accuracy"], "run": str(run.out)})  # fmt: skip
    acc = np.array([r["accuracy"] for r in rows])
    doc = {
        "arch": cfg.arch, "manifest": str(manifest.path), "groups": rows,
        "accuracy_mean": float(acc.mean()) if len(acc) else None,
        "accuracy_sd": float(acc.std(ddof=1)) if len(acc) > 1 else None,
        "accuracy_pooled": (float(sum(r["accuracy"] * r["nuclei"] for r in rows)
                                  / sum(r["nuclei"] for r in rows)) if rows else None),
        "seconds": round(time.perf_counter() - t0, 1), "device": device,
    }  # fmt: skip
    (out / "leave_one_group_out.json").write_text(dumps(doc, indent=2) + "\n")
    with open(out / "leave_one_group_out.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["group", "nuclei", "classes", "accuracy", "ci_low", "ci_high",
                    "balanced_accuracy"])  # fmt: skip
        for r in rows:
            w.writerow([r["group"], r["nuclei"], "+".join(r["classes"]), round(r["accuracy"], 4),
                        round(r["accuracy_ci"][0], 4), round(r["accuracy_ci"][1], 4),
                        round(r["balanced_accuracy"], 4)])  # fmt: skip
    return doc


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _safe_name(group: str) -> str:
    """A folder name for a group (its own name where it is one)."""
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(group))
    return keep.strip(".") or "group"


def _check_archs(archs: list[str]) -> None:
    from .models import create_model, list_models

    for a in archs:
        if a not in list_models():
            create_model(a)  # raises with the close matches


def _torch_setup(cfg: TrainConfig) -> tuple[str, str | None]:
    """Threads, device (and why, when it is not the one asked for), determinism."""
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device, note = resolve_device(cfg.device)
    if cfg.deterministic and device == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return device, note


def _render_all(run: _Run, cache: RenderCache) -> tuple[NucleusSet, np.ndarray]:
    """Every manifest row rendered (or read from the cache); the rows that rendered."""
    manifest = run.manifest
    with run.reporter.stage("render", len(manifest)) as step:
        data = load_nuclei(
            manifest,
            run.spec,
            cache,
            patch_size=run.cfg.patch_size,
            min_occupied=run.cfg.min_occupied,
            on_item=step,
            keep_sources=run.cfg.augment_localizations is not None,
        )
    if cache.device_note:
        run.log(cache.device_note)
    run.log(
        f"rendered {len(manifest)} nuclei ({cache.hits} from the cache, {cache.misses} new), "
        f"{len(data)} training items" + (f", {len(data.failed)} failed" if data.failed else "")
    )
    for msg in data.failed.values():
        run.log(f"left out: {msg}")
    ok = np.array(sorted(data.stats), np.int64)
    counts = np.bincount(manifest.y[ok], minlength=len(manifest.classes)) if len(ok) else (
        np.zeros(len(manifest.classes), np.int64))  # fmt: skip
    if len(ok) < 4 or counts.min() < 2:
        why = ""
        if data.failed:  # say why they were left out: the first message, and how many share it
            first = next(iter(data.failed.values()))
            reason = first.split(": ", 1)[-1]
            same = sum(m.split(": ", 1)[-1] == reason for m in data.failed.values())
            why = f"; {len(data.failed)} of {len(manifest)} left out ({same} as: {reason})"
        raise InputError(
            f"too few usable nuclei: {dict(zip(manifest.classes, counts.tolist(), strict=True))}"
            + why,
            path=manifest.path,
            hint="each class needs several nuclei that render",
        )
    return data, ok


def _split(run: _Run, data: NucleusSet, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stratified (group-disjoint) 80/20 split of the rows that rendered; writes data.csv."""
    groups = run._groups()
    g_ok = None if groups is None else np.asarray(groups)[ok]
    s = train_test_split(
        run.manifest.y[ok], test_fraction=run.cfg.test_fraction, groups=g_ok, seed=run.cfg.seed
    )
    train_rows, test_rows = ok[s.train], ok[s.test]
    run.log(
        f"split: {len(train_rows)} training+validation, {len(test_rows)} test nuclei"
        + (" (group-disjoint)" if g_ok is not None else "")
    )
    _write_data_csv(
        run.out / "data.csv", run.manifest, data, set(train_rows.tolist()), set(test_rows.tolist())
    )
    return train_rows, test_rows


def _cross_validate(
    run: _Run, data: NucleusSet, train_rows: np.ndarray, archs: list[str]
) -> dict[str, dict]:
    """k-fold CV of each architecture on the training rows; writes cv.json, cv.csv, cv/ plots."""
    from .metrics import plot_learning_curves

    cfg, out = run.cfg, run.out
    if not cfg.folds:
        return {}
    groups = run._groups()
    gtr = None if groups is None else np.asarray(groups)[train_rows]
    folds = kfold_splits(run.manifest.y[train_rows], k=cfg.folds, groups=gtr, seed=cfg.seed)
    (out / "cv").mkdir(exist_ok=True)
    cv: dict[str, dict] = {}
    for arch in archs:
        per_fold = []
        for f in folds:
            title = f"cv {arch} fold {f.fold + 1}/{cfg.folds}"
            model, res = run.fit_rows(arch, data, train_rows[f.train], title)
            ev = run.evaluate(model, data, train_rows[f.test])
            plot_learning_curves(res.history, out / "cv" / f"{arch}_fold{f.fold + 1}.png")
            per_fold.append(
                {
                    "fold": f.fold + 1,
                    "accuracy": ev["accuracy"],
                    "loss": ev["loss"],
                    "n_test": len(ev["rows"]),
                    "best_epoch": res.best_epoch,
                    "epochs_run": len(res.history),
                    "seconds": round(res.seconds, 2),
                }
            )
            run.log(f"{title}: held-out accuracy {ev['accuracy']:.3f}, loss {ev['loss']:.4f}")
        acc = _mean_sd([p["accuracy"] for p in per_fold])
        loss = _mean_sd([p["loss"] for p in per_fold])
        cv[arch] = {
            "accuracy_mean": acc[0],
            "accuracy_sd": acc[1],
            "loss_mean": loss[0],
            "loss_sd": loss[1],
            "folds": per_fold,
        }
        run.log(
            f"cv {arch}: accuracy {acc[0]:.3f} ± {acc[1]:.3f}, loss {loss[0]:.4f} ± {loss[1]:.4f}"
        )
    _write_cv(out, cv)
    if len(archs) > 1:
        _plot_compare(cv, out / "compare.png")
    return cv


def _write_cv(out: Path, cv: dict) -> None:
    (out / "cv.json").write_text(dumps(cv, indent=2) + "\n")
    with open(out / "cv.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["arch", "fold", "accuracy", "loss", "n_test", "best_epoch", "epochs_run", "seconds"]
        )
        for arch, r in cv.items():
            for p in r["folds"]:
                w.writerow(
                    [
                        arch,
                        p["fold"],
                        f"{p['accuracy']:.6f}",
                        f"{p['loss']:.6f}",
                        p["n_test"],
                        p["best_epoch"],
                        p["epochs_run"],
                        p["seconds"],
                    ]
                )


def _final(
    run: _Run, arch: str, data: NucleusSet, train_rows: np.ndarray, test_rows: np.ndarray, cv: dict
) -> dict:
    """Train ``arch`` on the training rows, evaluate once on the test rows, write the metrics,
    plots, predictions and the checkpoint; returns the summary."""
    from .metrics import classification_metrics, plot_learning_curves, plot_metrics

    cfg, out, manifest = run.cfg, run.out, run.manifest
    model, res = run.fit_rows(arch, data, train_rows, f"final {arch}")
    _write_history(out / "history.csv", res.history)
    plot_learning_curves(res.history, out / "learning_curves.png")
    ev = run.evaluate(model, data, test_rows)
    calibration = _calibrate(run, model, data, test_rows)
    metrics = classification_metrics(ev["y"], ev["scores"], manifest.classes, seed=cfg.seed)
    metrics["loss"] = ev["loss"]
    metrics["n_undecided"] = int(ev["undecided"].sum())
    metrics["unit"] = "nucleus" + (
        f" (vote over {ev['n_items']} patches)" if cfg.patch_size else ""
    )
    summary = {
        "arch": arch,
        "test": metrics,
        "calibration": calibration,
        "cv": cv,
        "best_epoch": res.best_epoch,
        "epochs_run": len(res.history),
        "device": run.device,
    }
    plot_metrics(metrics, out)  # confusion/roc/pr.png and metrics.json (test set)
    _write_predictions(out / "predictions.csv", manifest, ev)
    stats = data.training_stats(train_rows)
    if manifest.nuclei is not None:  # cells of fields: screen finds them as training did
        stats["nuclei"] = nuclei_record(manifest.nuclei)
    by_fraction = _partial_calibration(run, model, data)
    if by_fraction:
        summary["calibration"]["by_fraction"] = by_fraction
    ood = _ood_reference(run, model, data, stats, train_rows, test_rows)
    if ood is not None:
        stats["ood"] = ood
        summary["ood"] = {k: v for k, v in ood.items() if k != "features"}
    (out / "metrics.json").write_text(dumps(summary, indent=2) + "\n")  # the run's summary
    samples = data.batch(data.items_of(test_rows)[:4])  # export checks ONNX against torch on these
    _write_checkpoint(
        out / "best.pt", model, cfg, run.spec, manifest, run.channels, summary, stats, res, samples
    )
    run.log(
        f"test set ({len(test_rows)} nuclei): accuracy {metrics['accuracy']:.3f} "
        f"(95 % CI {metrics['accuracy_ci_normal'][0]:.3f}-{metrics['accuracy_ci_normal'][1]:.3f}), "
        f"balanced {metrics['balanced_accuracy']:.3f}; wrote {out / 'best.pt'}"
    )
    return summary


def _calibrate(run: _Run, model, data: NucleusSet, test_rows: np.ndarray) -> dict:
    """Temperature scaling fitted on the final model's validation items (never the test set)
    under a prior that keeps T near 1 unless the data say otherwise
    (:func:`ainu_engine.scores.calibrate_temperature`; skipped, T = 1, with the reason when the
    evidence is too thin); the expected calibration error and the Brier score before and after
    on both sets, on the test set with bootstrap CIs, and the reliability diagram
    ``RUN/calibration.png``. The exported model carries the temperature and ``Classifier``
    divides the logits by it."""
    from ainu_engine.scores import TEMPERATURE_PRIOR_SD, calibrate_temperature

    from .metrics import calibration_scores, plot_reliability

    va = np.asarray(run.last_val_items)
    te = data.items_of(test_rows)
    kw = {"device": run.device, "batch_size": run.cfg.eval_batch_size, "amp": False}
    z_va = _logits(model, data, va, **kw).numpy().astype(np.float64)
    z_te = _logits(model, data, te, **kw).numpy().astype(np.float64)
    t, skipped = calibrate_temperature(z_va, data.y[va])
    out = {"temperature": t, "fitted_on": f"validation split ({len(va)} items)",
           "method": f"MAP, normal prior on log T (sd {TEMPERATURE_PRIOR_SD})",
           "skipped": skipped}  # fmt: skip
    for name, z, y in (("validation", z_va, data.y[va]), ("test", z_te, data.y[te])):
        out.update(calibration_scores(z, y, t, prefix=f"{name}_", ci=name == "test",
                                      seed=run.cfg.seed))  # fmt: skip
    plot_reliability(z_te, data.y[te], t, run.out / "calibration.png")
    how = f"T = {t:.3f} (validation)" if skipped is None else f"skipped: {skipped}"
    run.log(
        f"temperature scaling: {how}; test ECE {out['ece_test_before']:.3f} -> "
        f"{out['ece_test_after']:.3f}, Brier {out['brier_test_before']:.3f} -> "
        f"{out['brier_test_after']:.3f}"
    )
    return out


#: the acquisition fractions (first frames) at which partial renders are calibrated
FRACTIONS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def _partial_calibration(run: _Run, model, data: NucleusSet) -> list[dict] | None:
    """How the final model's calls behave on partial acquisitions of its validation nuclei
    (the first 10, 20, 30, 50, 75 % of their frames, and all): per fraction a temperature fitted
    there (as :func:`_calibrate`), the accuracy, and how often the call is the one on the whole
    acquisition. The model carries it (``metrics["calibration"]["by_fraction"]``): live
    sessions compute their probabilities at the temperature of the fraction seen so far and
    report how firm a call at that fraction has been. None in patch mode, without the render
    cache or without frames."""
    from ainu_engine.render import model_input
    from ainu_engine.scores import calibrate_temperature, softmax

    from .data import row_cache
    from .ood import embeddings

    cache = getattr(run, "cache", None)
    if run.cfg.patch_size or cache is None:
        return None
    rows = [int(r) for r in np.unique(data.owner[np.asarray(run.last_val_items)])]
    images = {f: [] for f in FRACTIONS}
    kept, counts = [], []
    for row in rows:
        try:
            src = data.sources.get(row)
            if src is None:
                rc, nucleus = row_cache(run.manifest, cache, row)
                src = rc.source(run.manifest.files[row], run.spec, nucleus)
            locs, spec, roi = src
            if locs.frame is None or not locs.n:
                continue
            f = np.asarray(locs.frame)
            lo, span = int(f.min()), int(f.max()) - int(f.min()) + 1
            imgs = {}
            for frac in FRACTIONS:
                part = locs if frac >= 1 else locs[f < lo + frac * span]
                imgs[frac] = model_input(part, spec, cache.preprocessing(), device="cpu",
                                         roi_nm=roi).items[0]  # fmt: skip
        except Exception:  # noqa: BLE001 - a nucleus too sparse early on is left out
            continue
        kept.append(row)
        counts.append(int(locs.n))
        for frac in FRACTIONS:
            images[frac].append(imgs[frac])
    if len(kept) < 3:
        return None
    y = run.manifest.y[np.asarray(kept)]
    kw = {"device": run.device, "batch_size": run.cfg.eval_batch_size}
    z = {frac: embeddings(model, images[frac], **kw)[0].astype(np.float64) for frac in FRACTIONS}
    full = z[1.0].argmax(1)
    out = []
    for frac in FRACTIONS:
        t, skipped = calibrate_temperature(z[frac], y)
        p = softmax(z[frac] / t, axis=1)
        out.append({
            "fraction": frac, "n": len(kept), "temperature": t, "skipped": skipped,
            "accuracy": float((p.argmax(1) == y).mean()),
            "agree_with_full": float((p.argmax(1) == full).mean()),
            "mean_confidence": float(p.max(1).mean()),
        })  # fmt: skip
    run.log("partial acquisitions (validation nuclei): " + ", ".join(
        f"{r['fraction']:.0%} acc {r['accuracy']:.2f} agree {r['agree_with_full']:.2f} "
        f"T {r['temperature']:.2f}" for r in out))  # fmt: skip
    return out


def _ood_reference(run: _Run, model, data: NucleusSet, stats: dict, train_rows: np.ndarray,
                   test_rows: np.ndarray) -> dict | None:  # fmt: skip
    """The out-of-distribution reference of the final model (:func:`.ood.fit_reference`):
    features of the items its weights were fitted on, thresholds on the validation nuclei at a
    5 % false-alarm rate; the share of the test nuclei it flags is logged and recorded (the
    honest figure: the test nuclei played no part)."""
    from .ood import embeddings, fit_reference

    tr, va = np.asarray(run.last_train_items), np.asarray(run.last_val_items)
    te = data.items_of(test_rows)
    kw = {"device": run.device, "batch_size": run.cfg.eval_batch_size}
    _, f_tr = embeddings(model, [data.images[i] for i in tr], **kw)
    _, f_va = embeddings(model, [data.images[i] for i in va], **kw)
    _, f_te = embeddings(model, [data.images[i] for i in te], **kw)

    def inputs(rows):
        return [data.stats.get(int(r), {}).get("input_statistics") or {} for r in rows]

    va_rows = np.unique(data.owner[va])
    ref = fit_reference(
        f_tr, data.y[tr], f_va, data.owner[va], stats.get("input_reference"),
        inputs(train_rows), inputs(va_rows),
    )  # fmt: skip
    d = ref.to_dict()
    te_rows = np.unique(data.owner[te])
    flags = []
    for r, s_in in zip(te_rows, inputs(te_rows), strict=True):
        flags.append(ref.score(s_in, f_te[data.owner[te] == r]).unfamiliar)
    d["held_out"]["test_flagged"] = float(np.mean(flags)) if flags else None
    d["held_out"]["test_n"] = len(flags)
    run.log(
        f"out-of-distribution reference: {f_tr.shape[1]} features, thresholds "
        + ", ".join(f"{k} {v:.3g}" for k, v in ref.thresholds.items())
        + f" (from {d['held_out']['source']}); flags {sum(flags)}/{len(flags)} test nuclei"
    )
    return d


def default_cache_dir() -> Path:
    """``$AINU_CACHE_DIR/renders``, else ``$XDG_CACHE_HOME/ainu-engine/renders`` (~/.cache)."""
    from ainu_engine.cache import cache_root

    return cache_root() / "renders"


def _provenance(manifest: Manifest) -> dict:
    import torch

    from ainu_engine.provenance import __version__, git_commit

    return {
        "git_commit": git_commit(),
        "manifest_sha256": manifest.sha256,
        "manifest": str(manifest.path) if manifest.path else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ainu_engine": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def _write_checkpoint(
    path: Path,
    model,
    cfg: TrainConfig,
    spec: RenderSpec,
    manifest: Manifest,
    channels,
    summary: dict,
    stats: dict,
    res: FitResult,
    samples: np.ndarray,
) -> None:
    test = summary["test"]
    metrics = {
        "test": {
            k: test[k]
            for k in (
                "n",
                "accuracy",
                "accuracy_ci_normal",
                "balanced_accuracy",
                "f1_macro",
                "loss",
                "roc_auc",
                "roc_auc_macro_ovr",
            )
            if k in test
        },
        "cv": {a: {k: v for k, v in r.items() if k != "folds"} for a, r in summary["cv"].items()},
        "best_epoch": res.best_epoch,
        "epochs_run": len(res.history),
        "calibration": summary.get("calibration"),
    }
    save_checkpoint(
        path,
        model,
        classes=manifest.classes,
        render_spec=spec,
        channel_names=channels,
        input_size=cfg.patch_size or spec.size,
        preprocessing=_preprocessing(cfg, spec),
        train_config=cfg.to_dict(),
        metrics=metrics,
        training_stats=stats,
        provenance={**_provenance(manifest), "augment_localizations": (
            None if cfg.augment_localizations is None else cfg.augment_localizations.to_dict())},
        history=res.history,
        samples=samples,
    )


def _preprocessing(cfg: TrainConfig, spec: RenderSpec) -> dict:
    d = _render_mode(cfg, spec)
    if cfg.preprocess is not None:  # applied to each nucleus before it is rendered
        d["localizations"] = cfg.preprocess.to_dict()
    return d


def _render_mode(cfg: TrainConfig, spec: RenderSpec) -> dict:
    if cfg.patch_size:
        return {
            "mode": "patches",
            "patch_size": cfg.patch_size,
            "min_occupied": cfg.min_occupied,
            "scaling": spec.scaling,
            "percentile": spec.percentile,
            "call": "class voted by more than 50 % of the patches",
        }
    return {
        "mode": "image",
        "scaling": spec.scaling,
        "percentile": spec.percentile,
        "note": "ainu_engine.render(locs, render_spec) gives the model input (resize, pad, "
        "scaling, outside)",
    }


def _write_history(path: Path, history: list[dict]) -> None:
    keys = list(history[0]) if history else []
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, keys)
        w.writeheader()
        w.writerows(history)


def _write_data_csv(
    path: Path, manifest: Manifest, data: NucleusSet, train_rows: set, test_rows: set
) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "row",
                "path",
                "label",
                "group",
                "split",
                "items",
                "localizations",
                "area_um2",
                "error",
                "nucleus",
                "channels",
            ]
        )
        for i, p in enumerate(manifest.files):
            st = data.stats.get(i, {})
            split = (
                "failed"
                if i in data.failed
                else "train"
                if i in train_rows
                else "test"
                if i in test_rows
                else ""
            )
            w.writerow(
                [
                    i,
                    str(p),
                    manifest.labels[i],
                    manifest.groups[i] if manifest.groups else "",
                    split,
                    int(np.count_nonzero(data.owner == i)),
                    "+".join(map(str, st.get("n_localizations", []))),
                    round(st["area_um2"], 3) if "area_um2" in st else "",
                    data.failed.get(i, ""),
                    manifest.nucleus_ids[i] if manifest.nucleus_ids else "",
                    (";".join(f"{k}={v}" for k, v in manifest.channel_maps[i].items())
                     if manifest.channel_maps else ""),
                ]
            )  # fmt: skip


def _write_predictions(path: Path, manifest: Manifest, ev: dict) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["path", "label", "predicted", "correct", "undecided"]
            + [f"p_{c}" for c in manifest.classes]
        )
        for r, s, u in zip(ev["rows"], ev["scores"], ev["undecided"], strict=True):
            pred = manifest.classes[int(s.argmax())]
            w.writerow(
                [
                    manifest.item_name(r),
                    manifest.labels[r],
                    pred,
                    pred == manifest.labels[r],
                    bool(u),
                ]
                + [f"{v:.6f}" for v in s]
            )


def _plot_compare(cv: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    from .metrics import _save

    names = list(cv)
    fig = Figure(figsize=(3 + 1.2 * len(names), 3.5))
    axes = fig.subplots(1, 2)
    for ax, what in zip(axes, ("accuracy", "loss"), strict=True):
        ax.bar(
            names,
            [cv[n][f"{what}_mean"] for n in names],
            yerr=[cv[n][f"{what}_sd"] for n in names],
            capsize=4,
            color="#4c72b0",
        )
        ax.set_ylabel(f"{what} (mean ± sd over folds)")
        ax.tick_params(axis="x", rotation=30)
    _save(fig, path)
