"""``Classifier``: an exported model plus everything needed to call a nucleus — render with the
model's RenderSpec, infer on a backend, vote patches, and flag nuclei unlike the training ones."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .io import Localizations
from .model import ModelInfo, temperature_of
from .runner import ModelRunner
from .scores import patch_vote, softmax

__all__ = ["Classifier", "Prediction", "Prepared", "abstain"]

#: a "nucleus" this many times larger than the largest training nucleus is a field of cells
FIELD_AREA_FACTOR = 3.0
#: without training statistics: an area no nucleus has (µm²)
FIELD_AREA_UM2 = 1500.0


def looks_like_field(p: Prepared, training_stats: dict) -> bool:
    """Whether a "nucleus" is more likely a field of several cells: nucleus detection
    (:func:`ainu_engine.nuclei.detect_nuclei`) finds two or more in it, or its area is far above
    the training nuclei's."""
    area_max = (training_stats.get("area_um2") or {}).get("max")
    limit = FIELD_AREA_FACTOR * area_max if area_max else FIELD_AREA_UM2
    if p.area_um2 and p.area_um2 > limit:
        return True
    return p.n_parts is not None and p.n_parts >= 2


#: without training statistics in the model, fewer than this many localizations is "few"
MIN_LOCALIZATIONS = 1000


@dataclass
class Prepared:
    """A nucleus ready for the model: its input items (1 image, or P patches) and statistics."""

    items: np.ndarray  #: float32 (P, C, S, S)
    n_localizations: list[int]
    area_um2: float | None
    at_edge: bool = False
    render_seconds: float = 0.0
    rendered: object = None  #: the :class:`~ainu_engine.render.Rendered` the items come from
    n_parts: int | None = None  #: nuclei that detection finds in it (2 or more: a field)
    #: :func:`ainu_engine.ood.nucleus_statistics` of what the model sees (None: not computed)
    input_statistics: dict | None = None
    #: the model's recorded preprocessing's report (:func:`ainu_engine.preprocess.apply_once`)
    preprocess: dict = field(default_factory=dict)


