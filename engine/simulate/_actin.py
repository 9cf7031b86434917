"""Simulated actin + nucleus tiles with a known nucleus position (methods spec §3.4), for
training and checking the actin → nucleus generator (Vasudevan et al., PLoS ONE 2022).

Each cell is a star-shaped outline with 2-5 protrusions along a polarity axis; its actin is a
cortical rim, ventral stress fibres between anchors at the protrusion tips, perinuclear cap
fibres over the nucleus along its long axis, and diffuse cytoplasm. The nucleus (an ellipse of
mean radius ~4 µm) sits at a **known function of the actin geometry** — the centroid of the
cell's area shifted towards the rear along the polarity axis — plus noise ``sigma_pos_um``.
Null controls move the nucleus and keep the actin: ``null="random"`` puts it uniformly in the
cell eroded by its radius, ``null="shuffled"`` at the cell's centroid plus another cell's
rear-shift offset; the actin (cap fibres and shadow included) is drawn for the rule's position,
the very actin of the rule tile with the same seed, so it says nothing about where the nucleus
is. ``shadow`` (0-1) lowers the actin under the nucleus: a direct leak cue a model could use
instead of the fibre geometry.
Confocal-MIP-like imaging, Poisson + read noise, 8-bit export in the NuclearPrediction layout
(``Actin_*`` green, ``Nucleus_*`` red, ``Merged_*``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ._common import seeded_rng, write_table

__all__ = ["ActinConfig", "SimulatedTile", "simulate_tile", "simulate_tiles"]


@dataclass(frozen=True)
class ActinConfig:
    """Tile and cell parameters (µm unless said otherwise).

    Attributes
    ----------
    tile_um : float
        The tile's side.
    pixel_um : float
        The pixel.
    cells : tuple[int, int]
        Per tile, uniform (the paper: ~13 detected).
    spread_area_um2 : tuple[float, float]
        A cell's spread area, uniform range.
    protrusions : tuple[int, int]
        Protrusions per cell, inclusive range.
    nucleus_radius_um : tuple[float, float]
        Mean nucleus radius, uniform range.
    rear_shift : float
        Nucleus shift towards the rear, as a fraction of the radius.
    sigma_pos_um : float
        Noise of the nucleus position around the rule's.
    fibres : tuple[int, int]
        Ventral stress fibres per cell, inclusive range.
    cap_fibres : tuple[int, int]
        Perinuclear cap fibres per cell, inclusive range.
    dim_fraction : float
        Cells with little actin signal (the paper: 84 % generated).
    shadow : float
        Actin lowered under the nucleus, 0-1 (a leak cue).
    null : str | None
        A null control: None, ``random`` (uniform in the cell) or ``shuffled``.
    noise : float
        Read noise, relative to the brightest actin.
    """

    tile_um: float = 210.0
    pixel_um: float = 0.41
    cells: tuple[int, int] = (5, 25)
    spread_area_um2: tuple[float, float] = (800.0, 3000.0)
    protrusions: tuple[int, int] = (2, 5)
    nucleus_radius_um: tuple[float, float] = (3.0, 6.0)
    rear_shift: float = 0.25
    sigma_pos_um: float = 1.0
    fibres: tuple[int, int] = (5, 40)
    cap_fibres: tuple[int, int] = (3, 8)
    dim_fraction: float = 0.18
    shadow: float = 0.0
    null: str | None = None
    noise: float = 0.03

    def __post_init__(self):
        if self.null not in (None, "random", "shuffled"):
            raise ValueError(f"null must be random or shuffled, got {self.null!r}")
        if not 0.0 <= self.shadow <= 1.0:
            raise ValueError(f"shadow must lie in [0, 1], got {self.shadow!r}")


@dataclass
class SimulatedTile:
    """One simulated tile and its ground truth.

    Attributes
    ----------
    actin : np.ndarray
        The actin image in [0, 1] (H, W).
    nucleus : np.ndarray
        The nucleus image in [0, 1] (H, W).
    nuclei : np.ndarray
        Nucleus instance labels.
    cells : np.ndarray
        Cell labels.
    truth : list[dict]
        One dict per cell: centres (px), radii, valid area, the rule's position.
    """

    actin: np.ndarray
    nucleus: np.ndarray
    nuclei: np.ndarray
    cells: np.ndarray
    truth: list[dict]


def _cell_shape(rng, cfg: ActinConfig):
    area = rng.uniform(*cfg.spread_area_um2)
    r0 = math.sqrt(area / math.pi)
    axis = rng.uniform(0, 2 * math.pi)
    n = int(rng.integers(cfg.protrusions[0], cfg.protrusions[1] + 1))
    # protrusions: the front (along the axis) and others spread around it
    angles = [axis] + list(axis + rng.uniform(0.6, 2 * math.pi - 0.6, n - 1))
    amps = [rng.uniform(0.5, 0.9)] + list(rng.uniform(0.2, 0.6, n - 1))
    widths = rng.uniform(0.25, 0.5, n)
    return r0, axis, list(zip(angles, amps, widths, strict=True))


def _radius(theta, r0, prot):
    r = np.ones_like(theta)
    for a, amp, w in prot:
        d = np.angle(np.exp(1j * (theta - a)))
        r = r + amp * np.exp(-(d**2) / (2 * w * w))
    return r0 * 0.75 * r


def _segment(img, p, q, width_px, value):
    n = int(max(abs(q[0] - p[0]), abs(q[1] - p[1])) * 2) + 2
    t = np.linspace(0, 1, n)
    ys = np.round(p[0] + t * (q[0] - p[0])).astype(int)
    xs = np.round(p[1] + t * (q[1] - p[1])).astype(int)
    inside = (ys >= 0) & (ys < img.shape[0]) & (xs >= 0) & (xs < img.shape[1])
    # the part of a fibre outside the tile is not drawn (clipping piled it onto the border)
    np.add.at(img, (ys[inside], xs[inside]), value / max(width_px, 0.5))


def _ellipse(yy, xx, y0, x0, a, b, axis) -> np.ndarray:
    u = (xx - x0) * math.cos(axis) + (yy - y0) * math.sin(axis)
    v = -(xx - x0) * math.sin(axis) + (yy - y0) * math.cos(axis)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _clamp(y: float, x: float, valid: np.ndarray) -> tuple[float, float]:
    """(y, x) itself if it lies in ``valid``, else the nearest valid pixel."""
    size = valid.shape[0]
    iy, ix = int(np.clip(round(y), 0, size - 1)), int(np.clip(round(x), 0, size - 1))
    if valid[iy, ix]:
        return float(y), float(x)
    vy, vx = np.nonzero(valid)
    i = int(np.argmin((vy - y) ** 2 + (vx - x) ** 2))
    return float(vy[i]), float(vx[i])


def _nucleus_at(
    rng, null_rng, cfg: ActinConfig, t: dict, offsets: list, k: int, valid: np.ndarray
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where the actin of cell ``k`` puts its nucleus (the rule: rear-shifted area centroid +
    noise) and where the nucleus is (the same, or a null control drawn from ``null_rng``),
    both in px and clamped into the cell eroded by the nucleus radius. The rule's draws come
    from ``rng`` in every mode, so a null tile has the same actin as the rule tile of its seed."""
    s = cfg.sigma_pos_um / cfg.pixel_um

    def centroid_plus(offset, gen):  # the cell's centroid + an offset + noise, clamped
        return _clamp(t["centroid_y"] + offset[0] + gen.normal(0, s),
                      t["centroid_x"] + offset[1] + gen.normal(0, s), valid)  # fmt: skip

    rule = centroid_plus(offsets[k - 1], rng)
    if cfg.null == "random":
        vy, vx = np.nonzero(valid)
        i = int(null_rng.integers(len(vy)))
        return rule, (float(vy[i]), float(vx[i]))
    if cfg.null == "shuffled" and len(offsets) > 1:
        j = int(null_rng.integers(len(offsets) - 1))
        return rule, centroid_plus(offsets[j if j < k - 1 else j + 1], null_rng)
    return rule, rule


