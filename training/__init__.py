"""Training side of ainu-engine (PyTorch models, datasets, simulator, export).

Imports torch only inside the functions that need it; depends on the engine (``ainu_engine``),
never the reverse.
"""

__all__: list[str] = []
