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

__all__ = ["Classifier", "Prediction", "Prepared"]

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
        cells, for ``--nuclei detect``) and ``undecided`` (patch mode: no class has more than
        half of the patches).
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
        )  # fmt: skip


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
        )

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

        m = model_input(
            locs,
            self.render_spec_for(locs),
            self.info.preprocessing,
            device=self.render_device,
            roi_nm=roi_nm,
        )
        return self._prepared(m, locs.x_nm, locs.y_nm, at_edge)

    def prepare_rendered(self, rendered, spec, x, y, *, at_edge: bool = False) -> Prepared:
        """A nucleus already rendered (with :func:`ainu_engine.render.render_spec_for` of
        ``spec``, the model's RenderSpec with the file's channels) made ready for the model, like
        :meth:`prepare`; ``x``, ``y`` are its rendered localizations (for the field QC). Live
        sessions render incrementally and call this."""
        from .render import model_input_from

        return self._prepared(
            model_input_from(rendered, spec, self.info.preprocessing), x, y, at_edge
        )

    def _prepared(self, m, x, y, at_edge: bool) -> Prepared:
        from .nuclei import detect_nuclei, detection_limits

        lo, hi = detection_limits(self.info.training_stats)
        n_parts = len(detect_nuclei(x, y, min_area_um2=lo, max_area_um2=hi)[1]) if len(x) else 0
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
    def predict_prepared(self, prepared: Sequence[Prepared]) -> list[Prediction]:
        """Calls for prepared nuclei, inferring all their items in the backend's batches."""
        if not prepared:
            return []
        logits = self.infer_batched(np.concatenate([p.items for p in prepared]))
        prob = softmax(np.asarray(logits, np.float64) / self.temperature, axis=1)
        out, start = [], 0
        for p in prepared:
            n = len(p.items)
            pp = prob[start : start + n]
            start += n
            # patch-mode models: the training vote, also for a nucleus with a single patch
            score, undecided = patch_vote(pp) if self.patch_size else (pp[0], False)
            out.append(
                Prediction(
                    self.info.classes[int(np.argmax(score))],
                    {c: float(v) for c, v in zip(self.info.classes, score, strict=True)},
                    self.qc(p, undecided),
                    p.n_localizations,
                    p.area_um2,
                    n,
                    undecided,
                    getattr(p.rendered, "pixel_nm", None),
                )
            )
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
        if undecided:
            flags.append("undecided")
        return flags