@dataclass
class Prediction:
    """The call for one nucleus.

    Attributes
    ----------
    label : str
        The called class.
    probabilities : dict of str to float
        Each class's probability (softmax of the logits at the model's temperature).
    qc : list of str
        The flags that make the call doubtful (``ok`` when there is none):
        ``few_localizations`` (some channel has fewer than any training nucleus had),
        ``density_out_of_range`` and ``area_out_of_range`` (outside the training nuclei's
        range), ``cut_by_edge`` (automatic detection: the nucleus touches the border of the
        field), ``units_suspect`` (a render pixel below 1 nm or a nucleus under 1 µm across:
        the coordinates are probably not in nm), ``looks_like_field`` (two or more separated
        parts of comparable size, or an area far above the training nuclei's: a field of
        cells, for ``--nuclei detect``), ``undecided`` (patch mode: no class has more than
        half of the patches), ``drift_uncorrected`` (the model's preprocessing corrects drift
        and this nucleus is too sparse for it) and ``poor_resolution`` (NeNA or FRC more than
        1.25 times the worst of the training nuclei; models that record ``resolution``).
    n_localizations : list of int
        Localizations per model channel.
    area_um2 : float or None
        The nucleus's area (µm²).
    n_items : int
        Images the call is made of (1, or the patches of patch mode).
    undecided : bool
        Patch mode: no class has more than half of the patches.
    pixel_nm : float or None
        nm per pixel of the image the model saw (after resizing).
    ood_score : float or None
        How unlike the training nuclei it is (:class:`ainu_engine.ood.OodReference`: the
        largest component over its threshold; above 1: ``unfamiliar``); None for a model
        without the reference (exported before it existed).
    ood_reason : str or None
        What is furthest out, e.g. ``median precision 2.4 nm; training 11–18 nm``.
    abstain_reason : str or None
        With abstention (``Classifier(abstain=...)``): why the call is ``undecided`` instead of
        the model's class (``unfamiliar: ...`` or ``low confidence: ...``); the probabilities
        are still the model's.
    nena_nm, frc_nm : float or None
        The nucleus's resolution estimates (NeNA precision, FRC resolution) where the model's
        preprocessing records ``resolution`` (:mod:`ainu_engine.preprocess`); else None.

    Examples
    --------
    >>> p = Prediction("hiPSC", {"hiPSC": 0.9, "somatic": 0.1}, n_localizations=[5000])
    >>> p.ok, p.to_dict()["qc_ok"]
    (True, True)
    """

    label: str
    probabilities: dict[str, float]
    qc: list[str] = field(default_factory=list)
    n_localizations: list[int] = field(default_factory=list)
    area_um2: float | None = None
    n_items: int = 1
    undecided: bool = False
    pixel_nm: float | None = None
    ood_score: float | None = None
    ood_reason: str | None = None
    abstain_reason: str | None = None
    nena_nm: float | None = None
    frc_nm: float | None = None

    @property
    def ok(self) -> bool:
        """No QC flag."""
        return not self.qc

    def to_dict(self) -> dict:
        """The one wire format of a call (JSON types): what the service answers, the client
        reads, JSON Lines hold. ``qc_ok`` is :attr:`ok`.

        Examples
        --------
        >>> p = Prediction("hiPSC", {"hiPSC": 0.9, "somatic": 0.1}, n_localizations=[100])
        >>> Prediction.from_dict(p.to_dict()) == p
        True
        """
        return {
            "label": self.label,
            "probabilities": {k: float(v) for k, v in self.probabilities.items()},
            "qc": list(self.qc),
            "qc_ok": self.ok,
            "n_localizations": [int(v) for v in self.n_localizations],
            "area_um2": None if self.area_um2 is None else float(self.area_um2),
            "n_items": int(self.n_items),
            "undecided": bool(self.undecided),
            "pixel_nm": None if self.pixel_nm is None else float(self.pixel_nm),
            "ood_score": _finite_or_none(self.ood_score),
            "ood_reason": self.ood_reason,
            "abstain_reason": self.abstain_reason,
            "nena_nm": _finite_or_none(self.nena_nm),
            "frc_nm": _finite_or_none(self.frc_nm),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Prediction:
        """The call of :meth:`to_dict`'s dict (other keys, e.g. the service's model hash, are
        ignored).

        Raises
        ------
        KeyError
            A key of the wire format is missing.
        """
        return cls(
            d["label"], dict(d["probabilities"]), list(d["qc"]), list(d["n_localizations"]),
            d["area_um2"], d["n_items"], d["undecided"], d.get("pixel_nm"),
            d.get("ood_score"), d.get("ood_reason"), d.get("abstain_reason"),
            d.get("nena_nm"), d.get("frc_nm"),
        )  # fmt: skip


def _finite_or_none(v) -> float | None:
    """JSON has no NaN: a missing or undefined score is null."""
    return None if v is None or not np.isfinite(v) else float(v)


#: the label of a call the classifier abstains from (``Classifier(abstain=...)``)
UNDECIDED = "undecided"
#: ``abstain=True``: calls whose top probability is below this are undecided
ABSTAIN_BELOW = 0.75


class Classifier(ModelRunner):
    """An exported model on a backend, with the model's own preprocessing.

    Parameters
    ----------
    backend : ainu_engine.backends.Backend
        The backend of an SMLM classifier (:func:`ainu_engine.backends.create_backend`);
        :meth:`load` makes one from a model file.
    render_device : {"auto", "cpu", "cuda"}
        Where nuclei are rendered.
    channel_map : mapping, optional
        Model channel -> file channel, for files whose channels are named otherwise.
    file_channel_maps : mapping, optional
        Resolved file path -> that file's own map (a manifest row's ``channels``,
        :func:`ainu_engine.render.manifest_channel_maps`; it may name more proteins than the model
        takes): :meth:`for_path` applies it, before ``channel_map``.
    load : bool, default True
        Load the backend now (False: preparing nuclei only, e.g. a distributed screen's render
        tasks; the backend loads where the calls are made).
    abstain : bool or float, optional
        Turn doubtful calls into ``undecided`` (with :attr:`Prediction.abstain_reason`):
        unfamiliar nuclei, and calls whose top probability is below ``abstain`` (True: 0.75).
        Default: every call is made.

    Raises
    ------
    ainu_engine.errors.InputError
        The model is not an SMLM classifier (a widefield classifier or a generator).

    Examples
    --------
    The bundled example model (trained on simulated nuclei) on a bundled nucleus:

    >>> from ainu_engine import Classifier
    >>> from ainu_engine.io import read
    >>> model = "examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
    >>> kw = {"backend": "onnxruntime", "device": "cpu", "render_device": "cpu"}
    >>> with Classifier.load(model, **kw) as clf:
    ...     p = clf.classify(read("examples/screen/slide1/somatic_0000.bin"))
    >>> p.label, sorted(p.probabilities), p.qc
    ('somatic', ['hiPSC', 'somatic'], [])
    """

    kind = "classifier"

    def __init__(
        self,
        backend,
        *,
        render_device: str = "auto",
        channel_map: Mapping | None = None,
        file_channel_maps: Mapping[str, Mapping] | None = None,
        load: bool = True,
        abstain: bool | float | None = None,
    ) -> None:
        # load=False: preparing nuclei only (a distributed screen's render tasks); the backend
        # loads where the calls are made
        super().__init__(backend, load=load)
        self.info: ModelInfo
        self.render_device = render_device
        self.channel_map = dict(channel_map) if channel_map else None
        self.file_channel_maps = {str(k): dict(v) for k, v in (file_channel_maps or {}).items()}
        self._per_path: dict[str, Classifier] = {}
        self.temperature = temperature_of(self.info)
        from .ood import OodReference

        #: the out-of-distribution reference (None: a model from before it)
        self.ood = OodReference.from_training_stats(self.info.training_stats)
        self.abstain_below = _abstain_level(abstain, self.info.classes)
        from .render import patch_mode

        self.patch_size, self.min_occupied = patch_mode(self.info.preprocessing)

    @classmethod
    def load(
        cls,
        model: str | os.PathLike,
        backend: str = "auto",
        *,
        device: str = "auto",
        render_device: str = "auto",
        channel_map: Mapping | None = None,
        file_channel_maps: Mapping[str, Mapping] | None = None,
        abstain: bool | float | None = None,
        **options,
    ) -> Classifier:
        """Load ``model`` (.onnx, or a .pt checkpoint for torch) on ``backend`` (see
        :func:`ainu_engine.backends.create_backend`). ``channel_map`` (model channel -> file
        channel, by name or id) is for files whose channels are named otherwise than the model's
        (see :func:`ainu_engine.render.match_channels`)."""
        from .backends import create_backend

        return cls(
            create_backend(model, backend, device=device, **options),
            render_device=render_device,
            channel_map=channel_map,
            file_channel_maps=file_channel_maps,
            abstain=abstain,
        )

    def with_abstention(self, abstain: bool | float | None) -> Classifier:
        """This classifier abstaining as ``abstain`` says (see the class; a shallow copy sharing
        the backend)."""
        import copy

        other = copy.copy(self)
        other.abstain_below = _abstain_level(abstain, self.info.classes)
        other._per_path = {}
        return other

    def with_channel_map(self, channel_map: Mapping | None) -> Classifier:
        """This classifier with another ``channel_map`` (a shallow copy sharing the backend: for a
        request or a session whose files name their channels otherwise); itself when None."""
        if not channel_map:
            return self
        import copy

        other = copy.copy(self)
        other.channel_map = dict(channel_map)
        return other

    def for_path(self, path: str | os.PathLike) -> Classifier:
        """The classifier for one file: with the file's own channel map (a manifest row's, only
        the model's channels of it) where :attr:`file_channel_maps` has one, else itself.

        Parameters
        ----------
        path : str or os.PathLike
            The file.

        Returns
        -------
        Classifier

        Raises
        ------
        ainu_engine.errors.ChannelError
            The file's map does not name every model channel.
        """
        if not self.file_channel_maps:
            return self
        given = os.fspath(path)  # every nucleus of a file asks: resolve the path once
        if given not in self._per_path:
            row = self.file_channel_maps.get(str(Path(path).resolve()))
            other = self
            if row is not None:
                from .render import row_channel_map

                other = self.with_channel_map(
                    row_channel_map(row, self.info.channel_names, path=path)
                )
                other.file_channel_maps, other._per_path = {}, {}
            self._per_path[given] = other
        return self._per_path[given]

    def render_spec_for(self, locs: Localizations, *, option: str = "--channel-map"):
        """The model's RenderSpec with the file channels of ``locs`` that feed the model's
        channels; a :class:`~ainu_engine.errors.ChannelError` when they do not match."""
        from .render import match_channels

        return match_channels(
            locs, self.info.render_spec, self.info.channel_names, self.channel_map, option=option
        )

    # -- preprocessing ---------------------------------------------------------------------------
    def prepare(self, locs: Localizations, *, roi_nm=None, at_edge: bool = False) -> Prepared:
        """Render a nucleus as the model was trained (:func:`ainu_engine.render.model_input`),
        and count the nuclei that detection finds in it (QC: a field of cells)."""
        from .render import model_input

        spec = self.render_spec_for(locs)
        m = model_input(locs, spec, self.info.preprocessing, device=self.render_device,
                        roi_nm=roi_nm)  # fmt: skip
        seen = m.locs  # after the model's recorded preprocessing: what the model sees
        p = self._prepared(m, seen.x_nm, seen.y_nm, at_edge)
        p.preprocess = m.preprocess
        if self.ood is not None and self.ood.inputs is not None:
            from .ood import model_statistics

            p.input_statistics = model_statistics(seen, spec, area_um2=m.area_um2)
        return p

    def prepare_rendered(self, rendered, spec, x, y, *, at_edge: bool = False,
                         seen: Localizations | None = None, grid=None) -> Prepared:  # fmt: skip
        """A nucleus already rendered (with :func:`ainu_engine.render.render_spec_for` of
        ``spec``, the model's RenderSpec with the file's channels) made ready for the model, like
        :meth:`prepare`; ``x``, ``y`` are its rendered localizations (for the field QC), ``seen``
        those localizations with their other columns (the input statistics of the
        out-of-distribution score); ``grid``, a :class:`~ainu_engine.nuclei.DensityGrid` of
        ``x``, ``y`` kept as they were added, makes the field QC cost O(cells) instead of
        O(localizations) (the same count). Live sessions render incrementally and call this."""
        from .render import model_input_from

        m = model_input_from(rendered, spec, self.info.preprocessing)
        p = self._prepared(m, x, y, at_edge, grid)
        if seen is not None and self.ood is not None and self.ood.inputs is not None:
            from .ood import nucleus_statistics

            p.input_statistics = nucleus_statistics(seen, area_um2=m.area_um2)
        return p

    def _prepared(self, m, x, y, at_edge: bool, grid=None) -> Prepared:
        from .nuclei import DensityGrid, count_nuclei, detection_limits

        lo, hi = detection_limits(self.info.training_stats)
        grid = grid if grid is not None else DensityGrid.of(x, y)
        n_parts = count_nuclei(grid, lambda: (x, y), min_area_um2=lo, max_area_um2=hi)
        return Prepared(
            m.items, m.n_localizations, m.area_um2, at_edge, m.seconds, m.rendered, n_parts
        )

    def _image_item(self, image: np.ndarray) -> Prepared:
        img = np.asarray(image, np.float32)
        if img.ndim == 2:
            img = img[None]
        want = (self.info.n_channels, self.info.input_size, self.info.input_size)
        if img.shape != want:
            raise InputError(f"image is {img.shape}; the model takes {want}")
        return Prepared(img[None], [], None)

    # -- calls -------------------------------------------------------------------------------------
    def temperature_at(self, fraction: float | None) -> float:
        """The temperature of the probabilities of a nucleus imaged to ``fraction`` of a full
        acquisition (the model's calibration on partial acquisitions, interpolated); the
        model's temperature where it has none or ``fraction`` is None."""
        if fraction is None:
            return self.temperature
        from .model import at_fraction, partial_calibration

        t = at_fraction(partial_calibration(self.info), "temperature", fraction)
        return self.temperature if t is None or not 0.01 <= t <= 100 else t

    def predict_prepared(self, prepared: Sequence[Prepared], *,
                         fraction: float | None = None) -> list[Prediction]:  # fmt: skip
        """Calls for prepared nuclei, inferring all their items in the backend's batches;
        ``fraction`` (live sessions: the share of a full acquisition imaged so far) picks the
        temperature calibrated for partial acquisitions (:meth:`temperature_at`)."""
        if not prepared:
            return []
        items = np.concatenate([p.items for p in prepared])
        emb = None
        if self.ood is not None and self.ood.needs_embedding:
            logits, emb = self.infer_batched_with_embedding(items)
        else:
            logits = self.infer_batched(items)
        prob = softmax(np.asarray(logits, np.float64) / self.temperature_at(fraction), axis=1)
        out, start = [], 0
        for p in prepared:
            n = len(p.items)
            pp = prob[start : start + n]
            e = None if emb is None else emb[start : start + n]
            start += n
            # patch-mode models: the training vote, also for a nucleus with a single patch
            score, undecided = patch_vote(pp) if self.patch_size else (pp[0], False)
            ood = self.ood.score(p.input_statistics, e) if self.ood is not None else None
            qc = self.qc(p, undecided)
            if ood is not None and ood.unfamiliar:
                qc.insert(len(qc) - int(undecided), "unfamiliar")
            pred = Prediction(
                self.info.classes[int(np.argmax(score))],
                {c: float(v) for c, v in zip(self.info.classes, score, strict=True)},
                qc, p.n_localizations, p.area_um2, n, undecided,
                getattr(p.rendered, "pixel_nm", None),
                None if ood is None or not np.isfinite(ood.score) else round(ood.score, 4),
                None if ood is None else ood.reason, None,
                *_resolution(p.preprocess),
            )  # fmt: skip
            out.append(abstain(pred, self.abstain_below))
        return out

    def classify(self, locs_or_image, *, roi_nm=None) -> Prediction:
        """Call one nucleus (its :class:`~ainu_engine.io.Localizations`, or an already rendered
        image)."""
        return self.classify_batch([locs_or_image], roi_nm=[roi_nm])[0]

    def classify_batch(
        self, batch: Sequence, *, roi_nm: Sequence | None = None
    ) -> list[Prediction]:
        """Call several nuclei at once (batched inference; same results as one by one)."""
        rois = list(roi_nm) if roi_nm is not None else [None] * len(batch)
        prepared = [
            self.prepare(b, roi_nm=r) if isinstance(b, Localizations) else self._image_item(b)
            for b, r in zip(batch, rois, strict=True)
        ]
        return self.predict_prepared(prepared)

    def qc(self, p: Prepared, undecided: bool = False) -> list[str]:
        """QC flags of a prepared nucleus against the model's training statistics."""
        flags = []
        ts = self.info.training_stats or {}
        per_channel = ts.get("localizations_per_channel") or []
        if p.n_localizations:
            if per_channel:
                if any(n < s["min"] for n, s in zip(p.n_localizations, per_channel, strict=False)):
                    flags.append("few_localizations")
            elif sum(p.n_localizations) < MIN_LOCALIZATIONS:
                flags.append("few_localizations")
        if p.area_um2 and "density_per_um2" in ts:
            d = sum(p.n_localizations) / p.area_um2
            if not ts["density_per_um2"]["min"] <= d <= ts["density_per_um2"]["max"]:
                flags.append("density_out_of_range")
        if (
            p.area_um2
            and "area_um2" in ts
            and not ts["area_um2"]["min"] <= p.area_um2 <= ts["area_um2"]["max"]
        ):
            flags.append("area_out_of_range")
        if p.at_edge:
            flags.append("cut_by_edge")
        if p.rendered is not None and getattr(p.rendered, "warnings", None):
            flags.append("units_suspect")
        if looks_like_field(p, ts):
            flags.append("looks_like_field")
        flags += _preprocess_flags(p.preprocess, ts.get("resolution"))
        if undecided:
            flags.append("undecided")
        return flags




def _resolution(report: dict) -> tuple[float | None, float | None]:
    r = report.get("resolution") or {}
    return (_finite_or_none(r.get("nena_nm")), _finite_or_none(r.get("frc_nm")))


#: A nucleus whose NeNA or FRC exceeds the worst training nucleus's by this factor is flagged.
POOR_RESOLUTION_FACTOR = 1.25


def _preprocess_flags(report: dict, training: dict | None) -> list[str]:
    """QC flags of the model's recorded preprocessing: drift it could not correct, and a
    resolution much worse than the training nuclei's."""
    flags = ["drift_uncorrected"] if report.get("drift_uncorrected") else []
    got = report.get("resolution") or {}
    for key in ("nena_nm", "frc_nm"):
        worst = ((training or {}).get(key) or {}).get("max")
        v = got.get(key)
        if worst and v is not None and v > POOR_RESOLUTION_FACTOR * worst:
            flags.append("poor_resolution")
            break
    return flags


def abstain(pred: Prediction, below: float | None) -> Prediction:
    """``pred`` made ``undecided`` with the reason (:attr:`Prediction.abstain_reason`) where
    the nucleus is unfamiliar or the call's top probability is below ``below``; itself where
    neither holds or ``below`` is None (abstention off).

    Parameters
    ----------
    pred : Prediction
        A call.
    below : float or None
        The abstention level.

    Returns
    -------
    Prediction

    Examples
    --------
    >>> p = Prediction("hiPSC", {"hiPSC": 0.6, "somatic": 0.4})
    >>> q = abstain(p, 0.75)
    >>> q.label, q.abstain_reason
    ('undecided', 'low confidence: p(hiPSC) 0.60 < 0.75')
    """
    if below is None or pred.label == UNDECIDED:
        return pred
    top = max(pred.probabilities.values())
    if "unfamiliar" in pred.qc:
        reason = f"unfamiliar: {pred.ood_reason}"
    elif top < below:
        reason = f"low confidence: p({pred.label}) {top:.2f} < {below:.2f}"
    else:
        return pred
    import dataclasses

    qc = pred.qc if "undecided" in pred.qc else [*pred.qc, "undecided"]
    return dataclasses.replace(pred, label=UNDECIDED, undecided=True, qc=qc,
                               abstain_reason=reason)  # fmt: skip


def _abstain_level(abstain, classes) -> float | None:
    """The top probability below which calls are undecided (None: abstention off)."""
    if abstain is None or abstain is False:
        return None
    if UNDECIDED in classes:
        raise InputError(f"a class of the model is named {UNDECIDED!r}: abstention cannot mark "
                         "calls with it")  # fmt: skip
    level = ABSTAIN_BELOW if abstain is True else float(abstain)
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"abstain must be True or a probability in [0, 1], got {abstain!r}")
    return level
