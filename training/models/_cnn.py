"""The architectures: DenseNet-121 (the paper's choice), ResNet-18/34/50, EfficientNet-B0,
SCENMED's VGG, and a small CNN for tests. Layer structure and parameter counts follow
torchvision's implementations (checked in the tests against torchvision's published counts).

Every model has ``forward_features`` (the last feature map, after its activation) and
``forward_head`` (pooling and classifier); ``classifier`` is the final ``nn.Linear`` where
the head is global pooling + one linear layer (what CAM needs).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from ._registry import register_model


class _Model(nn.Module):
    """Base: forward = forward_head(forward_features(x))."""

    #: True when the head is global average pooling + one linear layer (CAM applies)
    cam_compatible = True

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def embedding(self, f):
        """The penultimate-layer features (N, d) of feature maps ``f``: what ``classifier``
        takes (the out-of-distribution score's features, the ONNX graph's ``embedding``)."""
        return torch.flatten(F.adaptive_avg_pool2d(f, 1), 1)

    def forward_head(self, f):
        return self.classifier(self.embedding(f))

    def forward_with_embedding(self, x):
        """(logits, embedding) of ``x`` in one pass; eval mode: the logits are ``forward``'s."""
        e = self.embedding(self.forward_features(x))
        return self.classifier(e), e


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------
# DenseNet (Huang et al. 2017; torchvision.models.densenet)
# ---------------------------------------------------------------------------------------------


class _DenseLayer(nn.Module):
    def __init__(self, in_features, growth, bn_size, drop_rate):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_features)
        self.conv1 = nn.Conv2d(in_features, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)
        self.drop_rate = drop_rate

    def forward(self, features):
        x = torch.cat(features, 1)
        x = self.conv1(F.relu(self.norm1(x)))
        x = self.conv2(F.relu(self.norm2(x)))
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x


