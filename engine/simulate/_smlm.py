"""Simulated STORM localizations of cell nuclei, with ground truth.

The AINU datasets are not public; this simulator produces nuclei whose sizes, densities and
class differences follow the AINU paper (Carnevali et al., Nat. Mach. Intell. 2024) and the
chromatin literature, so that rendering, training, screening and attribution can be tested
against known structures. See ``docs/simulation.md`` for the model, every parameter and its
source, and what the simulator does not capture.

Public entry points: :data:`CELL_STATES`, :class:`CellState`, :class:`Observation`,
:func:`simulate_nucleus`, :func:`simulate_dataset`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numba
import numpy as np

from ._common import seeded_rng, write_table

__all__ = [
    "CELL_STATES",
    "CHANNELS",
    "STRUCTURES",
    "CellState",
    "Observation",
    "SimulatedNucleus",
    "effective_state",
    "simulate_nucleus",
    "simulate_dataset",
]

#: Per-localization structure codes of the ground truth.
STRUCTURES = {0: "background", 1: "nucleolus", 2: "periphery", 3: "interior"}
BACKGROUND, NUCLEOLUS, PERIPHERY, INTERIOR = 0, 1, 2, 3

#: Labelled targets; channel ids follow N-STORM multi-colour data (categories from 1).
CHANNELS = ("polII", "h3", "dna")


@dataclass(frozen=True)
class CellState:
    """A named cell state: geometry, chromatin and RNA Pol II organisation.

    Lengths are in nm unless the name says µm. See docs/simulation.md for sources.

    Attributes
    ----------
    name : str
        The state's name (``hiPSC``, ``somatic``, ``mock``, ...).
    series : str
        The states compared with each other (``pluripotency``, ``hsv1``).
    major_axis_um : tuple[float, float]
        Full major axis, uniform range.
    aspect_ratio : tuple[float, float]
        Minor / major axis.
    outline_irregularity : float
        Amplitude of Fourier modes 2-4 (relative radius).
    n_nucleoli : tuple[int, int]
        Inclusive range.
    nucleolus_axis_um : tuple[float, float]
        Full major axis of a nucleolus.
    periphery_width_nm : float
        Band inside the envelope tagged "periphery".
    clutch_nucleosomes : float
        Mean nucleosomes per clutch (Ricci et al. 2015).
    clutch_sigma_nm : float
        Gaussian sd of a clutch (~20-60 nm across).
    chromatin_clustered_fraction : float
        Nucleosomes in clutches; the rest diffuse.
    heterochromatin_periphery : float
        Density factor at the envelope (decays inwards).
    heterochromatin_perinucleolar : float
        Density factor at nucleolar rims.
    heterochromatin_decay_nm : float
        Decay length of both enrichments.
    nucleolar_chromatin : float
        Chromatin density inside nucleoli, relative.
    polII_nucleolar_fraction : float
        Fraction of Pol II emitters inside nucleoli.
    polII_nucleolar_cluster_emitters : float
        Mean emitters per nucleolar cluster.
    polII_nucleolar_cluster_sigma_nm : float
        Gaussian sd of a nucleolar Pol II cluster.
    polII_nucleolar_clustered_fraction : float
        Nucleolar Pol II emitters in clusters.
    polII_cluster_emitters : float
        Nucleoplasmic clusters (transcription factories).
    polII_cluster_sigma_nm : float
        Gaussian sd of a nucleoplasmic Pol II cluster.
    polII_clustered_fraction : float
        Nucleoplasmic Pol II emitters in clusters.
    replication_compartments : tuple[int, int]
        Inclusive range of RC count.
    rc_diameter_um : tuple[float, float]
        Diameter of a replication compartment, uniform range.
    rc_chromatin_exclusion : float
        1 = no host chromatin inside compartments.
    rc_polII_enrichment : float
        Pol II density factor inside compartments.
    cell_variability : float
        Lognormal sd of per-nucleus variation of the parameters.
    """

    name: str
    series: str
    # -- geometry ------------------------------------------------------------------------
    major_axis_um: tuple[float, float] = (11.0, 16.0)
    aspect_ratio: tuple[float, float] = (0.75, 0.95)
    outline_irregularity: float = 0.04
    n_nucleoli: tuple[int, int] = (1, 4)
    nucleolus_axis_um: tuple[float, float] = (1.2, 3.0)
    periphery_width_nm: float = 500.0
    # -- chromatin (H3, DNA) -----------------------------------------------------------------
    clutch_nucleosomes: float = 8.0
    clutch_sigma_nm: float = 10.0
    chromatin_clustered_fraction: float = 0.7
    heterochromatin_periphery: float = 2.0
    heterochromatin_perinucleolar: float = 1.6
    heterochromatin_decay_nm: float = 400.0
    nucleolar_chromatin: float = 0.15
    # -- RNA Pol II -----------------------------------------------------------------------------
    polII_nucleolar_fraction: float = 0.15
    polII_nucleolar_cluster_emitters: float = 6.0
    polII_nucleolar_cluster_sigma_nm: float = 40.0
    polII_nucleolar_clustered_fraction: float = 0.8
    polII_cluster_emitters: float = 5.0
    polII_cluster_sigma_nm: float = 35.0
    polII_clustered_fraction: float = 0.5
    # -- HSV-1 infection ------------------------------------------------------------------------
    replication_compartments: tuple[int, int] = (0, 0)
    rc_diameter_um: tuple[float, float] = (1.5, 3.0)
    rc_chromatin_exclusion: float = 0.0
    rc_polII_enrichment: float = 1.0
    # -- cell-to-cell variability -------------------------------------------------------------
    cell_variability: float = 0.15


def _state(name, series, **kw) -> CellState:
    return CellState(name=name, series=series, **kw)


#: The default cell states. hiPSC vs somatic follow the AINU paper's Pol II findings (Fig. 3-4):
#: hiPSC Pol II enriched in nucleoli in many small clusters; somatic fewer, larger, more
#: populated nucleolar clusters, denser peripheral heterochromatin, elongated nuclei.
#: The HSV-1 series: 1 hpi subtle host chromatin compaction; 3 hpi compaction plus
#: replication compartments that exclude host chromatin and recruit Pol II.
CELL_STATES: dict[str, CellState] = {
    s.name: s
    for s in [
        _state(
            "hiPSC",
            "pluripotency",
            aspect_ratio=(0.8, 0.97),
            major_axis_um=(10.0, 14.0),
            heterochromatin_periphery=1.5,
            polII_nucleolar_fraction=0.22,
            polII_nucleolar_cluster_emitters=4.0,
            polII_nucleolar_cluster_sigma_nm=30.0,
            polII_nucleolar_clustered_fraction=0.85,
        ),
        _state(
            "somatic",
            "pluripotency",
            aspect_ratio=(0.55, 0.8),
            major_axis_um=(12.0, 18.0),
            heterochromatin_periphery=2.6,
            polII_nucleolar_fraction=0.14,
            polII_nucleolar_cluster_emitters=14.0,
            polII_nucleolar_cluster_sigma_nm=60.0,
            polII_nucleolar_clustered_fraction=0.85,
        ),
        _state("mock", "hsv1"),
        _state(
            "1hpi",
            "hsv1",
            clutch_nucleosomes=10.0,
            clutch_sigma_nm=8.5,
            chromatin_clustered_fraction=0.76,
        ),
        _state(
            "3hpi",
            "hsv1",
            clutch_nucleosomes=12.0,
            clutch_sigma_nm=7.5,
            chromatin_clustered_fraction=0.8,
            replication_compartments=(1, 3),
            rc_chromatin_exclusion=0.85,
            rc_polII_enrichment=3.0,
        ),
    ]
}

_DIFFERENTIAL = [
    f.name
    for f in fields(CellState)
    if f.name not in ("name", "series")
    and f.type in ("float", "tuple[float, float]", "tuple[int, int]")
]


#: Parameters that vary from nucleus to nucleus (lognormal, mean-preserving), and their caps.
_VARYING = {
    "clutch_nucleosomes": None,
    "clutch_sigma_nm": None,
    "chromatin_clustered_fraction": 0.98,
    "heterochromatin_periphery": None,
    "heterochromatin_perinucleolar": None,
    "polII_nucleolar_fraction": 0.9,
    "polII_nucleolar_cluster_emitters": None,
    "polII_nucleolar_cluster_sigma_nm": None,
    "polII_nucleolar_clustered_fraction": 0.98,
    "polII_cluster_emitters": None,
    "polII_cluster_sigma_nm": None,
    "polII_clustered_fraction": 0.98,
    "rc_chromatin_exclusion": 1.0,
    "rc_polII_enrichment": None,
}


def vary_state(s: CellState, rng: np.random.Generator) -> CellState:
    """One nucleus's parameters: each of :data:`_VARYING` times a mean-1 lognormal factor of
    sd ``s.cell_variability`` (enrichment factors vary in their excess over 1)."""
    sd = s.cell_variability
    if sd <= 0:
        return s
    f = rng.lognormal(-sd * sd / 2, sd, len(_VARYING))
    changes = {}
    for k, (name, cap) in zip(f, _VARYING.items(), strict=True):
        v = getattr(s, name)
        if name.startswith(("heterochromatin_", "rc_polII")):
            v = 1.0 + (v - 1.0) * k
        else:
            v = v * k
        changes[name] = min(v, cap) if cap is not None else v
    return replace(s, **changes)


def effective_state(
    name: str, difficulty: float = 0.5, states: dict[str, CellState] | None = None
) -> CellState:
    """The cell state ``name`` with every class difference scaled by ``1 - difficulty``.

    Each parameter is pulled towards the mean of its series (e.g. hiPSC and somatic):
    ``value = mean + (1 - difficulty) * (class_value - mean)``. ``difficulty=0`` gives the
    full differences of :data:`CELL_STATES`, ``1`` makes the classes of a series identical.
    Integer ranges are rounded.

    Parameters
    ----------
    name : str
        A cell state of ``states``.
    difficulty : float, default 0.5
        In [0, 1].
    states : dict of str to CellState, optional
        The states (default :data:`CELL_STATES`).

    Returns
    -------
    CellState

    Raises
    ------
    ValueError
        An unknown state (with close matches), or ``difficulty`` outside [0, 1].

    Examples
    --------
    >>> a, b = effective_state("hiPSC", 1.0), effective_state("somatic", 1.0)
    >>> a.major_axis_um == b.major_axis_um
    True
    """
    states = states or CELL_STATES
    if name not in states:
        import difflib

        lower = {k.lower(): k for k in states}
        close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=2)]
        raise ValueError(
            f"unknown cell state {name!r}; known: {', '.join(states)}"
            + (f" (did you mean {' or '.join(close)}?)" if close else "")
        )
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must lie in [0, 1], got {difficulty!r}")
    me = states[name]
    peers = [s for s in states.values() if s.series == me.series]
    changes = {}
    k = 1.0 - difficulty
    for fname in _DIFFERENTIAL:
        mine = getattr(me, fname)
        values = [getattr(s, fname) for s in peers]
        if isinstance(mine, tuple):
            mean = tuple(float(np.mean([v[i] for v in values])) for i in range(2))
            new = tuple(m + k * (x - m) for m, x in zip(mean, mine, strict=True))
            if isinstance(mine[0], int):
                new = tuple(int(round(v)) for v in new)
            changes[fname] = new
        else:
            mean = float(np.mean(values))
            changes[fname] = mean + k * (mine - mean)
    return replace(me, **changes)


@dataclass(frozen=True)
class Observation:
    """The STORM acquisition: blinking, precision, photons, frames, spurious detections.

    Attributes
    ----------
    locs_per_channel : float
        Mean localizations per nucleus and channel.
    locs_spread : float
        Lognormal sd of that number between nuclei.
    blinks_mean : float
        Mean localizations per fluorophore (geometric, >= 1).
    precision_median_nm : float
        Lognormal median of the localization precision.
    precision_sigma_log : float
        Lognormal sd (5-95 %: ~8.6-22.8 nm at the default).
    photons_at_median : float
        Photons of a localization with the median precision.
    n_frames : int
        Frames of the acquisition.
    spurious_fraction : float
        Uniform false detections, tagged background.
    camera_pixel_nm : float
        The camera pixel (nm; 160: N-STORM with a 100x objective).
    slide_variation : float
        Relative per-slide variation of density and precision.
    """

    locs_per_channel: float = 2e5
    locs_spread: float = 0.2
    blinks_mean: float = 4.0
    precision_median_nm: float = 14.0
    precision_sigma_log: float = 0.3
    photons_at_median: float = 3000.0
    n_frames: int = 60_000
    spurious_fraction: float = 0.02
    camera_pixel_nm: float = 160.0
    slide_variation: float = 0.1


@dataclass
class SimulatedNucleus:
    """One simulated nucleus: localizations and ground truth.

    Attributes
    ----------
    label : str
        The cell state.
    x_nm : np.ndarray
        X of each localization (nm).
    y_nm : np.ndarray
        Y (nm).
    channel : np.ndarray
        File channel id of each localization.
    frame : np.ndarray
        Frame of each localization.
    photons : np.ndarray
        Photons of each localization.
    precision_nm : np.ndarray
        Localization precision (nm).
    structure : np.ndarray
        Uint8 codes of STRUCTURES, one per localization.
    outline_nm : np.ndarray
        (K, 2) closed polygon.
    nucleoli_nm : list[np.ndarray]
        (K, 2) polygon of each nucleolus.
    compartments_nm : list[np.ndarray]
        (K, 2) polygon of each replication compartment.
    centre_nm : np.ndarray
        The nucleus's centre (x, y; nm).
    area_um2 : float
        The nucleus's area (µm²).
    params : dict
        The state's parameters as drawn for this nucleus.
    """

    label: str
    x_nm: np.ndarray
    y_nm: np.ndarray
    channel: np.ndarray
    frame: np.ndarray
    photons: np.ndarray
    precision_nm: np.ndarray
    structure: np.ndarray
    outline_nm: np.ndarray
    nucleoli_nm: list[np.ndarray]
    compartments_nm: list[np.ndarray]
    centre_nm: np.ndarray
    area_um2: float
    params: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x_nm)


# ---------------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------------


class _Geometry:
    """Nucleus outline as a star-shaped polar curve, nucleoli and compartments as ellipses."""

    def __init__(self, rng: np.random.Generator, s: CellState, centre: np.ndarray) -> None:
        self.centre = centre
        major = rng.uniform(*s.major_axis_um) * 1000.0
        self.a = major / 2.0
        self.b = self.a * rng.uniform(*s.aspect_ratio)
        self.rot = rng.uniform(0, np.pi)
        self.modes = np.arange(2, 5)
        self.amps = rng.normal(0, s.outline_irregularity, 3) / self.modes * 2
        self.phases = rng.uniform(0, 2 * np.pi, 3)
        self.periphery_width = s.periphery_width_nm
        self.nucleoli = self._place_ellipses(
            rng,
            rng.integers(s.n_nucleoli[0], s.n_nucleoli[1] + 1),
            s.nucleolus_axis_um,
            (0.5, 0.9),
            max_radius=0.6,
            avoid=[],
        )
        n_rc = (
            int(rng.integers(s.replication_compartments[0], s.replication_compartments[1] + 1))
            if s.replication_compartments[1] > 0
            else 0
        )
        self.compartments = self._place_ellipses(
            rng, n_rc, s.rc_diameter_um, (0.7, 1.0), max_radius=0.55, avoid=self.nucleoli
        )

    def _shape(self):
        return (
            self.a,
            self.b,
            self.rot,
            np.asarray(self.amps, np.float64),
            np.asarray(self.phases, np.float64),
        )

    def radius(self, theta: np.ndarray) -> np.ndarray:
        """Envelope radius (nm) at polar angle ``theta`` around the centre."""
        theta = np.ascontiguousarray(theta, np.float64)
        return _radius_kernel(np.cos(theta), np.sin(theta), *self._shape())

    def depth(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Radial distance (nm) inside the envelope; negative outside."""
        return _depth_kernel(
            np.ascontiguousarray(x, np.float64),
            np.ascontiguousarray(y, np.float64),
            float(self.centre[0]),
            float(self.centre[1]),
            *self._shape(),
        )

    def outline(self, n: int = 256) -> np.ndarray:
        th = np.linspace(0, 2 * np.pi, n, endpoint=False)
        r = self.radius(th)
        return np.stack([self.centre[0] + r * np.cos(th), self.centre[1] + r * np.sin(th)], axis=1)

    def area_um2(self) -> float:
        th = np.linspace(0, 2 * np.pi, 4096, endpoint=False)
        return float(0.5 * np.mean(self.radius(th) ** 2) * 2 * np.pi / 1e6)

    def _place_ellipses(self, rng, n, axis_um, aspect, *, max_radius, avoid):
        placed = []
        for _ in range(int(n)):
            for _attempt in range(200):
                major = rng.uniform(*axis_um) * 1000.0
                e = (0.0, 0.0, major / 2, major / 2 * rng.uniform(*aspect), rng.uniform(0, np.pi))
                th = rng.uniform(0, 2 * np.pi)
                rr = np.sqrt(rng.uniform(0, 1)) * max_radius * self.radius(np.array([th]))[0]
                cx, cy = self.centre[0] + rr * np.cos(th), self.centre[1] + rr * np.sin(th)
                e = (cx, cy, e[2], e[3], e[4])
                # fully inside the envelope with a margin, not touching the others
                ring = _ellipse_polygon(e, 32)
                if np.any(self.depth(ring[:, 0], ring[:, 1]) < self.periphery_width):
                    continue
                if any(
                    np.hypot(cx - o[0], cy - o[1]) < (e[2] + o[2]) * 1.1 for o in placed + avoid
                ):
                    continue
                placed.append(e)
                break
        return placed