def simulate_tile(rng: np.random.Generator, cfg: ActinConfig | None = None) -> SimulatedTile:
    """One tile of cells (see the module docstring).

    Parameters
    ----------
    rng : numpy.random.Generator
        The tile's random stream (the same draws in every mode: a null tile has the actin of
        the rule tile of its seed).
    cfg : ActinConfig, optional
        Tile and cell parameters (default :class:`ActinConfig`).

    Returns
    -------
    SimulatedTile
        The actin and nucleus images in [0, 1], the nucleus instances, the cell labels, and
        the truth of every cell (its nucleus, the rule's position).

    Examples
    --------
    >>> from ainu_engine.simulate import ActinConfig
    >>> t = simulate_tile(np.random.default_rng(0), ActinConfig(tile_um=52.48, cells=(1, 2)))
    >>> t.actin.shape == t.nucleus.shape == (128, 128)
    True
    """
    cfg = cfg or ActinConfig()
    size = int(round(cfg.tile_um / cfg.pixel_um))
    px = cfg.pixel_um
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cells = np.zeros((size, size), np.int32)
    nuclei = np.zeros((size, size), np.int32)
    rule_nuclei = np.zeros((size, size), np.int32)  # where the actin puts the nuclei
    cortex = np.zeros((size, size), np.float32)
    fibres = np.zeros((size, size), np.float32)
    cyto = np.zeros((size, size), np.float32)
    nuc_img = np.zeros((size, size), np.float32)
    geoms, truth = [], []
    null_rng = rng.spawn(1)[0]  # the null draws: the actin's stream is the rule tile's
    want = int(rng.integers(cfg.cells[0], cfg.cells[1] + 1))
    for _ in range(want * 20):
        if len(geoms) >= want:
            break
        r0, axis, prot = _cell_shape(rng, cfg)
        cy, cx = rng.uniform(0, size, 2)
        theta = np.arctan2(yy - cy, xx - cx)
        rho = np.hypot(yy - cy, xx - cx) * px
        mask = (rho <= _radius(theta, r0, prot)) & (cells == 0)
        if mask.sum() * px * px < 0.5 * math.pi * r0 * r0 or (cells[mask] > 0).any():
            continue
        if (
            np.logical_and(ndi.binary_dilation(mask, iterations=2), cells > 0).sum()
            > 0.05 * mask.sum()
        ):
            continue
        geoms.append((cy, cx, r0, axis, prot, mask))
        cells[mask] = len(geoms)
    offsets = []
    for k, (_, _, r0, axis, _, mask) in enumerate(geoms, 1):
        ys, xs = np.nonzero(mask)
        gy, gx = ys.mean(), xs.mean()
        rn = rng.uniform(*cfg.nucleus_radius_um)
        shift = cfg.rear_shift * r0 / px  # towards the rear: against the polarity axis
        offsets.append((-shift * math.sin(axis), -shift * math.cos(axis)))
        truth.append(
            {"cell": k, "centroid_y": float(gy), "centroid_x": float(gx), "axis": float(axis),
             "r0_um": float(r0), "nucleus_radius_um": float(rn)}
        )  # fmt: skip
    for k, ((cy, cx, r0, axis, prot, mask), t) in enumerate(zip(geoms, truth, strict=True), 1):
        rn = t["nucleus_radius_um"]
        valid = ndi.binary_erosion(mask, iterations=max(int(rn / px), 1))
        if not valid.any():
            valid = mask
        (ry, rx), (ny, nx) = _nucleus_at(rng, null_rng, cfg, t, offsets, k, valid)
        a = rn / px * rng.uniform(1.0, 1.2)
        b = rn / px * rng.uniform(0.75, 0.95)
        nm = _ellipse(yy, xx, ny, nx, a, b, axis) & mask
        nuclei[nm] = k
        # the actin's cues (cap fibres, shadow) follow the rule: at the nucleus, except in a
        # null control, where the nucleus is moved and the actin is the rule tile's
        rule_nuclei[(_ellipse(yy, xx, ry, rx, a, b, axis) & mask) if cfg.null else nm] = k
        nuc_img[nm] = rng.uniform(0.6, 0.9)
        dim = rng.random() < cfg.dim_fraction
        level = 0.15 if dim else 1.0
        # border_value=1: a cell cut by the tile goes on outside it, so no cortex along the cut
        edge = mask & ~ndi.binary_erosion(mask, iterations=max(int(0.8 / px), 1), border_value=1)
        cortex[edge] += 0.6 * level
        cyto[mask] += 0.2 * level
        # stress fibres between anchors at the protrusion tips and the cell body
        tips = [(cy + _radius(np.array([an]), r0, prot)[0] / px * 0.9 * math.sin(an),
                 cx + _radius(np.array([an]), r0, prot)[0] / px * 0.9 * math.cos(an))
                for an, _, _ in prot]  # fmt: skip
        for _ in range(int(rng.integers(cfg.fibres[0], cfg.fibres[1] + 1))):
            p = tips[int(rng.integers(len(tips)))]
            q = tips[int(rng.integers(len(tips)))]
            if p == q:
                q = (
                    t["centroid_y"] + rng.normal(0, r0 / px / 3),
                    t["centroid_x"] + rng.normal(0, r0 / px / 3),
                )
            _segment(fibres, p, q, rng.uniform(0.2, 0.4) / px, 0.25 * level)
        # perinuclear cap fibres over the nucleus, along its long axis
        for _ in range(int(rng.integers(cfg.cap_fibres[0], cfg.cap_fibres[1] + 1))):
            off = rng.uniform(-0.8, 0.8) * b
            c0 = (ry + off * math.cos(axis), rx - off * math.sin(axis))
            d = (a * 1.3 * math.sin(axis), a * 1.3 * math.cos(axis))
            _segment(fibres, (c0[0] - d[0], c0[1] - d[1]), (c0[0] + d[0], c0[1] + d[1]),
                     0.3 / px, 0.25 * level)  # fmt: skip
        t.update(nucleus_y=float(ny), nucleus_x=float(nx), rule_y=ry, rule_x=rx,
                 nucleus_a_px=float(a),
                 nucleus_b_px=float(b), dim=bool(dim), cell_area_um2=float(mask.sum() * px * px),
                 valid_area_um2=float(valid.sum() * px * px))  # fmt: skip
    fibres = ndi.gaussian_filter(fibres, max(0.3 / px, 0.5))
    actin = cortex + fibres * (cells > 0) + cyto
    if cfg.shadow > 0:
        actin = actin * np.where(rule_nuclei > 0, 1.0 - cfg.shadow, 1.0)
    psf = max(0.1 / px, 0.3)
    actin = ndi.gaussian_filter(actin, psf)
    nucleus = ndi.gaussian_filter(nuc_img, psf)
    actin = np.clip(
        actin / max(np.percentile(actin[cells > 0], 99.5), 1e-6) if (cells > 0).any() else actin,
        0,
        1,
    )
    for img in (actin, nucleus):
        img += rng.normal(0, cfg.noise, img.shape).astype(np.float32)
    return SimulatedTile(np.clip(actin, 0, 1), np.clip(nucleus, 0, 1), nuclei, cells, truth)


