"""ainu-engine: cell-state calls from single-molecule localization microscopy of nuclei.

Implements the AINU method (Carnevali et al., Nature Machine Intelligence 6, 1021-1033, 2024,
https://doi.org/10.1038/s42256-024-00883-x). ``import ainu_engine`` is light: no PyTorch, no GPU
library and no ONNX Runtime is imported until a function needs it.
"""

from .errors import AinuError
from .provenance import __version__

__all__ = ["AinuError", "Classifier", "Prediction", "__version__"]


def __getattr__(name: str):
    # Classifier pulls in the renderer and I/O; load it on first use so `import ainu_engine` stays
    # light
    if name in ("Classifier", "Prediction"):
        from . import _classifier

        return getattr(_classifier, name)
    raise AttributeError(f"module 'ainu_engine' has no attribute {name!r}")