@numba.njit(cache=True, inline="always")
def _envelope_radius(ct, st, a, b, rot, amps, phases):  # pragma: no cover - compiled
    """Envelope radius at the polar angle whose cosine and sine are ``ct``, ``st``: an ellipse
    (semi-axes a, b, rotated by ``rot``) times 1 + sum_k amps[k] cos((k+2) t + phases[k]),
    t = angle - rot. The Fourier modes 2-4 are polynomials in cos t and sin t."""
    c = ct * math.cos(rot) + st * math.sin(rot)
    s = st * math.cos(rot) - ct * math.sin(rot)
    r_ell = a * b / math.sqrt((b * c) ** 2 + (a * s) ** 2)
    c2 = 2 * c * c - 1
    s2 = 2 * s * c
    w = 1.0 + amps[0] * (c2 * math.cos(phases[0]) - s2 * math.sin(phases[0]))
    w += amps[1] * (c * (2 * c2 - 1) * math.cos(phases[1]) - s * (2 * c2 + 1) * math.sin(phases[1]))
    w += amps[2] * ((2 * c2 * c2 - 1) * math.cos(phases[2]) - 2 * s2 * c2 * math.sin(phases[2]))
    return r_ell * w


@numba.njit(parallel=True, cache=True, nogil=True)
def _radius_kernel(cos_th, sin_th, a, b, rot, amps, phases):  # pragma: no cover - compiled
    out = np.empty(cos_th.shape[0])
    for i in numba.prange(cos_th.shape[0]):
        out[i] = _envelope_radius(cos_th[i], sin_th[i], a, b, rot, amps, phases)
    return out


