"""TFill-Coarse for image-to-image translation (actin → nucleus), as Vasudevan et al. (PLoS ONE
2022) used it through their fork of TFill (Zheng et al., CVPR 2022); methods spec §2.3-2.4.

- :class:`TFillCoarse` (the generator): an encoder of 1×1 convolutions and 2×2 stride-2
  "learned pooling" (so each token sees exactly one 16 × 16 patch, like a ViT embedding), a
  transformer of pre-norm layers with learned row + column position embeddings (≤ 32 × 32
  tokens, i.e. inputs ≤ 512 px), and a decoder of 3×3 residual blocks with bilinear upsampling
  and StyleGAN2-style multi-resolution RGB outputs summed through the levels, tanh.
- :class:`StyleDiscriminator`: StyleGAN2-like residual discriminator down to 4 × 4 with a
  minibatch standard-deviation channel and two linear layers.

The fork's partial convolutions run without a hole mask, where they are plain convolutions;
they are plain convolutions here. StyleGAN2's equalised learning rate and its CUDA ops are not
used (standard initialisation; a [1, 3, 3, 1] blur by ``conv2d``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "TFillConfig",
    "PRESETS",
    "TFillCoarse",
    "StyleDiscriminator",
    "reconstruction_loss",
    "generator_gan_loss",
    "discriminator_gan_loss",
    "nucleus_mask",
]


@dataclass(frozen=True)
class TFillConfig:
    """Widths and depths (the paper's / the fork's defaults: ``PRESETS["paper"]``).

    Attributes
    ----------
    in_chans : int
        Input channels (RGB).
    out_chans : int
        Output channels.
    ngf : int
        The encoder's first width.
    levels : int
        Down-samplings (S / 2^levels tokens a side).
    embed_dim : int
        The transformer's width.
    layers : int
        Transformer layers.
    heads : int
        Attention heads.
    ff_dim : int
        The feed-forward width.
    norm : str
        "pixel" (the fork's PixelNorm) or "layer" (the paper's LayerNorm).
    decoder_attention : bool
        The fork's --attn_G.
    max_tokens_side : int
        The largest token grid side (positional embedding).
    ndf : int
        The discriminator's first width.
    """

    in_chans: int = 3
    out_chans: int = 3
    ngf: int = 32
    levels: int = 4
    embed_dim: int = 512
    layers: int = 12
    heads: int = 8
    ff_dim: int = 2048
    norm: str = "pixel"
    decoder_attention: bool = True
    max_tokens_side: int = 32
    ndf: int = 32

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    "paper": TFillConfig(),
    "tiny": TFillConfig(ngf=16, embed_dim=128, layers=4, heads=4, ff_dim=256, ndf=16),
}


class PixelNorm(nn.Module):
    """x / sqrt(mean over channels of x² + eps)."""

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def __init__(self, c):
        super().__init__()
        self.norm = nn.LayerNorm(c)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ResBlock(nn.Module):
    """norm → LeakyReLU(0.2) → conv, twice; shortcut (1×1 when the width changes);
    output (main + shortcut) / √2."""

    def __init__(self, cin, cout, kernel):
        super().__init__()
        pad = kernel // 2
        self.main = nn.Sequential(
            PixelNorm(), nn.LeakyReLU(0.2), nn.Conv2d(cin, cout, kernel, padding=pad),
            PixelNorm(), nn.LeakyReLU(0.2), nn.Conv2d(cout, cout, kernel, padding=pad),
        )  # fmt: skip
        self.short = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return (self.main(x) + self.short(x)) / math.sqrt(2.0)


class TransformerLayer(nn.Module):
    """Pre-norm multi-head self-attention and a 1×1-convolution MLP (GELU) on a token map."""

    def __init__(self, d, heads, ff, norm):
        super().__init__()
        mk = PixelNorm if norm == "pixel" else (lambda: ChannelLayerNorm(d))
        self.n1, self.n2 = mk(), mk()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Conv2d(d, ff, 1), nn.GELU(), nn.Conv2d(ff, d, 1))

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.n1(x).flatten(2).transpose(1, 2)
        a, _ = self.attn(t, t, t, need_weights=False)
        x = x + a.transpose(1, 2).reshape(b, c, h, w)
        return x + self.ff(self.n2(x))


class TFillCoarse(nn.Module):
    """The generator: (B, in_chans, S, S) in [-1, 1] → (B, out_chans, S, S) in [-1, 1];
    S a multiple of 16 and at most 16 · ``max_tokens_side``.

    Parameters
    ----------
    config : TFillConfig
        Widths and depths.
    """

    def __init__(self, config: TFillConfig | None = None):
        super().__init__()
        cfg = config or TFillConfig()
        if cfg.norm not in ("pixel", "layer"):
            raise ValueError(f"norm must be pixel or layer, got {cfg.norm!r}")
        self.config = cfg
        ch = [cfg.ngf * 2**i for i in range(cfg.levels + 1)]
        self.stem = nn.Conv2d(cfg.in_chans, ch[0], 1)
        self.down = nn.ModuleList()
        for i in range(cfg.levels):
            self.down.append(
                nn.Sequential(
                    nn.Conv2d(ch[i], ch[i + 1], 2, stride=2),
                    ResBlock(ch[i + 1], ch[i + 1], 1),
                    ResBlock(ch[i + 1], ch[i + 1], 1),
                )
            )
        top = ch[-1]
        d = cfg.embed_dim
        self.middle_e = nn.Sequential(ResBlock(top, top, 1), ResBlock(top, top, 1),
                                      ResBlock(top, d, 1))  # fmt: skip
        self.embed = nn.Conv2d(d, d, 1)
        self.row = nn.Parameter(torch.zeros(cfg.max_tokens_side, d))
        self.col = nn.Parameter(torch.zeros(cfg.max_tokens_side, d))
        nn.init.normal_(self.row, std=0.02)
        nn.init.normal_(self.col, std=0.02)
        self.transformer = nn.Sequential(
            *[TransformerLayer(d, cfg.heads, cfg.ff_dim, cfg.norm) for _ in range(cfg.layers)]
        )
        self.project = nn.Conv2d(d, top, 1)
        # decoder
        self.dec_in = nn.Conv2d(top, top, 3, padding=1)
        self.mid1 = ResBlock(top, top, 3)
        self.mid_attn = (
            TransformerLayer(top, cfg.heads, cfg.ff_dim, cfg.norm)
            if cfg.decoder_attention else nn.Identity()
        )  # fmt: skip
        self.mid2 = ResBlock(top, top, 3)
        self.up = nn.ModuleList()
        self.to_rgb = nn.ModuleList([nn.Conv2d(top, cfg.out_chans, 1)])
        for k, i in enumerate(range(cfg.levels, 0, -1)):
            cin, cout = ch[i], ch[i - 1]
            blocks: list[nn.Module] = [
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(cin, cout, 3, padding=1),
                ResBlock(cout, cout, 3),
            ]
            if k == 0 and cfg.decoder_attention:
                heads = max(1, min(cfg.heads, cout // 32))
                blocks.append(TransformerLayer(cout, heads, cout * 4, cfg.norm))
            blocks.append(ResBlock(cout, cout, 3))
            if k == 0 and cfg.decoder_attention:
                blocks.append(TransformerLayer(cout, heads, cout * 4, cfg.norm))
            self.up.append(nn.Sequential(*blocks))
            self.to_rgb.append(nn.Conv2d(cout, cfg.out_chans, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)
        for m in self.to_rgb:  # start near 0 (mid-grey): tanh not saturated, gradients flow
            nn.init.normal_(m.weight, std=1e-3)

    def encode(self, x):
        s = x.shape[-1]
        unit = 2**self.config.levels
        if x.shape[-2] != s or s % unit or s // unit > self.config.max_tokens_side:
            raise ValueError(
                f"input must be square, a multiple of {unit} px and at most "
                f"{unit * self.config.max_tokens_side} px, got {tuple(x.shape[-2:])}"
            )
        h = self.stem(x)
        for blk in self.down:
            h = blk(h)
        return self.middle_e(h)

    def forward(self, x):
        t = self.embed(self.encode(x))
        n = t.shape[-1]
        pos = self.row[:n, None, :] + self.col[None, :n, :]  # (n, n, d)
        t = t + pos.permute(2, 0, 1)[None]
        h = self.project(self.transformer(t))
        h = self.mid2(self.mid_attn(self.mid1(self.dec_in(h))))
        rgb = self.to_rgb[0](h)
        for blk, to_rgb in zip(self.up, self.to_rgb[1:], strict=True):
            h = blk(h)
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
            rgb = rgb + to_rgb(h)
        return torch.tanh(rgb)


class _Blur(nn.Module):
    def __init__(self, channels):
        super().__init__()
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        k = k[:, None] * k[None, :]
        self.register_buffer("kernel", (k / k.sum()).expand(channels, 1, 4, 4).clone())
        self.channels = channels

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 2, 1, 2), mode="reflect"), self.kernel, groups=self.channels)


class _DBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, padding=1)
        self.blur = _Blur(cin)
        self.conv2 = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, stride=2, bias=False)

    def forward(self, x):
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.leaky_relu(self.conv2(self.blur(h)), 0.2)
        return (h + self.skip(self.blur(x))) / math.sqrt(2.0)


class StyleDiscriminator(nn.Module):
    """StyleGAN2-like discriminator for ``size`` px inputs: from-RGB, residual blocks halving
    the resolution down to 4 × 4 (widths ``ndf`` · 2^k, at most 512), a minibatch standard-
    deviation channel (groups of up to 4), a 3×3 convolution and two linear layers → one
    real/fake logit per image.

    Parameters
    ----------
    size : int
        The input side (a power of two, or a multiple of 8).
    in_chans : int
        Input channels.
    ndf : int
        The first width.
    max_ch : int, optional
        The widest layer (default 512).
    """

    def __init__(self, size: int, in_chans: int = 3, ndf: int = 32, max_ch: int | None = None):
        super().__init__()
        if size < 8 or size & (size - 1) and size % 8:
            raise ValueError(f"size must be >= 8 and divisible down to 4 x 4, got {size!r}")
        self.size = size
        max_ch = max_ch or min(512, 16 * ndf)
        c = ndf
        self.from_rgb = nn.Conv2d(in_chans, c, 1)
        blocks, res = [], size
        while res > 4 and res % 2 == 0:
            cout = min(c * 2, max_ch)
            blocks.append(_DBlock(c, cout))
            c, res = cout, res // 2
        self.blocks = nn.Sequential(*blocks)
        self.final_res = res
        self.final_conv = nn.Conv2d(c + 1, c, 3, padding=1)
        self.fc1 = nn.Linear(c * res * res, c)
        self.fc2 = nn.Linear(c, 1)

    def forward(self, x):
        h = F.leaky_relu(self.from_rgb(x), 0.2)
        h = self.blocks(h)
        b, c, hh, ww = h.shape
        g = min(4, b)
        while b % g:
            g -= 1
        y = h.view(g, -1, c, hh, ww)
        y = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))  # (b/g,)
        y = y.view(-1, 1, 1, 1).repeat(g, 1, hh, ww)
        h = F.leaky_relu(self.final_conv(torch.cat([h, y], dim=1)), 0.2)
        h = F.leaky_relu(self.fc1(h.flatten(1)), 0.2)
        return self.fc2(h)


def nucleus_mask(nucleus: torch.Tensor) -> torch.Tensor:
    """The fork's nucleus mask M from a nucleus image in [-1, 1] (B, C, H, W): pixels where the
    channels of (x + 1) / 2 sum to more than 0.5, i.e. Σ_c x > 1 − C, as (B, 1, H, W) float.

    Parameters
    ----------
    nucleus : torch.Tensor, shape (B, C, H, W)
        The nucleus images in [-1, 1].

    Returns
    -------
    torch.Tensor, shape (B, 1, H, W)
    """
    c = nucleus.shape[1]
    return (nucleus.sum(dim=1, keepdim=True) > 1.0 - c).float()


def reconstruction_loss(fake, target, mask, *, alpha: float = 10.0, weight: float = 10.0):
    """λ_rec · (α · L1(M ⊙ Ŷ, M ⊙ Y) + L1(Ŷ, Y)), both means over all pixels (the fork's; the
    paper's α = 10 weighs nucleus pixels against the background).

    Parameters
    ----------
    fake, target : torch.Tensor
        Generated and target images.
    mask : torch.Tensor
        :func:`nucleus_mask` of the target.
    alpha : float
        The weight of nucleus pixels.
    weight : float
        λ_rec.

    Returns
    -------
    torch.Tensor
    """
    return weight * (alpha * F.l1_loss(fake * mask, target * mask) + F.l1_loss(fake, target))


def generator_gan_loss(d_fake):
    """Non-saturating GAN loss of the generator: mean softplus(−D(G(x))).

    Parameters
    ----------
    d_fake : torch.Tensor
        The discriminator's logits of generated images.

    Returns
    -------
    torch.Tensor
    """
    return F.softplus(-d_fake).mean()


def discriminator_gan_loss(d_real, d_fake):
    """mean softplus(D(fake)) + mean softplus(−D(real)); no gradient penalty (as the fork).

    Parameters
    ----------
    d_real, d_fake : torch.Tensor
        The discriminator's logits of real and generated images.

    Returns
    -------
    torch.Tensor
    """
    return F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
