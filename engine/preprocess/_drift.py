"""Drift correction by redundant cross-correlation (RCC; Wang, Schnitzbauer et al., Optics
Express 22, 15982, 2014), and drift traces as data (estimated, or read from a file)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import Localizations

#: Fewest localizations in one time segment for RCC (fewer: the field is too sparse).
MIN_PER_SEGMENT = 1000
#: Segments RCC aims for when ``segment_frames`` is not given (Wang et al. use ~10-20).
TARGET_SEGMENTS = 10
#: The largest correlation image side (px); a wider field is rendered with larger pixels.
MAX_GRID_PX = 2048
#: The band-pass's wide Gaussian, in units of the blur.
BAND_PX = 8.0
#: A pair's correlation peak must stand this many standard deviations over its window.
MIN_PEAK_Z = 5.0


class SparseFieldError(ValueError):
    """A field with too few localizations (or too little structure) for RCC drift correction."""


@dataclass(frozen=True)
class Drift:
    """A drift trace: the sample's apparent displacement at each frame, relative to the first
    segment's (RCC) or as a file gave it. A localization of frame ``f`` is corrected by
    subtracting ``(x_nm[f - first_frame], y_nm[f - first_frame])``.

    Attributes
    ----------
    first_frame : int
        The frame of the first entry.
    x_nm, y_nm : np.ndarray
        Drift per frame (float64, nm), one entry per frame from ``first_frame`` on.
    method : str
        ``"rcc"`` or ``"file"``.
    segments : dict
        RCC's time segments: ``start``, ``stop`` (frames), ``centre``, ``x_nm``, ``y_nm``
        (the solved shift of each) and ``n`` (localizations in each); empty for a file.
    details : dict
        RCC's figures: pixel size, pairs used of all, the residual rms, the weakest peak.
    """

    first_frame: int
    x_nm: np.ndarray
    y_nm: np.ndarray
    method: str = "rcc"
    segments: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    @property
    def last_frame(self) -> int:
        """The frame of the last entry."""
        return self.first_frame + len(self.x_nm) - 1

    def at(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The drift at ``frames`` (integers within the trace).

        Parameters
        ----------
        frames : np.ndarray

        Returns
        -------
        (np.ndarray, np.ndarray)

        Raises
        ------
        ValueError
            A frame outside the trace.
        """
        f = np.asarray(frames).astype(np.int64) - self.first_frame
        if len(f) and (f.min() < 0 or f.max() >= len(self.x_nm)):
            raise ValueError(
                f"the drift trace covers frames {self.first_frame}-{self.last_frame}; the table "
                f"has frames {int(f.min()) + self.first_frame}-{int(f.max()) + self.first_frame}"
            )
        return self.x_nm[f], self.y_nm[f]

    def summary(self) -> dict:
        """Plain data for a report: the frames, the largest excursion and RCC's figures.

        Returns
        -------
        dict
        """
        span = float(np.hypot(np.ptp(self.x_nm), np.ptp(self.y_nm))) if len(self.x_nm) else 0.0
        return {"method": self.method, "frames": [self.first_frame, self.last_frame],
                "span_nm": round(span, 2), **self.details}  # fmt: skip

    def write(self, path: str | os.PathLike) -> Path:
        """Write the trace as CSV (``frame,x_nm,y_nm``; read back by :meth:`read`).

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        Path
        """
        p = Path(path)
        frames = np.arange(self.first_frame, self.last_frame + 1)
        tmp = p.with_name(p.name + ".part")
        with open(tmp, "w", newline="") as fh:
            fh.write("frame,x_nm,y_nm\n")
            np.savetxt(fh, np.column_stack([frames, self.x_nm, self.y_nm]),
                       fmt=["%d", "%.3f", "%.3f"], delimiter=",")  # fmt: skip
        os.replace(tmp, p)
        return p

    @classmethod
    def read(cls, path: str | os.PathLike) -> Drift:
        """A trace from a CSV file with the columns ``frame``, ``x_nm``, ``y_nm`` (one row per
        frame, consecutive; as :meth:`write` writes, or from another program).

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        Drift

        Raises
        ------
        ainu_engine.errors.InputError
            Not such a file.
        """
        from ..errors import InputError

        p = Path(path)
        try:
            t = np.genfromtxt(p, delimiter=",", names=True, dtype=np.float64, ndmin=1)
            frames, x, y = (np.atleast_1d(t[c]) for c in ("frame", "x_nm", "y_nm"))
        except (OSError, ValueError) as err:
            raise InputError(f"not a drift trace (columns frame,x_nm,y_nm): {err}",
                             path=p) from None  # fmt: skip
        if not len(frames) or not np.all(np.isfinite(np.column_stack([frames, x, y]))):
            raise InputError("a drift trace with no rows or a non-finite value", path=p)
        if np.any(np.diff(frames) != 1):
            raise InputError("a drift trace needs one row per frame, consecutive", path=p)
        return cls(int(frames[0]), x, y, method="file", details={"file": str(p)})

    def plot(self, path: str | os.PathLike, *, title: str = "") -> Path:
        """Draw the trace (x and y against frame; RCC's segment estimates as points) to a PNG.

        Parameters
        ----------
        path : str or os.PathLike
        title : str

        Returns
        -------
        Path
        """
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 3.2), dpi=110)
        ax = fig.add_subplot(1, 1, 1)
        frames = np.arange(self.first_frame, self.last_frame + 1)
        for name, v, colour in (("x", self.x_nm, "tab:blue"), ("y", self.y_nm, "tab:orange")):
            ax.plot(frames, v, color=colour, lw=1.2, label=f"{name} drift")
            if self.segments:
                ax.plot(self.segments["centre"], self.segments[f"{name}_nm"], "o", ms=3,
                        color=colour)  # fmt: skip
        ax.set_xlabel("frame")
        ax.set_ylabel("drift (nm)")
        ax.legend(loc="best", fontsize=8, frameon=False)
        s = self.summary()
        extra = (f"; {s['pairs_used']}/{s['pairs']} pairs, residual {s['residual_rms_nm']:.1f} nm"
                 if self.method == "rcc" else "")  # fmt: skip
        ax.set_title((title + "\n" if title else "") + f"{self.method}{extra}", fontsize=9)
        fig.tight_layout()
        fig.savefig(path)
        return Path(path)