@numba.njit(parallel=True, cache=True, nogil=True)
def _depth_kernel(x, y, cx, cy, a, b, rot, amps, phases):  # pragma: no cover - compiled
    """Depth inside the envelope (radius at the point's angle minus its distance)."""
    out = np.empty(x.shape[0])
    for i in numba.prange(x.shape[0]):
        dx = x[i] - cx
        dy = y[i] - cy
        r = math.sqrt(dx * dx + dy * dy)
        if r > 0:
            out[i] = _envelope_radius(dx / r, dy / r, a, b, rot, amps, phases) - r
        else:
            out[i] = _envelope_radius(1.0, 0.0, a, b, rot, amps, phases)
    return out


def depth_reference(x, y, cx, cy, a, b, rot, amps, phases) -> np.ndarray:
    """Float64 NumPy reference of :func:`_depth_kernel`, written from the definition with
    trigonometric calls (the oracle of the tests, the baseline of the benchmark)."""
    dx, dy = np.asarray(x, np.float64) - cx, np.asarray(y, np.float64) - cy
    t = np.arctan2(dy, dx) - rot
    r_ell = a * b / np.sqrt((b * np.cos(t)) ** 2 + (a * np.sin(t)) ** 2)
    wobble = 1.0 + sum(amps[k] * np.cos((k + 2) * t + phases[k]) for k in range(3))
    return r_ell * wobble - np.hypot(dx, dy)


