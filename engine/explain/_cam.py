"""CAM for global-pooling + linear-head models, and Grad-CAM / Integrated Gradients through
Captum, on the PyTorch model (the training checkpoint)."""

from __future__ import annotations

import time

import numpy as np

from ._occlusion import Attribution, _targets

__all__ = ["cam", "gradcam", "integrated_gradients", "torch_model"]


def torch_model(model):
    """The torch.nn.Module behind ``model`` (a module, a torch backend, or a Classifier on one)."""
    import torch

    if hasattr(model, "backend") and hasattr(model, "info"):
        model = model.backend
    if hasattr(model, "model") and hasattr(model, "infer"):
        model.load()
        model = model.model
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            "CAM, Grad-CAM and Integrated Gradients need the PyTorch model: load the training "
            "checkpoint (RUN/best.pt) with the torch backend"
        )
    return model.eval()


def _forward(model, image: np.ndarray, target, class_names):
    """(module, input tensor on its device, logits of the image, target indices)."""
    import torch

    m = torch_model(model)
    dev = next(m.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32)[None]).to(dev)
    with torch.no_grad():
        logits = m(x)[0].float().cpu().numpy()
    return m, x, logits, _targets(target, logits, class_names)


def cam(model, image: np.ndarray, *, target=None, class_names=None) -> Attribution:
    """Class activation map (Zhou et al. 2016): Σ_k w_tk · F_k(x) of the last feature maps,
    upsampled bilinearly to the image size. Needs ``forward_features`` followed by global
    average pooling and one linear layer (``model.cam_compatible``; not ``vgg_scenmed``)."""
    import torch
    from torch.nn import functional as F

    t0 = time.perf_counter()
    m = torch_model(model)
    if not getattr(m, "cam_compatible", False) or not isinstance(
        getattr(m, "classifier", None), torch.nn.Linear
    ):
        raise ValueError(
            f"CAM needs a global-pooling + linear head; {type(m).__name__} has none (use gradcam)"
        )
    dev = next(m.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32)[None]).to(dev)
    with torch.inference_mode():
        feats = m.forward_features(x)
        logits = m.forward_head(feats)[0].float().cpu().numpy()
        targets = _targets(target, logits, class_names)
        w = m.classifier.weight[targets]  # (T, K)
        maps = torch.einsum("tk,khw->thw", w, feats[0].float())
        maps = F.interpolate(
            maps[None], size=image.shape[-2:], mode="bilinear", align_corners=False
        )[0]
    return Attribution(
        maps.cpu().numpy().astype(np.float32),
        targets,
        class_names,
        "cam",
        {"feature_map": list(feats.shape[-2:])},
        logits,
        time.perf_counter() - t0,
    )


def gradcam(model, image: np.ndarray, *, target=None, class_names=None) -> Attribution:
    """Grad-CAM (Selvaraju et al. 2017) on the last feature maps, via Captum's LayerGradCam on
    ``forward_features``, upsampled to the image size."""
    import torch
    from captum.attr import LayerAttribution, LayerGradCam

    t0 = time.perf_counter()
    m, x, logits, targets = _forward(model, image, target, class_names)

    class _Features(torch.nn.Module):  # a layer Captum can hook: the output of forward_features
        def forward(self, f):
            return f

    hook = _Features()

    def forward(inp):
        return m.forward_head(hook(m.forward_features(inp)))

    gc = LayerGradCam(forward, hook)
    maps = []
    for t in targets:
        a = gc.attribute(x, target=t, relu_attributions=False)
        maps.append(
            LayerAttribution.interpolate(a, tuple(image.shape[-2:]), "bilinear")[0, 0]
            .detach()
            .cpu()
            .numpy()
        )
    return Attribution(
        np.stack(maps).astype(np.float32),
        targets,
        class_names,
        "gradcam",
        {},
        logits,
        time.perf_counter() - t0,
    )


def integrated_gradients(
    model,
    image: np.ndarray,
    *,
    target=None,
    class_names=None,
    steps: int = 32,
    baseline: float = 0.0,
) -> Attribution:
    """Integrated Gradients (Sundararajan et al. 2017) via Captum, summed over channels."""
    from captum.attr import IntegratedGradients

    t0 = time.perf_counter()
    m, x, logits, targets = _forward(model, image, target, class_names)
    ig = IntegratedGradients(m)
    maps = [
        ig.attribute(x, baselines=baseline, target=t, n_steps=steps, internal_batch_size=8)[0]
        .sum(0)
        .detach()
        .cpu()
        .numpy()
        for t in targets
    ]
    return Attribution(
        np.stack(maps).astype(np.float32),
        targets,
        class_names,
        "ig",
        {"steps": steps, "baseline": baseline},
        logits,
        time.perf_counter() - t0,
    )
