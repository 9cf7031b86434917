"""Model registry and architectures (plain PyTorch)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed")

from ainu_engine.training.models import ModelConfig, create_model, list_models, load_weights  # noqa: E402

#: torchvision's published parameter counts (ImageNet heads, 3 input channels), from the
#: "num_params" of torchvision.models.*_Weights.IMAGENET1K_V1 metadata.
TORCHVISION_PARAMS = {
    "densenet121": 7_978_856,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "efficientnet_b0": 5_288_548,
}


@pytest.fixture(autouse=True)
def _threads(torch_threads):
    """Two torch threads for every test here (tests/training/conftest.py)."""


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_architectures_match_torchvision_parameter_counts(name):
    m = create_model(name, in_chans=3, num_classes=1000)
    assert sum(p.numel() for p in m.parameters()) == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("in_chans", [1, 2])
def test_forward_features_and_head(name, in_chans):
    torch.manual_seed(0)
    m = create_model(name, in_chans=in_chans, num_classes=3).eval()
    x = torch.randn(2, in_chans, 64, 64)
    with torch.no_grad():
        f = m.forward_features(x)
        logits = m(x)
    assert f.ndim == 4 and f.shape[0] == 2 and f.shape[1] == m.num_features
    assert logits.shape == (2, 3)
    torch.testing.assert_close(m.forward_head(f), logits)
    assert isinstance(m.classifier, torch.nn.Linear) and m.classifier.out_features == 3
    if m.cam_compatible:  # head = global average pooling + the classifier
        torch.testing.assert_close(m.classifier(f.mean(dim=(2, 3))), logits, rtol=1e-5, atol=1e-5)


def test_registry_errors_and_config():
    with pytest.raises(ValueError, match="unknown model 'densnet121'.*did you mean densenet121"):
        create_model("densnet121")
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        create_model("small_cnn", num_classes=1)
    with pytest.raises(ValueError, match="in_chans"):
        create_model("small_cnn", in_chans=0)
    m = create_model("small_cnn", in_chans=2, num_classes=4, width=8)
    assert m.config == ModelConfig("small_cnn", 2, 4, {"width": 8})
    assert ModelConfig.from_dict(m.config.to_dict()) == m.config
    assert {
        "densenet121",
        "resnet18",
        "resnet34",
        "resnet50",
        "efficientnet_b0",
        "vgg_scenmed",
        "small_cnn",
    } <= set(list_models())


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = create_model("resnet18", in_chans=1, num_classes=2)
    torch.manual_seed(3)
    b = create_model("resnet18", in_chans=1, num_classes=2)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(va, vb, msg=k)


def test_local_weights_with_adapted_first_convolution(tmp_path):
    rgb = create_model("resnet18", in_chans=3, num_classes=2)
    path = tmp_path / "rgb.pt"
    torch.save(rgb.state_dict(), path)
    grey = create_model("resnet18", in_chans=1, num_classes=2, weights=path)
    torch.testing.assert_close(grey.conv1.weight, rgb.conv1.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(grey.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)
    two = create_model("resnet18", in_chans=2, num_classes=2, weights=path)
    torch.testing.assert_close(two.conv1.weight, rgb.conv1.weight[:, :2] * 1.5)
    other = create_model("resnet18", in_chans=3, num_classes=5)
    with pytest.raises(ValueError, match=r"tensor 'classifier.weight' has shape \(2, 512\)"):
        load_weights(other, path)
    small = create_model("small_cnn", in_chans=3, num_classes=2)
    with pytest.raises(ValueError, match="state_dict does not fit small_cnn"):
        load_weights(small, path)