def _ellipse_polygon(e, n: int = 64) -> np.ndarray:
    cx, cy, a, b, rot = e
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = a * np.cos(t), b * np.sin(t)
    c, s = np.cos(rot), np.sin(rot)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def _ellipse_r(e, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Normalised elliptical radius: < 1 inside the ellipse."""
    cx, cy, a, b, rot = e
    c, s = np.cos(rot), np.sin(rot)
    dx, dy = x - cx, y - cy
    u, v = c * dx + s * dy, -s * dx + c * dy
    return np.sqrt((u / a) ** 2 + (v / b) ** 2)


def _in_any(ellipses, x, y) -> np.ndarray:
    inside = np.zeros(x.shape, bool)
    for e in ellipses:
        inside |= _ellipse_r(e, x, y) < 1.0
    return inside


# ---------------------------------------------------------------------------------------------
# emitters
# ---------------------------------------------------------------------------------------------


def _rejection_sample(rng, n: int, bbox, density, dmax: float) -> np.ndarray:
    """``n`` points with probability proportional to ``density(x, y)`` (<= dmax) in ``bbox``."""
    out, have = [], 0
    (x0, y0), (x1, y1) = bbox
    accept_rate = 0.3
    while have < n:
        m = int((n - have) / accept_rate * 1.2) + 64
        x = rng.uniform(x0, x1, m)
        y = rng.uniform(y0, y1, m)
        keep = rng.uniform(0, dmax, m) < density(x, y)
        accept_rate = max(keep.mean(), 0.01)
        pts = np.stack([x[keep], y[keep]], axis=1)
        out.append(pts[: n - have])
        have += len(out[-1])
    return np.concatenate(out) if out else np.zeros((0, 2))


def _clustered(rng, n: int, clustered_fraction: float, mean_size: float, sigma: float, sample):
    """``n`` emitters: a fraction in Gaussian clusters of ``1 + Poisson(mean_size - 1)``
    emitters around centres drawn by ``sample(k)``, the rest drawn directly."""
    n_cl = int(rng.binomial(n, np.clip(clustered_fraction, 0, 1)))
    parts = []
    if n_cl:
        n_centres = int(math.ceil(n_cl / mean_size * 1.3)) + 1  # trimmed to n_cl below
        sizes = 1 + rng.poisson(max(mean_size - 1.0, 0.0), n_centres)
        sizes = sizes[np.cumsum(sizes) - sizes < n_cl]
        sizes[-1] -= max(0, int(sizes.sum()) - n_cl)
        centres = sample(len(sizes))
        pts = np.repeat(centres, sizes, axis=0) + rng.normal(0, sigma, (int(sizes.sum()), 2))
        parts.append(pts)
    if n - n_cl:
        parts.append(sample(n - n_cl))
    return np.concatenate(parts) if parts else np.zeros((0, 2))


def _chromatin(rng, g: _Geometry, s: CellState, n: int) -> np.ndarray:
    bbox = _bbox(g, 0.0)

    def density(x, y):
        depth = g.depth(x, y)
        d = np.where(depth > 0, 1.0, 0.0)
        d = d * (
            1.0
            + (s.heterochromatin_periphery - 1.0)
            * np.exp(-np.maximum(depth, 0) / s.heterochromatin_decay_nm)
        )
        for e in g.nucleoli:
            rr = _ellipse_r(e, x, y)
            rim = np.maximum(rr - 1.0, 0.0) * e[2]
            d = d * np.where(
                rr < 1.0,
                s.nucleolar_chromatin,
                1.0
                + (s.heterochromatin_perinucleolar - 1.0)
                * np.exp(-rim / s.heterochromatin_decay_nm),
            )
        if g.compartments:
            d = d * np.where(_in_any(g.compartments, x, y), 1.0 - s.rc_chromatin_exclusion, 1.0)
        return d

    dmax = max(s.heterochromatin_periphery, 1.0) * max(s.heterochromatin_perinucleolar, 1.0)
    return _clustered(
        rng,
        n,
        s.chromatin_clustered_fraction,
        s.clutch_nucleosomes,
        s.clutch_sigma_nm,
        lambda k: _rejection_sample(rng, k, bbox, density, dmax),
    )


def _polII(rng, g: _Geometry, s: CellState, n: int) -> np.ndarray:
    bbox = _bbox(g, 0.0)
    n_nuc = int(rng.binomial(n, s.polII_nucleolar_fraction)) if g.nucleoli else 0
    parts = []
    if n_nuc:
        boxes = [
            (e[:2] - np.array([e[2], e[2]]), e[:2] + np.array([e[2], e[2]])) for e in g.nucleoli
        ]

        def sample_nucleoli(k):
            # area-weighted choice of nucleolus, uniform inside it
            areas = np.array([e[2] * e[3] for e in g.nucleoli])
            which = rng.choice(len(g.nucleoli), k, p=areas / areas.sum())
            out = np.empty((k, 2))
            for i, e in enumerate(g.nucleoli):
                idx = np.flatnonzero(which == i)
                if idx.size:
                    out[idx] = _rejection_sample(
                        rng,
                        idx.size,
                        boxes[i],
                        lambda x, y, e=e: (_ellipse_r(e, x, y) < 1.0).astype(float),
                        1.0,
                    )
            return out

        parts.append(
            _clustered(
                rng,
                n_nuc,
                s.polII_nucleolar_clustered_fraction,
                s.polII_nucleolar_cluster_emitters,
                s.polII_nucleolar_cluster_sigma_nm,
                sample_nucleoli,
            )
        )

    def density(x, y):
        d = (g.depth(x, y) > 0).astype(float)
        d *= ~_in_any(g.nucleoli, x, y)
        if g.compartments:
            d *= np.where(_in_any(g.compartments, x, y), s.rc_polII_enrichment, 1.0)
        return d

    dmax = max(1.0, s.rc_polII_enrichment)
    parts.append(
        _clustered(
            rng,
            n - n_nuc,
            s.polII_clustered_fraction,
            s.polII_cluster_emitters,
            s.polII_cluster_sigma_nm,
            lambda k: _rejection_sample(rng, k, bbox, density, dmax),
        )
    )
    return np.concatenate(parts)


def _bbox(g: _Geometry, margin: float):
    th = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    r = g.radius(th).max() + margin
    return (g.centre - r, g.centre + r)


def _structure(g: _Geometry, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    tag = np.full(x.shape, BACKGROUND, np.uint8)
    depth = g.depth(x, y)
    inside = depth > 0
    tag[inside] = INTERIOR
    tag[inside & (depth < g.periphery_width)] = PERIPHERY
    tag[inside & _in_any(g.nucleoli, x, y)] = NUCLEOLUS
    return tag


# ---------------------------------------------------------------------------------------------
# one nucleus
# ---------------------------------------------------------------------------------------------


def simulate_nucleus(
    label: str,
    *,
    rng: np.random.Generator,
    channels: Sequence[str] = ("polII",),
    observation: Observation = Observation(),
    difficulty: float = 0.5,
    centre_nm: tuple[float, float] | None = None,
    slide_factor: tuple[float, float] = (1.0, 1.0),
) -> SimulatedNucleus:
    """Simulate the localizations of one nucleus of cell state ``label``.

    Parameters
    ----------
    label : str
        A key of :data:`CELL_STATES`.
    rng : numpy.random.Generator
        Source of randomness (the same state gives the same nucleus).
    channels : sequence of str
        Targets from :data:`CHANNELS`; channel ids are 1, 2, ... in this order.
    observation : Observation
        Acquisition model.
    difficulty : float, default 0.5
        Class differences scaled by ``1 - difficulty`` (see :func:`effective_state`).
    centre_nm : (float, float), optional
        Nucleus centre; default places the nucleus so that all coordinates are positive
        with a 2 µm margin.
    slide_factor : (float, float)
        Multipliers of the localization count and precision for this slide (batch effect).

    Returns
    -------
    SimulatedNucleus
    """
    for c in channels:
        if c not in CHANNELS:
            raise ValueError(f"unknown channel {c!r}; known: {', '.join(CHANNELS)}")
    s = vary_state(effective_state(label, difficulty), rng)
    ob = observation
    if centre_nm is None:
        half = s.major_axis_um[1] * 1000 / 2 * (1 + 3 * s.outline_irregularity) + 2000.0
        centre = np.array([half, half])
    else:
        centre = np.asarray(centre_nm, float)
    g = _Geometry(rng, s, centre)
    xs, ys, chans, tags, frames = [], [], [], [], []
    for cid, target in enumerate(channels, start=1):
        n_locs = max(
            1,
            int(
                round(
                    ob.locs_per_channel
                    * slide_factor[0]
                    * rng.lognormal(0.0, ob.locs_spread)
                    * np.exp(-(ob.locs_spread**2) / 2)
                )
            ),
        )
        n_spur = int(rng.binomial(n_locs, ob.spurious_fraction))
        n_true = n_locs - n_spur
        p_geo = 1.0 / ob.blinks_mean
        n_emit = int(math.ceil(n_true * p_geo * 1.15)) + 16
        while True:  # enough emitters for n_true localizations, in random order
            emitters = (
                _polII(rng, g, s, n_emit) if target == "polII" else _chromatin(rng, g, s, n_emit)
            )
            emitters = emitters[rng.permutation(len(emitters))]
            blinks = rng.geometric(p_geo, len(emitters))
            cs = np.cumsum(blinks)
            if cs[-1] >= n_true:
                break
            n_emit *= 2
        used = int(np.searchsorted(cs, n_true)) + 1  # the first `used` emitters suffice
        blinks = blinks[:used]
        blinks[-1] -= int(cs[used - 1]) - n_true  # the last one blinks just enough
        emitters = emitters[:used]
        pos = np.repeat(emitters, blinks, axis=0)
        tag = _structure(g, pos[:, 0], pos[:, 1])
        (bx0, by0), (bx1, by1) = _bbox(g, 1500.0)
        spur = np.stack([rng.uniform(bx0, bx1, n_spur), rng.uniform(by0, by1, n_spur)], axis=1)
        xs.append(np.concatenate([pos[:, 0], spur[:, 0]]))
        ys.append(np.concatenate([pos[:, 1], spur[:, 1]]))
        tags.append(np.concatenate([tag, np.full(n_spur, BACKGROUND, np.uint8)]))
        chans.append(np.full(n_locs, cid, np.int32))
        # Sorted frames in emitter order: the blinks of one fluorophore fall in nearby frames,
        # fluorophores in random order over the acquisition; spurious ones anywhere.
        frames.append(np.sort(rng.integers(0, ob.n_frames, n_true)))
        frames.append(np.sort(rng.integers(0, ob.n_frames, n_spur)))
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    n = len(x)
    prec = rng.lognormal(
        np.log(ob.precision_median_nm * slide_factor[1]), ob.precision_sigma_log, n
    )
    photons = (
        ob.photons_at_median * (ob.precision_median_nm / prec) ** 2 * rng.lognormal(0, 0.15, n)
    )
    x += rng.standard_normal(n) * prec
    y += rng.standard_normal(n) * prec
    frame = np.concatenate(frames)
    order = np.argsort(frame, kind="stable")  # a merge of a few sorted runs
    params = {
        "cell_state": asdict(s),
        "observation": asdict(ob),
        "difficulty": difficulty,
        "channels": {str(i): c for i, c in enumerate(channels, start=1)},
        "slide_factor": list(slide_factor),
    }
    return SimulatedNucleus(
        label=label,
        x_nm=x[order].astype(np.float32),
        y_nm=y[order].astype(np.float32),
        channel=np.concatenate(chans)[order],
        frame=frame[order],
        photons=photons[order].astype(np.float32),
        precision_nm=prec[order].astype(np.float32),
        structure=np.concatenate(tags)[order],
        outline_nm=g.outline(),
        nucleoli_nm=[_ellipse_polygon(e) for e in g.nucleoli],
        compartments_nm=[_ellipse_polygon(e) for e in g.compartments],
        centre_nm=centre,
        area_um2=g.area_um2(),
        params=params,
    )


# ---------------------------------------------------------------------------------------------
# datasets on disk
# ---------------------------------------------------------------------------------------------

#: Output format -> (ainu_engine.io format, extension).
OUTPUT_FORMATS = {"insight3": ".bin", "thunderstorm": ".csv", "parquet": ".parquet"}


def simulate_dataset(
    out: str | Path,
    *,
    classes: Sequence[str] = ("hiPSC", "somatic"),
    n_per_class: int = 10,
    channels: Sequence[str] = ("polII",),
    format: str = "parquet",
    seed: int = 0,
    difficulty: float = 0.5,
    observation: Observation = Observation(),
    nuclei_per_file: int = 1,
    field_mode: bool = False,
    roi: bool = False,
    n_slides: int = 5,
    shared_slides: bool = False,
    overwrite: bool = False,
    progress=None,
) -> Path:
    """Write a simulated dataset: data files, ground truth, and ``manifest.csv``.

    Each class gets ``n_per_class`` nuclei. With ``nuclei_per_file > 1`` several nuclei of
    one class share a file, side by side, with a ``cell_id`` column (not in Insight3, which
    has no such field: use ``roi``); ``field_mode`` writes them without ids, as a field for
    automatic nucleus detection. ``roi`` writes an ImageJ ``NAME.roi.zip`` with one polygon
    per nucleus, in camera pixels of ``observation.camera_pixel_nm`` (0-based).

    Each class's files go round ``n_slides`` slides (the manifest's ``group``), each with its
    own batch effect (localization count and precision, ``observation.slide_variation``): per
    class (``hiPSC-slide00``), or with ``shared_slides`` one set for all classes
    (``slide00`` holds nuclei of every class with one batch effect: a donor or cell line
    imaged in every condition, the groups a leave-one-group-out test holds out).

    Files per data file ``NAME``: the data (``NAME.bin`` + ``NAME.bin.json``, ``NAME.csv`` or
    ``NAME.parquet``), ``NAME.truth.json`` (class, parameters, polygons in nm) and
    ``NAME.truth.parquet`` (per-localization ``structure`` code and ``cell_id``, row-aligned
    with the data). ``manifest.csv`` has one row per data file: path, label, group (slide),
    truth, n_nuclei, camera_pixel_nm, channels, seed. The same arguments give byte-identical
    files.

    Parameters
    ----------
    out : str or Path
        The output folder (created).
    classes : sequence of str
        Cell states of :data:`CELL_STATES` (``hiPSC``, ``somatic``, ``mock``, ``1hpi``, ...).
    n_per_class : int
        Nuclei per class.
    channels : sequence of str
        Labelled targets of :data:`CHANNELS` (``polII``, ``h3``, ``dna``), one file channel
        each (ids from 1, as N-STORM numbers them).
    format : {"parquet", "insight3", "thunderstorm"}
        The data files' format (:data:`OUTPUT_FORMATS`).
    seed : int
        The seed: the same seed, the same files.
    difficulty : float
        0 (the full class differences) to 1 (identical classes): :func:`effective_state`.
    observation : Observation
        Imaging: localizations per channel, precision, blinking, background, camera pixel.
    nuclei_per_file : int
        Nuclei side by side in one file.
    field_mode : bool
        Several nuclei without ``cell_id``: a field for automatic detection.
    roi : bool
        Also write an ImageJ ROI set per file.
    n_slides : int
        Slides (groups) per class, each with its own batch effect.
    shared_slides : bool
        One set of slides for all classes.
    overwrite : bool
        Replace an existing dataset in ``out``.
    progress : callable, optional
        Called after each data file.

    Returns
    -------
    Path
        The manifest (``out/manifest.csv``).

    Raises
    ------
    ainu_engine.errors.OutputError
        ``out`` holds a dataset already and ``overwrite`` is False.
    ValueError
        An unknown class, channel or format.

    Examples
    --------
    >>> import tempfile
    >>> from ainu_engine.simulate import Observation, simulate_dataset
    >>> with tempfile.TemporaryDirectory() as d:
    ...     m = simulate_dataset(d, n_per_class=1, observation=Observation(locs_per_channel=2000))
    ...     print(m.name, len(m.read_text().splitlines()))
    manifest.csv 3
    """
    from ainu_engine.io import Localizations, Metadata, write

    if format not in OUTPUT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(OUTPUT_FORMATS)}, got {format!r}")
    if n_per_class < 1 or nuclei_per_file < 1:
        raise ValueError("n_per_class and nuclei_per_file must be >= 1")
    if format == "insight3" and nuclei_per_file > 1 and not field_mode:
        raise ValueError(
            "Insight3 .bin has no cell-id field: with nuclei_per_file > 1 use "
            "field_mode (and roi) or another format"
        )
    for c in classes:
        effective_state(c, difficulty)  # validates the name early
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    if manifest.exists() and not overwrite:
        from ainu_engine.errors import OutputError

        raise OutputError(
            "exists already", path=manifest, hint="pass --force to overwrite the dataset"
        )
    ext = OUTPUT_FORMATS[format]
    rows = []
    n_files = math.ceil(n_per_class / nuclei_per_file)
    for label in classes:
        # a slide's batch effect: its own per class, or with shared_slides one for every class
        # (a donor or cell line imaged in every condition: the groups of leave-one-group-out)
        slide_rng = seeded_rng(seed, 0 if shared_slides else label, 2**31, spawn=True)
        slide_factors = [
            tuple(1.0 + observation.slide_variation * slide_rng.uniform(-1, 1, 2))
            for _ in range(n_slides)
        ]
        for f in range(n_files):
            rng = seeded_rng(seed, label, f, spawn=True)
            k = min(nuclei_per_file, n_per_class - f * nuclei_per_file)
            slide = f % n_slides
            nuclei = []
            offset_x = 0.0
            for _ in range(k):
                half = CELL_STATES[label].major_axis_um[1] * 1000 / 2 * 1.15 + 2000.0
                centre = (offset_x + half, half + rng.uniform(0, 3000.0))
                nuclei.append(
                    simulate_nucleus(
                        label,
                        rng=rng,
                        channels=channels,
                        observation=observation,
                        difficulty=difficulty,
                        centre_nm=centre,
                        slide_factor=slide_factors[slide],
                    )
                )
                offset_x += 2 * half
            name = f"{label}_{f:04d}"
            data_path = out / (name + ext)
            cell = np.concatenate([np.full(len(nu), i, np.int16) for i, nu in enumerate(nuclei)])

            def cat(attr, nuclei=nuclei):
                return np.concatenate([getattr(nu, attr) for nu in nuclei])

            frame = cat("frame")
            order = np.argsort(frame, kind="stable")
            extra = {"cell_id": cell[order].astype(np.int32)} if k > 1 and not field_mode else {}
            px = observation.camera_pixel_nm
            locs = Localizations(
                cat("x_nm")[order],
                cat("y_nm")[order],
                frame=frame[order],
                channel=cat("channel")[order],
                photons=cat("photons")[order],
                precision_nm=cat("precision_nm")[order],
                extra=extra,
                meta=Metadata(
                    camera_pixel_nm=(px, px),
                    camera_pixel_source="user",
                    channel_names={i: c for i, c in enumerate(channels, start=1)},
                ),
            )
            write(locs, data_path, format=format, camera_pixel_nm=px, overwrite=True)
            group = f"slide{slide:02d}" if shared_slides else f"{label}-slide{slide:02d}"
            _write_truth(
                out / f"{name}.truth",
                nuclei,
                {
                    "structure": cat("structure")[order],
                    "cell_id": cell[order],
                    "precision_nm": locs.precision_nm,
                    "photons": locs.photons,
                },
                label=label,
                group=group,
                seed=seed,
                data_file=data_path.name,
            )
            if roi:
                _write_roi(out / f"{name}.roi.zip", nuclei, px)
            rows.append(
                {
                    "path": data_path.name,
                    "label": label,
                    "group": group,
                    "truth": f"{name}.truth.json",
                    "n_nuclei": k,
                    "camera_pixel_nm": px,
                    "channels": "+".join(channels),
                    "seed": seed,
                }
            )
            if progress is not None:
                progress()
    write_table(manifest, rows)
    return manifest


def _write_truth(stem: Path, nuclei, columns: dict, *, label, group, seed, data_file) -> None:
    """``NAME.truth.parquet``: per-localization structure code, cell id, and the precision and
    photons (which Insight3 files cannot hold), row-aligned with the data file;
    ``NAME.truth.json``: class, parameters and polygons."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ainu_engine.io import atomic_path, atomic_write_bytes

    table = pa.table({k: pa.array(v) for k, v in columns.items()})
    with atomic_path(stem.with_suffix(".truth.parquet")) as tmp:
        pq.write_table(table, str(tmp), compression="lz4")
    doc = {
        "format_version": 1,
        "data_file": data_file,
        "label": label,
        "group": group,
        "seed": seed,
        "structures": {str(k): v for k, v in STRUCTURES.items()},
        "tags_file": stem.name + ".parquet",
        "polygons_unit": "nm",
        "nuclei": [
            {
                "cell_id": i,
                "label": nu.label,
                "n_localizations": int(len(nu)),
                "area_um2": round(nu.area_um2, 4),
                "centre_nm": [round(float(v), 3) for v in nu.centre_nm],
                "outline_nm": np.round(nu.outline_nm, 2).tolist(),
                "nucleoli_nm": [np.round(p, 2).tolist() for p in nu.nucleoli_nm],
                "replication_compartments_nm": [
                    np.round(p, 2).tolist() for p in nu.compartments_nm
                ],
                "params": nu.params,
            }
            for i, nu in enumerate(nuclei)
        ],
    }
    atomic_write_bytes(
        stem.with_suffix(".truth.json"),
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n",
    )


def _write_roi(path: Path, nuclei, pixel_nm: float) -> None:
    """ImageJ ROI set: one polygon per nucleus, in 0-based camera pixels."""
    import zipfile

    import roifile

    from ainu_engine.io import atomic_path

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for i, nu in enumerate(nuclei):
            pts = nu.outline_nm / pixel_nm
            r = roifile.ImagejRoi.frompoints(pts.astype(np.float32), name=f"nucleus-{i:03d}")
            r.roitype = roifile.ROI_TYPE.POLYGON
            info = zipfile.ZipInfo(f"nucleus-{i:03d}.roi", date_time=(2020, 1, 1, 0, 0, 0))
            zf.writestr(info, r.tobytes())

