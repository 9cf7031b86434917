"""PyTorch models for AINU (plain PyTorch: torchvision is not installable on CPU machines here).

``create_model(name, *, in_chans, num_classes)`` with ``name`` in :func:`list_models`.
Importing this package imports torch.
"""

from . import _cnn  # noqa: F401  (registers the architectures)
from ._registry import ModelConfig, create_model, list_models, load_weights, register_model

__all__ = ["ModelConfig", "create_model", "list_models", "load_weights", "register_model"]
