"""A running render: localizations added in batches at O(new) cost, the batch render of all of
them at any time (what a live nucleus accumulates while it is being imaged)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ._render import MAX_PIXELS, finish_render, render_grid, scale_warnings
from ._spec import RenderSpec

__all__ = ["GROW_NM", "RunningRender"]

#: the running render grows by at least this much (nm) on a side it has to grow on
GROW_NM = 2000.0


class AppendBuffer:
    """A 1-D array that grows by appending, its capacity doubling as needed (amortised
    O(appended) per append), whose filled part is a view (no copy, O(1)): what a live session
    keeps of every localization without concatenating them again at each call.

    Parameters
    ----------
    dtype : numpy dtype
        Of the elements; appended values are converted to it.

    Examples
    --------
    >>> b = AppendBuffer(np.float32)
    >>> b.append([1.0, 2.0]); b.append(np.arange(3))
    >>> b.view()
    array([1., 2., 0., 1., 2.], dtype=float32)
    """

    def __init__(self, dtype) -> None:
        self._a = np.empty(0, dtype)
        self.n = 0

    def append(self, values) -> None:
        """Append values (any array-like of numbers).

        Parameters
        ----------
        values : array_like
            1-D.
        """
        v = np.asarray(values, self._a.dtype).ravel()
        need = self.n + len(v)
        if need > len(self._a):
            grown = np.empty(max(need, 2 * len(self._a), 1024), self._a.dtype)
            grown[: self.n] = self._a[: self.n]
            self._a = grown
        self._a[self.n : need] = v
        self.n = need

    def view(self) -> np.ndarray:
        """The values appended so far, in order (a view: later appends do not change it).

        Returns
        -------
        ndarray
        """
        return self._a[: self.n]


class RunningRender:
    """The KDE of localizations added in batches, on a lattice anchored at 0 nm.

    Parameters
    ----------
    spec : RenderSpec
        How to render: its pixel size (resolved without a camera pixel), truncation and number
        of channels; :meth:`render` finishes with another spec of the same pixels if asked.
    device : {"cpu", "cuda"}
        Where the raw render accumulates (Numba CPU or Numba-CUDA kernels).
    region_nm : ndarray (K, 2), optional
        The nucleus outline: :meth:`render` cuts its window and mask; without it the window
        grows with the data.

    Notes
    -----
    Adding k localizations costs O(k): the KDE of each into the raw render, which grows by
    copying without resampling (exact). :meth:`render` cuts the window a batch
    :func:`ainu_engine.render.render` of everything added would use, and recomputes the mask,
    resize, pad and scaling. The result equals the batch render up to float32 summation order.
    Not thread-safe: its owner serialises calls.

    Examples
    --------
    >>> spec = RenderSpec(pixel_nm=20, sigma_nm=20, size=64)
    >>> rr = RunningRender(spec)
    >>> x = np.linspace(1000.0, 3000.0, 200)
    >>> rr.add(x, x[::-1], np.full(200, 20.0), np.zeros(200, np.int32))
    >>> rr.n_localizations, rr.render().image.shape
    (200, (1, 64, 64))
    """

    def __init__(self, spec: RenderSpec, *, device: str = "cpu", region_nm=None) -> None:
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        self.spec = spec
        self.device = device
        self.region = None if region_nm is None else np.asarray(region_nm, np.float64)
        self.pixel_nm = spec.resolved_pixel_nm(None)
        self.counts = [0] * spec.n_channels
        self._acc = None  # raw render (C, H, W) float32, host or device
        self._acc_origin = np.zeros(2)
        self._xs = AppendBuffer(np.float32)
        self._ys = AppendBuffer(np.float32)
        self._lo = np.array([np.inf, np.inf])
        self._hi = np.array([-np.inf, -np.inf])
        self._sigma_max = 0.0

    @property
    def n_localizations(self) -> int:
        """Localizations in the render so far."""
        return int(sum(self.counts))

    def add(self, x: np.ndarray, y: np.ndarray, sigma: np.ndarray, channel: np.ndarray) -> None:
        """Add localizations at ``x``, ``y`` (nm) with bandwidths ``sigma`` (nm) into image
        channels ``channel`` (0-based, each < the spec's channel count)."""
        if len(x) == 0:
            return
        reach = self.spec.truncate * float(sigma.max())
        self._grow(np.array([x.min(), y.min()]) - reach, np.array([x.max(), y.max()]) + reach)
        self._kde(x, y, sigma, channel)
        self._xs.append(x)
        self._ys.append(y)
        for k in range(self.spec.n_channels):
            self.counts[k] += int(np.count_nonzero(channel == k))
        self._lo = np.minimum(self._lo, [float(x.min()), float(y.min())])
        self._hi = np.maximum(self._hi, [float(x.max()), float(y.max())])
        self._sigma_max = max(self._sigma_max, float(sigma.max()))

    def localizations(self) -> tuple[np.ndarray, np.ndarray]:
        """x, y (nm) of every localization in the render, in the order added."""
        return self._xs.view(), self._ys.view()  # no copy: O(1) whatever was added

    def render(self, spec: RenderSpec | None = None):
        """The render of everything added so far, as :func:`ainu_engine.render.render` of all of
        it would give it (``spec``: another size or scaling of the same pixels).

        Raises
        ------
        ainu_engine.errors.InputError
            Nothing added yet.
        """
        if self.n_localizations == 0:
            raise InputError("no localizations in the live render yet")
        spec = spec or self.spec
        p = self.pixel_nm
        margin = spec.margin_nm if spec.margin_nm is not None else spec.truncate * self._sigma_max
        if self.region is not None:
            lo, hi = self.region.min(axis=0), self.region.max(axis=0)
        else:
            lo, hi = self._lo, self._hi
        origin, h, w = render_grid(lo, hi, p, margin)
        raw = _window(self._host(), self._acc_origin, origin, (h, w), p)
        x, y = self.localizations()
        return finish_render(
            raw, (float(origin[0]), float(origin[1])), p, spec, x, y, dict(enumerate(self.counts)),
            roi_nm=self.region, device=self.device, warnings=scale_warnings(p, hi - lo),
        )  # fmt: skip

    def close(self) -> None:
        """Free the raw render and the localizations."""
        self._acc = None
        self._xs, self._ys = AppendBuffer(np.float32), AppendBuffer(np.float32)

    def _grow(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Make the raw render cover [lo, hi] (nm), on the lattice of pixel size p anchored at
        0 nm: old pixels are copied, not resampled, so growing is exact."""
        p = self.pixel_nm
        if self._acc is not None:
            _, h, w = self._acc.shape
            a_lo = self._acc_origin
            a_hi = a_lo + np.array([w, h]) * p
            if np.all(lo >= a_lo) and np.all(hi <= a_hi):
                return
            slack = np.maximum(GROW_NM, 0.25 * (a_hi - a_lo))  # amortised: few regrowths
            lo = np.where(lo < a_lo, np.minimum(lo, a_lo - slack), a_lo)
            hi = np.where(hi > a_hi, np.maximum(hi, a_hi + slack), a_hi)
        origin = np.floor(lo / p) * p
        w = int(math.ceil((hi[0] - origin[0]) / p)) + 1
        h = int(math.ceil((hi[1] - origin[1]) / p)) + 1
        c_n = self.spec.n_channels
        if c_n * h * w > MAX_PIXELS:
            raise InputError(
                f"the running render would be {c_n}x{h}x{w} pixels: the localizations span "
                f"{(hi - lo).max() / 1000:.0f} µm",
                hint="give the nucleus region (region_nm), or check the coordinates' unit",
            )
        new = np.zeros((c_n, h, w), np.float32)
        if self._acc is not None:
            old = self._host()
            dy, dx = (int(round(v)) for v in ((self._acc_origin - origin) / p)[::-1])
            new[:, dy : dy + old.shape[1], dx : dx + old.shape[2]] = old
        self._acc_origin = origin
        self._acc = self._to_device(new)

    def _kde(self, x, y, sigma, chan) -> None:
        c_n, h, w = self._acc.shape
        kw = {"shape": (c_n, h, w), "origin_nm": self._acc_origin, "pixel_nm": self.pixel_nm,
              "truncate": self.spec.truncate, "out": self._acc}  # fmt: skip
        if self.device == "cuda":
            from ..kernels import render_kde_cuda

            render_kde_cuda(
                np.asarray(x, np.float64), np.asarray(y, np.float64), sigma, chan,
                to_host=False, **kw,
            )  # fmt: skip
        else:
            from ..kernels import render_kde_cpu

            render_kde_cpu(x, y, sigma, chan, **kw)

    def _to_device(self, host: np.ndarray):
        if self.device != "cuda":
            return host
        from numba import cuda

        return cuda.to_device(host)

    def _host(self) -> np.ndarray:
        return self._acc if self.device != "cuda" else self._acc.copy_to_host()


def _window(acc: np.ndarray, acc_origin, origin, shape, p: float) -> np.ndarray:
    """The (C, h, w) window at ``origin`` of the raw render (zeros where it has none)."""
    h, w = shape
    dy, dx = (int(round(v)) for v in ((np.asarray(origin) - acc_origin) / p)[::-1])
    out = np.zeros((acc.shape[0], h, w), np.float32)
    ys, xs = max(0, dy), max(0, dx)
    ye, xe = min(acc.shape[1], dy + h), min(acc.shape[2], dx + w)
    if ye > ys and xe > xs:
        out[:, ys - dy : ye - dy, xs - dx : xe - dx] = acc[:, ys:ye, xs:xe]
    return out
