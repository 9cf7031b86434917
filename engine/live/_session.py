"""A live nucleus: localizations added while it is imaged, an exact running render, the running
call with how firm it is, and a rule for when to stop imaging it."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError
from ..io import Localizations, Metadata
from ..render import AppendBuffer, RunningRender

__all__ = ["LiveNucleus", "LiveCall", "StopRule", "StopDecision", "AddReport", "SessionClosed"]


class SessionClosed(RuntimeError):
    """A live session was used after :meth:`LiveNucleus.close`."""


@dataclass(frozen=True)
class StopRule:
    """When imaging a nucleus longer would not change its call.

    Stop when at least ``min_localizations`` have been added and each of the last ``m`` calls
    gave the same class with a probability of at least ``p``; or, whatever the calls, once the
    acquisition reaches ``max_frames`` frames (None: no limit).

    Attributes
    ----------
    p : float, default 0.95
        The probability each of the last ``m`` calls needs, in (0, 1].
    m : int, default 3
        Calls that must agree.
    min_localizations : int, default 5000
        Localizations before any stop.
    max_frames : int or None
        Stop at this frame whatever the calls.
    agree : float or None
        Also require that, at the share of an acquisition seen so far, the model's calls on its
        held-out validation nuclei equalled their whole-acquisition call at least this often
        (the model's calibration on partial acquisitions; ignored, and said so, for a model
        without it).

    Examples
    --------
    >>> StopRule.parse("p=0.9,m=4,min=2000")
    StopRule(p=0.9, m=4, min_localizations=2000, max_frames=None, agree=None)
    """

    p: float = 0.95
    m: int = 3
    min_localizations: int = 5000
    max_frames: int | None = None
    agree: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.p <= 1.0:
            raise ValueError(f"p must lie in (0, 1], got {self.p!r}")
        if int(self.m) < 1:
            raise ValueError(f"m must be at least 1, got {self.m!r}")
        if int(self.min_localizations) < 0:
            raise ValueError(f"min must be >= 0, got {self.min_localizations!r}")
        if self.max_frames is not None and int(self.max_frames) < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames!r}")
        if self.agree is not None and not 0.0 < self.agree <= 1.0:
            raise ValueError(f"agree must lie in (0, 1], got {self.agree!r}")

    @classmethod
    def parse(cls, text: str) -> StopRule:
        """``"p=0.95,m=3,min=5000,max_frames=40000"`` (any subset; the rest are the defaults)."""
        names = {"p": "p", "m": "m", "min": "min_localizations",
                 "min_localizations": "min_localizations", "max_frames": "max_frames",
                 "max": "max_frames", "agree": "agree"}  # fmt: skip
        kw: dict = {}
        for item in (t.strip() for t in text.split(",") if t.strip()):
            key, sep, value = item.partition("=")
            if not sep or key.strip() not in names:
                raise ValueError(
                    f"expected KEY=VALUE with KEY among p, m, min, max_frames, agree; got {item!r}"
                )
            name = names[key.strip()]
            try:
                kw[name] = float(value) if name in ("p", "agree") else int(value)
            except ValueError as err:
                raise ValueError(f"{key.strip()}: not a number: {value!r}") from err
        return cls(**kw)

    def decide(self, history: list[tuple[str, float]], n_localizations: int, frames: int | None,
               *, agreement: float | None = None):  # fmt: skip
        """A :class:`StopDecision` from the calls so far (label, its probability), oldest first;
        ``agreement``: the model's held-out agreement with the whole-acquisition call at the
        share seen so far (for ``agree``)."""
        if self.max_frames is not None and frames is not None and frames >= self.max_frames:
            return StopDecision(True, f"reached max_frames={self.max_frames} ({frames} frames)")
        if n_localizations < self.min_localizations:
            return StopDecision(
                False, f"{n_localizations} localizations, fewer than min={self.min_localizations}"
            )
        last = history[-self.m :]
        if len(last) < self.m:
            return StopDecision(False, f"{len(last)} calls so far, the rule needs m={self.m}")
        labels = {lab for lab, _ in last}
        if len(labels) > 1:
            return StopDecision(
                False, f"the last {self.m} calls disagree ({', '.join(sorted(labels))})"
            )
        low = min(p for _, p in last)
        if low < self.p:
            return StopDecision(
                False, f"{last[-1][0]} at p={low:.3f} < {self.p:g} among the last {self.m}"
            )
        note = ""
        if self.agree is not None:
            if agreement is None:
                note = " (agree ignored: the model has no calibration on partial acquisitions)"
            elif agreement < self.agree:
                return StopDecision(
                    False, "at this share of an acquisition the model's held-out calls equalled "
                    f"the whole acquisition's {agreement:.0%} of the time, below "
                    f"agree={self.agree:g}"
                )  # fmt: skip
        return StopDecision(
            True, f"{last[-1][0]} with p >= {self.p:g} in the last {self.m} calls, "
            f"{n_localizations} localizations{note}"
        )  # fmt: skip


@dataclass(frozen=True)
class StopDecision:
    """Whether to stop imaging a nucleus, and why.

    Attributes
    ----------
    stop : bool
        Stop now.
    reason : str
        The rule's words (e.g. ``3 calls of hiPSC at p >= 0.95``).
    """

    stop: bool
    reason: str


@dataclass(frozen=True)
class AddReport:
    """What one :meth:`LiveNucleus.add` did with its localizations.

    Attributes
    ----------
    added : int
        Localizations added to the render.
    not_finite : int
        Rejected: NaN or infinite x, y or precision.
    outside : int
        Rejected: out of the nucleus region.
    unknown_channel : int
        Rejected: a channel the model does not take.
    filtered : int
        Removed by the filters of the model's recorded preprocessing (precision, photons...).
    """

    added: int
    not_finite: int = 0
    outside: int = 0
    unknown_channel: int = 0
    filtered: int = 0

    @property
    def rejected(self) -> int:
        """Every localization of the batch not added."""
        return self.not_finite + self.outside + self.unknown_channel + self.filtered


@dataclass
class LiveCall:
    """The running call of a live nucleus.

    ``firmness`` is what the recent calls say about this one: ``p`` (the called class's
    probability now), ``agree`` (the fraction of the last ``window`` calls, this one included,
    that gave the same class), ``trajectory`` (the called class's probability in those calls,
    oldest first) and ``delta`` (how much it moved over them). They describe stability, not
    certainty: the probabilities are the model's softmax, a calibrated posterior only for a
    calibrated model (see docs/live.md).

    Attributes
    ----------
    label : str
        The called class.
    probabilities : dict of str to float
        Each class's probability.
    n_localizations : list of int
        Localizations per model channel in the render.
    qc : list of str
        The QC flags of the call (:class:`ainu_engine.Prediction`).
    frame : int or None
        The last frame seen.
    n_updates : int
        Calls made so far.
    firmness : dict
        See above.
    stop : StopDecision
        The stop rule's advice.
    rejected : dict of str to int
        Localizations rejected so far, by reason.
    ood_score, ood_reason, abstain_reason
        As in :class:`ainu_engine.Prediction`: how unlike the training nuclei the nucleus is so
        far (QC flag ``unfamiliar`` above 1; the stop rule never stops on it), and why the call
        is ``undecided`` where the classifier abstains.
    """

    label: str
    probabilities: dict[str, float]
    n_localizations: list[int]
    qc: list[str]
    frame: int | None
    n_updates: int
    firmness: dict
    stop: StopDecision
    rejected: dict[str, int] = field(default_factory=dict)
    ood_score: float | None = None
    ood_reason: str | None = None
    abstain_reason: str | None = None

    def to_dict(self) -> dict:
        """The one wire format of a running call (JSON types): the service's answer, the
        client's reading (:meth:`from_dict`), replays' JSON Lines."""
        return {
            "frame": self.frame,
            "n_localizations": int(sum(self.n_localizations)),
            "n_localizations_per_channel": list(self.n_localizations),
            "label": self.label,
            "probabilities": self.probabilities,
            "qc": list(self.qc),
            "n_updates": self.n_updates,
            "firmness": self.firmness,
            "stop": self.stop.stop,
            "stop_reason": self.stop.reason,
            "rejected": dict(self.rejected),
            "ood_score": self.ood_score,
            "ood_reason": self.ood_reason,
            "abstain_reason": self.abstain_reason,
        }

    @classmethod
    def from_dict(cls, d: dict) -> LiveCall:
        """The running call of :meth:`to_dict`'s dict.

        Raises
        ------
        KeyError
            A key of the wire format is missing.
        """
        return cls(
            d["label"], dict(d["probabilities"]), list(d["n_localizations_per_channel"]),
            list(d["qc"]), d["frame"], d["n_updates"], d["firmness"],
            StopDecision(d["stop"], d["stop_reason"]), dict(d.get("rejected") or {}),
            d.get("ood_score"), d.get("ood_reason"), d.get("abstain_reason"),
        )  # fmt: skip


class LiveNucleus:
    """One nucleus being imaged: add localizations as they come, ask for the call at any time.

    Parameters
    ----------
    classifier : Classifier or path
        An exported model already loaded (:class:`ainu_engine.Classifier`), or its path (then the
        session loads it and closes it with itself).
    region_nm : array (K, 2) or (x0, y0, x1, y1), optional
        The nucleus outline (a polygon in nm, e.g. from a widefield pre-scan or a Fiji ROI) or
        box. Localizations outside are counted and rejected; the render and the mask are those
        of ``render(..., roi_nm=region)``. Without it the region grows with the data.
    channel_names : mapping, optional
        File channel id -> name of the data that will come (e.g. ``{1: "647"}``), so the model's
        channels are matched by name (:func:`ainu_engine.render.match_channels`).
    channel_map : mapping, optional
        Model channel -> file channel, where the names differ.
    channels : sequence of int, optional
        Every file channel id the acquisition will hold, those not imaged yet included (an
        N-STORM acquisition images its channels one after the other): the model's channels are
        matched against all of them at the first add, not only against those of the first batch.
    stop_rule : StopRule, optional
    device : {"cpu", "cuda"}
        Where the running render accumulates.
    window : int, optional
        Calls the firmness looks back over (default: the stop rule's ``m``, at least 3).
    at_edge : bool
        The nucleus is cut by the edge of the field (its calls get the QC flag ``cut_by_edge``).

    Notes
    -----
    Adding k localizations costs O(k) — the KDE of each into a running raw render
    (:class:`ainu_engine.render.RunningRender`) on a pixel lattice anchored at 0 nm, which grows
    by copying without resampling. :meth:`render` then cuts the window a batch
    :func:`ainu_engine.render.render` of everything added would use, and recomputes the mask,
    resize, pad and scaling (milliseconds; the mask reads the localizations, O(n) with a small
    constant). The result equals the batch render up to float32 summation order. All methods are
    thread-safe: calls are serialised by a lock.

    A model's recorded preprocessing (:mod:`ainu_engine.preprocess`) is applied as screen
    applies it: filters to each batch as it comes (O(k)); drift correction, linking and the
    resolution estimates need the whole table, so with them each :meth:`call` preprocesses and
    renders everything added so far (O(n) per call).

    Examples
    --------
    >>> from ainu_engine.io import read
    >>> from ainu_engine.live import LiveNucleus
    >>> locs = read("examples/screen/slide1/somatic_0000.bin")
    >>> model = "examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
    >>> with LiveNucleus(model) as live:
    ...     for start in range(0, locs.n, 2000):         # batches as they are localized
    ...         _ = live.add(locs[start : start + 2000])
    ...     call = live.call()
    >>> call.label in ("hiPSC", "somatic"), call.n_updates
    (True, 1)
    """

    def __init__(
        self,
        classifier,
        *,
        region_nm=None,
        channel_names: Mapping[int, str] | None = None,
        channel_map: Mapping[str, str] | None = None,
        stop_rule: StopRule | None = None,
        device: str = "cpu",
        window: int | None = None,
        at_edge: bool = False,
        channels: Sequence[int] | None = None,
    ) -> None:
        from .._classifier import Classifier

        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        self._owns = isinstance(classifier, (str, os.PathLike))
        self.clf = (
            Classifier.load(classifier, device="cpu", render_device="cpu", channel_map=channel_map)
            if self._owns
            else classifier
        )
        if not self._owns:
            self.clf = self.clf.with_channel_map(channel_map)
        self.stop_rule = stop_rule or StopRule()
        self.window = int(window or max(3, self.stop_rule.m))
        self.device = device
        self.at_edge = bool(at_edge)
        self.channel_names = {int(k): str(v) for k, v in (channel_names or {}).items()}
        self.channels = sorted({int(c) for c in channels}) if channels is not None else None
        self._region = _region(region_nm)
        self._lock = threading.RLock()
        self._closed = False
        self._spec = None  # the model's RenderSpec with the data's channel ids, at the first add
        self._lut: dict[int, int] | None = None
        self._running: RunningRender | None = None  # at the first add, on the model's spec
        self._frames = (None, None)  # (first, last) frame seen
        self._max_frame: int | None = None
        self._rejected = {"not_finite": 0, "outside": 0, "unknown_channel": 0}
        from ..preprocess import Preprocess

        # the model's recorded preprocessing: filters per batch; the rest on the whole table
        self._pre = Preprocess.of_model(self.clf.info.preprocessing)
        if self._pre is not None:
            self._rejected["filtered"] = 0
        self._raw: _Columns | None = (
            _Columns() if self._pre is not None and not self._pre.per_localization else None
        )
        self._history: list[tuple[str, dict]] = []  # (label, probabilities) of every call
        self._calls = 0
        # the added localizations' columns, for the input statistics of the OOD score
        ood = getattr(self.clf, "ood", None)
        self._seen: _Columns | None = _Columns() if ood is not None and ood.inputs else None
        # the rendered localizations' counts on the nucleus-detection lattice: the field check
        # (looks_like_field) at each call from the grid, not from every localization again
        # (not with whole-table preprocessing, whose call detects on the preprocessed table)
        from ..nuclei import DensityGrid

        self._grid = DensityGrid() if self._raw is None else None
        self._unfamiliar: str | None = None  # the last call's ood_reason, when unfamiliar
        self._last_agreement: float | None = None  # held-out agreement at the last call's share

    # -- data in --------------------------------------------------------------------------------
    def add(
        self,
        locs: Localizations | None = None,
        *,
        x_nm=None,
        y_nm=None,
        channel=None,
        frame=None,
        precision_nm=None,
    ) -> AddReport:
        """Add a batch of localizations (any size, one frame's worth or more): a
        :class:`~ainu_engine.io.Localizations`, or arrays ``x_nm``, ``y_nm`` and optionally
        ``channel`` (file channel ids), ``frame``, ``precision_nm``. Frames may go backwards
        (they are only used for the frame count and the stop rule's ``max_frames``)."""
        batch = _as_localizations(
            locs, x_nm, y_nm, channel, frame, precision_nm, self.channel_names
        )
        with self._lock:
            self._check_open()
            if batch.n == 0:
                return AddReport(0)
            if self._spec is None:
                self._resolve_channels(batch)
            return self._add(batch)

    def _add(self, batch: Localizations) -> AddReport:
        from ..render import kde_sigma

        filtered = 0
        if self._pre is not None:
            batch, filtered = self._filtered(batch)
            if batch.n == 0:
                return AddReport(0, filtered=filtered)
        ok = np.isfinite(batch.x_nm) & np.isfinite(batch.y_nm)
        if self._spec.sigma_from_precision and batch.precision_nm is not None:
            ok &= np.isfinite(batch.precision_nm)
        not_finite = int(batch.n - np.count_nonzero(ok))
        inside = ok.copy()
        if self._region is not None:
            from ..nuclei import points_in_polygon

            inside[ok] = points_in_polygon(self._region, batch.x_nm[ok], batch.y_nm[ok])
        outside = int(np.count_nonzero(ok) - np.count_nonzero(inside))
        chan = self._image_channel(batch)
        keep = inside & (chan >= 0)
        unknown = int(np.count_nonzero(inside) - np.count_nonzero(keep))
        for key, v in (
            ("not_finite", not_finite),
            ("outside", outside),
            ("unknown_channel", unknown),
        ):
            self._rejected[key] += v
        self._note_frames(batch)
        if not keep.any():
            return AddReport(0, not_finite, outside, unknown, filtered)
        b = batch[keep]
        self._running.add(b.x_nm, b.y_nm, kde_sigma(b, self._spec), chan[keep])
        if self._grid is not None:
            self._grid.add(b.x_nm, b.y_nm)
        # the whole table (recorded preprocessing beyond filters: the call's input statistics
        # come from it too), else the columns of the input statistics only
        slim = Localizations(
            b.x_nm, b.y_nm, frame=b.frame, channel=b.channel, photons=b.photons,
            precision_nm=b.precision_nm, meta=b.meta,
        )  # fmt: skip
        if self._raw is not None:
            self._raw.append(slim)
        elif self._seen is not None:
            self._seen.append(slim)
        return AddReport(int(b.n), not_finite, outside, unknown, filtered)

    def _filtered(self, batch: Localizations) -> tuple[Localizations, int]:
        """The batch within the filters of the model's preprocessing, and how many it lost."""
        from ..preprocess import model_filters

        kept, removed = model_filters(batch, self._pre)
        lost = sum(removed.values())
        self._rejected["filtered"] += lost
        return kept, lost

    def _resolve_channels(self, batch: Localizations) -> None:
        """The model's RenderSpec with this data's channel ids (by name or id; a one-channel model
        is locked to the first channel seen, so that a second one is rejected, never merged)."""
        model = self.clf.info.render_spec
        probe = batch
        if self.channels and batch.channel is not None:  # every channel the acquisition holds
            ids = np.array(sorted(set(self.channels) | set(batch.channel_counts())), np.int32)
            probe = Localizations(np.zeros(len(ids)), np.zeros(len(ids)), channel=ids,
                                  meta=batch.meta)  # fmt: skip
        if model.channels is not None and not batch.meta.channel_names and not self.clf.channel_map:
            spec = model  # ids, and the data names none: channels appear as they are imaged
        else:
            spec = self.clf.render_spec_for(probe)
        ids = spec.channels
        if ids is None:
            seen = sorted(probe.channel_counts())
            ids = (seen[0],) if batch.channel is not None else (0,)
        self._spec = spec
        self._lut = {int(c): k for k, c in enumerate(ids)}
        self._running = RunningRender(spec, device=self.device, region_nm=self._region)

    def _image_channel(self, batch: Localizations) -> np.ndarray:
        if batch.channel is None:
            return np.full(batch.n, self._lut.get(0, -1) if len(self._lut) > 1 else 0, np.int32)
        out = np.full(batch.n, -1, np.int32)
        for cid, k in self._lut.items():
            out[batch.channel == cid] = k
        return out

    def _note_frames(self, batch: Localizations) -> None:
        if batch.frame is None or batch.n == 0:
            return
        lo, hi = int(batch.frame.min()), int(batch.frame.max())
        first = lo if self._frames[0] is None else min(self._frames[0], lo)
        self._frames = (first, hi)  # the last batch's latest frame: frames may go backwards
        self._max_frame = hi if self._max_frame is None else max(self._max_frame, hi)

    @property
    def n_localizations(self) -> int:
        """Localizations in the render so far."""
        return 0 if self._running is None else self._running.n_localizations

    @property
    def rejected(self) -> dict[str, int]:
        """Localizations rejected so far, by reason (see :class:`AddReport`)."""
        return dict(self._rejected)

    def localizations(self) -> tuple[np.ndarray, np.ndarray]:
        """x, y (nm, float32) of every localization in the render, in the order added."""
        with self._lock:
            if self._running is None:
                return np.zeros(0, np.float32), np.zeros(0, np.float32)
            return self._running.localizations()

    def render(self, spec=None):
        """The render of everything added so far, as :func:`ainu_engine.render.render` of all
        of it would give it (with ``spec``: another size/scaling of the same pixels; default the
        one the model takes)."""
        from ..render import render_spec_for

        with self._lock:
            self._check_open()
            if self.n_localizations == 0:
                raise InputError("no localizations in the live render yet")
            return self._running.render(
                spec or render_spec_for(self._spec, self.clf.info.preprocessing)
            )

    # -- the call -------------------------------------------------------------------------------
    def call(self) -> LiveCall:
        """The call on everything added so far, how firm it is, and the stop decision."""
        with self._lock:
            if self._raw is not None:
                prep = self._prepare_whole()
            else:
                r = self.render()
                x, y = self.localizations()
                prep = self.clf.prepare_rendered(r, self._spec, x, y, at_edge=self.at_edge,
                                                 seen=self._seen_so_far(),
                                                 grid=self._grid)  # fmt: skip
            fraction = self._fraction()
            pred = self.clf.predict_prepared([prep], fraction=fraction)[0]
            self._history.append((pred.label, dict(pred.probabilities)))
            self._unfamiliar = pred.ood_reason if "unfamiliar" in pred.qc else None
            self._calls += 1
            recent = self._history[-self.window :]
            # an undecided call (abstention) has no probability of its own: 0, never a stop
            traj = [probs.get(pred.label, 0.0) for _, probs in recent]
            firmness = {
                "p": float(pred.probabilities.get(pred.label, 0.0)),
                "agree": sum(lab == pred.label for lab, _ in recent) / len(recent),
                "window": len(recent),
                "trajectory": [round(float(v), 6) for v in traj],
                "delta": float(max(traj) - min(traj)),
                # the share of a typical full acquisition seen, and how often the model's calls
                # at that share equalled the call on the whole acquisition (validation nuclei)
                "fraction": None if fraction is None else round(fraction, 4),
                "agree_with_full": self._expected_agreement(fraction),
            }
            self._last_agreement = firmness["agree_with_full"]
            return LiveCall(
                pred.label, pred.probabilities, list(pred.n_localizations), pred.qc,
                self._frames[1], self._calls, firmness, self._decide(), self.rejected,
                pred.ood_score, pred.ood_reason, pred.abstain_reason,
            )  # fmt: skip

    def _prepare_whole(self):
        """Everything added so far, preprocessed as the model records (drift, linking,
        resolution: the whole table) and rendered as a batch."""
        from ..preprocess import apply_once
        from ..render import render, render_spec_for

        self._check_open()
        table = self._raw.table()
        if table is None:
            raise InputError("no localizations in the live render yet")
        locs, report = apply_once(table, self._pre)
        spec = render_spec_for(self._spec, self.clf.info.preprocessing)
        r = render(locs, spec, device=self.device, roi_nm=self._region)
        prep = self.clf.prepare_rendered(r, self._spec, locs.x_nm, locs.y_nm, at_edge=self.at_edge,
                                         seen=locs if self._seen is not None else None)  # fmt: skip
        prep.preprocess = report
        return prep

    def _fraction(self) -> float | None:
        """The localizations so far over the median of the training nuclei's (a full
        acquisition's), at most 1; None without that median."""
        ref = getattr(self.clf, "ood", None)
        q = (ref.inputs.quantiles.get("localizations") if ref is not None and ref.inputs else None)
        if not q or not q.get("p50"):
            return None
        return min(1.0, self.n_localizations / float(q["p50"]))

    def _expected_agreement(self, fraction: float | None) -> float | None:
        from ..model import at_fraction, partial_calibration

        if fraction is None:
            return None
        v = at_fraction(partial_calibration(self.clf.info), "agree_with_full", fraction)
        return None if v is None else round(v, 4)

    def _seen_so_far(self) -> Localizations | None:
        """The added localizations with the columns every batch had (the input statistics):
        views of the session's buffers, no copy."""
        return None if self._seen is None else self._seen.table()

    def should_stop(self) -> StopDecision:
        """Whether imaging this nucleus longer would not change its call (the stop rule on the
        calls made so far: call :meth:`call` after adding, then ask)."""
        with self._lock:
            self._check_open()
            return self._decide()

    def _decide(self) -> StopDecision:
        frames = None
        if self._frames[0] is not None:
            frames = self._max_frame - self._frames[0] + 1
        calls = [(lab, probs.get(lab, 0.0)) for lab, probs in self._history]
        decision = self.stop_rule.decide(calls, self.n_localizations, frames,
                                         agreement=self._last_agreement)  # fmt: skip
        if decision.stop and self._unfamiliar is not None and not decision.reason.startswith(
            "reached max_frames"
        ):
            return StopDecision(
                False, f"the nucleus is unfamiliar ({self._unfamiliar}): the stop rule never "
                "stops on a nucleus unlike the model's training nuclei"
            )  # fmt: skip
        return decision

    # -- lifetime -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosed("this live session is closed")

    def close(self) -> None:
        """Free the running render (and the model, if the session loaded it). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._running is not None:
                self._running.close()
            if self._owns:
                self.clf.close()

    def __enter__(self) -> LiveNucleus:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Columns:
    """The added localizations' columns in append buffers (amortised O(added); the table of
    all of them is a view, O(1)); a column some batch lacked is dropped, as a concatenation of
    the batches would drop it."""

    NAMES = ("x_nm", "y_nm", "frame", "channel", "photons", "precision_nm")

    def __init__(self) -> None:
        self.cols: dict[str, AppendBuffer] | None = None
        self.meta = None

    def append(self, b: Localizations) -> None:
        from ..io import CORE_COLUMNS

        if self.cols is None:
            self.meta = b.meta
            self.cols = {n: AppendBuffer(CORE_COLUMNS[n]) for n in self.NAMES
                         if getattr(b, n) is not None}  # fmt: skip
        for name in [n for n in self.cols if getattr(b, n) is None]:
            del self.cols[name]
        for name, buf in self.cols.items():
            buf.append(getattr(b, name))

    def table(self) -> Localizations | None:
        if not self.cols or self.cols["x_nm"].n == 0:
            return None
        v = {n: buf.view() for n, buf in self.cols.items()}
        return Localizations(v.pop("x_nm"), v.pop("y_nm"), meta=self.meta, **v)


def _region(region_nm):
    if region_nm is None:
        return None
    a = np.asarray(region_nm, np.float64)
    if a.shape == (4,):
        x0, y0, x1, y1 = a
        a = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    if a.ndim != 2 or a.shape[1] != 2 or len(a) < 3 or not np.isfinite(a).all():
        raise ValueError("region_nm must be a (K >= 3, 2) polygon or a box (x0, y0, x1, y1) in nm")
    return a


def _as_localizations(locs, x, y, channel, frame, precision, names) -> Localizations:
    if locs is not None:
        if x is not None or y is not None:
            raise ValueError("give a Localizations or x_nm/y_nm arrays, not both")
        if names and not locs.meta.channel_names:
            locs = Localizations(
                locs.x_nm, locs.y_nm, channel=locs.channel, frame=locs.frame,
                precision_nm=locs.precision_nm, meta=replace(locs.meta, channel_names=names),
            )  # fmt: skip
        return locs
    if x is None or y is None:
        raise ValueError("add() needs a Localizations or x_nm and y_nm")
    x = np.atleast_1d(np.asarray(x, np.float32))
    y = np.atleast_1d(np.asarray(y, np.float32))
    n = len(x)
    for name, v in (
        ("y_nm", y),
        ("channel", channel),
        ("frame", frame),
        ("precision_nm", precision),
    ):
        if v is not None and len(np.atleast_1d(v)) != n:
            raise ValueError(f"{name} has {len(np.atleast_1d(v))} values, x_nm {n}")
    return Localizations(
        x, y,
        channel=None if channel is None else np.atleast_1d(channel),
        frame=None if frame is None else np.atleast_1d(frame),
        precision_nm=None if precision is None else np.atleast_1d(precision),
        meta=Metadata(channel_names=names or {}),
    )  # fmt: skip
