"""Augmentations that never change the aspect ratio or the pixel scale (the paper forbids
distorting spatial relations): flips, 90° rotations, arbitrary rotations about the centre with
background fill, intensity/contrast jitter, and GridMask-style dropout (AINU: "GridMask, ratio
0.3, grid unit 128-384 px" at 512 px). Batched tensor ops on the training device; no extra
dependency (torch only)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["AugmentConfig", "augment"]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation (per image).

    ``grid_unit`` is the GridMask period as a fraction of the image side (0.25-0.75 = the
    paper's 128-384 px at 512 px); in each period a square of side ``grid_ratio`` x unit is
    set to ``fill`` (masked area fraction ~ grid_ratio²). ``rotate_deg`` is the largest
    arbitrary rotation; rotated-in corners get ``fill``.

    Attributes
    ----------
    flip : float
        Probability of a horizontal and a vertical flip (each).
    rot90 : bool
        A random multiple of 90° per image.
    rotate : float
        Probability of an arbitrary rotation.
    rotate_deg : float
        The largest arbitrary rotation (degrees).
    intensity : float
        The largest relative change of intensity.
    contrast : float
        The largest relative change of contrast.
    gridmask : float
        Probability of GridMask.
    grid_ratio : float
        GridMask's square side as a fraction of its period.
    grid_unit : tuple[float, float]
        GridMask's period as a fraction of the side, uniform range.
    fill : float
        The value of masked and rotated-in pixels.
    """

    flip: float = 0.5
    rot90: bool = True
    rotate: float = 0.5
    rotate_deg: float = 180.0
    intensity: float = 0.2
    contrast: float = 0.2
    gridmask: float = 0.5
    grid_ratio: float = 0.3
    grid_unit: tuple[float, float] = (0.25, 0.75)
    fill: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def augment(x, cfg: AugmentConfig = AugmentConfig(), *, generator=None):
    """Augment a batch ``x`` (N, C, H, W) of images; returns a new tensor of the same shape.

    Each image draws its own transforms from ``generator`` (a ``torch.Generator`` on the
    batch's device, for reproducibility). Labels are untouched: no augmentation can change
    the class of a nucleus (no scaling, no shearing, no cropping of the nucleus).

    Parameters
    ----------
    x : torch.Tensor, shape (N, C, H, W)
        The batch.
    cfg : AugmentConfig
        Probabilities and ranges.
    generator : torch.Generator
        The random stream, on the batch's device.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> import torch
    >>> from ainu_engine.training.augment import augment
    >>> x = torch.rand(4, 2, 64, 64)
    >>> augment(x, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([4, 2, 64, 64])
    """
    import torch
    from torch.nn import functional as F

    if x.ndim != 4:
        raise ValueError(f"expected a (N, C, H, W) batch, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    dev = x.device
    g = generator

    def rand(*shape):
        return torch.rand(*shape, generator=g, device=dev)

    out = x.clone()
    if cfg.flip > 0:
        fh = rand(n) < cfg.flip
        fv = rand(n) < cfg.flip
        out[fh] = out[fh].flip(-1)
        out[fv] = out[fv].flip(-2)
    if cfg.rot90 and h == w:
        k = (rand(n) * 4).long().clamp(max=3)
        for q in (1, 2, 3):
            sel = k == q
            if sel.any():
                out[sel] = torch.rot90(out[sel], q, dims=(-2, -1))
    if cfg.rotate > 0 and cfg.rotate_deg > 0:
        sel = rand(n) < cfg.rotate
        if sel.any():
            ang = (rand(int(sel.sum())) * 2 - 1) * math.radians(cfg.rotate_deg)
            cos, sin = torch.cos(ang), torch.sin(ang)
            # rotation about the centre in pixel units (aspect-correct for non-square images)
            theta = torch.zeros(len(ang), 2, 3, device=dev, dtype=out.dtype)
            theta[:, 0, 0] = cos
            theta[:, 0, 1] = -sin * h / w
            theta[:, 1, 0] = sin * w / h
            theta[:, 1, 1] = cos
            grid = F.affine_grid(theta, (len(ang), c, h, w), align_corners=False)
            src = out[sel]
            rotated = F.grid_sample(
                src, grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )
            inside = F.grid_sample(
                torch.ones_like(src[:, :1]),
                grid,
                mode="bilinear",
                padding_mode="zeros",
                align_corners=False,
            )
            out[sel] = rotated + (1 - inside) * cfg.fill
    if cfg.intensity > 0 or cfg.contrast > 0:
        gain = 1 + (rand(n, 1, 1, 1) * 2 - 1) * cfg.intensity
        con = 1 + (rand(n, 1, 1, 1) * 2 - 1) * cfg.contrast
        mean = out.mean(dim=(-2, -1), keepdim=True)
        out = ((out - mean) * con + mean) * gain
        out = out.clamp(min=0)
    if cfg.gridmask > 0:
        sel = torch.nonzero(rand(n) < cfg.gridmask).flatten()
        yy = torch.arange(h, device=dev).view(h, 1)
        xx = torch.arange(w, device=dev).view(1, w)
        for i in sel.tolist():
            lo, hi = cfg.grid_unit
            unit = max(2, int(round((lo + (hi - lo) * float(rand(1))) * min(h, w))))
            side = max(1, int(round(cfg.grid_ratio * unit)))
            dy, dx = (int(v) for v in (rand(2) * unit).long())
            mask = (((yy + dy) % unit) < side) & (((xx + dx) % unit) < side)
            out[i][:, mask] = cfg.fill
    return out
