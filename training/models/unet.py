"""A small U-Net: the cheap baseline for actin → nucleus (L1 only, no discriminator), against
which the TFill-Coarse generator is compared (methods spec §4.2, "beyond the paper")."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["UNetConfig", "UNet"]


@dataclass(frozen=True)
class UNetConfig:
    """The U-Net baseline's widths and depth.

    Attributes
    ----------
    in_chans : int
        Input channels.
    out_chans : int
        Output channels.
    width : int
        The first level's width.
    levels : int
        Down-samplings.
    """

    in_chans: int = 3
    out_chans: int = 3
    width: int = 16
    levels: int = 4

    def to_dict(self) -> dict:
        return {"kind": "unet", **asdict(self)}


def _block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
    )  # fmt: skip


class UNet(nn.Module):
    """Encoder of ``levels`` 2×2 max-pools (widths ``width``·2^k), decoder with transposed
    convolutions and skip connections, tanh output in [-1, 1]. Inputs: multiples of 2^levels.

    Parameters
    ----------
    config : UNetConfig, optional
        Widths and depth.
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        cfg = config or UNetConfig()
        self.config = cfg
        ch = [cfg.width * 2**k for k in range(cfg.levels + 1)]
        self.down = nn.ModuleList([_block(cfg.in_chans, ch[0])])
        self.down.extend(_block(ch[k], ch[k + 1]) for k in range(cfg.levels))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(ch[k + 1], ch[k], 2, stride=2)
                                for k in reversed(range(cfg.levels)))  # fmt: skip
        self.dec = nn.ModuleList(_block(2 * ch[k], ch[k]) for k in reversed(range(cfg.levels)))
        self.out = nn.Conv2d(ch[0], cfg.out_chans, 1)

    def forward(self, x):
        unit = 2**self.config.levels
        if x.shape[-1] % unit or x.shape[-2] % unit:
            raise ValueError(f"input sides must be multiples of {unit}, got {tuple(x.shape[-2:])}")
        skips = []
        h = x
        for k, blk in enumerate(self.down):
            h = blk(h if k == 0 else self.pool(h))
            skips.append(h)
        for up, dec, s in zip(self.up, self.dec, reversed(skips[:-1]), strict=True):
            h = dec(torch.cat([up(h), s], dim=1))
        return torch.tanh(self.out(h))
