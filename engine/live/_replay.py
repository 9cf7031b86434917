"""Replay a recorded acquisition in frame order as if it were live (``ainu-engine live``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import Localizations
from ._session import LiveCall, LiveNucleus, StopRule

__all__ = ["ReplayResult", "replay", "replay_file", "plot_trajectory", "plot_trajectory_for"]


@dataclass
class ReplayResult:
    """One nucleus replayed: every update, the call on the whole acquisition, and — with a
    stop rule — where it would have stopped.

    Attributes
    ----------
    source, nucleus_id : str
        The file and the nucleus.
    updates : list of dict
        ``LiveCall.to_dict()`` records with ``frames_used``.
    final : LiveCall
        The call on every localization.
    n_frames : int or None
        The acquisition's frames (None: the file has none).
    stop_update : dict or None
        The update where the rule stopped.
    classes : tuple of str
        The model's classes.
    """

    source: str
    nucleus_id: str
    updates: list[dict]
    final: LiveCall
    n_frames: int | None
    stop_update: dict | None = None
    classes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def stopped(self) -> bool:
        return self.stop_update is not None

    def fraction_at_stop(self) -> float | None:
        """Fraction of the acquisition's frames (or localizations, without frames) used when the
        rule stopped."""
        if self.stop_update is None:
            return None
        if self.n_frames:
            return float(self.stop_update["frames_used"]) / self.n_frames
        return self.stop_update["n_localizations"] / max(1, self.updates[-1]["n_localizations"])

    def summary(self) -> dict:
        final = self.final.to_dict()
        out = {
            "source": self.source,
            "nucleus_id": self.nucleus_id,
            "final": True,
            "n_frames": self.n_frames,
            "n_updates": len(self.updates),
            "label": final["label"],
            "probabilities": final["probabilities"],
            "n_localizations": final["n_localizations"],
            "qc": final["qc"],
            "rejected": final["rejected"],
        }
        if self.stop_update is not None:
            out |= {
                "stop_frame": self.stop_update["frame"],
                "stop_fraction": self.fraction_at_stop(),
                "label_at_stop": self.stop_update["label"],
                "same_call_at_stop": self.stop_update["label"] == final["label"],
                "stop_reason": self.stop_update["stop_reason"],
            }
        return out


def replay(
    locs: Localizations,
    classifier,
    *,
    frames_per_update: int = 1000,
    stop_rule: StopRule | None = None,
    region_nm=None,
    at_edge: bool = False,
    source: str = "",
    nucleus_id: str = "",
    on_update: Callable[[dict], None] | None = None,
    device: str = "cpu",
) -> ReplayResult:
    """Feed one nucleus' localizations to a :class:`LiveNucleus` in frame order,
    ``frames_per_update`` frames at a time, calling after each batch (a file without frames
    is fed in its row order, ``frames_per_update`` localizations at a time). The last update
    holds every localization: its call is the call on the whole file. Frames are 0-based.

    Parameters
    ----------
    locs : Localizations
        One nucleus.
    classifier : Classifier or path
        The model (:class:`LiveNucleus`).
    frames_per_update : int, default 1000
        Frames (or localizations) per update.
    stop_rule : StopRule, optional
        Where it would stop.
    region_nm : array, optional
        The nucleus outline.
    at_edge : bool
        The nucleus is cut by the field's edge.
    source, nucleus_id : str
        Named in the records.
    on_update : callable, optional
        Called with each update's record.
    device : {"cpu", "cuda"}
        Where the running render accumulates.

    Returns
    -------
    ReplayResult

    Raises
    ------
    ValueError
        ``frames_per_update`` below 1.
    """
    if frames_per_update < 1:
        raise ValueError(f"frames_per_update must be >= 1, got {frames_per_update!r}")
    if locs.frame is not None and locs.n:
        order = np.argsort(locs.frame, kind="stable")
        frame = locs.frame[order]
        f0, f1 = int(frame[0]), int(frame[-1])
        edges = np.arange(f0 + frames_per_update, f1 + frames_per_update + 1, frames_per_update)
        cuts = np.searchsorted(frame, edges, side="left")
        n_frames = f1 - f0 + 1
    else:
        order = np.arange(locs.n)
        cuts = np.arange(frames_per_update, locs.n + frames_per_update, frames_per_update)
        f0, n_frames = None, None
    cuts = np.unique(np.minimum(cuts, locs.n))
    ordered = locs[order]
    updates: list[dict] = []
    stop_update = None
    with LiveNucleus(
        classifier, region_nm=region_nm, channel_names=locs.meta.channel_names,
        stop_rule=stop_rule, device=device, at_edge=at_edge,
        channels=None if locs.channel is None else sorted(locs.channel_counts()),
    ) as live:  # fmt: skip
        start = 0
        for cut in cuts:
            if cut <= start:
                continue
            live.add(ordered[start:cut])
            start = int(cut)
            if live.n_localizations == 0:
                # nothing of the model's channels yet (e.g. N-STORM images its channels one
                # after the other): no call before the first of them
                continue
            call = live.call()
            rec = {"source": source, "nucleus_id": nucleus_id, **call.to_dict()}
            rec["frames_used"] = (int(call.frame) - f0 + 1) if f0 is not None else None
            updates.append(rec)
            if stop_rule is not None and stop_update is None and call.stop.stop:
                stop_update = rec
            if on_update is not None:
                on_update(rec)
        if not updates:
            raise InputError(
                f"{source}{' ' + nucleus_id if nucleus_id else ''}: no localization of the "
                "model's channels in the whole acquisition"
            )
        return ReplayResult(
            source, nucleus_id, updates, call, n_frames, stop_update, live.clf.info.classes
        )


def replay_file(
    path: str | os.PathLike,
    classifier,
    *,
    nuclei: str = "auto",
    read_options: Mapping | None = None,
    on_skip: Callable[[str, str], None] | None = None,
    **options,
) -> Iterator[ReplayResult]:
    """:func:`replay` for each nucleus of a file, split as ``screen`` splits it (an ROI is the
    nucleus' region; ``detect`` with the model's detection limits,
    :func:`ainu_engine.nuclei.detection_limits`), with the file's own channel map where the
    classifier has one (:meth:`~ainu_engine.Classifier.for_path`: a manifest row's).

    Parameters
    ----------
    path : str or os.PathLike
        A localization file.
    classifier : Classifier or path
        The model.
    nuclei : str
        How the file splits (:func:`ainu_engine.nuclei.split_nuclei`).
    read_options : mapping, optional
        Keywords of :func:`ainu_engine.io.read`.
    on_skip : callable, optional
        Called with (nucleus id, message) for a nucleus that cannot be replayed (no localization
        of the model's channels), which is then left out; without it, the error is raised.
    **options
        Keywords of :func:`replay`.

    Yields
    ------
    ReplayResult
    """
    from .._classifier import Classifier
    from ..io import read
    from ..nuclei import detection_limits, split_nuclei

    if not isinstance(classifier, Classifier):
        with Classifier.load(classifier, device="cpu", render_device="cpu") as clf:
            yield from replay_file(path, clf, nuclei=nuclei, read_options=read_options,
                                   on_skip=on_skip, **options)  # fmt: skip
        return
    opts = dict(read_options or {})
    cam = opts.get("camera_pixel_nm")
    cam = cam[0] if isinstance(cam, tuple) else cam
    locs = read(path, **opts)
    clf = classifier.for_path(path)
    clf.render_spec_for(locs)  # a channel mismatch is one error for the file
    limits = detection_limits(clf.info.training_stats)
    for n in split_nuclei(locs, mode=nuclei, camera_pixel_nm=cam, area_limits_um2=limits):
        try:
            res = replay(
                n.locs, clf, region_nm=n.roi_nm, at_edge=n.at_edge, source=str(path),
                nucleus_id=n.id, **options,
            )  # fmt: skip
        except InputError as err:
            if on_skip is None:
                raise
            on_skip(n.id, str(err))
            continue
        yield res


def plot_trajectory(result: ReplayResult, path: str | os.PathLike) -> Path:
    """A PNG of each class's probability against the frame (or the localizations, without
    frames), with the frame where the stop rule would have stopped.

    Parameters
    ----------
    result : ReplayResult
        A replayed nucleus.
    path : str or os.PathLike
        The PNG.

    Returns
    -------
    Path
    """
    from matplotlib.figure import Figure

    from ..io import atomic_path

    by_frame = result.n_frames is not None
    xs = [u["frame"] if by_frame else u["n_localizations"] for u in result.updates]
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    for c in result.classes:
        ax.plot(xs, [u["probabilities"][c] for u in result.updates], marker=".", label=c)
    if result.stop_update is not None:
        at = result.stop_update["frame"] if by_frame else result.stop_update["n_localizations"]
        ax.axvline(at, color="k", ls="--", lw=1, label=f"stop ({result.stop_update['label']})")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("frame (0-based)" if by_frame else "localizations added")
    ax.set_ylabel("probability")
    name = Path(result.source).name + (f" {result.nucleus_id}" if result.nucleus_id else "")
    ax.set_title(f"{name}: {result.final.label} on the whole acquisition", fontsize=9)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def plot_trajectory_for(result: ReplayResult, folder: str | os.PathLike) -> Path:
    """:func:`plot_trajectory` into ``folder``, named after the file and the nucleus (and a hash
    of the file's path, so that two files of one name do not share a plot).

    Parameters
    ----------
    result : ReplayResult
        A replayed nucleus.
    folder : str or os.PathLike
        The folder.

    Returns
    -------
    Path
    """
    import hashlib

    src = Path(result.source)
    tag = hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:6]
    name = f"{src.stem}{'_' + result.nucleus_id if result.nucleus_id else ''}-{tag}.png"
    return plot_trajectory(result, Path(folder) / name)
