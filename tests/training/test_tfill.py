"""TFill-Coarse (generator, discriminator, losses) against the specification: shapes, parameter
counts, the 16-px token receptive field, loss values on fixed tensors, and a smoke run that
lowers the loss."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ainu_engine.training.models.tfill import (
    PRESETS,
    StyleDiscriminator,
    TFillCoarse,
    discriminator_gan_loss,
    generator_gan_loss,
    nucleus_mask,
    reconstruction_loss,
)


def _n(m):
    return sum(p.numel() for p in m.parameters())


def test_paper_width_parameter_counts():
    paper = PRESETS["paper"]
    g = TFillCoarse(paper)
    g0 = TFillCoarse(dataclasses.replace(paper, decoder_attention=False))
    # the specification: ~60 M with the decoder's attention layers, 58 M without
    assert 58e6 < _n(g) < 66e6
    assert _n(g0) == pytest.approx(57.9e6, rel=0.02)
    assert _n(StyleDiscriminator(128)) == pytest.approx(13.6e6, rel=0.05)
    assert _n(TFillCoarse(PRESETS["tiny"])) < 8e6
    assert len(g.transformer) == 12 and g.transformer[0].attn.num_heads == 8


@pytest.mark.parametrize("size", [64, 128])
def test_shapes_and_range(size):
    torch.manual_seed(0)
    g = TFillCoarse(PRESETS["tiny"]).eval()
    d = StyleDiscriminator(size, ndf=PRESETS["tiny"].ndf)
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape and float(y.abs().max()) <= 1.0
    assert d(y).shape == (2, 1)
    with pytest.raises(ValueError, match="multiple of 16"):
        g(torch.zeros(1, 3, 72, 72))
    with pytest.raises(ValueError, match="at most 512"):
        g(torch.zeros(1, 3, 528, 528))


def test_each_token_sees_one_16px_patch():
    torch.manual_seed(0)
    g = TFillCoarse(PRESETS["tiny"]).eval()
    x = torch.zeros(1, 3, 64, 64)
    x2 = x.clone()
    x2[0, :, 20, 37] = 1.0  # inside the patch of token (1, 2)
    with torch.no_grad():
        diff = (g.encode(x2) - g.encode(x)).abs().sum(dim=1)[0]
    changed = (diff > 1e-6).nonzero().tolist()
    assert changed == [[1, 2]]


def test_loss_values_on_fixed_tensors():
    fake = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 0.0], [0.0, -1.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # masked L1 = 1/4, full L1 = 2/4: 10 * (10 * 0.25 + 0.5) = 30
    assert float(reconstruction_loss(fake, target, mask)) == pytest.approx(30.0)
    z = torch.tensor([[0.0], [2.0]])
    sp = torch.nn.functional.softplus
    assert float(generator_gan_loss(z)) == pytest.approx(float(sp(-z).mean()))
    assert float(discriminator_gan_loss(z, -z)) == pytest.approx(float(2 * sp(-z).mean()))
    nuc = torch.full((1, 3, 1, 2), -1.0)
    nuc[0, :, 0, 1] = torch.tensor([0.0, -0.5, -1.0])  # (x+1)/2 sums to 0.75 > 0.5
    assert nucleus_mask(nuc).tolist() == [[[[0.0, 1.0]]]]


def test_a_few_steps_lower_the_reconstruction_loss():
    """40 Adam steps (the fork's betas) on a smooth image and its mirror: the loss falls by
    more than half."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    g = TFillCoarse(PRESETS["tiny"])
    opt = torch.optim.Adam(g.parameters(), lr=3e-4, betas=(0.5, 0.9))
    x = F.interpolate(torch.rand(2, 3, 4, 4) * 2 - 1, size=32, mode="bilinear")
    y = x.flip(-1)
    m = nucleus_mask(y)
    losses = []
    for _ in range(40):
        loss = reconstruction_loss(g(x), y, m)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
