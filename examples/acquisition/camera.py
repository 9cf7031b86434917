"""A simulated SMLM camera: blinking single molecules of a simulated nucleus on a camera.

Each localization of the simulator (``ainu_engine.simulate``) is an emitter that is on
in its frame, with its photon count; a frame is the sum of their point spread functions (a
Gaussian of ``psf_sigma_nm`` integrated over each ``pixel_nm`` pixel), a uniform background,
Poisson shot noise, Gaussian read noise, and the camera's conversion to counts (``sensitivity``
electrons per count, ``baseline`` counts): what a localizer such as Picasso receives.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf


class BlinkingNucleus:
    """Frames of one simulated nucleus, in acquisition order."""

    def __init__(self, cell_state: str = "hiPSC", *, seed: int = 0, localizations: int = 12_000,
                 n_frames: int = 6_000, pixel_nm: float = 160.0, psf_sigma_nm: float = 130.0,
                 background: float = 20.0, read_noise_e: float = 1.6, sensitivity: float = 0.5,
                 baseline: float = 100.0, margin_px: int = 8) -> None:  # fmt: skip
        from ainu_engine.simulate import Observation, simulate_nucleus

        self.rng = np.random.default_rng(seed + 1000)
        nu = simulate_nucleus(
            cell_state, rng=np.random.default_rng(seed), channels=("polII",),
            observation=Observation(locs_per_channel=localizations, n_frames=n_frames,
                                    camera_pixel_nm=pixel_nm),
        )  # fmt: skip
        self.label = cell_state
        self.pixel_nm, self.psf_sigma_nm = pixel_nm, psf_sigma_nm
        self.background, self.read_noise_e = background, read_noise_e
        self.sensitivity, self.baseline = sensitivity, baseline
        self.n_frames = n_frames
        x0 = nu.x_nm.min() - margin_px * pixel_nm
        y0 = nu.y_nm.min() - margin_px * pixel_nm
        self.origin_nm = (float(x0), float(y0))
        self.shape = (int(np.ceil((nu.y_nm.max() - y0) / pixel_nm)) + margin_px,
                      int(np.ceil((nu.x_nm.max() - x0) / pixel_nm)) + margin_px)  # fmt: skip
        order = np.argsort(nu.frame, kind="stable")
        self._u = (nu.x_nm[order] - x0) / pixel_nm  # emitter positions in pixels
        self._v = (nu.y_nm[order] - y0) / pixel_nm
        self._photons = nu.photons[order].astype(np.float64)
        self._starts = np.searchsorted(nu.frame[order], np.arange(n_frames + 1))
        self.n_emitters = len(order)

    def frame(self, k: int) -> np.ndarray:
        """Frame ``k`` (uint16 counts)."""
        h, w = self.shape
        expected = np.full((h, w), self.background, np.float64)
        s = self.psf_sigma_nm / self.pixel_nm
        lo, hi = self._starts[k], self._starts[k + 1]
        edges_x, edges_y = np.arange(w + 1), np.arange(h + 1)
        for u, v, n in zip(self._u[lo:hi], self._v[lo:hi], self._photons[lo:hi], strict=True):
            # the Gaussian integrated over each pixel: separable, exact to the pixel
            px = np.diff(0.5 * (1 + erf((edges_x - u) / (np.sqrt(2) * s))))
            py = np.diff(0.5 * (1 + erf((edges_y - v) / (np.sqrt(2) * s))))
            expected += n * np.outer(py, px)
        electrons = self.rng.poisson(expected) + self.rng.normal(0, self.read_noise_e, (h, w))
        counts = electrons / self.sensitivity + self.baseline
        return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)

    def camera_info(self) -> dict:
        """What Picasso's localizer needs to convert counts to photons."""
        return {"Baseline": self.baseline, "Sensitivity": self.sensitivity, "Gain": 1, "qe": 1}
