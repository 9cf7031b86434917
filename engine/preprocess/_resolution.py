"""Resolution estimates of a nucleus: NeNA (the localization precision from the distances
between localizations of one emitter in consecutive frames; Endesfelder et al., Histochem.
Cell Biol. 141, 629, 2014) and FRC (Fourier ring correlation of two halves of the data;
Nieuwenhuizen et al., Nat. Methods 10, 557, 2013)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..io import Localizations

#: Fewest next-frame pairs NeNA fits (fewer: no estimate, with the reason).
MIN_NENA_PAIRS = 200
#: The FRC threshold (1/7: Nieuwenhuizen et al. 2013).
FRC_THRESHOLD = 1.0 / 7.0


@dataclass(frozen=True)
class Resolution:
    """One resolution estimate.

    Attributes
    ----------
    method : str
        ``"nena"`` or ``"frc"``.
    value_nm : float or None
        NeNA: the localization precision (sigma); FRC: the resolution (1 / the frequency where
        the curve falls below 1/7). None when there is no estimate (``reason`` says why).
    reason : str
        Why there is no estimate ("" when there is one).
    curve : dict
        What was fitted or thresholded: NeNA ``d_nm``, ``count``, ``fit``; FRC ``freq_per_nm``,
        ``frc`` (smoothed).
    n : int
        Next-frame pairs (NeNA) or localizations (FRC) used.
    """

    method: str
    value_nm: float | None
    reason: str = ""
    curve: dict = field(default_factory=dict, repr=False)
    n: int = 0

    def plot(self, ax) -> None:
        """Draw the curve on a matplotlib Axes.

        Parameters
        ----------
        ax : matplotlib.axes.Axes
        """
        c = self.curve
        if self.method == "nena" and c:
            ax.bar(c["d_nm"], c["count"], width=np.diff(c["d_nm"][:2]).item(), color="0.7")
            ax.plot(c["d_nm"], c["fit"], "r-", lw=1.2)
            ax.set_xlabel("next-frame neighbour distance (nm)")
        elif c:
            ax.plot(c["freq_per_nm"], c["frc"], "k-", lw=1.2)
            ax.axhline(FRC_THRESHOLD, color="r", lw=0.8, ls="--")
            ax.set_xlabel("spatial frequency (1/nm)")
        v = "-" if self.value_nm is None else f"{self.value_nm:.1f} nm"
        ax.set_title(f"{self.method.upper()}: {v}", fontsize=9)


def _nena_model(d, a, s, b):
    return a * d / (2 * s * s) * np.exp(-(d * d) / (4 * s * s)) + b * d


def nena(locs: Localizations, *, d_max_nm: float | None = None, bin_nm: float = 1.0) -> Resolution:
    """The localization precision by NeNA: the distances from each localization to its nearest
    neighbour (same channel) in the next frame — mostly the same emitter localized again — are
    histogrammed and fitted by ``A d/(2s^2) exp(-d^2/4s^2) + B d`` (the distance of two
    independent localizations of precision ``s``, plus neighbours met by chance).

    Parameters
    ----------
    locs : Localizations
        With frames; raw (not linked: linking removes the pairs NeNA measures).
    d_max_nm : float, optional
        The largest distance histogrammed; default 8x the median precision (at least 150 nm).
    bin_nm : float, default 1

    Returns
    -------
    Resolution
        ``value_nm`` the precision sigma; None with the reason when the table has no frames or
        fewer than 200 next-frame pairs, or the fit fails.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> xy = np.repeat(rng.uniform(0, 1e5, (3000, 2)), 2, axis=0) + rng.normal(0, 10, (6000, 2))
    >>> frame = np.repeat(np.arange(3000) * 3, 2) + np.tile([0, 1], 3000)
    >>> r = nena(Localizations(xy[:, 0], xy[:, 1], frame=frame))
    >>> 9 < r.value_nm < 11
    True
    """
    from scipy.optimize import curve_fit

    from ..kernels import next_frame_distances

    if locs.frame is None:
        return Resolution("nena", None, "no frames")
    med = float(np.median(locs.precision_nm)) if locs.precision_nm is not None else 15.0
    d_max = float(d_max_nm) if d_max_nm is not None else max(150.0, 8 * med)
    f = np.asarray(locs.frame).astype(np.int64)
    order = np.argsort(f, kind="stable")
    group = np.zeros(locs.n, np.int64) if locs.channel is None else locs.channel[order].astype(
        np.int64)  # fmt: skip
    d = next_frame_distances(f[order], locs.x_nm[order].astype(np.float64),
                             locs.y_nm[order].astype(np.float64), group, d_max)  # fmt: skip
    d = d[np.isfinite(d)]
    if len(d) < MIN_NENA_PAIRS:
        return Resolution("nena", None, f"{len(d)} next-frame pairs (< {MIN_NENA_PAIRS})", n=len(d))
    edges = np.arange(0.0, d_max + bin_nm, bin_nm)
    count, _ = np.histogram(d, edges)
    centre = (edges[:-1] + edges[1:]) / 2
    s0 = max(float(centre[np.argmax(count)]) / math.sqrt(2), bin_nm)
    try:
        bounds = ([0, bin_nm / 4, 0], [np.inf, d_max, np.inf])
        p, _ = curve_fit(_nena_model, centre, count, p0=(len(d) * bin_nm, s0, 0.0),
                         bounds=bounds, maxfev=5000)  # fmt: skip
    except (RuntimeError, ValueError) as err:
        return Resolution("nena", None, f"fit failed: {err}", n=len(d))
    curve = {"d_nm": centre, "count": count, "fit": _nena_model(centre, *p)}
    return Resolution("nena", float(p[1]), "", curve, len(d))


def _halves(locs: Localizations, split: str, block_frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if split == "blocks" and locs.frame is not None:
        block = np.asarray(locs.frame).astype(np.int64) // block_frames
        ids, inv = np.unique(block, return_inverse=True)
        return (rng.permutation(len(ids)) % 2)[inv].astype(bool)
    return (rng.permutation(locs.n) % 2).astype(bool)


def frc(
    locs: Localizations,
    *,
    pixel_nm: float | None = None,
    split: str = "blocks",
    block_frames: int = 500,
    smooth_rings: int = 5,
    seed: int = 0,
) -> Resolution:
    """The FRC resolution of a nucleus: its localizations split into two halves, each rendered
    as a histogram at ``pixel_nm`` (a Tukey window against edge effects), the correlation of
    their Fourier transforms over rings of equal frequency, smoothed; the resolution is
    1 / the first frequency where it falls below 1/7.

    Parameters
    ----------
    locs : Localizations
    pixel_nm : float, optional
        The render's pixel; default half the median localization precision within 2-20 nm
        (10 nm without precisions), as Picasso bins at half the NeNA; grown so that the image
        is at most 4096 pixels wide. The model's own render is too coarse for FRC (an 80 nm
        pixel cannot show 40 nm).
    split : {"blocks", "random"}, default "blocks"
        ``blocks``: blocks of ``block_frames`` frames go to one half or the other at random,
        so that an emitter's repeated localizations stay in one half (a random split of
        localizations correlates the halves and flatters the resolution); ``random``: each
        localization at random (for linked data, or a table without frames).
    block_frames : int, default 500
    smooth_rings : int, default 5
        Width of the moving average over rings.
    seed : int, default 0
        The split's randomness (the same seed gives the same estimate).

    Returns
    -------
    Resolution
        None with the reason when fewer than 100 localizations or the curve never falls below
        the threshold (resolution finer than two pixels).

    Raises
    ------
    ValueError
        A bad ``split``, ``pixel_nm`` or ``block_frames``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> xy = rng.uniform(0, 5000, (40_000, 2)) + rng.normal(0, 15, (40_000, 2))
    >>> r = frc(Localizations(xy[:, 0], xy[:, 1]), split="random")
    >>> r.method, r.value_nm is not None
    ('frc', True)
    """
    from scipy.fft import rfft2
    from scipy.signal.windows import tukey

    if split not in ("blocks", "random"):
        raise ValueError(f"split must be 'blocks' or 'random', got {split!r}")
    if pixel_nm is None:
        pixel_nm = (float(np.clip(np.median(locs.precision_nm) / 2, 2.0, 20.0))
                    if locs.precision_nm is not None and locs.n else 10.0)  # fmt: skip
    if not (np.isfinite(pixel_nm) and pixel_nm > 0) or int(block_frames) < 1:
        raise ValueError(f"pixel_nm and block_frames must be positive, got {pixel_nm!r}, "
                         f"{block_frames!r}")  # fmt: skip
    if locs.n < 100:
        return Resolution("frc", None, f"{locs.n} localizations (< 100)", n=locs.n)
    x, y = locs.x_nm.astype(np.float64), locs.y_nm.astype(np.float64)
    side = max(float(np.ptp(x)), float(np.ptp(y)), 1.0)
    pixel = max(float(pixel_nm), side / 4096)
    n = int(math.ceil(side / pixel)) + 1
    n += n % 2
    ix = np.clip(((x - x.min()) / pixel).astype(np.int64), 0, n - 1)
    iy = np.clip(((y - y.min()) / pixel).astype(np.int64), 0, n - 1)
    half = _halves(locs, split, int(block_frames), seed)
    win = np.outer(tukey(n, 0.25), tukey(n, 0.25)).astype(np.float32)
    spectra = [
        rfft2(np.bincount(iy[h] * n + ix[h], minlength=n * n).reshape(n, n).astype(np.float32)
              * win, workers=-1)
        for h in (half, ~half)
    ]  # fmt: skip
    ky, kx = np.fft.fftfreq(n) * n, np.arange(n // 2 + 1)
    ring = np.rint(np.hypot(ky[:, None], kx[None, :])).astype(np.int64).ravel()
    # the half plane of a real image's transform: the columns that stand for two count twice
    mult = np.full(n // 2 + 1, 2.0)
    mult[[0, -1]] = 1.0
    mult = np.broadcast_to(mult, (n, n // 2 + 1)).ravel()
    n_ring = n // 2
    a, b = spectra[0].ravel(), spectra[1].ravel()
    inside = ring < n_ring
    r, m = ring[inside], mult[inside]
    num = np.bincount(r, m * (a * np.conj(b)).real[inside], n_ring)
    den = np.sqrt(np.bincount(r, m * (np.abs(a) ** 2)[inside], n_ring)
                  * np.bincount(r, m * (np.abs(b) ** 2)[inside], n_ring))  # fmt: skip
    curve = np.divide(num, den, out=np.zeros(n_ring), where=den > 0)
    w = max(1, int(smooth_rings))
    smooth = np.convolve(curve, np.ones(w) / w, mode="same")
    freq = np.arange(n_ring) / (n * pixel)
    below = np.flatnonzero(smooth[1:] < FRC_THRESHOLD)
    out = {"freq_per_nm": freq, "frc": smooth}
    if not len(below):
        return Resolution("frc", None, f"finer than two pixels ({2 * pixel:g} nm)", out, locs.n)
    i = int(below[0]) + 1  # interpolate the crossing between rings i-1 and i
    f0, f1, c0, c1 = freq[i - 1], freq[i], smooth[i - 1], smooth[i]
    fc = f0 + (c0 - FRC_THRESHOLD) / (c0 - c1) * (f1 - f0) if c0 != c1 else f1
    return Resolution("frc", float(1.0 / fc), "", out, locs.n)
