"""Calls on widefield nuclei from an exported SCENMED model (any engine backend), with
occlusion maps (:func:`ainu_engine.explain.occlusion`) and, for patch models, PatchNet-style
heat maps of the patch decisions."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..runner import ModelRunner
from ..scores import softmax
from ._patches import extract_patches

__all__ = ["WidefieldCall", "WidefieldClassifier"]


@dataclass
class WidefieldCall:
    """One nucleus's call.

    Attributes
    ----------
    label : str or None
        The called class; None where a patch model had no usable patch (no call).
    probabilities : dict of str to float
        Per class (a patch model: the mean of its patches').
    n_patches : int
        The patches it was decided from (0 for a whole-crop model).
    qc : list of str
        What makes it doubtful.
    """

    label: str | None
    probabilities: dict[str, float]
    n_patches: int = 0
    qc: list[str] = field(default_factory=list)


class WidefieldClassifier(ModelRunner):
    """An exported widefield model (``preprocessing.mode == "widefield"``) on a backend.

    Parameters
    ----------
    backend : ainu_engine.backends.Backend
        A backend of a widefield classifier (:meth:`load` makes one from a model file).

    Raises
    ------
    ainu_engine.errors.InputError
        The model is not a widefield classifier (an SMLM classifier or a generator).

    Examples
    --------
    >>> from ainu_engine.scenmed import WidefieldClassifier  # doctest: +SKIP
    >>> clf = WidefieldClassifier.load("run/model.onnx")  # doctest: +SKIP
    >>> clf.classify(crops)[0].label  # doctest: +SKIP
    'BJ'
    """

    kind = "widefield-classifier"

    def __init__(self, backend) -> None:
        super().__init__(backend)
        pre = self.pre = self.info.preprocessing
        self.classes = list(self.info.classes)
        self.patch = int(pre["patch_size"]) if pre.get("input") == "patches" else None
        self.stride = int(pre.get("stride", 16)) if self.patch else None
        self.scale = float(pre.get("scale", 1 / 4095))
        self.pixel_um = float(pre.get("pixel_um", 0.215))

    @classmethod
    def load(cls, model: str | os.PathLike, backend: str = "auto", *, device: str = "auto",
             threads: int | None = None) -> WidefieldClassifier:  # fmt: skip
        from ..backends import create_backend

        return cls(create_backend(model, backend, device=device, threads=threads))

    def inputs(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The model inputs of one 128² crop, (N, 1, S, S) float32, and the patch offsets."""
        crop = np.asarray(crop, np.float32)
        if self.patch is None:
            return (crop * self.scale)[None, None], None
        p, off = extract_patches(
            crop, size=self.patch, stride=self.stride,
            min_occupied=float(self.pre.get("min_occupied", 0.85)),
        )  # fmt: skip
        return (p * self.scale)[:, None], off

    def classify(self, crops) -> list[WidefieldCall]:
        """Calls for crops (N, 128, 128) made by :func:`~ainu_engine.scenmed.segment_field`
        (a patch model averages the probabilities of each nucleus's patches)."""
        calls = []
        for crop in crops:
            x, _ = self.inputs(crop)
            if len(x) == 0:
                calls.append(WidefieldCall(None, {c: float("nan") for c in self.classes}, 0,
                                           ["no_patches"]))  # fmt: skip
                continue
            p = softmax(self.infer_batched(x)).mean(axis=0)
            calls.append(
                WidefieldCall(
                    self.classes[int(np.argmax(p))],
                    {c: float(v) for c, v in zip(self.classes, p, strict=True)},
                    len(x) if self.patch else 0,
                )
            )
        return calls

    def patch_map(self, crop: np.ndarray, target: int | str | None = None) -> np.ndarray:
        """PatchNet's global heat map: each pixel the mean probability of ``target`` (default
        the call) over the patches covering it; NaN where no patch covers. Patch models only."""
        if self.patch is None:
            raise ValueError("patch maps need a patch model (this one classifies whole crops)")
        x, off = self.inputs(crop)
        heat = np.zeros(np.shape(crop), np.float64)
        cnt = np.zeros(np.shape(crop), np.float64)
        if len(x):
            p = softmax(self.infer_batched(x))
            t = int(np.argmax(p.mean(0))) if target is None else (
                self.classes.index(target) if isinstance(target, str) else int(target))  # fmt: skip
            for (r, c), q in zip(off, p[:, t], strict=True):
                heat[r : r + self.patch, c : c + self.patch] += q
                cnt[r : r + self.patch, c : c + self.patch] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cnt > 0, heat / cnt, np.nan).astype(np.float32)

    def occlusion(self, crop: np.ndarray, *, window: int = 16, stride: int = 8):
        """Occlusion attribution of a whole-crop model's call
        (:func:`ainu_engine.explain.occlusion`, baseline 0 = background)."""
        from ..explain import occlusion

        if self.patch is not None:
            raise ValueError("occlusion maps are for whole-crop models; use patch_map")
        x, _ = self.inputs(crop)
        return occlusion(self.backend, x[0], window=window, stride=stride, baseline=0.0,
                         output="probabilities")  # fmt: skip