def _rgb(red=None, green=None) -> np.ndarray:
    shape = (red if red is not None else green).shape
    out = np.zeros(shape + (3,), np.uint8)
    if red is not None:
        out[..., 0] = np.round(red * 255)
    if green is not None:
        out[..., 1] = np.round(green * 255)
    return out


def simulate_tiles(
    out: str | Path,
    *,
    n_tiles: int,
    seed: int = 0,
    config: ActinConfig | None = None,
    coverslips: int = 8,
    progress=None,
) -> dict:
    """Write ``n_tiles`` tiles: ``TILE/Actin_TILE.tif``, ``Nucleus_TILE.tif``, ``Merged_TILE.tif``
    (8-bit RGB, the NuclearPrediction layout) per tile folder, ``truth/TILE.json`` (cells and
    nuclei) and ``truth/TILE_nuclei.tif`` (instances), ``pairs.csv`` (tile, folder, coverslip
    group) and ``simulation.json``.

    Parameters
    ----------
    out : str or Path
        The output folder (created).
    n_tiles : int
        Tiles to write.
    seed : int
        The seed: the same seed, the same tiles.
    config : ActinConfig, optional
        Tile and cell parameters (the null controls among them).
    coverslips : int
        Coverslip groups the tiles go round (for group-aware splits).
    progress : callable, optional
        Called after each tile.

    Returns
    -------
    dict
        What ``simulation.json`` holds.
    """
    import tifffile

    cfg = config or ActinConfig()
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_tiles):
        rng = seeded_rng(seed, "actin", i)
        t = simulate_tile(rng, cfg)
        name = f"tile{i:04d}"
        d = out / name
        d.mkdir(exist_ok=True)
        tifffile.imwrite(d / f"Actin_{name}.tif", _rgb(green=t.actin), photometric="rgb")
        tifffile.imwrite(d / f"Nucleus_{name}.tif", _rgb(red=t.nucleus), photometric="rgb")
        tifffile.imwrite(
            d / f"Merged_{name}.tif", _rgb(red=t.nucleus, green=t.actin), photometric="rgb"
        )
        tifffile.imwrite(out / "truth" / f"{name}_nuclei.tif", t.nuclei.astype(np.uint16))
        (out / "truth" / f"{name}.json").write_text(json.dumps(t.truth, indent=1))
        rows.append({"tile": name, "folder": name, "group": f"coverslip{i % coverslips}"})
        if progress is not None:
            progress()
    write_table(out / "pairs.csv", rows, fieldnames=["tile", "folder", "group"])
    info = {"simulator": "ainu_engine.simulate.simulate_tiles", "config": asdict(cfg),
            "n_tiles": n_tiles, "seed": seed, "simulated": True}  # fmt: skip
    (out / "simulation.json").write_text(json.dumps(info, indent=2))
    return info