class _DenseBlock(nn.ModuleDict):
    def __init__(self, n_layers, in_features, growth, bn_size, drop_rate):
        super().__init__()
        for i in range(n_layers):
            self[f"denselayer{i + 1}"] = _DenseLayer(
                in_features + i * growth, growth, bn_size, drop_rate
            )

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_features, out_features, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet(_Model):
    def __init__(
        self,
        *,
        in_chans,
        num_classes,
        growth=32,
        blocks=(6, 12, 24, 16),
        init_features=64,
        bn_size=4,
        drop_rate=0.0,
    ):
        super().__init__()
        layers = [
            ("conv0", nn.Conv2d(in_chans, init_features, 7, 2, 3, bias=False)),
            ("norm0", nn.BatchNorm2d(init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(3, 2, 1)),
        ]
        n = init_features
        for i, n_layers in enumerate(blocks):
            layers.append(
                (f"denseblock{i + 1}", _DenseBlock(n_layers, n, growth, bn_size, drop_rate))
            )
            n += n_layers * growth
            if i != len(blocks) - 1:
                layers.append((f"transition{i + 1}", _Transition(n, n // 2)))
                n //= 2
        layers.append(("norm5", nn.BatchNorm2d(n)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.num_features = n
        self.classifier = nn.Linear(n, num_classes)
        _init(self)

    def forward_features(self, x):
        return F.relu(self.features(x))


@register_model
def densenet121(*, in_chans, num_classes, **kw):
    """DenseNet-121 (growth 32, blocks 6-12-24-16): AINU's selected architecture."""
    return DenseNet(in_chans=in_chans, num_classes=num_classes, **kw)


# ---------------------------------------------------------------------------------------------
# ResNet (He et al. 2016; torchvision.models.resnet, v1.5 bottleneck)
# ---------------------------------------------------------------------------------------------


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + identity)


class ResNet(_Model):
    def __init__(self, block, layers, *, in_chans, num_classes, drop_rate=0.0):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(block, 64, layers[0])
        self.layer2 = self._layer(block, 128, layers[1], 2)
        self.layer3 = self._layer(block, 256, layers[2], 2)
        self.layer4 = self._layer(block, 512, layers[3], 2)
        self.num_features = 512 * block.expansion
        self.drop_rate = drop_rate
        self.classifier = nn.Linear(self.num_features, num_classes)
        _init(self)

    def _layer(self, block, planes, n, stride=1):
        down = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            down = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        blocks = [block(self.inplanes, planes, stride, down)]
        self.inplanes = planes * block.expansion
        blocks += [block(self.inplanes, planes) for _ in range(1, n)]
        return nn.Sequential(*blocks)

    def forward_features(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, f):
        f = self.embedding(f)
        return self.classifier(F.dropout(f, self.drop_rate, self.training) if self.drop_rate else f)


@register_model
def resnet18(*, in_chans, num_classes, **kw):
    return ResNet(_BasicBlock, (2, 2, 2, 2), in_chans=in_chans, num_classes=num_classes, **kw)


@register_model
def resnet34(*, in_chans, num_classes, **kw):
    return ResNet(_BasicBlock, (3, 4, 6, 3), in_chans=in_chans, num_classes=num_classes, **kw)


@register_model
def resnet50(*, in_chans, num_classes, **kw):
    return ResNet(_Bottleneck, (3, 4, 6, 3), in_chans=in_chans, num_classes=num_classes, **kw)


# ---------------------------------------------------------------------------------------------
# EfficientNet-B0 (Tan & Le 2019; torchvision.models.efficientnet)
# ---------------------------------------------------------------------------------------------


def _conv_bn_act(cin, cout, k, stride=1, groups=1, act=True):
    layers = [
        nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class _SqueezeExcite(nn.Module):
    def __init__(self, channels, squeeze):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.silu(self.fc1(s))))


class _MBConv(nn.Module):
    def __init__(self, cin, cout, expand, k, stride, drop_path):
        super().__init__()
        mid = cin * expand
        layers = [] if expand == 1 else [_conv_bn_act(cin, mid, 1)]
        layers += [
            _conv_bn_act(mid, mid, k, stride, groups=mid),
            _SqueezeExcite(mid, max(1, cin // 4)),
            _conv_bn_act(mid, cout, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.drop_path = drop_path

    def forward(self, x):
        out = self.block(x)
        if not self.residual:
            return out
        if self.training and self.drop_path > 0:  # stochastic depth, per sample
            keep = 1.0 - self.drop_path
            mask = torch.empty(
                out.shape[0], 1, 1, 1, device=out.device, dtype=out.dtype
            ).bernoulli_(keep)
            out = out * mask / keep
        return out + x


class EfficientNet(_Model):
    #: (expand ratio, kernel, stride, in, out, repeats) of EfficientNet-B0
    STAGES = (
        (1, 3, 1, 32, 16, 1),
        (6, 3, 2, 16, 24, 2),
        (6, 5, 2, 24, 40, 2),
        (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3),
        (6, 5, 2, 112, 192, 4),
        (6, 3, 1, 192, 320, 1),
    )

    def __init__(self, *, in_chans, num_classes, drop_rate=0.2, drop_path_rate=0.2):
        super().__init__()
        total = sum(s[-1] for s in self.STAGES)
        blocks, i = [_conv_bn_act(in_chans, 32, 3, 2)], 0
        for expand, k, stride, cin, cout, repeats in self.STAGES:
            for r in range(repeats):
                blocks.append(
                    _MBConv(
                        cin if r == 0 else cout,
                        cout,
                        expand,
                        k,
                        stride if r == 0 else 1,
                        drop_path_rate * i / total,
                    )
                )
                i += 1
        blocks.append(_conv_bn_act(320, 1280, 1))
        self.features = nn.Sequential(*blocks)
        self.num_features = 1280
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(1280, num_classes)
        _init(self)

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, f):
        return self.classifier(self.dropout(self.embedding(f)))


@register_model
def efficientnet_b0(*, in_chans, num_classes, **kw):
    return EfficientNet(in_chans=in_chans, num_classes=num_classes, **kw)


# ---------------------------------------------------------------------------------------------
# SCENMED's VGG and a small CNN
# ---------------------------------------------------------------------------------------------


class _ScenmedNet(_Model):
    """What SCENMED's VGG and PatchNet share: batch-normalised input, blocks of 3×3
    convolutions with PReLU (a₀ = 0.25) whose widths double per block, the final map flattened
    on a ``grid`` × ``grid`` lattice, 2 fully connected layers with ReLU and dropout, a linear
    output. Their heads are not global pooling + one linear layer, so CAM does not apply."""

    cam_compatible = False

    def _build(self, in_chans, num_classes, *, width, blocks, pool_after, grid, hidden,
               drop_rate, ceil_mode=False):  # fmt: skip
        layers, cin = [nn.BatchNorm2d(in_chans)], in_chans
        for stage, n in enumerate(blocks):
            w = width * 2**stage
            for _ in range(n):
                layers += [nn.Conv2d(cin, w, 3, padding=1), nn.PReLU(w, init=0.25)]
                cin = w
            if stage in pool_after:
                layers.append(nn.MaxPool2d(2, ceil_mode=ceil_mode))
        self.features = nn.Sequential(*layers)
        self.num_features = cin
        self.grid = grid
        self.head = nn.Sequential(
            nn.Linear(cin * grid**2, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(hidden, num_classes),
        )
        self.classifier = self.head[-1]

    def forward_features(self, x):
        return self.features(x)

    def embedding(self, f):
        return self.penultimate(f)

    def penultimate(self, f):
        """The second hidden layer's activations (the paper's t-SNE features, ``fc_2``)."""
        if f.shape[-1] != self.grid or f.shape[-2] != self.grid:
            f = F.adaptive_avg_pool2d(f, self.grid)
        return self.head[:-1](torch.flatten(f, 1))

    def forward_head(self, f):
        return self.classifier(self.penultimate(f))


class VGGScenmed(_ScenmedNet):
    """SCENMED's VGG-like CNN (Radhakrishnan et al. 2017; methods spec §1.8).

    Batch-normalised input (with scale), 10 3×3 convolutions (SAME padding) with PReLU
    (a₀ = 0.25) in 4 blocks of [2, 2, 3, 3], a 2×2 max-pool after each (128 → 8 px), the
    feature map flattened, 2 fully connected layers with ReLU and dropout, a linear output.

    Parameters
    ----------
    width : int, default 32
        Filters of the first block, doubled after each pooling: 32 (the paper: 32-64-128-256)
        or 64 (the public code: 64-128-256-512).
    hidden : int, default 1024
        Units of each fully connected layer (the paper does not say; the code: 4096).
    image_size : int, default 128
        Input side the head is sized for (128: full nuclei, 32: patches); other inputs are
        average-pooled to the same grid.
    drop_rate : float, default 0.5
        Dropout after each hidden layer (the code: keep probability 0.5).

    CAM does not apply (Grad-CAM and occlusion do).
    """

    def __init__(
        self, *, in_chans, num_classes, width=32, hidden=1024, image_size=128, drop_rate=0.5
    ):
        super().__init__()
        if image_size < 16 or image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16, got {image_size!r}")
        self._build(in_chans, num_classes, width=width, blocks=(2, 2, 3, 3),
                    pool_after=(0, 1, 2, 3), grid=image_size // 16, hidden=hidden,
                    drop_rate=drop_rate)  # fmt: skip
        _init(self)
        for m in self.modules():  # He initialisation, biases 0.01 (the code)
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.constant_(m.bias, 0.01)
        nn.init.normal_(self.classifier.weight, 0, 0.01)


@register_model
def vgg_scenmed(*, in_chans, num_classes, **kw):
    return VGGScenmed(in_chans=in_chans, num_classes=num_classes, **kw)


class PatchNetScenmed(_ScenmedNet):
    """SCENMED's PatchNet classifier for small patches (11² or 17²; the public code's
    ``patches_vgg_encoder_model``): batch-normalised input, the VGG's first three blocks
    (2 + 2 + 3 convolutions 3×3 with PReLU, widths w, 2w, 4w), one 2×2 max-pool (SAME, so
    11 → 6) after the third block, the map flattened, 2 fully connected layers with ReLU and
    dropout, a linear output. A nucleus's call is the mean of its patches' decisions."""

    def __init__(
        self, *, in_chans, num_classes, width=32, hidden=256, image_size=11, drop_rate=0.5
    ):
        super().__init__()
        self._build(in_chans, num_classes, width=width, blocks=(2, 2, 3), pool_after=(2,),
                    grid=-(-image_size // 2), hidden=hidden, drop_rate=drop_rate,
                    ceil_mode=True)  # fmt: skip
        _init(self)


@register_model
def patchnet_scenmed(*, in_chans, num_classes, **kw):
    return PatchNetScenmed(in_chans=in_chans, num_classes=num_classes, **kw)


class SmallCNN(_Model):
    """Four conv-BN-ReLU-maxpool stages (16-32-64-128), global pooling, linear: for tests and
    quick CPU runs."""

    def __init__(self, *, in_chans, num_classes, width=16):
        super().__init__()
        layers, cin = [], in_chans
        for k in range(4):
            cout = width * 2**k
            layers += [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
            if k < 3:
                layers.append(nn.MaxPool2d(2))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.num_features = cin
        self.classifier = nn.Linear(cin, num_classes)
        _init(self)

    def forward_features(self, x):
        return self.features(x)


@register_model
def small_cnn(*, in_chans, num_classes, **kw):
    return SmallCNN(in_chans=in_chans, num_classes=num_classes, **kw)