def _segments(frame: np.ndarray, segment_frames: int | None, min_per_segment: int):
    """Segment bounds [start, stop) in frames, and the segment of each localization. Without
    ``segment_frames``: the most segments (at most TARGET_SEGMENTS) of equal length whose
    fewest localizations reach ``min_per_segment`` (an acquisition's density varies)."""
    f0, f1 = int(frame.min()), int(frame.max()) + 1
    if segment_frames is not None:
        return _cut(frame, f0, f1, int(segment_frames))
    best = None
    for n_seg in range(max(2, min(TARGET_SEGMENTS, len(frame) // max(1, min_per_segment))), 1, -1):
        best = _cut(frame, f0, f1, max(1, math.ceil((f1 - f0) / n_seg)))
        if np.bincount(best[1], minlength=len(best[0]) - 1).min() >= min_per_segment:
            break
    return best


def _cut(frame: np.ndarray, f0: int, f1: int, length: int):
    starts = np.arange(f0, f1, length)
    if len(starts) > 1 and f1 - starts[-1] < length / 2:
        starts = starts[:-1]  # a short last piece joins the one before
    bounds = np.append(starts, f1)
    seg = np.searchsorted(bounds, frame, side="right") - 1
    return bounds, np.clip(seg, 0, len(starts) - 1)


def _grid(x, y, pixel_nm: float, max_drift_nm: float):
    """Pixel size (grown so the image is <= MAX_GRID_PX), origin, shape and window half-size."""
    ext = max(float(np.ptp(x)), float(np.ptp(y)), 1.0) + 2 * max_drift_nm
    pixel = max(pixel_nm, ext / MAX_GRID_PX)
    m = int(math.ceil(max_drift_nm / pixel)) + 2
    h = int(math.ceil(float(np.ptp(y)) / pixel)) + 2 * m + 1
    w = int(math.ceil(float(np.ptp(x)) / pixel)) + 2 * m + 1
    from scipy.fft import next_fast_len

    return (
        pixel,
        (float(x.min()) - m * pixel, float(y.min()) - m * pixel),
        (next_fast_len(h, real=True), next_fast_len(w, real=True)),
        m,
    )


def _peak(c: np.ndarray, m: int, r: int) -> tuple[float, float, float, bool]:
    """Sub-pixel peak (dy, dx in px) of a correlation window of half-size m, its z-score, and
    whether it lies inside the window (not within ``r`` of its edge). The position is the
    centroid of the peak's part above half its height within ``r`` pixels, re-centred once: a
    drift within a segment smears the peak into a plateau, where a three-point fit wanders."""
    iy, ix = np.unravel_index(int(np.argmax(c)), c.shape)
    base = float(np.median(c))
    z = float((c[iy, ix] - base) / (c.std() + 1e-30))
    if not (r <= iy < c.shape[0] - r and r <= ix < c.shape[1] - r):
        return float(iy - m), float(ix - m), z, False
    cy, cx = float(iy), float(ix)
    half = base + 0.5 * (float(c[iy, ix]) - base)
    for _ in range(2):
        y0, x0 = int(round(cy)), int(round(cx))
        y0, x0 = min(max(y0, r), c.shape[0] - r - 1), min(max(x0, r), c.shape[1] - r - 1)
        patch = np.clip(c[y0 - r : y0 + r + 1, x0 - r : x0 + r + 1] - half, 0, None)
        total = float(patch.sum())
        if total <= 0:
            break
        g = np.arange(-r, r + 1)
        cy = y0 + float((patch.sum(axis=1) * g).sum()) / total
        cx = x0 + float((patch.sum(axis=0) * g).sum()) / total
    return cy - m, cx - m, z, True


def _solve(pairs: np.ndarray, shifts: np.ndarray, n: int, max_residual_nm: float):
    """Least-squares drift of n segments (the first at 0) from pairwise shifts d_j - d_i, the
    worst pair dropped while its residual exceeds ``max_residual_nm`` and the rest still
    determine every segment. Returns (drift (n, 2), kept mask, residual rms)."""
    keep = np.ones(len(pairs), bool)
    a = _incidence(pairs, n)
    while True:
        d, *_ = np.linalg.lstsq(a[keep], shifts[keep], rcond=None)
        res = np.linalg.norm(a @ d - shifts, axis=1)
        res[~keep] = -1
        worst = int(np.argmax(res))
        if res[worst] <= max_residual_nm:
            break
        trial = keep.copy()
        trial[worst] = False
        if np.linalg.matrix_rank(a[trial]) < n - 1:
            break
        keep = trial
    rms = float(np.sqrt(np.mean(res[keep] ** 2))) if keep.any() else float("nan")
    return np.vstack([np.zeros(2), d]), keep, rms


def estimate_drift(
    locs: Localizations,
    *,
    segment_frames: int | None = None,
    pixel_nm: float = 20.0,
    blur_px: float = 1.0,
    max_drift_nm: float = 1000.0,
    max_residual_nm: float = 10.0,
    min_per_segment: int = MIN_PER_SEGMENT,
) -> Drift:
    """The drift of a field by redundant cross-correlation (RCC).

    The acquisition is cut into time segments; each is rendered (a histogram at ``pixel_nm``,
    blurred by ``blur_px``); every pair of segments is cross-correlated (FFT) and the shift of
    its peak found to a fraction of a pixel; the drift of each segment is the least-squares
    solution of all pairwise shifts (pairs whose residual exceeds ``max_residual_nm`` are
    dropped, worst first, while the rest determine every segment), and a cubic spline through
    the segment centres gives the drift at every frame. Channels are pooled (one sample).

    Parameters
    ----------
    locs : Localizations
        A field (or nucleus) with frames.
    segment_frames : int, optional
        Frames per segment; default: the acquisition in ~10 segments of at least
        ``min_per_segment`` localizations each.
    pixel_nm : float, default 20
        Pixel of the correlated images (grown for fields wider than 2048 pixels).
    blur_px : float, default 1
        Gaussian blur of the images (pixels).
    max_drift_nm : float, default 1000
        The largest shift between two segments looked for.
    max_residual_nm : float, default 10
        Pairs that disagree with the solution by more are dropped (see above).
    min_per_segment : int, default 1000
        Fewest localizations in a segment.

    Returns
    -------
    Drift

    Raises
    ------
    SparseFieldError
        Fewer than two segments of ``min_per_segment`` localizations, or correlation peaks
        too weak to locate (a field too sparse or without structure): never corrected silently.
    ValueError
        A table without frames, or a bad parameter.

    Notes
    -----
    The drift is relative to the first segment (an absolute offset cannot be known). 2-D only:
    ``z`` is left as it is. Channels imaged together (overlapping frames) are pooled; channels
    imaged one after the other (N-STORM's sequential acquisition: each channel its own frames)
    are corrected each on its own, relative to its own first segment (``details`` names them
    in ``sequential_channels``) — segments of two proteins are never correlated, and the
    registration between the channels is left as it was.

    Examples
    --------
    >>> from ainu_engine.io import read
    >>> locs = read("examples/screen/slide1/somatic_0000.bin")  # doctest: +SKIP
    >>> drift = estimate_drift(locs)  # doctest: +SKIP
    """
    _check(locs, pixel_nm=pixel_nm, max_drift_nm=max_drift_nm, max_residual_nm=max_residual_nm,
           blur_px=blur_px, segment_frames=segment_frames)  # fmt: skip
    options = {"segment_frames": segment_frames, "pixel_nm": pixel_nm, "blur_px": blur_px,
               "max_drift_nm": max_drift_nm, "max_residual_nm": max_residual_nm,
               "min_per_segment": min_per_segment}  # fmt: skip
    blocks = _sequential_channels(locs)
    if blocks:
        return _per_channel(locs, blocks, options)
    return _rcc(locs, **options)


def _sequential_channels(locs: Localizations) -> list[int] | None:
    """The channels in frame order where each has its own frames (an N-STORM acquisition images
    one channel after another): segments of different proteins must not be correlated."""
    if locs.channel is None:
        return None
    ids = np.unique(locs.channel)
    if len(ids) < 2:
        return None
    frames = [locs.frame[locs.channel == c] for c in ids]
    spans = sorted((int(f.min()), int(f.max()), int(c)) for f, c in zip(frames, ids, strict=True))
    if any(spans[k + 1][0] <= spans[k][1] for k in range(len(spans) - 1)):
        return None  # simultaneous or alternating: one sample, pooled
    return [c for _, _, c in spans]


def _per_channel(locs: Localizations, order: list[int], options: dict) -> Drift:
    """RCC of each channel of a sequential acquisition on its own, as one trace: each block's
    drift relative to its own first segment (the registration between channels is not
    RCC's to know); frames between blocks hold the last value."""
    traces = []
    for c in order:
        sub = locs[locs.channel == c]
        try:
            traces.append(_rcc(sub, **options))
        except SparseFieldError as err:
            raise SparseFieldError(f"channel {c} (imaged alone, frames {int(sub.frame.min())}-"
                                   f"{int(sub.frame.max())}): {err}") from None  # fmt: skip
    first, last = traces[0].first_frame, traces[-1].last_frame
    x = np.empty(last - first + 1)
    y = np.empty(last - first + 1)
    for k, t in enumerate(traces):
        stop = traces[k + 1].first_frame if k + 1 < len(traces) else last + 1
        a, b = t.first_frame - first, stop - first
        n = len(t.x_nm)
        x[a : a + n], y[a : a + n] = t.x_nm, t.y_nm
        x[a + n : b], y[a + n : b] = t.x_nm[-1], t.y_nm[-1]  # a gap: held
    segments = {k: sum((t.segments[k] for t in traces), []) for k in traces[0].segments}
    d = [t.details for t in traces]
    details = {"segments": sum(v["segments"] for v in d), "pixel_nm": d[0]["pixel_nm"],
               "pairs": sum(v["pairs"] for v in d), "pairs_used": sum(v["pairs_used"] for v in d),
               "residual_rms_nm": max(v["residual_rms_nm"] for v in d),
               "weakest_peak_z": min(v["weakest_peak_z"] for v in d),
               "sequential_channels": order}  # fmt: skip
    return Drift(first, x, y, "rcc", segments, details)


def _rcc(locs: Localizations, *, segment_frames, pixel_nm, blur_px, max_drift_nm,
         max_residual_nm, min_per_segment) -> Drift:  # fmt: skip
    """RCC of one sample (see :func:`estimate_drift`)."""
    frame = np.asarray(locs.frame, np.int64)
    if locs.n < 2 * min_per_segment:
        raise SparseFieldError(
            f"too sparse for drift correction: {locs.n:,} localizations, RCC needs at least "
            f"{2 * min_per_segment:,} (two segments of {min_per_segment:,})"
        )
    bounds, seg = _segments(frame, segment_frames, min_per_segment)
    n_seg = len(bounds) - 1
    counts = np.bincount(seg, minlength=n_seg)
    if n_seg < 2 or counts.min() < min_per_segment:
        raise SparseFieldError(
            f"too sparse for drift correction: {n_seg} segment(s) of "
            f"{int(bounds[1] - bounds[0])} frames with {int(counts.min()):,} localizations at "
            f"the fewest; RCC needs two or more with {min_per_segment:,} ("
            + ("longer segments: --drift-segment-frames; or " if n_seg > 2 else "")
            + "a known trace: --drift FILE)"
        )
    pairs, shifts, zs, edge, pixel = _pair_shifts(locs, seg, n_seg, pixel_nm, blur_px,
                                                  max_drift_nm)  # fmt: skip
    good = zs >= MIN_PEAK_Z
    if not good.any() or np.linalg.matrix_rank(_incidence(pairs[good], n_seg)) < n_seg - 1:
        raise SparseFieldError(
            f"too sparse for drift correction: the segments' cross-correlation peaks are too weak "
            f"to locate (strongest {zs.max(initial=0.0):.1f} sd over its window, {MIN_PEAK_Z:g} "
            f"needed; {edge} pair(s) beyond {max_drift_nm:g} nm); longer segments or a known "
            f"trace (--drift FILE)"
        )
    d, kept, rms = _solve(pairs[good], shifts[good], n_seg, max_residual_nm)
    centre = np.bincount(seg, frame.astype(np.float64), n_seg) / counts
    t = np.arange(int(bounds[0]), int(bounds[-1]))
    if n_seg >= 3:
        dx_t, dy_t = (_spline(centre, d[:, a], t) for a in (0, 1))
    else:  # two segments: the line through them
        dx_t, dy_t = (np.polyval(np.polyfit(centre, d[:, a], 1), t) for a in (0, 1))
    return Drift(
        int(bounds[0]), dx_t, dy_t, "rcc",
        segments={"start": bounds[:-1].tolist(), "stop": bounds[1:].tolist(),
                  "centre": centre.tolist(), "x_nm": d[:, 0].tolist(), "y_nm": d[:, 1].tolist(),
                  "n": counts.tolist()},
        details={"segments": n_seg, "pixel_nm": round(pixel, 3), "pairs": n_seg * (n_seg - 1) // 2,
                 "pairs_used": int(kept.sum()), "residual_rms_nm": round(rms, 3),
                 "weakest_peak_z": round(float(np.min(zs[good][kept])), 2)},
    )  # fmt: skip


def _spline(c: np.ndarray, v: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A natural cubic spline through (c, v) at t, continued as a straight line (its end
    slope) before the first and after the last segment centre: a cubic's own continuation
    overshoots there."""
    from scipy.interpolate import CubicSpline

    cs = CubicSpline(c, v, bc_type="natural")
    out = cs(t)
    slope = cs.derivative()
    for end, side in ((c[0], t < c[0]), (c[-1], t > c[-1])):
        out[side] = cs(end) + slope(end) * (t[side] - end)
    return out


def _check(locs, *, segment_frames, **positive) -> None:
    if locs.frame is None:
        raise ValueError("drift correction needs frames; the table has none")
    for name, v in positive.items():
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be positive, got {v!r}")
    if segment_frames is not None and int(segment_frames) < 1:
        raise ValueError(f"segment_frames must be >= 1, got {segment_frames!r}")


def _pair_shifts(locs, seg, n_seg: int, pixel_nm: float, blur_px: float, max_drift_nm: float):
    """Every pair of segments' shift (nm) from the peak of their cross-correlation: (pairs,
    shifts, peak z-scores, pairs beyond max_drift_nm, the pixel used)."""
    from scipy.fft import fftfreq, irfft2, rfft2, rfftfreq

    x = np.asarray(locs.x_nm, np.float64)
    y = np.asarray(locs.y_nm, np.float64)
    pixel, (x0, y0), (h, w), m = _grid(x, y, pixel_nm, max_drift_nm)
    ix = np.clip(((x - x0) / pixel).astype(np.int64), 0, w - 1)
    iy = np.clip(((y - y0) / pixel).astype(np.int64), 0, h - 1)
    flat = iy * w + ix
    k2 = fftfreq(h)[:, None] ** 2 + rfftfreq(w)[None, :] ** 2
    # a band-pass (difference of Gaussians) on each image: the nucleus' outline and density
    # gradient would otherwise add a broad hump under the peak
    band = np.exp(-2 * np.pi**2 * blur_px**2 * k2)
    band -= np.exp(-2 * np.pi**2 * (BAND_PX * blur_px) ** 2 * k2)
    filt = (band**2).astype(np.float32)
    spectra = [
        rfft2(np.bincount(flat[seg == k], minlength=h * w).astype(np.float32).reshape(h, w),
              workers=-1)
        for k in range(n_seg)
    ]  # fmt: skip
    rows, cols = np.arange(-m, m + 1) % h, np.arange(-m, m + 1) % w
    r = max(2, int(math.ceil(3 * blur_px)))
    pairs, shifts, zs, edge = [], [], [], 0
    for i in range(n_seg - 1):
        for j in range(i + 1, n_seg):
            c = irfft2(np.conj(spectra[i]) * spectra[j] * filt, s=(h, w), workers=-1)
            dy, dx, z, inside = _peak(c[np.ix_(rows, cols)], m, r)
            if not inside:
                edge += 1
                continue
            pairs.append((i, j))
            shifts.append((dx * pixel, dy * pixel))
            zs.append(z)
    return (np.asarray(pairs, np.int64).reshape(-1, 2), np.asarray(shifts).reshape(-1, 2),
            np.asarray(zs, np.float64), edge, pixel)  # fmt: skip


def _incidence(pairs: np.ndarray, n: int) -> np.ndarray:
    a = np.zeros((len(pairs), n))
    a[np.arange(len(pairs)), pairs[:, 1]] = 1
    a[np.arange(len(pairs)), pairs[:, 0]] = -1
    return a[:, 1:] if len(pairs) else np.zeros((1, n - 1))


def correct_drift(locs: Localizations, drift: Drift) -> Localizations:
    """``locs`` with ``drift`` subtracted from each localization's x and y by its frame.

    Parameters
    ----------
    locs : Localizations
        With frames.
    drift : Drift

    Returns
    -------
    Localizations

    Raises
    ------
    ValueError
        A table without frames, or frames outside the trace.

    Examples
    --------
    >>> import numpy as np
    >>> d = Drift(0, np.array([0.0, 10.0]), np.array([0.0, -5.0]), method="file")
    >>> locs = Localizations([100.0, 100.0], [50.0, 50.0], frame=[0, 1])
    >>> out = correct_drift(locs, d)
    >>> out.x_nm.tolist(), out.y_nm.tolist()
    ([100.0, 90.0], [50.0, 55.0])
    """
    if locs.frame is None:
        raise ValueError("drift correction needs frames; the table has none")
    dx, dy = drift.at(locs.frame)
    out = locs[slice(None)]
    out.x_nm = (locs.x_nm - dx).astype(np.float32)
    out.y_nm = (locs.y_nm - dy).astype(np.float32)
    return out
